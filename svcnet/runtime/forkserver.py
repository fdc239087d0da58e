"""A fork server for the runtime's helpers: sandboxes and shims without a new Python interpreter each.

Starting `python -m svcnet.runtime.shim` costs ~0.1 s of CPU, mostly the
interpreter and imports; a pod needs two such helpers (the sandbox's infra
launcher and a shim per container). The node agent instead starts one
long-lived interpreter, `python -m svcnet.runtime.forkserver`, that has
`svcnet.runtime.sandbox` and `svcnet.runtime.shim` imported, and asks it to
fork a child that runs the same `main(argv)` the `python -m` path runs.

The model is CPython's multiprocessing forkserver (Lib/multiprocessing/forkserver.py:
`main` saves the signal handlers it started with, serves requests on a socket,
sends the child's pid and later its exit status, and exits on EOF of its
"alive" pipe; `_serve_one` restores those handlers and closes the server's
descriptors in each child), not Android's zygote (frameworks/base,
core/java/com/android/internal/os/ZygoteInit.java): the server is a *freshly
exec'd* interpreter, never a fork of the agent (the agent runs an event loop and
thread pools, and forking a threaded process is unsafe), it stays single-threaded, requests carry their file
descriptors with SCM_RIGHTS, the server reports each child's exit status, and it
ends when the agent's end of its socket closes. The zygote's model (the parent
of every app, specialising children after preloading far more) buys nothing here:
our children leave the server at once (setsid and a second fork) and must
outlive it. Differences from multiprocessing: the agent talks to the server over a
socketpair it made (no socket path or abstract name that another process could
connect to, so no authentication key is needed), and a child waits for a "go"
byte that the server writes only after telling the agent the child exists, so
a request the agent was not told about was never acted on and can be retried.

Protocol (one SOCK_SEQPACKET message per request, on the control socket):

    payload   JSON {"entry": "sandbox"|"shim", "args": [str, ...]}, at most MAX_REQUEST bytes
    SCM_RIGHTS  [status socket, stdout, stderr]  (the child's fd 1 and 2 become the last two)

On the status socket the server writes `forked <pid>` then, when the child has
exited, `exit <code>` (the shell's 128+N for a signal N); or one line
`error <reason>` if it refused the request (too large, malformed, a wrong number
of descriptors, too many children, threads in the server): a refused request
changes nothing. The agent writing `kill` on the status socket (its timeout)
makes the server SIGKILL the child, as `proc.kill()` did; the agent merely
closing it (it died) leaves the child to finish, as a `python -m` helper would.

Children start clean: stdin on /dev/null, every other descriptor of the server
closed, signal handlers and mask as a fresh interpreter has them, a new session,
`random` reseeded, sys.argv and the command line ps shows as `python -m` set them. They share the server's address-space layout and hash seed
(the zygote's known trade-off); what they exec (`sleep` for the infra process,
the container's program) gets its own.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import errno
import gc
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from svcnet.kernel import process
from svcnet.runtime import pymain
from svcnet.runtime.images import IN_PROCESS_PROGRAMS
from svcnet.runtime.launch import ENTRY_POINTS, Finished, Launcher, SubprocessLauncher, fd_ready
from svcnet.runtime.shim import exit_code_of

log = logging.getLogger("svcnet.runtime.forkserver")

MAX_REQUEST = 64 * 1024  # bytes of JSON per request (a shim's request is one path)
MAX_ARGS = 64
REQUEST_FDS = 3  # status socket, stdout, stderr
MAX_CHILDREN = 256  # children not yet exited; past it a request is refused (the agent falls back)
KILL = b"kill"  # the agent's only word on a status socket: it gave up waiting
MAX_OUTPUT = 64 * 1024  # what the agent keeps of a helper's stdout / stderr (the rest is read and dropped)
# A child's /proc/<pid>/cmdline is rewritten in the server's argument area (it cannot grow without
# CAP_SYS_RESOURCE), so the server is started with this many blanks of room: a shim's spec path or a
# sandbox's arguments fit (a longer line is cut; only ps shows it).
CMDLINE_ROOM = 4096
# Likewise a forked container program's /proc/<pid>/environ (svcnet.runtime.shim.start_program) is
# written over the server's environment area, so the server is started with a variable of this many
# blanks: room for a pod's environment with the service variables of a few hundred Services (one that
# does not fit is exec'd instead).
ENVIRON_ROOM = 64 * 1024
ENVIRON_ROOM_VARIABLE = "SVCNET_ENVIRON_ROOM"


class BadRequest(ValueError):
    pass


# ---- the protocol (pure)

def encode_request(entry: str, args: Sequence[str]) -> bytes:
    return json.dumps({"entry": entry, "args": list(args)}, separators=(",", ":")).encode()


def parse_request(data: bytes) -> tuple[str, list[str]]:
    """(entry, args) of a request; BadRequest says what is wrong with it."""
    if len(data) > MAX_REQUEST:
        raise BadRequest(f"request larger than {MAX_REQUEST} bytes")
    try:
        request = json.loads(data)
    except ValueError:
        raise BadRequest("request is not JSON") from None
    if not isinstance(request, dict) or set(request) != {"entry", "args"}:
        raise BadRequest('request must be an object with exactly "entry" and "args"')
    entry, args = request["entry"], request["args"]
    if entry not in ENTRY_POINTS:
        raise BadRequest(f"unknown entry {entry!r} (known: {', '.join(sorted(ENTRY_POINTS))})")
    if not isinstance(args, list) or len(args) > MAX_ARGS or not all(isinstance(a, str) for a in args):
        raise BadRequest(f"args must be a list of at most {MAX_ARGS} strings")
    if any("\0" in a for a in args):
        raise BadRequest("args must not contain NUL")
    return entry, args


@dataclass(frozen=True)
class StatusReport:
    """What the server said on a request's status socket."""

    forked: bool  # a child was started (so the request must not be retried)
    returncode: int | None  # None: the server did not see it exit (it died, or we stopped waiting)
    error: str | None  # the server refused the request


def parse_status(text: str) -> StatusReport:
    forked, code, error = False, None, None
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word == "forked":
            forked = True
        elif word == "exit" and forked:
            try:
                code = int(rest)
            except ValueError:
                pass
        elif word == "error":
            error = rest
    return StatusReport(forked, code, error)


# ---- the server (runs as `python -m svcnet.runtime.forkserver --fd N`)

@dataclass
class _Child:
    pid: int
    pidfd: int
    status_fd: int
    peer_open: bool = True


def _threads() -> int:
    return max(threading.active_count(), process.thread_count())


def _say(fd: int, line: str) -> bool:
    try:
        os.set_blocking(fd, False)  # never wait on a peer that does not read
        os.write(fd, (line + "\n").encode())
        return True
    except OSError:  # the agent closed its end (it gave up); nobody to tell
        return False


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Server:
    """The server's loop: requests on the control socket, children's exits on their pidfds."""

    def __init__(self, control: socket.socket, mains: dict[str, object]) -> None:
        self.control = control
        self.mains = mains
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, _Child] = {}  # by pid

    def serve(self) -> int:
        self.selector.register(self.control, selectors.EVENT_READ, None)
        while True:
            for key, _ in self.selector.select():
                if key.data is None:
                    if not self._receive():
                        return 0
                else:
                    kind, child = key.data
                    if kind == "exit":
                        self._reap(child)
                    else:
                        self._peer_readable(child)

    def _receive(self) -> bool:
        """Handle one request; False when the agent has gone (EOF)."""
        try:
            data, fds, flags, _ = socket.recv_fds(self.control, MAX_REQUEST + 1, REQUEST_FDS + 1)
        except InterruptedError:
            return True
        except ConnectionError:
            return False
        if not data and not fds:
            return False
        status_fd = fds[0] if fds else -1
        try:
            if flags & socket.MSG_TRUNC or len(data) > MAX_REQUEST:
                raise BadRequest(f"request larger than {MAX_REQUEST} bytes")
            if flags & socket.MSG_CTRUNC or len(fds) != REQUEST_FDS:
                raise BadRequest(f"a request carries exactly {REQUEST_FDS} descriptors (status, stdout, stderr)")
            entry, args = parse_request(data)
            if len(self.children) >= MAX_CHILDREN:
                raise BadRequest(f"busy: {MAX_CHILDREN} children running")
            threads = _threads()
            if threads != 1:
                raise BadRequest(f"the fork server has {threads} threads: it does not fork")
        except BadRequest as error:
            if status_fd >= 0:
                _say(status_fd, f"error {error}")
            _close(*fds)
            return True
        self._fork(entry, args, *fds)
        return True

    def _fork(self, entry: str, args: list[str], status_fd: int, out_fd: int, err_fd: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        go_r, go_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as error:
            _say(status_fd, f"error fork: {error}")
            _close(go_r, go_w, status_fd, out_fd, err_fd)
            return
        if pid == 0:
            _child(self.mains[entry], [sys.executable, "-m", ENTRY_POINTS[entry], *args], go_r, out_fd, err_fd)
        _close(go_r, out_fd, err_fd)
        pidfd = os.pidfd_open(pid)
        if _say(status_fd, f"forked {pid}"):
            os.write(go_w, b"g")  # only now may the child act: the agent knows it exists
        os.close(go_w)  # without the byte, the child exits untouched
        child = _Child(pid, pidfd, status_fd)
        self.children[pid] = child
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", child))
        self.selector.register(status_fd, selectors.EVENT_READ, ("peer", child))

    def _peer_readable(self, child: _Child) -> None:
        try:
            data = os.read(child.status_fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and KILL not in data:
            return  # nothing else is said on it; ignore it
        self.selector.unregister(child.status_fd)
        child.peer_open = False
        if data:  # the agent stopped waiting (its timeout): the child goes, as the subprocess path kills it
            try:
                signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # EOF alone: the agent died. Its helpers outlive it, as `python -m` helpers did.

    def _reap(self, child: _Child) -> None:
        _, status = os.waitpid(child.pid, 0)
        self.selector.unregister(child.pidfd)
        os.close(child.pidfd)
        if child.peer_open:
            self.selector.unregister(child.status_fd)
            _say(child.status_fd, f"exit {exit_code_of(status)}")
        os.close(child.status_fd)
        del self.children[child.pid]


def _child(main: Callable[[Sequence[str]], object], argv: list[str], go_r: int, out_fd: int, err_fd: int) -> None:
    """In the forked child: once the server has said "go", a clean process running main(argv[3:]) as
    `python -m` would (argv is that command line, which ps shows), then _exit. Never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(go_r, 3)
        # Before waiting: every other descriptor of the server's goes, the go pipe's write end among
        # them, so a server that dies before saying "go" ends the wait (EOF) instead of leaving us
        # blocked on a pipe we hold open ourselves, and we hold none of its sockets meanwhile.
        os.closerange(4, os.sysconf("SC_OPEN_MAX"))
        if os.read(3, 1) != b"g":
            os._exit(1)  # the server died before telling the agent about us: do nothing
    except BaseException:  # noqa: B036 - never return into the server
        os._exit(1)
    module = sys.modules.get(getattr(main, "__module__", ""))
    pymain.run_as_python_m(main, argv, getattr(module, "__file__", None))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svcnet-forkserver")
    parser.add_argument("--fd", type=int, required=True, help="the control socket (SOCK_SEQPACKET)")
    parser.add_argument("--parent", type=int, default=0, help="exit if this is no longer our parent")
    parser.add_argument("--room", default="", help="blank: room for the children's command lines")
    args = parser.parse_args(argv)
    while (spare := os.open(os.devnull, os.O_RDWR)) <= 2:
        pass  # 0-2 open, so no request's descriptor lands there (a child dup2s onto them)
    os.close(spare)
    # ps shows the short line; the blanks stay as room (see CMDLINE_ROOM)
    process.set_cmdline([sys.executable, "-m", "svcnet.runtime.forkserver", "--fd", str(args.fd),
                         "--parent", str(args.parent)])
    os.environ.pop(ENVIRON_ROOM_VARIABLE, None)  # room in memory only, not passed on to anything we exec
    process.set_parent_death_signal(signal.SIGKILL)
    if args.parent and os.getppid() != args.parent:
        return 0  # the agent died before prctl took effect
    control = socket.socket(fileno=args.fd)
    mains = {entry: importlib.import_module(module).main for entry, module in ENTRY_POINTS.items()}
    for program in IN_PROCESS_PROGRAMS:  # imported once here, not in every shim that forks one
        importlib.import_module(program)
    # Every object alive now (the modules) moves to the collector's permanent generation, so no child's
    # collection walks it: a walk writes to each object's header, and each page written is a page the
    # child copies from this process (CPython's advice for forking servers, gc.freeze's documentation).
    gc.collect()
    gc.freeze()
    return Server(control, mains).serve()


# ---- the agent's side

class ServerGone(Exception):
    """The server ended before it started anything for the request (safe to retry)."""


class ForkServer:
    """The agent's handle on its fork server: a Launcher that falls back to `python -m` when it cannot."""

    def __init__(self, python: str = sys.executable, *, fallback: Launcher | None = None) -> None:
        self.python = python
        self.command = [python, "-m", "svcnet.runtime.forkserver"]  # + --fd N --parent PID
        self.fallback = fallback or SubprocessLauncher(python)
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self.restarts = 0  # servers replaced after they died (tests and logs)
        self.generation = 0  # servers started so far

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the server (it imports its modules while the agent goes on)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [*self.command, "--fd", str(theirs.fileno()), "--parent", str(os.getpid()),
                 "--room", " " * CMDLINE_ROOM],
                env={**os.environ, ENVIRON_ROOM_VARIABLE: " " * ENVIRON_ROOM},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=[theirs.fileno()],
                start_new_session=True)  # a terminal's ^C for the agent's group is not for it
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        self.generation += 1

    def _discard(self) -> None:
        """Forget a dead (or unusable) server: close our end (it exits on EOF) and reap it."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    async def close(self) -> None:
        """End the server (closing our end is its signal) and reap it."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._proc is not None:
            proc, self._proc = self._proc, None
            if not await _wait_child(proc.pid, 2.0):
                proc.kill()
            proc.wait()

    def _ensure(self) -> int:
        """A running server (the first, or a new one in place of one that died); its generation."""
        if self._proc is None or self._proc.poll() is not None or self._control is None:
            if self._proc is not None or self._control is not None:
                self._replace(self.generation, "is gone")
            self.start()
        return self.generation

    def _replace(self, generation: int, why: str) -> None:
        """Drop server `generation` (unless a concurrent request already did); the next request starts one."""
        if generation != self.generation or (self._proc is None and self._control is None):
            return
        log.warning("the fork server (pid %s) %s: starting a new one", self.pid, why)
        self._discard()
        self.restarts += 1

    async def run(self, entry: str, args: Sequence[str], timeout: float) -> Finished:
        """Run the helper in a child of the server; if the server is gone, once more in a new one; if
        that fails too, or the server refuses the request, through the fallback (`python -m`)."""
        request = encode_request(entry, args)
        if len(request) <= MAX_REQUEST:
            for _ in range(2):
                try:
                    generation = self._ensure()
                except OSError as error:
                    log.warning("cannot start the fork server: %s", error)
                    self._discard()
                    break
                try:
                    return await self._request(request, timeout)
                except ServerGone:
                    self._replace(generation, "ended during a request")
                except BadRequest as error:
                    log.warning("the fork server did not start a %s: %s", entry, error)
                    break
        return await self.fallback.run(entry, args, timeout)

    async def _request(self, request: bytes, timeout: float) -> Finished:
        assert self._control is not None
        status, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            try:
                await _send(self._control, request, [status_theirs.fileno(), out_w, err_w], timeout)
            except ConnectionError as error:  # EPIPE, ECONNRESET: it died before taking the request
                raise ServerGone(str(error)) from None
            except OSError as error:  # e.g. ETOOMANYREFS: too many descriptors in flight
                raise BadRequest(f"cannot send the request: {error}") from None
            finally:
                status_theirs.close()
                _close(out_w, err_w)
            reads = asyncio.gather(_read_to_eof(status.fileno(), 4096), _read_to_eof(out_r, MAX_OUTPUT),
                                   _read_to_eof(err_r, MAX_OUTPUT))
            try:
                status_text, out, err = await asyncio.wait_for(reads, timeout)
            except TimeoutError:
                with contextlib.suppress(OSError):
                    status.send(KILL)  # the server kills the child, as the subprocess path does
                return Finished(None, b"", b"", timed_out=True)
        finally:
            status.close()
            _close(out_r, err_r)
        report = parse_status(status_text.decode(errors="replace"))
        if not report.forked:
            if report.error is not None:
                raise BadRequest(report.error)
            raise ServerGone("the fork server ended before starting the helper")
        return Finished(report.returncode, out, err)


async def _send(control: socket.socket, request: bytes, fds: list[int], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    while True:
        try:
            control.sendmsg([request], ancillary)
            return
        except BlockingIOError:
            pass
        if not await fd_ready(control.fileno(), max(0.0, deadline - loop.time()), write=True):
            raise ConnectionError(errno.ETIMEDOUT, "the fork server does not take requests")


async def _read_to_eof(fd: int, limit: int) -> bytes:
    """Everything readable from fd until EOF, keeping the first `limit` bytes."""
    os.set_blocking(fd, False)
    kept = bytearray()
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            await fd_ready(fd)
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            return bytes(kept)
        kept += data[:max(0, limit - len(kept))]


async def _wait_child(pid: int, timeout: float) -> bool:
    """Wait (without reaping) until our child pid has exited; False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return await fd_ready(fd, timeout)
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
