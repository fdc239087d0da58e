"""One child process that `svcnet up` keeps running: restarted after a back-off when it dies, its pid
in a file for `svcnet down`'s sweep, stopped with SIGTERM and, after a grace, SIGKILL.

The agents and proxies (supervisor.py), the etcd members (etcd.py) and the other API servers with
their controller managers and schedulers (apiservers.py) all run as these, each with its own
back-off; a subclass adds what happens around a restart (an etcd member's stale sockets, an API
server's controllers).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("svcnet.cluster")


def progress(message: str) -> None:
    print(f"svcnet: {message}", flush=True)


@dataclass(frozen=True)
class Backoff:
    """The wait before each restart: initial, doubled after every restart up to maximum, as the
    kubelet's crash-loop back-off; a process that ran longer than healthy_after starts it over."""

    initial: float = 1.0
    maximum: float = 30.0
    healthy_after: float = 60.0

    def reset_if_healthy(self, delay: float, ran: float) -> float:
        """The wait before this restart: delay, or initial if the process ran for longer than healthy_after."""
        return self.initial if ran > self.healthy_after else delay

    def following(self, delay: float) -> float:
        return min(delay * 2, self.maximum)


class SupervisedProcess:
    """One child process in its own session (Ctrl-C on `up` reaches only `up`, which stops it itself),
    its output appended to log_path, its pid in pid_path (if any) from its spawn to its stop.

    name is what warnings and errors call it ("the agent for node-1"); title, what the restart
    progress lines do (default: name). Subclasses hook in around a restart: before_spawn,
    exited, serving and restarted."""

    restarting = "restarting it"  # what the exit line says comes next

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *, pid_path: Path | None = None,
                 backoff: Backoff = Backoff(), stop_timeout: float = 15.0, cwd: Path | None = None,
                 title: str | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """clock and sleep: a test's fake time."""
        self.name, self.title = name, title or name
        self.argv, self.log_path, self.pid_path, self.cwd = list(argv), log_path, pid_path, cwd
        self.backoff, self.stop_timeout = backoff, stop_timeout
        self._clock, self._sleep = clock, sleep
        self.process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def before_spawn(self) -> None:
        """Called before every spawn."""

    async def exited(self) -> None:
        """Called when the process died, before the back-off."""

    async def serving(self) -> None:
        """Returns once a respawned process serves; OSError if it will not (it is killed, and
        restarted after the next back-off)."""

    async def restarted(self) -> None:
        """Called once a respawned process serves."""

    async def spawn(self) -> None:
        self._stopping = False
        self.before_spawn()
        with open(self.log_path, "ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, cwd=self.cwd)
        if self.pid_path is not None:
            self.pid_path.write_text(f"{self.process.pid}\n")

    def supervise(self) -> None:
        """Restart the spawned process whenever it dies, until stop()."""
        self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def start(self) -> None:
        await self.spawn()
        self.supervise()

    async def _supervise(self) -> None:
        delay = self.backoff.initial
        while not self._stopping and self.process is not None:
            started = self._clock()
            code = await self.process.wait()
            if self._stopping:
                return
            delay = self.backoff.reset_if_healthy(delay, self._clock() - started)
            progress(f"{self.title} exited ({code}); {self.restarting} in {delay:g}s")
            await self.exited()
            await self._sleep(delay)
            delay = self.backoff.following(delay)
            if self._stopping:
                return
            await self.spawn()
            try:
                await self.serving()
            except OSError as exc:  # it died again, or hangs (then it is killed): the loop restarts it
                progress(str(exc))
                if self.process.returncode is None:
                    self.process.kill()
                continue
            progress(f"restarted {self.title} (pid {self.process.pid})")
            await self.restarted()

    async def stop_restarting(self) -> None:
        """End the supervision (a back-off, a restart under way); the process, if running, runs on."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def stop(self) -> None:
        """No more restarts; SIGTERM, and SIGKILL if it has not ended after stop_timeout."""
        await self.stop_restarting()
        proc = self.process
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout)
            except TimeoutError:
                log.warning("%s did not stop; killing it", self.name)
                proc.kill()
                await proc.wait()
        if self.pid_path is not None:
            self.pid_path.unlink(missing_ok=True)


async def stop_all(children: Sequence[SupervisedProcess]) -> None:
    """Stop them together: every one gets its SIGTERM at once, and its whole grace."""
    await asyncio.gather(*(child.stop() for child in children))
