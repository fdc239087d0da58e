"""The answer table: precomputed responses by question, and the UDP packet memo in front of it.

No sockets here; svcnet.dns.wire makes the bytes, this module keeps them.

- `AnswerTable` holds precomputed responses keyed by the question's wire bytes
  (name lowercased, type, class), each dropped when the zone data it depends on
  changes (by tag, see svcnet.dns.zone). `fast_response` serves a hit by
  patching the ID, the RD/CD bits and the question (so the client's case is
  echoed: answer owner names are compression pointers into the question) and
  appending the client's OPT. Anything unusual returns None and takes the slow
  path (svcnet.dns.resolver).
- On top of it, `AnswerTable.packets` remembers, per UDP query packet as sent
  (everything after the ID), the reply fast_response made for it minus the ID.
  Clients send the same bytes for the same question again and again, so the UDP
  hot path is one dict lookup, a liveness check of the entry it came from and
  the ID put in front (`udp_reply`). An entry dropped from the table is marked
  dead, so a remembered reply never outlives the answer it was made from.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from svcnet.dns.answers import Result
from svcnet.dns.wire import MAX_TCP, MIN_UDP, Query, parse_opt, render


@dataclass(eq=False)
class TableEntry:
    """A precomputed response: header flag/count variants and the bytes after the question.

    `stat` is (qtype << 8) | rcode, the metrics key of a hit; `live` turns False when the
    table drops the entry, which retires every remembered packet reply made from it.
    """

    headers: tuple[bytes, ...]  # 8 variants: index = RD | CD<<1 | has_opt<<2; each flags+counts (10 bytes)
    body: bytes
    rcode: int
    qtype: int
    tags: frozenset[str]
    negative: bool
    stat: int = 0
    live: bool = True


def make_entry(result: Result, qname_wire_lower: bytes, qtype: int, qclass: int,
               ra: bool = False) -> TableEntry:
    rendered = render(result, qname_wire_lower, qtype, qclass, ra=ra)
    question_end = 12 + len(qname_wire_lower) + 4
    flags, qd, an, ns, ar = struct.unpack_from("!HHHHH", rendered, 2)
    headers = []
    for index in range(8):
        f = flags | (0x0100 if index & 1 else 0) | (0x0010 if index & 2 else 0)
        headers.append(struct.pack("!HHHHH", f, qd, an, ns, ar + (1 if index & 4 else 0)))
    return TableEntry(headers=tuple(headers), body=rendered[question_end:], rcode=result.rcode, qtype=qtype,
                      tags=result.tags, negative=not result.answer, stat=stat_key(qtype, result.rcode))


def stat_key(qtype: int, rcode: int) -> int:
    """The metrics key of an answer: one small int, cheap to count per packet."""
    return (qtype << 8) | (rcode & 0xFF)


@dataclass
class AnswerTable:
    """Question key -> TableEntry, with invalidation by dependency tag; UDP packet -> reply memo."""

    max_negative: int = 100_000  # random-name floods must not grow memory without bound
    max_packets: int = 32_768  # distinct UDP query packets remembered (cleared whole when full)
    entries: dict[bytes, TableEntry] = field(default_factory=dict)
    by_tag: dict[str, set[bytes]] = field(default_factory=dict)
    negative_keys: set[bytes] = field(default_factory=set)
    # packet bytes after the ID -> (reply bytes after the ID, the entry it was made from)
    packets: dict[bytes, tuple[bytes, TableEntry]] = field(default_factory=dict)

    def get(self, key: bytes) -> TableEntry | None:
        return self.entries.get(key)

    def store(self, query: Query, result: Result) -> None:
        """Keep the rendered answer to query's question, keyed by the lowercased question."""
        assert query.qname_wire is not None
        qname = query.qname_wire.lower()
        self.put(qname + struct.pack("!HH", query.qtype, query.qclass),
                 make_entry(result, qname, query.qtype, query.qclass))

    def put(self, key: bytes, entry: TableEntry) -> None:
        if entry.negative and len(self.negative_keys) >= self.max_negative:
            self.drop_negative()
        old = self.entries.get(key)
        if old is not None and old is not entry:
            old.live = False
        self.entries[key] = entry
        for tag in entry.tags:
            self.by_tag.setdefault(tag, set()).add(key)
        if entry.negative:
            self.negative_keys.add(key)

    def _pop(self, key: bytes) -> bool:
        entry = self.entries.pop(key, None)
        if entry is None:
            return False
        entry.live = False
        return True

    def invalidate(self, tags: Iterable[str]) -> int:
        """Drop entries depending on any of tags, and every negative answer (its SOA serial moved)."""
        dropped = 0
        for tag in tags:
            for key in self.by_tag.pop(tag, ()):
                if self._pop(key):
                    dropped += 1
        return dropped + self.drop_negative()

    def drop_negative(self) -> int:
        count = 0
        for key in self.negative_keys:
            if self._pop(key):
                count += 1
        self.negative_keys = set()
        return count

    def clear(self) -> None:
        for entry in self.entries.values():
            entry.live = False
        self.entries.clear()
        self.by_tag.clear()
        self.negative_keys = set()
        self.packets.clear()

    def __len__(self) -> int:
        return len(self.entries)


def fast_response(table: AnswerTable, data: bytes, tcp: bool) -> tuple[bytes, TableEntry] | None:
    """The hot path: a table hit for a plain query, or None (take the slow path)."""
    if len(data) < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    end = data.find(0, 12)
    qend = end + 5
    if end < 0 or qend > len(data):
        return None
    entry = table.entries.get(data[12:end + 1].lower() + data[end + 1:qend])
    if entry is None:
        return None
    variant = (data[2] & 1) | ((data[3] & 0x10) >> 3)
    ar = data[11] | (data[10] << 8)
    if ar == 0:
        if len(data) != qend:
            return None
        opt = b""
        limit = MAX_TCP if tcp else MIN_UDP
    elif ar == 1:
        # Only a bare OPT (root name, type 41, version 0) is handled here.
        if data[qend:qend + 3] != b"\x00\x00\x29" or len(data) < qend + 11 or data[qend + 6]:
            return None
        rdlen = (data[qend + 9] << 8) | data[qend + 10]
        if len(data) != qend + 11 + rdlen:
            return None
        size = (data[qend + 3] << 8) | data[qend + 4]
        do = data[qend + 7] & 0x80
        options = b""
        if rdlen:
            try:
                options = parse_opt(size, 0, data[qend + 11:]).options
            except ValueError:
                return None
        opt = (b"\x00\x00\x29" + data[qend + 3:qend + 5] + (b"\x00\x00\x80\x00" if do else b"\x00\x00\x00\x00")
               + len(options).to_bytes(2, "big") + options)
        limit = MAX_TCP if tcp else max(MIN_UDP, size)
        variant |= 4
    else:
        return None
    response = data[:2] + entry.headers[variant] + data[12:qend] + entry.body + opt
    if len(response) > limit:
        return None  # needs truncation: the slow path cuts it as CoreDNS does
    return response, entry


def udp_reply(table: AnswerTable, data: bytes) -> tuple[bytes, TableEntry] | None:
    """(reply, entry) for a UDP query packet from the table, or None (take the slow path).

    The reply is what fast_response makes; it is remembered under the packet's bytes
    after the ID (the reply depends on nothing else), so the next identical packet
    costs one lookup. The server's recvmmsg loop inlines these same steps.
    """
    memo = table.packets.get(data[2:])
    if memo is not None and memo[1].live:
        return data[:2] + memo[0], memo[1]
    hit = fast_response(table, data, False)
    if hit is None:
        return None
    remember(table, data, hit[0], hit[1])
    return hit


def remember(table: AnswerTable, data: bytes, response: bytes, entry: TableEntry) -> tuple[bytes, TableEntry]:
    """Keep response (for the UDP packet data) in table.packets; returns the memo (reply minus ID, entry)."""
    packets = table.packets
    if len(packets) >= table.max_packets:
        packets.clear()  # distinct packets beyond the bound (0x20 case games, cookies): start over
    memo = packets[data[2:]] = (response[2:], entry)
    return memo
