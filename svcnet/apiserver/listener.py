"""The API port: accept, sniff, TLS, header deadlines and a connection cap, bounded as Go's net/http.

kube-apiserver serves with Go's http.Server as k8s.io/apiserver sets it up
(staging/src/k8s.io/apiserver/pkg/server/secure_serving.go, `Serve`): ReadHeaderTimeout 32 s
("just shy of requestTimeoutUpperBound"), IdleTimeout 90 s, MaxHeaderBytes 1 MiB. Go's net/http
(src/net/http/server.go) adds what this module rebuilds for asyncio + aiohttp:

- `conn.serve` gives the TLS handshake a deadline (`tlsHandshakeTimeout`, the ReadHeaderTimeout
  here), and `conn.readRequest` gives every request's line and headers ReadHeaderTimeout; between
  keep-alive requests the connection waits IdleTimeout for the next request's first bytes.
- A first TLS record header that reads like plain HTTP (`tlsRecordHeaderLooksLikeHTTP`: "GET /",
  "HEAD ", "POST ", "PUT /", "OPTIO") is answered "400 Client sent an HTTP request to an HTTPS
  server." on the raw connection, which is then closed; any other non-handshake start is closed
  (crypto/tls rejects a first record that is not a handshake).
- Buffers are small and grow with use (bufio 4 KiB; a TLS conn holds one record at a time).
- `Server.Serve` has no connection cap: the open-file limit is the cap (Go raises its soft limit to
  the hard one, src/os/rlimit.go), and when accept fails with EMFILE the loop retries with a
  backoff (5 ms doubling to 1 s), so further connections wait in the kernel's listen backlog.
  svcnet makes that cap explicit (`max_connections`, clamped to the open-file limit) and keeps the
  same behaviour at it: it stops accepting, and new connections wait in the backlog (sized from
  /proc/sys/net/core/somaxconn as Go's net/sock_linux.go `maxListenerBacklog` does).

What aiohttp already bounds is left to it: the idle keep-alive timeout (`keepalive_timeout`), the
request line and each header field (8190 bytes) and the number of header fields (128), which keep
one request's header block near Go's 1 MiB MaxHeaderBytes.

What asyncio does not: its TLS transport allocates a 256 KiB read buffer per connection
(asyncio/sslproto.py `SSLProtocol.max_size`) and `create_server(ssl=...)` wraps every accepted
socket at once, so an idle TCP connection cost ~300 KiB for the 60 s handshake timeout. Here a
connection is a bare transport until its first byte says TLS (0x16, a handshake record), and the
TLS layer reads 16 KiB at a time.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
from asyncio import sslproto
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from aiohttp import web

log = logging.getLogger("svcnet.apiserver.listener")

# net/http server.go conn.serve: the reply to plain HTTP on a TLS port, on the raw connection.
PLAIN_HTTP_REPLY = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
# net/http server.go tlsRecordHeaderLooksLikeHTTP: the only first five bytes answered that way.
_HTTP_STARTS = frozenset({b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO"})
_TLS_HANDSHAKE_RECORD = 0x16  # crypto/tls recordTypeHandshake: every ClientHello starts with it
_RECORD_HEADER = 5
TLS_READ_SIZE = 16 * 1024  # one TLS record's plaintext (RFC 8446 5.1), not asyncio's 256 KiB
# crypto/tls conn.go closeNotify: Close writes close_notify under a 5 s deadline and waits no longer.
TLS_CLOSE_TIMEOUT = 5.0
# Files the server keeps besides the API port's connections: database, WAL, logs, the unix
# socket's clients, connections to nodes.
RESERVED_FILES = 256
_LINUX_NR_OPEN = 1 << 20  # fs.nr_open's default: what "unlimited" open files means on Linux


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds one listener enforces (values and their sources: ApiServerConfig)."""

    read_header_timeout: float
    idle_timeout: float
    max_connections: int


def looks_like_plain_http(first: bytes) -> bool:
    """Whether a connection's first five bytes are a plaintext HTTP request (Go's exact set)."""
    return first[:_RECORD_HEADER] in _HTTP_STARTS


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as every Go program does (src/os/rlimit.go).

    Returns the limit now in force. asyncio polls with epoll, so select()'s 1024 does not apply.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return _LINUX_NR_OPEN if soft == resource.RLIM_INFINITY else soft


def connection_cap(configured: int, open_files: int) -> int:
    """The configured cap, never above what the open-file limit leaves after the server's own files."""
    room = max(1, open_files - RESERVED_FILES)
    return min(configured, room) if configured > 0 else room


def listen_backlog() -> int:
    """The kernel's accept-queue cap, read as Go's net/sock_linux.go maxListenerBacklog reads it."""
    try:
        return max(1, int(Path("/proc/sys/net/core/somaxconn").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return socket.SOMAXCONN


class _Connection:
    """One accepted connection: its raw transport, its header deadline and its slot under the cap."""

    __slots__ = ("listener", "transport", "served", "_deadline", "_released")

    def __init__(self, listener: ApiSite) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.served = False  # aiohttp has the connection (after the TLS handshake)
        self._deadline: asyncio.TimerHandle | None = None
        self._released = False

    def arm(self) -> None:
        """Start the header deadline (as conn.readRequest's hdrDeadline), unless it is running."""
        if self._deadline is None and not self._released:
            loop = self.listener.loop
            self._deadline = loop.call_later(self.listener.limits.read_header_timeout, self._expire)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport is not None:
            self.transport.abort()  # Go closes without a reply when the header read times out

    def closed(self) -> None:
        """The raw transport is gone: free the slot (once) so the accept loop may take another."""
        self.disarm()
        if not self._released:
            self._released = True
            self.listener._release(self)


class _FirstBytes(asyncio.Protocol):
    """Reads a connection's first bytes before any TLS state exists; then hands it on or answers."""

    __slots__ = ("conn", "buffered")

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.buffered = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffered += data
        transport = self.conn.transport
        assert transport is not None
        if self.buffered[0] == _TLS_HANDSHAKE_RECORD:
            self.conn.listener._start_tls(self.conn, self.buffered)
        elif len(self.buffered) >= _RECORD_HEADER:
            if looks_like_plain_http(self.buffered):
                transport.write(PLAIN_HTTP_REPLY)
                transport.close()
            else:
                transport.abort()

    def eof_received(self) -> bool:
        return False  # closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.closed()


class _TlsProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol with a one-record read buffer, freeing the slot when the socket closes."""

    max_size = TLS_READ_SIZE

    def __init__(self, conn: _Connection, app_protocol: asyncio.BaseProtocol, context: ssl.SSLContext,
                 handshake_timeout: float) -> None:
        super().__init__(conn.listener.loop, app_protocol, context, None, server_side=True,
                         ssl_handshake_timeout=handshake_timeout,
                         ssl_shutdown_timeout=TLS_CLOSE_TIMEOUT)
        self._conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._conn.closed()


class _RequestBoundaries(asyncio.Protocol):
    """Sits between the transport and aiohttp's RequestHandler and keeps the header deadline.

    The deadline runs from accept until the first request's headers are complete, and again from
    the first byte of each later request on a kept-alive connection until its headers are complete
    (Go's conn.serve peeks the next request's first bytes under IdleTimeout, then reads its headers
    under ReadHeaderTimeout). While a handler runs (a watch, a slow body, an exec stream) no
    deadline runs. aiohttp's keepalive_timeout closes a connection idle between requests.
    """

    __slots__ = ("conn", "inner", "in_request")

    def __init__(self, conn: _Connection, inner: asyncio.Protocol) -> None:
        self.conn = conn
        self.inner = inner
        self.in_request = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.conn.transport is None:  # plain HTTP (insecure): this is the raw transport
            assert isinstance(transport, asyncio.Transport)
            self.conn.transport = transport
        self.conn.served = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_request and data:
            self.conn.arm()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)
        self.conn.closed()  # a no-op under TLS, where _TlsProtocol frees the slot

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def request_started(self) -> None:
        self.in_request += 1
        self.conn.disarm()

    def request_finished(self) -> None:
        self.in_request -= 1


@web.middleware
async def request_boundaries(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.StreamResponse:
    """Tell the connection its request's headers are complete, and when its handler is done.

    Installed outermost on the app served by an ApiSite; a request that came another way (the
    unix socket) passes through untouched.
    """
    transport = request.transport
    boundaries = transport.get_protocol() if transport is not None else None
    if not isinstance(boundaries, _RequestBoundaries):
        return await handler(request)
    boundaries.request_started()
    try:
        return await handler(request)
    finally:
        boundaries.request_finished()


async def serving_runner(app: web.Application, limits: ConnectionLimits) -> web.AppRunner:
    """An AppRunner for an app an ApiSite will serve: the deadline's middleware and Go's IdleTimeout.

    aiohttp's keepalive_timeout closes a kept-alive connection that has not started its next
    request; request_boundaries (outermost) tells the connection where each request's headers end.
    """
    app.middlewares.insert(0, request_boundaries)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0,
                           keepalive_timeout=limits.idle_timeout)
    await runner.setup()
    return runner


class ApiSite(web.BaseSite):
    """An aiohttp site (like TCPSite) serving the runner's server on host:port with Go's bounds."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, ssl_context: ssl.SSLContext | None,
                 limits: ConnectionLimits, sock: socket.socket | None = None) -> None:
        """With `sock`, serve that listening socket (one made in another network namespace) as it is."""
        super().__init__(runner)
        self._given = sock
        assert runner.server is not None
        self.server = runner.server
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.connections: set[_Connection] = set()
        self._slots = asyncio.Semaphore(limits.max_connections)
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task | None = None

    @property
    def name(self) -> str:
        scheme = "http" if self.ssl_context is None else "https"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        sock = self._given or self._listen()
        sock.setblocking(False)
        self._sock = sock
        self._accepting = asyncio.create_task(self._accept_loop(sock), name="apiserver-accept")

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(listen_backlog())
        except BaseException:
            sock.close()
            raise
        return sock

    @property
    def bound_port(self) -> int:
        assert self._sock is not None
        return self._sock.getsockname()[1]

    async def _accept_loop(self, sock: socket.socket) -> None:
        backoff = 0.0
        while True:
            await self._slots.acquire()  # at the cap, connections wait in the listen backlog
            try:
                raw, _ = await self.loop.sock_accept(sock)
            except OSError as exc:
                self._slots.release()
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):  # the client left the queue
                    continue
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Go's Serve returns here and kube-apiserver panics: the port is dead.
                    log.critical("accept on %s:%s failed; no longer serving", self.host, self.port,
                                 exc_info=True)
                    raise
                backoff = min(1.0, backoff * 2 or 0.005)  # net/http Server.Serve's retry delay
                log.warning("accept on %s:%s failed: %s; retrying in %.3fs", self.host, self.port,
                            exc, backoff)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            conn = _Connection(self)
            self.connections.add(conn)
            try:
                await self.loop.connect_accepted_socket(partial(self._first_protocol, conn), raw)
            except OSError:
                raw.close()
                conn.closed()
                continue
            conn.arm()

    def _first_protocol(self, conn: _Connection) -> asyncio.Protocol:
        if self.ssl_context is None:
            return _RequestBoundaries(conn, self.server())
        return _FirstBytes(conn)

    def _start_tls(self, conn: _Connection, first: bytes) -> None:
        """Wrap the raw transport in TLS now that it sent a handshake record, replaying those bytes."""
        assert self.ssl_context is not None and conn.transport is not None
        tls = _TlsProtocol(conn, _RequestBoundaries(conn, self.server()), self.ssl_context,
                           self.limits.read_header_timeout)
        conn.transport.set_protocol(tls)
        tls.connection_made(conn.transport)
        view = memoryview(first)
        while view:
            buf = tls.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            tls.buffer_updated(n)
            view = view[n:]

    def _release(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        self._slots.release()

    async def stop(self) -> None:
        """Stop accepting and drop connections aiohttp has not seen (sniffing, handshaking).

        The runner's cleanup then shuts down aiohttp's connections, waiting for their handlers.
        """
        if self._accepting is not None:
            self._accepting.cancel()
            with suppress(asyncio.CancelledError):
                await self._accepting
            self._accepting = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for conn in list(self.connections):
            if not conn.served and conn.transport is not None:
                conn.transport.abort()
        await super().stop()
