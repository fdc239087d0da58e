"""Two API servers over one store, clients through `svcnet apiserver-lb`: when the server in
use stops, requests go on through the other, and a watch resumes there from the
resourceVersion it had reached (one store: the same revisions), without listing again.

Both servers run in this process over one shared MemoryStore, which has the semantics two
`svcnet apiserver` processes over one etcd have (shared revisions and watches); SQLite's
watches do not cross processes, so two processes over one SQLite file would not be.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import RunningApiServer
from svcnet.client import ApiClient, Informer, load_kubeconfig
from svcnet.client.loadbalancer import ApiServerLoadBalancer
from svcnet.config import ApiServerConfig
from svcnet.storage.memory import MemoryStore
from tests.integration.apiserver_harness import KUBECTL, free_port, kubectl_available
from tests.waiting import until

CONFIGMAPS = lookup("", "v1", "configmaps")
SERVICES = lookup("", "v1", "services")
ENDPOINTS = lookup("", "v1", "endpoints")
ENDPOINT_SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
ADVERTISED = ("192.168.0.100", "192.168.0.101")


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]}}


@pytest.fixture
async def two_servers(tmp_path: Path) -> AsyncIterator[list[RunningApiServer]]:
    """Two API servers over one store, sharing one CA, token and service-account key (a second
    server is set up with a copy of the first one's pki directory). Each advertises an address
    for default/kubernetes's endpoints (nothing listens there: no test dials it)."""
    store = MemoryStore()
    servers: list[RunningApiServer] = []
    try:
        for name, advertised in (("a", ADVERTISED[0]), ("b", ADVERTISED[1])):
            data_dir = tmp_path / name
            if servers:
                shutil.copytree(tmp_path / "a" / "pki", data_dir / "pki")
            server = RunningApiServer(ApiServerConfig(data_dir=data_dir, port=free_port(),
                                                      advertise_address=advertised), store=store)
            servers.append(server)
            await server.start()
        yield servers
    finally:
        for server in servers:
            await server.stop()
        store.close()


@pytest.fixture
async def balancer(two_servers: list[RunningApiServer]) -> AsyncIterator[ApiServerLoadBalancer]:
    lb = ApiServerLoadBalancer("127.0.0.1:0", [f"127.0.0.1:{s.config.port}" for s in two_servers],
                               health_interval=0.2)
    await lb.start()
    try:
        yield lb
    finally:
        await lb.stop()


def kubeconfig_through(lb: ApiServerLoadBalancer, server: RunningApiServer, path: Path) -> Path:
    """The first server's kubeconfig with its cluster's server at the load balancer."""
    doc = yaml.safe_load(server.config.kubeconfig_path.read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{lb.bound_port}"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


async def test_requests_and_a_watch_go_on_through_the_other_server_when_one_stops(
        two_servers: list[RunningApiServer], balancer: ApiServerLoadBalancer, tmp_path: Path) -> None:
    first, second = two_servers
    config = dataclasses.replace(load_kubeconfig(first.config.kubeconfig_path),
                                 server=f"https://127.0.0.1:{balancer.bound_port}")
    async with ApiClient(config, component="test") as api:
        informer = Informer(api, CONFIGMAPS, namespace="default")
        informer.start()
        try:
            await until(informer.has_synced, timeout=30, what="the informer to sync")
            await api.create(CONFIGMAPS, "default", configmap("before"))
            await until(lambda: informer.get("default", "before"), timeout=30, what="the watch to see it")
            assert balancer.pool.healthy == {f"127.0.0.1:{s.config.port}": True for s in two_servers}

            await first.stop()  # the default server goes: its connections, the watch's included, end
            await api.create(CONFIGMAPS, "default", configmap("after"))  # served by the other
            await until(lambda: informer.get("default", "after"), timeout=30,
                        what="the watch, resumed on the other server, to see the write")
            assert informer.relists == 1  # resumed from its resourceVersion: no list again
            assert balancer.pool.healthy[f"127.0.0.1:{first.config.port}"] is False

            if kubectl_available():
                kubeconfig = kubeconfig_through(balancer, first, tmp_path / "lb.kubeconfig")
                env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
                env.update(KUBECONFIG=str(kubeconfig), HOME=str(tmp_path))
                got = await asyncio.to_thread(subprocess.run, [KUBECTL, "get", "configmap", "after", "-o", "name"],
                                              capture_output=True, text=True, env=env, timeout=60)
                assert got.stdout.strip() == "configmap/after", got.stderr
                print("kubectl through the balancer:", got.stdout.strip())
        finally:
            await informer.stop()


async def test_services_created_through_both_servers_get_distinct_addresses_and_ports(
        two_servers: list[RunningApiServer]) -> None:
    clients = [ApiClient(load_kubeconfig(s.config.kubeconfig_path), component="test") for s in two_servers]
    try:
        for client in clients:
            await client.open()
        created = await asyncio.gather(*(clients[i % 2].create(SERVICES, "default", service(f"s{i}"))
                                         for i in range(40)))
    finally:
        for client in clients:
            await client.close()
    ips = {svc["spec"]["clusterIP"] for svc in created}
    ports = {svc["spec"]["ports"][0]["nodePort"] for svc in created}
    assert len(ips) == 40 and len(ports) == 40


async def test_the_kubernetes_endpoints_name_every_live_server_and_lose_one_that_stops(
        two_servers: list[RunningApiServer]) -> None:
    first, second = two_servers
    registry = second.registry
    assert registry is not None

    def addresses() -> tuple[list[str], list[str]]:
        endpoints = registry.get(ENDPOINTS, "default", "kubernetes")
        endpoint_slice = registry.get(ENDPOINT_SLICES, "default", "kubernetes")
        return ([a["ip"] for a in endpoints["subsets"][0]["addresses"]],
                [e["addresses"][0] for e in endpoint_slice["endpoints"]])

    # The second server's first pass saw the first's lease: both, not the last writer's alone.
    assert addresses() == (list(ADVERTISED), list(ADVERTISED))
    await first.stop()
    assert addresses() == ([ADVERTISED[1]], [ADVERTISED[1]])
