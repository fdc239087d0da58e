"""pods/exec over WebSocket: the channel protocol kubectl 1.32 speaks, and a handler that runs the command.

Upstream, kube-apiserver proxies exec to the kubelet, which streams it from the
container runtime. Here the API server reads the node's runtime state itself
(the Node's runtime-root annotation, as pods/log does) and runs the command in
the pod sandbox's namespaces.

The wire format (subprotocols v5.channel.k8s.io and v4.channel.k8s.io): every
binary message starts with a channel byte, then the payload. Channels are 0
stdin (client to server), 1 stdout, 2 stderr, 3 error (one JSON metav1.Status
when the command ends; the connection closes after it) and 4 resize (JSON
{"Width", "Height"}, client to server). v5 adds a control message: byte 255
then a channel number, meaning that channel is closed (kubectl sends it for
stdin at EOF; without it a v4 client's stdin never ends).

The first half of this module is pure (frames, options, statuses); the I/O is
in `handle_exec`.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import struct
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from svcnet.api import errors

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5 only: [255, channel] closes that channel
PROTOCOL_V5 = "v5.channel.k8s.io"
PROTOCOL_V4 = "v4.channel.k8s.io"
PROTOCOLS = (PROTOCOL_V5, PROTOCOL_V4)  # preference order, as kubelet lists them
READ_CHUNK = 32 * 1024
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def exit_code_of(returncode: int) -> int:
    """A shell's convention: 128+N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


# ---------------------------------------------------------------- finding the container

@dataclass(frozen=True)
class ExecTarget:
    infra: Any  # svcnet.kernel.process.ProcessId of the sandbox's infra process
    container: str
    env: dict[str, str]
    working_dir: str


def node_runtime_root(registry: Any, pod: Mapping[str, Any]) -> Path | None:
    """Where the pod's node keeps runtime state: its Node's runtime-root annotation."""
    from svcnet.agent.node import RUNTIME_ROOT_ANNOTATION
    from svcnet.api.resources import lookup

    node_name = (pod.get("spec") or {}).get("nodeName")
    nodes = lookup("", "v1", "nodes")
    if not node_name or nodes is None:
        return None
    try:
        node = registry.get(nodes, None, node_name)
    except errors.ApiError:
        return None
    root = ((node.get("metadata") or {}).get("annotations") or {}).get(RUNTIME_ROOT_ANNOTATION)
    return Path(root) if root else None


def find_target(pod: Mapping[str, Any], runtime_root: Path | None, container: str | None) -> ExecTarget:
    """The running container to exec in, or the ApiError kubectl shows ("unable to upgrade connection: ...")."""
    from svcnet.runtime.containers import RunState, Runtime
    from svcnet.runtime.sandbox import PodKey

    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    name = meta.get("name", "")
    containers = [c.get("name") for c in spec.get("containers") or []]
    names = containers + [c.get("name") for c in spec.get("initContainers") or []]
    if not container:
        default = (meta.get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        container = default if default in containers else (containers[0] if containers else "")
    if container not in names:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    if not spec.get("nodeName") or runtime_root is None:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    runtime = Runtime(runtime_root)
    sandbox = runtime.get_sandbox(PodKey.of(pod))
    status = runtime.status(sandbox, container) if sandbox is not None else None
    if sandbox is None or not sandbox.alive() or status is None or status.state is not RunState.RUNNING:
        raise errors.bad_request(f'container not found ("{container}")')
    try:
        saved = json.loads((sandbox.directory / container / f"{status.restart_count}.spec.json").read_text())
    except (OSError, ValueError):
        saved = {}
    return ExecTarget(sandbox.infra, container, dict(saved.get("env") or {}), str(saved.get("workingDir") or ""))


# ---------------------------------------------------------------- the handler (I/O)

async def handle_exec(request: web.Request, pod: Mapping[str, Any], runtime_root: Path | None) -> web.StreamResponse:
    """Serve pods/exec: validate, upgrade to WebSocket, run the command and stream it until it exits."""
    options = ExecOptions.from_query(request.query, request.query.getall("command", []))
    target = find_target(pod, runtime_root, options.container)
    protocol = negotiate(request.headers.get("Sec-WebSocket-Protocol"))
    if request.headers.get("Upgrade", "").lower() != "websocket" or protocol is None:
        # kubectl falls back to SPDY when the WebSocket upgrade fails; say plainly what is served
        raise errors.bad_request(f"exec is served over WebSocket only (subprotocols {', '.join(PROTOCOLS)})")
    ws = web.WebSocketResponse(protocols=(protocol,), autoping=True)
    await ws.prepare(request)
    terminal: int | None = None
    try:
        if options.tty:
            process, terminal = await _start_with_terminal(target, options)
        else:
            process = await _start(target, options)
    except OSError as exc:
        await _finish(ws, failure_status(f"failed to exec in container: {exc}"))
        return ws
    try:
        await _stream(ws, process, protocol, options, terminal)
    finally:
        if terminal is not None:
            os.close(terminal)
    return ws


async def _start(target: ExecTarget, options: ExecOptions) -> asyncio.subprocess.Process:
    from svcnet.kernel import process as linux
    from svcnet.runtime.sandbox import nsenter_argv

    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    fds = linux.open_namespaces(target.infra)
    try:
        return await asyncio.create_subprocess_exec(
            *nsenter_argv(fds, options.command, target.working_dir or None),
            stdin=pipe if options.stdin else devnull, stdout=pipe if options.stdout else devnull,
            stderr=pipe if options.stderr else devnull, env=target.env or {"PATH": DEFAULT_PATH},
            pass_fds=[fd for fd, _ in fds], start_new_session=True)
    finally:
        linux.close_all(fds)


async def _start_with_terminal(target: ExecTarget, options: ExecOptions) -> tuple[asyncio.subprocess.Process, int]:
    """The command on a new pseudo-terminal, which is its controlling terminal (`setsid --ctty`), as a
    runtime does for tty=true: stdin, stdout and stderr are all the terminal; we keep the master side."""
    from svcnet.kernel import process as linux
    from svcnet.runtime.sandbox import nsenter_argv

    setsid = shutil.which("setsid")
    if setsid is None:
        raise OSError("setsid (util-linux) is needed for a TTY")
    master, child_side = os.openpty()
    fds = linux.open_namespaces(target.infra)
    try:
        # not start_new_session: setsid must not be a group leader, or it forks and we lose its exit code
        process = await asyncio.create_subprocess_exec(
            *nsenter_argv(fds, [setsid, "--ctty", "--wait", *options.command], target.working_dir or None),
            stdin=child_side, stdout=child_side, stderr=child_side,
            env={"TERM": "xterm", **(target.env or {"PATH": DEFAULT_PATH})},
            pass_fds=[fd for fd, _ in fds])
    except OSError:
        os.close(master)
        raise
    finally:
        os.close(child_side)  # only the command holds it now: its exit ends our reads (EIO)
        linux.close_all(fds)
    return process, master


class _TerminalReader:
    """Reads a pty master: what the command wrote, then b"" once its side is closed.

    Not asyncio's pipe transport: the EIO that ends a pty reaches a StreamReader as an exception
    that hides the last output still buffered there.
    """

    def __init__(self, master: int) -> None:
        self.master = master
        os.set_blocking(master, False)

    async def read(self, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self.master, size)
            except BlockingIOError:
                pass
            except OSError:  # EIO: every holder of the terminal's other side has closed it
                return b""
            readable = loop.create_future()
            loop.add_reader(self.master, _wake, readable)
            try:
                await readable
            finally:
                loop.remove_reader(self.master)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # the fd may be reported readable again before the waiting task runs
        waiter.set_result(None)


async def _terminal_streams(master: int) -> tuple[_TerminalReader, asyncio.StreamWriter]:
    """A reader and a writer (over a duplicate) for a pty master."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(os.dup(master), "wb", 0))
    return _TerminalReader(master), asyncio.StreamWriter(transport, protocol, None, loop)


def window_size(resize: Resize) -> bytes:
    """struct winsize (rows, columns, xpixel, ypixel) for TIOCSWINSZ."""
    return struct.pack("HHHH", resize.height, resize.width, 0, 0)


async def _stream(ws: web.WebSocketResponse, process: asyncio.subprocess.Process, protocol: str,
                  options: ExecOptions, terminal: int | None = None) -> None:
    stdout_reader: asyncio.StreamReader | _TerminalReader | None = process.stdout
    stdin_writer = process.stdin
    if terminal is not None:
        stdout_reader, stdin_writer = await _terminal_streams(terminal)
    send_lock = asyncio.Lock()  # one writer at a time: stdout and stderr pumps share the socket

    async def pump(reader: asyncio.StreamReader | _TerminalReader | None, channel: int) -> None:
        if reader is None:
            return
        while chunk := await reader.read(READ_CHUNK):
            async with send_lock:
                with contextlib.suppress(ConnectionError):
                    await ws.send_bytes(encode_data(channel, chunk))

    async def receive() -> None:
        """Client to process: stdin data, stdin close (v5); ends when the client goes away."""
        async for message in ws:
            if message.type != WSMsgType.BINARY:
                continue
            try:
                frame = decode_frame(message.data, protocol)
            except ProtocolError:
                continue
            stdin = stdin_writer
            if isinstance(frame, Resize) and terminal is not None and frame.width and frame.height:
                fcntl.ioctl(terminal, termios.TIOCSWINSZ, window_size(frame))
            elif isinstance(frame, Data) and frame.channel == STDIN and stdin is not None:
                try:
                    stdin.write(frame.payload)
                    await stdin.drain()
                except ConnectionError:
                    pass  # the command stopped reading; its exit is what matters
            elif isinstance(frame, Closed) and frame.channel == STDIN and stdin is not None:
                if terminal is not None:  # a terminal has no end of input: send its EOF character
                    with contextlib.suppress(ConnectionError):
                        stdin.write(b"\x04")
                else:
                    stdin.close()

    receiving = asyncio.create_task(receive())
    outputs = asyncio.gather(pump(stdout_reader, STDOUT), pump(process.stderr, STDERR))
    waiting = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({waiting, receiving}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():  # the client left before the command ended: end it, as kubelet's stream does
            _kill_group(process.pid)
            await waiting
            return
        await outputs  # everything written before exit reaches the client before the status does
        await _finish(ws, exit_status(exit_code_of(waiting.result()), options.command), send_lock)
    finally:
        if not waiting.done():
            _kill_group(process.pid)
        receiving.cancel()
        outputs.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await asyncio.gather(receiving, outputs, waiting)
        if terminal is not None and stdin_writer is not None:
            stdin_writer.close()
        await ws.close()


async def _finish(ws: web.WebSocketResponse, status: dict[str, Any], lock: asyncio.Lock | None = None) -> None:
    """Write the Status on the error channel and close: client-go reads the error channel to its end."""
    async with lock or asyncio.Lock():
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(encode_data(ERROR, json.dumps(status).encode()))
    await ws.close()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
