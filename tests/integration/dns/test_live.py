"""`svcnet dns --data-dir` against a real `svcnet apiserver`: answers follow the API within a second."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, free_port
from tests.integration.dns.harness import DnsProcess, dig, dig_available
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(not dig_available(), reason="dig (dnsutils) is not installed")

SERVICES = "/api/v1/namespaces/default/services"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


@pytest.fixture
def dns_server(apiserver: ApiServerProcess, tmp_path: Path) -> Iterator[DnsProcess]:
    proc = DnsProcess(["--data-dir", str(apiserver.data_dir), "--upstream", "none", "--workers", "2"],
                      tmp_path / "dns.log")
    proc.start(wait_status=("NOERROR",))
    yield proc
    proc.stop()


def status_of(port: int, name: str, qtype: str = "A") -> str:
    return dig(port, name, qtype, "+time=1").status


def test_kubernetes_service_resolves_to_10_96_0_1(dns_server: DnsProcess) -> None:
    got = dig(dns_server.port, "kubernetes.default.svc.cluster.local.", "A")
    assert got.answer == ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]


def test_created_service_resolves_within_a_second_and_deleted_one_is_nxdomain(
        apiserver: ApiServerProcess, dns_server: DnsProcess) -> None:
    name = "live.default.svc.cluster.local."
    assert status_of(dns_server.port, name) == "NXDOMAIN"
    code, body = apiserver.request("POST", SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "live"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "live"}}})
    assert code == 201, body
    cluster_ip = body["spec"]["clusterIP"]
    # Several digs: with two workers they land on both, and both must have the Service.
    wait_for(lambda: all(dig(dns_server.port, name, "A", "+time=1").answer == [f"{name} 5 IN A {cluster_ip}"]
                         for _ in range(4)), timeout=1.0, interval=0.02, what="the new Service's name")
    code, body = apiserver.request("DELETE", f"{SERVICES}/live")
    assert code == 200, body
    wait_for(lambda: all(status_of(dns_server.port, name) == "NXDOMAIN" for _ in range(4)),
             timeout=1.0, interval=0.02, what="NXDOMAIN after the delete")


def test_new_statefulset_endpoint_name_resolves_within_a_second(
        apiserver: ApiServerProcess, dns_server: DnsProcess) -> None:
    code, body = apiserver.request("POST", SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hostnames"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80, "protocol": "TCP", "name": "default"}],
                 "selector": {"app": "hostnames"}}})
    assert code == 201, body
    code, body = apiserver.request("POST", SLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "hostnames-abc", "labels": {"kubernetes.io/service-name": "hostnames"}},
        "addressType": "IPv4", "ports": [{"name": "default", "port": 9376, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.23"], "hostname": "hostnames-0", "conditions": {"ready": True}}]})
    assert code == 201, body
    name = "hostnames-0.hostnames.default.svc.cluster.local."
    wait_for(lambda: dig(dns_server.port, name, "A", "+time=1").answer == [f"{name} 5 IN A 10.244.1.23"],
             timeout=1.0, interval=0.02, what="the StatefulSet pod's name")
    assert status_of(dns_server.port, "hostnames-7c89f997cf-pdg7p.hostnames.default.svc.cluster.local.") \
        == "NXDOMAIN"


def test_servfail_until_the_first_sync_then_answers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    dns = DnsProcess(["--data-dir", str(data_dir), "--upstream", "none", "--workers", "1"], tmp_path / "dns.log")
    dns.start(wait_status=("SERVFAIL",))
    home = tmp_path / "home"
    home.mkdir()
    server = ApiServerProcess(data_dir=data_dir, port=free_port(), home=home)
    try:
        assert status_of(dns.port, "nothere.default.svc.cluster.local.") == "SERVFAIL"
        server.start()
        wait_for(lambda: status_of(dns.port, "kubernetes.default.svc.cluster.local.") == "NOERROR",
                 timeout=20, what="first sync")
        wait_for(lambda: status_of(dns.port, "nothere.default.svc.cluster.local.") == "NXDOMAIN",
                 timeout=20, what="NXDOMAIN once every informer listed")
    finally:
        dns.stop()
        server.stop()


def test_the_last_known_data_is_served_while_the_api_is_down(apiserver: ApiServerProcess,
                                                                dns_server: DnsProcess) -> None:
    code, body = apiserver.request("POST", SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "steady"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "steady"}}})
    assert code == 201, body
    name = "steady.default.svc.cluster.local."
    want = [f"{name} 5 IN A {body['spec']['clusterIP']}"]
    wait_for(lambda: dig(dns_server.port, name, "A", "+time=1").answer == want, timeout=5, what="steady resolves")

    apiserver.stop()
    try:
        assert dns_server.proc is not None and dns_server.proc.poll() is None
        for _ in range(4):  # both workers: the cached zone answers, names it does not have stay NXDOMAIN
            assert dig(dns_server.port, name, "A", "+time=1").answer == want
            assert status_of(dns_server.port, "gone.default.svc.cluster.local.") == "NXDOMAIN"
    finally:
        apiserver.start()
    # Back: the watch resumes and new objects show up again.
    code, body = apiserver.request("POST", SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "after"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "after"}}})
    assert code == 201, body
    wait_for(lambda: dig(dns_server.port, "after.default.svc.cluster.local.", "A", "+time=1").answer,
             timeout=30, what="a Service created after the API came back")
