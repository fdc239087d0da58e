"""Two `svcnet up` clusters shared by every live Service test module of this package.

Starting a cluster costs ~25 s (up and down), and CI runs the whole suite serially within ~20 minutes, so
the package starts at most one cluster per proxy mode, each only when a module first asks for it:
- iptables_cluster: 2 nodes in zones a and b (`--zones a,b`; the LB pool is on by default), whose nodes'
  resolv.conf names a test upstream resolver running in the client namespace (a machine outside the
  cluster: it answers NAME.example.org with 192.0.2.1, for ExternalName);
- nftables_cluster: 2 nodes, kube-proxy in nftables mode.
Both are brought down (and swept) at the end of the package, pass or fail (running_cluster).

Each module creates its own workloads on a shared cluster and removes them at its end, so modules do not
see each other's objects: in a Kubernetes namespace of its own (module_namespace: the module's view of
the cluster runs kubectl and `svcnet exec` there) or, for a module whose assertions name `default` (DNS
names, rule comments, chain names), in `default` from a manifest it deletes again (manifest_in_default).
Both first wait for the cluster to be healthy, so a module that stopped an agent cannot break the next.
"""
from __future__ import annotations

import contextlib
import dataclasses
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.apiserver_harness import REPO
from tests.integration.cluster_fixture import SvcnetCluster, cluster_with_upstream_resolver, running_cluster
from tests.waiting import wait_for

UNHEALTHY_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")


@pytest.fixture(scope="package")
def iptables_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with cluster_with_upstream_resolver(tmp_path_factory.mktemp("services-iptables"), ("--zones", "a,b")) as c:
        yield c


@pytest.fixture(scope="package")
def nftables_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with running_cluster(tmp_path_factory.mktemp("services-nftables"), up_args=("--proxy-mode", "nftables")) as c:
        yield c


def in_client_namespace(c: SvcnetCluster, *command: str, output: int = subprocess.PIPE) -> subprocess.Popen[str]:
    """A process in the client namespace; its output piped (to read "ready") or dropped (a chatty log)."""
    return subprocess.Popen(["ip", "netns", "exec", c.client_namespace, *command], stdout=output,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)


@dataclasses.dataclass
class NamespacedCluster(SvcnetCluster):
    """A module's view of a shared cluster: kubectl and `svcnet exec` act in the module's namespace."""

    namespace: str = "default"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return super().kubectl("--namespace", self.namespace, *args, input=input, check=check, timeout=timeout)

    def exec(self, pod: str, *command: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.svcnet("exec", "--data-dir", str(self.data_dir), "--namespace", self.namespace, pod, "--",
                           *command, input=input, timeout=60)


@contextlib.contextmanager
def module_namespace(cluster: SvcnetCluster, namespace: str) -> Iterator[NamespacedCluster]:
    """A fresh namespace for one module's objects, deleted with all of them (pods in a long preStop hook too:
    the namespace's finalization force-deletes them) when the module ends, pass or fail."""
    wait_healthy(cluster)
    cluster.kubectl("create", "namespace", namespace)
    try:
        yield NamespacedCluster(**{f.name: getattr(cluster, f.name) for f in dataclasses.fields(cluster)},
                                namespace=namespace)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--timeout=120s", timeout=150)


@contextlib.contextmanager
def manifest_in_default(cluster: SvcnetCluster, manifest: str) -> Iterator[SvcnetCluster]:
    """A module's objects in `default`, applied from its manifest and deleted by it when the module ends."""
    wait_healthy(cluster)
    try:
        cluster.kubectl("apply", "-f", "-", input=manifest)
        yield cluster
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", "--timeout=120s", input=manifest, timeout=150)


def wait_healthy(cluster: SvcnetCluster) -> None:
    """Every node Ready and untainted by the node lifecycle controller (an agent that was stopped and resumed
    renews its Lease, and the controller lifts the taints)."""
    def healthy() -> bool:
        return all(node_healthy(n) for n in cluster.kubectl_json("get", "nodes")["items"])
    wait_for(healthy, timeout=90, interval=0.5, what=f"every node of {cluster.cluster_id} Ready and untainted")


def node_healthy(node: dict[str, Any]) -> bool:
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])
    taints = {t["key"] for t in node["spec"].get("taints") or []}
    return ready and not taints & set(UNHEALTHY_TAINTS)
