"""DNS messages as bytes: query parsing with miekg/dns's rules, response building, the answer table.

No sockets here. Three parts:

- `parse_query(data)` reads a query the way miekg/dns (under CoreDNS) accepts or
  rejects it: a response packet is dropped, an opcode other than QUERY/NOTIFY
  gets NOTIMP, wrong section counts or a message that does not unpack get
  FORMERR, EDNS version > 0 gets BADVERS.
- `render(...)` builds a response from an answers.Result with dnspython, applying
  the client's EDNS OPT (echoed as CoreDNS's SizeAndDo does) and CoreDNS's
  truncation (whole records, answer section first, TC set when anything was
  left out).
- `AnswerTable` holds precomputed responses keyed by the question's wire bytes
  (name lowercased, type, class). `fast_response` serves a hit by patching the
  ID, the RD/CD bits and the question (so the client's case is echoed: answer
  owner names are compression pointers into the question) and appending the
  client's OPT. Anything unusual returns None and takes the slow path.
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

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset

from svcnet.dns.answers import RR, Result

MIN_UDP = 512
MAX_TCP = 65535
OPT_TYPE = 41
# EDNS options CoreDNS echoes back (request.supportedOptions): NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING.
ECHOED_OPTIONS = frozenset({3, 9, 10, 11, 12})
MAX_POINTERS = 126


class Drop(Exception):
    """Send nothing back (a response packet, or garbage too short to have a header)."""


# ------------------------------------------------------------------ query parse

@dataclass(frozen=True)
class Edns:
    udp_size: int
    version: int
    do: bool
    options: bytes  # the echoed options, already filtered, as wire bytes


@dataclass(frozen=True)
class Query:
    id: int
    flags: int  # the 16-bit flags word as sent
    qname_wire: bytes | None  # uncompressed, as spelled; None when the question section is empty
    qname: str  # text, as spelled ("" when no question)
    qtype: int
    qclass: int
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


@dataclass(frozen=True)
class Rejected:
    """A query miekg/dns answers with an error straight from the header (FORMERR, NOTIMP, BADVERS)."""

    response: bytes
    rcode: int


def _read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """Labels of the name at offset (pointers followed) and the offset after it; ValueError if bad."""
    labels: list[bytes] = []
    end = -1
    pointers = 0
    total = 1
    while True:
        if offset >= len(data):
            raise ValueError("name runs past the message")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if offset + 1 >= len(data):
                raise ValueError("truncated pointer")
            pointers += 1
            if pointers > MAX_POINTERS:
                raise ValueError("too many compression pointers")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if kind:
            raise ValueError("unsupported label type")
        label = data[offset + 1: offset + 1 + length]
        if len(label) != length:
            raise ValueError("label runs past the message")
        total += length + 1
        if total > 255:
            raise ValueError("name longer than 255 octets")
        labels.append(label)
        offset += 1 + length
    return labels, (end if end >= 0 else offset)


def _name_text(labels: list[bytes]) -> str:
    if not labels:
        return "."
    return dns.name.Name([*labels, b""]).to_text()


def _header_reply(data: bytes, rcode: int, keep_opcode: bool) -> bytes:
    """miekg's reject reply: the request header with QR set, AA and Z cleared, counts zero."""
    qid, flags = struct.unpack_from("!HH", data)
    opcode = (flags >> 11) & 0xF if keep_opcode else 0
    flags = (flags & ~(0xF << 11) & ~0x0400 & ~0x0040 & ~0xF) | 0x8000 | (opcode << 11) | rcode
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def parse_query(data: bytes) -> Query | Rejected:
    """Read a query, or say how miekg/dns would reject it. Raises Drop for no reply."""
    if len(data) < 12:
        raise Drop("shorter than a header")
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    if flags & 0x8000:
        raise Drop("a response")
    opcode = (flags >> 11) & 0xF
    if opcode not in (0, 4):
        return Rejected(_header_reply(data, 4, keep_opcode=True), 4)
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        return Rejected(_header_reply(data, 1, keep_opcode=False), 1)
    if len(data) == 12:
        # miekg accepts a bare header (no sections at all); CoreDNS answers SERVFAIL to it.
        return Query(qid, flags, None, "", 0, 0, None)
    try:
        labels, offset = _read_name(data, 12)
        if offset + 4 > len(data):
            raise ValueError("question runs past the message")
        qtype, qclass = struct.unpack_from("!HH", data, offset)
        offset += 4
    except ValueError:
        return Rejected(_header_reply(data, 1, keep_opcode=False), 1)
    qname_wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    edns: Edns | None = None
    try:
        for index in range(an + ns + ar):
            _, offset = _read_name(data, offset)
            if offset + 10 > len(data):
                raise ValueError("record header runs past the message")
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, offset)
            offset += 10
            if offset + rdlen > len(data):
                raise ValueError("rdata runs past the message")
            rdata = data[offset: offset + rdlen]
            if rtype == OPT_TYPE and index >= an + ns:
                edns = _parse_opt(rclass, ttl, rdata)
            else:
                dns.rdata.from_wire(rclass, rtype, data, offset, rdlen)
            offset += rdlen
    except (ValueError, dns.exception.DNSException, struct.error):
        reply = bytearray(_header_reply(data, 1, keep_opcode=False))
        reply[4:6] = b"\x00\x01"  # miekg keeps the question it managed to read
        return Rejected(bytes(reply) + qname_wire + struct.pack("!HH", qtype, qclass), 1)
    if edns is not None and edns.version != 0:
        return Rejected(badvers_response(qid, flags), 16)
    return Query(qid, flags, qname_wire, _name_text(labels), qtype, qclass, edns)


def _parse_opt(udp_size: int, ttl: int, rdata: bytes) -> Edns:
    options = bytearray()
    offset = 0
    while offset < len(rdata):
        if offset + 4 > len(rdata):
            raise ValueError("truncated EDNS option")
        code, length = struct.unpack_from("!HH", rdata, offset)
        if offset + 4 + length > len(rdata):
            raise ValueError("EDNS option runs past the record")
        # A malformed COOKIE (RFC 7873: 8, or 16-40 octets) is not echoed: the reply must parse.
        if code in ECHOED_OPTIONS and (code != 10 or length == 8 or 16 <= length <= 40):
            options += rdata[offset: offset + 4 + length]
        offset += 4 + length
    return Edns(udp_size=udp_size, version=(ttl >> 16) & 0xFF, do=bool(ttl & 0x8000),
                options=bytes(options))


def badvers_response(qid: int, flags: int) -> bytes:
    """CoreDNS edns.Version: no question, rcode BADVERS (16) carried in an OPT of version 0."""
    out_flags = 0x8000 | (flags & 0x0100) | (flags & 0x0010)
    header = struct.pack("!HHHHHH", qid, out_flags, 0, 0, 0, 1)
    return header + b"\x00" + struct.pack("!HHIH", OPT_TYPE, 0, 1 << 24, 0)


def opt_record(edns: Edns | None) -> bytes:
    """The OPT RR CoreDNS adds to a reply: the client's size, version 0, DO echoed, supported options."""
    if edns is None:
        return b""
    return b"\x00" + struct.pack("!HHIH", OPT_TYPE, edns.udp_size, 0x8000 if edns.do else 0,
                                 len(edns.options)) + edns.options


def size_limit(edns: Edns | None, tcp: bool) -> int:
    if tcp:
        return MAX_TCP
    return max(MIN_UDP, edns.udp_size) if edns is not None else MIN_UDP


def simple_reply(query: Query, rcode: int, *, authoritative: bool = False, ra: bool = False) -> bytes:
    """SetRcode(request, rcode) + SizeAndDo: the question echoed, no records."""
    flags = 0x8000 | (query.opcode << 11) | (query.flags & 0x0100) | (query.flags & 0x0010) | rcode
    if authoritative:
        flags |= 0x0400
    if ra:
        flags |= 0x0080
    opt = opt_record(query.edns)
    qd = b""
    if query.qname_wire is not None:
        qd = query.qname_wire + struct.pack("!HH", query.qtype, query.qclass)
    header = struct.pack("!HHHHHH", query.id, flags, 1 if qd else 0, 0, 0, 1 if opt else 0)
    return header + qd + opt


# ------------------------------------------------------------------- rendering

def _rrsets(records: Iterable[RR]) -> list[dns.rrset.RRset]:
    """One RRset per record, so section order is exactly the answer builder's."""
    out = []
    for rr in records:
        out.append(dns.rrset.from_text(rr.name, rr.ttl, "IN", rr.type, rr.rdata))
    return out


def render(result: Result, qname_wire: bytes, qtype: int, qclass: int, *, qid: int = 0,
           request_flags: int = 0, edns: Edns | None = None, limit: int = MAX_TCP,
           ra: bool = False) -> bytes:
    """A full response for result, cut to limit the way miekg's Msg.Truncate does."""
    flags = 0x8000 | (request_flags & 0x7800) | (request_flags & 0x0100) | (request_flags & 0x0010)
    if result.authoritative:
        flags |= 0x0400
    if ra:
        flags |= 0x0080
    opt = opt_record(edns)
    renderer = dns.renderer.Renderer(qid, flags, max(limit - len(opt), 12))
    labels, _ = _read_name(qname_wire, 0)
    qname = dns.name.Name([*labels, b""])
    truncated = False
    try:
        renderer.add_question(qname, qtype, qclass)
    except dns.exception.TooBig:
        truncated = True
    sections = ((dns.renderer.ANSWER, result.answer), (dns.renderer.AUTHORITY, result.authority),
                (dns.renderer.ADDITIONAL, result.additional))
    for section, records in sections:
        for rrset in _rrsets(records):
            if truncated:
                break
            try:
                renderer.add_rrset(section, rrset)
            except dns.exception.TooBig:
                truncated = True
        if truncated:
            # miekg keeps filling later sections while room is left, but once one record did not
            # fit a later, usually larger, one will not either; stopping keeps order simple.
            break
    if truncated:
        renderer.flags |= 0x0200
    renderer.flags = (renderer.flags & ~0xF) | (result.rcode & 0xF)
    renderer.write_header()
    wire = bytearray(renderer.get_wire())
    if opt:
        wire[10:12] = struct.pack("!H", struct.unpack_from("!H", wire, 10)[0] + 1)
        wire += opt
    return bytes(wire)


# ---------------------------------------------------------------- answer table

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
    wire = render(result, qname_wire_lower, qtype, qclass, ra=ra)
    question_end = 12 + len(qname_wire_lower) + 4
    flags, qd, an, ns, ar = struct.unpack_from("!HHHHH", wire, 2)
    headers = []
    for index in range(8):
        f = flags | (0x0100 if index & 1 else 0) | (0x0010 if index & 2 else 0)
        headers.append(struct.pack("!HHHHH", f, qd, an, ns, ar + (1 if index & 4 else 0)))
    return TableEntry(headers=tuple(headers), body=wire[question_end:], rcode=result.rcode, qtype=qtype,
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


def question_key(data: bytes) -> tuple[bytes, int] | None:
    """(key, offset after the question) of a plain query's question, or None.

    The key is the name's wire bytes lowercased plus type and class. bytes.lower()
    only touches A-Z; a length octet is at most 63, below 'A', so lowering the whole
    name is safe. The first zero octet ends the name: every table key is a
    hostname-shaped name with no zero inside, so a hit proves the split was right.
    """
    end = data.find(0, 12)
    if end < 0 or end + 5 > len(data):
        return None
    return data[12:end + 1].lower() + data[end + 1:end + 5], end + 5


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
                options = _parse_opt(size, 0, data[qend + 11:]).options
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
