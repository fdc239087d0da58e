"""Helper start cost: `python -m` (a new interpreter per helper) against the agent's fork server.

Starts `--helpers` shims, `--concurrency` at a time, each way, alternating for
`--rounds` rounds, and prints wall time and CPU seconds (the agent's own, plus
its helpers': reaped children for `python -m`, the server and its reaped
children for the fork server) and the ratios fork server / `python -m`. The
shims are given no spec file, so each prints its usage and exits 2: what is
measured is starting the helper, which is what the fork server changes (the
work a real shim or sandbox then does is the same either way). No root needed.

    .venv/bin/python bench/bench_forkserver.py --helpers 100 --rounds 3
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

from svcnet.runtime.forkserver import ForkServer
from svcnet.runtime.launch import Launcher, SubprocessLauncher

TICKS = os.sysconf("SC_CLK_TCK")


def own_and_reaped_cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def process_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of a live process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / TICKS


async def start_helpers(launcher: Launcher, helpers: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            finished = await launcher.run("shim", [], timeout=60)
            assert finished.returncode == 2, finished

    await asyncio.gather(*(one() for _ in range(helpers)))


async def measure(launcher: Launcher, helpers: int, concurrency: int, server_pid: int | None) -> tuple[float, float]:
    cpu0, server0, wall0 = own_and_reaped_cpu(), process_cpu(server_pid) if server_pid else 0.0, time.monotonic()
    await start_helpers(launcher, helpers, concurrency)
    wall = time.monotonic() - wall0
    cpu = own_and_reaped_cpu() - cpu0 + ((process_cpu(server_pid) - server0) if server_pid else 0.0)
    return wall, cpu


async def main_async(args: argparse.Namespace) -> int:
    server = ForkServer()
    server.start()
    try:
        await start_helpers(server, 4, 4)  # the server has imported its modules
        print(f"{args.helpers} shims started, {args.concurrency} at a time, {os.cpu_count()} CPUs")
        print(f"{'round':>5}  {'python -m wall/cpu':>20}  {'fork server wall/cpu':>22}  {'ratio wall':>10}  {'ratio cpu':>9}")
        for n in range(1, args.rounds + 1):
            old_wall, old_cpu = await measure(SubprocessLauncher(), args.helpers, args.concurrency, None)
            new_wall, new_cpu = await measure(server, args.helpers, args.concurrency, server.pid)
            print(f"{n:>5}  {old_wall:>8.2f}s / {old_cpu:>6.2f}s  {new_wall:>10.2f}s / {new_cpu:>6.2f}s  "
                  f"{new_wall / old_wall:>10.3f}  {new_cpu / old_cpu:>9.3f}")
        assert server.restarts == 0
    finally:
        await server.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--helpers", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
