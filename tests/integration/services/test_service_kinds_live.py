"""Service kinds beyond TCP ClusterIPs, live on the wire (issue 16): UDP with stale conntrack cleared, SCTP
where the kernel has it, ExternalName answered as a CNAME, selector-less Services with hand-made
EndpointSlices or mirrored Endpoints, and publishNotReadyAddresses.

The package's 2-node iptables cluster (tests/integration/services/conftest.py). Its nodes' resolv.conf
names a test upstream resolver in the client namespace (a machine outside the cluster, as in the e2e
walkthrough); the module runs a tiny HTTP server there too, that the selector-less Services point at.
Traffic is sent from a pod (`svcnet exec` with tests/integration/services/service_probe.py) and looked at
with kubectl, dig, nslookup, curl, iptables and conntrack. Everything the module starts is stopped and its
objects deleted, pass or fail.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.cluster.topology import plan_topology
from svcnet.core.endpoints.mirroring import MIRRORING_CONTROLLER_NAME
from tests.integration.apiserver_harness import REPO
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready
from tests.integration.services.conftest import in_client_namespace, manifest_in_default
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl", "nslookup", "dig",
                                                           "conntrack", "iptables")),
    reason="needs root (network namespaces), ip, nsenter, kubectl, curl, nslookup, dig, conntrack and iptables")

CLIENT_IP = plan_topology("x", 2).client.ipv4  # 192.168.0.200, whatever the cluster id
HTTP_PORT = 8080
HTTP_BODY = "hello from outside the cluster\n"
PROBE = str(REPO / "tests" / "integration" / "services" / "service_probe.py")
CLIENT_POD = "client"
UDP_PODS = "app=udp-echo"

MANIFESTS = textwrap.dedent(f"""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: udp-echo}}
    spec:
      replicas: 2
      selector: {{matchLabels: {{app: udp-echo}}}}
      template:
        metadata: {{labels: {{app: udp-echo}}}}
        spec:
          containers:
          - name: serve-hostname
            image: registry.k8s.io/serve_hostname
            ports: [{{containerPort: 9376, protocol: UDP}}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: udp-echo}}
    spec:
      selector: {{app: udp-echo}}
      ports: [{{name: echo, port: 5353, targetPort: 9376, protocol: UDP}}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: sctp-rules}}
    spec:
      selector: {{app: udp-echo}}
      ports: [{{name: echo, port: 7777, targetPort: 9376, protocol: SCTP}}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: {CLIENT_POD}}}
    spec:
      containers:
      - {{name: main, image: busybox, command: [sleep, "3600"]}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: ext}}
    spec: {{type: ExternalName, externalName: www.example.org}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: outside}}
    spec:
      ports: [{{name: http, port: 80, targetPort: {HTTP_PORT}}}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: outside-manual
      labels: {{kubernetes.io/service-name: outside}}
    addressType: IPv4
    ports: [{{name: http, port: {HTTP_PORT}, protocol: TCP}}]
    endpoints: [{{addresses: [{CLIENT_IP}]}}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: legacy}}
    spec:
      ports: [{{name: http, port: 80, targetPort: {HTTP_PORT}}}]
    ---
    apiVersion: v1
    kind: Endpoints
    metadata: {{name: legacy, labels: {{team: net}}}}
    subsets:
    - addresses: [{{ip: {CLIENT_IP}}}]
      ports: [{{name: http, port: {HTTP_PORT}, protocol: TCP}}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: never-ready, labels: {{app: never-ready}}}}
    spec:
      containers:
      - name: main
        image: busybox
        command: [sleep, "3600"]
        readinessProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: unready-published}}
    spec:
      clusterIP: None
      publishNotReadyAddresses: true
      selector: {{app: never-ready}}
      ports: [{{port: 80}}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {{name: unready-hidden}}
    spec:
      clusterIP: None
      selector: {{app: never-ready}}
      ports: [{{port: 80}}]
    """)


@pytest.fixture(scope="module")
def cluster(iptables_cluster: SvcnetCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    www = tmp_path_factory.mktemp("service-kinds-www")
    (www / "index.html").write_text(HTTP_BODY)
    c = iptables_cluster
    server = in_client_namespace(c, sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", CLIENT_IP,
                                 "--directory", str(www), output=subprocess.DEVNULL)
    try:
        # In `default`: the DNS names and rule comments the tests look for name the Services' namespace.
        with manifest_in_default(c, MANIFESTS):
            wait_for(lambda: is_running_ready(c.pod(CLIENT_POD)), timeout=90, interval=0.3, what="client pod ready")
            wait_for(lambda: len([p for p in c.pods(UDP_PODS) if is_running_ready(p)]) == 2, timeout=90,
                     interval=0.3, what="two udp-echo pods ready")
            wait_for(lambda: c.in_namespace(c.client_namespace, "curl", "-sf", f"http://{CLIENT_IP}:{HTTP_PORT}/")
                     .stdout == HTTP_BODY, timeout=30, what="the client namespace's HTTP server")
            yield c
    finally:
        server.terminate()
        server.wait(timeout=10)


# ---- helpers

def cluster_ip(c: SvcnetCluster, service: str) -> str:
    return c.kubectl_json("get", "svc", service)["spec"]["clusterIP"]


def probe(c: SvcnetCluster, *args: str) -> list[str]:
    """Run service_probe.py in the client pod; its reply lines."""
    result = c.exec(CLIENT_POD, sys.executable, PROBE, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def live_udp_pods(c: SvcnetCluster) -> dict[str, str]:
    """Running, ready, not terminating udp-echo pods: name -> IP."""
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in c.pods(UDP_PODS)
            if is_running_ready(p) and not p["metadata"].get("deletionTimestamp")}


def node_of(c: SvcnetCluster, pod: str) -> str:
    return c.pod(pod)["spec"]["nodeName"]


def slices_of(c: SvcnetCluster, service: str) -> list[dict[str, Any]]:
    return c.kubectl_json("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]


def sctp_unsupported_reason() -> str | None:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError as exc:  # EPROTONOSUPPORT where the kernel has no SCTP
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return f"this kernel has no SCTP: socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) fails with {name}"
    return None


SCTP_UNSUPPORTED = sctp_unsupported_reason()


# ---- UDP and SCTP

def test_udp_service_answers_from_every_pod(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster, "udp-echo")
    pods = set(live_udp_pods(cluster))
    seen: set[str] = set()

    def every_pod_answered() -> bool:
        seen.update(probe(cluster, "udp", ip, "5353", "--count", "8"))
        return pods <= seen
    wait_for(every_pod_answered, timeout=60, interval=0, what=f"answers from {sorted(pods)}")
    assert seen - {"<timeout>"} == pods


def test_udp_flow_moves_to_a_live_pod_once_its_pod_is_deleted(cluster: SvcnetCluster) -> None:
    """kube-proxy clears the conntrack entry of a flow whose endpoint went away; without that, the client
    that keeps sending from the same port would keep reaching the dead address until it stopped for 30 s."""
    ip = cluster_ip(cluster, "udp-echo")
    sport = "40404"
    # A datagram (or its answer) may be lost on a busy machine: the same flow tries again.
    [first] = wait_for(lambda: [r for r in probe(cluster, "udp", ip, "5353", "--sport", sport) if r != "<timeout>"],
                       timeout=30, interval=0, what="a first answer")
    pods = live_udp_pods(cluster)
    assert first in pods
    dead_ip = pods[first]
    client_node = cluster.node_namespace(node_of(cluster, CLIENT_POD))
    flows = cluster.in_namespace(client_node, "conntrack", "-L", "-p", "udp", "--orig-port-src", sport).stdout
    assert f"src={dead_ip} " in flows  # the flow's reply direction comes from the pod that answered

    cluster.kubectl("delete", "pod", first, "--wait=false")
    replies = probe(cluster, "udp", ip, "5353", "--sport", sport, "--until-not", first, "--deadline", "25")
    assert replies[-1] in live_udp_pods(cluster), replies
    flows = cluster.in_namespace(client_node, "conntrack", "-L", "-p", "udp", "--orig-port-src", sport).stdout
    assert f"src={dead_ip} " not in flows and f"dst={ip} " in flows


def sctp_dnat_targets(c: SvcnetCluster, node: str, ip: str) -> list[str]:
    """Where a node's iptables sends SCTP to ip:7777 of sctp-rules (its DNAT targets), [] before the rule is in."""
    rules = c.in_namespace(c.node_namespace(node), "iptables", "-t", "nat", "-S").stdout
    service_rule = (f"-A KUBE-SERVICES -d {ip}/32 -p sctp -m comment --comment "
                    '"default/sctp-rules:echo cluster IP" -m sctp --dport 7777 -j KUBE-SVC-')
    if service_rule not in rules:
        return []
    return sorted(line.rsplit(" ", 1)[-1] for line in rules.splitlines()
                  if "-p sctp" in line and '"default/sctp-rules:echo"' in line and "DNAT" in line)


def test_sctp_service_rules_are_installed_on_every_node(cluster: SvcnetCluster) -> None:
    """The rules are rendered and accepted by the node's iptables even where the kernel has no SCTP sockets."""
    ip = cluster_ip(cluster, "sctp-rules")
    for node in ("node-1", "node-2"):
        def dnat_to_every_ready_pod(node: str = node) -> bool:
            targets = sctp_dnat_targets(cluster, node, ip)
            return len(targets) >= 2 and targets == [f"{e}:9376" for e in sorted(live_udp_pods(cluster).values())]
        wait_for(dnat_to_every_ready_pod, timeout=30, what=f"the sctp-rules chains on {node} to DNAT to each pod")


@pytest.mark.skipif(SCTP_UNSUPPORTED is not None, reason=SCTP_UNSUPPORTED or "")
def test_sctp_service_answers_from_every_pod(cluster: SvcnetCluster) -> None:
    server = ("import socket\nhost = socket.gethostname().encode()\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)\n"
              "s.bind(('0.0.0.0', 9376)); s.listen()\n"
              "while True:\n    c, _ = s.accept(); c.sendall(host); c.close()\n")
    cluster.kubectl("create", "deployment", "sctp-echo", "--replicas", "2", "--image", "busybox", "--",
                    sys.executable, "-c", server)
    cluster.kubectl("expose", "deployment", "sctp-echo", "--protocol", "SCTP", "--port", "7777",
                    "--target-port", "9376")
    try:
        wait_for(lambda: len([p for p in cluster.pods("app=sctp-echo") if is_running_ready(p)]) == 2,
                 timeout=60, interval=0.3, what="two sctp-echo pods")
        pods = {p["metadata"]["name"] for p in cluster.pods("app=sctp-echo")}
        ip = cluster_ip(cluster, "sctp-echo")
        seen: set[str] = set()

        def every_pod_answered() -> bool:
            seen.update(probe(cluster, "sctp", ip, "7777", "--count", "8"))
            return pods <= seen
        wait_for(every_pod_answered, timeout=60, interval=0, what=f"SCTP answers from {sorted(pods)}")
    finally:
        cluster.kubectl("delete", "deployment,service", "sctp-echo", "--wait=false")


# ---- ExternalName

def test_external_name_is_a_cname_with_its_targets_address_from_the_upstream(cluster: SvcnetCluster) -> None:
    out = cluster.exec(CLIENT_POD, "nslookup", "ext.default.svc.cluster.local").stdout
    assert "ext.default.svc.cluster.local\tcanonical name = www.example.org." in out
    assert "Name:\twww.example.org\nAddress: 192.0.2.1" in out  # the test upstream's answer
    answer = cluster.exec(CLIENT_POD, "dig", "+noall", "+answer", "ext.default.svc.cluster.local").stdout
    records = [line.split() for line in answer.splitlines()]
    assert [(r[0], r[3], r[4]) for r in records] == [("ext.default.svc.cluster.local.", "CNAME", "www.example.org."),
                                                     ("www.example.org.", "A", "192.0.2.1")]


# ---- Services without a selector

def test_a_selectorless_service_with_a_hand_made_slice_reaches_the_client_namespace(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster, "outside")
    body = wait_for(lambda: cluster.exec(CLIENT_POD, "curl", "-sf", "-m", "3", f"http://{ip}/").stdout,
                    timeout=30, what="curl to the outside Service")
    assert body == HTTP_BODY
    assert [s["metadata"]["name"] for s in slices_of(cluster, "outside")] == ["outside-manual"]


def test_hand_written_endpoints_are_mirrored_to_a_slice_that_carries_traffic(cluster: SvcnetCluster) -> None:
    def mirrored() -> list[dict[str, Any]]:
        return [s for s in slices_of(cluster, "legacy")
                if s["metadata"]["labels"].get("endpointslice.kubernetes.io/managed-by") == MIRRORING_CONTROLLER_NAME]
    [slice_] = wait_for(mirrored, timeout=30, what="a mirrored slice for legacy")
    assert slice_["metadata"]["labels"]["team"] == "net"
    assert slice_["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert [e["addresses"] for e in slice_["endpoints"]] == [[CLIENT_IP]]
    assert slice_["ports"] == [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]
    ip = cluster_ip(cluster, "legacy")
    body = wait_for(lambda: cluster.exec(CLIENT_POD, "curl", "-sf", "-m", "3", f"http://{ip}/").stdout,
                    timeout=30, what="curl to the legacy Service")
    assert body == HTTP_BODY


# ---- publishNotReadyAddresses

def test_publish_not_ready_addresses_puts_an_unready_pod_in_endpoints_and_dns(cluster: SvcnetCluster) -> None:
    pod = wait_for(lambda: (p := cluster.pod("never-ready"))["status"].get("podIP") and p, timeout=60,
                   what="never-ready's IP")
    assert not is_running_ready(pod)
    pod_ip = pod["status"]["podIP"]
    published = wait_for(lambda: cluster.kubectl_json("get", "endpoints", "unready-published").get("subsets"),
                         timeout=30, what="unready-published's endpoints")
    assert [a["ip"] for a in published[0]["addresses"]] == [pod_ip]
    [endpoint] = [e for s in slices_of(cluster, "unready-published") for e in s.get("endpoints") or []]
    assert endpoint["conditions"] == {"ready": True, "serving": False, "terminating": False}
    hidden = wait_for(lambda: cluster.kubectl_json("get", "endpoints", "unready-hidden").get("subsets"),
                      timeout=30, what="unready-hidden's endpoints")
    assert "addresses" not in hidden[0] and [a["ip"] for a in hidden[0]["notReadyAddresses"]] == [pod_ip]
    assert cluster.exec(CLIENT_POD, "dig", "+short", "unready-published.default.svc.cluster.local").stdout.split() \
        == [pod_ip]
    assert "status: NXDOMAIN" in cluster.exec(CLIENT_POD, "dig", "unready-hidden.default.svc.cluster.local").stdout
