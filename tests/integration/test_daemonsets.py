"""DaemonSets through the real kubectl, with `svcnet controllers` (scheduler included) running.

Tests play kubelet: Ready nodes are registered and a FakeKubelet marks bound pods
Running and Ready, so the DaemonSet controller's pods reach every node through the
scheduler (they name their node by node affinity matchFields, as upstream's do).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available, running_controllers
from tests.integration.kubelet_double import FakeKubelet, register_node
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

MANIFEST = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  labels:
    app: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: {image}
"""


def daemon_pods(server: ApiServerProcess) -> list[dict[str, Any]]:
    status, body = server.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dagent")
    assert status == 200, body
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def pods_by_node(server: ApiServerProcess) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for pod in daemon_pods(server):
        out.setdefault(pod["spec"].get("nodeName") or "", []).append(pod)
    return out


def ds_columns(server: ApiServerProcess) -> list[str]:
    """NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR, as `kubectl get ds` prints them."""
    return server.kubectl("get", "ds", "agent", "--no-headers").stdout.split()[:7]


def one_ready_pod_per_node(server: ApiServerProcess, nodes: list[str], image: str) -> bool:
    by_node = pods_by_node(server)
    if sorted(by_node) != sorted(nodes):
        return False
    pods = [p for group in by_node.values() for p in group]
    return len(pods) == len(nodes) and all(
        p["spec"]["containers"][0]["image"] == image and (p.get("status") or {}).get("phase") == "Running"
        for p in pods)


@pytest.fixture
def daemon_controllers(apiserver: ApiServerProcess) -> Iterator[ApiServerProcess]:
    """The scheduler and the DaemonSet controller only: the test's nodes post no heartbeats, so
    the node lifecycle controller would taint them unreachable 40 s in."""
    with running_controllers(apiserver, "scheduler,daemonset"):
        yield apiserver


@pytest.fixture
def two_nodes(daemon_controllers: ApiServerProcess):
    control_plane = daemon_controllers
    register_node(control_plane, "node-a", "10.244.1.0/24", "192.168.0.101")
    register_node(control_plane, "node-b", "10.244.2.0/24", "192.168.0.102")
    with FakeKubelet(control_plane, require_node=True) as kubelet:
        yield control_plane, kubelet


def test_a_daemon_set_runs_one_pod_on_every_node_and_follows_new_nodes(two_nodes) -> None:
    server, _ = two_nodes
    server.kubectl("apply", "-f", "-", input=MANIFEST.format(image="busybox:1.36"))
    wait_for(lambda: one_ready_pod_per_node(server, ["node-a", "node-b"], "busybox:1.36"), timeout=60,
             what="one running daemon pod on each node")
    pod = daemon_pods(server)[0]
    node = pod["spec"]["nodeName"]
    # As upstream: the pod names its node by affinity and the scheduler bound it there.
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
    assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
    assert pod["metadata"]["labels"]["controller-revision-hash"]
    tolerated = {(t.get("key"), t.get("effect")) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerated
    assert ("node.kubernetes.io/not-ready", "NoExecute") in tolerated
    wait_for(lambda: ds_columns(server) == ["agent", "2", "2", "2", "2", "2", "<none>"], timeout=30,
             what="kubectl get ds to count two nodes")
    assert "successfully rolled out" in server.kubectl(
        "rollout", "status", "ds/agent", "--timeout=60s", timeout=90).stdout

    register_node(server, "node-c", "10.244.3.0/24", "192.168.0.103")
    wait_for(lambda: one_ready_pod_per_node(server, ["node-a", "node-b", "node-c"], "busybox:1.36"),
             timeout=60, what="a daemon pod on the new node")

    # A node the template's tolerations do not cover gets no pod, and its NoExecute taint evicts it.
    status, _ = server.request("PATCH", "/api/v1/nodes/node-c",
                               {"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]}},
                               content_type="application/merge-patch+json")
    assert status == 200
    wait_for(lambda: sorted(pods_by_node(server)) == ["node-a", "node-b"], timeout=60,
             what="the daemon pod to leave the tainted node")
    wait_for(lambda: ds_columns(server)[:2] == ["agent", "2"], timeout=30, what="desired back to 2")


def test_a_template_change_rolls_one_node_at_a_time(two_nodes) -> None:
    server, _ = two_nodes
    server.kubectl("apply", "-f", "-", input=MANIFEST.format(image="busybox:1.36"))
    wait_for(lambda: one_ready_pod_per_node(server, ["node-a", "node-b"], "busybox:1.36"), timeout=60,
             what="the first revision on both nodes")
    old_hash = daemon_pods(server)[0]["metadata"]["labels"]["controller-revision-hash"]
    server.kubectl("apply", "-f", "-", input=MANIFEST.format(image="busybox:1.37"))
    assert "successfully rolled out" in server.kubectl(
        "rollout", "status", "ds/agent", "--timeout=90s", timeout=120).stdout
    wait_for(lambda: one_ready_pod_per_node(server, ["node-a", "node-b"], "busybox:1.37"), timeout=60,
             what="the new template on both nodes")
    pods = daemon_pods(server)
    assert {p["metadata"]["labels"]["pod-template-generation"] for p in pods} == {"2"}
    assert all(p["metadata"]["labels"]["controller-revision-hash"] != old_hash for p in pods)
    ds = server.kubectl_json("get", "ds", "agent")
    assert ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    assert ds["status"]["observedGeneration"] == ds["metadata"]["generation"]
    assert ds["status"]["updatedNumberScheduled"] == 2
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
