"""Issue 12 item 5 against a real `svcnet apiserver`: connections are bounded as Go's net/http bounds them.

Reproduces the findings first: idle TCP connections cost ~300 KiB each and lived 60 s, trickled
headers were never cut off, plain HTTP to the HTTPS port got an empty reply. The header timeout is
the server's default (kube-apiserver's ReadHeaderTimeout, 32 s); waits are on conditions with that
deadline plus slack. All traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import http.client
import json
import os
import resource
import select
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from svcnet.config import ApiServerConfig
from tests.integration.apiserver_harness import ApiServerProcess
from tests.waiting import wait_for

IDLE_CONNECTIONS = 2000
TRICKLERS = 20
HEADER_TIMEOUT = ApiServerConfig().read_header_timeout
SLACK = 15.0  # well under the 60 s the old TLS handshake timeout kept an idle connection
RSS_GROWTH_LIMIT = 100 * 1024 * 1024
GO_PLAIN_HTTP_BODY = b"Client sent an HTTP request to an HTTPS server.\n"


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def enough_files() -> Iterator[None]:
    """Raise this process's soft open-file limit for the connections it opens; restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_CONNECTIONS + TRICKLERS + 512
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"open-file hard limit {hard} < {needed}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class ClosedBy:
    """Sockets the test holds open; `all_closed()` reports whether the server has closed every one."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.open = {s.fileno(): s for s in socks}
        self.poller = select.poll()
        for fd in self.open:
            self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def all_closed(self) -> bool:
        for fd, _ in self.poller.poll(0):
            sock = self.open.get(fd)
            if sock is None:
                continue
            try:
                data = sock.recv(1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:  # reset by the server
                data = b""
            assert data == b"", f"the server sent {data!r} to a connection that sent nothing"
            self.poller.unregister(fd)
            del self.open[fd]
        return not self.open


class Tricklers(threading.Thread):
    """TLS connections that send a request's header block one byte at a time, never finishing it."""

    HEADER = (b"GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 4096 + b"\r\n\r\n")
    PACE = 0.25  # seconds between one connection's bytes: the header would take ~17 min

    def __init__(self, server: ApiServerProcess, count: int) -> None:
        super().__init__(daemon=True)
        ctx = server.ssl_context()
        self.socks = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                      server_hostname="127.0.0.1") for _ in range(count)]
        self.sent = [0] * count
        self.cut = [False] * count
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not all(self.cut):
            for i, sock in enumerate(self.socks):
                if self.cut[i]:
                    continue
                try:
                    sock.sendall(self.HEADER[self.sent[i]:self.sent[i] + 1])
                    self.sent[i] += 1
                except OSError:  # the server closed it
                    self.cut[i] = True
            self.stop.wait(self.PACE)  # the client's pace, not a wait for an outcome

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        for sock in self.socks:
            sock.close()


def open_watch(server: ApiServerProcess, path: str) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(),
                                       timeout=HEADER_TIMEOUT + 2 * SLACK)
    conn.request("GET", path, headers={"Authorization": f"Bearer {server.token()}"})
    resp = conn.getresponse()
    assert resp.status == 200
    return conn, resp


def test_idle_and_trickling_connections_are_cheap_and_cut_at_the_header_timeout_while_clients_work(
        apiserver: ApiServerProcess, enough_files):
    assert apiserver.proc is not None
    pid = apiserver.proc.pid
    watch_conn, watch = open_watch(apiserver, "/api/v1/namespaces?watch=1&timeoutSeconds=600")
    idle: list[socket.socket] = []
    tricklers = None
    created = False
    try:
        base_rss, base_files = apiserver.memory_bytes("VmRSS"), open_files(pid)
        idle = [socket.create_connection(("127.0.0.1", apiserver.port)) for _ in range(IDLE_CONNECTIONS)]
        closed = ClosedBy(idle)
        tricklers = Tricklers(apiserver, TRICKLERS)
        tricklers.start()
        wait_for(lambda: open_files(pid) >= base_files + IDLE_CONNECTIONS, timeout=SLACK,
                 what="the server to accept every idle connection")
        grown = apiserver.memory_bytes("VmRSS") - base_rss
        assert grown < RSS_GROWTH_LIMIT, f"RSS grew {grown / 2**20:.0f} MiB for {IDLE_CONNECTIONS} idle connections"

        # Clients keep working while the idle connections are open.
        assert "namespace/default" in apiserver.kubectl("get", "ns", "-o", "name").stdout
        status, body = apiserver.request("GET", "/api/v1/namespaces/default")
        assert (status, body["metadata"]["name"]) == (200, "default")

        wait_for(closed.all_closed, timeout=HEADER_TIMEOUT + SLACK, interval=0.5,
                 what=f"the server to close {IDLE_CONNECTIONS} idle connections (ReadHeaderTimeout)")
        wait_for(lambda: all(tricklers.cut), timeout=SLACK, interval=0.5,
                 what="the server to cut off every trickling client")
        assert max(tricklers.sent) < len(Tricklers.HEADER)
        wait_for(lambda: open_files(pid) < base_files + TRICKLERS, timeout=SLACK,
                 what="the server to release the closed connections' files")

        assert "namespace/default" in apiserver.kubectl("get", "ns", "-o", "name").stdout
        # The watch opened before it all, older than the header timeout now, still delivers.
        status, _ = apiserver.request("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "after-the-flood"}})
        assert status == 201
        created = True
        while True:
            event = json.loads(watch.readline())
            if event["object"]["metadata"]["name"] == "after-the-flood":
                break
        assert event["type"] == "ADDED"
    finally:
        for sock in idle:
            sock.close()
        if tricklers is not None:
            tricklers.close()
        watch_conn.close()
        if created:
            apiserver.request("DELETE", "/api/v1/namespaces/after-the-flood")


def test_plain_http_to_the_https_port_gets_gos_400(apiserver: ApiServerProcess):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{apiserver.port}/api/v1/namespaces", timeout=SLACK)
    assert err.value.code == 400
    assert err.value.read() == GO_PLAIN_HTTP_BODY

    result = apiserver.kubectl("--server", f"http://127.0.0.1:{apiserver.port}", "get", "ns", check=False)
    assert result.returncode != 0
    # What kubectl prints for Go's reply from kube-apiserver: the 400 body is not a Status.
    assert "Error from server (BadRequest)" in result.stderr
    # The port still speaks TLS to the next client.
    status, _ = apiserver.request("GET", "/api/v1/namespaces/default")
    assert status == 200


def test_a_non_tls_non_http_start_is_closed_without_a_reply(apiserver: ApiServerProcess):
    with socket.create_connection(("127.0.0.1", apiserver.port), timeout=SLACK) as sock:
        sock.sendall(b"\x00\x01\x02\x03\x04hello")
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:
            reply = b""
    assert reply == b""


@pytest.fixture
def low_soft_file_limit() -> Iterator[int]:
    """Start the server (the next fixture) under a soft open-file limit of 1024 below the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"open-file hard limit {hard} leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_server_raises_its_soft_open_file_limit_to_the_hard_one(low_soft_file_limit, apiserver):
    assert apiserver.proc is not None
    with open(f"/proc/{apiserver.proc.pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert soft == hard == str(low_soft_file_limit)
