"""Pod sandbox networking on a fake kernel: names, wiring, reachability, idempotence, teardown, restart."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from svcnet.agent.ipam import LeaseStore
from svcnet.agent.network import (
    host_veth_name,
    list_pod_networks,
    pod_namespace,
    pod_short_id,
    release_leaked_leases,
    setup_pod_network,
    teardown_pod_network,
)
from svcnet.cluster.topology import TopologyPlan, apply_topology, plan_topology
from svcnet.kernel import MAX_LINK_NAME, KernelError, NamespaceNotFound, Route
from svcnet.testing.links import FakeNetworkKernel

UID_A = "0a1b2c3d-4e5f-4789-8abc-def012345678"
UID_B = "ffeeddcc-bbaa-4999-8888-777766665555"
UID_C = "12345678-9abc-4def-8123-456789abcdef"


class Cluster:
    def __init__(self, kernel: FakeNetworkKernel, plan: TopologyPlan, tmp: Path) -> None:
        self.kernel, self.plan = kernel, plan
        self.node1, self.node2 = plan.nodes
        self.leases1 = self.store(tmp, self.node1)
        self.leases2 = self.store(tmp, self.node2)

    @staticmethod
    def store(tmp: Path, node: Any) -> LeaseStore:
        return LeaseStore(tmp / f"{node.name}.json", node.pod_cidr_v4, node.pod_cidr_v6)


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    kernel = FakeNetworkKernel()
    plan = plan_topology("c1", 2)
    apply_topology(kernel, plan)
    return Cluster(kernel, plan, tmp_path)


@pytest.mark.parametrize("uid, short", [
    (UID_A, "0a1b2c3d4e"),
    ("0A1B2C3D-4E5F-4789-8ABC-DEF012345678", "0a1b2c3d4e"),
    ("not-a-uuid", "2184a32a3b"),  # not hex: a hash of it instead
])
def test_pod_short_id_is_the_start_of_the_uid_or_a_hash(uid: str, short: str) -> None:
    assert pod_short_id(uid) == short
    assert pod_namespace("c1", uid) == f"svcnet-c1-pod-{short}"
    assert host_veth_name(uid) == f"veth{short}" and len(host_veth_name(uid)) <= MAX_LINK_NAME


def test_setup_wires_pod_eth0_to_the_node_bridge_with_hairpin(cluster: Cluster) -> None:
    pod = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    assert (pod.netns_name, pod.netns_path, pod.host_veth) == (
        "svcnet-c1-pod-0a1b2c3d4e", "/run/netns/svcnet-c1-pod-0a1b2c3d4e", "veth0a1b2c3d4e")
    assert (pod.ipv4, pod.ipv6, pod.gateway, pod.gateway_v6) == (
        "10.244.1.2", "fd00:10:244:1::2", "10.244.1.1", "fd00:10:244:1::1")
    host = {x.name: x for x in cluster.kernel.list_links(cluster.node1.namespace)}["veth0a1b2c3d4e"]
    assert (host.master, host.hairpin, host.up) == ("cni0", True, True)
    pod_links = {x.name: x for x in cluster.kernel.list_links(pod.netns_name)}
    assert pod_links["lo"].up and pod_links["eth0"].up
    assert pod_links["eth0"].peer is not None and pod_links["eth0"].peer.namespace == cluster.node1.namespace
    assert {(a.link, a.cidr) for a in cluster.kernel.list_addresses(pod.netns_name)} >= {
        ("eth0", "10.244.1.2/24"), ("eth0", "fd00:10:244:1::2/64"), ("lo", "127.0.0.1/8")}
    assert set(cluster.kernel.list_routes(pod.netns_name)) == {
        Route("0.0.0.0/0", via="10.244.1.1", dev="eth0"), Route("::/0", via="fd00:10:244:1::1", dev="eth0")}


def test_forwarding_stays_off_inside_pods(cluster: Cluster) -> None:
    pod = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    assert cluster.kernel.read_sysctl(pod.netns_name, "net.ipv4.ip_forward") == "0"


@pytest.mark.parametrize("src, dst, reachable", [
    ("pod-a", "pod-b.ipv4", True),
    ("pod-a", "pod-b.ipv6", True),
    ("pod-b", "pod-a.ipv4", True),
    ("pod-a", "pod-c.ipv4", True),  # same node, across cni0
    ("pod-a", "node-1.gateway", True),
    ("pod-a", "node-2.ip", True),
    ("node-2", "pod-a.ipv4", True),
    ("client", "pod-a.ipv4", False),
    ("client", "pod-b.ipv6", False),
    ("client", "node-2.ip", True),
])
def test_pod_reachability(cluster: Cluster, src: str, dst: str, reachable: bool) -> None:
    k = cluster.kernel
    pods = {
        "pod-a": setup_pod_network(k, cluster.node1, UID_A, cluster.leases1),
        "pod-b": setup_pod_network(k, cluster.node2, UID_B, cluster.leases2),
        "pod-c": setup_pod_network(k, cluster.node1, UID_C, cluster.leases1),
    }
    sources = {**{n: p.netns_name for n, p in pods.items()}, "node-2": cluster.node2.namespace,
               "client": cluster.plan.client.namespace}
    targets = {**{f"{n}.ipv4": p.ipv4 for n, p in pods.items()}, **{f"{n}.ipv6": p.ipv6 for n, p in pods.items()},
               "node-1.gateway": cluster.node1.gateway_v4, "node-2.ip": cluster.node2.ipv4}
    assert k.reachable(sources[src], str(targets[dst])) is reachable


def test_setup_twice_returns_the_same_network_and_changes_nothing(cluster: Cluster) -> None:
    first = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    cluster.kernel.calls.clear()
    assert setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1) == first
    assert cluster.kernel.calls == []


def test_setup_completes_a_half_made_sandbox(cluster: Cluster) -> None:
    first = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    cluster.kernel.delete_link(cluster.node1.namespace, first.host_veth)  # pod's eth0 goes with it
    again = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    assert again == first
    assert cluster.kernel.reachable(first.netns_name, cluster.node1.gateway_v4)


def test_apply_topology_leaves_pod_ports_alone(cluster: Cluster) -> None:
    pod = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    assert apply_topology(cluster.kernel, cluster.plan) == ()
    assert cluster.kernel.reachable(pod.netns_name, cluster.node2.ipv4)


def test_teardown_removes_namespace_veth_and_lease_and_is_safe_twice(cluster: Cluster) -> None:
    pod = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    teardown_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    assert pod.netns_name not in cluster.kernel.list_namespaces()
    assert pod.host_veth not in {x.name for x in cluster.kernel.list_links(cluster.node1.namespace)}
    assert cluster.leases1.load().leases == ()
    teardown_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)


def test_setup_without_the_node_namespace_fails_and_takes_no_lease(tmp_path: Path) -> None:
    kernel = FakeNetworkKernel()
    node = plan_topology("c1", 1).nodes[0]
    leases = Cluster.store(tmp_path, node)
    with pytest.raises(NamespaceNotFound, match="set up the cluster network first"):
        setup_pod_network(kernel, node, UID_A, leases)
    assert leases.load().leases == () and kernel.list_namespaces() == ()


class FailAfter(FakeNetworkKernel):
    """Fails once when `op` is called, as a real kernel call can."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op, self.armed = op, False

    def _record(self, op: str, *args: Any) -> None:
        super()._record(op, *args)
        if self.armed and op == self.op:
            self.armed = False
            raise KernelError(f"injected failure at {op}")


@pytest.mark.parametrize("op", ["create_namespace", "add_veth", "set_link", "add_address", "replace_route"])
def test_a_failed_setup_leaves_no_namespace_veth_or_lease(tmp_path: Path, op: str) -> None:
    kernel = FailAfter(op)
    plan = plan_topology("c1", 1)
    apply_topology(kernel, plan)
    node = plan.nodes[0]
    leases = Cluster.store(tmp_path, node)
    before = kernel.list_links(node.namespace)
    kernel.armed = True
    with pytest.raises(KernelError, match="injected"):
        setup_pod_network(kernel, node, UID_A, leases)
    assert pod_namespace("c1", UID_A) not in kernel.list_namespaces()
    assert kernel.list_links(node.namespace) == before
    assert leases.load().leases == ()


def test_list_pod_networks_finds_this_nodes_pods_with_their_uids(cluster: Cluster) -> None:
    a = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    c = setup_pod_network(cluster.kernel, cluster.node1, UID_C, cluster.leases1)
    setup_pod_network(cluster.kernel, cluster.node2, UID_B, cluster.leases2)
    assert list_pod_networks(cluster.kernel, cluster.node1, cluster.leases1) == (a, c)
    # Without the lease file, the kernel alone still knows the sandboxes (but not the pods' uids).
    bare = list_pod_networks(cluster.kernel, cluster.node1)
    assert [(p.netns_name, p.ipv4, p.pod_uid) for p in bare] == [
        (a.netns_name, a.ipv4, None), (c.netns_name, c.ipv4, None)]


def test_restarted_agent_frees_leases_of_vanished_sandboxes_and_never_reuses_live_ones(
        cluster: Cluster, tmp_path: Path) -> None:
    a = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    setup_pod_network(cluster.kernel, cluster.node1, UID_C, cluster.leases1)
    cluster.kernel.delete_namespace(a.netns_name)  # gone behind the agent's back
    restarted = Cluster.store(tmp_path, cluster.node1)
    assert [x.pod_uid for x in release_leaked_leases(cluster.kernel, "c1", restarted)] == [UID_A]
    new = setup_pod_network(cluster.kernel, cluster.node1, UID_B, restarted)
    assert new.ipv4 == "10.244.1.4"


def test_pod_setup_and_teardown_never_list_the_node_namespace(cluster: Cluster) -> None:
    """The node namespace holds one port per pod: reading all of it per pod made pod start O(pods).
    A new pod's own namespace is not read back either (it holds only what setup put there); setting
    up an existing pod again reads its namespace only."""
    for uid in (UID_A, UID_B):
        setup_pod_network(cluster.kernel, cluster.node1, uid, cluster.leases1)
    cluster.kernel.dumps.clear()
    setup_pod_network(cluster.kernel, cluster.node1, UID_C, cluster.leases1)
    assert cluster.kernel.dumps == []
    setup_pod_network(cluster.kernel, cluster.node1, UID_C, cluster.leases1)
    teardown_pod_network(cluster.kernel, cluster.node1, UID_C, cluster.leases1)
    assert [d for d in cluster.kernel.dumps if d[1] == cluster.node1.namespace] == []
    assert {d[1] for d in cluster.kernel.dumps} == {pod_namespace("c1", UID_C)}


def test_pod_setup_leaves_addresses_someone_put_on_the_host_veth(cluster: Cluster) -> None:
    setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    cluster.kernel.add_address(cluster.node1.namespace, host_veth_name(UID_A), "192.0.2.7/32")
    setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    assert ("veth0a1b2c3d4e", "192.0.2.7/32") in {
        (a.link, a.cidr) for a in cluster.kernel.list_addresses(cluster.node1.namespace)}


def test_with_an_overlay_both_ends_of_the_pods_veth_take_its_mtu(cluster: Cluster, tmp_path: Path) -> None:
    plain = setup_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases1)
    assert {x.name: x.mtu for x in cluster.kernel.list_links(plain.netns_name)}["eth0"] == 1500  # the default
    node = dataclasses.replace(cluster.node1, pod_mtu=1450)
    pod = setup_pod_network(cluster.kernel, node, UID_B, cluster.leases1)
    assert {x.name: x.mtu for x in cluster.kernel.list_links(pod.netns_name)}["eth0"] == 1450
    assert {x.name: x.mtu for x in cluster.kernel.list_links(node.namespace)}[pod.host_veth] == 1450
