"""The shim forks svcnet's own Python programs and execs everything else (svcnet.runtime.shim.start_program)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from svcnet.kernel import process
from svcnet.runtime.shim import ForkedProgram, start_program

SERVE_HOSTNAME = [sys.executable, "-m", "svcnet.images.serve_hostname", "--port", "0"]  # any free port


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str], cwd: str) -> Iterator[subprocess.Popen[bytes] | ForkedProgram]:
    """start_program, and the program killed and reaped at the end whatever the test did (it runs in a
    session of its own: nothing else would end it)."""
    child = start_program(argv, env, cwd)
    try:
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)


def finish(child: subprocess.Popen[bytes] | ForkedProgram) -> tuple[int, bytes, bytes]:
    _, status = os.waitpid(child.pid, 0)
    assert child.stdout and child.stderr
    return os.waitstatus_to_exitcode(status), child.stdout.read(), child.stderr.read()


def wait_serving(child: subprocess.Popen[bytes] | ForkedProgram) -> bytes:
    """What serve_hostname logged up to its "Serving on port" line."""
    assert child.stderr
    logged = b""
    while b"Serving on port" not in logged:
        chunk = os.read(child.stderr.fileno(), 4096)
        assert chunk, f"serve_hostname ended before serving: {logged!r}"
        logged += chunk
    return logged


def stop(child: subprocess.Popen[bytes] | ForkedProgram) -> tuple[int, bytes]:
    """SIGTERM: the exit code and what it logged after."""
    os.kill(child.pid, signal.SIGTERM)
    code, _, logged = finish(child)
    return code, logged


def test_serve_hostname_is_forked_with_the_containers_environment_and_exit_code(tmp_path: Path) -> None:
    with started(SERVE_HOSTNAME, {"PATH": "/bin", "HOSTNAMES_SERVICE_HOST": "10.96.0.11"}, str(tmp_path)) as child:
        assert isinstance(child, ForkedProgram)
        wait_serving(child)
        environ = Path(f"/proc/{child.pid}/environ").read_bytes()
        cwd = os.readlink(f"/proc/{child.pid}/cwd")
        code, logged = stop(child)
    assert code == 0 and b"Shutting down after receiving signal: terminated." in logged
    assert environ == b"PATH=/bin\0HOSTNAMES_SERVICE_HOST=10.96.0.11\0" or environ.rstrip(b"\0") == (
        b"PATH=/bin\0HOSTNAMES_SERVICE_HOST=10.96.0.11")  # cut to size, or NUL-padded without CAP_SYS_RESOURCE
    assert cwd == str(tmp_path)


def test_a_bad_flag_ends_the_forked_program_as_python_m_would() -> None:
    with started([*SERVE_HOSTNAME[:3], "--bogus"], {}, "/") as child:
        assert isinstance(child, ForkedProgram)
        code, out, err = finish(child)
    assert (code, out) == (2, b"") and b"unrecognized arguments: --bogus" in err


def test_an_environment_too_big_for_the_area_is_exec_d_instead(tmp_path: Path) -> None:
    big = {"BIG": "x" * (process.environ_room() + 1)}
    with started(SERVE_HOSTNAME, big, str(tmp_path)) as child:
        assert isinstance(child, subprocess.Popen)
        wait_serving(child)
        assert stop(child)[0] == 0


def test_other_programs_are_exec_d_and_a_missing_cwd_fails_before_forking(tmp_path: Path) -> None:
    with started(["sh", "-c", "echo $GREETING"], {"GREETING": "hi"}, "/") as child:
        assert isinstance(child, subprocess.Popen)
        assert finish(child)[:2] == (0, b"hi\n")
    missing = str(tmp_path / "nowhere")
    for argv in (SERVE_HOSTNAME, ["true"]):
        try:
            start_program(argv, {}, missing)
        except FileNotFoundError as error:
            assert error.filename == missing
        else:
            raise AssertionError(f"{argv} started in a missing directory")
