"""`svcnet up --etcd-members 3` (issue 17): three etcd members, each in its own namespace on the cluster
LAN, peers over mutual TLS. Cutting one member off the LAN (its link down, the process still running)
during continuous writes through the API loses no acknowledged write and the API stays up; cutting two
is a 503 Status until their links return; a peer connection without the etcd CA's certificate is refused;
a member that dies is restarted, and `svcnet down` sweeps the members and namespaces a dead `up` left.

One cluster (one node) for the module; the tests run in order (the last one kills `up`).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.cluster.etcd import etcd_dir, pid_path, pki_dir
from svcnet.kernel import process
from svcnet.kernel.netns import netns_path, socket_in_netns
from tests.integration.apiserver_harness import ApiServerProcess
from tests.integration.cluster_fixture import SvcnetCluster, running_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root (network namespaces) and ip")

MEMBERS = (1, 2, 3)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    assert shutil.which("etcd") and shutil.which("etcdctl"), \
        "etcd and etcdctl missing: install Debian's etcd-server and etcd-client (scripts/bootstrap.sh)"
    with running_cluster(tmp_path_factory.mktemp("etcd-members"), nodes=1, up_args=("--etcd-members", "3")) as c:
        yield c
    assert not [ns for ns in c.namespaces() if "-etcd-" in ns]  # `down` removed the members' namespaces


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


def test_down_sweeps_the_members_a_dead_up_left(cluster: SvcnetCluster) -> None:
    cluster.kubectl("create", "configmap", "three-members", "--from-literal=k=v")
    # A dead `up` leaves its etcd members running in their namespaces; `down` sweeps both.
    os.kill(int((cluster.data_dir / "svcnet.pid").read_text()), signal.SIGKILL)
    wait_for(lambda: not process.is_locked(cluster.data_dir / "svcnet.pid"), timeout=30, what="up gone")
    out = cluster.down().stdout
    assert out.count("stopped an etcd member a previous run left") == 3, out
    assert cluster.namespaces() == []
    assert cluster.processes() == []
