"""`svcnet up --apiservers N`: what it starts, on which ports, with which files; what it refuses."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from svcnet.cli import build_parser, main
from svcnet.cluster import apiservers, up
from svcnet.cluster.topology import apply_topology, lb_pool_for, plan_topology
from svcnet.config import ApiServerConfig
from svcnet.core.loadbalancer import PoolError
from svcnet.testing.links import FakeNetworkKernel


def names(components: list) -> list[str]:
    return [type(getattr(c, "component", c)).__name__ for c in components]


def etcd_cfg(tmp_path: Path) -> ApiServerConfig:
    return ApiServerConfig(data_dir=tmp_path, port=7443, storage_dsn="etcd://127.0.0.1:2379")


def test_one_api_server_starts_exactly_what_it_did(tmp_path: Path) -> None:
    cfg = etcd_cfg(tmp_path)
    assert names(up.components(cfg, with_controllers=True, nodes=1)) == \
        names(up.components(cfg, with_controllers=True, nodes=1, apiservers=1))
    assert "ApiServerPeers" not in names(up.components(cfg, with_controllers=True, nodes=1))


def test_the_other_servers_and_the_balancer_start_before_ups_own_controllers_and_the_agents(tmp_path: Path) -> None:
    stages = up.components(etcd_cfg(tmp_path), with_controllers=True, nodes=1, apiservers=3)
    assert names(stages)[1:8] == ["RunningApiServer", "ComponentCredentials", "ApiServerPeers", "BalancedClients",
                                  "WithKubeconfig", "WithKubeconfig", "AgentSupervisor"]
    peers = stages[3].component
    balanced = stages[4]
    # Server K on --port + K, the balancer on --port + 1 (k3s's 6444 for 6443); up's own server last.
    assert peers.servers() == ["127.0.0.1:7445", "127.0.0.1:7446"]
    assert balanced.url == "https://127.0.0.1:7444"
    assert balanced.balancer.pool.servers == ["127.0.0.1:7445", "127.0.0.1:7446", "127.0.0.1:7443"]


def test_each_peer_runs_an_api_server_over_the_same_store_and_its_own_elected_controllers(tmp_path: Path) -> None:
    peers = next(s.component for s in up.components(etcd_cfg(tmp_path), with_controllers=True, nodes=1,
                                                     apiservers=2) if names([s]) == ["ApiServerPeers"])
    parser = build_parser()
    server = parser.parse_args(peers.argv(2, "apiserver")[3:])
    assert (server.command, server.port, server.storage, server.data_dir) == (
        "apiserver", 7445, "etcd://127.0.0.1:2379", str(tmp_path / "apiservers" / "apiserver-2"))
    manager = parser.parse_args(peers.argv(2, "controller-manager")[3:])
    scheduler = parser.parse_args(peers.argv(2, "scheduler")[3:])
    assert manager.leader_elect and scheduler.leader_elect
    assert scheduler.controllers == "scheduler"
    assert "scheduler" not in manager.controllers.split(",") and "replicaset" in manager.controllers.split(",")
    assert manager.kubeconfig == str(tmp_path / "apiservers" / "apiserver-2" / "controller-manager.conf")
    assert manager.service_account_private_key_file == str(tmp_path / "pki" / "sa.key")


def test_a_peer_gets_the_clusters_pki_and_kubeconfigs_naming_its_own_server(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.key").write_text("secret")
    (tmp_path / "kubeconfigs").mkdir()
    for role in ("controller-manager", "scheduler"):
        (tmp_path / "kubeconfigs" / f"{role}.conf").write_text(yaml.safe_dump(
            {"clusters": [{"name": "svcnet", "cluster": {"server": "https://127.0.0.1:7443"}}]}))
    peers = apiservers.ApiServerPeers(tmp_path, 2, 7443, "etcd://x:1", ["replicaset"], api=lambda: None)
    directory = apiservers.peer_dir(tmp_path, 2)
    peers._prepare(directory, 2)
    assert (directory / "pki" / "ca.key").read_text() == "secret"
    assert stat.S_IMODE((directory / "pki" / "ca.key").stat().st_mode) == 0o600
    conf = directory / "controller-manager.conf"
    assert yaml.safe_load(conf.read_text())["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7445"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    # the cluster's own file is untouched: up's controller manager keeps its server
    assert "7443" in (tmp_path / "kubeconfigs" / "controller-manager.conf").read_text()


@pytest.mark.parametrize("argv", [["up", "--apiservers", "2"], ["up", "--apiservers", "2", "--storage", "memory://"],
                                  ["up", "--apiservers", "2", "--storage", "sqlite:///tmp/x.db"]])
def test_several_api_servers_without_etcd_are_a_usage_error(argv: list[str], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--data-dir", str(tmp_path / "d"), "--nodes", "0"]) == 2
    assert "needs --storage etcd" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # nothing was started or written


def test_the_count_is_bounded() -> None:
    assert apiservers.check_apiservers(0, "etcd") and apiservers.check_apiservers(8, "etcd")
    assert apiservers.check_apiservers(2, "etcd") is None
    assert apiservers.check_apiservers(3, "etcd://10.0.0.1:2379") is None


def test_detached_up_passes_the_count_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class Child:
        pid = 1
        returncode = 1

        def poll(self) -> int:
            return 1

    monkeypatch.setattr(up.subprocess, "Popen", lambda argv, **_: seen.append(argv) or Child())
    up.start_detached(ApiServerConfig(data_dir=tmp_path), nodes=1, resolv_conf="", timeout=1, storage="etcd",
                      apiservers=2)
    assert seen[0][seen[0].index("--apiservers") + 1] == "2"


def test_the_sweep_ends_only_processes_that_name_the_peers_dir(tmp_path: Path) -> None:
    directory = apiservers.peer_dir(tmp_path, 2)
    directory.mkdir(parents=True)
    (directory / "apiserver.pid").write_text("1\n")  # init: not ours, never signalled
    assert apiservers.stop_leftover_peers(tmp_path, timeout=0.1) == []
    assert not (directory / "apiserver.pid").exists()


# ---- on the cluster's LAN


def test_server_k_has_a_namespace_and_the_lan_address_80_plus_k() -> None:
    plan = plan_topology("c1", 2, etcd_members=1, apiservers=3)
    assert [(p.namespace, p.ipv4, p.ipv6, p.lan_port) for p in plan.apiservers] == [
        ("svcnet-c1-apiserver-2", "192.168.0.82", "fd00:192:168::52", "apiserver-2"),
        ("svcnet-c1-apiserver-3", "192.168.0.83", "fd00:192:168::53", "apiserver-3"),
    ]
    assert plan_topology("c1", 2).apiservers == ()


@pytest.mark.parametrize("hosts", [1, 2])
def test_a_peer_is_on_host_1s_lan_reachable_from_every_node_and_namespaces_go_with_the_plan(hosts: int) -> None:
    kernel = FakeNetworkKernel()
    apply_topology(kernel, plan_topology("c1", 2, hosts=hosts, apiservers=2))
    assert kernel.reachable("svcnet-c1-node-2", "192.168.0.82")  # pods reach it masqueraded as their node
    assert kernel.reachable("svcnet-c1-apiserver-2", "192.168.0.106")  # and it dials the kubelets
    apply_topology(kernel, plan_topology("c1", 2, hosts=hosts))
    assert not [n for n in kernel.list_namespaces() if "-apiserver-" in n]


def test_peer_addresses_that_clash_are_refused_and_a_pool_may_not_hold_one() -> None:
    with pytest.raises(ValueError, match="API servers: 1 to 7"):
        plan_topology("c1", 1, apiservers=8)
    with pytest.raises(ValueError, match=r"API server 2's address \(host 82\) is a node's"):
        plan_topology("c1", 1, apiservers=2, first_node_host=82)
    with pytest.raises(PoolError):
        lb_pool_for(plan_topology("c1", 1, apiservers=3), "192.168.0.80/29")


def test_a_peer_on_the_lan_listens_on_the_first_servers_port_there_and_names_its_address_in_cluster_info(
        tmp_path: Path) -> None:
    stages = up.components(etcd_cfg(tmp_path), with_controllers=True, nodes=1, apiservers=2)
    peers = next(s.component for s in stages if names([s]) == ["ApiServerPeers"])
    args = build_parser().parse_args(peers.argv(2, "apiserver")[3:])
    network = next(s for s in stages if names([s]) == ["ClusterNetwork"])
    assert (args.netns, args.advertise_address, args.advertise_port, args.port) == (
        network.spec.plan().apiservers[0].namespace, "192.168.0.82", 7443, 7445)
    assert args.control_plane_endpoint == "192.168.0.100:7443"  # the first server's, left as it is


def test_a_server_in_a_namespace_needs_the_address_it_listens_on(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["apiserver", "--data-dir", str(tmp_path), "--netns", "svcnet-c1-apiserver-2"])
    assert exc.value.code == 2
    assert "give --advertise-address" in capsys.readouterr().err


def test_the_endpoint_port_is_the_advertised_one(tmp_path: Path) -> None:
    from svcnet.apiserver.daemon import external_address

    cfg = ApiServerConfig(data_dir=tmp_path, port=7445, advertise_address="192.168.0.82", advertise_port=7443)
    assert (cfg.endpoint_port, external_address(cfg)) == (7443, "192.168.0.82:7443")
    assert ApiServerConfig(port=7445).endpoint_port == 7445
