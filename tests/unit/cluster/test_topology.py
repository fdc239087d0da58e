"""The cluster network plan, and converging a (fake) kernel to it: names, addresses, routes, repair, teardown."""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.cluster.topology import (
    apply_topology,
    cluster_namespaces,
    destroy_topology,
    mac_for,
    plan_topology,
)
from svcnet.kernel import KernelError, Route
from svcnet.testing.links import FakeNetworkKernel


def snapshot(kernel: FakeNetworkKernel, prefix: str) -> dict[str, Any]:
    """Everything observable about a cluster's namespaces, minus what the kernel numbers itself (ifindex)."""
    state = {}
    for ns in kernel.list_namespaces():
        if not ns.startswith(prefix):
            continue
        links = sorted((x.name, x.kind, x.up, x.master, x.hairpin, x.peer.namespace if x.peer else None)
                       for x in kernel.list_links(ns))
        addresses = sorted((a.link, a.cidr) for a in kernel.list_addresses(ns) if not a.cidr.startswith("fe80:"))
        routes = sorted((r.dst, r.via, r.dev) for r in kernel.list_routes(ns))
        sysctls = {k: kernel.read_sysctl(ns, k) for k in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")}
        state[ns] = (links, addresses, routes, sysctls)
    return state


@pytest.fixture
def cluster() -> tuple[FakeNetworkKernel, Any]:
    kernel = FakeNetworkKernel()
    plan = plan_topology("c1", 2)
    apply_topology(kernel, plan)
    return kernel, plan


# ---- the plan


@pytest.mark.parametrize("index, name, namespace, ipv4, ipv6, pod4, pod6, gateway4, gateway6", [
    (1, "node-1", "svcnet-c1-node-1", "192.168.0.106", "fd00:192:168::6a", "10.244.1.0/24",
     "fd00:10:244:1::/64", "10.244.1.1", "fd00:10:244:1::1"),
    (2, "node-2", "svcnet-c1-node-2", "192.168.0.107", "fd00:192:168::6b", "10.244.2.0/24",
     "fd00:10:244:2::/64", "10.244.2.1", "fd00:10:244:2::1"),
    (12, "node-12", "svcnet-c1-node-12", "192.168.0.117", "fd00:192:168::75", "10.244.12.0/24",
     "fd00:10:244:c::/64", "10.244.12.1", "fd00:10:244:c::1"),
])
def test_node_n_gets_seed_style_node_ip_and_pod_cidr_n(index: int, name: str, namespace: str, ipv4: str,
                                                       ipv6: str, pod4: str, pod6: str, gateway4: str,
                                                       gateway6: str) -> None:
    node = plan_topology("c1", 12).nodes[index - 1]
    assert (node.name, node.namespace, node.ipv4, node.ipv6) == (name, namespace, ipv4, ipv6)
    assert (node.pod_cidr_v4, node.pod_cidr_v6, node.gateway_v4, node.gateway_v6) == (pod4, pod6, gateway4, gateway6)
    assert node.pod_cidrs == (pod4, pod6)
    assert node.cluster_id == "c1"


def test_lan_and_client_namespaces_are_named_after_the_cluster() -> None:
    plan = plan_topology("c1", 2)
    assert plan.lan_namespace == "svcnet-c1-lan"
    assert (plan.client.namespace, plan.client.ipv4, plan.client.ipv6) == (
        "svcnet-c1-client", "192.168.0.200", "fd00:192:168::c8")
    assert [s.name for s in plan.namespaces] == [
        "svcnet-c1-lan", "svcnet-c1-node-1", "svcnet-c1-node-2", "svcnet-c1-client", "svcnet-c1-control-plane"]
    assert plan.control_plane is not None
    assert (plan.control_plane.namespace, plan.control_plane.ipv4, plan.control_plane.ipv6) == (
        "svcnet-c1-control-plane", "192.168.0.100", "fd00:192:168::64")


def test_each_node_routes_every_other_nodes_pod_cidrs_via_its_node_ip() -> None:
    plan = plan_topology("c1", 3)
    specs = {s.name: s for s in plan.namespaces}
    assert set(specs["svcnet-c1-node-2"].routes) == {
        Route("10.244.1.0/24", via="192.168.0.106"), Route("fd00:10:244:1::/64", via="fd00:192:168::6a"),
        Route("10.244.3.0/24", via="192.168.0.108"), Route("fd00:10:244:3::/64", via="fd00:192:168::6c"),
        # service VIPs leave through the uplink, so the node's own OUTPUT DNAT gets to see them
        Route("10.96.0.0/12", dev="eth0"), Route("fd00:10:96::/112", dev="eth0"),
    }
    assert specs["svcnet-c1-client"].routes == ()  # the client is outside: no route to VIPs


def test_forwarding_is_on_in_node_namespaces_only() -> None:
    plan = plan_topology("c1", 2)
    for spec in plan.namespaces:
        forwarding = dict(spec.sysctls).get("net.ipv4.ip_forward")
        assert forwarding == ("1" if "-node-" in spec.name else None), spec.name


def test_ipv4_only_plan_has_no_ipv6_addresses_or_routes() -> None:
    plan = plan_topology("c1", 2, node_cidr_v6=None, pod_cidr_v6=None)
    node = plan.nodes[0]
    assert (node.ipv6, node.pod_cidr_v6, node.gateway_v6, plan.client.ipv6) == (None, None, None, None)
    for spec in plan.namespaces:
        assert all(":" not in c for link in spec.links for c in link.addresses)
        assert all(":" not in r.dst for r in spec.routes)


def test_bridge_mac_is_derived_from_the_gateway_address() -> None:
    assert mac_for("10.244.1.1") == "0a:58:0a:f4:01:01"
    assert plan_topology("c1", 1).nodes[0].bridge_mac == "0a:58:0a:f4:01:01"


@pytest.mark.parametrize("kwargs, message", [
    ({"cluster_id": "Has-Dash"}, "lowercase letters or digits"),
    ({"cluster_id": "a" * 13}, "lowercase letters or digits"),
    ({"cluster_id": ""}, "lowercase letters or digits"),
    ({"nodes": 0}, "at least one node"),
    ({"nodes": 100}, "collides with a node address"),
    ({"nodes": 3, "first_node_host": 99}, "control-plane host 100 collides with a node address"),
    ({"client_host": 100}, "client and control-plane hosts are both 100"),
    ({"nodes": 256, "first_node_host": 1, "node_cidr": "192.168.0.0/16", "client_host": 60000,
      "control_plane_host": 60001},
     "only 256 /24 subnets"),
    ({"nodes": 3, "first_node_host": 253}, "outside 192.168.0.0/24"),
    ({"pod_cidr_v6": None}, "dual-stack needs both"),
])
def test_bad_plans_are_refused_with_a_reason(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"cluster_id": "c1", "nodes": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        plan_topology(**args)


def test_plan_node_lookup_by_name_or_namespace() -> None:
    plan = plan_topology("c1", 2)
    assert plan.node("node-2") is plan.nodes[1]
    assert plan.node("svcnet-c1-node-1") is plan.nodes[0]
    with pytest.raises(KeyError, match="no node 'node-9'"):
        plan.node("node-9")


# ---- applying it


def test_apply_creates_lan_nodes_and_client_namespaces(cluster: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, plan = cluster
    assert set(kernel.list_namespaces()) == {s.name for s in plan.namespaces}
    node_links = {x.name: x for x in kernel.list_links("svcnet-c1-node-1")}
    assert node_links["cni0"].kind == "bridge" and node_links["cni0"].mac == "0a:58:0a:f4:01:01"
    assert node_links["eth0"].peer is not None and node_links["eth0"].peer.namespace == "svcnet-c1-lan"
    lan_links = {x.name: x for x in kernel.list_links("svcnet-c1-lan")}
    assert {n: lan_links[n].master for n in ("node-1", "node-2", "client")} == dict.fromkeys(
        ("node-1", "node-2", "client"), "br-lan")
    assert {(a.link, a.cidr) for a in kernel.list_addresses("svcnet-c1-node-1")} >= {
        ("eth0", "192.168.0.106/24"), ("eth0", "fd00:192:168::6a/64"),
        ("cni0", "10.244.1.1/24"), ("cni0", "fd00:10:244:1::1/64")}
    assert all(x.up for ns in kernel.list_namespaces() for x in kernel.list_links(ns))


def test_second_apply_changes_nothing(cluster: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, plan = cluster
    kernel.calls.clear()
    assert apply_topology(kernel, plan) == ()
    assert kernel.calls == []


@pytest.mark.parametrize("src, dst, reachable", [
    ("svcnet-c1-node-1", "192.168.0.107", True),
    ("svcnet-c1-node-1", "fd00:192:168::6b", True),
    ("svcnet-c1-node-1", "10.244.2.1", True),  # the other node's bridge, via host-gw
    ("svcnet-c1-node-2", "fd00:10:244:1::1", True),
    ("svcnet-c1-client", "192.168.0.106", True),
    ("svcnet-c1-client", "fd00:192:168::6b", True),
    ("svcnet-c1-client", "10.244.1.1", False),  # outside the cluster: no route to pod CIDRs
    ("svcnet-c1-client", "fd00:10:244:2::1", False),
    ("svcnet-c1-lan", "192.168.0.106", False),  # the LAN namespace is a switch with no address
])
def test_reachability_in_the_planned_network(cluster: tuple[FakeNetworkKernel, Any], src: str, dst: str,
                                             reachable: bool) -> None:
    kernel, _ = cluster
    assert kernel.reachable(src, dst) is reachable


def test_node_traffic_to_another_nodes_pods_goes_straight_to_that_node(cluster: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, _ = cluster
    assert kernel.trace("svcnet-c1-node-1", "10.244.2.1") == ("svcnet-c1-node-1", "svcnet-c1-node-2")


def _break_route(kernel: FakeNetworkKernel) -> None:
    kernel.delete_route("svcnet-c1-node-1", Route("10.244.2.0/24"))


def _wrong_route(kernel: FakeNetworkKernel) -> None:
    kernel.replace_route("svcnet-c1-node-1", Route("10.244.2.0/24", via="192.168.0.200"))


def _extra_route(kernel: FakeNetworkKernel) -> None:
    kernel.replace_route("svcnet-c1-node-1", Route("10.99.0.0/16", via="192.168.0.200"))


def _wrong_address(kernel: FakeNetworkKernel) -> None:
    kernel.delete_address("svcnet-c1-node-2", "eth0", "192.168.0.107/24")
    kernel.add_address("svcnet-c1-node-2", "eth0", "192.168.0.99/24")


def _link_down(kernel: FakeNetworkKernel) -> None:
    kernel.set_link("svcnet-c1-lan", "node-2", up=False)


def _lan_port_gone(kernel: FakeNetworkKernel) -> None:
    kernel.delete_link("svcnet-c1-lan", "node-1")  # takes node-1's eth0 with it


def _bridge_replaced(kernel: FakeNetworkKernel) -> None:
    kernel.delete_link("svcnet-c1-node-1", "cni0")
    kernel.add_veth("svcnet-c1-node-1", "cni0", "cni0-peer")


def _forwarding_off(kernel: FakeNetworkKernel) -> None:
    kernel.write_sysctl("svcnet-c1-node-1", "net.ipv4.ip_forward", "0")


def _node_namespace_gone(kernel: FakeNetworkKernel) -> None:
    kernel.delete_namespace("svcnet-c1-node-2")


def _veth_rewired(kernel: FakeNetworkKernel) -> None:
    # Same names, wrong pairing: node-1's eth0 now pairs with a stray link in the LAN namespace.
    kernel.delete_link("svcnet-c1-node-1", "eth0")
    kernel.add_veth("svcnet-c1-lan", "stray", "eth0", peer_ns="svcnet-c1-node-1")
    kernel.add_veth("svcnet-c1-lan", "node-1", "x")


@pytest.mark.parametrize("damage", [
    _break_route, _wrong_route, _extra_route, _wrong_address, _link_down, _lan_port_gone, _bridge_replaced,
    _forwarding_off, _node_namespace_gone, _veth_rewired,
], ids=lambda f: f.__name__.strip("_"))
def test_apply_repairs_damage(cluster: tuple[FakeNetworkKernel, Any], damage: Any) -> None:
    kernel, plan = cluster
    healthy = snapshot(kernel, plan.prefix)
    damage(kernel)
    assert apply_topology(kernel, plan) != ()
    repaired = snapshot(kernel, plan.prefix)
    # A stray link we did not plan may remain; everything planned is exactly as before.
    for ns, (links, addresses, routes, sysctls) in healthy.items():
        r_links, r_addresses, r_routes, r_sysctls = repaired[ns]
        assert set(links) <= set(r_links), ns
        assert (addresses, routes, sysctls) == (r_addresses, r_routes, r_sysctls), ns
    assert kernel.reachable("svcnet-c1-node-1", "10.244.2.1")
    assert apply_topology(kernel, plan) == ()


class FailingKernel(FakeNetworkKernel):
    """Fails the n-th changing call, as a real kernel call can fail half-way through an apply."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def _record(self, op: str, *args: Any) -> None:
        super()._record(op, *args)
        if len(self.calls) == self.fail_at:
            raise KernelError(f"injected failure at {op}")


@pytest.mark.parametrize("fail_at", [1, 5, 12, 20, 30, 40])
def test_apply_after_a_failure_part_way_converges_to_the_same_network(fail_at: int) -> None:
    plan = plan_topology("c1", 2)
    reference = FakeNetworkKernel()
    apply_topology(reference, plan)
    kernel = FailingKernel(fail_at)
    with pytest.raises(KernelError, match="injected"):
        apply_topology(kernel, plan)
    apply_topology(kernel, plan)
    assert snapshot(kernel, plan.prefix) == snapshot(reference, plan.prefix)


def test_shrinking_the_cluster_removes_the_extra_node_and_routes_to_it() -> None:
    kernel = FakeNetworkKernel()
    apply_topology(kernel, plan_topology("c1", 3))
    apply_topology(kernel, plan_topology("c1", 2))
    assert "svcnet-c1-node-3" not in kernel.list_namespaces()
    assert Route("10.244.3.0/24", via="192.168.0.108", dev="eth0") not in kernel.list_routes("svcnet-c1-node-1")


def test_bridge_netfilter_sysctls_are_set_when_the_kernel_has_them() -> None:
    with_br = FakeNetworkKernel(bridge_netfilter=True)
    without = FakeNetworkKernel(bridge_netfilter=False)
    plan = plan_topology("c1", 1)
    apply_topology(with_br, plan)
    apply_topology(without, plan)
    assert with_br.read_sysctl("svcnet-c1-node-1", "net.bridge.bridge-nf-call-iptables") == "1"
    assert without.read_sysctl("svcnet-c1-node-1", "net.bridge.bridge-nf-call-iptables") is None


# ---- tearing it down


def test_destroy_removes_every_namespace_of_the_cluster_and_is_safe_twice(
        cluster: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, _ = cluster
    kernel.create_namespace("svcnet-c1-pod-0123456789")
    removed = destroy_topology(kernel, "c1")
    assert "svcnet-c1-pod-0123456789" in removed and len(removed) == 6
    assert cluster_namespaces(kernel, "c1") == ()
    assert destroy_topology(kernel, "c1") == ()


def test_destroy_leaves_other_clusters_alone_even_with_a_similar_id() -> None:
    kernel = FakeNetworkKernel()
    apply_topology(kernel, plan_topology("c1", 1))
    apply_topology(kernel, plan_topology("c12", 1))
    destroy_topology(kernel, "c1")
    assert cluster_namespaces(kernel, "c12") == ("svcnet-c12-client", "svcnet-c12-control-plane", "svcnet-c12-lan",
                                                 "svcnet-c12-node-1")
    assert kernel.reachable("svcnet-c12-client", "192.168.0.106")
