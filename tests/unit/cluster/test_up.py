"""The one list of what `svcnet up` starts: its order is the order of readiness."""
from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.cluster import up
from svcnet.config import ApiServerConfig


def names(components: list) -> list[str]:
    return [type(getattr(c, "component", c)).__name__ for c in components]


def test_up_with_nodes_starts_the_network_first_and_marks_ready_last(tmp_path: Path) -> None:
    cfg = ApiServerConfig(data_dir=tmp_path)
    assert names(up.components(cfg, with_controllers=True, nodes=2)) == [
        "ClusterNetwork", "RunningApiServer", "ComponentCredentials", "WithKubeconfig", "WithKubeconfig",
        "AgentSupervisor", "NodesReadyGate", "ClusterDnsAddon", "ReadyMarker"]


def test_apiserver_alone_is_one_component(tmp_path: Path) -> None:
    assert names(up.components(ApiServerConfig(data_dir=tmp_path))) == ["RunningApiServer"]


def test_up_without_nodes_runs_the_api_server_and_controllers(tmp_path: Path) -> None:
    cfg = ApiServerConfig(data_dir=tmp_path)
    assert names(up.components(cfg, with_controllers=True)) == [
        "RunningApiServer", "ComponentCredentials", "WithKubeconfig", "WithKubeconfig"]


def test_the_controller_manager_and_the_scheduler_run_with_their_own_kubeconfigs(tmp_path: Path) -> None:
    cfg = ApiServerConfig(data_dir=tmp_path)
    stages = up.components(cfg, with_controllers=True)
    paths = [s.component.path for s in stages[2:]]
    assert paths == [tmp_path / "kubeconfigs" / "controller-manager.conf", tmp_path / "kubeconfigs" / "scheduler.conf"]
    credentials = stages[1]
    assert "scheduler" not in credentials.controller_names and "replicaset" in credentials.controller_names


def test_agents_and_proxies_get_their_own_kubeconfigs(tmp_path: Path) -> None:
    from svcnet.cli import build_parser

    supervisor = next(c for c in up.components(ApiServerConfig(data_dir=tmp_path), with_controllers=True, nodes=2)
                      if type(c).__name__ == "AgentSupervisor")
    agent = build_parser().parse_args(supervisor.argv("agent", "node-2")[3:])
    assert agent.kubeconfig == str(tmp_path / "kubeconfigs" / "kubelet-node-2.conf")
    proxy_argv = supervisor.argv("proxy", "node-1")
    assert proxy_argv[proxy_argv.index("--kubeconfig") + 1] == str(tmp_path / "kubeconfigs" / "kube-proxy.conf")


def test_the_proxy_mode_reaches_every_nodes_proxy_command_line(tmp_path: Path) -> None:
    from svcnet.cli import build_parser
    from svcnet.proxy import daemon

    for argv, mode in ((["up"], "iptables"), (["up", "--proxy-mode", "nftables"], "nftables")):
        args = build_parser().parse_args(argv)
        cfg = ApiServerConfig(data_dir=tmp_path)
        supervisor = next(c for c in up.components(cfg, with_controllers=True, nodes=2, proxy_mode=args.proxy_mode)
                          if type(c).__name__ == "AgentSupervisor")
        assert supervisor.spec.proxy_mode == mode
        for node in ("node-1", "node-2"):
            proxy_argv = supervisor.argv("proxy", node)
            assert proxy_argv[proxy_argv.index("--proxy-mode") + 1] == mode
            # ...and the proxy reads it as its mode.
            parsed = daemon.build_parser().parse_args(proxy_argv[proxy_argv.index("run"):])
            assert daemon.config_from_args(parsed).settings.mode == mode


def test_zones_reach_each_agents_node_label_round_robin(tmp_path: Path) -> None:
    """`svcnet up --zones a,b` with three nodes: node-1 in a, node-2 in b, node-3 in a again, read back
    from cluster.json the way each agent reads its node's plan."""
    from svcnet.agent.node import HostFacts, NodeIdentity, node_object
    from svcnet.cli import build_parser
    from svcnet.cluster.spec import save_cluster_spec
    from svcnet.cluster.supervisor import agent_settings

    args = build_parser().parse_args(["up", "--nodes", "3", "--zones", "a,b"])
    supervisor = next(c for c in up.components(ApiServerConfig(data_dir=tmp_path), with_controllers=True,
                                               nodes=args.nodes, zones=args.zones)
                      if type(c).__name__ == "AgentSupervisor")
    save_cluster_spec(tmp_path, supervisor.spec)
    zones = {}
    for name in ("node-1", "node-2", "node-3"):
        plan, _, _ = agent_settings(tmp_path, name, cluster_dns=("10.96.0.10",), cluster_domain="cluster.local")
        node = node_object(NodeIdentity(name, plan.addresses, plan.pod_cidrs, zone=plan.zone),
                           HostFacts(2, 1024, "6.1", "Linux", "amd64"))
        zones[name] = node["metadata"]["labels"].get("topology.kubernetes.io/zone")
    assert zones == {"node-1": "a", "node-2": "b", "node-3": "a"}


def test_without_zones_nodes_get_no_zone_label(tmp_path: Path) -> None:
    from svcnet.agent.node import HostFacts, NodeIdentity, node_object

    node = node_object(NodeIdentity("node-1", ("192.168.0.106",), ("10.244.1.0/24",)),
                       HostFacts(2, 1024, "6.1", "Linux", "amd64"))
    assert "topology.kubernetes.io/zone" not in node["metadata"]["labels"]


def test_bad_zones_are_refused_by_the_flag_parser(capsys: pytest.CaptureFixture[str]) -> None:
    from svcnet.cli import build_parser

    for value in ("a,,b", "not a label!"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(["up", "--zones", value])
        assert exit_info.value.code == 2
        assert "--zones" in capsys.readouterr().err


def test_detached_up_passes_the_zones_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`up --detach` re-runs `svcnet up` in the background: the zones must be on that command line."""
    seen: list[list[str]] = []

    class Child:
        pid = 1
        returncode = 1

        def poll(self) -> int:
            return 1

    def fake_popen(argv: list[str], **_: object) -> Child:
        seen.append(argv)
        return Child()

    monkeypatch.setattr(up.subprocess, "Popen", fake_popen)
    up.start_detached(ApiServerConfig(data_dir=tmp_path), nodes=2, resolv_conf="", timeout=1, storage="",
                      zones=("a", "b"))
    assert seen[0][seen[0].index("--zones") + 1] == "a,b"
