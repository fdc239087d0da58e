"""Many pods on one node with the real agent (root, real namespaces, real kubectl): `svcnet up --nodes 1`.

Issue 13's acceptance: 200 pods created at once on one node all reach Ready
with distinct IPs, and deleting them leaves no namespace, veth or IP lease
behind. What the node had before (the cluster's own DNS pods; the package's
other modules delete theirs and wait for them to go) is the baseline the node
must return to. No timings here: bench/bench_pods.py measures them.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
from typing import Any

import pytest

from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl")),
    reason="needs root (network namespaces), ip, nsenter and kubectl")

PODS = 200
NODE = "node-1"
POD_CIDR = ipaddress.ip_network("10.244.1.0/24")


@pytest.fixture(scope="module")
def cluster(one_node_cluster: SvcnetCluster) -> SvcnetCluster:
    """The package's cluster (the test deletes its pods itself and waits for the node to be as before)."""
    return one_node_cluster


def pod_list(count: int) -> str:
    items = [{"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": f"dense-{i:03d}", "labels": {"app": "dense"}},
              "spec": {"terminationGracePeriodSeconds": 2,
                       "containers": [{"name": "app", "image": "k8s.gcr.io/serve_hostname"}]}}
             for i in range(count)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def node_state(cluster: SvcnetCluster) -> tuple[set[str], set[str], set[str]]:
    """(pod namespaces, veths in the node namespace, leased pod uids) as the node has them now."""
    pod_ns = {ns for ns in cluster.namespaces() if ns.startswith(f"svcnet-{cluster.cluster_id}-pod-")}
    links = cluster.in_namespace(cluster.node_namespace(NODE), "ip", "-o", "link", "show", "type", "veth").stdout
    veths = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines() if line.strip()}
    leases: set[str] = set()
    for path in cluster.data_dir.glob(f"nodes/{NODE}/ipam/*.json"):
        leases |= {lease["podUID"] for lease in json.loads(path.read_text()).get("leases", [])}
    return pod_ns, veths, leases


def dense_pods(cluster: SvcnetCluster) -> list[dict[str, Any]]:
    return list(cluster.pods("app=dense"))


def test_200_pods_on_one_node_all_get_ready_with_distinct_ips_and_leave_nothing_when_deleted(
        cluster: SvcnetCluster) -> None:
    before = node_state(cluster)
    cluster.kubectl("create", "--validate=false", "-f", "-", input=pod_list(PODS))
    try:
        def all_ready() -> list[dict[str, Any]] | None:
            pods = dense_pods(cluster)
            return pods if len(pods) == PODS and all(is_running_ready(p) for p in pods) else None

        pods = wait_for(all_ready, timeout=900, interval=1.0, what=f"{PODS} pods Running and Ready")
        assert {p["spec"]["nodeName"] for p in pods} == {NODE}
        ips = [p["status"]["podIP"] for p in pods]
        assert len(set(ips)) == PODS
        assert all(ipaddress.ip_address(ip) in POD_CIDR for ip in ips)
        during = node_state(cluster)
        assert len(during[0] - before[0]) == PODS and len(during[1] - before[1]) == PODS
        assert len(during[2] - before[2]) == PODS
    finally:
        cluster.kubectl("delete", "pods", "-l", "app=dense", "--wait=true", "--timeout=600s", check=False)

    wait_for(lambda: not dense_pods(cluster), timeout=600, interval=1.0, what="every dense pod gone")
    wait_for(lambda: node_state(cluster) == before, timeout=120, interval=0.5,
             what="the node back to its namespaces, veths and leases from before")

