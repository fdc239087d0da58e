"""What kubelet's API reaches in a pod on this node: its containers' logs, commands run in it,
its output to attach to and its network namespace (for port-forward).

The agent's kubelet server (kubeletserver.py) asks here; the runtime's files say
which sandbox holds the pod, where each container instance logs, and which
infra process holds the pod's namespaces. Commands run in those namespaces
through nsenter, with the container's environment and working directory.
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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.api.podlogs import LogOptions
from svcnet.kernel import process as linux
from svcnet.kernel.process import ProcessId
from svcnet.runtime import logs
from svcnet.runtime.containers import RunState, Runtime
from svcnet.runtime.sandbox import PodKey, Sandbox, nsenter_argv

Obj = Mapping[str, Any]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PodFiles:
    """The pods of this node, through its runtime's state."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def sandbox(self, pod: Obj) -> Sandbox | None:
        return self.runtime.get_sandbox(PodKey.of(pod))

    def container_log(self, pod: Obj, container: str, *, previous: bool) -> ContainerLogFile | None:
        """The log of the container's latest instance (or the one before, with previous); None when the
        pod has no sandbox here (yet); LookupError with the message kubectl prints when there is no such log."""
        sandbox = self.sandbox(pod)
        if sandbox is None:
            return None
        path = self.runtime.log_path(sandbox, container, previous=previous)  # PreviousLogNotFound too
        return ContainerLogFile(self.runtime, sandbox, container, path)

    def running_container(self, pod: Obj, container: str) -> PodContainer | None:
        """The container if it runs now, else None."""
        sandbox = self.sandbox(pod)
        if sandbox is None:
            return None
        status = self.runtime.status(sandbox, container)
        if not sandbox.alive() or status is None or status.state is not RunState.RUNNING:
            return None
        try:
            saved = json.loads((sandbox.directory / container / f"{status.restart_count}.spec.json").read_text())
        except (OSError, ValueError):
            saved = {}
        return PodContainer(sandbox.infra, dict(saved.get("env") or {}), str(saved.get("workingDir") or ""),
                            ContainerLogFile(self.runtime, sandbox, container,
                                             self.runtime.log_path(sandbox, container)))

    def network_namespace(self, pod: Obj) -> str | None:
        """The pod's network namespace (a path), while its sandbox lives."""
        sandbox = self.sandbox(pod)
        if sandbox is None or not sandbox.alive():
            return None
        return sandbox.netns_of_infra


# ---------------------------------------------------------------- logs

@dataclass(frozen=True)
class ContainerLogFile:
    """One container instance's CRI log file."""
    runtime: Runtime
    sandbox: Sandbox
    container: str
    path: Path

    async def read(self, options: LogOptions) -> bytes:
        return await asyncio.to_thread(logs.read_log, self.path, options)

    async def follow(self, options: LogOptions, pod_gone: Callable[[], bool]) -> AsyncIterator[bytes]:
        instance = int(self.path.name.split(".")[0])

        def closed() -> bool:
            return self.runtime.log_closed(self.sandbox, self.container, instance) or pod_gone()

        async for chunk in logs.stream_log(self.path, options, log_closed=closed):
            yield chunk



# ---------------------------------------------------------------- exec

@dataclass(frozen=True)
class PodContainer:
    """A running container: its sandbox's infra process (which holds the namespaces), its settings
    and its current instance's log (what attach relays)."""
    infra: ProcessId
    env: dict[str, str]
    working_dir: str
    log: ContainerLogFile | None = None

    def attach(self) -> AttachSession:
        """The container's output from now on, until it exits (its stdin is not kept open: none is)."""
        assert self.log is not None
        return AttachSession(self.log)

    async def exec(self, command: Sequence[str], *, stdin: bool, stdout: bool, stderr: bool,
                   tty: bool) -> ProcessSession:
        if tty:
            return await self._start_with_terminal(command)
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        fds = linux.open_namespaces(self.infra)
        try:
            process = await asyncio.create_subprocess_exec(
                *nsenter_argv(fds, command, self.working_dir or None),
                stdin=pipe if stdin else devnull, stdout=pipe if stdout else devnull,
                stderr=pipe if stderr else devnull, env=self.env or {"PATH": DEFAULT_PATH},
                pass_fds=[fd for fd, _ in fds], start_new_session=True)
        finally:
            linux.close_all(fds)
        return ProcessSession(process, process.stdout, process.stderr, process.stdin)

    async def _start_with_terminal(self, command: Sequence[str]) -> ProcessSession:
        """The command on a new pseudo-terminal, which is its controlling terminal (`setsid --ctty`), as a
        runtime does for tty=true: stdin, stdout and stderr are all the terminal; we keep the master side."""
        setsid = shutil.which("setsid")
        if setsid is None:
            raise OSError("setsid (util-linux) is needed for a TTY")
        master, child_side = os.openpty()
        fds = linux.open_namespaces(self.infra)
        try:
            # not start_new_session: setsid must not be a group leader, or it forks and we lose its exit code
            process = await asyncio.create_subprocess_exec(
                *nsenter_argv(fds, [setsid, "--ctty", "--wait", *command], self.working_dir or None),
                stdin=child_side, stdout=child_side, stderr=child_side,
                env={"TERM": "xterm", **(self.env or {"PATH": DEFAULT_PATH})},
                pass_fds=[fd for fd, _ in fds])
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(child_side)  # only the command holds it now: its exit ends our reads (EIO)
            linux.close_all(fds)
        try:
            reader, writer = await _terminal_streams(master)
        except OSError:
            os.close(master)
            _kill_group(process.pid)
            raise
        return ProcessSession(process, reader, None, writer, terminal=master)


class AttachSession:
    """The output a running container writes from now on, until its log closes.

    svcnet's runtime writes a container's stdout and stderr to its CRI log only, so attach relays
    new log lines (as kubelet's attach relays the streams) on stdout; there is no stdin to write to.
    """

    def __init__(self, log: ContainerLogFile) -> None:
        self._chunks = log.follow(LogOptions(tail_lines=0, follow=True), lambda: self._detached)
        self._detached = False
        self._ended = asyncio.Event()
        self.stdout = self
        self.stderr = None

    async def read(self, size: int) -> bytes:
        try:
            chunk = await anext(self._chunks, b"")
        except FileNotFoundError:  # the pod's files went away
            chunk = b""
        if not chunk:
            self._ended.set()
        return chunk

    async def write_stdin(self, data: bytes) -> None:
        return None

    def close_stdin(self) -> None:
        return None

    def resize(self, width: int, height: int) -> None:
        return None

    async def wait(self) -> int:
        """0 once the output is read to its end (the container exited): attach's success."""
        await self._ended.wait()
        return 0

    def kill(self) -> None:
        self._detached = True  # the client left: stop following; the container keeps running
        self._ended.set()

    def close(self) -> None:
        self._detached = True


class ProcessSession:
    """An exec'd command: its pipes, or the master side of its terminal."""

    def __init__(self, process: asyncio.subprocess.Process, stdout: Any, stderr: Any,
                 stdin: asyncio.StreamWriter | None, terminal: int | None = None) -> None:
        self.process = process
        self.stdout = stdout
        self.stderr = stderr
        self._stdin = stdin
        self._terminal = terminal

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin is None:
            return
        try:
            self._stdin.write(data)
            await self._stdin.drain()
        except ConnectionError:
            pass  # the command stopped reading; its exit is what matters

    def close_stdin(self) -> None:
        if self._stdin is None:
            return
        if self._terminal is not None:  # a terminal has no end of input: send its EOF character
            with contextlib.suppress(ConnectionError):
                self._stdin.write(b"\x04")
        else:
            self._stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self._terminal is not None and width and height:
            fcntl.ioctl(self._terminal, termios.TIOCSWINSZ, window_size(width, height))

    async def wait(self) -> int:
        return exit_code_of(await self.process.wait())

    def kill(self) -> None:
        _kill_group(self.process.pid)

    def close(self) -> None:
        if self._terminal is None:
            return
        if self._stdin is not None:
            self._stdin.close()
        os.close(self._terminal)
        self._terminal = None


def exit_code_of(returncode: int) -> int:
    """A shell's convention: 128+N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def window_size(width: int, height: int) -> bytes:
    """struct winsize (rows, columns, xpixel, ypixel) for TIOCSWINSZ."""
    return struct.pack("HHHH", height, width, 0, 0)


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


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
