"""`svcnet up --hosts`: several L2 segments joined by a router, pods crossing only by the overlay."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from svcnet.cli import build_parser, main
from svcnet.cluster import up
from svcnet.cluster.identities import OVERLAY_USER, identities
from svcnet.cluster.topology import apply_topology, lb_pool_for, plan_topology
from svcnet.config import ApiServerConfig
from svcnet.core.loadbalancer import PoolError
from svcnet.kernel import Route
from svcnet.testing.links import FakeNetworkKernel, Unreachable

# What --hosts added, each at its default in a one-host plan; dropped before comparing with the plan
# as it was before --hosts existed.
NEW_FIELDS = {"mtu": None, "unowned_routes": [], "onlink": False, "host": 1, "lan_cidrs": [], "overlay": "",
              "overlay_cidrs": [], "uplink": "eth0", "pod_mtu": 0}
# sha256 of the namespaces and nodes plan_topology("abc", n, zones=("a", "b")) made before --hosts (main at
# 678cfd8), as sorted JSON: a one-host cluster must stay exactly that.
BEFORE_HOSTS = {
    1: ("65e72d89aca9c744263f3c350a52b35dd945e5a9eb51e66bbfe595701041b6b7",
        "feb80101245e11c243e48fb613a006b982c3ad6b6e368d6539403f0d2299c004"),
    2: ("602e5ea0fd19126cc5785ad95ac22544158db626d3e9700061bfd76b51e70703",
        "ec667ae53687ac66e77fc161b9f0f0c6aac48fc464c03fadba61278bc2ed290d"),
    3: ("2d9dd60b4e9cb39ef964994f61870e5b382cef4c5988ffa12a94d145c5cfd862",
        "1a04b3c675e5fbab8f1ac6dded12003c7c1607c786b0f3da4137e2f96d80b623"),
}


def _as_before(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = _as_before(getattr(value, f.name))
            if f.name in NEW_FIELDS:
                assert item == NEW_FIELDS[f.name], f"{type(value).__name__}.{f.name} is {item!r} on one host"
                continue
            out[f.name] = item
        return out
    if isinstance(value, (tuple, list)):
        return [_as_before(v) for v in value]
    return value


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(_as_before(value), sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_one_host_is_exactly_the_topology_before_hosts_existed(nodes: int) -> None:
    plan = plan_topology("abc", nodes, zones=("a", "b"), hosts=1)
    assert (_digest(plan.namespaces), _digest(plan.nodes)) == BEFORE_HOSTS[nodes]
    assert plan.router_namespace is None
    assert plan == plan_topology("abc", nodes, zones=("a", "b"))  # and it is the default


def test_nodes_go_to_hosts_round_robin_on_each_hosts_own_lan() -> None:
    plan = plan_topology("abc", 3, hosts=2)
    placed = [(n.name, n.host, n.ipv4, n.ipv6, n.pod_cidr_v4, n.overlay) for n in plan.nodes]
    assert placed == [
        ("node-1", 1, "192.168.0.106", "fd00:192:168::6a", "10.244.1.0/24", "vxlan"),  # the seed's node 1
        ("node-2", 2, "192.168.1.107", "fd00:192:168:1::6b", "10.244.2.0/24", "vxlan"),
        ("node-3", 1, "192.168.0.108", "fd00:192:168::6c", "10.244.3.0/24", "vxlan"),
    ]
    assert plan.nodes[1].lan_cidrs == ("192.168.1.0/24", "fd00:192:168:1::/64")
    assert plan.nodes[0].overlay_cidrs == ("10.244.0.0/16", "fd00:10:244::/56")
    assert [(h.lan_namespace, h.node_cidr_v4, h.router_v4, h.router_v6) for h in plan.hosts] == [
        ("svcnet-abc-lan", "192.168.0.0/24", "192.168.0.1", "fd00:192:168::1"),
        ("svcnet-abc-lan-2", "192.168.1.0/24", "192.168.1.1", "fd00:192:168:1::1"),
    ]
    assert plan.client.ipv4 == "192.168.0.200" and plan.router_namespace == "svcnet-abc-router"


@pytest.mark.parametrize("nodes, hosts", [(2, 0), (2, 3), (20, 17)])
def test_bad_host_counts_are_refused(nodes: int, hosts: int) -> None:
    with pytest.raises(ValueError, match="--hosts must be"):
        plan_topology("abc", nodes, hosts=hosts)


@pytest.mark.parametrize("src, dst, path", [
    ("node-1", "192.168.1.107", ("node-1", "router", "node-2")),  # across hosts: routed
    ("node-2", "fd00:192:168::6a", ("node-2", "router", "node-1")),
    ("node-1", "192.168.0.108", ("node-1", "node-3")),  # same host: one LAN
    ("client", "192.168.1.107", ("client", "router", "node-2")),  # NodePorts on every host
    ("node-2", "192.168.0.100", ("node-2", "router", "control-plane")),  # the API from every host
])
def test_node_addresses_cross_hosts_only_through_the_router(two_hosts: tuple[FakeNetworkKernel, Any], src: str,
                                                           dst: str, path: tuple[str, ...]) -> None:
    kernel, _ = two_hosts
    assert kernel.trace(f"svcnet-abc-{src}", dst) == tuple(f"svcnet-abc-{p}" for p in path)


@pytest.mark.parametrize("src, dst", [("node-1", "10.244.2.1"), ("node-1", "10.244.3.1"), ("node-2", "10.244.1.1"),
                                      ("router", "10.244.1.1")])
def test_no_pod_cidr_is_routed_by_the_topology(two_hosts: tuple[FakeNetworkKernel, Any], src: str, dst: str) -> None:
    kernel, _ = two_hosts
    with pytest.raises(Unreachable):
        kernel.trace(f"svcnet-abc-{src}", dst)


def test_converging_again_keeps_the_overlays_routes_and_prunes_strays(two_hosts: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, plan = two_hosts
    ns = "svcnet-abc-node-1"
    assert apply_topology(kernel, plan) == ()
    kernel.replace_route(ns, Route("10.244.3.0/24", via="192.168.0.108"))  # what the overlay programs
    kernel.replace_route(ns, Route("172.16.0.0/16", via="192.168.0.108"))  # nobody's
    actions = apply_topology(kernel, plan)
    assert actions == ("delete route 172.16.0.0/16 in svcnet-abc-node-1",)
    assert Route("10.244.3.0/24", via="192.168.0.108", dev="eth0") in kernel.list_routes(ns)


def test_a_bad_host_count_is_a_usage_error_before_anything_starts(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--data-dir", str(tmp_path), "--nodes", "2", "--hosts", "3"]) == 2
    assert "--hosts must be 1-2" in capsys.readouterr().err
    assert main(["up", "--data-dir", str(tmp_path), "--nodes", "0", "--hosts", "2"]) == 2
    assert "--hosts needs nodes" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was started or written


def test_the_lb_pool_may_not_take_the_routers_address() -> None:
    with pytest.raises(PoolError, match="192.168.0.1"):
        lb_pool_for(plan_topology("abc", 2, hosts=2), "192.168.0.0/29")


@pytest.mark.parametrize("hosts", [1, 2])
def test_several_hosts_give_the_agents_the_overlays_identity(tmp_path: Path, hosts: int) -> None:
    stages = up.components(ApiServerConfig(data_dir=tmp_path), with_controllers=True, nodes=2, hosts=hosts)
    credentials = next(c for c in stages if type(c).__name__ == "ComponentCredentials")
    supervisor = next(c for c in stages if type(c).__name__ == "AgentSupervisor")
    agent = build_parser().parse_args(supervisor.argv("agent", "node-2")[3:])
    assert supervisor.spec.hosts == hosts and credentials.overlay == (hosts > 1)
    assert agent.overlay_kubeconfig == (str(tmp_path / "kubeconfigs" / "flannel.conf") if hosts > 1 else "")
    assert identities(["node-1"], overlay=True)["flannel"] == (OVERLAY_USER, ())
    assert "flannel" not in identities(["node-1"])


def test_only_the_nodes_on_the_lb_pools_lan_run_the_speaker(tmp_path: Path) -> None:
    stages = up.components(ApiServerConfig(data_dir=tmp_path), with_controllers=True, nodes=3, hosts=2)
    supervisor = next(c for c in stages if type(c).__name__ == "AgentSupervisor")
    speakers = {node: bool(build_parser().parse_args(supervisor.argv("agent", node)[3:]).lb_speaker_kubeconfig)
                for node in ("node-1", "node-2", "node-3")}
    assert speakers == {"node-1": True, "node-2": False, "node-3": True}  # node-2 is on host 2


def test_a_placement_puts_a_node_on_another_host_at_its_own_address() -> None:
    plan = plan_topology("abc", 3, hosts=2, placements=((3, 2),))
    assert [(n.name, n.host, n.ipv4, n.lan_cidrs[0]) for n in plan.nodes] == [
        ("node-1", 1, "192.168.0.106", "192.168.0.0/24"),
        ("node-2", 2, "192.168.1.107", "192.168.1.0/24"),
        ("node-3", 2, "192.168.1.108", "192.168.1.0/24"),  # host 2, the address node 3 has on any LAN
    ]
    lan2 = next(ns for ns in plan.namespaces if ns.name == "svcnet-abc-lan-2")
    assert {link.name for link in lan2.links} >= {"node-2", "node-3", "router"}


@pytest.mark.parametrize(("placements", "message"), [(((4, 2),), "the cluster has nodes 1-3"),
                                                     (((3, 3),), "the cluster has hosts 1-2")])
def test_a_placement_outside_the_cluster_is_refused(placements: tuple[tuple[int, int], ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_topology("abc", 3, hosts=2, placements=placements)
