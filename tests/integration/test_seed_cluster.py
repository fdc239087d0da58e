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
