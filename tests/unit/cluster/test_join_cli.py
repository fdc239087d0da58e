"""`svcnet node join` and `svcnet token create` refuse bad input before anything is made or sent."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path

import pytest

from svcnet import cli
from svcnet.cluster import join
from svcnet.core import bootstraptoken as bt
from svcnet.core import pki


@pytest.mark.parametrize(("args", "message"), [
    (["--server", "http://192.168.0.100:6443"], "--server must be the API server's https:// URL"),
    (["--token", "not-a-token"], "--token must be of the form [a-z0-9]{6}.[a-z0-9]{16}"),
    (["--name", "Node_3"], "--name 'Node_3': a lowercase RFC 1123 subdomain"),
    (["--ca-cert-hash", ""], "give --ca-cert-hash"),
])
def test_bad_join_input_is_refused_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          args: list[str], message: str) -> None:
    flags = {"--server": "https://127.0.0.1:9", "--token": "abcdef.0123456789abcdef", "--name": "node-3",
             "--ca-cert-hash": "sha256:00"}
    flags.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["node", "join", "--data-dir", str(tmp_path / "node")]
    for flag, value in flags.items():
        if value:
            argv += [flag, value]
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "node").exists()


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("0", 0), ("1s", 1)])
def test_ttl_takes_go_durations(text: str, seconds: float) -> None:
    assert cli._duration(text) == seconds


def test_a_bad_ttl_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["token", "create", "--ttl", "5x"])
    assert exit_.value.code == 2
    assert "invalid duration '5x'" in capsys.readouterr().err


def test_token_list_prints_kubeadms_columns() -> None:
    now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    body = bt.secret_body(bt.Token("abcdef", "0123456789abcdef"), now, dt.timedelta(hours=24), description="lab")
    secret = {**body, "data": {k: base64.b64encode(v.encode()).decode() for k, v in body["stringData"].items()}}
    assert join.token_rows([secret], now) == [["abcdef.0123456789abcdef", "24h", "2026-12-08T12:00:00Z",
                                               "authentication,signing", "lab",
                                               "system:bootstrappers:kubeadm:default-node-token"]]


def test_token_delete_refuses_what_is_neither_a_token_nor_an_id() -> None:
    class NoApi:
        async def delete(self, *args: object) -> None:
            raise AssertionError("nothing may be deleted")

    with pytest.raises(join.JoinError, match="didn't match pattern"):
        asyncio.run(join.delete_token(NoApi(), "ABCDEF"))


def test_a_current_node_kubeconfig_is_kept_and_anything_else_bootstraps_again(tmp_path: Path) -> None:
    key = pki.new_key()
    ca = pki.Authority.from_pem(pki.cert_pem(pki.issue_ca("svcnet-ca", key)), pki.key_pem(key))
    node_key = pki.new_key()

    def written(user: str, days: int) -> Path:
        cert = pki.issue_client(ca, user, ("system:nodes",), node_key.public_key(), days=days)
        return join.write_node_kubeconfigs(tmp_path, "https://10.0.0.1:6443", pki.cert_pem(ca.cert), "node-3",
                                           pki.cert_pem(cert), pki.key_pem(node_key))

    now = dt.datetime.now(dt.UTC)
    path = written("system:node:node-3", 365)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert join.identity_current(path, "https://10.0.0.1:6443", "node-3", now)
    assert not join.identity_current(path, "https://10.0.0.2:6443", "node-3", now)  # another server
    assert not join.identity_current(path, "https://10.0.0.1:6443", "node-4", now)  # another node
    assert not join.identity_current(path, "https://10.0.0.1:6443", "node-3", now + dt.timedelta(days=365))
    assert not join.identity_current(tmp_path / "missing.conf", "https://10.0.0.1:6443", "node-3", now)


def test_host_needs_a_simulated_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["node", "join", "--server", "https://127.0.0.1:9", "--token", "abcdef.0123456789abcdef",
            "--ca-cert-hash", "sha256:00", "--name", "node-3", "--host", "2", "--data-dir", str(tmp_path / "node")]
    assert cli.main(argv) == 1
    assert "--host places a node on a host of a simulated cluster: give --lan-of too" in capsys.readouterr().err
    assert not (tmp_path / "node").exists()


def _cluster_dir(tmp_path: Path, hosts: int) -> Path:
    from svcnet.cluster.spec import ClusterSpec, save_cluster_spec

    save_cluster_spec(tmp_path / "cluster", ClusterSpec(cluster_id="abc", nodes=2, hosts=hosts))
    return tmp_path / "cluster"


def test_a_node_joined_onto_host_2_is_the_next_node_there_and_makes_only_its_own_network(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(join.SimulatedHost, "_next_index", staticmethod(lambda spec: 3))
    host = join.SimulatedHost(_cluster_dir(tmp_path, 2), tmp_path / "node", 2)
    assert (host.node.name, host.node.host, host.node.ipv4, host.node.overlay) == ("node-3", 2, "192.168.1.108",
                                                                                    "vxlan")
    made = {ns.name: ns for ns in host.network()}
    assert sorted(made) == ["svcnet-abc-lan-2", "svcnet-abc-node-3"]  # nothing of node-1, node-2 or the router
    assert [link.name for link in made["svcnet-abc-lan-2"].links] == ["lo", "br-lan", "node-3"]
    with pytest.raises(join.JoinError, match="--host 3: the cluster in .* has hosts 1-2"):
        join.SimulatedHost(_cluster_dir(tmp_path, 2), tmp_path / "other", 3)


def test_host_2_of_a_one_host_cluster_is_refused(tmp_path: Path) -> None:
    with pytest.raises(join.JoinError, match="--host 2: the cluster in .* has host 1"):
        join.SimulatedHost(_cluster_dir(tmp_path, 1), tmp_path / "node", 2)


@pytest.mark.parametrize("content", [b"", b"not a token", b"a.b.c\nd.e.f", b"x" * 20000])
def test_an_overlay_token_file_that_holds_no_token_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(b"ca")
    (tmp_path / "token").write_bytes(content)
    with pytest.raises(join.JoinError, match="not a ServiceAccount token"):
        join.write_overlay_kubeconfig(tmp_path, "https://10.0.0.1:6443", tmp_path / "token")
    assert not (tmp_path / "kubeconfigs").exists()


def test_the_overlay_kubeconfig_holds_the_token_privately(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(b"ca")
    (tmp_path / "token").write_text("aaa.bbb.ccc\n")
    path = join.write_overlay_kubeconfig(tmp_path, "https://10.0.0.1:6443", tmp_path / "token")
    assert path == tmp_path / "kubeconfigs" / "flannel.conf" and path.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["users"][0] == {"name": "system:serviceaccount:kube-flannel:flannel", "user": {"token": "aaa.bbb.ccc"}}
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.0.0.1:6443"


def test_down_ends_a_joined_node_by_its_pid_lock_and_forgets_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    from svcnet.kernel import process

    cluster, node_dir = tmp_path / "cluster", tmp_path / "node"
    (cluster / join.JOINED_DIR).mkdir(parents=True)
    (cluster / join.JOINED_DIR / "node-3").write_text(f"{node_dir}\n")
    (cluster / join.JOINED_DIR / "node-4").write_text(f"{tmp_path / 'gone'}\n")  # a node that is not running
    # stands in for `svcnet node join --data-dir NODE_DIR`: holds the pid lock until SIGTERM
    child = ("import sys, time; from pathlib import Path; from svcnet.kernel.process import PidLock; "
             "PidLock(Path(sys.argv[2]) / 'svcnet.pid').acquire(); print('ready', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", child, "join", str(node_dir)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert process.is_locked(node_dir / "svcnet.pid")
        assert asyncio.run(join.stop_joined_nodes(cluster, timeout=10)) == ["node-3", "node-4"]
        assert proc.wait(timeout=10) == -15
        assert list((cluster / join.JOINED_DIR).iterdir()) == []
    finally:
        proc.kill()
        proc.wait()
