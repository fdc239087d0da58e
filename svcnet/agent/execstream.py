"""kubelet's /exec and /attach over WebSocket: the channel protocol kubectl speaks, and the relay.

The API server proxies pods/exec and pods/attach here (kubelet's streaming
server); the agent starts the command (or attaches to the container's output)
and this module relays the session's streams over the WebSocket.

The wire format (subprotocols v5.channel.k8s.io and v4.channel.k8s.io): every
binary message starts with a channel byte, then the payload. Channels are 0
stdin (client to server), 1 stdout, 2 stderr, 3 error (one JSON metav1.Status
when the command ends; the connection closes after it) and 4 resize (JSON
{"Width", "Height"}, client to server). v5 adds a control message: byte 255
then a channel number, meaning that channel is closed (kubectl sends it for
stdin at EOF; without it a v4 client's stdin never ends).

The first half of this module is pure (frames, options, statuses); the I/O is
in `serve_stream`, over the WebSocket and a `StreamSession`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web


class Reader(Protocol):
    async def read(self, size: int) -> bytes:
        """Up to size bytes; b"" at the end."""


class StreamSession(Protocol):
    """A command running in a container (or a container attached to), with the streams asked for."""

    stdout: Reader | None  # with a terminal: everything the command writes
    stderr: Reader | None

    async def write_stdin(self, data: bytes) -> None:
        """Input for the command; dropped if it takes none or stopped reading."""

    def close_stdin(self) -> None:
        """End of input (on a terminal: its EOF character)."""

    def resize(self, width: int, height: int) -> None:
        """The client's terminal size (only a session with a terminal has one)."""

    async def wait(self) -> int:
        """The command's exit code (128+N when killed by signal N)."""

    def kill(self) -> None:
        """End the command and everything it started (the client went away)."""

    def close(self) -> None:
        """Release what the session holds once it is over."""

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5 only: [255, channel] closes that channel
PROTOCOL_V5 = "v5.channel.k8s.io"
PROTOCOL_V4 = "v4.channel.k8s.io"
PROTOCOLS = (PROTOCOL_V5, PROTOCOL_V4)  # preference order, as kubelet lists them
READ_CHUNK = 32 * 1024


# ---------------------------------------------------------------- protocol (pure)

@dataclass(frozen=True)
class Data:
    """Bytes on a stream channel."""
    channel: int
    payload: bytes


@dataclass(frozen=True)
class Closed:
    """v5: the peer closed one channel (for stdin: end of input)."""
    channel: int


@dataclass(frozen=True)
class Resize:
    width: int
    height: int


Frame = Data | Closed | Resize


class ProtocolError(ValueError):
    pass


def encode_data(channel: int, payload: bytes) -> bytes:
    return bytes((channel,)) + payload


def encode_close(channel: int) -> bytes:
    return bytes((CLOSE, channel))


def decode_frame(message: bytes, protocol: str = PROTOCOL_V5) -> Frame:
    """One binary WebSocket message from the client, as a frame."""
    if not message:
        raise ProtocolError("empty message: no channel byte")
    channel, payload = message[0], bytes(message[1:])
    if channel == CLOSE:
        if protocol != PROTOCOL_V5:
            raise ProtocolError(f"close message is not part of {protocol}")
        if len(payload) != 1:
            raise ProtocolError("close message must name exactly one channel")
        return Closed(payload[0])
    if channel == RESIZE:
        try:
            size = json.loads(payload)
            return Resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
        except (ValueError, TypeError, AttributeError):
            raise ProtocolError(f"invalid resize message: {payload!r}") from None
    return Data(channel, payload)


def exit_status(exit_code: int, argv: Sequence[str]) -> dict[str, Any]:
    """The metav1.Status kubelet writes on the error channel when the command ends.

    client-go turns NonZeroExitCode with an ExitCode cause into an exit error carrying the code, which
    kubectl prints as "command terminated with exit code N" and exits with.
    """
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
                   f"[{' '.join(argv)}], exit code {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def failure_status(message: str) -> dict[str, Any]:
    """A Status for an exec that could not run (no exit code to report)."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}


@dataclass(frozen=True)
class StreamOptions:
    """What an exec or attach asks for: the command (exec only) and which streams."""
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @staticmethod
    def from_query(query: Mapping[str, str], commands: Sequence[str], *, exec_: bool = True) -> StreamOptions:
        """The options from the query (command repeats, one argv word each); ValueError with kubelet's
        message when they ask for nothing."""
        def flag(name: str) -> bool:
            return query.get(name, "").lower() in ("true", "1")

        options = StreamOptions(tuple(commands), flag("stdin"), flag("stdout"), flag("stderr"), flag("tty"))
        if exec_ and not options.command:
            raise ValueError("you must specify at least 1 command")
        if not (options.stdin or options.stdout or options.stderr):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        return options


def negotiate(offered: str | None) -> str | None:
    """The subprotocol to use from a Sec-WebSocket-Protocol header: the client's first that we speak."""
    for name in (part.strip() for part in (offered or "").split(",")):
        if name in PROTOCOLS:
            return name
    return None


# ---------------------------------------------------------------- the relay (I/O)

def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def serve_stream(request: web.Request, protocol: str, options: StreamOptions,
                       start: Callable[[], Awaitable[StreamSession]]) -> web.StreamResponse:
    """Upgrade to WebSocket, start the session and relay it until it ends (or the client leaves)."""
    ws = web.WebSocketResponse(protocols=(protocol,), autoping=True)
    await ws.prepare(request)
    try:
        session = await start()
    except OSError as exc:
        await _finish(ws, failure_status(f"failed to exec in container: {exc}"))
        return ws
    try:
        await _stream(ws, session, protocol, options)
    finally:
        session.close()
    return ws


async def _stream(ws: web.WebSocketResponse, session: StreamSession, protocol: str, options: StreamOptions) -> None:
    send_lock = asyncio.Lock()  # one writer at a time: stdout and stderr pumps share the socket

    async def pump(reader: Reader | None, channel: int) -> None:
        if reader is None:
            return
        while chunk := await reader.read(READ_CHUNK):
            async with send_lock:
                with contextlib.suppress(ConnectionError):
                    await ws.send_bytes(encode_data(channel, chunk))

    async def receive() -> None:
        """Client to process: stdin data, stdin close (v5), resize; ends when the client goes away."""
        async for message in ws:
            # Text frames too: the official Python client sends str stdin as text, and kubelet's
            # websocket reader takes a message of either kind as its bytes.
            if message.type == WSMsgType.TEXT:
                data = message.data.encode()
            elif message.type == WSMsgType.BINARY:
                data = message.data
            else:
                continue
            try:
                frame = decode_frame(data, protocol)
            except ProtocolError:
                continue
            if isinstance(frame, Resize):
                session.resize(frame.width, frame.height)
            elif isinstance(frame, Data) and frame.channel == STDIN:
                await session.write_stdin(frame.payload)
            elif isinstance(frame, Closed) and frame.channel == STDIN:
                session.close_stdin()

    receiving = asyncio.create_task(receive())
    outputs = asyncio.gather(pump(session.stdout, STDOUT), pump(session.stderr, STDERR))
    waiting = asyncio.create_task(session.wait())
    try:
        await asyncio.wait({waiting, receiving}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():  # the client left before the command ended: end it, as kubelet's stream does
            session.kill()
            await waiting
            return
        await outputs  # everything written before exit reaches the client before the status does
        await _finish(ws, exit_status(waiting.result(), options.command), send_lock)
    finally:
        if not waiting.done():
            session.kill()
        receiving.cancel()
        outputs.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await asyncio.gather(receiving, outputs, waiting)
        await ws.close()


async def _finish(ws: web.WebSocketResponse, status: dict[str, Any], lock: asyncio.Lock | None = None) -> None:
    """Write the Status on the error channel and close: client-go reads the error channel to its end."""
    async with lock or asyncio.Lock():
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(encode_data(ERROR, json.dumps(status).encode()))
    await ws.close()
