"""Two of issue 5's acceptance points, in real node namespaces:

- a pod turning unready changes the rules on every node within one second of the API write;
- restarting the proxy breaks no established connection and flushes no conntrack entry of an
  unchanged Service (TCP or UDP).

Runs as root only, on the module cluster of conftest.py (its own, since fixtures are module-scoped):
node-1 runs web-a/b/c, node-2 the client pod. Echo servers and their Services are added here.
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from svcnet.kernel.netns import run_in_netns, spawn_in_netns
from svcnet.proxy.iptables import names
from svcnet.proxy.model import EndpointInfo, ServicePortName
from tests.integration.proxy.conftest import (
    SERVER_PORT,
    Pod,
    ProxyCluster,
    _endpoint,
    requires_iptables,
    requires_root,
    set_ready,
    start_proxy,
    wait_synced,
)
from tests.waiting import wait_for

pytestmark = [requires_root, requires_iptables]

SVC_NAME = ServicePortName("default", "hostnames", "default", "TCP")
SVC_CHAIN = names.cluster_policy_chain(SVC_NAME)

TCP_ECHO_IP, TCP_ECHO_PORT, TCP_ECHO_TARGET = "10.96.200.7", 7, 9377
UDP_ECHO_IP, UDP_ECHO_PORT, UDP_ECHO_TARGET = "10.96.200.8", 5353, 9378

# Echoes every line back on the same connection, for as long as the client keeps it open.
_TCP_ECHO = textwrap.dedent("""
    import socket, sys, threading
    def serve(conn):
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                conn.sendall(line)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[1])))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
""")

# Sends every datagram back to whoever sent it.
_UDP_ECHO = textwrap.dedent("""
    import socket, sys
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", int(sys.argv[1])))
    print("ready", flush=True)
    while True:
        data, peer = srv.recvfrom(2048)
        srv.sendto(data, peer)
""")


def sep_chain(pod: Pod) -> str:
    return names.endpoint_chain(SVC_NAME, EndpointInfo(pod.ip, SERVER_PORT))


def jumps_to(cluster: ProxyCluster, index: int, chain: str) -> bool:
    return f"-j {chain}" in cluster.in_node(index, "iptables", "-t", "nat", "-S", SVC_CHAIN)


# --- a pod turning unready -----------------------------------------------------------------------------------------

def test_a_pod_turning_unready_leaves_the_service_chain_of_every_node_within_a_second(
        proxy_cluster: ProxyCluster) -> None:
    web_a = proxy_cluster.pods["web-a"]
    chain = sep_chain(web_a)
    wait_for(lambda: all(jumps_to(proxy_cluster, i, chain) for i in (1, 2)), timeout=20,
             what="both nodes to use web-a")
    try:
        written = time.monotonic()
        set_ready(proxy_cluster, web_a, False)
        # The acceptance: within one second of the API write, on every node.
        wait_for(lambda: not any(jumps_to(proxy_cluster, i, chain) for i in (1, 2)),
                 timeout=max(0.0, 1.0 - (time.monotonic() - written)), interval=0.02,
                 what="web-a's KUBE-SEP chain to leave KUBE-SVC on both nodes within a second of the write")
        for index in (1, 2):
            rules = proxy_cluster.in_node(index, "iptables", "-t", "nat", "-S", SVC_CHAIN)
            assert rules.count("-j KUBE-SEP-") == 2, rules  # web-b and web-c still serve
    finally:
        set_ready(proxy_cluster, web_a, True)
        wait_for(lambda: all(jumps_to(proxy_cluster, i, chain) for i in (1, 2)), timeout=20,
                 what="web-a back in both nodes' rules")


# --- restarting the proxy ------------------------------------------------------------------------------------------

@dataclass
class EchoServices:
    servers: list[subprocess.Popen[bytes]]


def _start(pod: Pod, script: str, port: int) -> subprocess.Popen[bytes]:
    proc = spawn_in_netns(pod.netns, [sys.executable, "-c", script, str(port)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", f"echo server in {pod.netns} did not start"
    return proc


def _service_and_slice(cluster: ProxyCluster, name: str, ip: str, port: int, target: int, protocol: str,
                       pod: Pod) -> None:
    cluster.create("/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"clusterIP": ip, "ports": [{"name": "echo", "port": port, "targetPort": target,
                                             "protocol": protocol}]}})
    cluster.create("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-abcde", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "endpoints": [_endpoint(pod)],
        "ports": [{"name": "echo", "port": target, "protocol": protocol}]})


@pytest.fixture(scope="module")
def echo(proxy_cluster: ProxyCluster) -> Iterator[EchoServices]:
    """A TCP line-echo Service (backend web-b) and a UDP echo Service (backend web-c), on both nodes."""
    services = EchoServices([])
    try:
        services.servers.append(_start(proxy_cluster.pods["web-b"], _TCP_ECHO, TCP_ECHO_TARGET))
        services.servers.append(_start(proxy_cluster.pods["web-c"], _UDP_ECHO, UDP_ECHO_TARGET))
        _service_and_slice(proxy_cluster, "echo", TCP_ECHO_IP, TCP_ECHO_PORT, TCP_ECHO_TARGET, "TCP",
                           proxy_cluster.pods["web-b"])
        _service_and_slice(proxy_cluster, "echo-udp", UDP_ECHO_IP, UDP_ECHO_PORT, UDP_ECHO_TARGET, "UDP",
                           proxy_cluster.pods["web-c"])
        for index in (1, 2):
            wait_for(lambda index=index: all(ip in proxy_cluster.in_node(index, "iptables", "-t", "nat", "-S",
                                                                           "KUBE-SERVICES")
                                             for ip in (TCP_ECHO_IP, UDP_ECHO_IP)),
                     timeout=20, what=f"the echo Services on node-{index}")
        yield services
    finally:
        for proc in services.servers:
            proc.kill()
            proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()


def _socket(kind: int) -> socket.socket:
    return socket.socket(socket.AF_INET, kind)


def client_socket(pod: Pod, kind: int) -> socket.socket:
    """A socket of the client pod's namespace (made there), used from this thread."""
    sock = run_in_netns(pod.netns, _socket, kind)
    sock.settimeout(5.0)
    return sock


def echo_line(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line)
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        reply += chunk
    return reply


def flow_ids(cluster: ProxyCluster, index: int, protocol: str, dst: str, dport: int, sport: int) -> list[str]:
    """The conntrack ids of the node's flows matching the original direction."""
    listing = cluster.in_node(index, "conntrack", "-L", "-p", protocol, "--orig-dst", dst, "--orig-port-dst",
                              str(dport), "--orig-port-src", str(sport), "-o", "id")
    return re.findall(r"\bid=(\d+)", listing)


def test_restarting_the_proxy_keeps_established_connections_and_their_conntrack_entries(
        proxy_cluster: ProxyCluster, echo: EchoServices) -> None:
    client = proxy_cluster.pods["client"]  # on node-2: node-2's rules DNAT its connections
    tcp = client_socket(client, socket.SOCK_STREAM)
    udp = client_socket(client, socket.SOCK_DGRAM)
    try:
        tcp.connect((TCP_ECHO_IP, TCP_ECHO_PORT))
        assert echo_line(tcp, b"before\n") == b"before\n"
        udp.sendto(b"before", (UDP_ECHO_IP, UDP_ECHO_PORT))
        assert udp.recvfrom(2048) == (b"before", (UDP_ECHO_IP, UDP_ECHO_PORT))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]

        def flows() -> dict[str, list[str]]:
            return {"tcp": flow_ids(proxy_cluster, 2, "tcp", TCP_ECHO_IP, TCP_ECHO_PORT, tcp_port),
                    "udp": flow_ids(proxy_cluster, 2, "udp", UDP_ECHO_IP, UDP_ECHO_PORT, udp_port)}

        before = flows()
        assert len(before["tcp"]) == 1 and len(before["udp"]) == 1, before

        old = proxy_cluster.proxies["node-2"]
        old.stop()  # SIGTERM, by pid
        assert old.proc.returncode == 0, old.log()[-2000:]
        restarted = start_proxy(proxy_cluster, 2, old.log_path.parent)
        wait_synced(restarted, count=old.syncs() + 1)  # the new process's first (full) sync is done
        assert "(full, " in restarted.log().rsplit("svcnet.proxy: synced ", 1)[1].splitlines()[0]

        # The same kernel flows (same conntrack ids), nothing flushed or re-created...
        assert flows() == before
        # ...and the same connection and UDP flow still carry traffic.
        assert echo_line(tcp, b"after\n") == b"after\n"
        udp.sendto(b"after", (UDP_ECHO_IP, UDP_ECHO_PORT))
        assert udp.recvfrom(2048) == (b"after", (UDP_ECHO_IP, UDP_ECHO_PORT))
        assert flows() == before
    finally:
        tcp.close()
        udp.close()
