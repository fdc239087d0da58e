"""Processes on this host: the Linux calls Python 3.11's os module lacks, process identity,
pid-file locks, and running a daemon's components until it is signalled.

setns/unshare/mount come from libc through ctypes (os.setns and os.unshare only
arrived in 3.12). Process identity is (pid, start time): a pid alone can be
reused after its process ends, the start time in /proc/<pid>/stat cannot.

`run` is every svcnet daemon's main loop, as k3s's executor: each component's
start() returns when it is ready, so the next one can rely on it; a signal or a
crashed component ends the run, and what started is stopped in reverse order.
"""
from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger("svcnet.kernel.process")

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

# The namespaces a container shares with its pod sandbox: /proc/<pid>/ns/<name> -> setns type.
POD_NAMESPACES: tuple[tuple[str, int], ...] = (("net", CLONE_NEWNET), ("uts", CLONE_NEWUTS), ("mnt", CLONE_NEWNS))

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace behind fd."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    def encoded(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    _check(_libc.mount(encoded(source), encoded(target), encoded(fstype), ctypes.c_ulong(flags), None),
           f"mount {target}")


PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> None:
    """Orphaned descendants are reparented to us (not to init), so we can reap them."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int) -> None:
    """Have the kernel send sig when our parent (the thread that forked us) exits. Cleared in our forks."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def thread_count() -> int:
    """Threads in this process, as the kernel counts them (C extensions' threads included)."""
    return len(os.listdir("/proc/self/task"))


def set_cmdline(argv: Sequence[str]) -> bool:
    """Make /proc/self/cmdline (what ps shows) read argv, in place: the exec's argument area
    (arg_start..arg_end, fields 48-49 of /proc/self/stat) gets argv NUL-separated, padded with NULs.
    It cannot grow (the environment follows it, and libc reads that), so what does not fit is cut;
    False then. (PR_SET_MM could point the kernel elsewhere, as systemd's rename_process does, but
    it needs CAP_SYS_RESOURCE, which containers often drop.)"""
    fields = _stat_fields(os.getpid())
    if fields is None or len(fields) < 47:
        return False
    start, end = int(fields[45]), int(fields[46])
    room = end - start
    data = b"\0".join(arg.encode() for arg in argv) + b"\0"
    fits = len(data) <= room
    if not fits:
        data = data[:room - 1] + b"\0"
    ctypes.memmove(start, data.ljust(room, b"\0"), room)
    return fits


PR_SET_MM, PR_SET_MM_ENV_END = 35, 11


def encode_environ(env: Mapping[str, str]) -> bytes:
    """An environment as the kernel keeps it after exec: KEY=VALUE strings, each ended by a NUL."""
    return b"".join(f"{key}={value}".encode() + b"\0" for key, value in env.items())


def environ_room() -> int:
    """Bytes of this process's environment area (env_start..env_end, fields 50-51 of /proc/self/stat),
    what set_environ can fill; a fork inherits the same area."""
    fields = _stat_fields(os.getpid())
    return int(fields[48]) - int(fields[47]) if fields is not None and len(fields) >= 49 else 0


def set_environ(env: Mapping[str, str]) -> bool:
    """Make /proc/self/environ read env, as it would after exec'ing with it: written in place over the
    environment area (what was there is the environment this process was exec'd with, which must not show
    through), the rest blanked with NULs and, where we may (CAP_SYS_RESOURCE), cut off by moving env_end.
    False, touching nothing, if env does not fit (see environ_room). os.environ is the caller's to set."""
    fields = _stat_fields(os.getpid())
    data = encode_environ(env)
    if fields is None or len(fields) < 49 or len(data) > int(fields[48]) - int(fields[47]):
        return False
    start, end = int(fields[47]), int(fields[48])
    ctypes.memmove(start, data.ljust(end - start, b"\0"), end - start)
    if data:
        _libc.prctl(PR_SET_MM, PR_SET_MM_ENV_END, ctypes.c_ulong(start + len(data)), 0, 0)  # best effort
    return True


def live_group_members(pgid: int) -> list[int]:
    """Pids of running (not zombie) processes in a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def umount_detach(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


@dataclass(frozen=True)
class ProcessId:
    """A process, named so that a later process reusing the pid never matches."""

    pid: int
    start_ticks: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "startTicks": self.start_ticks}

    @staticmethod
    def from_json(data: dict[str, int] | None) -> ProcessId | None:
        if not data:
            return None
        return ProcessId(int(data["pid"]), int(data["startTicks"]))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def process_id(pid: int) -> ProcessId | None:
    """The identity of a live process, or None if pid names no live process."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return ProcessId(pid, int(fields[19]))  # field 22 of stat: starttime


def is_alive(proc: ProcessId | None) -> bool:
    """True while this very process runs (a zombie, or a new process on the same pid, is not it)."""
    return proc is not None and process_id(proc.pid) == proc


def open_pidfd(proc: ProcessId) -> int | None:
    """A pidfd for exactly this process, or None if it is gone (checked after opening, so race-free)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return None
    if not is_alive(proc):
        os.close(fd)
        return None
    return fd


def signal_process(proc: ProcessId, sig: int) -> bool:
    """Send sig only if proc is still the same process; True if sent."""
    fd = open_pidfd(proc)
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def signal_group(proc: ProcessId, sig: int) -> None:
    """Signal the process group led by proc (its whole process tree unless something left the group)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_namespaces(proc: ProcessId) -> list[tuple[int, int]]:
    """Open proc's pod namespaces as (fd, nstype); raises ProcessLookupError if proc is gone."""
    fds: list[tuple[int, int]] = []
    try:
        for name, nstype in POD_NAMESPACES:
            fds.append((os.open(f"/proc/{proc.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), nstype))
    except FileNotFoundError:
        close_all(fds)
        raise ProcessLookupError(errno.ESRCH, f"process {proc.pid} is gone") from None
    if not is_alive(proc):  # the pid was reused between our check and the opens
        close_all(fds)
        raise ProcessLookupError(errno.ESRCH, f"process {proc.pid} is gone")
    return fds


def close_all(fds: list[tuple[int, int]]) -> None:
    for fd, _ in fds:
        os.close(fd)


# ---- daemons: pid-file locks and the component runner


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

    # The pid is written in place, padded to one width, and blanked rather than unlinked on release:
    # the file keeps its disk block, so a restart on a full disk can still take the lock.
    WIDTH = 20

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(read_pid(self.path)) from None
        try:
            self._write(fd, str(os.getpid()))
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with suppress(OSError):  # blank it: nobody runs under this lock any more
                self._write(self._fd, "")
            os.close(self._fd)
            self._fd = None

    def _write(self, fd: int, text: str) -> None:
        os.pwrite(fd, f"{text:<{self.WIDTH}}\n".encode(), 0)
        os.ftruncate(fd, self.WIDTH + 1)  # a longer line from an older svcnet goes
        os.fsync(fd)


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
