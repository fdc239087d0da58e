"""The answer table: precomputed responses by question, and the UDP packet memo in front of it.

No sockets here; svcnet.dns.wire makes the bytes, this module keeps them.

- `AnswerTable` holds precomputed responses keyed by the question's wire bytes
  (name lowercased, type, class), each dropped when the zone data it depends on
  changes (by tag, see svcnet.dns.zone). One entry serves every spelling of its
  question: `make_entry` renders the answer for the question spelled in
  capitals with case-exact compression, so owner names become pointers to the
  question, names under the zone point at (or, where DNS forbids compression,
  as SRV targets, spell) the zone as the question spells it, and names the
  cluster stores (object names, ExternalName targets) stay lowercase, as
  CoreDNS writes each of them. `respond_from` then serves the entry for one
  query: its ID, RD/CD bits and question (so the client's case is echoed), the
  zone's spelling patched into the few uncompressed places, its OPT, and the
  records cut to the transport's size with TC set (miekg's Msg.Truncate).
  `fast_response` does so straight from the packet bytes; anything unusual
  returns None and takes the slow path (svcnet.dns.resolver).
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

from svcnet.dns import names
from svcnet.dns.answers import Result
from svcnet.dns.wire import (
    BUFSIZE_DEFAULT,
    MAX_TCP,
    MIN_UDP,
    Query,
    cut_reply,
    opt_record,
    parse_opt,
    question_of,
    render_whole,
    size_limit,
)


@dataclass(eq=False)
class TableEntry:
    """A precomputed response: header flag/count variants, the bytes after the question, record ends.

    `stat` is (qtype << 8) | rcode, the metrics key of a hit; `live` turns False when the
    table drops the entry, which retires every remembered packet reply made from it.
    `patches` are the offsets in body where the zone is spelled out (SRV targets, which
    are never compressed); they hold `zone_wire` (lowercase) and get the query's spelling.
    """

    headers: tuple[bytes, ...]  # 8 variants: index = RD | CD<<1 | has_opt<<2; each flags+counts (10 bytes)
    body: bytes
    rcode: int
    qtype: int
    tags: frozenset[str]
    negative: bool
    ends: tuple[int, ...] = ()  # offset in body just after each record
    counts: tuple[int, int, int] = (0, 0, 0)
    zone_wire: bytes = b""
    patches: tuple[int, ...] = ()
    stat: int = 0
    live: bool = True


def make_entry(result: Result, qname_wire: bytes, qtype: int, qclass: int) -> TableEntry:
    """The entry for result, an answer built for the question qname_wire spelled in capitals.

    Rendered with case-exact compression (miekg's is case-sensitive too), so only names
    spelled exactly as the capitalised question, that is the owners and the zone part
    of names under the zone, point into it; see the module docstring.
    """
    rendered = render_whole(result, qname_wire, qtype, qclass, exact_case=True)
    body = rendered.body
    zone_wire = names.to_wire(result.zone) if result.zone else b""
    patches: list[int] = []
    spelled = zone_wire.upper()
    if spelled != zone_wire:
        at = body.find(spelled)
        while at >= 0:
            patches.append(at)
            at = body.find(spelled, at + len(spelled))
        body = body.replace(spelled, zone_wire)
    flags, qd, an, ns, ar = struct.unpack_from("!HHHHH", rendered.wire, 2)
    headers = []
    for index in range(8):
        f = flags | (0x0100 if index & 1 else 0) | (0x0010 if index & 2 else 0)
        headers.append(struct.pack("!HHHHH", f, qd, an, ns, ar + (1 if index & 4 else 0)))
    return TableEntry(headers=tuple(headers), body=body, rcode=result.rcode, qtype=qtype, tags=result.tags,
                      negative=not result.answer, ends=rendered.ends,
                      counts=rendered.counts, zone_wire=zone_wire, patches=tuple(patches),
                      stat=stat_key(qtype, result.rcode))


def respond_from(entry: TableEntry, qid: bytes, variant: int, question: bytes, opt: bytes, limit: int) -> bytes:
    """entry as the reply to one query: its ID (2 bytes), RD/CD/OPT variant, question as sent and OPT.

    Cut to limit as miekg's Msg.Truncate cuts (wire.cut_reply), TC set when cut.
    """
    body = entry.body
    if entry.patches:
        zone = question[len(question) - 4 - len(entry.zone_wire):len(question) - 4]
        if zone != entry.zone_wire:
            body = _spelled(body, entry.patches, zone)
    if 12 + len(question) + len(body) + len(opt) <= limit:
        return qid + entry.headers[variant] + question + body + opt
    return cut_reply(qid, struct.unpack_from("!H", entry.headers[variant])[0], question, body, entry.ends,
                     entry.counts, opt, limit)


def entry_reply(entry: TableEntry, query: Query, tcp: bool) -> bytes:
    """respond_from for a parsed query (the slow path, and zone answers kept out of the table)."""
    opt = opt_record(query.edns)
    variant = (1 if query.flags & 0x0100 else 0) | (2 if query.flags & 0x0010 else 0) | (4 if opt else 0)
    reply = respond_from(entry, struct.pack("!H", query.id), variant, question_of(query), opt,
                         size_limit(query.edns, tcp))
    if query.opcode:  # NOTIFY: the reply keeps the opcode (SetReply)
        reply = reply[:2] + bytes([reply[2] | (query.opcode << 3)]) + reply[3:]
    return reply


def _spelled(body: bytes, patches: tuple[int, ...], zone: bytes) -> bytes:
    out = bytearray(body)
    for at in patches:
        out[at:at + len(zone)] = zone
    return bytes(out)


def stat_key(qtype: int, rcode: int) -> int:
    """The metrics key of an answer: one small int, cheap to count per packet."""
    return (qtype << 8) | (rcode & 0xFF)


@dataclass
class AnswerTable:
    """Question key -> TableEntry, with invalidation by dependency tag; UDP packet -> reply memo."""

    max_negative: int = 100_000  # random-name floods must not grow memory without bound
    max_packets: int = 32_768  # distinct UDP query packets remembered (cleared whole when full)
    bufsize: int = BUFSIZE_DEFAULT  # cap on the EDNS UDP size a reply may use (CoreDNS's bufsize plugin)
    entries: dict[bytes, TableEntry] = field(default_factory=dict)
    by_tag: dict[str, set[bytes]] = field(default_factory=dict)
    negative_keys: set[bytes] = field(default_factory=set)
    # packet bytes after the ID -> (reply bytes after the ID, the entry it was made from)
    packets: dict[bytes, tuple[bytes, TableEntry]] = field(default_factory=dict)

    def get(self, key: bytes) -> TableEntry | None:
        return self.entries.get(key)

    def store(self, query: Query, result: Result) -> TableEntry:
        """Keep the answer to query's question (built for it spelled in capitals) under the lowercased question."""
        assert query.qname_wire is not None
        entry = make_entry(result, query.qname_wire.upper(), query.qtype, query.qclass)
        self.put(query.qname_wire.lower() + struct.pack("!HH", query.qtype, query.qclass), entry)
        return entry

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
        if size > table.bufsize:  # the bufsize plugin's clamp: the reply's OPT carries it too
            size = table.bufsize
        opt = (b"\x00\x00\x29" + size.to_bytes(2, "big") + (b"\x00\x00\x80\x00" if do else b"\x00\x00\x00\x00")
               + len(options).to_bytes(2, "big") + options)
        limit = MAX_TCP if tcp else max(MIN_UDP, size)
        variant |= 4
    else:
        return None
    body = entry.body
    if not entry.patches and qend + len(body) + len(opt) <= limit:  # the common case, respond_from inlined
        return data[:2] + entry.headers[variant] + data[12:qend] + body + opt, entry
    return respond_from(entry, data[:2], variant, data[12:qend], opt, limit), entry


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
