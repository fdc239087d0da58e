"""The real kubectl's chunked lists (`--chunk-size`) show the first page's snapshot while pods change.

A small HTTP relay sits between kubectl and the `svcnet apiserver` process: the first time kubectl
asks for a next page (a `continue` query), the relay first creates, deletes and relabels pods
through the server, then forwards the request. Whatever kubectl prints must be the pods as they
were when it read the first page; a compaction between pages makes kubectl report upstream's
410 Expired message.
"""
from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from svcnet.storage.sqlite import SqliteStore
from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available

pytestmark = pytest.mark.skipif(not kubectl_available(), reason="needs kubectl")

NAMES = [f"cp{index}" for index in range(7)]


class _Relay(http.server.ThreadingHTTPServer):
    """Forward GETs to the API server over TLS with its token; run `between` before the first next page."""

    daemon_threads = True

    def __init__(self, server: ApiServerProcess) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.api = server
        self.between: Callable[[], None] | None = None
        self.continues: list[dict[str, list[str]]] = []
        self.lock = threading.Lock()

    def next_page_requested(self, query: dict[str, list[str]]) -> None:
        with self.lock:
            self.continues.append(query)
            between, self.between = self.between, None
        if between is not None:
            between()


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    server: _Relay

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        query = parse_qs(urlsplit(self.path).query)
        if "continue" in query:
            self.server.next_page_requested(query)
        api = self.server.api
        connection = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.ssl_context(), timeout=30)
        try:
            headers = {"Authorization": f"Bearer {api.token()}",
                       "Accept": self.headers.get("Accept", "application/json")}
            connection.request("GET", self.path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        self.send_response(response.status)
        self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def relay(apiserver: ApiServerProcess, tmp_path: Path) -> Iterator[tuple[_Relay, dict[str, str]]]:
    """The relay, and the environment that points kubectl at it."""
    server = _Relay(apiserver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "relay-kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "relay",
        "clusters": [{"name": "relay", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "relay", "user": {}}],
        "contexts": [{"name": "relay", "context": {"cluster": "relay", "user": "relay", "namespace": "default"}}],
    }))
    try:
        yield server, {"KUBECONFIG": str(kubeconfig)}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _create(server: ApiServerProcess, name: str, app: str = "web") -> None:
    status, body = server.request("POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
    assert status == 201, body


def _change_pods(server: ApiServerProcess) -> None:
    """Writes between pages: a pod after every listed one, one among those not listed yet,
    a delete and a relabel of pods not listed yet."""
    _create(server, "cp9")
    _create(server, "cp45")
    status, body = server.request("DELETE", "/api/v1/namespaces/default/pods/cp6")
    assert status == 200, body
    status, body = server.request("PATCH", "/api/v1/namespaces/default/pods/cp5",
                                  {"metadata": {"labels": {"app": "changed"}}},
                                  content_type="application/merge-patch+json")
    assert status == 200, body


def _latest_names(server: ApiServerProcess) -> list[str]:
    status, body = server.request("GET", "/api/v1/namespaces/default/pods")
    assert status == 200
    return [item["metadata"]["name"] for item in body["items"]]


@pytest.mark.parametrize("output", ["json", "table"])
def test_kubectl_chunked_list_shows_the_first_pages_snapshot_while_pods_change(
        apiserver: ApiServerProcess, relay: tuple[_Relay, dict[str, str]], output: str) -> None:
    server, env = relay
    for name in NAMES:
        _create(apiserver, name)
    server.between = lambda: _change_pods(apiserver)
    if output == "json":
        listed = json.loads(apiserver.kubectl("get", "pods", "--chunk-size=2", "-o", "json", env=env).stdout)
        names = [item["metadata"]["name"] for item in listed["items"]]
        labels = {item["metadata"]["name"]: item["metadata"]["labels"]["app"] for item in listed["items"]}
    else:
        lines = apiserver.kubectl("get", "pods", "--chunk-size=2", "-L", "app", env=env).stdout.splitlines()
        assert lines[0].split()[0] == "NAME" and lines[0].split()[-1] == "APP"
        names = [line.split()[0] for line in lines[1:]]
        labels = {line.split()[0]: line.split()[-1] for line in lines[1:]}
    assert server.between is None and len(server.continues) == 3  # the writes ran between kubectl's pages
    assert names == NAMES
    assert labels["cp5"] == "web"
    assert _latest_names(apiserver) == ["cp0", "cp1", "cp2", "cp3", "cp4", "cp45", "cp5", "cp9"]


def _compact_at_head(server: ApiServerProcess) -> None:
    """Compact the server's store at its current revision (stopped meanwhile: one process owns the file).

    The server compacts on its own timer (every 5 minutes, keeping 10,000 revisions); a test cannot wait
    for that, so it compacts the file itself while the server is down and starts it again.
    """
    server.stop()
    store = SqliteStore(str(server.data_dir / "state.db"))
    try:
        store.compact(store.current_revision())
    finally:
        store.close()
    server.start()


def test_kubectl_chunked_list_after_a_compaction_between_pages_reports_410_expired(
        apiserver: ApiServerProcess, relay: tuple[_Relay, dict[str, str]]) -> None:
    server, env = relay
    for name in NAMES:
        _create(apiserver, name)

    def change_and_compact() -> None:
        _change_pods(apiserver)
        _compact_at_head(apiserver)

    server.between = change_and_compact
    result = apiserver.kubectl("get", "pods", "--chunk-size=2", "-o", "json", env=env, check=False)
    assert server.between is None
    assert result.returncode != 0, result.stdout
    assert "The provided continue parameter is too old to display a consistent list result" in result.stderr
