"""Real network namespaces for integration tests: unique names per run, everything removed afterwards.

Each test's cluster id starts with this session's token, so a session-end
safety net can delete whatever a crashed test left, without touching
namespaces of other runs (or anything else on the machine).
"""
from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT_REASON = "needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to create network namespaces; CI runs these as root"
requires_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason=ROOT_REASON if os.geteuid() != 0 else "needs iproute2's `ip` for `ip netns exec`",
)

SESSION_TOKEN = secrets.token_hex(3)[:5]
_cluster_counter = itertools.count(1)


def new_cluster_id() -> str:
    """`i` + session token + counter: 1-12 [a-z0-9] and unique per run, so parallel runs never collide."""
    return f"i{SESSION_TOKEN}{next(_cluster_counter):03x}"


def session_prefix() -> str:
    return f"svcnet-i{SESSION_TOKEN}"


@pytest.fixture(scope="session", autouse=True)
def _delete_this_sessions_namespaces() -> Iterator[None]:
    """Safety net: whatever a test left behind (even after a crash in its own cleanup) goes at session end."""
    yield
    if os.geteuid() != 0:
        return
    from svcnet.kernel import netns

    for name in netns.list_netns():
        if name.startswith(session_prefix()):
            with contextlib.suppress(Exception):
                netns.delete_netns(name)


@pytest.fixture
def cluster_id() -> Iterator[str]:
    """A fresh cluster id; every namespace with its prefix is deleted afterwards, pass or fail."""
    cid = new_cluster_id()
    try:
        yield cid
    finally:
        from svcnet.cluster.topology import destroy_topology
        from svcnet.kernel.links import LinuxNetworkKernel

        destroy_topology(LinuxNetworkKernel(), cid)


# ---- probes run from inside a namespace


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(dst: str, timeout: float) -> bool:
    v6 = ":" in dst
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    request_type, reply_type = (128, 129) if v6 else (8, 0)
    ident, seq = secrets.randbits(16), 1
    payload = b"svcnet-ping"
    header = struct.pack("!BBHHH", request_type, 0, 0, ident, seq)
    checksum = 0 if v6 else _checksum(header + payload)  # the kernel fills ICMPv6 checksums
    packet = struct.pack("!BBHHH", request_type, 0, checksum, ident, seq) + payload
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        try:
            sock.sendto(packet, (dst, 0))
        except OSError:
            return False  # no route (ENETUNREACH) and the like: unreachable
        while True:
            ready, _, _ = select.select([sock], [], [], timeout)
            if not ready:
                return False
            data = sock.recv(2048)
            icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
            kind, _, _, got_id, got_seq = struct.unpack("!BBHHH", icmp[:8])
            if kind == reply_type and got_id == ident and got_seq == seq:
                return True


def ping(ns: str, dst: str, timeout: float = 2.0) -> bool:
    """One ICMP echo from inside `ns` (a raw socket created there): True when the reply comes back.

    Done in Python because `ping` is not installed everywhere CI runs.
    """
    from svcnet.kernel.netns import run_in_netns

    return run_in_netns(ns, _echo, dst, timeout)


def _connect(dst: str, port: int, timeout: float) -> bytes:
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((dst, port))
        chunks = []
        while chunk := sock.recv(1024):
            chunks.append(chunk)
        return b"".join(chunks)


def tcp_fetch(ns: str, dst: str, port: int, timeout: float = 3.0) -> bytes:
    """Connect from inside `ns` and return what the listener sent before closing."""
    from svcnet.kernel.netns import run_in_netns

    return run_in_netns(ns, _connect, dst, port, timeout)


_LISTENER = textwrap.dedent("""
    import socket, sys
    reply = sys.argv[2].encode()
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", int(sys.argv[1])))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        conn.sendall(reply)
        conn.close()
""")


@dataclass
class Listener:
    process: subprocess.Popen[bytes]
    port: int
    reply: bytes


@contextlib.contextmanager
def tcp_listener(ns: str, port: int, reply: str) -> Iterator[Listener]:
    """A tiny TCP server inside `ns` (started with `ip netns exec`); killed by its pid afterwards."""
    from svcnet.kernel.netns import spawn_in_netns

    proc = spawn_in_netns(ns, [sys.executable, "-c", _LISTENER, str(port), reply],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # returns when the socket listens (or the process died)
        assert line.strip() == b"ready", f"listener in {ns} did not start (exit {proc.poll()})"
        yield Listener(process=proc, port=port, reply=reply.encode())
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def lease_dir(tmp_path: Path) -> Path:
    path = tmp_path / "ipam"
    path.mkdir()
    return path
