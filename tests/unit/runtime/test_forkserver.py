"""The fork server: its request protocol, refusals that change nothing, replacement of a dead server,
clean children, and its end with the agent. Real processes, no root (the helpers are asked to do
things that fail harmlessly: a shim without its spec file, a sandbox in a netns that does not exist)."""
from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from svcnet.kernel import process
from svcnet.runtime import forkserver
from svcnet.runtime.forkserver import MAX_REQUEST, BadRequest, ForkServer, Server, parse_request, parse_status
from svcnet.runtime.launch import Finished
from tests.waiting import until, wait_for

SHIM_USAGE = b"usage: python -m svcnet.runtime.shim INSTANCE.spec.json\n"


class Recording:
    """A fallback launcher that records what reached it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    async def run(self, entry: str, args: Sequence[str], timeout: float) -> Finished:
        self.calls.append((entry, list(args)))
        return Finished(0, b"fallback\n", b"")


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def fifo_writer(path: Path) -> int | None:
    """A write end of the FIFO at path, or None while nobody has it open for reading."""
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:
            return None
        raise


def gone(pid: int) -> bool:
    stat = process._stat_fields(pid)
    return stat is None or stat[0] in ("Z", "X")


@pytest.fixture
async def server() -> AsyncIterator[ForkServer]:
    fs = ForkServer(fallback=Recording())
    fs.start()
    try:
        yield fs
    finally:
        await fs.close()


# ---- the protocol, pure

@pytest.mark.parametrize("data, error", [
    (b"not json", "not JSON"),
    (b"[]", 'exactly "entry" and "args"'),
    (b'{"entry": "shim"}', 'exactly "entry" and "args"'),
    (b'{"entry": "shim", "args": [], "env": {}}', 'exactly "entry" and "args"'),
    (b'{"entry": "bash", "args": []}', "unknown entry 'bash'"),
    (b'{"entry": "shim", "args": "x"}', "list of at most 64 strings"),
    (b'{"entry": "shim", "args": [1]}', "list of at most 64 strings"),
    (json.dumps({"entry": "shim", "args": ["a"] * 65}).encode(), "list of at most 64 strings"),
    (b'{"entry": "shim", "args": ["a\\u0000b"]}', "must not contain NUL"),
    (b" " * (MAX_REQUEST + 1), f"larger than {MAX_REQUEST} bytes"),
])
def test_malformed_requests_are_refused_with_the_reason(data: bytes, error: str) -> None:
    with pytest.raises(BadRequest, match=error.replace("(", r"\(").replace("[", r"\[")):
        parse_request(data)


def test_a_request_round_trips() -> None:
    assert parse_request(forkserver.encode_request("sandbox", ["--netns", "/run/netns/x"])) == (
        "sandbox", ["--netns", "/run/netns/x"])


@pytest.mark.parametrize("text, forked, code, error", [
    ("", False, None, None),  # the server died before starting anything: retry is safe
    ("forked 12\n", True, None, None),  # it died after: the exit code is lost
    ("forked 12\nexit 0\n", True, 0, None),
    ("forked 12\nexit 137\n", True, 137, None),
    ("error busy: 256 children running\n", False, None, "busy: 256 children running"),
    ("exit 3\n", False, None, None),  # an exit without a fork is not believed
])
def test_status_lines_say_whether_a_child_ran_and_how_it_ended(text: str, forked: bool, code: int | None,
                                                                error: str | None) -> None:
    assert parse_status(text) == forkserver.StatusReport(forked, code, error)


# ---- a real server

async def test_a_helper_runs_in_a_fork_with_its_output_and_exit_code(server: ForkServer) -> None:
    finished = await server.run("shim", [], timeout=30)
    assert finished == Finished(2, b"", SHIM_USAGE)
    finished = await server.run("sandbox", ["--netns", "/nonexistent/ns", "--hostname", "h", "--files", "/tmp"],
                                timeout=30)
    assert finished.returncode == 1 and b"setting up the sandbox in /nonexistent/ns" in finished.err
    assert server.restarts == 0 and server.fallback.calls == []  # type: ignore[attr-defined]


@pytest.fixture
def raw_server() -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """A server spoken to directly, to send what the agent never would."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-m", "svcnet.runtime.forkserver", "--fd", str(theirs.fileno())],
                            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
    theirs.close()
    try:
        yield ours, proc
    finally:
        ours.close()
        proc.wait(timeout=30)


@pytest.mark.parametrize("payload, nfds, error", [
    (b"{", 3, "error request is not JSON"),
    (b'{"entry": "rm", "args": ["-rf", "/"]}', 3, "error unknown entry 'rm'"),
    (b'{"entry": "shim", "args": []}' + b" " * MAX_REQUEST, 3, f"error request larger than {MAX_REQUEST} bytes"),
    (b'{"entry": "shim", "args": []}', 2, "error a request carries exactly 3 descriptors"),
    (b'{"entry": "shim", "args": []}', 4, "error a request carries exactly 3 descriptors"),
])
def test_bad_requests_get_an_error_and_start_nothing(raw_server: tuple[socket.socket, subprocess.Popen[bytes]],
                                                     payload: bytes, nfds: int, error: str) -> None:
    control, proc = raw_server
    status, status_theirs = socket.socketpair()
    out_r, out_w = os.pipe()
    extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(max(0, nfds - 3))]
    fds = [status_theirs.fileno(), out_w, *extra, out_w][:nfds]
    try:
        socket.send_fds(control, [payload], fds)
    finally:
        status_theirs.close()
        os.close(out_w)
        for fd in extra:
            os.close(fd)
    status.settimeout(30)
    reply = b"".join(iter(lambda: status.recv(4096), b"")).decode()
    assert reply.startswith(error) and "forked" not in reply
    assert os.read(out_r, 100) == b""  # nothing ran: every copy of the pipe was closed
    os.close(out_r)
    status.close()
    assert children_of(proc.pid) == []
    assert proc.poll() is None  # and the server still serves


async def test_a_request_too_large_for_the_server_goes_to_the_fallback(server: ForkServer) -> None:
    finished = await server.run("shim", ["x" * MAX_REQUEST], timeout=30)
    assert finished.out == b"fallback\n"
    assert server.fallback.calls == [("shim", ["x" * MAX_REQUEST])]  # type: ignore[attr-defined]


async def test_a_dead_server_is_replaced_and_the_helper_still_runs(server: ForkServer) -> None:
    assert (await server.run("shim", [], timeout=30)).returncode == 2
    first = server.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: gone(first), timeout=30, what="the killed server to exit")
    finished = await server.run("shim", [], timeout=30)
    assert finished == Finished(2, b"", SHIM_USAGE)
    assert server.restarts == 1 and server.pid not in (None, first)
    assert server.fallback.calls == []  # type: ignore[attr-defined]


async def test_concurrent_requests_to_a_dead_server_replace_it_once(server: ForkServer) -> None:
    first = server.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await until(lambda: gone(first), timeout=30, what="the killed server to exit")
    results = await asyncio.gather(*(server.run("shim", [], timeout=30) for _ in range(10)))
    assert results == [Finished(2, b"", SHIM_USAGE)] * 10
    assert server.restarts == 1 and server.fallback.calls == []  # type: ignore[attr-defined]


async def test_a_helper_whose_server_dies_after_the_fork_finishes_and_is_not_run_again(server: ForkServer,
                                                                                       tmp_path: Path) -> None:
    spec = tmp_path / "spec.fifo"
    os.mkfifo(spec)
    running = asyncio.create_task(server.run("shim", [str(spec)], timeout=30))
    pid = server.pid
    assert pid is not None
    [helper] = await until(lambda: children_of(pid), timeout=30, what="the shim child")
    # The shim is past the fork (it was let go) once it opens its spec: a non-blocking open for
    # writing succeeds only while a reader has the FIFO open (or waits in its open).
    writer = await until(lambda: fifo_writer(spec), timeout=30, what="the shim to open its spec")
    os.kill(pid, signal.SIGKILL)
    await until(lambda: gone(pid), timeout=30, what="the killed server to exit")
    os.set_blocking(writer, True)
    os.write(writer, b"{")  # not JSON: the shim fails and exits
    os.close(writer)
    finished = await running
    assert finished.returncode is None and b"JSONDecodeError" in finished.err  # its exit code went with the server
    assert server.fallback.calls == []  # type: ignore[attr-defined]
    await until(lambda: gone(helper), timeout=30, what="the shim to exit")


async def test_a_server_that_cannot_start_leaves_the_helper_to_the_fallback() -> None:
    fs = ForkServer("/nonexistent/python", fallback=Recording())
    try:
        finished = await fs.run("shim", ["spec.json"], timeout=30)
    finally:
        await fs.close()
    assert finished.out == b"fallback\n" and fs.fallback.calls == [("shim", ["spec.json"])]  # type: ignore[attr-defined]


async def test_a_helper_past_its_timeout_is_killed(server: ForkServer, tmp_path: Path) -> None:
    spec = tmp_path / "spec.fifo"
    os.mkfifo(spec)  # the shim blocks reading its spec: nobody writes
    finished = await server.run("shim", [str(spec)], timeout=0.5)
    assert finished == Finished(None, b"", b"", timed_out=True)
    assert server.pid is not None
    pid = server.pid
    await until(lambda: children_of(pid) == [], timeout=30, what="the server to kill and reap the shim")


async def test_the_server_ends_when_the_agent_closes_it(server: ForkServer) -> None:
    pid = server.pid
    assert pid is not None
    await server.close()
    assert gone(pid)


def test_the_server_ends_with_the_agent_but_not_its_children(tmp_path: Path) -> None:
    agent = textwrap.dedent("""
        import asyncio, sys
        from svcnet.runtime.forkserver import ForkServer
        async def main():
            fs = ForkServer()
            fs.start()
            print(fs.pid, flush=True)
            finished = await fs.run("shim", [sys.argv[1]], timeout=30)
            print(finished.returncode, flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())""")
    spec = tmp_path / "spec.fifo"
    os.mkfifo(spec)
    proc = subprocess.Popen([sys.executable, "-c", agent, str(spec)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    server_pid = int(proc.stdout.readline())
    helper = wait_for(lambda: children_of(server_pid), timeout=30, what="the shim child")[0]
    proc.kill()  # the agent dies without a word
    proc.wait()
    wait_for(lambda: gone(server_pid), timeout=30, what="the fork server to end with the agent")
    assert not gone(helper)  # its child lives on
    with open(spec, "w") as f:  # let it finish: not JSON, so the shim fails and exits
        f.write("{")
    wait_for(lambda: gone(helper), timeout=30, what="the shim to finish")


PROBE = textwrap.dedent("""
    import json, os, random, signal, sys, threading
    from svcnet.runtime import forkserver, launch

    def main(args):
        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        print(json.dumps({
            "fds": fds, "args": args, "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
            "usr1_default": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
            "int_raises": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            "session_leader": os.getsid(0) == os.getpid(), "random": random.random(),
            "stdin": os.readlink("/proc/self/fd/0"), "ppid": os.getppid(), "argv": sys.argv,
            "cmdline": open("/proc/self/cmdline", "rb").read().decode().split("\\0")}), flush=True)
        return 3

    if __name__ == "__main__":
        launch.ENTRY_POINTS["probe"] = "__main__"
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the server's own state, not its children's
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
        sys.exit(forkserver.main(sys.argv[1:]))
""")


async def test_children_start_clean(tmp_path: Path) -> None:
    script = tmp_path / "probe_server.py"
    script.write_text(PROBE)
    fs = ForkServer(fallback=Recording())
    fs.command = [sys.executable, str(script)]
    fs.start()
    try:
        first, second = await asyncio.gather(fs.run("probe", ["a"], timeout=30), fs.run("probe", ["b"], timeout=30))
        server_pid = fs.pid
    finally:
        await fs.close()
    assert first.returncode == 3 and second.returncode == 3
    seen = [json.loads(first.out), json.loads(second.out)]
    for state, arg in zip(seen, ["a", "b"], strict=True):
        assert state["args"] == [arg]
        assert len([fd for fd in state["fds"] if fd > 2]) == 1  # only listdir's own: no server socket
        assert state["blocked"] == []
        assert state["usr1_default"] is True and state["int_raises"] is True  # as a fresh interpreter
        assert state["session_leader"] is True
        assert state["stdin"] == "/dev/null"
        assert state["ppid"] == server_pid
        assert state["argv"] == [str(script), arg]  # as `python -m` would set them
        assert [part for part in state["cmdline"] if part] == [sys.executable, "-m", "__main__", arg]  # ps
    assert seen[0]["random"] != seen[1]["random"]


def test_a_server_with_threads_refuses_to_fork() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    status, status_theirs = socket.socketpair()
    out_r, out_w = os.pipe()
    try:
        server = Server(theirs, {"shim": lambda args: pytest.fail("forked with threads")})
        socket.send_fds(ours, [forkserver.encode_request("shim", [])], [status_theirs.fileno(), out_w, out_w])
        assert server._receive() is True
    finally:
        release.set()
        thread.join()
        status_theirs.close()
        for fd in (out_r, out_w):
            os.close(fd)
        ours.close()
        theirs.close()
    status.settimeout(5)
    assert status.recv(4096).decode().startswith("error the fork server has ")
    assert server.children == {}
    status.close()


def test_a_child_whose_server_dies_before_saying_go_ends_without_running() -> None:
    """The child inherits the go pipe's write end from the server; it must not keep it open while it
    waits, or a server gone before writing "go" would leave it blocked forever."""
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # what Server._fork's child does (main would print; it must never run)
        forkserver._child(lambda args: print("ran") or 0, [sys.executable, "-m", "x"], go_r, out_w, out_w)
    os.close(go_r)
    os.close(out_w)
    os.close(go_w)  # the server dies without a word
    ended: list[int] = []

    def reaped() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            ended.append(status)
        return bool(done)

    try:
        wait_for(reaped, timeout=30, what="the child to end")
        output = os.read(out_r, 100)
    finally:
        if not ended:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(out_r)
    assert os.waitstatus_to_exitcode(ended[0]) == 1 and output == b""
