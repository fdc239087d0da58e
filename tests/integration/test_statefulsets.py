"""StatefulSets through the real kubectl, with `svcnet controllers` (scheduler included) running.

Tests play kubelet: a Ready node is registered, pods' status is written
through the status subresource, and pods being deleted gracefully from a node
are finished with a zero-grace delete, as kubelet would once they stop.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available
from tests.integration.kubelet_double import register_node, set_pod_status
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

PODS = "/api/v1/namespaces/default/pods"
MANIFEST = """\
apiVersion: v1
kind: Service
metadata:
  name: hostnames
spec:
  clusterIP: None
  selector:
    app: hostnames
  ports:
  - port: 80
    targetPort: 9376
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: hostnames
spec:
  serviceName: hostnames
  replicas: 3
  selector:
    matchLabels:
      app: hostnames
  template:
    metadata:
      labels:
        app: hostnames
    spec:
      containers:
      - name: hostnames
        image: k8s.gcr.io/serve_hostname
        ports:
        - containerPort: 9376
"""


def get_pod(server: ApiServerProcess, name: str) -> dict[str, Any] | None:
    status, body = server.request("GET", f"{PODS}/{name}")
    return body if status == 200 else None


def get_sts(server: ApiServerProcess, name: str = "hostnames") -> dict[str, Any]:
    status, body = server.request("GET", f"/apis/apps/v1/namespaces/default/statefulsets/{name}")
    assert status == 200, body
    return body


def wait_pod_scheduled(server: ApiServerProcess, name: str) -> dict[str, Any]:
    """The pod exists and the scheduler has bound it to node-1."""
    return wait_for(lambda: (p := get_pod(server, name)) and p["spec"].get("nodeName") == "node-1" and p,
                    what=f"pod {name} created and scheduled")


def make_ready(server: ApiServerProcess, name: str, ip: str) -> None:
    wait_pod_scheduled(server, name)
    set_pod_status(server, "default", name, ip=ip, ready=True)


def wait_terminating(server: ApiServerProcess, name: str) -> None:
    wait_for(lambda: (p := get_pod(server, name)) and p["metadata"].get("deletionTimestamp"),
             what=f"pod {name} marked for deletion")


def finish_termination(server: ApiServerProcess, name: str) -> None:
    """Kubelet's part of a graceful delete: once the pod has stopped, remove it for good."""
    status, body = server.request("DELETE", f"{PODS}/{name}", {"gracePeriodSeconds": 0})
    assert status in (200, 404), body


@pytest.fixture
def cluster(control_plane: ApiServerProcess) -> ApiServerProcess:
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.106")
    return control_plane


@pytest.fixture
def three_ready(cluster: ApiServerProcess) -> ApiServerProcess:
    cluster.kubectl("apply", "-f", "-", input=MANIFEST)
    for ordinal in range(3):
        make_ready(cluster, f"hostnames-{ordinal}", f"10.244.1.{10 + ordinal}")
    wait_for(lambda: get_sts(cluster).get("status", {}).get("readyReplicas") == 3, what="3 ready replicas")
    return cluster


def test_pods_appear_one_at_a_time_in_order_with_their_dns_identity(cluster: ApiServerProcess) -> None:
    cluster.kubectl("apply", "-f", "-", input=MANIFEST)
    wait_pod_scheduled(cluster, "hostnames-0")
    set_pod_status(cluster, "default", "hostnames-0", ip="10.244.1.10", ready=False)
    # The controller has seen the set and its one pod; -0 is Running but not Ready, so no -1.
    wait_for(lambda: get_sts(cluster).get("status", {}).get("replicas") == 1, what="status.replicas 1")
    assert get_pod(cluster, "hostnames-1") is None

    set_pod_status(cluster, "default", "hostnames-0", ip="10.244.1.10", ready=True)
    wait_pod_scheduled(cluster, "hostnames-1")
    assert get_pod(cluster, "hostnames-2") is None
    set_pod_status(cluster, "default", "hostnames-1", ip="10.244.1.11", ready=True)
    make_ready(cluster, "hostnames-2", "10.244.1.12")

    for ordinal in range(3):
        pod = get_pod(cluster, f"hostnames-{ordinal}")
        assert pod is not None
        assert pod["spec"]["hostname"] == f"hostnames-{ordinal}"
        assert pod["spec"]["subdomain"] == "hostnames"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == f"hostnames-{ordinal}"
        assert labels["apps.kubernetes.io/pod-index"] == str(ordinal)
        assert labels["controller-revision-hash"] == get_sts(cluster)["status"]["updateRevision"]
        (owner,) = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("StatefulSet", "hostnames", True)

    wait_for(lambda: cluster.kubectl("get", "sts", "hostnames", "--no-headers").stdout.split()[1] == "3/3",
             what="kubectl get sts READY 3/3")
    rollout = cluster.kubectl("rollout", "status", "sts/hostnames", "--timeout=30s")
    assert "roll out complete" in rollout.stdout
    described = cluster.kubectl("describe", "sts", "hostnames").stdout
    assert "create Pod hostnames-0 in StatefulSet hostnames successful" in described
    assert "SuccessfulCreate" in described


def test_scale_down_removes_the_highest_ordinal_first(three_ready: ApiServerProcess) -> None:
    three_ready.kubectl("scale", "sts", "hostnames", "--replicas=1")
    wait_terminating(three_ready, "hostnames-2")
    # -2 is still terminating on its node, so -1 must not have been touched yet.
    one = get_pod(three_ready, "hostnames-1")
    assert one is not None and not one["metadata"].get("deletionTimestamp")
    finish_termination(three_ready, "hostnames-2")
    wait_terminating(three_ready, "hostnames-1")
    finish_termination(three_ready, "hostnames-1")
    wait_for(lambda: get_pod(three_ready, "hostnames-1") is None, what="hostnames-1 gone")
    assert get_pod(three_ready, "hostnames-0") is not None
    wait_for(lambda: three_ready.kubectl("get", "sts", "hostnames", "--no-headers").stdout.split()[1] == "1/1",
             what="kubectl get sts READY 1/1")


def test_a_deleted_pod_is_recreated_with_the_same_name(three_ready: ApiServerProcess) -> None:
    before = get_pod(three_ready, "hostnames-1")
    assert before is not None
    three_ready.kubectl("delete", "pod", "hostnames-1", "--grace-period=0", "--force")
    after = wait_for(lambda: (p := get_pod(three_ready, "hostnames-1"))
                     and p["metadata"]["uid"] != before["metadata"]["uid"] and p,
                     what="hostnames-1 recreated")
    assert after["spec"]["hostname"] == "hostnames-1"
    assert after["spec"]["subdomain"] == "hostnames"


def test_a_statefulset_without_service_name_is_refused(control_plane: ApiServerProcess) -> None:
    manifest = MANIFEST.split("---\n")[1].replace("  serviceName: hostnames\n", "")
    result = control_plane.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.serviceName: Required value" in result.stderr
