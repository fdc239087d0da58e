"""The cache plugin in front of the kubernetes plugin: CoreDNS's cache, but an entry for a cluster name is
served only while the zone data is unchanged since it was stored (svcnet's deliberate deviation, so that
a deleted Service is NXDOMAIN, and a new pod resolves, within a watch event's latency)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import dns.message
import dns.rcode
import pytest

from svcnet.dns.answers import RR, Result
from svcnet.dns.chain import Router, build_router
from svcnet.dns.metrics import Metrics
from svcnet.dns.plugins import load
from svcnet.dns.resolver import Reply
from svcnet.dns.zone import ZoneData, zone_from_objects
from tests.unit.dns.test_corefile import KUBEADM

# kubeadm's Corefile before v1.31 (and a user's edit): `cache 30` for every zone, cluster.local included.
CACHE_ALL = KUBEADM.replace("    cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n"
                            "    }\n", "    cache 30\n")
WEB = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"clusterIP": "10.96.7.7", "clusterIPs": ["10.96.7.7"], "ports": [{"port": 80, "protocol": "TCP"}]}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake)
    yield fake


def router_for(text: str, data: ZoneData, metrics: Metrics) -> tuple[Router, list[str]]:
    """The Router of text, its upstream replaced by one that answers 192.0.2.1 / NXDOMAIN and records
    what it was asked."""
    config = load(text, read_file=lambda _: "nameserver 192.0.2.53\n")
    router = build_router(list(config.servers), data, metrics, local_ips=("10.244.1.2",), own=("127.0.0.1", 53),
                          hosts_text=lambda _: "")
    asked: list[str] = []

    async def upstream(qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        name = dns.name.from_wire(qname_wire, 0)[0].to_text()
        asked.append(name)
        if name.endswith("in-addr.arpa."):
            soa = RR("in-addr.arpa.", 60, "SOA", "ns. host. 1 7200 1800 86400 60")
            return Result(rcode=3, authority=(soa,), authoritative=False), True
        return Result(answer=(RR(name, 300, "A", "192.0.2.1"),), authoritative=False), True

    forwarder = router.blocks[0].forwarder
    assert forwarder is not None
    forwarder._ask = upstream  # type: ignore[method-assign]
    return router, asked


def ask(router: Router, name: str, qtype: str = "A") -> dns.message.Message:
    reply = router.respond(dns.message.make_query(name, qtype).to_wire(), False)
    if not isinstance(reply, Reply):
        reply = asyncio.run(reply)  # type: ignore[arg-type]
    assert reply.data is not None
    return dns.message.from_wire(reply.data)


def answer(msg: dns.message.Message) -> list[tuple[int, str]]:
    return [(rrset.ttl, rr.to_text()) for rrset in msg.answer for rr in rrset]


def delete_web(router: Router, data: ZoneData) -> None:
    router.zone_changed(data.apply("Service", WEB, deleted=True))


def test_a_cluster_answer_is_served_from_the_cache_while_the_data_is_unchanged(clock: Clock) -> None:
    data, metrics = zone_from_objects([WEB]), Metrics()
    router, _ = router_for(CACHE_ALL, data, metrics)
    assert answer(ask(router, "web.default.svc.cluster.local.")) == [(30, "10.96.7.7")]
    assert metrics.cache_misses == 1 and not metrics.cache_hits
    assert metrics.cache_size == {"success": 1, "denial": 0}
    clock.now += 10
    # From the cache, as CoreDNS: the TTL counts down and the hit is counted.
    assert answer(ask(router, "Web.Default.svc.cluster.local.")) == [(20, "10.96.7.7")]
    assert metrics.cache_hits["success"] == 1


def test_after_a_service_delete_the_next_query_is_nxdomain_and_that_is_cached(clock: Clock) -> None:
    data, metrics = zone_from_objects([WEB]), Metrics()
    router, _ = router_for(CACHE_ALL, data, metrics)
    ask(router, "web.default.svc.cluster.local.")
    clock.now += 1
    assert answer(ask(router, "web.default.svc.cluster.local.")) == [(29, "10.96.7.7")]  # a hit
    delete_web(router, data)
    gone = ask(router, "web.default.svc.cluster.local.")  # at once, not 29 s later
    assert gone.rcode() == dns.rcode.NXDOMAIN and not gone.answer
    assert metrics.cache_hits == {"success": 1}
    clock.now += 5
    again = ask(router, "web.default.svc.cluster.local.")
    assert again.rcode() == dns.rcode.NXDOMAIN and again.authority[0].ttl == 25  # the denial, from the cache
    assert metrics.cache_hits["denial"] == 1


def test_a_new_service_resolves_at_once_after_its_name_was_cached_as_nxdomain(clock: Clock) -> None:
    data, metrics = zone_from_objects([]), Metrics()
    data.namespaces.add("default")
    router, _ = router_for(CACHE_ALL, data, metrics)
    assert ask(router, "web.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    router.zone_changed(data.apply("Service", WEB))
    assert answer(ask(router, "web.default.svc.cluster.local.")) == [(30, "10.96.7.7")]


def test_with_kubeadms_corefile_cluster_names_are_not_cached_but_reverse_names_are(clock: Clock) -> None:
    data, metrics = zone_from_objects([WEB]), Metrics()
    router, asked = router_for(KUBEADM, data, metrics)
    for _ in range(2):  # `disable success cluster.local`: the answer table, no cache
        assert answer(ask(router, "web.default.svc.cluster.local.")) == [(30, "10.96.7.7")]
    assert not metrics.cache_hits and metrics.cache_misses == 0
    ptr = "7.7.96.10.in-addr.arpa."
    assert answer(ask(router, ptr, "PTR")) == [(30, "web.default.svc.cluster.local.")]
    clock.now += 3
    assert answer(ask(router, ptr, "PTR")) == [(27, "web.default.svc.cluster.local.")]
    assert metrics.cache_hits["success"] == 1
    delete_web(router, data)
    # The address is nobody's now: the zone passes it on (fallthrough in-addr.arpa) at once.
    assert ask(router, ptr, "PTR").rcode() == dns.rcode.NXDOMAIN and asked == [ptr]


def test_forwarded_names_are_cached_as_coredns_caches_them_whatever_the_zone_does(clock: Clock) -> None:
    data, metrics = zone_from_objects([WEB]), Metrics()
    router, asked = router_for(KUBEADM, data, metrics)
    assert [a for _, a in answer(ask(router, "www.example.org."))] == ["192.0.2.1"]
    delete_web(router, data)
    clock.now += 4
    assert [a for _, a in answer(ask(router, "www.example.org."))] == ["192.0.2.1"]
    assert asked == ["www.example.org."] and metrics.cache_hits["success"] == 1
    # A name in a kubernetes zone the zone passed on is guarded like the zone's own answers.
    ptr = "9.9.9.9.in-addr.arpa."
    ask(router, ptr, "PTR")
    assert ask(router, ptr, "PTR").rcode() == dns.rcode.NXDOMAIN and asked.count(ptr) == 1
    router.zone_changed(data.apply("Service", WEB))
    ask(router, ptr, "PTR")
    assert asked.count(ptr) == 2
