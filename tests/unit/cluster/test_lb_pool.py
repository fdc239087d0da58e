"""`svcnet up --lb-pool`: the default pool, the usage errors, and how the pool reaches the
controller manager and the speakers."""
from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.cli import build_parser, main
from svcnet.cluster import up
from svcnet.cluster.identities import LB_SPEAKER_USER, identities
from svcnet.cluster.spec import ClusterSpec
from svcnet.cluster.topology import lb_pool_for
from svcnet.config import ApiServerConfig


def test_the_default_pools_are_the_top_of_each_node_network():
    pools = lb_pool_for(ClusterSpec("x", 2).plan(), None)
    assert pools.cidr == "192.168.0.240/28,fd00:192:168:0:ffff:ffff:ffff:fff0/124"
    v6 = pools.of_family("IPv6")
    assert v6 is not None and len(v6.addresses) == 15  # the all-ones address is never handed out
    assert str(v6.addresses[0]) == "fd00:192:168:0:ffff:ffff:ffff:fff0"


def test_an_ipv4_only_lan_has_only_the_ipv4_default_pool():
    spec = ClusterSpec("x", 2, node_cidr_v6=None, pod_cidr_v6=None)
    assert lb_pool_for(spec.plan(), None).cidr == "192.168.0.240/28"


def test_one_cidr_per_family_in_either_order():
    pools = lb_pool_for(ClusterSpec("x", 2).plan(), "fd00:192:168::f0/124, 192.168.0.224/29")
    assert pools.cidr == "192.168.0.224/29,fd00:192:168::f0/124"
    assert lb_pool_for(ClusterSpec("x", 2).plan(), "fd00:192:168::f0/124").cidr == "fd00:192:168::f0/124"


@pytest.mark.parametrize("cidr, complaint", [
    ("192.168.0.300/28", "is not a CIDR"),
    ("192.168.0.104/29", "overlaps addresses in use on the LAN: 192.168.0.106, 192.168.0.107"),
    ("192.168.0.200/32", "overlaps addresses in use on the LAN: 192.168.0.200"),
    ("10.96.0.0/28", "is not inside the nodes' network 192.168.0.0/24"),
    ("192.168.0.240/28,192.168.0.224/29", "has more than one IPv4 CIDR"),
    ("fd00:192:168::f0/124,fd00:192:168::e0/124", "has more than one IPv6 CIDR"),
    ("fd00:10:96::/124", "is not inside the nodes' network fd00:192:168::/64"),
    ("fd00:192:168::60/124", "overlaps addresses in use on the LAN: fd00:192:168::64, fd00:192:168::6a"),
])
def test_a_bad_pool_is_a_usage_error_before_anything_starts(tmp_path: Path, capsys, cidr, complaint):
    code = main(["up", "--data-dir", str(tmp_path), "--lb-pool", cidr])
    assert code == 2
    assert complaint in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was started or written


def components(tmp_path: Path, lb_pool: str = "") -> list:
    return up.components(ApiServerConfig(data_dir=tmp_path), with_controllers=True, nodes=2, lb_pool=lb_pool)


def test_the_pool_reaches_the_controller_manager_and_the_agents_run_the_speaker(tmp_path: Path):
    stages = components(tmp_path, "192.168.0.224/29")
    credentials = next(c for c in stages if type(getattr(c, "component", c)).__name__ == "ComponentCredentials")
    assert "service-lb" in credentials.controller_names and credentials.lb_speaker
    supervisor = next(c for c in stages if type(c).__name__ == "AgentSupervisor")
    assert supervisor.spec.lb_pool == "192.168.0.224/29"
    agent = build_parser().parse_args(supervisor.argv("agent", "node-1")[3:])
    assert agent.lb_speaker_kubeconfig == str(tmp_path / "kubeconfigs" / "lb-speaker.conf")


def test_the_speaker_has_an_identity_of_its_own():
    assert identities(["node-1"], lb_speaker=True)["lb-speaker"] == (LB_SPEAKER_USER, ())
    assert "lb-speaker" not in identities(["node-1"])


def test_without_nodes_there_is_no_pool_and_no_service_lb_controller(tmp_path: Path):
    stages = up.components(ApiServerConfig(data_dir=tmp_path), with_controllers=True)
    credentials = stages[1]
    assert "service-lb" not in credentials.controller_names and not credentials.lb_speaker


def test_the_controller_manager_runs_service_lb_only_with_a_valid_pool():
    from svcnet.client.config import unix_socket_config
    from svcnet.controllers import daemon
    from svcnet.controllers.loadbalancer import LoadBalancerController

    config = unix_socket_config(Path("/nonexistent.sock"))
    with pytest.raises(ValueError, match="is not a CIDR"):
        daemon.controller_manager(config, None, daemon.ControllerFiles(lb_pool="nope"))
    with pytest.raises(ValueError, match="service-lb needs --lb-pool"):
        daemon.controller_manager(config, ["service-lb"], daemon.ControllerFiles())

    def makes_lb(files: daemon.ControllerFiles) -> bool:
        factories = daemon.controller_manager(config, None, files)._controller_factories
        return any(getattr(f, "func", f) is LoadBalancerController for f in factories)
    assert makes_lb(daemon.ControllerFiles(lb_pool="192.168.0.240/28"))
    assert not makes_lb(daemon.ControllerFiles())
