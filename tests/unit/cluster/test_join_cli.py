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
