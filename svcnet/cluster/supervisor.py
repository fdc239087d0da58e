"""Run components in order, stop them in reverse; one failing stops them all.

Like k3s's executor: each component's start() returns when it is ready, so the
next one can rely on it; a signal or a crashed background task ends the run.
"""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from contextlib import suppress
from pathlib import Path
from typing import Protocol

log = logging.getLogger("svcnet.runtime")


class Component(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None) -> None:
        super().__init__(f"svcnet is already running (pid {pid})" if pid else "svcnet is already running")
        self.pid = pid


class PidLock:
    """An flock-held pid file: a second `svcnet up` on the same data dir sees it and stops."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(read_pid(self.path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def is_locked(path: Path) -> bool:
    """True while a live process holds the pid file's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def run(components: list[Component], ready_message: str | None = None) -> int:
    """Start components in order, then run until a signal; stop in reverse order."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Component] = []
    code = 0
    try:
        for component in components:
            await component.start()
            started.append(component)
        if ready_message:
            print(ready_message, flush=True)
        await stop.wait()
    except Exception:
        log.exception("a component failed; stopping")
        code = 1
    finally:
        for component in reversed(started):
            try:
                log.info("stopping %s", _describe(component))
                await component.stop()
            except Exception:
                log.exception("stopping %r", component)
                code = 1
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return code


def _describe(component: Component) -> str:
    inner = getattr(component, "component", None)  # a progress wrapper names what it wraps
    return type(inner if inner is not None else component).__name__
