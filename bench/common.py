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


# ---- where the machine's CPU goes during a run: a process tree's CPU by role, and the whole machine's


def _role_of(cmdline: list[str]) -> str:
    """`python -m svcnet agent ...` -> "svcnet agent"; `python -m svcnet.runtime.forkserver` -> that module;
    anything else by its program's name (a pod's program keeps `python -m <module>` as ps shows it)."""
    if "-m" in cmdline[:-1]:
        module = cmdline[cmdline.index("-m") + 1]
        rest = cmdline[cmdline.index("-m") + 2:]
        if module == "svcnet" and rest:
            return f"svcnet {rest[0]}" + (f" {rest[1]}" if rest[0] == "proxy" and len(rest) > 1 else "")
        return module
    return Path(cmdline[0]).name if cmdline else "?"


def process_tree_cpu(root_pid: int, *, marker: str = "") -> dict[int, tuple[str, float]]:
    """Every living process under root_pid (itself included), and under any process whose command line
    holds `marker` (a cluster's shims leave its tree: they fork away to init, naming their spec file under
    the data dir): pid -> (role, CPU seconds of the process and of the children it has reaped). Sessions do
    not matter: the tree follows parent pids."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                cmdlines[int(entry.name)] = [a.decode(errors="replace") for a in
                                             (entry / "cmdline").read_bytes().split(b"\0") if a]
    roots = {root_pid} | ({pid for pid, cmd in cmdlines.items() if any(marker in a for a in cmd)} if marker else set())
    tree, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    usage = {}
    for pid in tree:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            usage[pid] = (_role_of(cmdlines.get(pid, [])), ticks / os.sysconf("SC_CLK_TCK"))
    return usage


def machine_cpu_seconds() -> dict[str, float]:
    """CPU seconds all cores have spent: "busy" (not idle or waiting for I/O) and, of that, "interrupts"
    (irq and softirq: packets, timers, RCU callbacks), from /proc/stat; and "kernel threads", the CPU of
    every living kernel thread (kthreadd's children: namespace cleanup, RCU, kworkers)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    threads = sum(cpu for _, cpu in process_tree_cpu(2).values())  # pid 2 is kthreadd
    return {"busy": (sum(fields[:8]) - fields[3] - fields[4]) / tick, "interrupts": (fields[5] + fields[6]) / tick,
            "kernel threads": threads}


def cpu_by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each role spent between two process_tree_cpu snapshots (a process new since `before`
    counts from zero; one gone by `after` counts only through what its parent reaped)."""
    spent: dict[str, float] = {}
    for pid, (role, cpu) in after.items():
        then = before.get(pid)
        start = then[1] if then and then[0] == role else 0.0
        spent[role] = spent.get(role, 0.0) + cpu - start
    return spent
