"""etcd's command line for a member: on loopback for the tests, in a namespace with peer TLS for `up`."""
from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.kernel.etcdserver import MemberSpec, PeerTls, member_command, peer_tls_flags


def test_a_loopback_member_has_no_namespace_and_plain_http_peers(tmp_path: Path) -> None:
    argv = member_command(MemberSpec("m", tmp_path, 2379, 2380))
    assert argv[0].endswith("etcd")
    assert "--listen-peer-urls=http://127.0.0.1:2380" in argv
    assert peer_tls_flags(MemberSpec("m", tmp_path, 2379, 2380)) == []


def test_a_member_on_the_lan_without_tls_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need TLS"):
        member_command(MemberSpec("m", tmp_path, socket_dir=tmp_path, namespace="ns", peer_ip="192.168.0.91"))


def test_a_member_on_the_lan_demands_client_certificates_of_its_peers(tmp_path: Path) -> None:
    spec = MemberSpec("m", tmp_path, socket_dir=tmp_path, namespace="svcnet-x-etcd-1", peer_ip="192.168.0.91",
                      peer_tls=PeerTls(tmp_path / "p.crt", tmp_path / "p.key", tmp_path / "ca.crt"))
    assert spec.peer_url == "https://192.168.0.91:2380"
    assert spec.client_url == "unix://m.client:0"
    assert peer_tls_flags(spec) == [f"--peer-cert-file={tmp_path}/p.crt", f"--peer-key-file={tmp_path}/p.key",
                                    f"--peer-trusted-ca-file={tmp_path}/ca.crt", "--peer-client-cert-auth"]
    assert member_command(spec)[:4] == ["ip", "netns", "exec", "svcnet-x-etcd-1"]
