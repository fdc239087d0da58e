"""Sysctls inside a named network namespace, never the host's.

Only `net.*` keys are accepted: those are the per-namespace ones (ip_forward,
conf.*.forwarding, bridge-nf-call-iptables on kernels >= 5.3). Writing goes
through /proc/sys from a thread that has joined the namespace, so the value
lands in that namespace alone.
"""
from __future__ import annotations

import os
import re

from svcnet.kernel import KernelError
from svcnet.kernel.netns import run_in_netns

_KEY = re.compile(r"^net(\.[A-Za-z0-9_\-]+)+$")


def sysctl_path(key: str) -> str:
    """`net.ipv4.ip_forward` → /proc/sys/net/ipv4/ip_forward; anything outside net.* is refused."""
    if not _KEY.match(key):
        raise KernelError(f"refusing sysctl {key!r}: only per-namespace net.* keys are written")
    return "/proc/sys/" + key.replace(".", "/")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read_sysctl(ns: str, key: str) -> str | None:
    """The value inside namespace `ns`, or None when this kernel has no such key."""
    return run_in_netns(ns, _read, sysctl_path(key))


def write_sysctl(ns: str, key: str, value: str) -> None:
    path = sysctl_path(key)
    try:
        run_in_netns(ns, _write, path, value)
    except FileNotFoundError:
        raise KernelError(f"sysctl {key} does not exist in this kernel (namespace {ns})") from None
    except OSError as e:
        raise KernelError(f"cannot write sysctl {key}={value} in {ns}: {os.strerror(e.errno or 0)}") from e
