"""The CoreDNS answer table (tests/unit/dns/cases.py) again, over UDP and TCP with the real dig."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dns.harness import DnsProcess, dig, dig_available
from tests.unit.dns.cases import CASES, CLUSTER, LOCAL_IP, Case
from tests.unit.dns.helpers import normalize

pytestmark = pytest.mark.skipif(not dig_available(), reason="dig (dnsutils) is not installed")

WIRE_CASES = [c for c in CASES if c.dig]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DnsProcess]]:
    """One `svcnet dns --from` per pod mode; the insecure one runs two SO_REUSEPORT workers."""
    logs = tmp_path_factory.mktemp("dns")
    started: dict[str, DnsProcess] = {}
    try:
        for mode in ("insecure", "verified", "disabled"):
            workers = "2" if mode == "insecure" else "1"
            started[mode] = DnsProcess(
                ["--from", str(CLUSTER), "--upstream", "none", "--pod-ip", LOCAL_IP, "--pods", mode,
                 "--workers", workers], Path(logs / f"dns-{mode}.log")).start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize("case", WIRE_CASES, ids=lambda c: c.id)
def test_dig_answer_matches_coredns(case: Case, proto: str, servers: dict[str, DnsProcess]) -> None:
    options = ("+tcp",) if proto == "tcp" else ()
    if case.qclass != "IN":
        options += ("-c", case.qclass)
    got = dig(servers[case.pods].port, case.qname, case.qtype, *options)
    assert got.status == case.rcode, f"{case.why}\n{got.raw}"
    assert ("aa" in got.flags) == (case.rcode != "REFUSED") and "qr" in got.flags and "ra" not in got.flags, got.raw
    assert normalize(got.answer) == normalize(case.answer), got.raw
    assert normalize(got.authority) == normalize(case.authority), got.raw
    assert normalize(got.additional) == normalize(case.additional), got.raw


def test_zone_transfer_is_refused_over_tcp(servers: dict[str, DnsProcess]) -> None:
    got = dig(servers["insecure"].port, "cluster.local.", "AXFR")
    assert "Transfer failed" in got.raw or got.status == "REFUSED"


def test_answer_too_big_for_udp_is_truncated_and_complete_over_tcp(servers: dict[str, DnsProcess]) -> None:
    port = servers["insecure"].port
    small = dig(port, "big.default.svc.cluster.local.", "A", "+noedns", "+ignore")
    assert "tc" in small.flags and small.status == "NOERROR"
    assert 0 < len(small.answer) < 60  # whole records that fit, as miekg's Truncate keeps
    full = dig(port, "big.default.svc.cluster.local.", "A", "+noedns", "+tcp")
    assert "tc" not in full.flags and len(full.answer) == 60


def test_edns_buffer_size_decides_truncation(servers: dict[str, DnsProcess]) -> None:
    port = servers["insecure"].port
    assert "tc" not in dig(port, "big.default.svc.cluster.local.", "A", "+bufsize=1232", "+ignore").flags
    assert "tc" in dig(port, "big.default.svc.cluster.local.", "A", "+bufsize=512", "+ignore").flags
