"""pods/exec over WebSocket: the channel protocol kubectl 1.32 speaks, and a handler that runs the command.

Upstream, kube-apiserver proxies exec to the kubelet, which streams it from the
container runtime. Here the API server starts the command through its NodeAccess
(svcnet.apiserver.nodeaccess) and relays the session's streams.

The wire format (subprotocols v5.channel.k8s.io and v4.channel.k8s.io): every
binary message starts with a channel byte, then the payload. Channels are 0
stdin (client to server), 1 stdout, 2 stderr, 3 error (one JSON metav1.Status
when the command ends; the connection closes after it) and 4 resize (JSON
{"Width", "Height"}, client to server). v5 adds a control message: byte 255
then a channel number, meaning that channel is closed (kubectl sends it for
stdin at EOF; without it a v4 client's stdin never ends).

The first half of this module is pure (frames, options, statuses); the I/O is
in `handle_exec`, over the WebSocket and the ExecSession.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from svcnet.api import errors, objects
from svcnet.apiserver.nodeaccess import ExecSession, NodeAccess, Reader, RunningContainer

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
class ExecOptions:
    command: tuple[str, ...]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @staticmethod
    def from_query(query: Mapping[str, str], commands: Sequence[str]) -> ExecOptions:
        """PodExecOptions from the query (command repeats, one argv word each); validated as upstream."""
        def flag(name: str) -> bool:
            return query.get(name, "").lower() in ("true", "1")

        options = ExecOptions(tuple(commands), query.get("container") or None, flag("stdin"), flag("stdout"),
                              flag("stderr"), flag("tty"))
        if not options.command:
            raise errors.bad_request("you must specify at least 1 command")
        if not (options.stdin or options.stdout or options.stderr):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        return options


def negotiate(offered: str | None) -> str | None:
    """The subprotocol to use from a Sec-WebSocket-Protocol header: the client's first that we speak."""
    for name in (part.strip() for part in (offered or "").split(",")):
        if name in PROTOCOLS:
            return name
    return None


# ---------------------------------------------------------------- finding the container

def exec_container(pod: Mapping[str, Any], container: str | None) -> str:
    """The container to exec in: the one asked for, or the default-container annotation's, or the first."""
    spec = objects.spec_of(pod)
    containers = [c.get("name") for c in spec.get("containers") or []]
    names = containers + [c.get("name") for c in spec.get("initContainers") or []]
    if not container:
        default = objects.annotations_of(pod).get("kubectl.kubernetes.io/default-container")
        container = default if default in containers else (containers[0] if containers else "")
    if container not in names:
        raise errors.bad_request(f"container {container} is not valid for pod {objects.name_of(pod)}")
    return container


def find_target(pod: Mapping[str, Any], node: Mapping[str, Any] | None, access: NodeAccess,
                container: str | None) -> RunningContainer:
    """The running container to exec in, or the ApiError kubectl shows ("unable to upgrade connection: ...")."""
    name = objects.name_of(pod)
    container = exec_container(pod, container)
    if not objects.spec_of(pod).get("nodeName") or node is None or not access.reaches(node):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    running = access.running_container(node, pod, container)
    if running is None:
        raise errors.bad_request(f'container not found ("{container}")')
    return running


# ---------------------------------------------------------------- the handler (I/O)

async def handle_exec(request: web.Request, pod: Mapping[str, Any], node: Mapping[str, Any] | None,
                      access: NodeAccess) -> web.StreamResponse:
    """Serve pods/exec: validate, upgrade to WebSocket, run the command and stream it until it exits."""
    options = ExecOptions.from_query(request.query, request.query.getall("command", []))
    target = find_target(pod, node, access, options.container)
    protocol = negotiate(request.headers.get("Sec-WebSocket-Protocol"))
    if request.headers.get("Upgrade", "").lower() != "websocket" or protocol is None:
        # kubectl falls back to SPDY when the WebSocket upgrade fails; say plainly what is served
        raise errors.bad_request(f"exec is served over WebSocket only (subprotocols {', '.join(PROTOCOLS)})")
    ws = web.WebSocketResponse(protocols=(protocol,), autoping=True)
    await ws.prepare(request)
    try:
        session = await target.exec(options.command, stdin=options.stdin, stdout=options.stdout,
                                    stderr=options.stderr, tty=options.tty)
    except OSError as exc:
        await _finish(ws, failure_status(f"failed to exec in container: {exc}"))
        return ws
    try:
        await _stream(ws, session, protocol, options)
    finally:
        session.close()
    return ws


async def _stream(ws: web.WebSocketResponse, session: ExecSession, protocol: str, options: ExecOptions) -> None:
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
            if message.type != WSMsgType.BINARY:
                continue
            try:
                frame = decode_frame(message.data, protocol)
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
