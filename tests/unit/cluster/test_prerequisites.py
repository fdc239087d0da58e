"""`svcnet up`'s checks before it changes anything: each problem named with its fix."""
from __future__ import annotations

from pathlib import Path

from svcnet.cluster.lifecycle import check_prerequisites
from tests.integration.apiserver_harness import free_port


def everything(_: str) -> str:
    return "/usr/sbin/tool"


def test_a_ready_machine_has_no_problems(tmp_path: Path) -> None:
    assert check_prerequisites("127.0.0.1", free_port(), euid=0, which=everything) == []


def test_each_missing_piece_is_named_with_what_to_do(tmp_path: Path) -> None:
    problems = check_prerequisites("127.0.0.1", free_port(), euid=1000, which=lambda _: None,
                                   resolv_conf=str(tmp_path / "missing.conf"),
                                   netns_support=tmp_path / "no-ns")
    text = "\n".join(problems)
    assert "must run as root" in text and "sudo" in text
    assert "no network namespaces" in text
    assert "`ip` is not installed (package iproute2)" in text
    assert "neither `iptables` nor `nft` is installed (packages iptables, nftables)" in text
    assert f"--resolv-conf {tmp_path / 'missing.conf'}: No such file or directory" in text
    assert len(problems) == 6  # root, netns, ip, nsenter, iptables/nft, resolv.conf
