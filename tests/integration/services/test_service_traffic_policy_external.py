"""externalTrafficPolicy on the wire, in a two-node `svcnet up` cluster, from the client namespace.

The package's clusters (tests/integration/services/conftest.py), one at a time: kube-proxy in iptables
mode, then in nftables mode. Two pods that answer
with the address they see the request come from run on node-1 only. Two
Services select them:
- `local`: type LoadBalancer with a foreign loadBalancerClass (no controller of
  ours touches it), externalTrafficPolicy Local, so the API server allocates a
  healthCheckNodePort and every node's proxy serves it;
- `cluster`: type NodePort, externalTrafficPolicy Cluster, for contrast.
The client namespace (a machine on the nodes' LAN) curls the nodes' addresses.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.cluster.topology import plan_topology
from svcnet.cluster.tour_services import CLIENT_IP_CONTAINERS
from tests.integration.cluster_fixture import SvcnetCluster
from tests.integration.services.conftest import manifest_in_default
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl")),
    reason="needs root (network namespaces), ip, nsenter, kubectl and curl")

TOPOLOGY = plan_topology("x", 2)
CLIENT_IP = TOPOLOGY.client.ipv4  # 192.168.0.200
NODE_IP = {node.name: node.ipv4 for node in TOPOLOGY.nodes}  # node-1 192.168.0.106, node-2 192.168.0.107
REPLICAS = 2
# The `local` Service's load balancer address (written into its status by the test, standing in for a cloud's
# load balancer); the client namespace routes it through one node or the other, as a load balancer forwards.
LB_IP = "192.0.2.10"
CURL_TIMEOUT_EXIT = 28  # curl: "operation timed out" (a refused connection is 7)

MANIFESTS = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: clientip}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: clientip}}}}
  template:
    metadata: {{labels: {{app: clientip}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: node-1}}
      containers: {CLIENT_IP_CONTAINERS}
---
apiVersion: v1
kind: Service
metadata: {{name: local}}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/not-svcnet
  externalTrafficPolicy: Local
  selector: {{app: clientip}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: cluster}}
spec:
  type: NodePort
  selector: {{app: clientip}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def cluster(request: pytest.FixtureRequest) -> Iterator[SvcnetCluster]:
    shared = request.getfixturevalue(f"{request.param}_cluster")
    # In `default`: the health check's answer names the Service's namespace.
    with manifest_in_default(shared, MANIFESTS) as c:
        wait_for(lambda: len(ready_endpoints(c, "local")) == REPLICAS, timeout=90, interval=0.3,
                 what="both clientip pods ready behind the Service")
        yield c


def ready_endpoints(cluster: SvcnetCluster, service: str) -> list[dict[str, Any]]:
    body = cluster.kubectl_json("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}")
    return [e for s in body["items"] for e in s.get("endpoints") or [] if e["conditions"].get("ready")]


def spec(cluster: SvcnetCluster, service: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "svc", service)["spec"]


def curl(cluster: SvcnetCluster, url: str, *options: str) -> Any:
    return cluster.in_namespace(cluster.client_namespace, "curl", "-s", "--max-time", "2", *options, url)


def http_get(cluster: SvcnetCluster, node: str, port: int, path: str = "/") -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of GET node:port/path from the client namespace; (0, {}, None) if no answer."""
    result = curl(cluster, f"http://{NODE_IP[node]}:{port}{path}", "-i")
    if result.returncode != 0:
        return 0, {}, None
    head, _, body = result.stdout.partition("\n\n")  # curl's CRLFs arrive as "\n" (text mode)
    lines = head.splitlines()
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def health_check(cluster: SvcnetCluster, node: str, port: int, status: int) -> tuple[int, dict[str, str], Any]:
    """The node's answer on the health check port, once it has the status (the proxy opens the port and
    takes the endpoint counts in the sync after it sees them)."""
    def answered() -> tuple[int, dict[str, str], Any] | None:
        answer = http_get(cluster, node, port)
        return answer if answer[0] == status else None

    return wait_for(answered, timeout=30, interval=0.2, what=f"{node}'s health check answering {status}")


def test_a_load_balancer_with_local_policy_gets_a_health_check_node_port(cluster: SvcnetCluster) -> None:
    local = spec(cluster, "local")
    assert 30000 <= local["healthCheckNodePort"] <= 32767
    assert local["healthCheckNodePort"] != local["ports"][0]["nodePort"]
    assert "healthCheckNodePort" not in spec(cluster, "cluster")


def test_the_health_check_answers_200_where_the_pods_are_and_503_elsewhere(cluster: SvcnetCluster) -> None:
    port = spec(cluster, "local")["healthCheckNodePort"]
    _, headers, body = health_check(cluster, "node-1", port, 200)
    service = {"namespace": "default", "name": "local"}
    assert body == {"service": service, "localEndpoints": REPLICAS, "serviceProxyHealthy": True}
    assert (headers["content-type"], headers["x-content-type-options"],
            headers["x-load-balancing-endpoint-weight"]) == ("application/json", "nosniff", str(REPLICAS))
    _, headers, body = health_check(cluster, "node-2", port, 503)
    assert body == {"service": service, "localEndpoints": 0, "serviceProxyHealthy": True}
    assert headers["x-load-balancing-endpoint-weight"] == "0"


def test_local_policy_keeps_the_clients_address(cluster: SvcnetCluster) -> None:
    node_port = spec(cluster, "local")["ports"][0]["nodePort"]
    seen = wait_for(lambda: curl(cluster, f"{NODE_IP['node-1']}:{node_port}").stdout.strip(), timeout=30,
                    what="an answer through node-1's NodePort")
    assert seen == CLIENT_IP  # no SNAT: the pod sees the client namespace's own address


def test_a_node_without_local_endpoints_drops_the_node_port(cluster: SvcnetCluster) -> None:
    local = spec(cluster, "local")
    node_port = local["ports"][0]["nodePort"]
    wait_for(lambda: curl(cluster, f"{NODE_IP['node-1']}:{node_port}").returncode == 0, timeout=30,
             what="node-1 answering on the NodePort")
    health_check(cluster, "node-2", local["healthCheckNodePort"], 503)  # node-2 has synced the Service
    result = curl(cluster, f"{NODE_IP['node-2']}:{node_port}")
    # Dropped, not refused: a load balancer's connection just times out, as with kube-proxy.
    assert (result.returncode, result.stdout) == (CURL_TIMEOUT_EXIT, "")


def test_cluster_policy_masquerades_the_client(cluster: SvcnetCluster) -> None:
    node_port = spec(cluster, "cluster")["ports"][0]["nodePort"]
    via_node_2 = wait_for(lambda: curl(cluster, f"{NODE_IP['node-2']}:{node_port}").stdout.strip(), timeout=30,
                          what="an answer through node-2's NodePort")
    assert via_node_2 == NODE_IP["node-2"]  # node-2 forwarded to a node-1 pod as itself
    via_node_1 = wait_for(lambda: curl(cluster, f"{NODE_IP['node-1']}:{node_port}").stdout.strip(), timeout=30,
                          what="an answer through node-1's NodePort")
    assert via_node_1 not in ("", CLIENT_IP)


def test_the_proxy_health_server_answers_as_kube_proxys(cluster: SvcnetCluster) -> None:
    status, headers, body = http_get(cluster, "node-2", 10256, "/healthz")
    assert status == 200 and headers["content-type"] == "application/json"
    assert set(body) == {"lastUpdated", "currentTime", "nodeEligible"} and body["nodeEligible"] is True


def node_rules(cluster: SvcnetCluster, node: str) -> str:
    """The node's rules, whichever mode wrote them."""
    ns = cluster.node_namespace(node)
    return (cluster.in_namespace(ns, "iptables-save").stdout
            + cluster.in_namespace(ns, "nft", "list", "table", "ip", "kube-proxy").stdout)


def test_a_load_balancer_that_follows_the_health_check_keeps_the_clients_address(cluster: SvcnetCluster) -> None:
    health_port = spec(cluster, "local")["healthCheckNodePort"]
    cluster.kubectl("patch", "svc", "local", "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": LB_IP, "ipMode": "VIP"}]}}}))
    for node in NODE_IP:
        wait_for(lambda node=node: LB_IP in node_rules(cluster, node), timeout=30, what=f"{node}'s rules for {LB_IP}")
    healthy = [node for node in NODE_IP if http_get(cluster, node, health_port)[0] == 200]
    assert healthy == ["node-1"]
    try:
        cluster.in_namespace(cluster.client_namespace, "ip", "route", "replace", LB_IP, "via", NODE_IP["node-1"])
        assert curl(cluster, LB_IP).stdout.strip() == CLIENT_IP
        # A load balancer that ignored the health check: node-2 drops what it cannot serve locally.
        cluster.in_namespace(cluster.client_namespace, "ip", "route", "replace", LB_IP, "via", NODE_IP["node-2"])
        result = curl(cluster, LB_IP)
        assert (result.returncode, result.stdout) == (CURL_TIMEOUT_EXIT, "")
    finally:
        cluster.in_namespace(cluster.client_namespace, "ip", "route", "del", LB_IP)


def test_the_health_check_closes_when_the_policy_turns_to_cluster(cluster: SvcnetCluster) -> None:
    port = spec(cluster, "local")["healthCheckNodePort"]
    health_check(cluster, "node-1", port, 200)
    cluster.kubectl("patch", "svc", "local", "-p", '{"spec": {"externalTrafficPolicy": "Cluster"}}')
    assert "healthCheckNodePort" not in spec(cluster, "local")  # the API server released it
    wait_for(lambda: curl(cluster, f"http://{NODE_IP['node-1']}:{port}/").returncode == 7, timeout=30,
             interval=0.2, what="node-1 refusing the released health check port")
