"""The kubelet's port-forward handler: what `/portForward/{ns}/{pod}[/{uid}]` runs.

Three ways in, as a kubelet behind kube-apiserver offers them:
- SPDY/3.1 (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`), what
  kubectl speaks when WebSockets are off: the client opens an error and a data stream per
  forwarded connection, paired by their `requestID` header (pkg/kubelet/cri/streaming/
  portforward/httpstream.go).
- The same SPDY bytes tunnelled in WebSocket binary messages (subprotocol
  `SPDY/3.1+portforward.k8s.io`), kubectl's default since 1.31. Upstream kube-apiserver
  unwraps the tunnel and speaks SPDY to the kubelet (apiserver pkg/util/proxy/
  streamtunnel.go); here the API server only splices bytes, so the kubelet unwraps it.
- The WebSocket channel protocol (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, or no
  subprotocol) with `?ports=` (websocket.go), which the official Python client speaks:
  channel 2i carries port i's data and 2i+1 its errors, each opened by the port as two
  little-endian bytes.

`dial(port)` connects to the pod's port. The SPDY framing and stream states are the pure
svcnet.core.spdy; this module moves bytes and runs one task per forwarded connection.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from aiohttp import web
from aiohttp.http import StreamWriter

from svcnet.agent.execstream import encode_data
from svcnet.core import spdy

log = logging.getLogger("svcnet.agent.portforward")

T = TypeVar("T")
Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

SPDY_UPGRADE = "SPDY/3.1"
PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = SPDY_UPGRADE + "+" + PORT_FORWARD_PROTOCOL
V4_BINARY = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
ACCEPTED_PROTOCOLS_HEADER = "X-Accepted-Stream-Protocol-Versions"

# The kubelet's --streaming-connection-idle-timeout default and its stream creation timeout
# (the second stream of a pair must arrive within it). Read at call time, so tests may lower them.
IDLE_TIMEOUT = 4 * 3600.0
STREAM_CREATION_TIMEOUT = 30.0
READ_CHUNK = 32 * 1024
# How many data frames a stream may hold before the session stops reading (spdystream
# hands each frame over unbuffered, so a slow pod slows its connection the same way).
STREAM_QUEUE = 64

_EOF = b""
_RESET = None


async def serve_port_forward(request: web.Request, dial: Dial) -> web.StreamResponse:
    pod, uid = _pod_identity(request)
    if request.headers.get("Upgrade", "").lower() == "websocket":
        offered = _header_list(request.headers.getall("Sec-WebSocket-Protocol", []))
        if TUNNEL_PROTOCOL in offered:
            return await _serve_tunnel(request, dial, pod, uid)
        return await _serve_channels(request, dial, pod, uid, offered)
    return await _serve_spdy(request, dial, pod, uid)


def _pod_identity(request: web.Request) -> tuple[str, str]:
    """The pod as kubelet names it in messages ("name_namespace", kubecontainer's full
    name) and the uid from the path, "" when the path has none."""
    info = request.match_info
    namespace, name, uid = info.get("namespace", ""), info.get("pod", ""), info.get("uid", "")
    if not name:
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["portForward"] and len(parts) >= 3:
            namespace, name = parts[1], parts[2]
            uid = parts[3] if len(parts) > 3 else ""
        elif "pods" in parts and parts.index("pods") + 1 < len(parts):
            name = parts[parts.index("pods") + 1]
            namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts else ""
    return f"{name}_{namespace}", uid


def _header_list(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def forward_error(port: int, pod: str, uid: str, err: BaseException) -> str:
    """Kubelet's message on the error stream when a port cannot be forwarded."""
    if isinstance(err, OSError) and err.errno:
        reason = (f"failed to connect to localhost:{port} inside the pod's network namespace: "
                  f"connect: {os.strerror(err.errno).lower()}")
    else:  # the dial's own words (no sandbox, ...)
        reason = str(err)
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {reason}"


# --------------------------------------------------------------------------- SPDY


async def _serve_spdy(request: web.Request, dial: Dial, pod: str, uid: str) -> web.StreamResponse:
    offered = _header_list(request.headers.getall(PROTOCOL_HEADER, []))
    if not offered:
        return web.Response(status=400, text=f"unable to upgrade: {PROTOCOL_HEADER} is required")
    if PORT_FORWARD_PROTOCOL not in offered:
        text = (f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                f"server accepts [{PORT_FORWARD_PROTOCOL}]")
        return web.Response(status=403, text=text, headers={ACCEPTED_PROTOCOLS_HEADER: PORT_FORWARD_PROTOCOL})
    connection = request.headers.get("Connection", "").lower()
    if "upgrade" not in connection or request.headers.get("Upgrade", "").lower() != SPDY_UPGRADE.lower():
        return web.Response(status=400, text="unable to upgrade: missing upgrade headers in request")
    response = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": SPDY_UPGRADE, PROTOCOL_HEADER: PORT_FORWARD_PROTOCOL})
    response.force_close()
    await response.prepare(request)
    wire = _UpgradedWire(request)
    try:
        await _SpdyPortForward(wire, dial, pod, uid).run()
    finally:
        wire.close()
    return response


async def _serve_tunnel(request: web.Request, dial: Dial, pod: str, uid: str) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=[TUNNEL_PROTOCOL], autoping=True)
    await ws.prepare(request)
    wire = _TunnelWire(ws)
    try:
        await _SpdyPortForward(wire, dial, pod, uid).run()
    finally:
        await ws.close()
    return ws


class _UpgradedWire:
    """The raw byte stream of an HTTP connection after our 101: aiohttp hands the bytes
    that follow an upgrade to whatever parser is set on its protocol."""

    # Reading from the socket pauses while this many chunks wait, so a client cannot fill
    # memory while the session is held up by a slow pod.
    HIGH_WATER = 64

    def __init__(self, request: web.Request) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._protocol = request.protocol
        self._paused = False
        self._writer = StreamWriter(request.protocol, asyncio.get_running_loop())
        self._protocol.set_parser(self)  # type: ignore[arg-type]

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._queue.put_nowait(bytes(data))
        transport = self._protocol.transport
        if self._queue.qsize() >= self.HIGH_WATER and transport is not None and not self._paused:
            self._paused = True
            transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._queue.put_nowait(_EOF)

    async def read(self) -> bytes:
        data = await self._queue.get()
        transport = self._protocol.transport
        if self._paused and self._queue.qsize() < self.HIGH_WATER // 4 and transport is not None:
            self._paused = False
            transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        await self._writer.write(data)

    def close(self) -> None:
        transport = self._protocol.transport
        if transport is not None:
            transport.close()


class _TunnelWire:
    """SPDY bytes carried in WebSocket binary messages (client-go's TunnelingConnection:
    each write is one message, reads run across message boundaries)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def read(self) -> bytes:
        message = await self._ws.receive()
        if message.type == aiohttp.WSMsgType.BINARY:
            return message.data or await self.read()
        if message.type == aiohttp.WSMsgType.TEXT:
            log.warning("port-forward tunnel: text message on a SPDY tunnel, closing")
        return _EOF

    async def write(self, data: bytes) -> None:
        await self._ws.send_bytes(data)


class _IdleClock:
    """Kubelet's streaming idle timeout: a connection with no traffic either way for
    IDLE_TIMEOUT is closed."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def touch(self) -> None:
        self._last = time.monotonic()

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await a read; TimeoutError once the connection has idled out meanwhile."""
        task = asyncio.ensure_future(awaitable)
        try:
            while True:
                remaining = self._last + IDLE_TIMEOUT - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError()
                done, _ = await asyncio.wait({task}, timeout=remaining)
                if done:
                    return task.result()
        finally:
            task.cancel()


@dataclass
class _Pair:
    request_id: str
    data_id: int = 0
    error_id: int = 0
    port: int = 0
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class _SpdyPortForward:
    """One SPDY session: streams paired by requestID, one forwarding task per pair."""

    def __init__(self, wire: _UpgradedWire | _TunnelWire, dial: Dial, pod: str, uid: str) -> None:
        self._wire, self._dial, self._pod, self._uid = wire, dial, pod, uid
        self._session = spdy.ServerSession()
        self._write_lock = asyncio.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._inbound: dict[int, asyncio.Queue[bytes | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = _IdleClock()
        self._drained_event = asyncio.Event()

    async def run(self) -> None:
        try:
            while (data := await self._read()) != _EOF:
                events = self._session.receive(data)
                for event in events:
                    await self._on_event(event)
                await self.flush()
                if any(isinstance(e, spdy.SessionEnded) for e in events) or self._drained():
                    break
        except (TimeoutError, ConnectionError) as err:
            log.info("port-forward to %s: connection ended: %s", self._pod, err or "idle timeout")
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read(self) -> bytes:
        """The next bytes from the client, or EOF once a client that sent GOAWAY has no
        forwarding left. spdystream moves its deadline on every read and write, so the
        idle clock counts both."""
        read = asyncio.ensure_future(self._idle.run(self._wire.read()))
        drained = asyncio.ensure_future(self._drained_event.wait())
        try:
            await asyncio.wait({read, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            finished = read.done()
            if not finished:
                read.cancel()
        if not finished:
            return _EOF
        self._idle.touch()
        return read.result()

    def _drained(self) -> bool:
        """After the client's GOAWAY: true once no pair is waiting or forwarding."""
        if self._session.gone_away and not self._pairs and not self._inbound:
            self._drained_event.set()
        return self._drained_event.is_set()

    async def flush(self) -> None:
        async with self._write_lock:
            out = self._session.data_to_send()
            if out:
                self._idle.touch()
                await self._wire.write(out)

    async def _on_event(self, event: spdy.Event) -> None:
        if isinstance(event, spdy.StreamOpened):
            self._on_stream(event)
        elif isinstance(event, spdy.DataReceived):
            queue = self._inbound.get(event.stream_id)
            if queue is not None:
                await queue.put(event.data)
        elif isinstance(event, spdy.StreamEnded | spdy.StreamReset):
            queue = self._inbound.get(event.stream_id)
            if queue is not None:
                await queue.put(_EOF if isinstance(event, spdy.StreamEnded) else _RESET)

    def _on_stream(self, event: spdy.StreamOpened) -> None:
        problem = _stream_header_problem(event.headers)
        if problem:
            log.warning("port-forward to %s: stream %d rejected: %s", self._pod, event.stream_id, problem)
            self._session.reset(event.stream_id)
            return
        self._session.reply(event.stream_id)
        stream_type = spdy.header_value(event.headers, "streamType")
        request_id = _request_id(event.headers, event.stream_id, stream_type)
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _Pair(request_id)
            self._spawn(self._monitor(pair))
        if stream_type == "error":
            if pair.error_id:
                self._duplicate(pair, "error stream already assigned")
                return
            pair.error_id = event.stream_id
        else:
            if pair.data_id:
                self._duplicate(pair, "data stream already assigned")
                return
            pair.data_id = event.stream_id
            pair.port = int(spdy.header_value(event.headers, "port"))
            self._inbound[event.stream_id] = asyncio.Queue(STREAM_QUEUE)
        if pair.data_id and pair.error_id:
            pair.complete.set()
            self._spawn(self._forward(pair))

    def _duplicate(self, pair: _Pair, reason: str) -> None:
        message = f"error processing stream for request {pair.request_id}: {reason}"
        log.warning("port-forward to %s: %s", self._pod, message)
        if pair.error_id:
            self._session.send_data(pair.error_id, message.encode())

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _monitor(self, pair: _Pair) -> None:
        """Drop a pair whose second stream never comes, telling the client why."""
        try:
            await asyncio.wait_for(pair.complete.wait(), STREAM_CREATION_TIMEOUT)
        except TimeoutError:
            message = f"(conn={self._pod}, request={pair.request_id}) timed out waiting for streams"
            log.warning("port-forward: %s", message)
            if pair.error_id:
                self._session.send_data(pair.error_id, message.encode())
            for stream_id in (pair.error_id, pair.data_id):
                if stream_id:
                    self._session.finish(stream_id)
            _release(self._inbound.pop(pair.data_id, None))
            with contextlib.suppress(ConnectionError):
                await self.flush()
        finally:
            self._pairs.pop(pair.request_id, None)
            self._drained()

    async def _forward(self, pair: _Pair) -> None:
        inbound = self._inbound[pair.data_id]
        try:
            try:
                reader, writer = await self._dial(pair.port)
            except OSError as err:
                message = forward_error(pair.port, self._pod, self._uid, err)
                log.warning("port-forward: %s", message)
                self._session.send_data(pair.error_id, message.encode())
                return
            await self._splice(pair, inbound, reader, writer)
        finally:
            _release(self._inbound.pop(pair.data_id, None))
            self._session.finish(pair.data_id)
            self._session.finish(pair.error_id)
            with contextlib.suppress(ConnectionError):
                await self.flush()
            self._drained()

    async def _splice(self, pair: _Pair, inbound: asyncio.Queue[bytes | None],
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy both ways. The client's FIN half-closes the pod connection and the pod's
        answer keeps flowing; the pod closing, or a reset, ends the pair."""
        await _splice(_client_to_pod(inbound, writer), self._pod_to_client(pair, reader), writer)

    async def _pod_to_client(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(READ_CHUNK):
            self._session.send_data(pair.data_id, chunk)
            await self.flush()


async def _splice(to_pod_copy: Awaitable[bytes | None], from_pod_copy: Awaitable[None],
                  writer: asyncio.StreamWriter) -> None:
    """Run both copies of one forwarded connection; it ends when the pod side ends, the
    client resets, or either side fails. A client's half-close alone does not end it."""
    to_pod = asyncio.ensure_future(to_pod_copy)
    from_pod = asyncio.ensure_future(from_pod_copy)
    try:
        await asyncio.wait({to_pod, from_pod}, return_when=asyncio.FIRST_COMPLETED)
        if not from_pod.done() and _half_closed(to_pod):
            await from_pod
    except ConnectionError as err:
        log.info("port-forward: pod connection ended: %s", err)
    finally:
        for task in (to_pod, from_pod):
            task.cancel()
        await asyncio.gather(to_pod, from_pod, return_exceptions=True)
        writer.close()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await writer.wait_closed()


def _half_closed(to_pod: asyncio.Future[bytes | None]) -> bool:
    return not to_pod.cancelled() and to_pod.exception() is None and to_pod.result() == _EOF


def _release(queue: asyncio.Queue[bytes | None] | None) -> None:
    """Empty the queue of a stream nobody will read any more, so a session blocked on
    putting into it goes on (later data for the stream is dropped: it is no longer listed)."""
    while queue is not None and not queue.empty():
        queue.get_nowait()


async def _client_to_pod(inbound: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter) -> bytes | None:
    while True:
        chunk = await inbound.get()
        if chunk is _RESET:
            writer.transport.abort()
            return _RESET
        if chunk == _EOF:
            if writer.can_write_eof():
                writer.write_eof()
            return _EOF
        writer.write(chunk)
        await writer.drain()


def _stream_header_problem(headers: spdy.Headers) -> str:
    """Why kubelet's httpStreamReceived refuses a stream, "" when it does not."""
    port = spdy.header_value(headers, "port")
    if not port:
        return '"port" header is required'
    if not port.isdigit() or int(port) > 65535:
        return f"unable to parse {port!r} as a port"
    if int(port) < 1:
        return f"port {port!r} must be > 0"
    stream_type = spdy.header_value(headers, "streamType")
    if not stream_type:
        return '"streamType" header is required'
    if stream_type not in ("error", "data"):
        return f"invalid stream type {stream_type!r}"
    return ""


def _request_id(headers: spdy.Headers, stream_id: int, stream_type: str) -> str:
    """The pair a stream belongs to. Clients older than the requestID header open error
    then data streams with consecutive odd ids; kubelet pairs those by id, as here."""
    request_id = spdy.header_value(headers, "requestID")
    if request_id:
        return request_id
    return str(stream_id if stream_type == "error" else stream_id - 2)


# ------------------------------------------------------ WebSocket channel protocol


def _ports_from_query(request: web.Request) -> list[int]:
    values = request.query.getall("ports", [])
    if not values:
        raise ValueError('query parameter "ports" is required')
    ports = []
    for value in values:
        if not value:
            raise ValueError('query parameter "ports" cannot be empty')
        for text in value.split(","):
            if not text.isdigit() or int(text) > 65535:
                raise ValueError(f"unable to parse {value!r} as a port")
            if int(text) < 1:
                raise ValueError(f"port {value!r} must be > 0")
            ports.append(int(text))
    return ports


async def _serve_channels(request: web.Request, dial: Dial, pod: str, uid: str,
                          offered: list[str]) -> web.StreamResponse:
    try:
        ports = _ports_from_query(request)
    except ValueError as err:
        return web.Response(status=400, text=str(err))
    supported = [V4_BINARY, V4_BASE64]
    if offered and not set(offered) & set(supported):
        text = f"requested protocol(s) are not supported: {offered}; supports {[''] + supported}"
        return web.Response(status=400, text=text)
    ws = web.WebSocketResponse(protocols=supported, autoping=True)
    await ws.prepare(request)
    channels = _Channels(ws, base64_text=ws.ws_protocol == V4_BASE64)
    try:
        await channels.run(ports, dial, pod, uid)
    finally:
        await ws.close()
    return ws


class _Channels:
    """wsstream's channel framing: one byte of channel (a digit and base64 text for the
    base64 protocol) before each message's data."""

    def __init__(self, ws: web.WebSocketResponse, base64_text: bool) -> None:
        self._ws, self._base64 = ws, base64_text
        self._inbound: dict[int, asyncio.Queue[bytes | None]] = {}
        self._idle = _IdleClock()

    async def send(self, channel: int, data: bytes) -> None:
        self._idle.touch()
        if self._base64:
            await self._ws.send_str(str(channel) + base64.b64encode(data).decode("ascii"))
        else:
            await self._ws.send_bytes(encode_data(channel, data))

    async def run(self, ports: list[int], dial: Dial, pod: str, uid: str) -> None:
        for index, port in enumerate(ports):
            self._inbound[2 * index] = asyncio.Queue(STREAM_QUEUE)
            prefix = port.to_bytes(2, "little")
            await self.send(2 * index, prefix)
            await self.send(2 * index + 1, prefix)
        forwards = asyncio.gather(*(
            self._forward(2 * index, port, dial, pod, uid) for index, port in enumerate(ports)))
        reading = asyncio.ensure_future(self._read())
        try:
            await asyncio.wait([forwards, reading], return_when=asyncio.FIRST_COMPLETED)
        finally:
            reading.cancel()
            forwards.cancel()
            await asyncio.gather(forwards, reading, return_exceptions=True)

    async def _read(self) -> None:
        """Client messages to their data channels until the socket closes or idles."""
        try:
            while True:
                message = await self._idle.run(self._ws.receive())
                self._idle.touch()
                if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    return
                channel, data = self._decode(message.data)
                queue = self._inbound.get(channel)
                if queue is not None and data:
                    await queue.put(data)
        except TimeoutError:
            log.info("port-forward websocket idle for %ss, closing", IDLE_TIMEOUT)

    def _decode(self, payload: bytes | str) -> tuple[int, bytes]:
        """As wsstream reads a message, text or binary frame alike: its bytes are the channel
        byte and the data, or for the base64 protocol a channel digit and base64 text."""
        data = payload.encode() if isinstance(payload, str) else payload
        if not data:
            return -1, b""
        if not self._base64:
            return data[0], data[1:]
        if not data[:1].isdigit():
            return -1, b""
        try:
            return int(data[:1]), base64.b64decode(data[1:])
        except ValueError:  # binascii.Error is one
            return -1, b""

    async def _forward(self, data_channel: int, port: int, dial: Dial, pod: str, uid: str) -> None:
        try:
            reader, writer = await dial(port)
        except OSError as err:
            message = forward_error(port, pod, uid, err)
            log.warning("port-forward: %s", message)
            await self.send(data_channel + 1, message.encode())
            return
        try:
            await _splice(_client_to_pod(self._inbound[data_channel], writer),
                          self._pod_to_client(data_channel, reader), writer)
        finally:
            _release(self._inbound.pop(data_channel, None))

    async def _pod_to_client(self, data_channel: int, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(READ_CHUNK):
            await self.send(data_channel, chunk)
