"""sessionAffinity: ClientIP in kube-proxy's nftables mode, on the wire.

The iptables mode is covered with the other routing features in
test_service_topology_affinity.py; nftables keeps the memory differently (a
set per endpoint whose elements time out), so it runs on the package's nftables
cluster (tests/integration/services/conftest.py): two serve_hostname pods on
node-1, one of which is also the client (the affinity is kept on the client's node).
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready
from tests.integration.services.conftest import manifest_in_default
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl", "nft")),
    reason="needs root (network namespaces), ip, nsenter, kubectl, curl and nft")

AFFINITY_SECONDS = 5
PODS = ("sticky-a", "sticky-b")
MANIFEST = "---\n".join([*(textwrap.dedent(f"""\
    apiVersion: v1
    kind: Pod
    metadata: {{name: {name}, labels: {{app: sticky}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: node-1}}
      containers:
      - {{name: serve, image: registry.k8s.io/serve_hostname, ports: [{{name: web, containerPort: 9376}}]}}
    """) for name in PODS), textwrap.dedent(f"""\
    apiVersion: v1
    kind: Service
    metadata: {{name: sticky}}
    spec:
      selector: {{app: sticky}}
      ports: [{{name: http, port: 80, targetPort: web}}]
      sessionAffinity: ClientIP
      sessionAffinityConfig: {{clientIP: {{timeoutSeconds: {AFFINITY_SECONDS}}}}}
    """)])


@pytest.fixture(scope="module")
def cluster(nftables_cluster: SvcnetCluster) -> Iterator[SvcnetCluster]:
    # In `default`: the affinity sets the test looks for are named after the Service's namespace.
    with manifest_in_default(nftables_cluster, MANIFEST) as c:
        for name in PODS:
            c.wait_pod(name, is_running_ready, timeout=90, what=f"{name} Running and ready")
        yield c


def affinity_sets(cluster: SvcnetCluster) -> dict[str, dict[str, Any]]:
    """sticky's affinity sets in node-1's kube-proxy table: endpoint "ip/port" -> {client address: element}."""
    out = cluster.in_namespace(cluster.node_namespace("node-1"), "nft", "-j", "list", "table", "ip",
                               "kube-proxy").stdout
    sets: dict[str, dict[str, Any]] = {}
    for item in json.loads(out or '{"nftables": []}')["nftables"]:
        found = item.get("set")
        if not found or not found["name"].startswith("affinity-") or "-default/sticky/tcp/http__" not in found["name"]:
            continue
        elements = {}
        for element in found.get("elem") or []:
            if isinstance(element, dict) and "elem" in element:
                elements[str(element["elem"]["val"])] = element["elem"]
            else:
                elements[str(element)] = {}
        sets[found["name"].rpartition("__")[2]] = {"timeout": found.get("timeout"), "elements": elements}
    return sets


def test_affinity_keeps_the_client_on_one_pod_until_its_set_element_times_out(cluster: SvcnetCluster) -> None:
    pods = {name: cluster.pod(name)["status"]["podIP"] for name in PODS}
    client, client_ip = "sticky-a", pods["sticky-a"]
    wait_for(lambda: set(affinity_sets(cluster)) == {f"{ip}/9376" for ip in pods.values()}, timeout=30,
             interval=0.2, what="an affinity set for each of sticky's two endpoints")
    ip = cluster.kubectl_json("get", "svc", "sticky")["spec"]["clusterIP"]
    result = cluster.exec(client, "sh", "-c", f"for i in $(seq 50); do curl -s --max-time 2 {ip}:80; echo; done")
    answers = collections.Counter(result.stdout.split("\n")[:50])
    assert len(answers) == 1 and "" not in answers, answers
    (chosen,) = answers

    def holders() -> dict[str, Any]:
        return {endpoint: s["elements"][client_ip] for endpoint, s in affinity_sets(cluster).items()
                if client_ip in s["elements"]}
    held = holders()
    assert list(held) == [f"{pods[chosen]}/9376"]  # remembered by the chosen endpoint's set only
    assert {s["timeout"] for s in affinity_sets(cluster).values()} == {AFFINITY_SECONDS}
    # Once timeoutSeconds pass without a connection the element is gone, and with it the affinity.
    wait_for(lambda: not holders(), timeout=AFFINITY_SECONDS + 20, interval=0.3,
             what=f"{client_ip} to time out of every affinity set")
    again = cluster.exec(client, "curl", "-s", "--max-time", "2", f"{ip}:80").stdout
    assert list(holders()) == [f"{pods[again]}/9376"]  # the next connection is remembered afresh
