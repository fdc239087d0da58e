"""`svcnet up --storage etcd`: the etcd member comes first and the API server stores in it; `down`'s
sweep ends only an etcd of this data dir."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from svcnet.apiserver.daemon import RunningApiServer
from svcnet.cluster import up
from svcnet.cluster.etcd import EtcdMember, etcd_dir, member_spec, pid_path, stop_leftover_etcd
from svcnet.config import ApiServerConfig


def _inner(stage: object) -> object:
    return getattr(stage, "component", stage)


def test_storage_etcd_starts_etcd_before_the_api_server_which_stores_there(tmp_path: Path) -> None:
    stages = [_inner(s) for s in up.components(ApiServerConfig(data_dir=tmp_path, storage_dsn="etcd"))]
    assert [type(s).__name__ for s in stages] == ["EtcdMember", "RunningApiServer"]
    member, api = stages
    assert isinstance(member, EtcdMember) and isinstance(api, RunningApiServer)
    assert api.config.dsn == f"etcd://127.0.0.1:{member.spec.client_port}"
    assert etcd_dir(tmp_path).stat().st_mode & 0o777 == 0o700


def test_the_member_keeps_its_ports_across_starts(tmp_path: Path) -> None:
    first = member_spec(tmp_path)
    assert json.loads((etcd_dir(tmp_path) / "ports.json").read_text()) == \
        {"client": first.client_port, "peer": first.peer_port}
    assert member_spec(tmp_path) == first


def test_the_sweep_leaves_a_process_that_is_not_this_data_dirs_etcd(tmp_path: Path) -> None:
    etcd_dir(tmp_path).mkdir(mode=0o700)
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_path(tmp_path).write_text(f"{other.pid}\n")
        assert stop_leftover_etcd(tmp_path) is None
        assert other.poll() is None  # still running: the pid file named something else
        assert not pid_path(tmp_path).exists()
    finally:
        other.kill()
        other.wait()
