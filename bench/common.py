"""What the benchmarks share: a free port, percentiles, memory figures, and svcnet processes started and stopped by pid.

The bench scripts run as `python bench/NAME.py`, so this directory is on
sys.path and they import it as `common`.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]


def memory_kib(pid: int | str = "self", field: str = "VmRSS") -> int:
    """A process's memory figure from /proc in KiB (VmRSS now, VmHWM its peak); 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int | str = "self") -> float:
    """A process's CPU time so far (user + system, every thread, living or ended), from /proc/PID/stat."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def living_threads_cpu_seconds(pid: int | str = "self") -> float:
    """CPU time of the process's threads that are alive now (what ended threads spent is only in the total)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # the thread ended while we looked
            total += _stat_cpu(task / "stat")
    return total


def _stat_cpu(path: Path) -> float:
    fields = path.read_text().rpartition(")")[2].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start_svcnet(args: list[str], log_path: Path) -> subprocess.Popen:
    """`svcnet ARGS...` in the background, its output appended to log_path."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "svcnet", *args], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, cwd=REPO)


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def start_apiserver(data_dir: Path, log_path: Path, timeout: float = 30.0,
                          flags: tuple[str, ...] = ()) -> tuple[subprocess.Popen, int]:
    """`svcnet apiserver` on a free port (with more flags, e.g. --storage), returned once it has
    written its kubeconfig."""
    port = free_port()
    proc = start_svcnet(["apiserver", "--data-dir", str(data_dir), "--port", str(port), *flags], log_path)
    deadline = time.monotonic() + timeout
    while not (data_dir / "kubeconfig").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_process(proc)
            raise SystemExit(f"apiserver did not start; see {log_path}")
        await asyncio.sleep(0.05)
    return proc, port


async def wait_readyz(http: aiohttp.ClientSession) -> None:
    """Until the API server's /readyz answers 200."""
    while True:
        try:
            async with http.get("/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
