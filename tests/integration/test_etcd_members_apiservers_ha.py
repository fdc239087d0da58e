"""`svcnet up --etcd-members 3 --apiservers 2` (issue 17): one cluster (one node) for both halves.

Two API server processes over a three-member etcd. 500 Services created alternately through both
servers (each on its own port) get 500 distinct ClusterIPs. Then `kill -9` of the second server, whose
controller manager and scheduler lead (`up` waits for that at start): kubectl through the kubeconfig
(the apiserver-lb) keeps reading and writing, the node stays Ready with its agent's heartbeat going on,
the Leases move to the survivor's instances (new holder, one more transition), a new pod is scheduled
and starts, and the supervisor brings the killed server back.

The three etcd members, each in its own namespace on the cluster LAN, peer over mutual TLS. Cutting one
member off the LAN (its link down, the process still running) during continuous writes through the API
loses no acknowledged write and the API stays up; cutting two is a 503 Status until their links return;
a peer connection without the etcd CA's certificate is refused; a member that dies is restarted.
Last, `svcnet down` after a crashed `up` sweeps the members, their namespaces and the other API server
with its controllers.

The tests run in file order: the API servers' first (the Leases must start on server 2's instances,
which an etcd outage could move), then the etcd members'; each disruptive test first waits for a
healthy cluster (three healthy members, both servers ready), so one that fails leaves the next an error
rather than a false pass. Bringing this cluster up twice cost more than every check in it.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
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
from svcnet.cluster.etcd import etcd_dir, pid_path, pki_dir
from svcnet.kernel import process
from svcnet.kernel.netns import netns_path, socket_in_netns
from tests.integration.apiserver_harness import ApiServerProcess
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root (network namespaces) and ip")

MEMBERS = (1, 2, 3)
SERVICES = lookup("", "v1", "services")
SERVICE_COUNT = 500
LEASES = ("kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    assert shutil.which("etcd") and shutil.which("etcdctl"), \
        "etcd and etcdctl missing: install Debian's etcd-server and etcd-client (scripts/bootstrap.sh)"
    with running_cluster(tmp_path_factory.mktemp("etcd-apiservers"), nodes=1,
                         up_args=("--etcd-members", "3", "--apiservers", "2")) as c:
        yield c
    assert not [ns for ns in c.namespaces() if "-etcd-" in ns]  # `down` removed the members' namespaces
    assert not c.processes(), "svcnet down left processes of the cluster running"


def healthy(cluster: SvcnetCluster) -> None:
    """Wait for the state every test starts from: three healthy members, both API servers ready."""
    wait_for(lambda: etcdctl(cluster, "endpoint", "health", check=False, command_timeout=1).returncode == 0
             and socket_ready(cluster.data_dir / "apiserver.sock")
             and socket_ready(peer_dir(cluster.data_dir, 2) / "apiserver.sock"),
             timeout=90, interval=0.5, what="three healthy etcd members and both API servers ready")


def namespace(cluster: SvcnetCluster, member: int) -> str:
    return f"svcnet-{cluster.cluster_id}-etcd-{member}"


def member_ip(member: int) -> str:
    return f"192.168.0.{90 + member}"


def etcdctl(cluster: SvcnetCluster, *args: str, members: tuple[int, ...] = MEMBERS, check: bool = True,
            command_timeout: int = 10) -> subprocess.CompletedProcess[str]:
    sockets = [f"unix://{etcd_dir(cluster.data_dir).absolute()}/svcnet-{m}.client:0" for m in members]
    return subprocess.run(["etcdctl", "--endpoints=" + ",".join(sockets), f"--command-timeout={command_timeout}s",
                           *args],
                          env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=30,
                          check=check)


def api(cluster: SvcnetCluster) -> ApiServerProcess:
    """Requests to the cluster's API server with its token (the harness's client; `up` started the server)."""
    return ApiServerProcess(data_dir=cluster.data_dir, port=cluster.port, home=cluster.home)


@contextlib.contextmanager
def cut_off(cluster: SvcnetCluster, *members: int) -> Iterator[None]:
    """The members' links to the LAN down (the processes keep running), and up again afterwards, pass or fail."""
    try:
        for member in members:
            subprocess.run(["ip", "-n", namespace(cluster, member), "link", "set", "eth0", "down"], check=True)
        yield
    finally:
        for member in members:
            subprocess.run(["ip", "-n", namespace(cluster, member), "link", "set", "eth0", "up"], check=True)
        # Asked often and briefly: a health check of a member still rejoining waits out its whole timeout.
        wait_for(lambda: etcdctl(cluster, "endpoint", "health", members=members, check=False,
                                 command_timeout=1).returncode == 0,
                 timeout=60, what="the members healthy again with their links back")


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}


class Writers:
    """Creates through the API from a few threads until stopped, keeping what was acknowledged."""

    def __init__(self, server: ApiServerProcess, prefix: str, threads: int = 3) -> None:
        self.server = server
        self.prefix = prefix
        self.acked: dict[str, int] = {}
        self.failures: list[tuple[int, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(t,), daemon=True) for t in range(threads)]
        for thread in self._threads:
            thread.start()

    def _write(self, index: int) -> None:
        for n in range(100_000):
            if self._stop.is_set():
                return
            name = f"{self.prefix}-{index}-{n}"
            status, body = self.server.request("POST", "/api/v1/namespaces/default/configmaps", configmap(name),
                                               timeout=30)
            with self._lock:
                if status == 201:
                    self.acked[name] = int(body["metadata"]["resourceVersion"])
                else:
                    self.failures.append((status, body))

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _listed(server: ApiServerProcess) -> dict[str, int]:
    status, body = server.request("GET", "/api/v1/namespaces/default/configmaps", timeout=30)
    assert status == 200, body
    return {item["metadata"]["name"]: int(item["metadata"]["resourceVersion"]) for item in body["items"]}


def _netns_inode(path: str) -> int:
    return os.stat(path).st_ino


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
    healthy(cluster)
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


def test_each_member_runs_in_its_namespace_peering_on_the_lan_with_clients_on_unix_sockets_only(
    cluster: SvcnetCluster
) -> None:
    listed = json.loads(etcdctl(cluster, "member", "list", "-w", "json").stdout)["members"]
    assert sorted((m["name"], tuple(m["peerURLs"])) for m in listed) == [
        (f"svcnet-{m}", (f"https://{member_ip(m)}:2380",)) for m in MEMBERS]
    host_listeners = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout
    for member in MEMBERS:
        pid = int(pid_path(cluster.data_dir, f"svcnet-{member}").read_text())
        assert _netns_inode(f"/proc/{pid}/ns/net") == _netns_inode(netns_path(namespace(cluster, member)))
        assert f"pid={pid}," not in host_listeners
        inside = cluster.in_namespace(namespace(cluster, member), "ss", "-Htlnp").stdout
        assert [line.split()[3] for line in inside.splitlines() if f"pid={pid}," in line] == \
            [f"{member_ip(member)}:2380"]  # the peer port only: no client port on the LAN
        key = pki_dir(cluster.data_dir) / f"svcnet-{member}-peer.key"
        assert key.stat().st_mode & 0o777 == 0o600
    assert (pki_dir(cluster.data_dir) / "ca.key").stat().st_mode & 0o777 == 0o600


def _peer_members(from_namespace: str, to_ip: str, cert: Path | None = None) -> str:
    """GET /members on a member's peer port from a namespace, with a client certificate or none."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server is not what is tested here
    if cert is not None:
        context.load_cert_chain(cert, cert.with_suffix(".key"))
    sock = socket_in_netns(netns_path(from_namespace), socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((to_ip, 2380))
    with context.wrap_socket(sock) as tls:
        tls.sendall(b"GET /members HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
        return b"".join(iter(lambda: tls.recv(65536), b"")).decode()


def test_a_peer_connection_without_a_peer_certificate_is_refused(cluster: SvcnetCluster) -> None:
    member_2_cert = pki_dir(cluster.data_dir) / "svcnet-2-peer.crt"
    # The control: member 2, from its own namespace with its certificate, reads member 1's peer API.
    answer = _peer_members(namespace(cluster, 2), member_ip(1), member_2_cert)
    assert answer.startswith("HTTP/1.1 200") and f"https://{member_ip(3)}:2380" in answer
    # Without a certificate, from the client namespace (anything on the LAN, as a pod is) or from member
    # 2's own: the handshake is refused.
    for where in (cluster.client_namespace, namespace(cluster, 2)):
        with pytest.raises(ssl.SSLError, match="CERTIFICATE"):
            _peer_members(where, member_ip(1))
    # Member 2's own certificate, from another address (a copied key): dropped, nothing served.
    try:
        stolen = _peer_members(cluster.client_namespace, member_ip(1), member_2_cert)
    except (ConnectionResetError, ssl.SSLEOFError):  # dropped with the request still unread
        stolen = ""
    assert stolen == ""


def test_cutting_one_member_off_the_lan_during_writes_loses_no_acknowledged_write(cluster: SvcnetCluster) -> None:
    healthy(cluster)
    server = api(cluster)
    writers = Writers(server, "one")
    try:
        wait_for(lambda: writers.count() >= 20, timeout=60, what="20 creates before the cut")
        # Member 1 is the first endpoint of the API server's DSN, the one it talks to: cut off from its
        # peers it still answers on its socket, with "no leader", and the API server moves on.
        with cut_off(cluster, 1):
            at_cut = writers.count()
            wait_for(lambda: writers.count() >= at_cut + 20, timeout=90, what="creates going on after the cut")
            health = etcdctl(cluster, "endpoint", "health", members=(1,), check=False, command_timeout=2)
            assert health.returncode != 0, "the member still had a quorum: the cut did not cut"
    finally:
        writers.stop()
    # A create in flight on the member when it was cut may fail (etcd cannot say whether it was applied),
    # and on a loaded machine etcd may lose its leader for a moment: a 503 Status with Retry-After, which
    # clients retry, never another answer; the creates went on (above) and every acknowledged one is kept.
    assert all(status == 503 and body["kind"] == "Status" for status, body in writers.failures), writers.failures
    stored = _listed(server)
    assert {name: stored.get(name) for name in writers.acked} == writers.acked
    revisions = sorted(writers.acked.values())
    assert len(set(revisions)) == len(revisions)


def test_cutting_two_members_off_is_a_503_until_their_links_return(cluster: SvcnetCluster) -> None:
    healthy(cluster)
    server = api(cluster)
    statuses: list[int] = []

    def refused() -> bool:
        status, body = server.request("POST", "/api/v1/namespaces/default/configmaps", configmap("no-quorum"),
                                      timeout=30)
        statuses.append(status)
        return status == 503 and body["kind"] == "Status" and body["reason"] == "ServiceUnavailable"

    with cut_off(cluster, 2, 3):
        wait_for(refused, timeout=60, what="a 503 Status while two of three members are cut off")
        assert 201 not in statuses, "a create was acknowledged without a quorum"
    wait_for(lambda: server.request("POST", "/api/v1/namespaces/default/configmaps",
                                    configmap("quorum-back"), timeout=30)[0] == 201,
             timeout=60, what="creates again once the links are back")
    assert "quorum-back" in _listed(server)


def test_killing_a_member_during_writes_loses_no_acknowledged_write_and_it_is_restarted(
        cluster: SvcnetCluster) -> None:
    """Member 1, the API server's first endpoint, killed under continuous creates: the API server moves
    to another endpoint, every acknowledged create is kept, and the supervisor starts the member again
    in its namespace."""
    healthy(cluster)
    server = api(cluster)
    writers = Writers(server, "kill")
    try:
        wait_for(lambda: writers.count() >= 20, timeout=60, what="20 creates before the kill")
        killed = int(pid_path(cluster.data_dir, "svcnet-1").read_text())
        os.kill(killed, signal.SIGKILL)
        at_kill = writers.count()
        wait_for(lambda: writers.count() >= at_kill + 20, timeout=90, what="creates going on after the kill")
        wait_for(lambda: int(pid_path(cluster.data_dir, "svcnet-1").read_text()) != killed, timeout=60,
                 what="the member restarted")
    finally:
        writers.stop()
    # As for the cut: only 503 Statuses (writes in flight on the killed member, a moment without a leader).
    assert all(status == 503 and body["kind"] == "Status" for status, body in writers.failures), writers.failures
    stored = _listed(server)
    assert {name: stored.get(name) for name in writers.acked} == writers.acked
    # The restarted member's pid is recorded at its spawn, before it has entered its namespace.
    restarted = int(pid_path(cluster.data_dir, "svcnet-1").read_text())
    wait_for(lambda: _netns_inode(f"/proc/{restarted}/ns/net") == _netns_inode(netns_path(namespace(cluster, 1))),
             timeout=30, what="the restarted member in its namespace")


def test_down_after_a_crashed_up_sweeps_the_members_and_the_other_api_server_with_its_controllers(
        cluster: SvcnetCluster) -> None:
    """Last: `up` killed; its etcd members and API server 2 (with its controllers) outlive it, in their own
    sessions, and `down` sweeps them all."""
    healthy(cluster)
    cluster.kubectl("create", "configmap", "three-members", "--from-literal=k=v")
    peer = peer_dir(cluster.data_dir, 2)
    children = [int((peer / f"{role}.pid").read_text()) for role in ("apiserver", "controller-manager", "scheduler")]
    os.kill(int((cluster.data_dir / "svcnet.pid").read_text()), signal.SIGKILL)
    wait_for(lambda: not process.is_locked(cluster.data_dir / "svcnet.pid"), timeout=30, what="up gone")
    assert all(Path(f"/proc/{pid}").exists() for pid in children)  # their own sessions: they outlive `up`
    result = cluster.down()
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("stopped an etcd member a previous run left") == 3, result.stdout
    assert "a previous run left" in result.stdout
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists() and not is_zombie(pid)]
    assert cluster.namespaces() == []
    assert cluster.processes() == []


def is_zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] == "Z"
