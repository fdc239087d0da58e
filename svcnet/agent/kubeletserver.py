"""The node's kubelet API: HTTPS on port 10250 of the node's address, as kubelet serves it.

The API server proxies pods/log, pods/exec, pods/attach, pods/portforward and
nodes/proxy here. Paths are kubelet's (kubeletapi.py); every request is
authenticated and authorized first (kubeletauth.py: client certificate or
TokenReview, then SubjectAccessReview): 401 `Unauthorized` without
credentials, 403 `Forbidden (user=..., ...)` without the permission.

The server runs in the agent's process (the host's network namespace) on a
socket made inside the node's namespace, so it answers on the node's LAN
address; its serving certificate is issued from the cluster CA at start,
naming the node's addresses and name, so the API server verifies it as it
verifies kubelets (--kubelet-certificate-authority). Errors are plain text,
as kubelet writes them; the API server turns them into Status objects.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from svcnet.agent import execstream, kubeletapi
from svcnet.agent.kubeletapi import Route
from svcnet.agent.kubeletauth import WebhookAuth
from svcnet.agent.podaccess import PodFiles
from svcnet.api.objects import name_of, spec_of, uid_of
from svcnet.core import pki
from svcnet.kernel.netns import socket_in_netns

log = logging.getLogger("svcnet.agent.kubeletserver")

Obj = Mapping[str, Any]
Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

try:  # the port-forward protocols (SPDY/3.1, WebSocket) are another module's, merged separately
    from svcnet.agent.portforward import serve_port_forward  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - until svcnet.agent.portforward exists
    serve_port_forward = None

_METHODS = {kubeletapi.HEALTHZ: ("GET", "HEAD"), kubeletapi.PODS: ("GET",), kubeletapi.LOGS: ("GET", "HEAD"),
            kubeletapi.EXEC: ("GET", "POST"), kubeletapi.ATTACH: ("GET", "POST"),
            kubeletapi.PORT_FORWARD: ("GET", "POST"), kubeletapi.RUN: ("POST",)}


class PodSource(Protocol):
    """The pods bound to this node, as the agent knows them (its informer)."""

    def get(self, namespace: str | None, name: str) -> Obj | None: ...

    def list(self) -> list[Obj]: ...


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


class KubeletApi:
    """The kubelet API's handlers over this node's pods."""

    def __init__(self, node_name: str, pods: PodSource, files: PodFiles, auth: WebhookAuth) -> None:
        self.node_name = node_name
        self.pods = pods
        self.files = files
        self.auth = auth

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            caller = await self.auth.authenticate(peer, request.headers.get("Authorization", ""))
        except Exception as exc:  # the API server unreachable: kubelet answers 401 too
            log.warning("authenticating a kubelet API request failed: %s", exc)
            caller = None
        if caller is None:
            return _text(401, kubeletapi.UNAUTHORIZED)
        attrs = kubeletapi.request_attributes(request.method, request.path, self.node_name)
        try:
            allowed = await self.auth.authorize(caller, attrs)
        except Exception as exc:
            log.warning("authorizing a kubelet API request failed: %s", exc)
            return _text(500, kubeletapi.authorization_error_message(caller.name, attrs))
        if not allowed:
            return _text(403, kubeletapi.forbidden_message(caller.name, attrs))
        return await handler(request)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = kubeletapi.parse_route(request.path)
        if route is None:
            return _text(404, "404 page not found\n")
        if request.method not in _METHODS[route.kind]:
            return _text(405, f"{request.method} is not supported on {request.path}\n")
        if route.kind == kubeletapi.HEALTHZ:
            return _text(200, "ok")
        if route.kind == kubeletapi.PODS:
            return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                      "items": self.pods.list()})
        pod = self.pods.get(route.namespace, route.pod)
        if pod is None or (route.uid and uid_of(pod) != route.uid):
            return _text(404, f'pod "{route.pod}" does not exist\n')
        if route.kind == kubeletapi.PORT_FORWARD:
            return await self._port_forward(request, pod)
        if route.container not in _container_names(pod):
            return _text(404, f'container "{route.container}" not found in pod "{route.pod}"\n')
        if route.kind == kubeletapi.LOGS:
            return await self._container_logs(request, route, pod)
        if route.kind == kubeletapi.RUN:
            return await self._run(request, route, pod)
        return await self._stream(request, route, pod)

    # ------------------------------------------------------------ logs
    async def _container_logs(self, request: web.Request, route: Route, pod: Obj) -> web.StreamResponse:
        try:
            options = kubeletapi.log_options(request.query)
        except ValueError as exc:
            return _text(400, f"{exc}\n")
        try:
            found = self.files.container_log(pod, route.container, previous=kubeletapi.previous(request.query))
        except LookupError as exc:  # no previous instance, or none yet: kubectl prints the message
            return _text(400, str(exc.args[0] if exc.args else exc))
        waiting = f'container "{route.container}" in pod "{route.pod}" is waiting to start: ContainerCreating'
        if found is None:
            return _text(400, waiting)
        if not options.follow:
            try:
                return _text(200, "") if request.method == "HEAD" else web.Response(
                    body=await found.read(options), content_type="text/plain")
            except FileNotFoundError:
                return _text(400, waiting)
        uid = uid_of(pod)

        def pod_gone() -> bool:  # deleted (or replaced by one of that name): nothing more will be written
            current = self.pods.get(route.namespace, route.pod)
            return current is None or uid_of(current) != uid

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in found.follow(options, pod_gone):
                await response.write(chunk)
        except FileNotFoundError:
            pass  # the pod's files were removed while we followed
        await response.write_eof()
        return response

    # ------------------------------------------------------------ exec, attach, run
    async def _stream(self, request: web.Request, route: Route, pod: Obj) -> web.StreamResponse:
        attach = route.kind == kubeletapi.ATTACH
        try:
            options = execstream.StreamOptions.from_query(request.query, request.query.getall("command", []),
                                                          exec_=not attach)
        except ValueError as exc:
            return _text(400, str(exc))
        running = self.files.running_container(pod, route.container)
        if running is None:
            return _text(500, f'container not found ("{route.container}")')
        protocol = execstream.negotiate(request.headers.get("Sec-WebSocket-Protocol"))
        if not execstream.is_websocket(request) or protocol is None:
            # kubectl tries WebSocket first and SPDY after a failed upgrade: say plainly what is served
            return _text(400, f"{route.kind} is served over WebSocket only "
                              f"(subprotocols {', '.join(execstream.PROTOCOLS)})")

        async def start() -> execstream.StreamSession:
            if attach:
                return running.attach()
            return await running.exec(options.command, stdin=options.stdin, stdout=options.stdout,
                                      stderr=options.stderr, tty=options.tty)

        return await execstream.serve_stream(request, protocol, options, start)

    async def _run(self, request: web.Request, route: Route, pod: Obj) -> web.StreamResponse:
        """kubelet's /run: the command's output (stdout then stderr) as the answer."""
        command = [word for word in request.query.get("cmd", "").split(" ") if word]  # `cmd`, split at spaces
        running = self.files.running_container(pod, route.container)
        if running is None:
            return _text(500, f'container not found ("{route.container}")')
        if not command:
            return _text(400, "missing cmd\n")
        session = await running.exec(command, stdin=False, stdout=True, stderr=True, tty=False)
        try:
            out, err = await asyncio.gather(_read_all(session.stdout), _read_all(session.stderr))
            await session.wait()
        finally:
            session.close()
        return web.Response(body=out + err, content_type="text/plain")

    # ------------------------------------------------------------ port-forward
    async def _port_forward(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        if serve_port_forward is None:
            return _text(501, "port forwarding is not served by this node yet\n")
        return await serve_port_forward(request, self.dialer(pod))

    def dialer(self, pod: Obj) -> Dial:
        """A TCP connection to 127.0.0.1:port in the pod's network namespace, as the runtime makes them."""
        async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            netns = self.files.network_namespace(pod)
            if netns is None:
                raise OSError(f"pod {name_of(pod)} has no running sandbox on this node")
            sock = await asyncio.to_thread(socket_in_netns, netns, socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                return await asyncio.open_connection(sock=sock)
            except BaseException:
                sock.close()
                raise
        return dial


async def _read_all(reader: Any) -> bytes:
    if reader is None:
        return b""
    parts = []
    while chunk := await reader.read(65536):
        parts.append(chunk)
    return b"".join(parts)


def _container_names(pod: Obj) -> set[str]:
    spec = spec_of(pod)
    return {str(c.get("name")) for key in ("containers", "initContainers", "ephemeralContainers")
            for c in spec.get(key) or []}


# ---------------------------------------------------------------- serving

def ensure_serving_certificate(pki_dir: Path, cert_dir: Path, node_name: str,
                               addresses: tuple[str, ...]) -> tuple[Path, Path]:
    """A serving certificate from the cluster CA for the node's name and addresses (reissued at each
    start, so it always names the current addresses); the key is 0600."""
    ca = pki.Authority.from_pem((pki_dir / "ca.crt").read_bytes(), (pki_dir / "ca.key").read_bytes())
    key = pki.new_key()
    cert = pki.issue_serving(ca, f"system:node:{node_name}", key.public_key(), dns_names=(node_name,),
                             ips=addresses)
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = cert_dir / "kubelet.crt", cert_dir / "kubelet.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(pki.key_pem(key))
    cert_path.write_bytes(pki.cert_pem(cert))
    return cert_path, key_path


def server_tls(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS for the kubelet API: our certificate; client certificates are optional, verified against the
    cluster CA when given (kubelet's --client-ca-file)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(ca_cert))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


class KubeletServer:
    """The kubelet API served on a listening socket (made by `listen`) until stopped."""

    def __init__(self, api: KubeletApi, listen: Callable[[], socket.socket], tls: ssl.SSLContext) -> None:
        self.api = api
        self.listen = listen
        self.tls = tls
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.api.make_app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        sock = self.listen()
        await web.SockSite(runner, sock, ssl_context=self.tls).start()
        log.info("kubelet API serving on %s", sock.getsockname())

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
