"""The scheduler through the real kubectl, with `svcnet controllers` running.

Nodes are registered as kubelet would (kubelet_double.register_node); pods are
created directly, so nothing here depends on the workload controllers.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available
from tests.integration.kubelet_double import register_node
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

PODS = "/api/v1/namespaces/default/pods"


def create_pod(server: ApiServerProcess, name: str, *, node_selector: dict[str, str] | None = None) -> None:
    spec: dict[str, Any] = {"containers": [{"name": "hostnames", "image": "k8s.gcr.io/serve_hostname"}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    status, body = server.request("POST", PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "hostnames"}},
        "spec": spec})
    assert status == 201, body


def node_of(server: ApiServerProcess, name: str) -> str | None:
    status, body = server.request("GET", f"{PODS}/{name}")
    assert status == 200, body
    return body["spec"].get("nodeName")


def scheduled_condition(server: ApiServerProcess, name: str) -> dict[str, Any] | None:
    status, body = server.request("GET", f"{PODS}/{name}")
    assert status == 200, body
    return next((c for c in body.get("status", {}).get("conditions") or [] if c["type"] == "PodScheduled"), None)


@pytest.fixture
def two_nodes(control_plane: ApiServerProcess) -> ApiServerProcess:
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.106")
    register_node(control_plane, "node-2", "10.244.2.0/24", "192.168.0.107")
    return control_plane


def test_a_group_of_pods_spreads_evenly_and_kubectl_shows_the_node(two_nodes: ApiServerProcess) -> None:
    names = [f"hostnames-{i}" for i in range(4)]
    for name in names:
        create_pod(two_nodes, name)
    placed = wait_for(lambda: all(nodes := [node_of(two_nodes, n) for n in names]) and nodes,
                      what="all four pods bound")
    assert sorted(placed) == ["node-1", "node-1", "node-2", "node-2"]
    condition = scheduled_condition(two_nodes, names[0])
    assert condition is not None and condition["status"] == "True"

    wide = two_nodes.kubectl("get", "pod", "-o", "wide").stdout.splitlines()
    header = wide[0].split()
    node_column = header.index("NODE")
    rows = {line.split()[0]: line.split()[node_column] for line in wide[1:]}
    assert rows == dict(zip(names, placed, strict=True))


def test_a_pod_no_node_fits_stays_pending_until_a_matching_node_arrives(two_nodes: ApiServerProcess) -> None:
    create_pod(two_nodes, "picky", node_selector={"disktype": "ssd"})
    message = ("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
               "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    condition = wait_for(lambda: (c := scheduled_condition(two_nodes, "picky")) and c["status"] == "False" and c,
                         what="PodScheduled=False")
    assert (condition["reason"], condition["message"]) == ("Unschedulable", message)
    assert node_of(two_nodes, "picky") is None

    described = wait_for(lambda: (d := two_nodes.kubectl("describe", "pod", "picky").stdout)
                         and "FailedScheduling" in d and d, what="FailedScheduling event")
    assert "default-scheduler" in described
    assert "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector." in described
    status_line = two_nodes.kubectl("get", "pod", "picky", "--no-headers").stdout.split()
    assert status_line[2] == "Pending"

    register_node(two_nodes, "node-3", "10.244.3.0/24", "192.168.0.108")
    two_nodes.kubectl("label", "node", "node-3", "disktype=ssd")
    wait_for(lambda: node_of(two_nodes, "picky") == "node-3", what="picky bound to node-3")
    condition = scheduled_condition(two_nodes, "picky")
    assert condition is not None and condition["status"] == "True"
