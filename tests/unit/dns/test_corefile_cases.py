"""The CoreDNS case table (cases.py) answered by the resolver a Corefile builds: kubeadm's default Corefile
gives today's behaviour.

kubeadm's Corefile says `ttl 30` where the table (CoreDNS's own default, and svcnet's --ttl) has 5: the
kubeadm run expects every 5-second TTL of the cluster zone (records, the SOA's TTL and minimum) as 30, and
a second run, the same Corefile without the `ttl` line, expects the table exactly. The case's pod mode
replaces kubeadm's `pods insecure`. The forwarder is configured (`forward . /etc/resolv.conf`) but no case
reaches an upstream: ExternalName targets outside the zone find it failing, as the table expects.
"""
from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import pytest

from svcnet.dns.chain import Router, build_router
from svcnet.dns.metrics import Metrics
from svcnet.dns.plugins import load
from svcnet.dns.resolver import Reply
from svcnet.dns.zone import ZoneData, zone_from_objects
from tests.unit.dns.cases import CASES, LOCAL_IP, Case
from tests.unit.dns.helpers import CLASSES, RCODES, cluster_objects, normalize
from tests.unit.dns.test_answers import lines
from tests.unit.dns.test_corefile import KUBEADM

WITHOUT_TTL = KUBEADM.replace("       ttl 30\n", "")


@pytest.fixture(scope="module")
def data() -> ZoneData:
    return zone_from_objects(cluster_objects(), serial=1_700_000_000)


def router_for(text: str, pods: str, data: ZoneData) -> Router:
    config = load(text.replace("pods insecure", f"pods {pods}"), read_file=lambda _: "nameserver 192.0.2.53\n")
    router = build_router(list(config.servers), data, Metrics(), local_ips=(LOCAL_IP,), own=("127.0.0.1", 53),
                          hosts_text=lambda _: "")
    for block in router.blocks:
        assert block.forwarder is not None

        async def failing_upstream(name: str, qtype: int) -> None:
            return None
        block.forwarder.lookup = failing_upstream  # type: ignore[method-assign]
    return router


def with_ttl(records: tuple[str, ...], ttl: str) -> list[tuple[str, ...]]:
    """The table's records with the cluster zone's TTL (5) as ttl: record TTLs and the SOA minimum."""
    out = []
    for owner, old, rtype, rdata in normalize(records):
        if rtype == "SOA":
            fields = rdata.split()
            fields[-1] = ttl if fields[-1] == "5" else fields[-1]
            rdata = " ".join(fields)
        out.append((owner, ttl if old == "5" else old, rtype, rdata))
    return sorted(out)


def ask(router: Router, wire: bytes, tcp: bool) -> dns.message.Message:
    reply = router.respond(wire, tcp)
    if not isinstance(reply, Reply):
        reply = asyncio.run(reply)  # type: ignore[arg-type]
    assert reply.data is not None
    return dns.message.from_wire(reply.data)


@pytest.mark.parametrize("text,ttl", [(KUBEADM, "30"), (WITHOUT_TTL, "5")], ids=["kubeadm", "kubeadm-without-ttl"])
@pytest.mark.parametrize("case", [c for c in CASES if c.qclass == "IN"], ids=lambda c: c.id)
def test_corefile_resolver_matches_the_table(case: Case, text: str, ttl: str, data: ZoneData) -> None:
    router = router_for(text, case.pods, data)
    query = dns.message.make_query(case.qname, case.qtype, rdclass=CLASSES[case.qclass], use_edns=0)
    for tcp in (False, True, False):  # slow path, then table hits
        got = ask(router, query.to_wire(), tcp)
        assert RCODES[got.rcode()] == case.rcode, case.why
        assert bool(got.flags & dns.flags.AA) == (case.rcode != "REFUSED"), case.why
        assert got.question[0].name.to_text() == case.qname
        assert normalize(lines(got.answer)) == with_ttl(case.answer, ttl), case.why
        assert normalize(lines(got.authority)) == with_ttl(case.authority, ttl), case.why
        assert normalize(lines(got.additional)) == with_ttl(case.additional, ttl), case.why


@pytest.mark.parametrize("case", [c for c in CASES if c.qclass != "IN"], ids=lambda c: c.id)
def test_other_classes_are_refused_by_a_corefile_without_forward(case: Case, data: ZoneData) -> None:
    """CoreDNS blocks non-IN classes unless a plugin such as forward is loaded (the table's cases)."""
    text = KUBEADM.replace("forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n", "")
    config = load(text, read_file=lambda _: "")
    router = build_router(list(config.servers), data, Metrics(), local_ips=(LOCAL_IP,), own=("127.0.0.1", 53),
                          hosts_text=lambda _: "")
    query = dns.message.make_query(case.qname, case.qtype, rdclass=CLASSES[case.qclass], use_edns=0)
    assert RCODES[ask(router, query.to_wire(), False).rcode()] == case.rcode
