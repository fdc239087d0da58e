"""`svcnet dns` caps UDP replies at min(client's EDNS size, --bufsize) with TC, and TCP carries the answer.

Against a running `svcnet dns --from` serving a headless Service with 1,000 endpoints,
whose SRV answer (~60 KB) exceeds every UDP size: before the cap, a client advertising
65535 got a 65 KB datagram that could not arrive. Queries go out with dnspython (exact
sizes) and with dig (what a user sees, TC and the retry over TCP).
"""
from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import pytest
import yaml

from tests.integration.apiserver_harness import REPO
from tests.integration.dns.harness import DnsProcess, dig, dig_available
from tests.unit.dns.helpers import headless_service

BIG = "big.load.svc.cluster.local."  # short names: all 1,000 SRV records fit one 64 KiB TCP message
DEADLINE = 10.0  # for one reply on loopback; never a performance limit


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, DnsProcess]]:
    """One server with the default --bufsize (1232), one with --bufsize 4096."""
    workdir = tmp_path_factory.mktemp("bufsize")
    manifest = workdir / "big.yaml"
    manifest.write_text(yaml.safe_dump_all(headless_service("big", "load", 1000)))
    started: dict[int, DnsProcess] = {}
    try:
        for bufsize, extra in ((1232, []), (4096, ["--bufsize", "4096"])):
            started[bufsize] = DnsProcess(["--from", str(manifest), "--upstream", "none", "--workers", "1", *extra],
                                          workdir / f"dns-{bufsize}.log").start()
        yield started
    finally:
        for server in started.values():
            server.stop()


def ask_udp(port: int, payload: int | None) -> tuple[int, dns.message.Message]:
    """(datagram size, reply) for the SRV question with that EDNS size (None: no EDNS)."""
    query = dns.message.make_query(BIG, "SRV", use_edns=False if payload is None else 0, payload=payload or 1232)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(DEADLINE)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        wire, _ = sock.recvfrom(65535)
    return len(wire), dns.message.from_wire(wire)


@pytest.mark.parametrize("bufsize,payload,cap", [
    (1232, None, 512), (1232, 512, 512), (1232, 4096, 1232), (1232, 65535, 1232),
    (4096, 65535, 4096), (4096, 2000, 2000), (4096, None, 512),
])
def test_udp_srv_reply_for_1000_endpoints_is_capped_with_tc(
        servers: dict[int, DnsProcess], bufsize: int, payload: int | None, cap: int) -> None:
    port = servers[bufsize].port
    for _ in range(2):  # the first reply comes from the slow path, the second from the answer table
        size, reply = ask_udp(port, payload)
        assert size <= cap and reply.flags & dns.flags.TC
        assert 0 < len(reply.answer[0]) < 1000


def test_the_full_answer_comes_over_tcp(servers: dict[int, DnsProcess]) -> None:
    query = dns.message.make_query(BIG, "SRV", use_edns=0, payload=65535)
    reply = dns.query.tcp(query, "127.0.0.1", port=servers[1232].port, timeout=DEADLINE)
    assert len(reply.answer[0]) == 1000
    assert {rr.target.to_text() for rr in reply.answer[0]} >= {f"10-240-3-{n}.{BIG}" for n in range(1, 251)}


@pytest.mark.skipif(not dig_available(), reason="dig (dnsutils) is not installed")
def test_dig_sees_tc_over_udp_and_retries_over_tcp(servers: dict[int, DnsProcess]) -> None:
    port = servers[1232].port
    udp = dig(port, BIG, "SRV", "+bufsize=65535", "+ignore")
    assert "tc" in udp.flags and udp.status == "NOERROR"
    size = int(udp.raw.split("MSG SIZE  rcvd:")[1].split()[0])
    assert size <= 1232
    retried = dig(port, BIG, "SRV", "+bufsize=65535")  # dig retries a truncated reply over TCP
    assert "Truncated, retrying in TCP mode" in retried.raw and len(retried.answer) == 1000


@pytest.mark.parametrize("value,message", [
    ("511", "511 is outside 512-4096"), ("4097", "4097 is outside 512-4096"), ("big", "'big' is not an integer"),
])
def test_a_bufsize_outside_512_to_4096_is_a_usage_error(value: str, message: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "svcnet.dns", "--listen", "127.0.0.1:0", "--upstream", "none",
                             "--from", str(tmp_path / "none.yaml"), "--bufsize", value],
                            capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 2 and f"argument --bufsize: {message}" in result.stderr
