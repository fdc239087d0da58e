"""The LoadBalancer core: the pool, who gets which address, which node announces it."""
from __future__ import annotations

import datetime as dt

import pytest

from svcnet.core import loadbalancer as lb

LAN = "192.168.0.0/24"
NOW = dt.datetime(2026, 12, 7, 18, 0, 0, tzinfo=dt.UTC)


def service(name: str, *, ip: str | None = None, wanted: str = "", lb_class: str = "", kind: str = "LoadBalancer",
            created: str = "2026-12-07T10:00:00Z", families: tuple[str, ...] = ("IPv4",),
            policy: str = "Cluster") -> dict:
    spec = {"type": kind, "ipFamilies": list(families), "externalTrafficPolicy": policy}
    if wanted:
        spec["loadBalancerIP"] = wanted
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created}, "spec": spec,
            "status": {"loadBalancer": lb.ingress_status(ip)}}


def node(name: str, ready: str = "True", labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def endpoint_slice(*nodes_ready: tuple[str, bool]) -> dict:
    return {"endpoints": [{"addresses": ["10.244.1.2"], "nodeName": n, "conditions": {"ready": r, "serving": r}}
                          for n, r in nodes_ready]}


POOL = lb.parse_pool("192.168.0.240/30", LAN, ["192.168.0.106"])


# ---- the pool

def test_pool_lists_its_addresses_without_the_lans_broadcast():
    pool = lb.parse_pool("192.168.0.240/28", LAN)
    assert str(pool.addresses[0]) == "192.168.0.240"
    assert str(pool.addresses[-1]) == "192.168.0.254"
    assert len(pool.addresses) == 15


@pytest.mark.parametrize("cidr, complaint", [
    ("not-a-cidr", "is not a CIDR"),
    ("192.168.0.241/28", "is not a CIDR"),  # host bits set
    ("10.0.0.0/28", "is not inside the nodes' network"),
    ("192.168.0.96/27", "overlaps addresses in use on the LAN: 192.168.0.106"),
    ("fd00::/120", "is not inside the nodes' network"),
])
def test_bad_pools_are_refused_with_the_reason(cidr, complaint):
    with pytest.raises(lb.PoolError, match=complaint):
        lb.parse_pool(cidr, LAN, ["192.168.0.106", "192.168.0.200"])


# ---- which Services are ours

def test_a_service_with_a_load_balancer_class_is_not_ours():
    assert lb.is_ours(service("a"))
    assert not lb.is_ours(service("a", lb_class="example.com/other"))
    assert not lb.is_ours(service("a", kind="NodePort"))


# ---- allocation

def test_first_service_gets_the_lowest_address():
    allocation = lb.allocate(service("a"), POOL, {})
    assert allocation == lb.Allocation("192.168.0.240", lb.IP_ALLOCATED, 'Assigned IP ["192.168.0.240"]')


def test_a_service_keeps_the_address_it_holds():
    svc = service("a", ip="192.168.0.242")
    held = lb.holders([svc], POOL)
    assert lb.allocate(svc, POOL, held) == lb.Allocation("192.168.0.242")


def test_held_addresses_are_skipped():
    held = lb.holders([service("a", ip="192.168.0.240"), service("b", ip="192.168.0.241")], POOL)
    assert lb.allocate(service("c"), POOL, held).ip == "192.168.0.242"


def test_load_balancer_ip_in_the_pool_and_free_is_honoured():
    assert lb.allocate(service("a", wanted="192.168.0.243"), POOL, {}).ip == "192.168.0.243"


def test_load_balancer_ip_outside_the_pool_leaves_the_service_pending():
    allocation = lb.allocate(service("a", wanted="192.168.0.10"), POOL, {})
    assert allocation.ip is None and allocation.reason == lb.ALLOCATION_FAILED
    assert "outside the pool 192.168.0.240/30" in allocation.message


def test_load_balancer_ip_held_by_another_service_leaves_it_pending():
    held = lb.holders([service("a", ip="192.168.0.241")], POOL)
    allocation = lb.allocate(service("b", wanted="192.168.0.241"), POOL, held)
    assert allocation.ip is None and "already in use by default/a" in allocation.message


def test_an_exhausted_pool_leaves_the_service_pending_and_says_why():
    held = lb.holders([service(f"s{i}", ip=f"192.168.0.{240 + i}") for i in range(4)], POOL)
    allocation = lb.allocate(service("late"), POOL, held)
    assert allocation.ip is None and allocation.reason == "AllocationFailed"
    assert "no available IPs in pool 192.168.0.240/30 (all 4 are in use)" in allocation.message


def test_an_ipv6_only_service_gets_nothing_from_an_ipv4_pool():
    allocation = lb.allocate(service("v6", families=("IPv6",)), POOL, {})
    assert allocation.ip is None and "has no IPv6 address" in allocation.message


def test_when_two_services_claim_one_address_the_older_keeps_it():
    older = service("older", ip="192.168.0.240", created="2026-12-07T09:00:00Z")
    newer = service("newer", ip="192.168.0.240", created="2026-12-07T11:00:00Z")
    held = lb.holders([newer, older], POOL)
    assert held == {"192.168.0.240": "default/older"}
    assert lb.allocate(newer, POOL, held).ip == "192.168.0.241"


def test_addresses_of_other_implementations_and_outside_the_pool_are_not_held():
    held = lb.holders([service("x", ip="192.168.0.240", lb_class="example.com/other"),
                       service("y", ip="10.1.2.3")], POOL)
    assert held == {}


# ---- election

def test_the_announcer_is_first_by_hash_of_node_and_ip():
    import hashlib
    nodes = ["node-1", "node-2", "node-3"]
    expected = min(nodes, key=lambda n: hashlib.sha256(f"{n}#192.168.0.240".encode()).digest())
    assert lb.elect_announcer("192.168.0.240", nodes) == expected
    assert lb.elect_announcer("192.168.0.240", reversed(nodes)) == expected


def test_when_the_announcer_drops_out_the_next_in_order_takes_over():
    order = lb.announcement_order("192.168.0.240", ["node-1", "node-2", "node-3"])
    assert lb.elect_announcer("192.168.0.240", order[1:]) == order[1]


def test_different_addresses_spread_over_the_nodes():
    winners = {lb.elect_announcer(f"192.168.0.{i}", ["node-1", "node-2"]) for i in range(240, 255)}
    assert winners == {"node-1", "node-2"}


def test_local_policy_only_nodes_with_a_serving_endpoint_are_eligible():
    slices = [endpoint_slice(("node-2", True), ("node-1", False))]
    assert lb.eligible_nodes(service("a", policy="Local"), ["node-1", "node-2"], slices) == ["node-2"]
    assert lb.eligible_nodes(service("a"), ["node-1", "node-2"], slices) == ["node-1", "node-2"]


def test_without_a_serving_endpoint_nobody_announces():
    assert lb.eligible_nodes(service("a"), ["node-1"], [endpoint_slice(("node-1", False))]) == []


def lease(node_name: str, renewed: dt.datetime, seconds: int = 3) -> dict:
    return lb.speaker_lease(node_name, lb.micro_time(renewed), seconds)


def test_a_speaker_whose_lease_lapsed_is_not_live():
    leases = [lease("node-1", NOW - dt.timedelta(seconds=1)), lease("node-2", NOW - dt.timedelta(seconds=5))]
    assert lb.live_speakers(leases, NOW) == {"node-1"}


def test_announcements_skip_not_ready_excluded_and_dead_nodes():
    svc = service("a", ip="192.168.0.240")
    slices = [endpoint_slice(("node-1", True))]
    nodes = [node("node-1"), node("node-2", ready="Unknown"), node("node-3", labels={lb.EXCLUDE_LABEL: ""}),
             node("node-4")]
    live = {"node-1", "node-2", "node-3"}  # node-4's speaker is gone
    chosen = lb.announcements([svc], nodes, live, lambda key: slices)
    assert chosen == [lb.Announcement("192.168.0.240", "default/a", "node-1")]


def test_pending_services_and_other_classes_are_not_announced():
    svcs = [service("pending"), service("theirs", ip="192.168.0.241", lb_class="example.com/x")]
    assert lb.announcements(svcs, [node("node-1")], {"node-1"}, lambda key: [endpoint_slice(("node-1", True))]) == []


def test_when_no_speaker_lease_is_fresh_every_ready_node_counts():
    svc = service("a", ip="192.168.0.240")
    slices = [endpoint_slice(("node-1", True))]
    nodes = [node("node-1"), node("node-2")]
    expected = lb.elect_announcer("192.168.0.240", ["node-1", "node-2"])
    chosen = lb.announcements([svc], nodes, set(), lambda key: slices)
    assert chosen == [lb.Announcement("192.168.0.240", "default/a", expected)]


# ---- IPv6 and dual-stack

LAN6 = "fd00:192:168::/64"
POOL6 = lb.parse_pool("fd00:192:168::f0/126", LAN6)
POOLS = lb.parse_pools("192.168.0.240/30,fd00:192:168::f0/126", {4: LAN, 6: LAN6})


def ips(allocations: list[lb.Allocation]) -> list[str | None]:
    return [a.ip for a in allocations]


def test_a_dual_stack_service_gets_one_address_per_family_in_its_families_order():
    assert ips(lb.allocate_families(service("a", families=("IPv4", "IPv6")), POOLS, {})) == [
        "192.168.0.240", "fd00:192:168::f0"]
    assert ips(lb.allocate_families(service("b", families=("IPv6", "IPv4")), POOLS, {})) == [
        "fd00:192:168::f0", "192.168.0.240"]


def test_an_ipv6_only_service_gets_an_ipv6_address_and_an_ipv4_one_keeps_its_behaviour():
    assert ips(lb.allocate_families(service("v6", families=("IPv6",)), POOLS, {})) == ["fd00:192:168::f0"]
    assert ips(lb.allocate_families(service("v4"), POOLS, {})) == ["192.168.0.240"]


def test_a_family_without_a_pool_stays_pending_with_the_reason():
    pools = lb.parse_pools("192.168.0.240/30", {4: LAN, 6: LAN6})
    v4, v6 = lb.allocate_families(service("a", families=("IPv4", "IPv6")), pools, {})
    assert v4.ip == "192.168.0.240"
    assert v6.ip is None and v6.reason == lb.ALLOCATION_FAILED and "no IPv6 pool is configured" in v6.message


def test_load_balancer_ip_applies_to_its_own_family_only():
    svc = service("a", families=("IPv4", "IPv6"), wanted="fd00:192:168::f2")
    assert ips(lb.allocate_families(svc, POOLS, {})) == ["192.168.0.240", "fd00:192:168::f2"]
    held = {"fd00:192:168::f2": "default/other"}
    v4, v6 = lb.allocate_families(svc, POOLS, held)
    assert v4.ip == "192.168.0.240" and v6.ip is None and "already in use by default/other" in v6.message


def test_held_addresses_of_both_families_are_kept():
    svc = {**service("a", families=("IPv4", "IPv6")),
           "status": {"loadBalancer": lb.ingress_status(["192.168.0.241", "fd00:192:168::f1"])}}
    held = lb.holders([svc], POOLS)
    assert held == {"192.168.0.241": "default/a", "fd00:192:168::f1": "default/a"}
    assert ips(lb.allocate_families(svc, POOLS, held)) == ["192.168.0.241", "fd00:192:168::f1"]


def test_both_addresses_of_a_dual_stack_service_are_announced_by_one_node():
    svc = {**service("a", families=("IPv4", "IPv6")),
           "status": {"loadBalancer": lb.ingress_status(["192.168.0.240", "fd00:192:168:0::f0"])}}
    nodes = [node(f"node-{i}") for i in range(1, 5)]
    slices = [endpoint_slice(*((f"node-{i}", True) for i in range(1, 5)))]
    chosen = lb.announcements([svc], nodes, {f"node-{i}" for i in range(1, 5)}, lambda key: slices)
    expected = lb.elect_announcer("192.168.0.240", [f"node-{i}" for i in range(1, 5)])
    assert chosen == [lb.Announcement("192.168.0.240", "default/a", expected),
                      lb.Announcement("fd00:192:168::f0", "default/a", expected)]  # in NDP's (canonical) form


def test_pools_refuse_two_of_one_family_and_a_family_the_lan_lacks():
    with pytest.raises(lb.PoolError, match="more than one IPv6 CIDR"):
        lb.parse_pools("fd00:192:168::f0/126,fd00:192:168::e0/126", {4: LAN, 6: LAN6})
    with pytest.raises(lb.PoolError, match="has no IPv6 addresses"):
        lb.parse_pools("fd00:192:168::f0/126", {4: LAN})
    assert POOL6.addresses[0] in POOLS and "192.168.0.241" in POOLS and "10.0.0.1" not in POOLS
