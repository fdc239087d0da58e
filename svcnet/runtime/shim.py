"""The per-container supervisor: `python -m svcnet.runtime.shim INSTANCE.spec.json`.

Like containerd's shim, it belongs to no agent: it forks away into its own
session (so killing the agent, or its process group, leaves it running), joins
the sandbox's net/UTS/mount namespaces, starts the program in its own process
group, copies stdout/stderr into the CRI log file, forwards SIGTERM/SIGINT/SIGHUP
to the program, and records the exit code and finish time when it exits.
When the program exits, what is left of its process group is killed, as a
container's processes die with its init.

It reports on stdout exactly once, after the state file says running (or
exited, if the program could not start): "ok", or "error <message>".
The state file (INSTANCE.state.json) is the only thing the runtime reads.
"""
from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from svcnet.kernel import process
from svcnet.kernel.process import ProcessId
from svcnet.runtime import pymain
from svcnet.runtime.images import IN_PROCESS_PROGRAMS
from svcnet.runtime.logs import CriLineWriter

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
DRAIN_SECONDS = 1.0  # after the program exits, how long output from escaped descendants is still copied


class StateFile:
    """Atomic writes of the instance's state, by directory fd (the shim lives in the pod's mount namespace)."""

    def __init__(self, path: Path) -> None:
        self.dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        self.name = path.name

    def write(self, state: dict[str, Any]) -> None:
        tmp = self.name + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self.dir_fd)
        try:
            os.write(fd, json.dumps(state).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)


def exit_code_of(status: int) -> int:
    """Container exit codes: the program's code, or 128+N when signal N ended it (137 for SIGKILL)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _start_error_message(error: OSError, argv: list[str], cwd: str) -> str:
    if isinstance(error, FileNotFoundError) and error.filename == cwd:
        return f'failed to start container process: chdir to cwd ("{cwd}") set in config.json failed: no such file or directory'
    if isinstance(error, FileNotFoundError):
        return f'failed to start container process: exec: "{argv[0]}": executable file not found in $PATH'
    return f'failed to start container process: exec: "{argv[0]}": {error.strerror or error}'


def _reap_children(main_pid: int) -> int | None:
    """Reap every exited child (the program and adopted orphans); the program's wait status if it was one."""
    main_status = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return main_status
        if pid == 0:
            return main_status
        if pid == main_pid:
            main_status = status


def _join_sandbox(spec: dict[str, Any]) -> str | None:
    """Enter the pod's net/UTS/mount namespaces through its infra process; the reason if that fails."""
    try:
        infra = ProcessId.from_json(spec["sandbox"])
        assert infra is not None
        for fd, nstype in process.open_namespaces(infra):
            process.setns(fd, nstype)
            os.close(fd)
    except OSError as error:
        return f"cannot join the pod sandbox: {error}"
    return None


def _forward_signals() -> tuple[int, list[int]]:
    """Signals are queued and wake the pump through a pipe (its read end is returned with the queue)."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    received: list[int] = []
    for sig in (*FORWARDED_SIGNALS, signal.SIGCHLD):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    return wake_r, received


class ForkedProgram:
    """One of svcnet's own Python programs, forked from this shim instead of exec'd (what _pump needs of a
    Popen: the pid and the read ends of its stdout and stderr)."""

    def __init__(self, pid: int, stdout: int, stderr: int) -> None:
        self.pid = pid
        self.stdout = os.fdopen(stdout, "rb", buffering=0)
        self.stderr = os.fdopen(stderr, "rb", buffering=0)


def in_process_main(argv: list[str]) -> Any:
    """The main() to fork for `argv` when it is `<this interpreter> -m <one of IN_PROCESS_PROGRAMS> ...`;
    None for any other program (it is exec'd)."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m" and argv[2] in IN_PROCESS_PROGRAMS:
        return importlib.import_module(argv[2]).main
    return None


def start_program(argv: list[str], env: dict[str, str], cwd: str) -> subprocess.Popen[bytes] | ForkedProgram:
    """The container's process, in its own session with stdout and stderr on pipes to us and stdin on
    /dev/null. svcnet's own Python programs are forked from this shim, which has them imported (the fork
    server preloads them), rather than started as a new interpreter: the same process as `python -m`
    would make, without ~15-30 ms of interpreter start-up and imports per pod; exec'd after all when the
    environment does not fit the area ours was exec'd with (the fork server's has room, ENVIRON_ROOM).
    OSError if it cannot start."""
    main = in_process_main(argv)
    if main is None or len(process.encode_environ(env)) > process.environ_room():
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    os.close(os.open(cwd, os.O_RDONLY | os.O_DIRECTORY))  # a missing cwd fails here, as exec's chdir would
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd, target in ((devnull, 0), (out_w, 1), (err_w, 2)):
                os.dup2(fd, target)
            os.chdir(cwd)
            process.set_environ(env)  # what /proc/PID/environ shows, as after exec (it fits: checked)
            os.environ.clear()
            os.environ.update(env)
        except BaseException:  # noqa: B036 - never return into the shim
            os._exit(127)
        pymain.run_as_python_m(main, argv, getattr(sys.modules.get(main.__module__), "__file__", None))
    os.close(out_w)
    os.close(err_w)
    return ForkedProgram(pid, out_r, err_r)


def _pump(child: subprocess.Popen[bytes] | ForkedProgram, log_fd: int, wake_r: int, received: list[int]) -> tuple[int, int]:
    """Copy the program's output into the CRI log and forward signals until it exits and its output is drained.

    Returns the program's wait status and when it exited (ns).
    """
    def append(data: bytes) -> None:
        os.write(log_fd, data)

    writers = {child.stdout.fileno(): CriLineWriter("stdout", append),  # type: ignore[union-attr]
               child.stderr.fileno(): CriLineWriter("stderr", append)}  # type: ignore[union-attr]
    selector = selectors.DefaultSelector()
    for fd in writers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    status: int | None = None
    finished_ns = 0
    drain_until: float | None = None
    while status is None or writers:
        timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
        if drain_until is not None and timeout == 0:
            break
        for key, _ in selector.select(timeout):
            if key.fd == wake_r:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
                continue
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if data:
                writers[key.fd].feed(data)
            else:
                selector.unregister(key.fd)
                writers.pop(key.fd).close()
        while received:
            signum = received.pop(0)
            if signum != signal.SIGCHLD and status is None:
                try:
                    os.kill(child.pid, signum)  # our unreaped child: the pid cannot have been reused
                except ProcessLookupError:
                    pass
        main_status = _reap_children(child.pid)
        if status is None and main_status is not None:
            status = main_status
            finished_ns = time.time_ns()
            # The container's other processes die with it; stragglers' output is drained briefly.
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            drain_until = time.monotonic() + DRAIN_SECONDS
    for writer in writers.values():
        writer.close()
    assert status is not None
    return status, finished_ns


def _reap_group(leader: int) -> None:
    """Reap the killed group members (ours as subreaper) so none is left a zombie under init."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while process.live_group_members(leader) and time.monotonic() < deadline:
        _reap_children(leader)
        time.sleep(0.01)
    _reap_children(leader)


def supervise(spec: dict[str, Any], report: int) -> int:
    """The shim's life after forking: start the program, pump its output, record its exit."""
    state_file = StateFile(Path(spec["statePath"]))
    log_fd = os.open(spec["logPath"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    me = process.process_id(os.getpid())
    base = {"shim": me.to_json() if me else None}

    def say(line: str) -> None:
        os.write(report, (line + "\n").encode())
        os.close(report)

    if (error := _join_sandbox(spec)) is not None:
        say(f"error {error}")
        return 1
    # Like containerd's shim: the program's orphaned descendants come to us, and we reap them.
    process.set_child_subreaper()
    wake_r, received = _forward_signals()

    argv, cwd = list(spec["argv"]), spec.get("workingDir") or "/"
    started_ns = time.time_ns()
    try:
        child = start_program(argv, spec["env"], cwd)
    except OSError as start_error:
        now = time.time_ns()
        state_file.write({**base, "state": "exited", "startedAt": now, "finishedAt": now, "exitCode": 128,
                          "reason": "StartError", "message": _start_error_message(start_error, argv, cwd)})
        say("ok")
        return 0
    program = process.process_id(child.pid)
    state_file.write({**base, "state": "running", "startedAt": started_ns,
                      "process": program.to_json() if program else {"pid": child.pid, "startTicks": 0}})
    say("ok")

    status, finished_ns = _pump(child, log_fd, wake_r, received)
    _reap_group(child.pid)
    os.close(log_fd)
    code = exit_code_of(status)
    state_file.write({**base, "state": "exited", "startedAt": started_ns, "finishedAt": finished_ns,
                      "exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": "",
                      "process": program.to_json() if program else None})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m svcnet.runtime.shim INSTANCE.spec.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    report_r, report_w = os.pipe()
    if os.fork() != 0:
        # The launcher: pass on the supervisor's one report line, then exit so it is orphaned.
        os.close(report_w)
        chunks = []
        while chunk := os.read(report_r, 4096):
            chunks.append(chunk)
        message = b"".join(chunks).decode().strip() or "error the shim ended before reporting"
        print(message, flush=True)
        return 0 if message == "ok" else 1
    os.close(report_r)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    try:
        code = supervise(spec, report_w)
    except BaseException:  # noqa: B036 - the shim must never die silently before recording
        code = 1
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
