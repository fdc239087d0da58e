"""The real `kubectl port-forward` (the machine's 1.32 and the venv's 1.37) against
serve_port_forward: a small API server answers what kubectl asks before forwarding
(discovery, the pod) and routes `pods/x/portforward` to the handler, which dials a local
HTTP server standing in for the pod, over plain HTTP and over TLS as a kubelet serves.
No root, no cluster: the protocols are the subject.

Each kubectl is driven both ways it can speak: SPDY tunnelled in WebSocket (its default)
and plain SPDY (KUBECTL_PORT_FORWARD_WEBSOCKETS=false), and Ctrl-C must end it cleanly.
"""
from __future__ import annotations

import asyncio
import base64
import errno
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from svcnet.agent.portforward import serve_port_forward
from svcnet.core import pki
from tests.integration.apiserver_harness import KUBECTL, free_port

pytestmark = pytest.mark.kubectl

POD_PORT = 9376


def _kubectls() -> list[pytest.param]:
    """The kubectl the suite drives (SVCNET_KUBECTL or the machine's) and the venv's newer
    one, each once: the protocols differ between versions, so both are proven in one run."""
    candidates = [shutil.which(KUBECTL), str(Path(sys.executable).parent / "kubectl")]
    found: dict[str, str] = {}
    for path in candidates:
        if path and os.access(path, os.X_OK):
            found.setdefault(os.path.realpath(path), path)
    if not found:
        return [pytest.param("kubectl", marks=pytest.mark.skip(reason="kubectl is not installed"))]
    return [pytest.param(path, id=_version(path)) for path in found.values()]


def _version(kubectl: str) -> str:
    out = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=60).stdout
    return out.split("Client Version: ")[-1].split()[0] if "Client Version: " in out else Path(kubectl).name


POD = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {"name": "x", "namespace": "default", "uid": "5f0c1d5e-0000-4000-8000-000000000001"},
    "spec": {"containers": [{"name": "main", "image": "hostnames", "ports": [{"containerPort": POD_PORT}]}]},
    "status": {"phase": "Running"},
}
API_RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "shortNames": ["po"],
         "verbs": ["get", "list"]},
        {"name": "pods/portforward", "singularName": "", "namespaced": True, "kind": "PodPortForwardOptions",
         "verbs": ["create", "get"]},
    ],
}


async def _hostnames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The walkthrough's hostnames pod: any HTTP request gets the pod's name."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nx\n")
    await writer.drain()
    writer.close()


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    """A serving context from a fresh CA, and the CA for kubectl, as a kubelet's would be."""
    ca_key = pki.new_key()
    ca = pki.Authority(pki.issue_ca("test-ca", ca_key), ca_key)
    key = pki.new_key()
    cert = pki.issue_serving(ca, "127.0.0.1", key.public_key(), ips=["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(pki.cert_pem(cert))
    (tmp_path / "tls.key").write_bytes(pki.key_pem(key))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    return context, base64.b64encode(pki.cert_pem(ca.cert)).decode()


@pytest.fixture(params=[False, True], ids=["http", "https"])
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Path, list[str]]]:
    pod_server = await asyncio.start_server(_hostnames, "127.0.0.1", 0)
    pod_port = pod_server.sockets[0].getsockname()[1]
    seen: list[str] = []

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if port != POD_PORT:  # nothing listens on any other port of the pod
            raise ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        return await asyncio.open_connection("127.0.0.1", pod_port)

    async def portforward(request: web.Request) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "")
        seen.append(f"{request.method} {upgrade} {request.headers.get('Sec-WebSocket-Protocol', '')}")
        return await serve_port_forward(request, dial)

    def answer(body: dict) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            seen.append(f"{request.method} {request.path}")
            return web.json_response(body)
        return handler

    app = web.Application()
    app.router.add_get("/api", answer({"kind": "APIVersions", "versions": ["v1"]}))
    app.router.add_get("/apis", answer({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
    app.router.add_get("/api/v1", answer(API_RESOURCES))
    app.router.add_get("/api/v1/namespaces/default/pods/x", answer(POD))
    app.router.add_route("*", "/api/v1/namespaces/default/pods/x/portforward", portforward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    context, ca_data = _tls(tmp_path) if request.param else (None, "")
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    cluster = f'server: "https://127.0.0.1:{port}", certificate-authority-data: {ca_data}' if context else \
        f'server: "http://127.0.0.1:{port}"'
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{{cluster}}}}}]
users: [{{name: u, user: {{token: not-checked}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u, namespace: default}}}}]
current-context: c
""")
    try:
        yield kubeconfig, seen
    finally:
        await runner.cleanup()
        pod_server.close()
        await pod_server.wait_closed()


async def _curl(port: int) -> str:
    """What `curl localhost:PORT` prints (the acceptance's own check)."""
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "60", f"http://127.0.0.1:{port}/", stdout=asyncio.subprocess.PIPE)
    out, _ = await curl.communicate()
    return out.decode()


async def _http_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    body = await reader.read()
    writer.close()
    return body


async def _forwarding(process: asyncio.subprocess.Process) -> str:
    """kubectl's first stdout line once it listens ("Forwarding from 127.0.0.1:P -> 9376")."""
    assert process.stdout is not None
    return (await process.stdout.readline()).decode()


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
@pytest.mark.parametrize("kubectl", _kubectls())
async def test_kubectl_port_forward_serves_curl_and_ends_on_ctrl_c(
        api: tuple[Path, list[str]], kubectl: str, websockets: bool) -> None:
    kubeconfig, seen = api
    local = free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
    process = await asyncio.create_subprocess_exec(
        kubectl, "port-forward", "pod/x", f"{local}:{POD_PORT}", "--address", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        line = await asyncio.wait_for(_forwarding(process), 60)
        assert line.startswith(f"Forwarding from 127.0.0.1:{local} -> {POD_PORT}"), line
        for _ in range(3):  # several connections over the one upgraded connection
            response = await asyncio.wait_for(_http_get(local), 60)
            assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"\r\n\r\nx\n"), response
        if shutil.which("curl"):
            assert await asyncio.wait_for(_curl(local), 90) == "x\n"
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert code == 0, stderr
    assert "error" not in stderr.lower(), stderr
    if websockets:
        assert "GET websocket SPDY/3.1+portforward.k8s.io" in seen, seen
    else:
        assert "POST SPDY/3.1 " in seen, seen
    with socket.socket() as s:  # kubectl no longer listens (TIME_WAIT of our connections aside)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", local))


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
@pytest.mark.parametrize("kubectl", _kubectls())
async def test_kubectl_port_forward_to_a_closed_port_shows_kubelets_error(
        api: tuple[Path, list[str]], kubectl: str, websockets: bool) -> None:
    kubeconfig, _ = api
    local = free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
    process = await asyncio.create_subprocess_exec(
        kubectl, "port-forward", "pod/x", f"{local}:9377", "--address", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        await asyncio.wait_for(_forwarding(process), 60)
        assert await asyncio.wait_for(_http_get(local), 60) == b""
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 60)
    assert "error forwarding port 9377 to pod x_default, uid : " in line, line
    assert "connection refused" in line, line
