"""An upgrade-aware HTTP/1.1 proxy from the API server to a kubelet (kube-apiserver's UpgradeAwareHandler).

A plain request is sent on with its body; the kubelet's answer comes back
streamed as it arrives (`kubectl logs -f` follows through it). A request that
asks to upgrade the connection (WebSocket for exec and attach; SPDY/3.1 or
WebSocket for port-forward) is sent on too; when the kubelet switches
protocols, its 101 goes to the client and from then on the bytes are spliced
both ways until either side closes. When it does not switch, its answer goes
to the client as it is (kubectl reads the error from it, and a client that
offered WebSocket then tries SPDY).

The client's credentials stay here: the kubelet sees the API server's client
certificate, never the user's token or impersonation headers.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from svcnet.api.errors import ApiError
from svcnet.apiserver.nodeaccess import KubeletDialer

MAX_HEAD_BYTES = 64 * 1024
MAX_ERROR_BODY = 64 * 1024
CHUNK = 64 * 1024

# Per-connection headers (RFC 9110 section 7.6.1) and what only the API server may see.
_NOT_FORWARDED = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length", "authorization", "expect",
})
_NOT_RETURNED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"})

# A kubelet's answer that is an error, as the API server reports it instead (pods/log)
ErrorCheck = Callable[[int, bytes], ApiError | None]


class BadGateway(Exception):
    """The kubelet's answer was not HTTP the proxy can read."""


@dataclass(frozen=True)
class ResponseHead:
    status: int
    reason: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


def is_upgrade(request: web.Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


def request_head(method: str, target: str, host: str, headers: list[tuple[str, str]], *, upgrade: str | None,
                 body_length: int | None) -> bytes:
    """The request line and headers sent to the kubelet."""
    host_header = f"[{host}]" if ":" in host else host
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{k}: {v}" for k, v in headers
              if k.lower() not in _NOT_FORWARDED and not k.lower().startswith("impersonate-")]
    if upgrade is not None:
        lines += ["Connection: Upgrade", f"Upgrade: {upgrade}"]
    else:
        lines.append("Connection: close")
    if body_length:
        lines.append(f"Content-Length: {body_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_response_head(raw: bytes) -> ResponseHead:
    """The status line and headers of an HTTP/1.1 response (raw ends with the blank line)."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise BadGateway(f"malformed status line from the kubelet: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadGateway(f"malformed header line from the kubelet: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return ResponseHead(int(code), reason, headers)


async def read_head(reader: asyncio.StreamReader) -> ResponseHead:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadGateway("the kubelet's response head is too large") from None
    except asyncio.IncompleteReadError:
        raise BadGateway("the kubelet closed the connection before answering") from None
    return parse_response_head(raw)


async def body_chunks(reader: asyncio.StreamReader, head: ResponseHead):
    """The response body as it arrives: by Content-Length, chunked transfer coding or to the end."""
    if "chunked" in (head.header("transfer-encoding") or "").lower():
        while True:
            size_line = await reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                with contextlib.suppress(asyncio.IncompleteReadError):
                    while (await reader.readline()).strip():
                        pass  # trailers
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    length = head.header("content-length")
    if length is not None:
        remaining = int(length)
        while remaining > 0:
            chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
        return
    while chunk := await reader.read(CHUNK):
        yield chunk


async def proxy(request: web.Request, dialer: KubeletDialer, host: str, port: int, target: str, *,
                check: ErrorCheck | None = None) -> web.StreamResponse:
    """Send request on to the kubelet at host:port as target (path and query); answer with its response.

    check turns an error answer into the ApiError the API server reports (raised before anything is
    sent to the client); without it the answer is passed through as it is."""
    upgrade = request.headers.get("Upgrade") if is_upgrade(request) else None
    body = b"" if upgrade is not None else await request.read()
    reader, writer = await dialer.open(host, port)
    try:
        writer.write(request_head(request.method, target, host, list(request.headers.items()), upgrade=upgrade,
                                  body_length=len(body)) + body)
        await writer.drain()
        head = await read_head(reader)
        if upgrade is not None and head.status == 101:
            return await _splice(request, head, reader, writer)
        if check is not None and head.status >= 300:
            error = check(head.status, await _read_limited(reader, head))
            if error is not None:
                raise error
        return await _relay(request, head, reader)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _read_limited(reader: asyncio.StreamReader, head: ResponseHead) -> bytes:
    parts, total = [], 0
    async for chunk in body_chunks(reader, head):
        parts.append(chunk)
        total += len(chunk)
        if total >= MAX_ERROR_BODY:
            break
    return b"".join(parts)[:MAX_ERROR_BODY]


async def _relay(request: web.Request, head: ResponseHead, reader: asyncio.StreamReader) -> web.StreamResponse:
    response = web.StreamResponse(status=head.status, reason=head.reason or None)
    for name, value in head.headers:
        if name.lower() not in _NOT_RETURNED:
            response.headers.add(name, value)
    length = head.header("content-length")
    if length is not None and "chunked" not in (head.header("transfer-encoding") or "").lower():
        response.content_length = int(length)
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    async for chunk in body_chunks(reader, head):
        await response.write(chunk)
    await response.write_eof()
    return response


class _SwitchedResponse(web.StreamResponse):
    """The kubelet's 101, written as it is: no body framing of aiohttp's own."""
    _length_check = False


class _RawFeed:
    """Takes the client connection's bytes once protocols switched (aiohttp's payload-parser hook), and
    stops reading the client while more than HIGH_WATER bytes wait for the kubelet (flow control)."""

    HIGH_WATER = 1 << 20

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.ended = False
        self.arrived = asyncio.Event()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.chunks.append(bytes(data))
        self.buffered += len(data)
        self.arrived.set()
        if self.buffered > self.HIGH_WATER and self.transport.is_reading():
            self.transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.ended = True
        self.arrived.set()

    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it is gone."""
        while not self.chunks and not self.ended:
            self.arrived.clear()
            await self.arrived.wait()
        if not self.chunks:
            return b""
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.buffered <= self.HIGH_WATER // 2 and not self.transport.is_closing() \
                and not self.transport.is_reading():
            self.transport.resume_reading()
        return chunk


async def _splice(request: web.Request, head: ResponseHead, kubelet_reader: asyncio.StreamReader,
                  kubelet_writer: asyncio.StreamWriter) -> web.StreamResponse:
    response = _SwitchedResponse(status=101, reason=head.reason or "Switching Protocols")
    for name, value in head.headers:
        if name.lower() not in ("content-length", "transfer-encoding", "date", "server"):
            response.headers.add(name, value)
    response.force_close()
    await response.prepare(request)
    protocol, transport = request.protocol, request.transport
    assert transport is not None
    client = _RawFeed(transport)  # type: ignore[arg-type]
    protocol.set_parser(client)  # type: ignore[arg-type]  # from now on, raw bytes
    protocol.keep_alive(False)

    async def to_client() -> None:
        while chunk := await kubelet_reader.read(CHUNK):
            if transport.is_closing():
                return
            transport.write(chunk)
            if protocol.writing_paused:
                await protocol._drain_helper()  # aiohttp's flow control: wait until the client reads

    async def to_kubelet() -> None:
        while chunk := await client.read():
            kubelet_writer.write(chunk)
            await kubelet_writer.drain()

    tasks = [asyncio.create_task(to_client()), asyncio.create_task(to_kubelet())]
    try:
        # either side closing ends the session: the other is closed after it (proxy() closes the
        # kubelet's connection, aiohttp the client's), so a kubelet learns that its client left
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await asyncio.gather(*tasks)
    return response
