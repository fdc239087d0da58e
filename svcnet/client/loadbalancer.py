"""`svcnet apiserver-lb`: a client-side TCP load balancer in front of several API servers, as
k3s's agents run one (pkg/agent/loadbalancer): it listens on loopback, sends each new
connection to the first healthy server, and fails over when one stops answering.

kubectl and svcnet's own components take one server per kubeconfig; pointed at this address
instead, they keep working while any one API server does. It forwards the bytes as they are
(TLS end to end: the API servers still see and check each client's credentials), so the
servers' certificates must name the address clients dial (svcnet's name 127.0.0.1).

A health check dials every server each interval; one that stops answering has its open
connections closed, so long-running requests (watches) break at once and their clients,
which watch again from the last resourceVersion they saw, reconnect through here to another
server: over one shared store, the same revisions.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from svcnet.core.serverpool import ServerPool

log = logging.getLogger("svcnet.apiserver-lb")

DEFAULT_LISTEN = "127.0.0.1:6444"  # k3s's agent load balancer's port for the API server
DIAL_TIMEOUT = 5.0
HEALTH_INTERVAL = 5.0
MAX_CONNECTIONS = 1024  # open client connections at once; more are refused (each holds two sockets)
CHUNK = 64 * 1024


def split_host_port(text: str, *, any_port: bool = False) -> tuple[str, int]:
    """host:port or [v6]:port (port 0, a free one, only with any_port); ValueError naming the bad part."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 if any_port else 1) <= int(port) < 65536:
        raise ValueError(f"{text!r}: want HOST:PORT")
    return host.strip("[]"), int(port)


class ApiServerLoadBalancer:
    def __init__(self, listen: str, servers: list[str], *, health_interval: float = HEALTH_INTERVAL,
                 dial_timeout: float = DIAL_TIMEOUT,
                 on_change: Callable[[str, bool], None] | None = None) -> None:
        self.listen = split_host_port(listen, any_port=True)
        for server in servers:
            split_host_port(server)
        if not 0 < health_interval < float("inf") or not 0 < dial_timeout < float("inf"):
            raise ValueError("the health interval and dial timeout must be positive")
        self.pool = ServerPool(list(servers))
        self.health_interval = health_interval
        self.dial_timeout = dial_timeout
        self._on_change = on_change
        self._server: asyncio.Server | None = None
        self._health: asyncio.Task[None] | None = None
        self._open: dict[str, set[asyncio.StreamWriter]] = {s: set() for s in servers}
        self._connections = 0
        self.bound_port = 0

    def __repr__(self) -> str:
        return f"ApiServerLoadBalancer({self.listen[0]}:{self.bound_port} -> {', '.join(self.pool.servers)})"

    async def start(self) -> None:
        host, port = self.listen
        self._server = await asyncio.start_server(self._accept, host, port)
        self.bound_port = self._server.sockets[0].getsockname()[1]
        self._health = asyncio.create_task(self._health_loop(), name="apiserver-lb-health")
        log.info("apiserver load balancer on %s:%d for %s", host, self.bound_port, ", ".join(self.pool.servers))

    async def stop(self) -> None:
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
        if self._server is not None:
            self._server.close()
        for server in self.pool.servers:
            self._close_connections(server)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # ------------------------------------------------------------ connections
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._connections -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dialled = await self._dial()
        if dialled is None:
            log.warning("no API server answers: %s", ", ".join(self.pool.servers))
            return
        server, (up_reader, up_writer) = dialled
        tracked = self._open[server]
        tracked.add(writer)
        tracked.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            tracked.discard(writer)
            tracked.discard(up_writer)
            up_writer.close()

    async def _dial(self) -> tuple[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None:
        for server in self.pool.dial_order():
            host, port = split_host_port(server)
            try:
                streams = await asyncio.wait_for(asyncio.open_connection(host, port), self.dial_timeout)
            except (TimeoutError, OSError) as exc:
                log.info("dialling %s failed: %s; trying the next server", server, exc)
                if self._mark(server, False):
                    self._close_connections(server)
                continue
            self._mark(server, True)
            return server, streams
        return None

    def _close_connections(self, server: str) -> None:
        for writer in list(self._open[server]):
            writer.close()

    # ---------------------------------------------------------------- health
    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            await asyncio.gather(*(self._check(server) for server in self.pool.servers))

    async def _check(self, server: str) -> None:
        host, port = split_host_port(server)
        try:
            _, probe = await asyncio.wait_for(asyncio.open_connection(host, port), self.dial_timeout)
            probe.close()
            ok = True
        except (TimeoutError, OSError):
            ok = False
        if self._mark(server, ok):
            log.warning("%s failed its health check; closing its %d connections", server,
                        len(self._open[server]) // 2)
            self._close_connections(server)

    def _mark(self, server: str, ok: bool) -> bool:
        was = self.pool.healthy[server]
        went_down = self.pool.checked(server, ok)
        if was != ok and self._on_change is not None:
            self._on_change(server, ok)
        return went_down


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF or an error on either side; then half-close (or close) the other."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError, asyncio.IncompleteReadError):  # reset, or the other side closed
        writer.close()
