"""The CoreDNS answer table (cases.py) against the pure answer builder, and bytes in/out through the Resolver."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.rrset
import pytest

from svcnet.dns import answers
from svcnet.dns.answers import Settings, answer
from svcnet.dns.resolver import Reply, Resolver
from svcnet.dns.zone import ZoneData, zone_from_objects
from tests.unit.dns.cases import CASES, LOCAL_IP, SOA, Case
from tests.unit.dns.helpers import CLASSES, QTYPES, RCODES, cluster_objects, normalize


@pytest.fixture(scope="module")
def data() -> ZoneData:
    return zone_from_objects(cluster_objects(), serial=1_700_000_000)


@pytest.mark.parametrize("case", [c for c in CASES if c.qclass == "IN"], ids=lambda c: c.id)
def test_answer_matches_coredns(case: Case, data: ZoneData) -> None:
    settings = Settings(local_ips=(LOCAL_IP,), pods=case.pods)
    result = answer(data, settings, case.qname, QTYPES[case.qtype])
    assert not result.fallthrough
    assert RCODES[result.rcode] == case.rcode, case.why
    assert normalize(map(str, result.answer)) == normalize(case.answer), case.why
    assert normalize(map(str, result.authority)) == normalize(case.authority), case.why
    assert normalize(map(str, result.additional)) == normalize(case.additional), case.why
    assert result.authoritative == (case.rcode != "REFUSED")


def lines(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_resolver_reply_matches_coredns(case: Case, tcp: bool, data: ZoneData) -> None:
    """The whole path a packet takes (parse, decide, table, rendering), twice: slow path, then table hit."""
    resolver = Resolver(Settings(local_ips=(LOCAL_IP,), pods=case.pods), data)
    query = dns.message.make_query(case.qname, case.qtype, rdclass=CLASSES[case.qclass], use_edns=0)
    for _ in range(2):
        reply = resolver.respond(query.to_wire(), tcp)
        assert isinstance(reply, Reply) and reply.data is not None
        got = dns.message.from_wire(reply.data)
        assert RCODES[got.rcode()] == case.rcode, case.why
        assert bool(got.flags & dns.flags.AA) == (case.rcode != "REFUSED"), case.why
        assert got.question[0].name.to_text() == case.qname
        assert normalize(lines(got.answer)) == normalize(case.answer), case.why
        assert normalize(lines(got.authority)) == normalize(case.authority), case.why
        assert normalize(lines(got.additional)) == normalize(case.additional), case.why


def test_table_has_at_least_80_cases() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize("qname,qtype", [
    ("9.9.9.9.in-addr.arpa.", "PTR"),
    ("24.1.244.10.in-addr.arpa.", "PTR"),  # a not-ready endpoint has no PTR
    ("1.0.96.10.in-addr.arpa.", "A"),
    ("10.in-addr.arpa.", "PTR"),
    ("example.org.", "A"),
])
def test_names_the_cluster_does_not_own_fall_through_to_the_forwarder(
        qname: str, qtype: str, data: ZoneData) -> None:
    assert answer(data, Settings(), qname, QTYPES[qtype]).fallthrough


def test_external_name_outside_the_zone_asks_for_a_chase(data: ZoneData) -> None:
    result = answer(data, Settings(), "ext.default.svc.cluster.local.", QTYPES["A"])
    assert result.chase == answers.Chase("example.org.", 1)
    assert [str(rr).split() for rr in result.answer] == [
        ["ext.default.svc.cluster.local.", "5", "IN", "CNAME", "example.org."]]


def test_chase_completed_with_upstream_records_appends_them(data: ZoneData) -> None:
    settings = Settings()
    result = answer(data, settings, "ext.default.svc.cluster.local.", 1)
    upstream = (answers.RR("example.org.", 300, "A", "93.184.215.14"),)
    done = answers.complete_chase(result, upstream, settings, 1, "ext.default.svc.cluster.local.")
    assert [rr.type for rr in done.answer] == ["CNAME", "A"] and done.chase is None


def test_chase_that_fails_upstream_leaves_nodata(data: ZoneData) -> None:
    settings = Settings()
    result = answer(data, settings, "ext.default.svc.cluster.local.", 1)
    done = answers.complete_chase(result, None, settings, 1, "ext.default.svc.cluster.local.")
    assert done.answer == () and done.rcode == 0 and done.authority[0].type == "SOA"


def test_before_first_sync_name_errors_are_servfail_not_nxdomain() -> None:
    data = ZoneData()
    result = answer(data, Settings(), "hostnames.default.svc.cluster.local.", 1)
    assert RCODES[result.rcode] == "SERVFAIL"
    assert [rr.type for rr in result.authority] == ["SOA"]


def test_ttl_is_configurable_and_reaches_the_soa_minimum(data: ZoneData) -> None:
    settings = Settings(ttl=30)
    result = answer(data, settings, "kubernetes.default.svc.cluster.local.", 1)
    assert result.answer[0].ttl == 30
    missing = answer(data, settings, "nope.default.svc.cluster.local.", 1)
    assert missing.authority[0].rdata.endswith(" 30") and missing.authority[0].ttl == 30


def test_several_zones_answer_alike_and_ptr_names_use_the_first(data: ZoneData) -> None:
    settings = Settings(zones=("cluster.local.", "example.internal."))
    other = answer(data, settings, "kubernetes.default.svc.example.internal.", 1)
    assert [rr.rdata for rr in other.answer] == ["10.96.0.1"]
    reverse = answer(data, settings, "1.0.96.10.in-addr.arpa.", 12)
    assert reverse.answer[0].rdata == "kubernetes.default.svc.cluster.local."


def test_soa_constant_matches_answer_shape() -> None:
    assert SOA.startswith("cluster.local. 5 IN SOA ns.dns.cluster.local.")
