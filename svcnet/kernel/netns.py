"""Named network namespaces, the `ip netns` way: a bind mount at /run/netns/NAME.

Because the layout is iproute2's, `ip netns list` shows what svcnet made and
`ip netns exec NAME CMD` looks inside. Code runs inside a namespace on a
short-lived thread that `setns`es and then exits, so the calling thread (and
the rest of the process) never leaves the namespace it is in. Nothing here
forks, so it is safe in a process that runs threads and an asyncio loop.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.thread import BrokenThreadPool
from typing import Any, TypeVar

from pyroute2 import netns as pyroute2_netns

from svcnet.kernel import NETNS_RUN_DIR, KernelError, NamespaceNotFound, check_namespace_name

CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, check_namespace_name(name))


def list_netns() -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(NETNS_RUN_DIR)))
    except FileNotFoundError:
        return ()


def create_netns(name: str) -> None:
    """Create the namespace unless it exists, as `ip netns add` does, without forking.

    A fresh thread unshares its network namespace and pyroute2's `attach`
    bind-mounts it at /run/netns/NAME (making /run/netns a shared mount first,
    as iproute2 does); the thread then ends and the mount keeps the namespace.
    """
    if os.path.exists(netns_path(name)):
        return

    def unshare_and_attach() -> None:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise KernelError(f"unshare for {name}: {os.strerror(ctypes.get_errno())}")
        pyroute2_netns.attach(name, threading.get_native_id())

    try:
        _on_fresh_thread(name, unshare_and_attach)
    except FileExistsError:
        return  # created concurrently: the goal is met
    except OSError as e:
        with contextlib.suppress(OSError):  # a half-made mount point
            pyroute2_netns.remove(name)
        raise KernelError(f"cannot create network namespace {name}: {e}") from e


def delete_netns(name: str) -> None:
    """Unmount and unlink the namespace; the kernel frees it (and its links) once nothing holds it."""
    path = netns_path(name)
    if not os.path.exists(path):
        return
    try:
        pyroute2_netns.remove(name)
    except FileNotFoundError:
        return
    except OSError as e:
        raise KernelError(f"cannot delete network namespace {name}: {e}") from e


def open_netns(name: str) -> int:
    """An fd for the namespace (for setns or IFLA_NET_NS_FD); the caller closes it."""
    try:
        return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFound(f"network namespace {name} does not exist") from None


def run_in_netns(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Call fn(*args) on a fresh thread that has joined namespace `name`; return or raise its outcome.

    Sockets the function creates belong to that namespace and stay there after
    it returns, and /proc/sys/net seen from that thread is the namespace's.
    """
    return _call_in(open_netns(name), name, fn, args,
                    lambda why: KernelError(f"setns into {name}: {why}"))


def socket_in_netns(path: str, family: int, kind: int) -> socket.socket:
    """A socket made inside the network namespace at `path` (/proc/PID/ns/net or /run/netns/NAME);
    it stays that namespace's. A missing namespace or a failed setns is an OSError, as a socket's."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    return _call_in(fd, path, socket.socket, (family, kind), lambda why: OSError(f"setns into {path}: {why}"))


def _call_in(fd: int, label: str, fn: Callable[..., T], args: tuple[Any, ...],
             setns_error: Callable[[str], Exception]) -> T:
    """fn(*args) on a fresh thread that joined the namespace open at fd (closed afterwards)."""

    def enter_and_call() -> T:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise setns_error(os.strerror(ctypes.get_errno()))
        return fn(*args)

    try:
        return _on_fresh_thread(label, enter_and_call)
    finally:
        os.close(fd)


class NamespaceThread:
    """A long-lived thread that joined a namespace and runs calls there, one at a time.

    For state that must be made inside the namespace and used many times (a
    netlink socket: pyroute2's sync IPRoute keeps its socket per thread, so it
    must be used on the thread that made it). `setup()` runs once on the
    thread; each `call(fn)` gets its result. Nothing but these calls runs on
    the thread, so no other code finds itself in the namespace.
    """

    def __init__(self, name: str, setup: Callable[[], T]) -> None:
        fd = open_netns(name)
        self.name = name
        self._state: dict[str, Any] = {}

        def enter() -> None:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise KernelError(f"setns into {name}: {os.strerror(ctypes.get_errno())}")
            self._state["value"] = setup()

        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"netns:{name}")
        try:
            self._pool.submit(enter).result()
        except BaseException:
            self._pool.shutdown(wait=True)
            raise
        finally:
            os.close(fd)

    def call(self, fn: Callable[[Any], T]) -> T:
        """fn(what setup made), on the namespace's thread."""
        try:
            return self._pool.submit(lambda: fn(self._state["value"])).result()
        except (BrokenThreadPool, RuntimeError) as e:  # closed or broken: the caller's error, not a hang
            if isinstance(e, RuntimeError) and "shutdown" not in str(e):
                raise
            raise KernelError(f"namespace thread for {self.name} is closed") from e

    def close(self, teardown: Callable[[Any], None]) -> None:
        """teardown(what setup made) on the thread, after the calls already queued; then the thread ends."""
        with contextlib.suppress(RuntimeError):
            self._pool.submit(lambda: teardown(self._state.get("value"))).result()
        self._pool.shutdown(wait=True)


def listen_tcp_in_netns(name: str, host: str, port: int, backlog: int = 128) -> socket.socket:
    """A non-blocking TCP socket listening on host:port inside namespace `name`, for a server in this
    process (asyncio's `sock=`, aiohttp's SockSite): bound from a thread that joined the namespace, it
    accepts that namespace's connections while the rest of the process stays where it is."""

    def bind_and_listen() -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted server rebinds at once
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return run_in_netns(name, bind_and_listen)


def _on_fresh_thread(label: str, fn: Callable[[], T]) -> T:
    """Run fn on a new thread and hand its result or exception back.

    The thread ends right after, still in whatever namespace fn moved it to:
    nothing else ever runs on it, so no other code can find itself in the
    wrong namespace.
    """
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=call, name=f"netns:{label}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def netns_command(name: str, argv: Sequence[str]) -> list[str]:
    """argv that runs a command inside the namespace.

    `ip netns exec` is simpler and more robust here than a Python pre-exec
    setns: it also remounts /sys for the namespace and sets up /etc/netns/NAME.
    """
    return ["ip", "netns", "exec", check_namespace_name(name), *argv]


def spawn_in_netns(name: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start a process inside the namespace; the caller owns it (and ends it by its pid)."""
    if not os.path.exists(netns_path(name)):
        raise NamespaceNotFound(f"network namespace {name} does not exist")
    return subprocess.Popen(netns_command(name, argv), **popen_kwargs)


def run_command_in_netns(name: str, argv: Sequence[str], *, timeout: float = 30.0,
                         input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a command inside the namespace to completion and return what it printed."""
    if not os.path.exists(netns_path(name)):
        raise NamespaceNotFound(f"network namespace {name} does not exist")
    return subprocess.run(netns_command(name, argv), capture_output=True, timeout=timeout,
                          input=input, check=False)
