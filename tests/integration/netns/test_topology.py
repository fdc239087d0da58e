"""The cluster network in real namespaces: nodes on the LAN, the external client, repair, teardown.

Runs as root only (CI does); each test has its own cluster id and removes every namespace it made.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from svcnet.cluster.topology import TopologyPlan, apply_topology, destroy_topology, plan_topology
from svcnet.kernel import Route
from svcnet.kernel.links import LinuxNetworkKernel
from tests.integration.netns.conftest import ping, requires_root

pytestmark = requires_root


@pytest.fixture
def kernel() -> LinuxNetworkKernel:
    return LinuxNetworkKernel()


@pytest.fixture
def two_nodes(kernel: LinuxNetworkKernel, cluster_id: str) -> Iterator[TopologyPlan]:
    plan = plan_topology(cluster_id, 2)
    apply_topology(kernel, plan)
    yield plan  # the cluster_id fixture destroys it, pass or fail


def ip_netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def host_link_names() -> set[str]:
    with IPRoute() as ipr:  # reading the host namespace; nothing here writes to it
        return {m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}


def test_nodes_ping_each_others_node_ips(two_nodes: TopologyPlan) -> None:
    node1, node2 = two_nodes.nodes
    assert ping(node1.namespace, node2.ipv4)
    assert ping(node2.namespace, node1.ipv4)
    assert node1.ipv6 and node2.ipv6
    assert ping(node1.namespace, node2.ipv6)


def test_nodes_reach_each_others_pod_bridges_via_host_gw_routes(two_nodes: TopologyPlan) -> None:
    node1, node2 = two_nodes.nodes
    assert ping(node1.namespace, node2.gateway_v4)
    assert node2.gateway_v6
    assert ping(node1.namespace, node2.gateway_v6)


def test_client_reaches_node_ips_but_not_pod_cidrs(two_nodes: TopologyPlan) -> None:
    client = two_nodes.client.namespace
    node1, node2 = two_nodes.nodes
    assert ping(client, node1.ipv4) and ping(client, node2.ipv4)
    assert not ping(client, node1.gateway_v4)
    assert not ping(client, node2.gateway_v4)


def test_forwarding_is_on_in_nodes_only_and_the_host_is_untouched(kernel: LinuxNetworkKernel,
                                                                   cluster_id: str) -> None:
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_before = f.read()
    plan = plan_topology(cluster_id, 1)
    apply_topology(kernel, plan)
    assert kernel.read_sysctl(plan.nodes[0].namespace, "net.ipv4.ip_forward") == "1"
    assert kernel.read_sysctl(plan.nodes[0].namespace, "net.ipv6.conf.all.forwarding") == "1"
    assert kernel.read_sysctl(plan.client.namespace, "net.ipv4.ip_forward") == "0"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_before


def test_no_link_of_the_cluster_appears_in_the_host_namespace(two_nodes: TopologyPlan) -> None:
    ours = {"br-lan", "cni0", "node-1", "node-2", "client"}
    assert not ours & host_link_names()


def test_second_apply_changes_nothing(kernel: LinuxNetworkKernel, two_nodes: TopologyPlan) -> None:
    assert apply_topology(kernel, two_nodes) == ()


def test_apply_repairs_a_deleted_route_a_downed_link_and_a_lost_lan_port(kernel: LinuxNetworkKernel,
                                                                        two_nodes: TopologyPlan) -> None:
    node1, node2 = two_nodes.nodes
    kernel.delete_route(node1.namespace, Route(node2.pod_cidr_v4))
    kernel.set_link(two_nodes.lan_namespace, "node-2", up=False)
    kernel.delete_link(two_nodes.lan_namespace, "client")  # takes the client's eth0 with it
    kernel.write_sysctl(node2.namespace, "net.ipv4.ip_forward", "0")
    assert not ping(node1.namespace, node2.gateway_v4, timeout=0.5)
    assert apply_topology(kernel, two_nodes) != ()
    assert ping(node1.namespace, node2.gateway_v4)
    assert ping(two_nodes.client.namespace, node1.ipv4)
    assert apply_topology(kernel, two_nodes) == ()


def test_destroy_leaves_nothing_in_ip_netns_list_and_is_safe_twice(kernel: LinuxNetworkKernel,
                                                                   cluster_id: str) -> None:
    plan = plan_topology(cluster_id, 2)
    apply_topology(kernel, plan)
    assert {s.name for s in plan.namespaces} <= ip_netns_list()
    destroy_topology(kernel, cluster_id)
    assert not {n for n in ip_netns_list() if n.startswith(plan.prefix)}
    assert destroy_topology(kernel, cluster_id) == ()


def test_namespaces_are_visible_to_ip_netns_exec(two_nodes: TopologyPlan) -> None:
    node1 = two_nodes.nodes[0]
    out = subprocess.run(["ip", "netns", "exec", node1.namespace, "ip", "-o", "addr", "show", "dev", "cni0"],
                         capture_output=True, text=True, check=True).stdout
    assert f"{node1.gateway_v4}/24" in out
