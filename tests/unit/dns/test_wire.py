"""Bytes in, bytes out: miekg/dns's accept rules, the table's patching, truncation, EDNS echo."""
from __future__ import annotations

import struct

import dns.flags
import dns.message
import pytest

from svcnet.dns.answers import Settings
from svcnet.dns.resolver import Reply, Resolver
from svcnet.dns.wire import Drop, Rejected, parse_query
from svcnet.dns.zone import zone_from_objects
from tests.unit.dns.helpers import cluster_objects


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver(Settings(local_ips=("10.244.0.5",)), zone_from_objects(cluster_objects()))


def ask(resolver: Resolver, wire: bytes, tcp: bool = False) -> dns.message.Message | None:
    reply = resolver.respond(wire, tcp)
    assert isinstance(reply, Reply)
    return None if reply.data is None else dns.message.from_wire(reply.data)


def make(name: str, qtype: str = "A", **kw) -> dns.message.Message:
    return dns.message.make_query(name, qtype, **kw)


def test_table_hit_patches_id_and_echoes_the_query_case(resolver: Resolver) -> None:
    first = make("kubernetes.default.svc.cluster.local.", use_edns=False)
    ask(resolver, first.to_wire())
    second = make("KuBeRnEtEs.default.svc.cluster.local.", use_edns=False)
    second.id = 4242
    reply = ask(resolver, second.to_wire())
    assert reply is not None and reply.id == 4242
    assert reply.question[0].name.to_text() == "KuBeRnEtEs.default.svc.cluster.local."
    assert reply.answer[0].name.to_text() == "KuBeRnEtEs.default.svc.cluster.local."
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD and not reply.flags & dns.flags.RA


def test_rd_and_cd_are_copied_from_the_query(resolver: Resolver) -> None:
    query = make("kubernetes.default.svc.cluster.local.", use_edns=False)
    query.flags = dns.flags.CD
    reply = ask(resolver, query.to_wire())
    assert reply is not None and reply.flags & dns.flags.CD and not reply.flags & dns.flags.RD


def test_edns_is_echoed_with_the_clients_size_and_do_bit(resolver: Resolver) -> None:
    query = make("kubernetes.default.svc.cluster.local.", use_edns=0, payload=1000, want_dnssec=True)
    reply = ask(resolver, query.to_wire())
    assert reply is not None and reply.edns == 0 and reply.payload == 1000 and reply.ednsflags & dns.flags.DO


def test_edns_size_above_bufsize_is_echoed_clamped(resolver: Resolver) -> None:
    query = make("kubernetes.default.svc.cluster.local.", use_edns=0, payload=4000)
    reply = ask(resolver, query.to_wire())
    assert reply is not None and reply.payload == 1232  # CoreDNS's bufsize plugin rewrites the request's OPT


def test_udp_answer_over_512_bytes_is_truncated_with_tc(resolver: Resolver) -> None:
    query = make("big.default.svc.cluster.local.", use_edns=False)
    reply = ask(resolver, query.to_wire())
    assert reply is not None and reply.flags & dns.flags.TC and 0 < len(reply.answer[0]) < 60
    full = ask(resolver, query.to_wire(), tcp=True)
    assert full is not None and not full.flags & dns.flags.TC and len(full.answer[0]) == 60


def test_response_packets_are_never_answered() -> None:
    query = make("kubernetes.default.svc.cluster.local.")
    query.flags |= dns.flags.QR
    with pytest.raises(Drop):
        parse_query(query.to_wire())


def test_short_packets_are_dropped() -> None:
    with pytest.raises(Drop):
        parse_query(b"\x00\x01\x00")


@pytest.mark.parametrize("opcode,rcode", [(2, 4), (5, 4)])  # STATUS, UPDATE -> NOTIMP
def test_unsupported_opcodes_get_notimp_keeping_the_opcode(opcode: int, rcode: int) -> None:
    wire = bytearray(make("x.cluster.local.").to_wire())
    wire[2] = (wire[2] & 0x87) | (opcode << 3)
    got = parse_query(bytes(wire))
    assert isinstance(got, Rejected) and got.rcode == rcode
    assert (got.response[2] >> 3) & 0xF == opcode and got.response[3] & 0xF == rcode


@pytest.mark.parametrize("counts", [(0, 0, 0, 0), (2, 0, 0, 0), (1, 2, 0, 0), (1, 0, 2, 0), (1, 0, 0, 3)])
def test_wrong_section_counts_get_formerr(counts: tuple[int, int, int, int]) -> None:
    wire = bytearray(make("x.cluster.local.", use_edns=False).to_wire())
    struct.pack_into("!HHHH", wire, 4, *counts)
    got = parse_query(bytes(wire))
    assert isinstance(got, Rejected) and got.rcode == 1 and got.response[:2] == bytes(wire[:2])


def test_edns_version_above_zero_gets_badvers(resolver: Resolver) -> None:
    query = make("kubernetes.default.svc.cluster.local.", use_edns=1)
    reply = ask(resolver, query.to_wire())
    assert reply is not None and reply.rcode() == 16 and not reply.question


def test_header_only_message_is_servfail(resolver: Resolver) -> None:
    wire = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    reply = ask(resolver, wire)
    assert reply is not None and reply.rcode() == 2 and reply.id == 7


def test_names_outside_the_zone_without_upstreams_are_refused(resolver: Resolver) -> None:
    reply = ask(resolver, make("example.org.").to_wire())
    assert reply is not None and reply.rcode() == 5


def test_zone_change_drops_only_dependent_answers(resolver: Resolver) -> None:
    ask(resolver, make("kubernetes.default.svc.cluster.local.").to_wire())
    ask(resolver, make("dual.default.svc.cluster.local.").to_wire())
    keys_before = set(resolver.table.entries)
    resolver.zone_changed({"svc:dual.default"})
    gone = keys_before - set(resolver.table.entries)
    assert any(b"dual" in key for key in gone) and not any(b"kubernetes" in key for key in gone)


def test_one_table_entry_echoes_each_queries_zone_spelling_in_srv_targets(resolver: Resolver) -> None:
    spellings = ["_http._tcp.web.default.svc.cluster.local.", "_HtTp._TcP.Web.Default.svc.Cluster.Local.",
                 "_http._tcp.web.default.svc.CLUSTER.local.", "_http._tcp.web.default.svc.cluster.local."]
    for name in spellings:
        reply = ask(resolver, make(name, "SRV").to_wire())
        assert reply is not None
        zone = name[-len("cluster.local."):]
        assert {rr.target.to_text() for rr in reply.answer[0]} == {
            f"{label}.web.default.svc.{zone}" for label in ("web-0", "web-1", "10-244-2-13")}
        assert {rrset.name.to_text() for rrset in reply.additional} == {
            f"{label}.web.default.svc.{zone}" for label in ("web-0", "web-1", "10-244-2-13")}
    assert sum(1 for key in resolver.table.entries if key.startswith(b"\x05_http\x04_tcp\x03web")) == 1


class OpenUpstream:
    """A forwarder that is configured but never asked (the questions here are in the zone)."""

    def handles(self, qname: str) -> bool:
        return True

    def is_probe(self, qname: str) -> bool:
        return False


def test_other_classes_are_refused_without_upstreams_and_answered_with_them() -> None:
    data = zone_from_objects(cluster_objects())
    query = make("kubernetes.default.svc.cluster.local.", rdclass=3)  # CH
    closed = ask(Resolver(Settings(), data), query.to_wire())
    assert closed is not None and closed.rcode() == 5 and not closed.answer and not closed.flags & dns.flags.AA
    # CoreDNS's server.go opens non-IN classes when the forward plugin is loaded; the zone then answers
    opened = ask(Resolver(Settings(), data, OpenUpstream()), query.to_wire())  # type: ignore[arg-type]
    assert opened is not None and opened.rcode() == 0 and opened.answer[0][0].address == "10.96.0.1"


def test_class_is_checked_before_the_edns_version(resolver: Resolver) -> None:
    query = make("kubernetes.default.svc.cluster.local.", rdclass=3, use_edns=1)
    reply = ask(resolver, query.to_wire())
    assert reply is not None and reply.rcode() == 5
