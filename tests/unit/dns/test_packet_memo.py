"""The UDP packet memo in front of the answer table, and the per-batch hit counting."""
from __future__ import annotations

import dataclasses

import dns.flags
import dns.message
import pytest

from svcnet.dns.answers import Settings
from svcnet.dns.metrics import DURATION_BUCKETS, Metrics, render
from svcnet.dns.resolver import Reply, Resolver
from svcnet.dns.table import fast_response, stat_key, udp_reply
from svcnet.dns.zone import zone_from_objects
from tests.unit.dns.helpers import cluster_objects

KUBERNETES = "kubernetes.default.svc.cluster.local."


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(Settings(local_ips=("10.244.0.5",)), zone_from_objects(cluster_objects()))


def query(name: str, qid: int = 1, qtype: str = "A", **kw) -> bytes:
    message = dns.message.make_query(name, qtype, **kw)
    message.id = qid
    return message.to_wire()


def learn(resolver: Resolver, data: bytes) -> None:
    """What the server does for a packet the table cannot answer yet: the slow path."""
    assert isinstance(resolver.respond(data, False), Reply)


def test_the_memo_answers_exactly_as_the_table_does_with_each_packets_id(resolver: Resolver) -> None:
    learn(resolver, query(KUBERNETES, 1, use_edns=False))
    first = udp_reply(resolver.table, query(KUBERNETES, 1, use_edns=False))
    assert first is not None and len(resolver.table.packets) == 1
    again = query(KUBERNETES, 777, use_edns=False)
    reply, entry = udp_reply(resolver.table, again)  # type: ignore[misc]
    direct = fast_response(resolver.table, again, False)
    assert direct is not None and reply == direct[0] and entry is direct[1]
    assert dns.message.from_wire(reply).id == 777 and len(resolver.table.packets) == 1


def test_each_spelling_and_edns_variant_is_remembered_with_its_own_reply(resolver: Resolver) -> None:
    learn(resolver, query(KUBERNETES, use_edns=False))
    variants = [query(KUBERNETES, use_edns=False), query("KUBERNETES.Default.svc.cluster.local.", use_edns=False),
                query(KUBERNETES, use_edns=0, payload=1232), query(KUBERNETES, use_edns=0, payload=4096)]
    for data in variants:
        udp_reply(resolver.table, data)
    assert len(resolver.table.packets) == len(variants)
    upper = dns.message.from_wire(udp_reply(resolver.table, variants[1])[0])  # type: ignore[index]
    assert upper.answer[0].name.to_text() == "KUBERNETES.Default.svc.cluster.local."
    big = dns.message.from_wire(udp_reply(resolver.table, variants[3])[0])  # type: ignore[index]
    assert big.payload == 1232  # the client's 4096, clamped to --bufsize as CoreDNS's bufsize plugin does


def test_a_zone_change_retires_the_remembered_replies_of_the_answers_it_drops(resolver: Resolver) -> None:
    dual = query("dual.default.svc.cluster.local.", use_edns=False)
    kube = query(KUBERNETES, use_edns=False)
    for data in (dual, kube):
        learn(resolver, data)
        assert udp_reply(resolver.table, data) is not None
    dual_entry = resolver.table.packets[dual[2:]][1]
    resolver.zone_changed({"svc:dual.default"})
    assert not dual_entry.live
    assert udp_reply(resolver.table, dual) is None  # the table lost it: back to the slow path
    assert udp_reply(resolver.table, kube) is not None
    learn(resolver, dual)
    assert udp_reply(resolver.table, dual) is not None


def test_negative_replies_die_with_any_zone_change(resolver: Resolver) -> None:
    nope = query("nope.default.svc.cluster.local.", use_edns=False)
    learn(resolver, nope)
    assert udp_reply(resolver.table, nope) is not None
    resolver.zone_changed({"svc:unrelated.default"})
    assert udp_reply(resolver.table, nope) is None


def test_first_sync_clears_the_memo(resolver: Resolver) -> None:
    kube = query(KUBERNETES, use_edns=False)
    learn(resolver, kube)
    udp_reply(resolver.table, kube)
    entry = resolver.table.packets[kube[2:]][1]
    resolver.zone_changed(None)
    assert not resolver.table.packets and not entry.live and udp_reply(resolver.table, kube) is None


def test_replacing_an_entry_retires_the_old_one(resolver: Resolver) -> None:
    kube = query(KUBERNETES, use_edns=False)
    learn(resolver, kube)
    key, old = next(iter(resolver.table.entries.items()))
    resolver.table.put(key, dataclasses.replace(old))
    assert not old.live and resolver.table.entries[key].live


def test_the_memo_is_bounded(resolver: Resolver) -> None:
    resolver.table.max_packets = 3
    learn(resolver, query(KUBERNETES, use_edns=False))
    for spelling in ("kubernetes", "Kubernetes", "kUbernetes", "kuBernetes", "kubErnetes"):
        assert udp_reply(resolver.table, query(f"{spelling}.default.svc.cluster.local.", use_edns=False))
    assert len(resolver.table.packets) <= 3


def test_truncated_replies_are_served_from_the_table_and_remembered(resolver: Resolver) -> None:
    big = query("big.default.svc.cluster.local.", use_edns=False)
    learn(resolver, big)
    hit = udp_reply(resolver.table, big)
    assert hit is not None and len(hit[0]) <= 512 and big[2:] in resolver.table.packets
    reply = dns.message.from_wire(hit[0])
    assert reply.flags & dns.flags.TC and 0 < len(reply.answer[0]) < 60


def test_batch_hits_count_every_query_by_type_and_rcode() -> None:
    metrics = Metrics(server="dns://:53")
    metrics.count_hits("udp", "1", {stat_key(1, 0): 5, stat_key(28, 3): 2}, 0.0003)
    metrics.count_hits("udp", "1", {stat_key(1, 0): 1}, 0.1)
    assert metrics.requests == {("udp", "1", "A"): 6, ("udp", "1", "AAAA"): 2}
    assert metrics.responses == {("NOERROR", "kubernetes"): 6, ("NXDOMAIN", "kubernetes"): 2}
    a = metrics.durations["A"]
    assert sum(a.counts) == 6 and a.total == pytest.approx(5 * 0.0003 + 0.1)
    assert a.counts[DURATION_BUCKETS.index(0.0005)] == 5  # 0.3 ms lands in the le=0.0005 bucket
    text = render([metrics.snapshot()])
    assert 'coredns_dns_requests_total{server="dns://:53",zone=".",view="",proto="udp",family="1",type="A"} 6' \
        in text
    assert 'coredns_dns_request_duration_seconds_count{server="dns://:53",zone=".",view="",type="AAAA"} 2' in text
