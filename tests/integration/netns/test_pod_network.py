"""Pod sandboxes in real namespaces: pod-to-pod across nodes (ICMP and TCP), own gateway, client, teardown, IPAM restart.

Runs as root only (CI does); every namespace, veth and process made here is removed afterwards.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from svcnet.agent.ipam import LeaseStore
from svcnet.agent.network import (
    PodNetwork,
    list_pod_networks,
    release_leaked_leases,
    setup_pod_network,
    teardown_pod_network,
)
from svcnet.agent.nodeplan import NodePlan
from svcnet.cluster.topology import TopologyPlan, apply_topology, plan_topology
from svcnet.kernel.links import LinuxNetworkKernel
from tests.integration.netns.conftest import ping, requires_root, tcp_fetch, tcp_listener

pytestmark = requires_root

UID_A = "0a1b2c3d-4e5f-4789-8abc-def012345678"
UID_B = "ffeeddcc-bbaa-4999-8888-777766665555"
UID_C = "12345678-9abc-4def-8123-456789abcdef"


@dataclass
class Cluster:
    kernel: LinuxNetworkKernel
    plan: TopologyPlan
    lease_dir: Path

    @property
    def node1(self) -> NodePlan:
        return self.plan.nodes[0]

    @property
    def node2(self) -> NodePlan:
        return self.plan.nodes[1]

    def leases(self, node: NodePlan) -> LeaseStore:
        """A fresh store object each time, as a restarted agent would open the file."""
        return LeaseStore(self.lease_dir / f"{node.name}.json", node.pod_cidr_v4, node.pod_cidr_v6)

    def pod(self, node: NodePlan, uid: str) -> PodNetwork:
        return setup_pod_network(self.kernel, node, uid, self.leases(node))


@pytest.fixture
def cluster(cluster_id: str, lease_dir: Path) -> Iterator[Cluster]:
    kernel = LinuxNetworkKernel()
    plan = plan_topology(cluster_id, 2)
    apply_topology(kernel, plan)
    yield Cluster(kernel, plan, lease_dir)  # the cluster_id fixture removes every namespace, pods included


def test_pods_on_different_nodes_ping_each_other_by_pod_ip(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    b = cluster.pod(cluster.node2, UID_B)
    assert ping(a.netns_name, b.ipv4)
    assert ping(b.netns_name, a.ipv4)
    assert a.ipv6 and b.ipv6
    assert ping(a.netns_name, b.ipv6)


def test_pod_connects_over_tcp_to_a_listener_in_a_pod_on_another_node(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    b = cluster.pod(cluster.node2, UID_B)
    with tcp_listener(b.netns_name, 9376, "pod-b") as listener:
        assert tcp_fetch(a.netns_name, b.ipv4, listener.port) == b"pod-b"
        assert b.ipv6
        assert tcp_fetch(a.netns_name, b.ipv6, listener.port) == b"pod-b"


def test_pods_on_the_same_node_reach_each_other_across_the_bridge(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    c = cluster.pod(cluster.node1, UID_C)
    assert ping(a.netns_name, c.ipv4)


def test_pod_reaches_its_own_node_bridge_ip_and_its_own_loopback(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    assert ping(a.netns_name, cluster.node1.gateway_v4)
    assert cluster.node1.gateway_v6
    assert ping(a.netns_name, cluster.node1.gateway_v6)
    assert ping(a.netns_name, "127.0.0.1")


def test_node_reaches_pods_on_the_other_node(cluster: Cluster) -> None:
    b = cluster.pod(cluster.node2, UID_B)
    assert ping(cluster.node1.namespace, b.ipv4)


def test_client_outside_the_cluster_cannot_reach_pod_ips(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    assert ping(cluster.plan.client.namespace, cluster.node1.ipv4)
    assert not ping(cluster.plan.client.namespace, a.ipv4)


def test_host_veth_is_a_hairpin_port_of_cni0(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    port = {x.name: x for x in cluster.kernel.list_links(cluster.node1.namespace)}[a.host_veth]
    assert (port.master, port.hairpin, port.up) == ("cni0", True, True)


def test_setup_is_idempotent(cluster: Cluster) -> None:
    first = cluster.pod(cluster.node1, UID_A)
    assert cluster.pod(cluster.node1, UID_A) == first
    assert ping(first.netns_name, cluster.node1.gateway_v4)


def test_teardown_removes_namespace_veth_and_lease_even_while_a_process_holds_the_namespace(
        cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    with tcp_listener(a.netns_name, 9376, "pod-a"):  # keeps the namespace alive after its name goes
        teardown_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases(cluster.node1))
        assert a.netns_name not in cluster.kernel.list_namespaces()
        assert a.host_veth not in {x.name for x in cluster.kernel.list_links(cluster.node1.namespace)}
        assert not ping(cluster.node1.namespace, a.ipv4, timeout=0.5)
    assert cluster.leases(cluster.node1).load().leases == ()
    teardown_pod_network(cluster.kernel, cluster.node1, UID_A, cluster.leases(cluster.node1))


def test_ipam_never_double_allocates_across_an_agent_restart(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    c = cluster.pod(cluster.node1, UID_C)
    # "Restart": a new store object reads the file; the kernel still has the sandboxes.
    found = list_pod_networks(cluster.kernel, cluster.node1, cluster.leases(cluster.node1))
    assert [(p.pod_uid, p.ipv4) for p in found] == [(UID_A, a.ipv4), (UID_C, c.ipv4)]  # sorted by namespace
    b = cluster.pod(cluster.node1, UID_B)
    assert len({a.ipv4, b.ipv4, c.ipv4}) == 3 and len({a.ipv6, b.ipv6, c.ipv6}) == 3
    assert ping(b.netns_name, a.ipv4)


def test_restart_frees_the_lease_of_a_sandbox_that_vanished(cluster: Cluster) -> None:
    a = cluster.pod(cluster.node1, UID_A)
    cluster.pod(cluster.node1, UID_C)
    cluster.kernel.delete_namespace(a.netns_name)  # as after a host reboot or a crash mid-teardown
    leaked = release_leaked_leases(cluster.kernel, cluster.plan.cluster_id, cluster.leases(cluster.node1))
    assert [x.pod_uid for x in leaked] == [UID_A]
    assert [x.pod_uid for x in cluster.leases(cluster.node1).load().leases] == [UID_C]
