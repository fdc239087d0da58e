"""A local etcd member: Debian's etcd-server binary, its data in a directory of ours.

Used by the tests (one etcd per test session, on loopback ports the kernel picked free) and by
`svcnet up --storage etcd`, whose members listen on unix sockets only (MemberSpec.socket_dir): in a
0700 directory nobody but root reaches them, where a loopback port would let any local user read
and write the cluster's state with no credentials. etcd takes a unix URL only as unix://HOST:PORT
and makes the socket file HOST:PORT in its working directory, so a member runs in socket_dir and
its URLs name files there. Data directories are 0700, as etcd wants them.

A member of `up` with a cluster network runs in its own network namespace (MemberSpec.namespace) and
meets its peers on the cluster's LAN (MemberSpec.peer_ip) with mutual TLS (MemberSpec.peer_tls):
its clients still come by the unix socket, which a path names across namespaces.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from svcnet.kernel.netns import netns_command

ETCD_BINARY = "etcd"  # /usr/bin/etcd from Debian's etcd-server package (scripts/bootstrap.sh)
PEER_PORT = 2380  # etcd's own default peer port, on a member's LAN address


class EtcdMissing(RuntimeError):
    pass


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class PeerTls:
    """The files a member proves itself to its peers with, and the CA it takes theirs from."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class MemberSpec:
    name: str
    data_dir: Path
    client_port: int = 0
    peer_port: int = 0
    socket_dir: Path | None = None  # unix sockets in this directory instead of loopback ports
    namespace: str | None = None  # the network namespace the member runs in (None: this one)
    peer_ip: str | None = None  # peers on this address's PEER_PORT, over TLS, instead of a unix socket
    peer_tls: PeerTls | None = None  # with peer_ip: required

    @property
    def client_url(self) -> str:
        if self.socket_dir is not None:
            return f"unix://{self.name}.client:0"  # the file socket_dir/<name>.client:0
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        if self.peer_ip is not None:
            return f"https://{self.peer_ip}:{PEER_PORT}"
        if self.socket_dir is not None:
            return f"unix://{self.name}.peer:0"
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def client_socket(self) -> Path | None:
        return None if self.socket_dir is None else self.socket_dir / f"{self.name}.client:0"

    @property
    def endpoint(self) -> str:
        """How a client names this member in an etcd:// DSN (an absolute socket path, or host:port)."""
        socket = self.client_socket
        return str(socket) if socket is not None else f"127.0.0.1:{self.client_port}"


def healthy(spec: MemberSpec, timeout: float = 2.0) -> bool:
    """Whether the member answers its /health with health true (it is part of a quorum)."""
    import http.client

    try:
        connection = http.client.HTTPConnection("localhost", spec.client_port or 80, timeout=timeout)
        socket_path = spec.client_socket
        if socket_path is not None:
            connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.sock.settimeout(timeout)
            connection.sock.connect(str(socket_path))
        try:
            connection.request("GET", "/health")
            return b'"true"' in connection.getresponse().read()
        finally:
            connection.close()
    except OSError:
        return False


def member_command(spec: MemberSpec, members: tuple[MemberSpec, ...] = ()) -> list[str]:
    """etcd's command line for one member of a cluster of members (default: only itself), in its namespace."""
    binary = shutil.which(ETCD_BINARY)
    if binary is None:
        raise EtcdMissing("etcd is not installed: install Debian's etcd-server package (scripts/bootstrap.sh)")
    argv = [
        binary,
        f"--name={spec.name}",
        f"--data-dir={spec.data_dir}",
        f"--listen-client-urls={spec.client_url}",
        f"--advertise-client-urls={spec.client_url}",
        f"--listen-peer-urls={spec.peer_url}",
        f"--initial-advertise-peer-urls={spec.peer_url}",
        "--initial-cluster=" + ",".join(f"{m.name}={m.peer_url}" for m in (members or (spec,))),
        "--initial-cluster-state=new",
        "--logger=zap",
        "--log-level=warn",
        *peer_tls_flags(spec),
    ]
    return argv if spec.namespace is None else netns_command(spec.namespace, argv)


def peer_tls_flags(spec: MemberSpec) -> list[str]:
    """A member on the LAN takes only peers whose certificate its CA signed (etcd's peer-client-cert-auth):
    whatever else reaches the LAN, a pod included, can neither join the cluster nor read its raft log."""
    if spec.peer_ip is None:
        return []
    if spec.peer_tls is None:
        raise ValueError(f"etcd member {spec.name}: peers on the LAN need TLS files")
    return [f"--peer-cert-file={spec.peer_tls.cert}", f"--peer-key-file={spec.peer_tls.key}",
            f"--peer-trusted-ca-file={spec.peer_tls.ca}", "--peer-client-cert-auth"]


def new_member(name: str, data_dir: Path) -> MemberSpec:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    return MemberSpec(name, data_dir / "member-data", free_loopback_port(), free_loopback_port())


def new_cluster(size: int, data_dir: Path) -> tuple[MemberSpec, ...]:
    """size members on loopback, each with its own data dir under data_dir."""
    return tuple(new_member(f"member-{index}", data_dir / f"member-{index}") for index in range(1, size + 1))


class LocalEtcd:
    """One etcd process started here; stop() ends it (by its pid) and waits for it."""

    def __init__(self, spec: MemberSpec, log_path: Path, members: tuple[MemberSpec, ...] = ()) -> None:
        self.spec = spec
        self.members = members
        self._log = open(log_path, "ab")  # noqa: SIM115  # kept open for the child's lifetime
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(member_command(self.spec, self.members), stdout=self._log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def restart(self) -> None:
        """Start the member again after it was killed (it rejoins with its data)."""
        if self.process.poll() is None:
            raise RuntimeError("etcd member is still running")
        self.process = self._spawn()

    @property
    def dsn(self) -> str:
        return f"etcd://127.0.0.1:{self.spec.client_port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until etcd answers on its client port (its health endpoint reports a leader)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see {self._log.name}")
            if healthy(self.spec):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"etcd not ready after {timeout:.0f}s; see {self._log.name}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
