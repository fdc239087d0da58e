"""A two-node cluster network, pods with name servers, an API server and a proxy per node, as root.

Everything runs in namespaces this module creates under a unique cluster id
(removed in a finally, and by the netns suite's session safety net); every
iptables/conntrack command runs inside a node namespace via `ip netns exec`;
processes are started and stopped by their pid.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from svcnet.agent.ipam import LeaseStore
from svcnet.agent.network import PodNetwork, setup_pod_network
from svcnet.agent.nodeplan import NodePlan
from svcnet.cluster.topology import TopologyPlan, apply_topology, destroy_topology, plan_topology
from svcnet.kernel.links import LinuxNetworkKernel
from svcnet.kernel.netns import run_command_in_netns, spawn_in_netns
from tests.integration.apiserver_harness import REPO, ApiServerProcess, free_port
from tests.integration.netns.conftest import (  # noqa: F401  (the session safety net is a fixture)
    _delete_this_sessions_namespaces,
    new_cluster_id,
    requires_root,
)
from tests.waiting import wait_for

requires_iptables = pytest.mark.skipif(
    shutil.which("iptables-restore") is None or shutil.which("conntrack") is None,
    reason="needs iptables and conntrack (scripts/bootstrap.sh installs them)")

CLUSTER_IP = "10.102.11.183"  # the seed's, inside 10.96.0.0/12
SERVICE_CIDR = "10.96.0.0/12"
NODE_PORT = 30080
SERVER_PORT = 9376

# Answers every connection with "<name> <peer address>" and closes, so tests see who served and whom it saw.
_NAME_SERVER = textwrap.dedent("""
    import socket, sys
    name = sys.argv[2]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[1])))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, peer = srv.accept()
        conn.sendall(f"{name} {peer[0]}".encode())
        conn.close()
""")


@dataclass
class Pod:
    name: str
    node: NodePlan
    network: PodNetwork
    server: subprocess.Popen[bytes] | None = None

    @property
    def ip(self) -> str:
        return self.network.ipv4

    @property
    def netns(self) -> str:
        return self.network.netns_name


@dataclass
class ProxyProcess:
    node: NodePlan
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def syncs(self) -> int:
        """Successful syncs the proxy logged (its own line, not the informers' "synced N objects")."""
        return self.log().count("svcnet.proxy: synced ")

    def restore_inputs(self) -> list[str]:
        """Every iptables-restore input the proxy logged (it runs with -v), oldest first."""
        return re.findall(r"--- restore input begin ---\n(.*?)--- restore input end ---", self.log(), re.S)


@dataclass
class ProxyCluster:
    plan: TopologyPlan
    api: ApiServerProcess
    pods: dict[str, Pod]
    proxies: dict[str, ProxyProcess] = field(default_factory=dict)

    def node(self, index: int) -> NodePlan:
        return self.plan.nodes[index - 1]

    def in_node(self, index: int, *argv: str) -> str:
        result = run_command_in_netns(self.node(index).namespace, list(argv))
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, obj = self.api.request("POST", path, body)
        assert status == 201, obj
        return obj

    def replace_slice_endpoints(self, name: str, pods: list[Pod]) -> None:
        path = f"/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/{name}"
        status, current = self.api.request("GET", path)
        assert status == 200, current
        current["endpoints"] = [_endpoint(p) for p in pods]
        status, obj = self.api.request("PUT", path, current)
        assert status == 200, obj


SLICE = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/hostnames-abcde"


def set_ready(cluster: ProxyCluster, pod: Pod, ready: bool) -> None:
    """Mark the pod's endpoint in the hostnames slice ready or not, as the EndpointSlice controller does."""
    status, current = cluster.api.request("GET", SLICE)
    assert status == 200, current
    for endpoint in current["endpoints"]:
        if endpoint["addresses"] == [pod.ip]:
            # What the EndpointSlice controller writes for a pod failing its readiness probe.
            endpoint["conditions"] = {"ready": ready, "serving": ready, "terminating": False}
    status, obj = cluster.api.request("PUT", SLICE, current)
    assert status == 200, obj


def _endpoint(pod: Pod) -> dict[str, Any]:
    return {"addresses": [pod.ip], "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": pod.node.name, "targetRef": {"kind": "Pod", "namespace": "default", "name": pod.name}}


def _start_server(pod: Pod) -> None:
    proc = spawn_in_netns(pod.netns, [sys.executable, "-c", _NAME_SERVER, str(SERVER_PORT), pod.name],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"ready", f"server in {pod.netns} did not start (exit {proc.poll()})"
    pod.server = proc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    if proc is not None and proc.stdout:
        proc.stdout.close()


def start_proxy(cluster: ProxyCluster, index: int, log_dir: Path, mode: str = "iptables") -> ProxyProcess:
    node = cluster.node(index)
    log_path = log_dir / f"proxy-{node.name}.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "svcnet.proxy.daemon", "run", "--node", node.name, "--netns", node.namespace,
         "--kubeconfig", str(cluster.api.kubeconfig), "--cluster-cidr", cluster.plan.pod_cidr_v4,
         "--min-sync-period", "200ms", "--sync-period", "3s", "--proxy-mode", mode, "-v"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)
    log.close()
    proxy = ProxyProcess(node, proc, log_path)
    cluster.proxies[node.name] = proxy
    return proxy


def wait_synced(proxy: ProxyProcess, count: int = 1, timeout: float = 30.0) -> None:
    def synced() -> bool:
        if proxy.proc.poll() is not None:
            raise AssertionError(f"proxy for {proxy.node.name} exited: {proxy.log()[-3000:]}")
        return proxy.syncs() >= count
    wait_for(synced, timeout=timeout, what=f"proxy sync on {proxy.node.name}")


@pytest.fixture(scope="module")
def proxy_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyCluster]:
    """node-1 with pods web-a/b/c serving their names, node-2 with a client pod; Services, slices, Nodes
    in a real API server; a proxy process per node. Everything is removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tmp = tmp_path_factory.mktemp("proxy")
    cluster_id = new_cluster_id()
    kernel = LinuxNetworkKernel()
    api: ApiServerProcess | None = None
    cluster: ProxyCluster | None = None
    try:
        plan = plan_topology(cluster_id, 2, node_cidr_v6=None, pod_cidr_v6=None)
        apply_topology(kernel, plan)  # includes each node's route for the service CIDR
        node1, node2 = plan.nodes
        pods: dict[str, Pod] = {}
        for name, node in (("web-a", node1), ("web-b", node1), ("web-c", node1), ("client", node2)):
            leases = LeaseStore(tmp / f"{node.name}.json", node.pod_cidr_v4)
            network = setup_pod_network(kernel, node, uuid.uuid4().hex, leases)
            pods[name] = Pod(name, node, network)
        for name in ("web-a", "web-b", "web-c"):
            _start_server(pods[name])

        home = tmp / "home"
        home.mkdir()
        api = ApiServerProcess(data_dir=tmp / "data", port=free_port(), home=home)
        api.start()
        cluster = ProxyCluster(plan, api, pods)
        for node in plan.nodes:
            cluster.create("/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name},
                "spec": {"podCIDR": node.pod_cidr_v4, "podCIDRs": [node.pod_cidr_v4]},
                "status": {"addresses": [{"type": "InternalIP", "address": node.ipv4}]}})
        backends = [pods["web-a"], pods["web-b"], pods["web-c"]]
        for name, spec in (
            ("hostnames", {"clusterIP": CLUSTER_IP, "ports": [
                {"name": "default", "port": 80, "targetPort": SERVER_PORT, "protocol": "TCP"}]}),
            ("hostnames-np", {"type": "NodePort", "ports": [
                {"name": "default", "port": 80, "targetPort": SERVER_PORT, "protocol": "TCP",
                 "nodePort": NODE_PORT}]}),
        ):
            cluster.create("/api/v1/namespaces/default/services", {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
            cluster.create("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-abcde", "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "endpoints": [_endpoint(p) for p in backends],
                "ports": [{"name": "default", "port": SERVER_PORT, "protocol": "TCP"}]})
        for index in (1, 2):
            wait_synced(start_proxy(cluster, index, tmp))
        yield cluster
    finally:
        if cluster is not None:
            for proxy in cluster.proxies.values():
                proxy.stop()
            for pod in cluster.pods.values():
                _stop(pod.server)
        if api is not None:
            api.stop()
        destroy_topology(kernel, cluster_id)


def fetch(ns: str, host: str, port: int, timeout: float = 3.0) -> str:
    """One TCP connection from inside `ns`; what the server said ("" when refused or timed out)."""
    from tests.integration.netns.conftest import tcp_fetch

    with contextlib.suppress(OSError):
        return tcp_fetch(ns, host, port, timeout).decode()
    return ""


def names_reached(ns: str, host: str, port: int, want: set[str], attempts: int = 300,
                  deadline_s: float = 30.0) -> dict[str, int]:
    """Connect repeatedly (bounded by count and time) until every name in `want` answered."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + deadline_s
    for _ in range(attempts):
        reply = fetch(ns, host, port)
        if reply:
            name = reply.split()[0]
            seen[name] = seen.get(name, 0) + 1
        if want <= set(seen) or time.monotonic() > deadline:
            break
    return seen
