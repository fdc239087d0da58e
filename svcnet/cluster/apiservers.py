"""`svcnet up --apiservers N`: several API servers over the cluster's etcd, as kubeadm's HA control plane.

The first API server is `up`'s own, in its process, as with one. Each further one is a peer,
as one more kubeadm control-plane node: a supervised `svcnet apiserver` process with its own
data dir (DATA_DIR/apiservers/apiserver-K/, holding a copy of the cluster's pki/), listening
on loopback at --port + K and, with a cluster network, on its own LAN address at --port from its
namespace (so default/kubernetes names every server), with its own controller manager and scheduler (`svcnet controllers`
processes talking to that server, leader-elected on the same Leases as `up`'s own). Clients
reach them all through an apiserver-lb on --port + 1 (k3s's agent load balancer's 6444 for
6443): the admin kubeconfig, the agents' and the proxies' point there; the controller
managers and schedulers each talk to their own server, as kubeadm's do.

Every child is restarted after a back-off when it dies. When a peer's API server dies, its
controller manager and scheduler are stopped with it and started anew once it serves again: new
processes, so new leader-election identities, as kube-controller-manager comes back after it
lost its Lease (upstream exits then). An instance that kept its identity would, on its server's
return, find itself still the Lease's holder and renew at once, and the leadership would never
move to a server that stayed up. `svcnet down` after a dead `up` ends those its pid files name
(checked to be this data dir's).
"""
from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from svcnet.api.errors import ApiError
from svcnet.apiserver.credentials import write_secret
from svcnet.client.leaderelection import LEASE_NAMESPACE
from svcnet.client.leaderelection import LEASES as LEASE_RESOURCE
from svcnet.client.loadbalancer import ApiServerLoadBalancer
from svcnet.cluster.identities import LB_SPEAKER, OVERLAY, kubeconfig_path
from svcnet.cluster.supervised import Backoff, SupervisedProcess, progress
from svcnet.cluster.topology import ClientPlan
from svcnet.controllers.daemon import ControllerFiles
from svcnet.kernel import process

PEERS_DIR = "apiservers"
MAX_APISERVERS = 7
# A controller manager or scheduler that died alone: 1 s, doubling to 30 s; one that ran 60 s starts it over.
CONTROLLER_BACKOFF = Backoff(initial=1.0, maximum=30.0, healthy_after=60.0)
# An API server that died: as the kubelet restarts a crashed static pod (its back-off starts at 10 s; it
# grows to 5 minutes there, to 30 s here).
SERVER_BACKOFF = Backoff(initial=10.0, maximum=30.0, healthy_after=60.0)
READY_TIMEOUT = 60.0
LEASES = ("kube-controller-manager", "kube-scheduler")
ROLES = ("apiserver", "controller-manager", "scheduler")


def peer_dir(data_dir: Path, index: int) -> Path:
    return data_dir / PEERS_DIR / f"apiserver-{index}"


def peer_port(port: int, index: int) -> int:
    """API server K (2, 3, ...) listens on --port + K; --port + 1 is the load balancer's."""
    return port + index


def balancer_port(port: int) -> int:
    return port + 1


def peer_summary(cfg: Any, count: int) -> str:
    """The line `up` prints about its other API servers and the load balancer in front of them all."""
    others = ", ".join(f"https://127.0.0.1:{peer_port(cfg.port, k)}" for k in range(2, count + 1))
    return (f"{count} API servers over one etcd: {cfg.url} (this process), {others}; the kubeconfig, "
            f"agents and proxies use the load balancer at https://127.0.0.1:{balancer_port(cfg.port)}")


def check_apiservers(count: int, storage: str) -> str | None:
    """Why `--apiservers count` cannot run over this --storage, or None."""
    if not 1 <= count <= MAX_APISERVERS:
        return f"--apiservers: 1 to {MAX_APISERVERS}, got {count}"
    if count > 1 and not (storage == "etcd" or storage.startswith("etcd://")):
        return (f"--apiservers {count} needs --storage etcd (or an etcd:// DSN): several API server processes "
                "share one store, and SQLite's and memory's watches do not cross processes")
    return None


def point_kubeconfig_at(path: Path, server_url: str, dest: Path | None = None) -> Path:
    """Write path's kubeconfig (to dest, default in place) with every cluster's server set to server_url."""
    doc = yaml.safe_load(path.read_text())
    for cluster in doc.get("clusters") or []:
        cluster["cluster"]["server"] = server_url
    dest = dest or path
    write_secret(dest, yaml.safe_dump(doc, sort_keys=False).encode())
    return dest


class _PeerServer(SupervisedProcess):
    """API server K's process: when it dies, its controller manager and scheduler are stopped with it,
    and started anew once it serves again (new processes, so new leader-election identities)."""

    restarting = "stopping its controller manager and scheduler, restarting them all"

    def __init__(self, index: int, argv: list[str], directory: Path, controllers: list[SupervisedProcess]) -> None:
        super().__init__(f"the apiserver of API server {index}", argv, directory / "apiserver.log",
                         pid_path=directory / "apiserver.pid", backoff=SERVER_BACKOFF, title=f"API server {index}")
        self.socket_path = directory / "apiserver.sock"
        self.controllers = controllers

    async def exited(self) -> None:
        for controller in self.controllers:
            await controller.stop()

    async def serving(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not await asyncio.to_thread(socket_ready, self.socket_path):
            if self.process is None or self.process.returncode is not None:
                raise OSError(f"{self.name} exited; see {self.log_path}")
            if time.monotonic() >= deadline:
                raise OSError(f"{self.name} not ready after {READY_TIMEOUT:.0f}s; see {self.log_path}")
            await asyncio.sleep(0.1)

    async def restarted(self) -> None:
        await self.start_controllers()

    async def start_controllers(self) -> None:
        for controller in self.controllers:
            await controller.start()


class ApiServerPeers:
    """API servers 2..N, each with its controller manager and scheduler, as supervised processes.

    start() returns once every peer answers /readyz and the first peer's controller manager and
    scheduler hold their Leases (so which instance leads does not depend on which process happened
    to start faster: `up`'s own, started next, stand by)."""

    def __init__(self, data_dir: Path, count: int, port: int, storage_dsn: str, manager_names: list[str],
                 api: Callable[[], Any], lb_pool: str | None = None, on_lan: tuple[ClientPlan, ...] = (),
                 control_plane_endpoint: str | None = None, python: str = sys.executable) -> None:
        """on_lan: server K's namespace on the cluster's LAN (the (K-1)-th), where it also listens on
        --port (server 1's), as each control-plane node serves 6443 on its own address; none: loopback only.
        control_plane_endpoint: what cluster-info names (server 1's address), which the others leave as it is."""
        self.data_dir = data_dir
        self.indexes = list(range(2, count + 1))
        self.port = port
        self.storage_dsn = storage_dsn
        self.manager_names = manager_names
        self.api = api
        self.lb_pool = lb_pool
        self.on_lan = on_lan
        self.control_plane_endpoint = control_plane_endpoint
        self.python = python
        self.children: dict[tuple[int, str], SupervisedProcess] = {}

    def servers(self) -> list[str]:
        return [f"127.0.0.1:{peer_port(self.port, k)}" for k in self.indexes]

    def argv(self, index: int, role: str) -> list[str]:
        base, directory = [self.python, "-m", "svcnet"], peer_dir(self.data_dir, index)
        if role == "apiserver":
            argv = [*base, "apiserver", "--data-dir", str(directory), "--bind-address", "127.0.0.1",
                    "--port", str(peer_port(self.port, index)), "--storage", self.storage_dsn]
            if self.on_lan:
                lan = self.on_lan[index - 2]
                argv += ["--netns", lan.namespace, "--advertise-address", lan.ipv4, "--advertise-port", str(self.port)]
            if self.control_plane_endpoint:
                argv += ["--control-plane-endpoint", self.control_plane_endpoint]
            return argv
        files = ControllerFiles.in_data_dir(self.data_dir)
        argv = [*base, "controllers", "--kubeconfig", str(directory / f"{role}.conf")]
        if role == "scheduler":
            return [*argv, "--controllers", "scheduler"]
        argv += ["--controllers", ",".join(self.manager_names),
                 "--service-account-private-key-file", str(files.service_account_private_key_file),
                 "--root-ca-file", str(files.root_ca_file),
                 "--cluster-signing-cert-file", str(files.cluster_signing_cert_file),
                 "--cluster-signing-key-file", str(files.cluster_signing_key_file)]
        return [*argv, "--lb-pool", self.lb_pool] if self.lb_pool else argv

    async def start(self) -> None:
        for index in self.indexes:
            directory = peer_dir(self.data_dir, index)
            await asyncio.to_thread(self._prepare, directory, index)
            controllers = [SupervisedProcess(f"the {role} of API server {index}", self.argv(index, role),
                                             directory / f"{role}.log", pid_path=directory / f"{role}.pid",
                                             backoff=CONTROLLER_BACKOFF) for role in ROLES[1:]]
            server = _PeerServer(index, self.argv(index, "apiserver"), directory, controllers)
            self.children[index, "apiserver"] = server
            self.children.update(((index, role), child) for role, child in zip(ROLES[1:], controllers, strict=True))
            await server.spawn()
            await server.serving()
            lan = (f" and https://{self.on_lan[index - 2].ipv4}:{self.port} in namespace "
                   f"{self.on_lan[index - 2].namespace}") if self.on_lan else ""
            progress(f"started API server {index} at https://127.0.0.1:{peer_port(self.port, index)}{lan} "
                     f"(pid {server.process.pid}, log {server.log_path})")
            await server.start_controllers()
            server.supervise()
            if index == self.indexes[0]:
                await self._until_leases_held()
        progress(f"started the controller manager and scheduler of API server{'s' if len(self.indexes) > 1 else ''} "
                 + ", ".join(str(k) for k in self.indexes) + " (leader-elected)")

    def _prepare(self, directory: Path, index: int) -> None:
        """The peer's data dir: the cluster's pki/ (one CA, token and service-account key for every
        server, as kubeadm copies them to each control-plane node) and its components' kubeconfigs."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory.parent, 0o700)
        os.chmod(directory, 0o700)
        pki = directory / "pki"
        pki.mkdir(mode=0o700, exist_ok=True)
        for source in (self.data_dir / "pki").iterdir():
            if source.is_file():
                write_secret(pki / source.name, source.read_bytes())
        url = f"https://127.0.0.1:{peer_port(self.port, index)}"
        for role in ("controller-manager", "scheduler"):
            point_kubeconfig_at(kubeconfig_path(self.data_dir, role), url, directory / f"{role}.conf")

    async def _until_leases_held(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with self.api() as api:
            while True:
                holders = [await _holder(api, name) for name in LEASES]
                if all(holders) or time.monotonic() >= deadline:
                    return
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        # No server restarts first: a restart starts its controllers anew.
        for (_, role), child in self.children.items():
            if role == "apiserver":
                await child.stop_restarting()
        # Controllers first, then their servers: a controller manager never outlives its API server.
        for role in reversed(ROLES):
            for (_, child_role), child in self.children.items():
                if child_role == role:
                    await child.stop()
        if self.children:
            progress("stopped the other API servers")


async def _holder(api: Any, name: str) -> str:
    try:
        lease = await api.get(LEASE_RESOURCE, LEASE_NAMESPACE, name)
    except ApiError:
        return ""
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


class BalancedClients:
    """The apiserver-lb in front of every API server; once it listens, the admin kubeconfig and the
    node components' point at it (the controller managers and schedulers keep their own server)."""

    def __init__(self, data_dir: Path, port: int, servers: list[str], nodes: list[str],
                 admin_kubeconfig: Path) -> None:
        self.data_dir = data_dir
        self.nodes = nodes
        self.admin_kubeconfig = admin_kubeconfig
        self.url = f"https://127.0.0.1:{balancer_port(port)}"
        self.balancer = ApiServerLoadBalancer(f"127.0.0.1:{balancer_port(port)}", servers)

    async def start(self) -> None:
        await self.balancer.start()
        clients = [self.admin_kubeconfig, kubeconfig_path(self.data_dir, "kube-proxy"),
                   kubeconfig_path(self.data_dir, LB_SPEAKER), kubeconfig_path(self.data_dir, OVERLAY),
                   *(kubeconfig_path(self.data_dir, f"kubelet-{node}") for node in self.nodes)]
        for path in clients:
            if path.exists():
                point_kubeconfig_at(path, self.url)
        progress(f"started the API server load balancer at {self.url} for "
                 + ", ".join(self.balancer.pool.servers) + f" (the kubeconfig {self.admin_kubeconfig} uses it)")

    async def stop(self) -> None:
        await self.balancer.stop()


def socket_ready(path: Path) -> bool:
    """Whether the API server on this unix socket answers /readyz with 200."""
    if not path.exists():
        return False
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(str(path))
        conn = http.client.HTTPConnection("localhost")
        conn.sock = sock
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def stop_leftover_peers(data_dir: Path, timeout: float = 15.0) -> list[int]:
    """End the peers' processes a dead `up` left (`svcnet down`'s sweep); their pids. A pid file
    alone is not trusted: the process's command line must name a file under that peer's dir."""
    found = []
    for pid_file in sorted((data_dir / PEERS_DIR).glob("apiserver-*/*.pid")):
        if pid_file.name == "svcnet.pid":  # the peer API server's own lock; apiserver.pid names it
            continue
        pid = _leftover(pid_file)
        pid_file.unlink(missing_ok=True)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            found.append((pid, pid_file.parent))
    deadline = time.monotonic() + timeout
    for pid, directory in found:
        while _names(pid, directory) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _names(pid, directory):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in found]


def _leftover(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _names(pid, pid_file.parent) else None


def _names(pid: int, directory: Path) -> bool:
    """Whether pid is alive (not a zombie) and runs svcnet with an argument at or under directory."""
    if process.process_id(pid) is None:  # gone, or a zombie
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    marker = str(directory).encode()
    return b"svcnet" in cmdline and any(arg == marker or arg.startswith(marker + b"/") for arg in cmdline)

