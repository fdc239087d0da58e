"""Durability with writes from many clients at once through the API: the server makes its
store calls on its write threads (as it does when the disk is slow; one write in 16 still on
the loop, as a probe), so requests meet in the store's group commit; kill -9 mid-stream loses no acknowledged write, leaves no object half
written, and revisions stay strictly increasing. The same with etcd as the store (the session's etcd,
tests/conftest.py): the API server is what dies, etcd keeps what it acknowledged."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.apiserver_harness import REPO, ApiServerProcess, free_port
from tests.waiting import wait_for

# `svcnet apiserver` with its store calls on threads (StoreCalls' threshold below any latency).
THREADED = ("import sys; from svcnet.apiserver import steps; steps.DEFAULT_CALLS.offload_above = -1.0; "
            "from svcnet.cli import main; sys.argv[0] = 'svcnet'; sys.exit(main())")
IMAGE = "k8s.gcr.io/serve_hostname"
WRITERS = 8


class ThreadedApiServer(ApiServerProcess):
    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", THREADED, "apiserver", "--data-dir", str(self.data_dir),
                 "--port", str(self.port), *self.flags],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)
        wait_for(self._ready, timeout=30, what=f"apiserver on {self.port} (log {self.log_path})")


@pytest.fixture(params=["sqlite", "etcd"])
def threaded_apiserver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadedApiServer]:
    home = tmp_path / "home"
    home.mkdir()
    flags: tuple[str, ...] = ()
    if request.param == "etcd":
        port = request.getfixturevalue("etcd_server").spec.client_port
        flags = ("--storage", f"etcd://127.0.0.1:{port}?prefix=/durability-{tmp_path.name}")
    server = ThreadedApiServer(data_dir=tmp_path / "data", port=free_port(), home=home, flags=flags)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "durable"}},
            "spec": {"containers": [{"name": "c", "image": IMAGE}]}}


def test_acknowledged_concurrent_api_writes_survive_kill_9(threaded_apiserver: ThreadedApiServer) -> None:
    server = threaded_apiserver
    acked: dict[str, int] = {}  # name -> resourceVersion the server acknowledged
    sent: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        for i in range(10_000):
            if stop.is_set():
                return
            name = f"w{w}-{i}"
            with lock:
                sent.add(name)
            try:
                status, body = server.request("POST", "/api/v1/namespaces/default/pods", pod(name), timeout=10)
            except OSError:
                return  # the server is gone
            if status != 201:
                return
            with lock:
                acked[name] = int(body["metadata"]["resourceVersion"])

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 120, timeout=120, what="120 acknowledged creates")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # while the writers are still sending
        server.proc.wait(timeout=10)
        server.proc = None
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    with lock:
        acknowledged = dict(acked)
        attempted = set(sent)
    assert len(set(acknowledged.values())) == len(acknowledged)  # one revision per write

    server.start()
    status, listed = server.request("GET", "/api/v1/namespaces/default/pods")
    assert status == 200
    stored = {item["metadata"]["name"]: item for item in listed["items"]}
    # every acknowledged write is there, as acknowledged
    missing = sorted(set(acknowledged) - set(stored))
    assert missing == []
    for name, rv in acknowledged.items():
        assert int(stored[name]["metadata"]["resourceVersion"]) == rv
    # whatever else is there was sent (in flight at the kill) and is whole
    assert set(stored) <= attempted
    for item in stored.values():
        assert item["spec"]["containers"][0]["image"] == IMAGE
        assert item["metadata"]["uid"] and item["metadata"]["labels"] == {"app": "durable"}
    # revisions strictly increasing: the replayed history, and the first write after the restart
    oldest = min(acknowledged.values())
    events = server.watch_lines(f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={oldest - 1}"
                                f"&timeoutSeconds=1")
    revisions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] == "ADDED"]
    assert revisions == sorted(set(revisions)) and len(revisions) >= len(acknowledged)
    status, body = server.request("POST", "/api/v1/namespaces/default/pods", pod("after-restart"))
    assert status == 201
    assert int(body["metadata"]["resourceVersion"]) > max(int(i["metadata"]["resourceVersion"])
                                                         for i in stored.values())
