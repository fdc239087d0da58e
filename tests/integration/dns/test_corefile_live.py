"""`svcnet dns --corefile`: a real process, asked with dig. hosts, a stub domain with its own upstream, and
reloads: a bad edit is refused (logged, the old configuration keeps answering), a good one takes effect."""
from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import free_port
from tests.integration.dns.fake_upstream import FakeUpstreamThread
from tests.integration.dns.harness import DnsProcess, dig, dig_available
from tests.unit.dns.cases import CLUSTER
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(not dig_available(), reason="needs dig")

COREFILE = """\
.:{port} {{
    errors
    hosts {{
       10.1.2.3 printer.lan
       {extra}
       fallthrough
    }}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }}
    forward . 127.0.0.1:{root}
    cache 30
    reload 2s 1s
}}
stub.example:{port} {{
    forward . 127.0.0.1:{stub}
}}
"""


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstreamThread, FakeUpstreamThread]]:
    root, stub = FakeUpstreamThread().start(), FakeUpstreamThread().start()
    try:
        yield root, stub
    finally:
        root.stop()
        stub.stop()


@pytest.fixture(scope="module")
def served(upstreams: tuple[FakeUpstreamThread, FakeUpstreamThread],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DnsProcess, Path]]:
    root, stub = upstreams
    tmp = tmp_path_factory.mktemp("corefile")
    corefile = tmp / "Corefile"
    proc = DnsProcess(["--corefile", str(corefile), "--from", str(CLUSTER), "--workers", "1"], tmp / "dns.log")
    corefile.write_text(COREFILE.format(port=proc.port, root=root.port, stub=stub.port, extra=""))
    proc.start()
    try:
        yield proc, corefile
    finally:
        proc.stop()


def test_hosts_entry_answers_and_other_names_fall_through(served: tuple[DnsProcess, Path]) -> None:
    proc, _ = served
    got = dig(proc.port, "printer.lan", "A")
    assert got.status == "NOERROR" and got.answer == ["printer.lan. 3600 IN A 10.1.2.3"] and "aa" in got.flags
    assert dig(proc.port, "kubernetes.default.svc.cluster.local", "A").answer == [
        "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]


def test_stub_domain_goes_to_its_own_upstream(served: tuple[DnsProcess, Path],
                                              upstreams: tuple[FakeUpstreamThread, FakeUpstreamThread]) -> None:
    proc, _ = served
    root, stub = upstreams
    root.fake.reset()
    stub.fake.reset()
    assert dig(proc.port, "db.stub.example", "A").answer == ["db.stub.example. 30 IN A 192.0.2.1"]
    assert dig(proc.port, "www.other.example", "A").answer == ["www.other.example. 30 IN A 192.0.2.1"]
    assert set(stub.fake.asked) == {"db.stub.example."}
    assert set(root.fake.asked) == {"www.other.example."}


def test_bad_edit_is_refused_and_a_good_one_takes_effect(served: tuple[DnsProcess, Path],
                                                         upstreams: tuple[FakeUpstreamThread, FakeUpstreamThread]
                                                         ) -> None:
    proc, corefile = served
    root, stub = upstreams
    good = corefile.read_text()
    corefile.write_text(good.replace("    errors\n", "    errors\n    frobnicate\n"))
    wait_for(lambda: "Unknown directive 'frobnicate'" in proc.log_text(), timeout=30, what="the refusal logged")
    assert "Restart failed: Corefile:3 - Error during parsing: Unknown directive 'frobnicate'" in proc.log_text()
    assert dig(proc.port, "printer.lan", "A").answer == ["printer.lan. 3600 IN A 10.1.2.3"]
    assert proc.alive()

    corefile.write_text(COREFILE.format(port=proc.port, root=root.port, stub=stub.port,
                                        extra="10.9.9.9 scanner.lan"))
    wait_for(lambda: dig(proc.port, "scanner.lan", "A").answer == ["scanner.lan. 3600 IN A 10.9.9.9"],
             timeout=30, what="the reloaded Corefile answering")
    assert "Reloading complete" in proc.log_text()
    assert dig(proc.port, "printer.lan", "A").answer == ["printer.lan. 3600 IN A 10.1.2.3"]


def test_prometheus_health_and_ready_serve_on_their_own_addresses(tmp_path: Path) -> None:
    metrics, health, ready = free_port(), free_port(), free_port()
    proc = DnsProcess(["--corefile", str(tmp_path / "Corefile"), "--from", str(CLUSTER), "--workers", "2"],
                      tmp_path / "dns.log")
    (tmp_path / "Corefile").write_text(
        f".:{proc.port} {{\n    health 127.0.0.1:{health}\n    ready 127.0.0.1:{ready}\n"
        f"    prometheus 127.0.0.1:{metrics}\n    kubernetes cluster.local\n}}\n")
    proc.start()
    try:
        def get(port: int, path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, ""
        wait_for(lambda: get(ready, "/ready") == (200, "OK"), timeout=20, what="/ready")
        assert get(health, "/health") == (200, "OK")
        status, text = get(metrics, "/metrics")
        assert status == 200 and "coredns_dns_requests_total" in text
        assert get(health, "/metrics")[0] == 404 and get(metrics, "/ready")[0] == 404
    finally:
        proc.stop()
