"""Endpoints and EndpointSlices through the real kubectl, with `svcnet controllers` running.

Tests play kubelet (and the ReplicaSet): they create the pods themselves and
write their status, so nothing here depends on the Deployment controller.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.integration.apiserver_harness import REPO, ApiServerProcess, kubectl_available
from tests.integration.kubelet_double import register_node, set_pod_status
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

SEED = REPO / "examples" / "hostnames.yaml"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def create_pod(server: ApiServerProcess, name: str, labels: dict[str, str], *, ports: list[dict[str, Any]],
               hostname: str | None = None, subdomain: str | None = None) -> None:
    spec: dict[str, Any] = {"nodeName": "node-1", "containers": [
        {"name": "hostnames", "image": "k8s.gcr.io/serve_hostname", "ports": ports}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status, body = server.request("POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec})
    assert status == 201, body


def service_slices(server: ApiServerProcess, service: str) -> list[dict[str, Any]]:
    status, body = server.request("GET", f"{SLICES}?labelSelector=kubernetes.io/service-name%3D{service}")
    assert status == 200, body
    return body["items"]


def slice_endpoints(server: ApiServerProcess, service: str) -> dict[str, dict[str, Any]]:
    """Pod name -> endpoint, over every slice of the Service."""
    return {e["targetRef"]["name"]: e for s in service_slices(server, service) for e in s.get("endpoints") or []}


def endpoints_object(server: ApiServerProcess, name: str) -> dict[str, Any] | None:
    status, body = server.request("GET", f"/api/v1/namespaces/default/endpoints/{name}")
    return body if status == 200 else None


def ep_column(server: ApiServerProcess, name: str) -> str:
    """The ENDPOINTS cell of `kubectl get ep NAME`."""
    return server.kubectl("get", "ep", name, "--no-headers").stdout.split()[1]


@pytest.fixture
def seed(control_plane: ApiServerProcess) -> ApiServerProcess:
    """The seed's Service and Deployment applied, node-1 registered and three Running, Ready pods."""
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.106")
    control_plane.kubectl("apply", "-f", str(SEED))
    for i, ip in enumerate(("10.244.1.8", "10.244.1.9", "10.244.1.10"), start=1):
        create_pod(control_plane, f"hostnames-manual-{i}", {"app": "hostnames"},
                   ports=[{"containerPort": 9376, "protocol": "TCP"}])
        set_pod_status(control_plane, "default", f"hostnames-manual-{i}", ip=ip, ready=True)
    return control_plane


def test_seed_endpoints_list_the_ready_pods_sorted_as_upstream(seed: ApiServerProcess) -> None:
    expected = "10.244.1.10:9376,10.244.1.8:9376,10.244.1.9:9376"
    wait_for(lambda: ep_column(seed, "hostnames") == expected, timeout=15, what="the three endpoints")
    assert ep_column(seed, "hostnames") == expected
    slices = seed.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=hostnames")["items"]
    assert len(slices) == 1
    (slice_,) = slices
    assert slice_["addressType"] == "IPv4"
    assert slice_["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert slice_["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert slice_["ports"] == [{"name": "default", "port": 9376, "protocol": "TCP"}]
    ready = {e["addresses"][0]: e["conditions"] for e in slice_["endpoints"]}
    assert ready == {ip: {"ready": True, "serving": True, "terminating": False}
                     for ip in ("10.244.1.8", "10.244.1.9", "10.244.1.10")}


def test_pod_turning_unready_leaves_addresses_within_a_second(seed: ApiServerProcess) -> None:
    wait_for(lambda: len(slice_endpoints(seed, "hostnames")) == 3, timeout=15, what="three slice endpoints")
    wait_for(lambda: len((endpoints_object(seed, "hostnames") or {}).get("subsets", [{}])[0]
                         .get("addresses", [])) == 3, timeout=15, what="three ready addresses")

    set_pod_status(seed, "default", "hostnames-manual-2", ip="10.244.1.9", ready=False)

    def slice_says_unready() -> bool:
        endpoint = slice_endpoints(seed, "hostnames")["hostnames-manual-2"]
        return endpoint["conditions"] == {"ready": False, "serving": False, "terminating": False}

    def endpoints_say_unready() -> bool:
        (subset,) = endpoints_object(seed, "hostnames")["subsets"]
        return [a["ip"] for a in subset.get("notReadyAddresses", [])] == ["10.244.1.9"] and \
            [a["ip"] for a in subset["addresses"]] == ["10.244.1.10", "10.244.1.8"]

    wait_for(slice_says_unready, timeout=1.0, interval=0.01, what="the slice endpoint to turn unready")
    wait_for(endpoints_say_unready, timeout=1.0, interval=0.01, what="the address to move to notReady")
    assert ep_column(seed, "hostnames") == "10.244.1.10:9376,10.244.1.8:9376"


NAMED_PORT_SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
"""


def test_named_target_port_resolved_per_pod_gives_one_slice_per_port(control_plane: ApiServerProcess) -> None:
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.106")
    control_plane.kubectl("apply", "-f", "-", input=NAMED_PORT_SERVICE)
    create_pod(control_plane, "web-a", {"app": "web"}, ports=[{"name": "http", "containerPort": 8080}])
    create_pod(control_plane, "web-b", {"app": "web"}, ports=[{"name": "http", "containerPort": 8081}])
    set_pod_status(control_plane, "default", "web-a", ip="10.244.1.20", ready=True)
    set_pod_status(control_plane, "default", "web-b", ip="10.244.1.21", ready=True)

    def ports_by_pod() -> dict[str, list[int]] | None:
        slices = service_slices(control_plane, "web")
        got = {e["targetRef"]["name"]: [p["port"] for p in s["ports"]]
               for s in slices for e in s.get("endpoints") or []}
        return got if len(slices) == 2 and len(got) == 2 else None

    assert wait_for(ports_by_pod, timeout=15, what="two slices") == {"web-a": [8080], "web-b": [8081]}
    subsets = wait_for(lambda: len((endpoints_object(control_plane, "web") or {}).get("subsets", [])) == 2
                       and endpoints_object(control_plane, "web")["subsets"], timeout=15, what="two subsets")
    assert sorted((s["addresses"][0]["ip"], s["ports"][0]["port"]) for s in subsets) == \
        [("10.244.1.20", 8080), ("10.244.1.21", 8081)]


HEADLESS_SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector:
    app: db
  ports:
  - port: 5432
"""


def test_headless_service_slices_carry_hostnames(control_plane: ApiServerProcess) -> None:
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.106")
    control_plane.kubectl("apply", "-f", "-", input=HEADLESS_SERVICE)
    port = [{"containerPort": 5432}]
    create_pod(control_plane, "db-0", {"app": "db"}, ports=port, hostname="db-0", subdomain="db")
    create_pod(control_plane, "db-1", {"app": "db"}, ports=port, hostname="db-1", subdomain="db")
    create_pod(control_plane, "db-other", {"app": "db"}, ports=port, hostname="x", subdomain="elsewhere")
    for i, name in enumerate(("db-0", "db-1", "db-other")):
        set_pod_status(control_plane, "default", name, ip=f"10.244.1.{30 + i}", ready=True)

    endpoints = wait_for(lambda: (e := slice_endpoints(control_plane, "db")) and len(e) == 3 and e,
                         timeout=15, what="three endpoints")
    assert {name: e.get("hostname") for name, e in endpoints.items()} == \
        {"db-0": "db-0", "db-1": "db-1", "db-other": None}
    (slice_,) = service_slices(control_plane, "db")
    assert "service.kubernetes.io/headless" in slice_["metadata"]["labels"]
    ep = wait_for(lambda: endpoints_object(control_plane, "db"), timeout=15, what="the Endpoints")
    assert {a["ip"]: a.get("hostname") for a in ep["subsets"][0]["addresses"]} == \
        {"10.244.1.30": "db-0", "10.244.1.31": "db-1", "10.244.1.32": None}


USER_MANAGED = """
apiVersion: v1
kind: Service
metadata:
  name: external-db
spec:
  ports:
  - port: 5432
---
apiVersion: v1
kind: Endpoints
metadata:
  name: external-db
subsets:
- addresses:
  - ip: 192.0.2.10
  ports:
  - port: 5432
"""


def test_selectorless_service_keeps_user_endpoints(control_plane: ApiServerProcess) -> None:
    control_plane.kubectl("apply", "-f", "-", input=USER_MANAGED)
    before = endpoints_object(control_plane, "external-db")
    # Touch the Service so the controllers look at it, then wait on a later Service of
    # ours being served: the controllers have seen the selector-less one by then.
    control_plane.kubectl("label", "svc", "external-db", "touched=yes")
    control_plane.kubectl("apply", "-f", "-", input=NAMED_PORT_SERVICE)
    wait_for(lambda: service_slices(control_plane, "web") and endpoints_object(control_plane, "web"),
             timeout=15, what="the barrier Service's slice and Endpoints")
    after = endpoints_object(control_plane, "external-db")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["subsets"] == [{"addresses": [{"ip": "192.0.2.10"}],
                                 "ports": [{"port": 5432, "protocol": "TCP"}]}]
    # No computed slice: the only one is the mirroring controller's copy of the user's Endpoints.
    mirrored = wait_for(lambda: service_slices(control_plane, "external-db"), timeout=15, what="the mirrored slice")
    assert [s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] for s in mirrored] == \
        ["endpointslicemirroring-controller.k8s.io"]
    assert [e["addresses"] for e in mirrored[0]["endpoints"]] == [["192.0.2.10"]]


def test_deleting_the_service_removes_its_slices_and_endpoints(seed: ApiServerProcess) -> None:
    wait_for(lambda: service_slices(seed, "hostnames") and endpoints_object(seed, "hostnames"),
             timeout=15, what="slices and Endpoints")
    seed.kubectl("delete", "svc", "hostnames")
    wait_for(lambda: not service_slices(seed, "hostnames") and endpoints_object(seed, "hostnames") is None,
             timeout=15, what="slices and Endpoints to go")
    assert "NotFound" in seed.kubectl("get", "ep", "hostnames", check=False).stderr
