"""The seed's Service path and DNS in a whole `svcnet up` cluster: proxy rules, curl, nslookup.

One cluster for the module (root, real namespaces), with the seed's Deployment
and Service and the StatefulSet variant behind its headless Service.
"""
from __future__ import annotations

import collections
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.integration.apiserver_harness import REPO, wait_for
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl", "nslookup")),
    reason="needs root (network namespaces), ip, nsenter, kubectl, curl and nslookup")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with running_cluster(tmp_path_factory.mktemp("seed")) as c:
        c.kubectl("apply", "-f", str(REPO / "examples" / "hostnames.yaml"))
        c.kubectl("apply", "-f", str(REPO / "examples" / "hostnames-statefulset.yaml"))

        def all_ready() -> bool:
            pods = c.pods("app in (hostnames,hostnames-sts)")
            return len(pods) == 6 and all(is_running_ready(p) for p in pods)

        wait_for(all_ready, timeout=120, interval=0.3, what="six seed pods Running and Ready")
        wait_for(lambda: len(c.kubectl("get", "ep", "hostnames", "--no-headers").stdout.split()[1]
                             .split(",")) == 3, timeout=30, what="three endpoints")
        # ...and each node's proxy has programmed them (it follows the EndpointSlice, a sync later).
        wait_for(lambda: all(sep_chains(c, n, "KUBE-SVC-ODX2UBAZM7RQWOIU") == 3 for n in ("node-1", "node-2")),
                 timeout=30, what="three SEP chains on both nodes")
        yield c


def cluster_ip(cluster: SvcnetCluster) -> str:
    return cluster.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]


def deployment_pods(cluster: SvcnetCluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.pods("app=hostnames"))


def test_kube_proxy_rules_are_the_seeds(cluster: SvcnetCluster) -> None:
    node = cluster.node_namespace("node-1")
    rules = cluster.in_namespace(node, "iptables", "-t", "nat", "-nvL", "KUBE-SVC-ODX2UBAZM7RQWOIU").stdout
    assert "statistic mode random probability 0.33333333349" in rules
    assert "statistic mode random probability 0.50000000000" in rules
    assert rules.count("KUBE-SEP-") == 3
    postrouting = cluster.in_namespace(node, "iptables", "-t", "nat", "-nvL", "KUBE-POSTROUTING").stdout
    # Today's three-rule form: RETURN unless marked, clear the mark, MASQUERADE (the seed's
    # older kube-proxy matched the mark on the MASQUERADE rule itself).
    assert "mark match ! 0x4000/0x4000" in postrouting and "MARK xor 0x4000" in postrouting
    assert "MASQUERADE" in postrouting and "kubernetes service traffic requiring SNAT" in postrouting


def test_cluster_ip_from_a_node_and_from_a_pod_reaches_every_pod(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster)
    names = set(deployment_pods(cluster))
    node = cluster.node_namespace("node-2")
    seen: collections.Counter[str] = collections.Counter()

    def from_node() -> bool:
        out = cluster.in_namespace(node, "curl", "-s", "--max-time", "2", f"{ip}:80").stdout.strip()
        seen[out] += 1
        return set(seen) >= names

    wait_for(from_node, timeout=60, interval=0, what="curl CLUSTER-IP from a node to reach all three pods")
    assert set(seen) <= names
    pod = deployment_pods(cluster)[0]
    answer = cluster.exec(pod, "curl", "-s", "--max-time", "2", f"{ip}:80").stdout.strip()
    assert answer in names  # possibly itself: hairpin through its own Service works too


def test_nslookup_inside_a_pod_answers_as_the_seed_shows(cluster: SvcnetCluster) -> None:
    pod = deployment_pods(cluster)[0]

    def lookup(name: str) -> str:
        return cluster.exec(pod, "nslookup", name).stdout

    short = lookup("hostnames")
    assert "Server:\t\t10.96.0.10" in short
    assert "Name:\thostnames.default.svc.cluster.local" in short
    assert f"Address: {cluster_ip(cluster)}" in short
    assert "Address: 10.96.0.1" in lookup("kubernetes.default.svc.cluster.local")

    sts_ip = cluster.pod("hostnames-0")["status"]["podIP"]
    assert f"Address: {sts_ip}" in lookup("hostnames-0.hostnames-sts.default.svc.cluster.local")
    headless = lookup("hostnames-sts.default.svc.cluster.local")
    for name in ("hostnames-0", "hostnames-1", "hostnames-2"):
        assert f"Address: {cluster.pod(name)['status']['podIP']}" in headless

    stateless = cluster.exec(pod, "nslookup", f"{pod}.hostnames.default.svc.cluster.local")
    assert "NXDOMAIN" in stateless.stdout + stateless.stderr


def sep_chains(cluster: SvcnetCluster, node: str, svc_chain: str) -> int:
    out = cluster.in_namespace(cluster.node_namespace(node), "iptables", "-t", "nat", "-S", svc_chain)
    return sum(1 for line in out.stdout.splitlines() if "-j KUBE-SEP-" in line)


def test_300_requests_spread_over_all_three_pods_from_a_pod_and_from_a_node(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster)
    names = set(deployment_pods(cluster))
    script = f"for i in $(seq 1 300); do curl -s --max-time 2 {ip}:80; echo; done"
    for counts in (
        collections.Counter(cluster.in_namespace(cluster.node_namespace("node-1"), "sh", "-c", script,
                                                 timeout=120).stdout.split()),
        collections.Counter(cluster.exec(deployment_pods(cluster)[0], "sh", "-c", script).stdout.split()),
    ):
        assert set(counts) == names, counts
        assert sum(counts.values()) == 300
        assert max(counts.values()) <= 2 * min(counts.values()), counts


def test_a_service_without_endpoints_refuses_at_once(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 9376}]
""")
    ip = cluster.kubectl_json("get", "svc", "nobody")["spec"]["clusterIP"]
    node = cluster.node_namespace("node-1")

    def refused() -> bool:
        # curl exit 7: connection refused (the filter table's REJECT); 28 would be a timeout
        return cluster.in_namespace(node, "curl", "-s", "--max-time", "5", f"{ip}:80").returncode == 7

    wait_for(refused, timeout=10, what="a connection to a Service without endpoints to be refused")
    cluster.kubectl("delete", "svc", "nobody")


def test_node_port_from_outside_reaches_a_pod_on_the_other_node_through_snat(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Service
metadata: {name: hostnames-np}
spec:
  type: NodePort
  selector: {app: hostnames}
  ports: [{port: 80, targetPort: 9376}]
""")
    port = cluster.kubectl_json("get", "svc", "hostnames-np")["spec"]["ports"][0]["nodePort"]
    on_node_1 = {p["metadata"]["name"] for p in cluster.pods("app=hostnames") if p["spec"]["nodeName"] == "node-1"}
    assert on_node_1, "the scheduler spreads the seed's pods over both nodes"

    def served_from_node_1() -> bool:
        # The client talks to node-2 (192.168.0.107); a reply from a node-1 pod can only come back
        # through node-2 if node-2 masqueraded the request (otherwise node-1 answers directly and
        # the client's TCP drops it).
        out = cluster.in_namespace(cluster.client_namespace, "curl", "-s", "--max-time", "2",
                                   f"192.168.0.107:{port}").stdout.strip()
        return out in on_node_1

    wait_for(served_from_node_1, timeout=30, interval=0, what="a node-1 pod answering through node-2")
    cluster.kubectl("delete", "svc", "hostnames-np")


def test_scaling_changes_the_rules_and_deleting_the_service_removes_its_chains(cluster: SvcnetCluster) -> None:
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

    def ready_endpoints() -> int:
        body = cluster.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=web")
        return sum(1 for s in body["items"] for e in s.get("endpoints") or [] if e["conditions"].get("ready"))

    def web_chain() -> str | None:
        rules = cluster.in_namespace(cluster.node_namespace("node-1"), "iptables", "-t", "nat", "-S",
                                     "KUBE-SERVICES").stdout.splitlines()
        return next((line.split()[-1] for line in rules
                     if '"default/web:http cluster IP"' in line and "-j KUBE-SVC-" in line), None)

    wait_for(lambda: ready_endpoints() == 1, timeout=60, what="web's first endpoint")
    svc_chain = wait_for(web_chain, timeout=10, what="web's KUBE-SVC chain")
    wait_for(lambda: sep_chains(cluster, "node-1", svc_chain) == 1, timeout=5, what="one SEP chain")

    cluster.kubectl("scale", "deploy", "web", "--replicas=3")
    wait_for(lambda: ready_endpoints() == 3, timeout=60, what="three ready endpoints")
    # From the slice showing them to both nodes' rules showing them: within a second.
    wait_for(lambda: all(sep_chains(cluster, n, svc_chain) == 3 for n in ("node-1", "node-2")),
             timeout=1.0, interval=0.05, what="three SEP chains on both nodes within a second")

    cluster.kubectl("delete", "svc", "web")
    wait_for(lambda: svc_chain not in cluster.in_namespace(
        cluster.node_namespace("node-1"), "iptables", "-t", "nat", "-S").stdout,
        timeout=5, what="the Service's chains to go")
    cluster.kubectl("delete", "deploy", "web")


def test_the_walkthrough_prints_every_step_of_the_seed(cluster: SvcnetCluster) -> None:
    result = cluster.svcnet("walkthrough", "--data-dir", str(cluster.data_dir), timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("$ kubectl get pod -owide", "$ kubectl get ep hostnames", "$ kubectl get svc hostnames",
                     "Chain KUBE-SVC-ODX2UBAZM7RQWOIU", "statistic mode random probability 0.33333333349",
                     "nameserver 10.96.0.10", "Name:\thostnames.default.svc.cluster.local",
                     "Address: 10.96.0.1", "NXDOMAIN"):
        assert expected in out, expected


def test_status_shows_components_nodes_proxy_syncs_and_dns(cluster: SvcnetCluster) -> None:
    out = cluster.svcnet("status", "--data-dir", str(cluster.data_dir), check=True).stdout
    assert "apiserver   ready" in out
    for node, ip in (("node-1", "192.168.0.106"), ("node-2", "192.168.0.107")):
        line = next(x for x in out.splitlines() if x.startswith(node))
        assert "Ready" in line and ip in line and "agent up, proxy up" in line and "never" not in line
    assert "kube-system/kube-dns 10.96.0.10: 2/2 ready" in out


def test_ping_of_the_cluster_ip_gets_no_reply_from_a_pod_or_a_node(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster)
    pod = deployment_pods(cluster)[0]
    assert cluster.exec(pod, "ping", "-c", "1", "-W", "1", ip).returncode == 1  # 1: sent, no reply
    node = cluster.in_namespace(cluster.node_namespace("node-1"), "ping", "-c", "1", "-W", "1", ip)
    assert node.returncode == 1
    # ...while a pod IP does answer, so the silence is the VIP's, not the network's.
    other = cluster.pod(deployment_pods(cluster)[1])["status"]["podIP"]
    assert cluster.exec(pod, "ping", "-c", "1", "-W", "2", other).returncode == 0


def test_dig_from_a_pod_answers_the_service_and_the_headless_names(cluster: SvcnetCluster) -> None:
    pod = deployment_pods(cluster)[0]
    short = cluster.exec(pod, "dig", "+short", "hostnames.default.svc.cluster.local").stdout.split()
    assert short == [cluster_ip(cluster)]
    headless = set(cluster.exec(pod, "dig", "+short", "hostnames-sts.default.svc.cluster.local").stdout.split())
    assert headless == {cluster.pod(f"hostnames-{i}")["status"]["podIP"] for i in range(3)}


def test_aaaa_query_from_a_pod_answers_a_dual_stack_service(cluster: SvcnetCluster) -> None:
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
    cluster.kubectl("delete", "svc", "hostnames-ds")
