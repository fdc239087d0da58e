"""The seed walkthrough end to end: DESIGN.md's nine steps, through the commands a user types.

One `svcnet up` cluster (two nodes) for the module. Its nodes' resolv.conf
(`svcnet up --resolv-conf`, kubelet's flag) names a test upstream resolver
that runs in the client namespace, a machine outside the cluster, so step 9's
forwarding is real. Tests run in file order, step by step as
docs/walkthrough.md shows them, each with kubectl, curl, ping, iptables,
conntrack, nslookup and dig run in a node, a pod or the client namespace. The
cluster is brought down and swept afterwards, pass or fail.
"""
from __future__ import annotations

import collections
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from svcnet.cluster.addons import kubeadm_corefile
from svcnet.cluster.spec import load_cluster_spec
from svcnet.cluster.topology import plan_topology
from svcnet.cluster.walkthrough import STATEFULSET_WITHOUT_SERVICE_NAME
from svcnet.proxy.iptables import names
from svcnet.proxy.model import ServicePortName
from svcnet.proxy.nftables import names as nft_names
from tests.integration.apiserver_harness import KUBECTL, REPO, free_port
from tests.integration.clientip import client_ip_pod_and_node_port
from tests.integration.cluster_fixture import (
    SvcnetCluster,
    cluster_with_upstream_resolver,
    is_running_ready,
    upstream_resolver,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl", "nslookup",
                                                           "dig", "conntrack", "ping")),
    reason="needs root (network namespaces), ip, nsenter, kubectl, curl, nslookup, dig, conntrack and ping")

EXAMPLES = REPO / "examples"
DEPLOYMENT_PODS = "app=hostnames,workload!=statefulset"
SEED_PORT = ServicePortName("default", "hostnames", "default", "TCP")
SEED_SVC_CHAIN = "KUBE-SVC-ODX2UBAZM7RQWOIU"  # the seed's: the hash of "default/hostnames:default" + "tcp"
CLIENT_IP = plan_topology("x", 2).client.ipv4  # 192.168.0.200, whatever the cluster id
NODE_1_IP = plan_topology("x", 2).nodes[0].ipv4  # 192.168.0.106
NODE_2_IP = plan_topology("x", 2).nodes[1].ipv4  # 192.168.0.107
CONTROL_PLANE_IP = plan_topology("x", 2).control_plane.ipv4  # type: ignore[union-attr]  # 192.168.0.100


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    """The walkthrough's cluster, once with kube-proxy in iptables mode (the seed's) and once in nftables mode.

    The iptables-mode cluster's nodes are in two zones (`--zones a,b`), for the extended tour's topology step;
    nothing of the seed's steps depends on zones (no Service of theirs asks for hints)."""
    mode = request.param
    zones = ("--zones", "a,b") if mode == "iptables" else ()
    with cluster_with_upstream_resolver(tmp_path_factory.mktemp(f"walkthrough-{mode}"),
                                        ("--proxy-mode", mode, *zones)) as c:
        c.proxy_mode = mode  # type: ignore[attr-defined]
        yield c


# ---- helpers


def deployment_pods(cluster: SvcnetCluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.pods(DEPLOYMENT_PODS))


def cluster_ip(cluster: SvcnetCluster, service: str = "hostnames") -> str:
    return cluster.kubectl_json("get", "svc", service)["spec"]["clusterIP"]


def node_ns(cluster: SvcnetCluster, node: str) -> str:
    return cluster.node_namespace(node)


def iptables(cluster: SvcnetCluster, node: str, *args: str) -> str:
    return cluster.in_namespace(node_ns(cluster, node), "iptables", "-t", "nat", *args).stdout


def nftables_mode(cluster: SvcnetCluster) -> bool:
    return getattr(cluster, "proxy_mode", "iptables") == "nftables"


def nft(cluster: SvcnetCluster, node: str, *args: str) -> str:
    return cluster.in_namespace(node_ns(cluster, node), "nft", *args).stdout


def service_chain(cluster: SvcnetCluster, port: ServicePortName) -> str:
    """The chain that load-balances a service port: KUBE-SVC-* (iptables) or service-* (nftables)."""
    return (nft_names if nftables_mode(cluster) else names).cluster_policy_chain(port)


def endpoint_chain(cluster: SvcnetCluster, port: ServicePortName, endpoint: str) -> str:
    if not nftables_mode(cluster):
        return names.endpoint_chain(port, endpoint)
    ip, _, number = endpoint.rpartition(":")
    return nft_names.endpoint_chain(port, SimpleNamespace(ip=ip, port=int(number)))  # type: ignore[arg-type]


def svc_targets(cluster: SvcnetCluster, node: str, chain: str) -> list[str]:
    """The endpoint chains a service chain sends to, in order (KUBE-SEP-* jumps, or the numgen vmap's gotos)."""
    if nftables_mode(cluster):
        listing = nft(cluster, node, "list", "chain", "ip", "kube-proxy", chain)
        return [target.rstrip(",") for target in re.findall(r"goto (endpoint-\S+)", listing)]
    return [line.split()[-1] for line in iptables(cluster, node, "-S", chain).splitlines() if "-j KUBE-SEP-" in line]


def dig_from_node(cluster: SvcnetCluster, name: str, *flags: str) -> str:
    """dig through the kube-dns Service from node-1: the same proxy path pods use, without exec's start-up."""
    return cluster.in_namespace(node_ns(cluster, "node-1"), "dig", "+tries=1", "+time=1", *flags, "@10.96.0.10",
                                name).stdout


def ready_endpoints(cluster: SvcnetCluster, service: str) -> list[dict[str, Any]]:
    body = cluster.kubectl_json("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}")
    return [e for s in body["items"] for e in s.get("endpoints") or [] if e["conditions"].get("ready")]


def conntrack_tuples(line: str) -> dict[str, tuple[str, str]]:
    """A `conntrack -L` line's original and reply (src, dst)."""
    src = [f.split("=", 1)[1] for f in line.split() if f.startswith("src=")]
    dst = [f.split("=", 1)[1] for f in line.split() if f.startswith("dst=")]
    return {"orig": (src[0], dst[0]), "reply": (src[1], dst[1])}


def pod_ip(cluster: SvcnetCluster, name: str) -> str:
    return cluster.pod(name)["status"]["podIP"]


# ---- 1. kubectl apply the seed's Deployment and Service


def test_step_1_apply_the_seeds_deployment_and_service(cluster: SvcnetCluster) -> None:
    out = cluster.kubectl("apply", "-f", str(EXAMPLES / "hostnames.yaml")).stdout
    assert "service/hostnames created" in out and "deployment.apps/hostnames created" in out

    def three_ready() -> bool:
        pods = cluster.pods(DEPLOYMENT_PODS)
        return len(pods) == 3 and all(is_running_ready(p) for p in pods)

    wait_for(three_ready, timeout=120, interval=0.3, what="the seed's three pods Running and Ready")
    deploy = cluster.kubectl_json("get", "deploy", "hostnames")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "k8s.gcr.io/serve_hostname" and container["ports"][0]["containerPort"] == 9376


# ---- 2. kubectl get pod -owide


def test_step_2_three_running_pods_with_ips_from_their_nodes_pod_cidr(cluster: SvcnetCluster) -> None:
    lines = cluster.kubectl("get", "pod", "-owide", "-l", DEPLOYMENT_PODS).stdout.splitlines()
    header = lines[0].split()
    assert header[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 3
    pod_cidrs = {n.name: ipaddress.ip_network(n.pod_cidr_v4) for n in plan_topology("x", 2).nodes}
    for row in rows:
        assert row[1] == "1/1" and row[2] == "Running"
        assert ipaddress.ip_address(row[5]) in pod_cidrs[row[6]], row  # 10.244.<n>.x on node-<n>


# ---- 3. kubectl get ep hostnames: only Running pods whose readiness probe passes


def test_step_3_endpoints_are_the_ready_pods_ip_9376(cluster: SvcnetCluster) -> None:
    want = sorted(f"{pod_ip(cluster, p)}:9376" for p in deployment_pods(cluster))

    def endpoints() -> list[str]:
        line = cluster.kubectl("get", "ep", "hostnames", "--no-headers").stdout.split()
        return sorted(line[1].split(",")) if len(line) > 1 else []

    wait_for(lambda: endpoints() == want, timeout=30, what=f"kubectl get ep hostnames to show {want}")


def test_step_3_a_running_pod_that_is_not_ready_is_left_out(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: never-ready, labels: {app: hostnames, probe: failing}}
spec:
  containers:
  - name: hostnames
    image: k8s.gcr.io/serve_hostname
    readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
""")
    try:
        pod = cluster.wait_pod("never-ready", lambda p: (p.get("status") or {}).get("phase") == "Running"
                               and p["status"].get("podIP"), timeout=60, what="never-ready Running")
        ip = pod["status"]["podIP"]

        def listed_not_ready() -> bool:
            subsets = cluster.kubectl_json("get", "ep", "hostnames").get("subsets") or []
            return any(a["ip"] == ip for s in subsets for a in s.get("notReadyAddresses") or [])

        # The controller has seen it (as not ready), and kubectl's ENDPOINTS column leaves it out.
        wait_for(listed_not_ready, timeout=30, what="never-ready among notReadyAddresses")
        assert f"{ip}:" not in cluster.kubectl("get", "ep", "hostnames").stdout
        assert not is_running_ready(cluster.pod("never-ready"))
    finally:
        cluster.kubectl("delete", "pod", "never-ready", "--wait=true", timeout=120)


# ---- 4. kubectl get svc, curl CLUSTER-IP from a node and from a pod


def test_step_4_the_service_has_a_cluster_ip(cluster: SvcnetCluster) -> None:
    row = cluster.kubectl("get", "svc", "hostnames", "--no-headers").stdout.split()
    assert row[:2] == ["hostnames", "ClusterIP"] and row[4] == "80/TCP"
    assert ipaddress.ip_address(row[2]) in ipaddress.ip_network("10.96.0.0/12")


def test_step_4_300_curls_from_a_node_and_from_a_pod_reach_all_three_pods(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster)
    pods = deployment_pods(cluster)
    # Both nodes' proxies have programmed the three endpoints before counting.
    wait_for(lambda: all(len(svc_targets(cluster, n, service_chain(cluster, SEED_PORT))) == 3
                         for n in ("node-1", "node-2")),
             timeout=30, what="three SEP chains on both nodes")
    script = f"for i in $(seq 1 300); do curl -s --max-time 2 {ip}:80; echo; done"
    from_node = collections.Counter(cluster.in_namespace(node_ns(cluster, "node-1"), "sh", "-c", script,
                                                         timeout=120).stdout.split())
    from_pod = collections.Counter(cluster.exec(pods[0], "sh", "-c", script).stdout.split())
    for counts in (from_node, from_pod):
        assert set(counts) == set(pods), counts
        assert sum(counts.values()) == 300
        assert max(counts.values()) <= 2 * min(counts.values()), counts
    # The pod reached itself through its own Service too: hairpin traffic works.
    assert from_pod[pods[0]] > 0


def test_step_4_a_service_without_endpoints_refuses_at_once(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 9376}]
""")
    ip = cluster_ip(cluster, "nobody")
    # curl exit 7: connection refused (the filter table's REJECT); 28 would be a timeout.
    wait_for(lambda: cluster.in_namespace(node_ns(cluster, "node-1"), "curl", "-s", "--max-time", "5",
                                          f"{ip}:80").returncode == 7,
             timeout=10, what="a connection to a Service without endpoints to be refused")
    cluster.kubectl("delete", "svc", "nobody")


# ---- 5. iptables -t nat -nvL in the node


def test_step_5_iptables_shows_the_seeds_chains_in_every_node(cluster: SvcnetCluster) -> None:
    if nftables_mode(cluster):
        pytest.skip("nftables mode: test_step_5_nft_shows_the_seeds_chains_and_maps_in_every_node")
    ip = cluster_ip(cluster)
    endpoints = sorted(f"{pod_ip(cluster, p)}:9376" for p in deployment_pods(cluster))
    for node in ("node-1", "node-2"):
        prerouting = iptables(cluster, node, "-nvL", "PREROUTING")
        assert "KUBE-SERVICES" in prerouting and "kubernetes service portals" in prerouting
        services = iptables(cluster, node, "-nvL", "KUBE-SERVICES")
        entry = next(line for line in services.splitlines() if SEED_SVC_CHAIN in line)
        assert ip in entry and "/* default/hostnames:default cluster IP */ tcp dpt:80" in entry

        svc = iptables(cluster, node, "-nvL", SEED_SVC_CHAIN).splitlines()
        jumps = [line for line in svc if "KUBE-SEP-" in line]
        assert len(jumps) == 3
        assert "statistic mode random probability 0.33333333349" in jumps[0]
        assert "statistic mode random probability 0.50000000000" in jumps[1]
        assert "statistic" not in jumps[2]
        # Endpoints in upstream's order (sorted as strings), each SEP named by kube-proxy's hash.
        assert svc_targets(cluster, node, SEED_SVC_CHAIN) == [names.endpoint_chain(SEED_PORT, e)
                                                              for e in endpoints]
        for endpoint in endpoints:
            sep = iptables(cluster, node, "-nvL", names.endpoint_chain(SEED_PORT, endpoint))
            assert "DNAT" in sep and f"tcp to:{endpoint}" in sep
            assert "KUBE-MARK-MASQ" in sep and endpoint.split(":")[0] in sep  # the hairpin rule
        assert "MARK or 0x4000" in iptables(cluster, node, "-nvL", "KUBE-MARK-MASQ")
        postrouting = iptables(cluster, node, "-nvL", "KUBE-POSTROUTING")
        # Today's three-rule form: RETURN unless marked, clear the mark, MASQUERADE (the seed's
        # older kube-proxy matched the mark on the MASQUERADE rule itself).
        assert "mark match ! 0x4000/0x4000" in postrouting and "MARK xor 0x4000" in postrouting
        assert "MASQUERADE" in postrouting and "kubernetes service traffic requiring SNAT" in postrouting


def test_step_5_nft_shows_the_seeds_chains_and_maps_in_every_node(cluster: SvcnetCluster) -> None:
    if not nftables_mode(cluster):
        pytest.skip("iptables mode: test_step_5_iptables_shows_the_seeds_chains_in_every_node")
    ip = cluster_ip(cluster)
    endpoints = sorted(f"{pod_ip(cluster, p)}:9376" for p in deployment_pods(cluster))
    chain = service_chain(cluster, SEED_PORT)
    for node in ("node-1", "node-2"):
        table = nft(cluster, node, "list", "table", "ip", "kube-proxy")
        # The VIP is one element of the service-ips verdict map, sending its packets to the Service's chain.
        assert re.search(rf"{re.escape(ip)} \. tcp \. 80 : goto {re.escape(chain)}\b", table), table
        assert "type nat hook prerouting priority dstnat" in table
        service = nft(cluster, node, "list", "chain", "ip", "kube-proxy", chain)
        assert "numgen random mod 3 vmap" in service
        assert "ip saddr != 10.244.0.0/16 jump mark-for-masquerade" in service
        assert svc_targets(cluster, node, chain) == [endpoint_chain(cluster, SEED_PORT, e) for e in endpoints]
        for endpoint in endpoints:
            sep = nft(cluster, node, "list", "chain", "ip", "kube-proxy", endpoint_chain(cluster, SEED_PORT, endpoint))
            assert f"dnat to {endpoint}" in sep
            assert f"ip saddr {endpoint.split(':')[0]} jump mark-for-masquerade" in sep  # the hairpin rule
        assert "meta mark set meta mark | 0x00004000" in table
        assert "masquerade fully-random" in table
        # Only one mode's rules: nftables mode removed (and never wrote) iptables mode's chains.
        assert "KUBE-SERVICES" not in iptables(cluster, node, "-S")


def test_step_5_rules_follow_scaling_within_a_second_and_go_with_the_service(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 9376}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: k8s.gcr.io/serve_hostname}]
""")
    svc_chain = service_chain(cluster, ServicePortName("default", "web", "http", "TCP"))
    wait_for(lambda: len(ready_endpoints(cluster, "web")) == 1, timeout=60, what="web's first endpoint")
    wait_for(lambda: len(svc_targets(cluster, "node-1", svc_chain)) == 1, timeout=10, what="one SEP chain")

    cluster.kubectl("scale", "deploy", "web", "--replicas=3")
    wait_for(lambda: len(ready_endpoints(cluster, "web")) == 3, timeout=60, what="three ready endpoints")
    # From the slice showing them to both nodes' rules showing them: within a second.
    wait_for(lambda: all(len(svc_targets(cluster, n, svc_chain)) == 3 for n in ("node-1", "node-2")),
             timeout=1.0, interval=0.05, what="three SEP chains on both nodes within a second")

    cluster.kubectl("delete", "svc", "web")
    if nftables_mode(cluster):
        # The map element goes at once; the flushed chain is deleted by the first sync at least a second
        # later (upstream's stale-chain delay; a sync before that renews it). Left alone that is the
        # periodic sync, up to 30 s on; any change brings a sync, so a throwaway Service is created every
        # 1.5 s until one of those syncs has deleted the chain.
        wait_for(lambda: all(svc_chain not in nft(cluster, n, "list", "map", "ip", "kube-proxy", "service-ips")
                             for n in ("node-1", "node-2")), timeout=5, what="the Service's map element to go")
        cluster.kubectl("delete", "deploy", "web")
        pokes: list[float] = []

        def chains_gone() -> bool:
            if all(svc_chain not in nft(cluster, n, "list", "table", "ip", "kube-proxy") for n in ("node-1", "node-2")):
                return True
            if not pokes or time.monotonic() - pokes[-1] >= 1.5:
                cluster.kubectl("create", "service", "clusterip", f"web-sync-{len(pokes)}", "--tcp=80")
                pokes.append(time.monotonic())
            return False
        try:
            wait_for(chains_gone, timeout=40, interval=0.2, what="the Service's chains to go at a later sync")
        finally:
            if pokes:
                cluster.kubectl("delete", "svc", "--ignore-not-found", *(f"web-sync-{i}" for i in range(len(pokes))),
                                check=False)  # the module's cluster goes down afterwards in any case
        return
    wait_for(lambda: all(svc_chain not in iptables(cluster, n, "-S") for n in ("node-1", "node-2")),
             timeout=5, what="the Service's chains to go")
    cluster.kubectl("delete", "deploy", "web")


# ---- 6. ping CLUSTER-IP


def test_step_6_ping_of_the_cluster_ip_gets_no_reply_from_a_pod_or_a_node(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster)
    pods = deployment_pods(cluster)
    assert cluster.exec(pods[0], "ping", "-c", "1", "-W", "1", ip).returncode == 1  # 1: sent, no reply
    assert cluster.in_namespace(node_ns(cluster, "node-1"), "ping", "-c", "1", "-W", "1", ip).returncode == 1
    # ...while a pod IP does answer, so the silence is the VIP's, not the network's.
    assert cluster.exec(pods[0], "ping", "-c", "1", "-W", "2", pod_ip(cluster, pods[1])).returncode == 0


# ---- 7. NodePort from outside the cluster, through node 2, with SNAT


def test_step_7_node_port_via_node_2_is_answered_by_a_node_1_pod(cluster: SvcnetCluster) -> None:
    out = cluster.kubectl("expose", "deployment", "hostnames", "--name=hostnames-nodeport", "--type=NodePort",
                          "--port=80", "--target-port=9376").stdout
    assert "service/hostnames-nodeport exposed" in out
    port = cluster.kubectl_json("get", "svc", "hostnames-nodeport")["spec"]["ports"][0]["nodePort"]
    on_node_1 = {p["metadata"]["name"] for p in cluster.pods(DEPLOYMENT_PODS) if p["spec"]["nodeName"] == "node-1"}
    assert on_node_1, "the scheduler spreads the seed's pods over both nodes"

    def served_from_node_1() -> bool:
        # The client knows only the LAN. It talks to node-2; a node-1 pod's reply can only reach it
        # back through node-2 if node-2 masqueraded the request (otherwise node-1 answers directly
        # and the client's TCP drops it).
        return cluster.in_namespace(cluster.client_namespace, "curl", "-s", "--max-time", "2",
                                    f"{NODE_2_IP}:{port}").stdout.strip() in on_node_1

    wait_for(served_from_node_1, timeout=30, interval=0, what="a node-1 pod answering through node-2")
    # node-2's conntrack entries for the NodePort: every reply is addressed to node-2 (SNAT: its LAN
    # address toward node-1's pods, its bridge address toward its own), never to the client.
    flows = [conntrack_tuples(line) for line in cluster.in_namespace(
        node_ns(cluster, "node-2"), "conntrack", "-L", "-p", "tcp", "--orig-port-dst", str(port)).stdout.splitlines()]
    assert flows and all(f["orig"] == (CLIENT_IP, NODE_2_IP) and f["reply"][1] != CLIENT_IP for f in flows), flows
    node_1_pods = ipaddress.ip_network(plan_topology("x", 2).nodes[0].pod_cidr_v4)
    assert any(ipaddress.ip_address(f["reply"][0]) in node_1_pods and f["reply"][1] == NODE_2_IP
               for f in flows), flows
    cluster.kubectl("delete", "svc", "hostnames-nodeport")


def test_step_7_the_pod_sees_node_2s_address_as_the_source(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=client_ip_pod_and_node_port("node-1"))
    try:
        wait_for(lambda: len(ready_endpoints(cluster, "clientip")) == 1, timeout=60, what="clientip ready")
        port = cluster.kubectl_json("get", "svc", "clientip")["spec"]["ports"][0]["nodePort"]
        seen = wait_for(lambda: cluster.in_namespace(cluster.client_namespace, "curl", "-s", "--max-time", "2",
                                                     f"{NODE_2_IP}:{port}").stdout.strip(),
                        timeout=30, what="an answer from the clientip pod through node-2")
        assert seen == NODE_2_IP  # not the client's 192.168.0.200: node-2 SNATed it
    finally:
        cluster.kubectl("delete", "svc,pod", "clientip", "--wait=false")


# ---- beyond the seed, before step 8 makes the Service headless: kubectl port-forward (the API server
# proxies to the pod's kubelet, which dials the pod; a ClusterIP Service's port maps to its targetPort)


class PortForward:
    """`kubectl port-forward TARGET LOCAL:REMOTE` running until stop(), as a user runs it."""

    def __init__(self, cluster: SvcnetCluster, target: str, remote: int, *, websockets: bool = True) -> None:
        self.local = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        # kubectl >= 1.31 tunnels SPDY through a WebSocket; false: its SPDY/3.1 upgrade, as before.
        env.update(HOME=str(cluster.home), KUBECONFIG=str(cluster.data_dir / "kubeconfig"),
                   KUBECTL_PORT_FORWARD_WEBSOCKETS=str(websockets).lower())
        self.proc = subprocess.Popen([KUBECTL, "port-forward", target, f"{self.local}:{remote}"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        wait_for(lambda: any(line.startswith(f"Forwarding from 127.0.0.1:{self.local}") for line in self.lines),
                 timeout=30, what=f"kubectl port-forward {target} to listen (stdout so far: {self.lines})")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def get(self) -> str:
        return subprocess.run(["curl", "-s", "--max-time", "10", f"http://127.0.0.1:{self.local}/"],
                              capture_output=True, text=True, timeout=30).stdout.strip()

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: kubectl's exit code and what it wrote on stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None
        return self.proc.returncode, self.proc.stderr.read()


@pytest.mark.parametrize(("target", "websockets"), [("pod", True), ("svc/hostnames", True),
                                                    ("deploy/hostnames", True), ("pod", False)])
def test_port_forward_reaches_a_hostnames_pod_and_ends_cleanly_on_ctrl_c(cluster: SvcnetCluster, target: str,
                                                                          websockets: bool) -> None:
    pod = deployment_pods(cluster)[0]
    serving = set(deployment_pods(cluster)) | {p["metadata"]["name"] for p in cluster.pods("app=hostnames")}
    forward = PortForward(cluster, f"pod/{pod}" if target == "pod" else target,
                          9376 if target != "svc/hostnames" else 80, websockets=websockets)
    try:
        answers = {forward.get() for _ in range(3)}  # one connection each, on one forwarding session
    finally:
        code, stderr = forward.interrupt()
    expected = {pod} if target == "pod" else serving
    assert len(answers) == 1 and answers <= expected, (answers, forward.lines, stderr)
    assert code == 0, stderr
    assert "error" not in stderr.lower(), stderr
    # The local port is closed once kubectl is gone.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", forward.local)) != 0


def test_port_forward_to_a_port_nothing_listens_on_reports_the_error(cluster: SvcnetCluster) -> None:
    pod = deployment_pods(cluster)[0]
    forward = PortForward(cluster, f"pod/{pod}", 9)
    try:
        assert forward.get() == ""
    finally:
        _, stderr = forward.interrupt()
    assert "error forwarding port 9 to pod" in stderr, stderr


# ---- 8. DNS: the Service made headless, a StatefulSet behind it


def test_step_8_the_service_becomes_headless_with_a_statefulset_behind_it(cluster: SvcnetCluster) -> None:
    cluster.kubectl("delete", "svc", "hostnames")
    out = cluster.kubectl("apply", "-f", str(EXAMPLES / "hostnames-statefulset.yaml")).stdout
    assert "service/hostnames created" in out and "statefulset.apps/hostnames created" in out
    assert cluster_ip(cluster) == "None"
    wait_for(lambda: {e.get("hostname") for e in ready_endpoints(cluster, "hostnames")} >= {"hostnames-0",
                                                                                            "hostnames-1"},
             timeout=120, what="the StatefulSet's two pods ready in the headless Service")


def test_step_8_nslookup_from_a_pod_answers_as_the_seed_shows(cluster: SvcnetCluster) -> None:
    pod = deployment_pods(cluster)[0]

    def nslookup(*args: str) -> str:
        result = cluster.exec(pod, "nslookup", *args)
        return result.stdout + result.stderr

    kubernetes = nslookup("kubernetes.default.svc.cluster.local")
    assert "Server:\t\t10.96.0.10" in kubernetes and "Address: 10.96.0.1\n" in kubernetes

    ready_ips = {e["addresses"][0] for e in ready_endpoints(cluster, "hostnames")}
    assert len(ready_ips) == 5  # the Deployment's three and the StatefulSet's two
    headless = nslookup("hostnames.default.svc.cluster.local")
    assert headless.count("Name:\thostnames.default.svc.cluster.local") == 5
    assert set(cluster.exec(pod, "dig", "+short", "hostnames.default.svc.cluster.local").stdout.split()) == ready_ips

    sts = nslookup("hostnames-0.hostnames.default.svc.cluster.local")
    assert "Name:\thostnames-0.hostnames.default.svc.cluster.local" in sts
    assert f"Address: {pod_ip(cluster, 'hostnames-0')}\n" in sts

    stateless = nslookup(f"{pod}.hostnames.default.svc.cluster.local")
    assert f"** server can't find {pod}.hostnames.default.svc.cluster.local: NXDOMAIN" in stateless


def test_step_8_a_statefulset_without_service_name_is_rejected(cluster: SvcnetCluster) -> None:
    result = cluster.kubectl("apply", "-f", "-", check=False, input=STATEFULSET_WITHOUT_SERVICE_NAME)
    assert result.returncode != 0 and "spec.serviceName: Required value" in result.stderr
    assert cluster.kubectl("get", "sts", "no-service-name", "--ignore-not-found").stdout == ""


def test_step_8_aaaa_answers_a_dual_stack_service(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: hostnames-ds}
spec:
  ipFamilyPolicy: PreferDualStack
  selector: {app: hostnames}
  ports: [{port: 80, targetPort: 9376}]
""")
    ipv6 = [ip for ip in cluster.kubectl_json("get", "svc", "hostnames-ds")["spec"]["clusterIPs"] if ":" in ip]
    assert ipv6 and ipv6[0].startswith("fd00:10:96::")
    pod = deployment_pods(cluster)[0]
    wait_for(lambda: f"Address: {ipv6[0]}" in cluster.exec(
        pod, "nslookup", "-query=AAAA", "hostnames-ds.default.svc.cluster.local").stdout,
        timeout=10, what="the AAAA answer")
    # ...and the IPv6 ClusterIP carries traffic: ip6tables rules, or the `ip6 kube-proxy` table.
    serving = {p["metadata"]["name"] for p in cluster.pods("app=hostnames")}
    url = f"http://[{ipv6[0]}]:80"
    wait_for(lambda: cluster.exec(pod, "curl", "-s", "-g", "--max-time", "2", url).stdout.strip() in serving,
             timeout=10, what="a pod's curl to the IPv6 ClusterIP to be answered")
    assert cluster.in_namespace(node_ns(cluster, "node-2"), "curl", "-s", "-g", "--max-time", "2",
                                url).stdout.strip() in serving
    if nftables_mode(cluster):
        assert f"{ipv6[0]} . tcp . 80 : goto service-" in nft(cluster, "node-2", "list", "map", "ip6", "kube-proxy",
                                                              "service-ips")
    cluster.kubectl("delete", "svc", "hostnames-ds")


def test_step_8_a_new_statefulset_pod_resolves_within_a_second_of_being_ready(cluster: SvcnetCluster) -> None:
    name = "hostnames-2.hostnames.default.svc.cluster.local"
    assert "status: NXDOMAIN" in dig_from_node(cluster, name)
    cluster.kubectl("scale", "sts", "hostnames", "--replicas=3")
    wait_for(lambda: "hostnames-2" in {e.get("hostname") for e in ready_endpoints(cluster, "hostnames")},
             timeout=60, interval=0.05, what="hostnames-2 ready in the headless Service's slice")
    ip = pod_ip(cluster, "hostnames-2")
    wait_for(lambda: dig_from_node(cluster, name, "+short").split() == [ip], timeout=1.0, interval=0.02,
             what="hostnames-2's name to resolve within a second")


def test_step_8_a_deleted_service_is_nxdomain_within_a_second(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: short-lived}
spec:
  selector: {app: hostnames}
  ports: [{port: 80, targetPort: 9376}]
""")
    name = "short-lived.default.svc.cluster.local"
    ip = cluster_ip(cluster, "short-lived")
    wait_for(lambda: dig_from_node(cluster, name, "+short").split() == [ip], timeout=10,
             what="short-lived resolves")
    cluster.kubectl("delete", "svc", "short-lived")
    wait_for(lambda: "status: NXDOMAIN" in dig_from_node(cluster, name), timeout=1.0, interval=0.02,
             what="the deleted Service's name to be NXDOMAIN within a second")


# ---- 9. resolv.conf, short names, forwarding


def test_step_9_a_pods_resolv_conf_names_kube_dns_the_search_list_and_ndots(cluster: SvcnetCluster) -> None:
    lines = cluster.exec(deployment_pods(cluster)[0], "cat", "/etc/resolv.conf").stdout.splitlines()
    assert "nameserver 10.96.0.10" in lines
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in lines
    assert "options ndots:5" in lines


def test_step_9_nslookup_of_short_names_goes_through_the_search_list(cluster: SvcnetCluster) -> None:
    pod = deployment_pods(cluster)[0]
    service = cluster.exec(pod, "nslookup", "hostnames").stdout
    assert "Server:\t\t10.96.0.10" in service
    assert service.count("Name:\thostnames.default.svc.cluster.local") == len(ready_endpoints(cluster, "hostnames"))
    short = cluster.exec(pod, "nslookup", "hostnames-0.hostnames").stdout
    assert "Name:\thostnames-0.hostnames.default.svc.cluster.local" in short
    assert f"Address: {pod_ip(cluster, 'hostnames-0')}" in short
    assert "Address: 10.96.0.1" in cluster.exec(pod, "nslookup", "kubernetes.default").stdout


def test_step_9_names_outside_the_cluster_are_forwarded_to_the_upstream(cluster: SvcnetCluster) -> None:
    pod = deployment_pods(cluster)[0]
    out = cluster.exec(pod, "nslookup", "www.example.org").stdout
    assert "Non-authoritative answer:" in out and "Address: 192.0.2.1" in out
    # The upstream in the client namespace (outside the cluster) is the one that was asked.
    asked = cluster.in_namespace(cluster.client_namespace, "dig", "+short", f"@{CLIENT_IP}",
                                 "www.example.org.queries.test", "TXT").stdout.strip().strip('"')
    assert int(asked) >= 1
    nx = cluster.exec(pod, "dig", "nx.example.org")
    assert "status: NXDOMAIN" in nx.stdout


# ---- beyond the seed: the API from inside the cluster


def test_pods_reach_the_api_through_the_kubernetes_service(cluster: SvcnetCluster) -> None:
    # kube-apiserver's own endpoint: the control-plane address on the LAN, the secure port.
    endpoints = cluster.kubectl_json("get", "endpoints", "kubernetes")
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == [CONTROL_PLANE_IP]
    pod = deployment_pods(cluster)[0]
    env = dict(line.split("=", 1) for line in cluster.exec(pod, "env").stdout.splitlines() if "=" in line)
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("10.96.0.1", "443")
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    # The proxy's rules send the ClusterIP to that one endpoint, on every node.
    api_port = ServicePortName("default", "kubernetes", "https", "TCP")
    for node in ("node-1", "node-2"):
        assert len(svc_targets(cluster, node, service_chain(cluster, api_port))) == 1
    # Through the ClusterIP (DNAT by the proxy), TLS verified by the name in-cluster clients use, as the
    # pod's own ServiceAccount: its token, the CA and the namespace are mounted where clients look.
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    list_pods = (f"curl -s --max-time 5 --cacert {sa}/ca.crt -H \"Authorization: Bearer $(cat {sa}/token)\" "
                 f"https://kubernetes.default.svc/api/v1/namespaces/$(cat {sa}/namespace)/pods")
    denied = json.loads(cluster.kubectl("exec", pod, "--", "sh", "-c", list_pods).stdout)
    assert (denied["code"], denied["reason"]) == (403, "Forbidden"), denied
    assert 'User "system:serviceaccount:default:default" cannot list resource "pods"' in denied["message"]
    cluster.kubectl("create", "rolebinding", "default-reads", "--clusterrole=view", "--serviceaccount=default:default")
    try:
        listed = wait_for(lambda: json.loads(cluster.kubectl("exec", pod, "--", "sh", "-c", list_pods).stdout)
                          .get("items"), timeout=30, interval=0.5, what="the pod list after the RoleBinding")
        assert pod in {item["metadata"]["name"] for item in listed}
    finally:
        cluster.kubectl("delete", "rolebinding", "default-reads")


# ---- beyond the seed: CoreDNS configured as kubeadm does, through the kube-system/coredns ConfigMap

RELOAD_DEADLINE = 150  # kubelet's volume sync (here <= 25 s), then the reload plugin's 30 s +- 15 s, with room for load
EDITOR_SCRIPT = """\
import os, sys, yaml
path = sys.argv[-1]
with open(path) as f:
    cm = yaml.safe_load(f)
cm["data"]["Corefile"] = os.environ["NEW_COREFILE"]
with open(path, "w") as f:
    yaml.safe_dump(cm, f)
"""
STUB_PORT = 5354
STUB_ANSWER = "192.0.2.54"  # what the stub domain's upstream answers (the `.` upstream says 192.0.2.1)


def kubectl_edit_corefile(cluster: SvcnetCluster, tmp_path: Any, corefile: str) -> None:
    """`kubectl edit cm coredns -n kube-system`, with an editor that replaces the Corefile."""
    script = tmp_path / "edit_corefile.py"
    script.write_text(EDITOR_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env.update(HOME=str(cluster.home), KUBECONFIG=str(cluster.data_dir / "kubeconfig"),
               KUBE_EDITOR=f"{sys.executable} {script}", NEW_COREFILE=corefile)
    result = subprocess.run([KUBECTL, "edit", "cm", "coredns", "-n", "kube-system"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0 and "configmap/coredns edited" in result.stdout, result.stdout + result.stderr


def coredns_pods(cluster: SvcnetCluster) -> list[dict[str, Any]]:
    return cluster.kubectl_json("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]


def coredns_answers(cluster: SvcnetCluster, name: str) -> list[list[str]]:
    """Each DNS pod's answer to name, asked directly from node-1 (to know both reloaded, not one)."""
    return [cluster.in_namespace(node_ns(cluster, "node-1"), "dig", "+short", "+tries=1", "+time=1",
                                 f"@{p['status']['podIP']}", name).stdout.split() for p in coredns_pods(cluster)]


def restore_kubeadm_corefile(cluster: SvcnetCluster) -> None:
    """kubeadm's Corefile back in the ConfigMap (the pods take it at their next reload; nothing after
    these tests depends on the edit, so they do not wait for it)."""
    cm = cluster.kubectl_json("get", "cm", "coredns", "-n", "kube-system")
    if cm["data"]["Corefile"] != kubeadm_corefile():
        cm["data"]["Corefile"] = kubeadm_corefile()
        cluster.kubectl("replace", "-f", "-", input=json.dumps(cm))


def only_in_iptables_mode(cluster: SvcnetCluster) -> None:
    """DNS configuration does not depend on the proxy mode: its reload waits (up to a minute each)
    run in one of the two clusters."""
    if nftables_mode(cluster):
        pytest.skip("the Corefile edits are proxy-mode independent; they run in the iptables-mode cluster")


def test_cluster_dns_runs_kubeadms_corefile_from_the_coredns_configmap(cluster: SvcnetCluster) -> None:
    cm = cluster.kubectl_json("get", "cm", "coredns", "-n", "kube-system")
    assert cm["data"]["Corefile"] == kubeadm_corefile()
    assert "cache 30 {\n       disable success cluster.local\n       disable denial cluster.local\n    }" in \
        cm["data"]["Corefile"]
    spec = cluster.kubectl_json("get", "deploy", "coredns", "-n", "kube-system")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "coredns"
    # kubeadm's way: the ConfigMap mounted at /etc/coredns, the Corefile read from there; no socket or
    # kubeconfig of the host: the API as the coredns ServiceAccount through its mounted token.
    [container] = spec["containers"]
    assert container["args"][container["args"].index("--corefile") + 1] == "/etc/coredns/Corefile"
    assert not {"--data-dir", "--kubeconfig"} & set(container["args"])
    assert spec["volumes"][0]["configMap"]["name"] == "coredns"
    pod = coredns_pods(cluster)[0]["metadata"]["name"]
    mounted = cluster.kubectl("exec", "-n", "kube-system", pod, "--", "cat", "/etc/coredns/Corefile").stdout
    assert mounted == kubeadm_corefile()
    token = cluster.kubectl("exec", "-n", "kube-system", pod, "--", "cat",
                            "/var/run/secrets/kubernetes.io/serviceaccount/token").stdout
    whoami = cluster.kubectl("auth", "whoami", f"--token={token}").stdout
    assert "system:serviceaccount:kube-system:coredns" in whoami
    assert cluster.kubectl_json("get", "sa", "coredns", "-n", "kube-system")["metadata"]["name"] == "coredns"
    binding = cluster.kubectl_json("get", "clusterrolebinding", "system:coredns")
    assert binding["roleRef"]["name"] == "system:coredns"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]
    verbs = {r["resources"][0]: r["verbs"] for r in cluster.kubectl_json("get", "clusterrole", "system:coredns")["rules"]}
    assert verbs == {"endpoints": ["list", "watch"], "endpointslices": ["list", "watch"]}
    # The pods run it: the health and ready plugins' addresses answer kubeadm's probes.
    assert all(is_running_ready(p) for p in coredns_pods(cluster)) and len(coredns_pods(cluster)) == 2


def test_kubectl_edit_adds_hosts_and_a_stub_domain_within_the_reload_interval(cluster: SvcnetCluster,
                                                                            tmp_path: Any) -> None:
    only_in_iptables_mode(cluster)
    with upstream_resolver(cluster, STUB_PORT, STUB_ANSWER):
        try:
            edited = kubeadm_corefile().replace("    loop\n", "    hosts {\n       10.1.2.3 printer.lan\n"
                                                "       fallthrough\n    }\n    loop\n")
            # Checked every 2 s from this edit on (the plugin's shortest), so the next test's edit is
            # not another wait of 30 +- 15 s; this one is taken at kubeadm's interval.
            assert "    reload\n" in edited
            edited = edited.replace("    reload\n", "    reload 2s 1s\n")
            edited += f"example.lan:53 {{\n    forward . {CLIENT_IP}:{STUB_PORT}\n}}\n"
            kubectl_edit_corefile(cluster, tmp_path, edited)
            wait_for(lambda: coredns_answers(cluster, "printer.lan") == [["10.1.2.3"]] * 2,
                     timeout=RELOAD_DEADLINE, interval=0.5, what="both DNS pods to answer printer.lan from hosts")
            pod = deployment_pods(cluster)[0]
            printer = cluster.exec(pod, "nslookup", "printer.lan").stdout
            assert "Name:\tprinter.lan\nAddress: 10.1.2.3" in printer, printer
            # The stub domain goes to its own upstream, and only there; other names still to the `.` one.
            stubbed = cluster.exec(pod, "nslookup", "scanner.example.lan.").stdout
            assert f"Address: {STUB_ANSWER}" in stubbed, stubbed
            asked = {port: cluster.in_namespace(cluster.client_namespace, "dig", "+short", "-p", str(port),
                                                f"@{CLIENT_IP}", "scanner.example.lan.queries.test", "TXT").stdout
                     for port in (STUB_PORT, 53)}
            assert int(asked[STUB_PORT].strip().strip('"')) >= 1 and asked[53].strip() == '"0"', asked
            assert "Address: 192.0.2.1" in cluster.exec(pod, "nslookup", "www.example.org.").stdout
            # Cluster names are answered by the kubernetes plugin as before.
            assert "Address: 10.96.0.1" in cluster.exec(pod, "nslookup", "kubernetes.default").stdout
        except BaseException:
            restore_kubeadm_corefile(cluster)
            raise


def test_an_invalid_corefile_edit_keeps_the_running_config_and_logs_the_plugin(cluster: SvcnetCluster,
                                                                              tmp_path: Any) -> None:
    only_in_iptables_mode(cluster)
    try:
        running = cluster.kubectl_json("get", "cm", "coredns", "-n", "kube-system")["data"]["Corefile"]
        before = {name: cluster.exec(deployment_pods(cluster)[0], "dig", "+short", name).stdout.split()
                  for name in ("printer.lan", "kubernetes.default.svc.cluster.local")}
        kubectl_edit_corefile(cluster, tmp_path, running.replace("    errors\n", "    errors\n    mdns\n"))
        message = "Error during parsing: Unknown directive 'mdns'"

        def every_pod_logged_it() -> bool:
            return all(message in cluster.kubectl("logs", "-n", "kube-system", p["metadata"]["name"]).stdout
                       + cluster.kubectl("logs", "-n", "kube-system", p["metadata"]["name"]).stderr
                       for p in coredns_pods(cluster))

        wait_for(every_pod_logged_it, timeout=RELOAD_DEADLINE, interval=0.5,
                 what="both DNS pods to log the refused Corefile")
        logs = cluster.kubectl("logs", "-n", "kube-system", "deploy/coredns").stdout
        assert "Restart failed: Corefile:3 - Error during parsing: Unknown directive 'mdns' " \
               "(/etc/coredns/Corefile keeps its running configuration)" in logs, logs
        after = {name: cluster.exec(deployment_pods(cluster)[0], "dig", "+short", name).stdout.split()
                 for name in before}
        assert after == before and after["kubernetes.default.svc.cluster.local"] == ["10.96.0.1"]
    finally:
        restore_kubeadm_corefile(cluster)


# ---- the whole thing, as `svcnet walkthrough` and `svcnet status` print it


def test_status_shows_components_nodes_proxy_syncs_and_dns(cluster: SvcnetCluster) -> None:
    out = cluster.svcnet("status", "--data-dir", str(cluster.data_dir), check=True).stdout
    assert "apiserver   ready" in out
    for node, ip in (("node-1", "192.168.0.106"), ("node-2", NODE_2_IP)):
        line = next(x for x in out.splitlines() if x.startswith(node))
        assert "Ready" in line and ip in line and "agent up, proxy up" in line and "never" not in line
    assert "kube-system/kube-dns 10.96.0.10: 2/2 ready" in out


def test_the_walkthrough_command_prints_every_step_and_can_run_again(cluster: SvcnetCluster) -> None:
    # The cluster's `hostnames` Service is headless now (step 8): the walkthrough goes back to the
    # seed's start (the ClusterIP Service, no StatefulSet) and does it all again.
    result = cluster.svcnet("walkthrough", "--data-dir", str(cluster.data_dir), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rules = (("nftables", "nft list chain ip kube-proxy nat-prerouting", "numgen random mod 3 vmap")
             if nftables_mode(cluster) else
             ("iptables", f"Chain {SEED_SVC_CHAIN}", "statistic mode random probability 0.33333333349"))
    for expected in ("$ kubectl delete -f", "$ kubectl get pod -owide", "$ kubectl get ep hostnames",
                     "$ kubectl get svc hostnames", "$ curl 127.0.0.1:10249/proxyMode", *rules,
                     "1 packets transmitted, 0 received",
                     "service/hostnames-nodeport exposed", "statefulset.apps/hostnames",
                     "Name:\thostnames-0.hostnames.default.svc.cluster.local",
                     "spec.serviceName: Required value", "nameserver 10.96.0.10", "Address: 10.96.0.1", "NXDOMAIN"):
        assert expected in out, expected


# ---- the extended tour: `svcnet walkthrough --extended`, every other kind of Service


def extended_tour_steps(out: str) -> dict[str, str]:
    """The tour's output by step title ("== N. title" lines start a step)."""
    parts = re.split(r"^== \d+\. (.+)$", out, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def counts(listing: str) -> dict[str, int]:
    """`sort | uniq -c` lines as {name: count}."""
    return {name: int(n) for n, name in re.findall(r"^\s+(\d+) (\S+)$", listing, flags=re.MULTILINE)}


def command_output(step: str, command: str) -> str:
    """What the tour printed under the first `$ ...` line containing command (up to the blank line after it)."""
    after = step.split(command, 1)[1].split("\n", 1)[1]
    return after.split("\n\n", 1)[0]


def test_the_extended_walkthrough_shows_every_kind_of_service_and_cleans_up(cluster: SvcnetCluster) -> None:
    # One mode is enough: each step's rules in both modes are what the live modules of issue 16 check.
    if nftables_mode(cluster):
        pytest.skip("the extended tour runs in the iptables-mode cluster (its nodes are in zones a and b)")
    result = cluster.svcnet("walkthrough", "--extended", "--data-dir", str(cluster.data_dir), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = extended_tour_steps(result.stdout)
    assert len(steps) == 12, list(steps)

    etp = steps["externalTrafficPolicy: Local keeps the client's address; the health check nodePort"]
    local = re.search(rf"\$ curl -s {NODE_1_IP}:(\d+) .*\n(.*)", etp)
    assert local and local.group(2) == CLIENT_IP, etp  # no SNAT: the pod sees the client
    assert f"curl -s --max-time 1 {NODE_2_IP}:{local.group(1)}" in etp and "exit 28" in etp  # dropped on node-2
    cluster_port = re.search(rf"\$ curl -s {NODE_2_IP}:(\d+) .*\n(.*)", etp)
    assert cluster_port and cluster_port.group(2) == NODE_2_IP, etp  # Cluster policy: SNAT to node-2
    assert '"localEndpoints": 1,' in etp and "HTTP 200" in etp
    assert '"localEndpoints": 0,' in etp and "HTTP 503" in etp
    assert '"default/etp-local has no local endpoints"' in etp and "-j DROP" in etp

    affinity = steps["sessionAffinity: ClientIP"]
    for client in ("tour-2", "tour-1a"):
        stuck = counts(command_output(affinity, f"kubectl exec {client} -- sh -c"))
        assert list(stuck.values()) == [20], affinity  # 20 connections, one pod
    assert "-m recent --rcheck --seconds 60 --reap --name KUBE-SEP-" in affinity
    assert re.search(r"cat /proc/net/xt_recent/KUBE-SEP-\w+ .*\nsrc=10\.244\.2\.\d+ ", affinity), affinity

    itp = steps["internalTrafficPolicy: Local"]
    assert set(counts(command_output(itp, "kubectl exec tour-1a -- sh -c"))) == {"tour-1a", "tour-1b"}, itp
    assert counts(command_output(itp, "kubectl exec tour-2 -- sh -c 'for")) == {"tour-2": 20}, itp
    assert "exit 28" in itp and '"default/itp-node-1:http has no local endpoints"' in itp

    topology = steps["topology hints: trafficDistribution: PreferClose"]
    assert "tour-1a\tnode-1\tzone=a\thints=a" in topology and "tour-2\tnode-2\tzone=b\thints=b" in topology
    assert set(counts(command_output(topology, "kubectl exec tour-1a -- sh -c"))) == {"tour-1a", "tour-1b"}
    assert counts(command_output(topology, "kubectl exec tour-2 -- sh -c")) == {"tour-2": 20}, topology

    named = steps["a named targetPort, on a Service with two ports"]
    assert re.search(r"multi-\w+ +IPv4 +9376,9376 ", named) and re.search(r"multi-\w+ +IPv4 +9377,9377 ", named)
    for port in (":80;", ":8080;"):
        assert set(counts(command_output(named, port))) == {"tour-1a", "tour-1b", "tour-2"}, named

    udp = steps["a UDP Service"]
    assert "5353/UDP" in udp
    assert set(counts(command_output(udp, "/dev/udp/"))) == {"tour-1a", "tour-1b", "tour-2"}, udp
    assert re.search(r"^udp +17 .* dport=5353 src=10\.244\.", udp, flags=re.MULTILINE), udp

    external = steps["ExternalName: a CNAME from the cluster DNS"]
    assert "IN CNAME kubernetes.default.svc.cluster.local." in external and "IN A\t10.96.0.1" in external
    assert "ext.default.svc.cluster.local\tcanonical name = www.example.org." in external
    assert "Name:\twww.example.org\nAddress: 192.0.2.1" in external  # from the test upstream

    selectorless = steps["Services without a selector: a hand-made EndpointSlice, and mirrored Endpoints"]
    assert re.search(rf"legacy-\w+ +IPv4 +8080 +{CLIENT_IP} .* endpointslicemirroring-controller.k8s.io",
                     selectorless), selectorless
    assert re.search(rf"outside-1 +IPv4 +8080 +{CLIENT_IP} ", selectorless), selectorless
    assert selectorless.count("hello from outside the cluster") == 2, selectorless

    unready = steps["publishNotReadyAddresses"]
    never_ready_ip = re.search(r"never-ready +0/1 +Running +\d+ +\S+ +(\S+)", unready)
    assert never_ready_ip, unready
    assert re.search(rf"unready-published +{re.escape(never_ready_ip.group(1))}:80 ", unready), unready
    assert '{"ready":true,"serving":false,"terminating":false}' in unready
    assert "status: NXDOMAIN" in unready

    rolling = steps["a rolling update under curl: terminating endpoints"]
    assert '{"ready":false,"serving":true,"terminating":true}' in rolling
    assert 'deployment "rolling" successfully rolled out' in rolling
    answered = re.findall(r"^\s+\d+ ok rolling-(\w+)-\w+$", command_output(rolling, "uniq -c"), flags=re.MULTILINE)
    assert len(set(answered)) == 2, rolling  # pods of the old ReplicaSet, then of the new one
    assert command_output(rolling, "grep -c '^fail'").strip() == "0", rolling  # no failed request
    load_balancer = steps["a LoadBalancer Service: an address from the pool, answered on the LAN"]
    spec = load_cluster_spec(cluster.data_dir)
    assert spec is not None and spec.lb_pool  # `svcnet up` always has a pool (default: the top /28 of the LAN, /124 for IPv6)
    pool = spec.lb_pool
    external = re.search(r"^lb +LoadBalancer +\S+ +(\S+) +80:", load_balancer, flags=re.MULTILINE)
    assert external and any(ipaddress.ip_address(external.group(1)) in ipaddress.ip_network(cidr)
                            for cidr in pool.split(",")), load_balancer  # one CIDR per family
    assert set(counts(command_output(load_balancer, "| sort | uniq -c"))) == {"tour-1a", "tour-1b", "tour-2"}
    assert f'Assigned IP ["{external.group(1)}"]' in load_balancer
    # The client's ARP entry for the address is the announcing node's LAN interface.
    assert re.search(r'announcing from node "node-\d"', load_balancer), load_balancer
    neighbour = re.search(r"lladdr (\S+)", command_output(load_balancer, "ip neigh show"))
    node_mac = re.search(r"link/ether (\S+)", command_output(load_balancer, "ip link show eth0"))
    assert neighbour and node_mac and neighbour.group(1) == node_mac.group(1), load_balancer

    # Everything the tour made goes (what lets it run again on the same cluster).
    assert "The tour's objects are deleted" in result.stdout
    wait_for(lambda: not cluster.kubectl_json("get", "svc,deploy,pods,endpoints,endpointslices", "-l",
                                              "svcnet-tour=services")["items"],
             timeout=60, interval=0.5, what="the tour's objects to go")
