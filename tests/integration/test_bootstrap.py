"""What the API server keeps for itself: default/kubernetes and its endpoints, and a refused --insecure."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import REPO, ApiServerProcess, free_port, kubectl_available
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(not kubectl_available(), reason="needs kubectl")

ADVERTISED = "192.0.2.10"  # TEST-NET-1: written into the endpoints, never sent traffic


@pytest.fixture
def advertised(tmp_path: Path) -> Iterator[ApiServerProcess]:
    home = tmp_path / "home"
    home.mkdir()
    server = ApiServerProcess(data_dir=tmp_path / "data", port=free_port(), home=home,
                              flags=("--advertise-address", ADVERTISED))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(server: ApiServerProcess, path: str) -> dict | None:
    status, body = server.request("GET", path)
    return body if status == 200 else None


SERVICE = "/api/v1/namespaces/default/services/kubernetes"
ENDPOINTS = "/api/v1/namespaces/default/endpoints/kubernetes"
SLICE = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"


def test_deleted_kubernetes_service_comes_back_with_its_cluster_ip(apiserver: ApiServerProcess) -> None:
    before = get(apiserver, SERVICE)
    assert before is not None
    apiserver.kubectl("delete", "svc", "kubernetes")
    after = wait_for(lambda: (svc := get(apiserver, SERVICE)) and svc["metadata"]["uid"] != before["metadata"]["uid"]
                     and svc, timeout=15, what="default/kubernetes recreated")
    assert after["spec"]["clusterIP"] == before["spec"]["clusterIP"] == "10.96.0.1"
    assert after["spec"]["ports"] == before["spec"]["ports"]
    assert "selector" not in after["spec"]


def test_the_kubernetes_endpoints_name_the_advertised_address_and_come_back(advertised: ApiServerProcess) -> None:
    port = advertised.port
    endpoints = wait_for(lambda: get(advertised, ENDPOINTS), timeout=15, what="kubernetes Endpoints")
    assert endpoints["subsets"] == [{"addresses": [{"ip": ADVERTISED}],
                                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    assert endpoints["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    slice_ = wait_for(lambda: get(advertised, SLICE), timeout=15, what="kubernetes EndpointSlice")
    assert slice_["addressType"] == "IPv4"
    assert [e["addresses"] for e in slice_["endpoints"]] == [[ADVERTISED]]
    assert slice_["endpoints"][0]["conditions"]["ready"] is True
    assert slice_["ports"] == [{"name": "https", "port": port, "protocol": "TCP"}]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"

    advertised.kubectl("delete", "svc", "kubernetes")
    advertised.kubectl("delete", "endpoints", "kubernetes")
    advertised.kubectl("delete", "endpointslices", "kubernetes")
    wait_for(lambda: get(advertised, SERVICE) and get(advertised, ENDPOINTS) and get(advertised, SLICE),
             timeout=15, what="the Service, Endpoints and EndpointSlice back")
    assert get(advertised, SERVICE)["spec"]["clusterIP"] == "10.96.0.1"
    assert get(advertised, ENDPOINTS)["subsets"] == endpoints["subsets"]

    # Drift is corrected too, as upstream's reconciler resets the endpoints it owns.
    drifted = get(advertised, ENDPOINTS)
    drifted["subsets"][0]["addresses"] = [{"ip": "192.0.2.99"}]
    status, body = advertised.request("PUT", ENDPOINTS, drifted)
    assert status == 200, body
    wait_for(lambda: get(advertised, ENDPOINTS)["subsets"] == endpoints["subsets"], timeout=15,
             what="drifted endpoints reset")


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.1"])
def test_insecure_is_refused_off_loopback(tmp_path: Path, address: str) -> None:
    result = subprocess.run([sys.executable, "-m", "svcnet", "apiserver", "--insecure", "--bind-address", address,
                             "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
                            capture_output=True, text=True, cwd=REPO, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert f"--insecure serves the API over plain HTTP without authentication, so it may only listen on a " \
           f"loopback address (127.0.0.0/8, ::1, localhost); got --bind-address {address}" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was written
