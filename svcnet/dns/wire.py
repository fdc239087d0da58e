"""DNS messages as bytes: queries parsed with miekg/dns's rules, responses built with dnspython.

No sockets and no decisions here (svcnet.dns.resolver decides, svcnet.dns.table
keeps rendered answers). Three parts:

- `parse_query(data, bufsize)` reads a query the way miekg/dns (under CoreDNS)
  accepts or rejects it: a response packet is dropped, an opcode other than
  QUERY/NOTIFY gets NOTIMP, wrong section counts or a message that does not
  unpack get FORMERR; the EDNS UDP size is clamped to bufsize (CoreDNS's
  bufsize plugin).
- `render_whole(...)` renders every record of an answers.Result once with
  dnspython and notes where each record ends; `cut_reply` cuts that to what one
  query's transport allows, as miekg's Msg.Truncate does (whole records in
  order, nothing after the first that does not fit, TC set when anything was
  left out), with the client's ID, question and OPT (echoed as CoreDNS's
  SizeAndDo does). `reply_for(query, result, tcp)` does both for a parsed
  query and `simple_reply` answers with a bare rcode.
- Upstream messages for the forwarder: `upstream_query` builds the question it
  sends, `result_from_wire` reads an upstream's answer back into a Result.
"""
from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset

from svcnet.dns import names
from svcnet.dns.answers import RR, Result

MIN_UDP = 512
MAX_TCP = 65535
OPT_TYPE = 41
# EDNS options CoreDNS echoes back (request.supportedOptions): NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING.
ECHOED_OPTIONS = frozenset({3, 9, 10, 11, 12})
MAX_POINTERS = 126
UPSTREAM_UDP_SIZE = 1232  # the EDNS size the forwarder offers upstreams
# CoreDNS plugin/bufsize (setup.go parse): default 1232 from DNS Flag Day 2020; a size is accepted
# from 512 to 4096 (RFC 6891).
BUFSIZE_DEFAULT = 1232
BUFSIZE_MIN, BUFSIZE_MAX = 512, 4096


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


def _header_reply(data: bytes, rcode: int, keep_opcode: bool) -> bytes:
    """miekg's reject reply: the request header with QR set, AA and Z cleared, counts zero."""
    qid, flags = struct.unpack_from("!HH", data)
    opcode = (flags >> 11) & 0xF if keep_opcode else 0
    flags = (flags & ~(0xF << 11) & ~0x0400 & ~0x0040 & ~0xF) | 0x8000 | (opcode << 11) | rcode
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def parse_query(data: bytes, bufsize: int = MAX_TCP) -> Query | Rejected:
    """Read a query, or say how miekg/dns would reject it. Raises Drop for no reply.

    The EDNS UDP size is clamped to bufsize, as CoreDNS's bufsize plugin (bufsize.go ServeDNS)
    rewrites the request's OPT: the reply is cut to it and its OPT carries it. An EDNS version
    above 0 is left for the resolver to answer (BADVERS comes after CoreDNS's class check).
    """
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
                edns = parse_opt(min(rclass, bufsize), ttl, rdata)
            else:
                dns.rdata.from_wire(rclass, rtype, data, offset, rdlen)
            offset += rdlen
    except (ValueError, dns.exception.DNSException, struct.error):
        reply = bytearray(_header_reply(data, 1, keep_opcode=False))
        reply[4:6] = b"\x00\x01"  # miekg keeps the question it managed to read
        return Rejected(bytes(reply) + qname_wire + struct.pack("!HH", qtype, qclass), 1)
    return Query(qid, flags, qname_wire, names.from_labels(labels), qtype, qclass, edns)


def parse_opt(udp_size: int, ttl: int, rdata: bytes) -> Edns:
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


def badvers_response(query: Query) -> bytes:
    """CoreDNS edns.Version: no question, rcode BADVERS (16) carried in an OPT of version 0."""
    out_flags = 0x8000 | (query.flags & 0x0100) | (query.flags & 0x0010)
    header = struct.pack("!HHHHHH", query.id, out_flags, 0, 0, 0, 1)
    return header + b"\x00" + struct.pack("!HHIH", OPT_TYPE, 0, 1 << 24, 0)


def opt_record(edns: Edns | None) -> bytes:
    """The OPT RR CoreDNS adds to a reply: the client's size, version 0, DO echoed, supported options."""
    if edns is None:
        return b""
    return b"\x00" + struct.pack("!HHIH", OPT_TYPE, edns.udp_size, 0x8000 if edns.do else 0,
                                 len(edns.options)) + edns.options


def size_limit(edns: Edns | None, tcp: bool) -> int:
    """How big a reply may be: 64 KiB over TCP; over UDP the client's EDNS size (at least 512), else 512.

    The EDNS size is already clamped to the server's --bufsize by parse_query, as CoreDNS's
    bufsize plugin rewrites the request's OPT before anything answers it.
    """
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

@dataclass(frozen=True)
class Rendered:
    """A response rendered whole (ID 0, no OPT), and where each of its records ends.

    Compression pointers only ever point backwards, so every prefix that ends on a
    record boundary is itself a valid message: cutting one to a size (`cut_reply`) needs
    no second rendering.
    """

    wire: bytes
    question_end: int
    ends: tuple[int, ...]  # offset just after each record, counted from question_end, in message order
    counts: tuple[int, int, int]  # answer, authority, additional

    @property
    def flags(self) -> int:
        return struct.unpack_from("!H", self.wire, 2)[0]

    @property
    def body(self) -> bytes:
        """The records: everything after the question."""
        return self.wire[self.question_end:]


class _ExactCompress(dict):
    """A compression table that matches names case-sensitively, as miekg/dns's does.

    dnspython's own table matches case-insensitively, which would let a name the answer
    spells in lowercase point into the question and so take on the client's spelling.
    """

    def get(self, name: dns.name.Name, default: int | None = None) -> int | None:  # type: ignore[override]
        return super().get(name.labels, default)

    def __setitem__(self, name: dns.name.Name, offset: int) -> None:
        super().__setitem__(name.labels, offset)


def _rrsets(records: Iterable[RR]) -> list[dns.rrset.RRset]:
    """One RRset per record, so section order is exactly the answer builder's."""
    out = []
    for rr in records:
        out.append(dns.rrset.from_text(rr.name, rr.ttl, "IN", rr.type, rr.rdata))
    return out


def render_whole(result: Result, qname_wire: bytes, qtype: int, qclass: int, *, request_flags: int = 0,
                 ra: bool = False, exact_case: bool = False) -> Rendered:
    """Every record of result that fits a TCP message (TC set when even that cannot hold them all)."""
    flags = 0x8000 | (request_flags & 0x7800) | (request_flags & 0x0100) | (request_flags & 0x0010)
    if result.authoritative:
        flags |= 0x0400
    if ra:
        flags |= 0x0080
    renderer = dns.renderer.Renderer(0, flags, MAX_TCP)
    if exact_case:
        renderer.compress = _ExactCompress()
    labels, _ = _read_name(qname_wire, 0)
    renderer.add_question(dns.name.Name([*labels, b""]), qtype, qclass)
    question_end = renderer.output.tell()
    ends: list[int] = []
    counts = [0, 0, 0]
    sections = ((dns.renderer.ANSWER, result.answer), (dns.renderer.AUTHORITY, result.authority),
                (dns.renderer.ADDITIONAL, result.additional))
    try:
        for index, (section, records) in enumerate(sections):
            for rrset in _rrsets(records):
                renderer.add_rrset(section, rrset)
                ends.append(renderer.output.tell() - question_end)
                counts[index] += 1
    except dns.exception.TooBig:
        renderer.flags |= 0x0200
    renderer.flags = (renderer.flags & ~0xF) | (result.rcode & 0xF)
    renderer.write_header()
    return Rendered(renderer.get_wire(), question_end, tuple(ends), (counts[0], counts[1], counts[2]))


def records_that_fit(ends: tuple[int, ...], counts: tuple[int, int, int], room: int) -> tuple[int, int, int, int]:
    """(bytes kept, answer, authority, additional counts) when records up to `room` bytes are kept.

    miekg/dns's Msg.Truncate (under CoreDNS's request.Scrub): whole records in message order
    while they fit, nothing after the first one that does not (truncateLoop returns the full
    size so no later, smaller record slips in). `ends` are offsets from where records start.
    """
    kept = bisect.bisect_right(ends, room)
    an, ns, _ = counts
    size = ends[kept - 1] if kept else 0
    return size, min(kept, an), min(max(kept - an, 0), ns), max(kept - an - ns, 0)


def cut_reply(qid: bytes, flags: int, question: bytes, body: bytes, ends: tuple[int, ...],
              counts: tuple[int, int, int], opt: bytes, limit: int) -> bytes:
    """A reply of limit bytes at most: ID (2 bytes), flags, question, the records that fit, OPT; TC if cut."""
    an, ns, ar = counts
    if 12 + len(question) + len(body) + len(opt) > limit:
        size, an, ns, ar = records_that_fit(ends, counts, limit - 12 - len(question) - len(opt))
        body = body[:size]
        flags |= 0x0200
    return qid + struct.pack("!HHHHH", flags, 1, an, ns, ar + (1 if opt else 0)) + question + body + opt


def reply_for(query: Query, result: Result, tcp: bool, *, ra: bool = False) -> bytes:
    """A result from elsewhere (upstreams) for a parsed query: its ID, flags, question and OPT, cut to size."""
    assert query.qname_wire is not None
    rendered = render_whole(result, query.qname_wire, query.qtype, query.qclass, request_flags=query.flags, ra=ra)
    return cut_reply(struct.pack("!H", query.id), rendered.flags, question_of(query), rendered.body, rendered.ends,
                     rendered.counts, opt_record(query.edns), size_limit(query.edns, tcp))


def question_of(query: Query) -> bytes:
    """The question section as the client sent it (its spelling)."""
    assert query.qname_wire is not None
    return query.qname_wire + struct.pack("!HH", query.qtype, query.qclass)


# --------------------------------------------------------------- upstream side

def upstream_query(qname_wire: bytes, qtype: int, qclass: int, qid: int, do: bool, rd: bool = True) -> bytes:
    """A query with EDNS (UPSTREAM_UDP_SIZE, DO as the client asked), recursive unless rd is False."""
    header = struct.pack("!HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, 1)
    opt = b"\x00" + struct.pack("!HHIH", OPT_TYPE, UPSTREAM_UDP_SIZE, 0x8000 if do else 0, 0)
    return header + qname_wire + struct.pack("!HH", qtype, qclass) + opt


def result_from_wire(data: bytes) -> tuple[Result, bool]:
    """An upstream answer -> (Result, RA flag); OPT and TSIG dropped (we add our own OPT)."""
    msg = dns.message.from_wire(data, ignore_trailing=True)

    def records(section: Iterable[dns.rrset.RRset]) -> tuple[RR, ...]:
        out = []
        for rrset in section:
            if rrset.rdclass != dns.rdataclass.IN:
                continue
            type_text = dns.rdatatype.to_text(rrset.rdtype)
            for rd in rrset:
                out.append(RR(rrset.name.to_text(), rrset.ttl, type_text, rd.to_text()))
        return tuple(out)

    result = Result(rcode=msg.rcode() & 0xF, answer=records(msg.answer), authority=records(msg.authority),
                    additional=records(msg.additional),
                    authoritative=bool(msg.flags & dns.flags.AA))
    return result, bool(msg.flags & dns.flags.RA)
