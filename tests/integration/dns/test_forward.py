"""Names outside the cluster zones: forwarded to a test upstream, cached, loops cut."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import REPO, free_port
from tests.integration.dns.harness import DnsProcess, dig, dig_available
from tests.unit.dns.cases import CLUSTER, LOCAL_IP
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(not dig_available(), reason="dig (dnsutils) is not installed")


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.dns.upstream", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def upstream_count(upstream: int, name: str) -> int:
    got = dig(upstream, f"{name}queries.test.", "TXT")
    return int(got.answer[0].split()[-1].strip('"'))


@pytest.fixture(scope="module")
def server(upstream: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsProcess]:
    log = tmp_path_factory.mktemp("fwd") / "dns.log"
    proc = DnsProcess(["--from", str(CLUSTER), "--upstream", f"127.0.0.1:{upstream}", "--pod-ip", LOCAL_IP,
                       "--workers", "1"], log).start()
    yield proc
    proc.stop()


def test_name_outside_the_zone_is_forwarded_with_recursion_available(server: DnsProcess) -> None:
    got = dig(server.port, "www.example.org.", "A")
    assert got.status == "NOERROR" and got.answer == ["www.example.org. 300 IN A 192.0.2.1"]
    assert "ra" in got.flags and "aa" not in got.flags


def test_forwarded_answer_is_cached(server: DnsProcess, upstream: int) -> None:
    first = dig(server.port, "cached.example.org.", "A")
    second = dig(server.port, "cached.example.org.", "A")
    assert first.status == second.status == "NOERROR"
    assert second.answer[0].split()[-1] == "192.0.2.1"
    assert upstream_count(upstream, "cached.example.org.") == 1
    assert int(second.answer[0].split()[1]) <= 300


def test_nxdomain_is_forwarded_and_cached_negatively(server: DnsProcess, upstream: int) -> None:
    for _ in range(3):
        got = dig(server.port, "nx.example.org.", "A")
        assert got.status == "NXDOMAIN" and got.authority[0].split()[3] == "SOA"
    assert upstream_count(upstream, "nx.example.org.") == 1


def test_external_name_outside_the_zone_is_chased_upstream(server: DnsProcess) -> None:
    got = dig(server.port, "ext.default.svc.cluster.local.", "A")
    assert got.status == "NOERROR" and "aa" in got.flags
    assert got.answer == ["ext.default.svc.cluster.local. 5 IN CNAME example.org.",
                          "example.org. 300 IN A 192.0.2.1"]


def test_reverse_name_the_cluster_does_not_know_falls_through_upstream(server: DnsProcess) -> None:
    got = dig(server.port, "9.9.9.9.in-addr.arpa.", "PTR")
    assert got.answer == ["9.9.9.9.in-addr.arpa. 300 IN PTR dns9.quad9.net."]
    known = dig(server.port, "1.0.96.10.in-addr.arpa.", "PTR")
    assert known.answer == ["1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."]


def test_truncated_upstream_answer_is_fetched_over_tcp(server: DnsProcess) -> None:
    got = dig(server.port, "big.example.org.", "TXT", "+tcp")
    assert got.status == "NOERROR" and len(got.answer) == 40
    udp = dig(server.port, "big.example.org.", "TXT", "+ignore", "+noedns")
    assert "tc" in udp.flags


def test_dead_upstream_is_skipped(upstream: int, tmp_path: Path) -> None:
    dead = free_port()
    proc = DnsProcess(["--from", str(CLUSTER), "--upstream", f"127.0.0.1:{dead}", "--upstream",
                       f"127.0.0.1:{upstream}", "--workers", "1"], tmp_path / "dns.log").start()
    try:
        for i in range(4):
            got = dig(proc.port, f"h{i}.example.org.", "A", "+time=5")
            assert got.status == "NOERROR", got.raw
    finally:
        proc.stop()


def test_upstream_that_is_this_server_is_never_used(tmp_path: Path) -> None:
    port = free_port()
    proc = DnsProcess(["--from", str(CLUSTER), "--upstream", f"127.0.0.1:{port}", "--workers", "1"],
                      tmp_path / "dns.log", port=port).start()
    try:
        got = dig(proc.port, "example.org.", "A")
        assert got.status in ("SERVFAIL", "REFUSED")
        assert dig(proc.port, "kubernetes.default.svc.cluster.local.", "A").status == "NOERROR"
        assert "is this server itself" in proc.log_text()
    finally:
        proc.stop()


def test_two_servers_forwarding_to_each_other_detect_the_loop(tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    a = DnsProcess(["--from", str(CLUSTER), "--upstream", f"127.0.0.1:{port_b}", "--workers", "1"],
                   tmp_path / "a.log", port=port_a)
    b = DnsProcess(["--from", str(CLUSTER), "--upstream", f"127.0.0.1:{port_a}", "--workers", "1"],
                   tmp_path / "b.log", port=port_b)
    try:
        a.start()
        b.start()
        wait_for(lambda: "loop detected" in a.log_text() + b.log_text(), timeout=10, what="loop detection")
        got = dig(a.port, "loop.example.org.", "A", "+time=8")
        assert got.status == "SERVFAIL"
        assert a.alive() and b.alive()
        assert dig(a.port, "kubernetes.default.svc.cluster.local.", "A").status == "NOERROR"
    finally:
        a.stop()
        b.stop()
