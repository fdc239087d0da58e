"""The one list of what `svcnet up` starts: its order is the order of readiness."""
from __future__ import annotations

from pathlib import Path

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
