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
        "ClusterNetwork", "RunningApiServer", "ControllerManager", "AgentSupervisor", "NodesReadyGate",
        "ClusterDnsAddon", "ReadyMarker"]


def test_apiserver_alone_is_one_component(tmp_path: Path) -> None:
    assert names(up.components(ApiServerConfig(data_dir=tmp_path))) == ["RunningApiServer"]


def test_up_without_nodes_runs_the_api_server_and_controllers(tmp_path: Path) -> None:
    cfg = ApiServerConfig(data_dir=tmp_path)
    assert names(up.components(cfg, with_controllers=True)) == ["RunningApiServer", "ControllerManager"]
