"""How the runtime starts its helpers (a sandbox's infra launcher, a container's shim).

A helper is one of the `ENTRY_POINTS`: a module whose `main(argv)` does the
work, reports one line on stdout and exits. A `Launcher` runs it and returns
what it printed and its exit code. Two launchers do the same thing:

- `SubprocessLauncher`: `python -m <module> <args>`, a new interpreter each time
  (what CLI one-shots use, and the fallback);
- `forkserver.ForkServer`: a fork of a long-lived interpreter that has the
  modules loaded (what the node agent uses).

Either way the helper runs the same `main`, in its own session, with stdin on
/dev/null; the caller reads stdout and stderr until EOF.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# entry name -> the module whose main(argv) runs (`python -m` takes the same module)
ENTRY_POINTS: dict[str, str] = {
    "sandbox": "svcnet.runtime.sandbox",
    "shim": "svcnet.runtime.shim",
}


@dataclass(frozen=True)
class Finished:
    """What a helper left: its exit code (None if unknown), stdout and stderr, and whether it timed out
    (then it was killed and out/err are empty)."""

    returncode: int | None
    out: bytes
    err: bytes
    timed_out: bool = False


class Launcher(Protocol):
    async def run(self, entry: str, args: Sequence[str], timeout: float) -> Finished: ...


class SubprocessLauncher:
    """`python -m <module> <args>`: a fresh interpreter per helper."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    async def run(self, entry: str, args: Sequence[str], timeout: float) -> Finished:
        proc = await asyncio.create_subprocess_exec(
            self.python, "-m", ENTRY_POINTS[entry], *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Finished(None, b"", b"", timed_out=True)
        return Finished(proc.returncode, out, err)


async def fd_ready(fd: int, timeout: float | None = None, *, write: bool = False) -> bool:
    """Wait until fd is readable (or writable); False on timeout."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    add(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        remove(fd)
