"""`svcnet up --storage etcd` / `--etcd-members N`: etcd comes first and the API server stores in every
member; the members keep their ports and count; `down`'s sweep ends only this data dir's etcd."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from svcnet.apiserver.daemon import RunningApiServer
from svcnet.cli import build_parser
from svcnet.cluster import up
from svcnet.cluster.etcd import (
    EtcdCluster,
    MembershipChanged,
    etcd_dir,
    member_specs,
    pid_path,
    stop_leftover_etcd,
)
from svcnet.config import ApiServerConfig


def _inner(stage: object) -> object:
    return getattr(stage, "component", stage)


@pytest.mark.parametrize("members", [1, 3])
def test_storage_etcd_starts_etcd_before_the_api_server_which_stores_in_every_member(
    tmp_path: Path, members: int
) -> None:
    stages = [_inner(s) for s in up.components(ApiServerConfig(data_dir=tmp_path, storage_dsn="etcd"),
                                               etcd_members=members)]
    assert [type(s).__name__ for s in stages] == ["EtcdCluster", "RunningApiServer"]
    etcd, api = stages
    assert isinstance(etcd, EtcdCluster) and isinstance(api, RunningApiServer)
    assert len(etcd.specs) == members
    # Only unix sockets in the 0700 directory: no port any local user could reach.
    assert api.config.dsn == "etcd://" + ",".join(str(etcd_dir(tmp_path) / f"{s.name}.client:0") for s in etcd.specs)
    assert all(s.client_url.startswith("unix://") and s.peer_url.startswith("unix://") for s in etcd.specs)
    assert etcd_dir(tmp_path).stat().st_mode & 0o777 == 0o700


def test_the_members_keep_their_names_and_their_number(tmp_path: Path) -> None:
    first = member_specs(tmp_path, 3)
    assert json.loads((etcd_dir(tmp_path) / "members.json").read_text())["members"] == \
        ["svcnet-1", "svcnet-2", "svcnet-3"]
    assert member_specs(tmp_path, 3) == first
    with pytest.raises(MembershipChanged):
        member_specs(tmp_path, 1)


@pytest.mark.parametrize("argv", [["up", "--etcd-members", "0"], ["up", "--etcd-members", "8"],
                                  ["up", "--etcd-members", "three"]])
def test_a_bad_member_count_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(argv)
    assert raised.value.code == 2


def test_a_data_dir_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shorter --data-dir"):
        member_specs(tmp_path / ("d" * 100), 1)


def test_the_sweep_leaves_a_process_that_is_not_this_data_dirs_etcd(tmp_path: Path) -> None:
    etcd_dir(tmp_path).mkdir(mode=0o700)
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_path(tmp_path).write_text(f"{other.pid}\n")
        assert stop_leftover_etcd(tmp_path) == []
        assert other.poll() is None  # still running: the pid file named something else
        assert not pid_path(tmp_path).exists()
    finally:
        other.kill()
        other.wait()
