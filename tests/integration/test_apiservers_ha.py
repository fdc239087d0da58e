"""`svcnet up --storage etcd --apiservers 2` (issue 17): two API server processes over one etcd.

500 Services created alternately through both servers (each on its own port) get 500 distinct
ClusterIPs. Then `kill -9` of the second server, whose controller manager and scheduler lead
(`up` waits for that at start): kubectl through the kubeconfig (the apiserver-lb) keeps reading
and writing, the node stays Ready with its agent's heartbeat going on, the Leases move to the
survivor's instances (new holder, one more transition), a new pod is scheduled and starts, and the
supervisor brings the killed server back.

One cluster (one node) for the module; the tests run in order.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from svcnet.api.resources import lookup
from svcnet.client.config import load_kubeconfig
from svcnet.client.rest import ApiClient
from svcnet.cluster.apiservers import peer_dir, socket_ready
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("etcd"),
                                reason="needs root (network namespaces), ip and etcd")

SERVICES = lookup("", "v1", "services")
SERVICE_COUNT = 500
LEASES = ("kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with running_cluster(tmp_path_factory.mktemp("apiservers"), nodes=1,
                         up_args=("--storage", "etcd", "--apiservers", "2")) as c:
        yield c
    assert not c.processes(), "svcnet down left processes of the cluster running"


def server_urls(cluster: SvcnetCluster) -> list[str]:
    return [f"https://127.0.0.1:{cluster.port}", f"https://127.0.0.1:{cluster.port + 2}"]


def lease(cluster: SvcnetCluster, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "lease", "-n", "kube-system", name)["spec"]


async def create_alternately(cluster: SvcnetCluster, count: int) -> None:
    """Service i through server i % 2, eight requests in flight per server."""
    admin = load_kubeconfig(cluster.data_dir / "kubeconfig")
    clients = [ApiClient(replace(admin, server=url), component="test-apiservers") for url in server_urls(cluster)]
    limits = [asyncio.Semaphore(8) for _ in clients]

    async def create(i: int) -> None:
        async with limits[i % 2]:
            await clients[i % 2].create(SERVICES, "default", {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"ha-{i}"},
                "spec": {"ports": [{"port": 80}], "selector": {"app": f"ha-{i}"}}})

    try:
        for client in clients:
            await client.open()
        await asyncio.gather(*(create(i) for i in range(count)))
    finally:
        for client in clients:
            await client.close()


def test_both_servers_are_the_kubernetes_services_endpoints_and_the_first_stays_in_cluster_info(
        cluster: SvcnetCluster) -> None:
    # API server 2 listens on its own LAN address too (its namespace), on the first's port.
    wanted = {"192.168.0.100", "192.168.0.82"}
    endpoints = wait_for(lambda: (e := cluster.kubectl_json("get", "endpoints", "kubernetes"))
                         and {a["ip"] for a in e["subsets"][0]["addresses"]} == wanted and e,
                         timeout=30, interval=0.5, what="both servers in default/kubernetes's endpoints")
    assert endpoints["subsets"][0]["ports"][0]["port"] == cluster.port
    info = cluster.kubectl_json("get", "configmap", "-n", "kube-public", "cluster-info")
    assert f"server: https://192.168.0.100:{cluster.port}" in info["data"]["kubeconfig"]


def test_services_created_alternately_through_both_servers_get_distinct_cluster_ips(cluster: SvcnetCluster) -> None:
    asyncio.run(create_alternately(cluster, SERVICE_COUNT))
    items = cluster.kubectl_json("get", "services", "-n", "default")["items"]
    ips = [s["spec"]["clusterIP"] for s in items if s["metadata"]["name"].startswith("ha-")]
    assert len(ips) == SERVICE_COUNT
    assert len(set(ips)) == SERVICE_COUNT, "two Services were given the same ClusterIP"


def leading_peer_identities(cluster: SvcnetCluster) -> dict[str, str]:
    """lease name -> the identity API server 2's controller manager / scheduler elect as (from their logs)."""
    found = {}
    for lease_name, role in zip(LEASES, ("controller-manager", "scheduler"), strict=True):
        text = (peer_dir(cluster.data_dir, 2) / f"{role}.log").read_text()
        marker = f"attempting to acquire leader lease kube-system/{lease_name} as "
        found[lease_name] = text[text.rindex(marker) + len(marker):].split()[0]
    return found


def node_heartbeat(cluster: SvcnetCluster) -> str:
    return cluster.kubectl_json("get", "lease", "-n", "kube-node-lease", "node-1")["spec"]["renewTime"]


def test_kill_9_of_an_api_server_clients_fail_over_and_the_leaders_move(cluster: SvcnetCluster) -> None:
    before = {name: lease(cluster, name) for name in LEASES}
    peers = leading_peer_identities(cluster)
    assert {name: spec["holderIdentity"] for name, spec in before.items()} == peers, \
        "API server 2's controller manager and scheduler should lead (up waits for them)"
    server_pid_file = peer_dir(cluster.data_dir, 2) / "apiserver.pid"
    killed = int(server_pid_file.read_text())
    os.kill(killed, signal.SIGKILL)
    killed_at = time.monotonic()
    killed_wall = dt.datetime.now(dt.UTC)

    # kubectl through the kubeconfig (the load balancer, which was sending it to server 2).
    assert "kubernetes" in cluster.kubectl("get", "services", "kubernetes").stdout
    cluster.kubectl("apply", "-f", "-", input=POD)
    cluster.kubectl("create", "service", "clusterip", "after-kill", "--tcp=80")

    def moved() -> dict[str, dict[str, Any]] | None:
        now = {name: lease(cluster, name) for name in LEASES}
        return now if all(now[n]["holderIdentity"] not in ("", peers[n]) for n in LEASES) else None

    after = wait_for(moved, timeout=90, interval=0.5, what="the Leases to move off API server 2's instances")
    moved_after = time.monotonic() - killed_at
    up_log = (cluster.data_dir / "svcnet.log").read_text()
    for name in LEASES:
        assert after[name]["leaseTransitions"] == before[name].get("leaseTransitions", 0) + 1
        assert f"kube-system/{name} as {after[name]['holderIdentity']}" in up_log, \
            "the survivor's (up's own) instance should have taken the Lease"
    print(f"Leases moved {moved_after:.1f}s after the kill (lease duration "
          f"{before['kube-controller-manager']['leaseDurationSeconds']}s)")

    # The new pod is scheduled by the survivor's scheduler and started by the agent.
    cluster.wait_pod("ha-after-kill", is_running_ready, timeout=90)
    # The agent kept its node Ready, its heartbeat renewed through the surviving server.
    node = cluster.kubectl_json("get", "node", "node-1")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    wait_for(lambda: dt.datetime.fromisoformat(node_heartbeat(cluster).replace("Z", "+00:00")) > killed_wall,
             timeout=60, interval=0.5, what="the node's heartbeat after the kill")

    # The supervisor brings server 2 back; it serves the objects written while it was down.
    wait_for(lambda: int(server_pid_file.read_text()) != killed
             and socket_ready(peer_dir(cluster.data_dir, 2) / "apiserver.sock"),
             timeout=90, interval=0.5, what="API server 2 restarted")
    direct = cluster.kubectl("--server", server_urls(cluster)[1], "get", "service", "after-kill", "-o", "name")
    assert direct.stdout.strip() == "service/after-kill"


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: ha-after-kill
spec:
  containers:
  - name: main
    image: k8s.gcr.io/serve_hostname
"""


def test_down_after_a_crashed_up_ends_the_other_api_servers_and_their_controllers(cluster: SvcnetCluster) -> None:
    peer = peer_dir(cluster.data_dir, 2)
    children = [int((peer / f"{role}.pid").read_text()) for role in ("apiserver", "controller-manager", "scheduler")]
    os.kill(int((cluster.data_dir / "svcnet.pid").read_text()), signal.SIGKILL)
    assert all(Path(f"/proc/{pid}").exists() for pid in children)  # their own sessions: they outlive `up`
    result = cluster.down()
    assert result.returncode == 0, result.stderr
    assert "a previous run left" in result.stdout
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists() and not is_zombie(pid)]


def is_zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] == "Z"
