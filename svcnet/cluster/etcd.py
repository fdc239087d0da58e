"""`svcnet up --storage etcd` (and `--etcd-members N`): a local etcd run for the user, supervised like
the agents.

Its data lives under the cluster's data dir (DATA_DIR/etcd, 0700). Clients (the API server, etcdctl)
reach each member only by a unix socket in that directory (DATA_DIR/etcd/<member>.client:0): only root
reaches it, as only root reaches the API server's own socket, where a port would hand the whole cluster
state to whoever reaches it, and etcd asks nothing of a client on such a socket.

With a cluster network (`up --nodes N`, N > 0), member n runs in its own network namespace
`svcnet-<id>-etcd-<n>` with an address on the cluster's LAN (192.168.0.90+n, host 1's LAN with --hosts),
and talks to its peers there, on port 2380, with mutual TLS: every member presents a peer certificate
for its address, signed by the etcd CA in DATA_DIR/etcd/pki (its own CA, as kubeadm's etcd/ca: no
kubelet or user certificate of the cluster CA is a peer certificate), and takes no connection without
one. So cutting a member's link cuts it off its quorum, as a real network fault would, and a pod, which
reaches the LAN, can neither join the cluster nor read it. The client socket still works across
namespaces (a path is not in any network namespace), so the API server stays a process of the host.
Without a cluster network (`--nodes 0`) the members peer over unix sockets in the same directory.

The members' names and peer URLs are kept in DATA_DIR/etcd/members.json (a member's peer URL is part
of the cluster's stored membership, and the member count cannot change under existing data); the
API server's store is etcd:///DATA_DIR/etcd/svcnet.client:0[,...] with every member. A member
that dies is restarted after a back-off; `svcnet down` stops them all (and removes the namespaces with
the cluster network), and `down`'s sweep ends those a dead `up` left. Compaction is the API server's,
on kube-apiserver's schedule (config.compaction_interval, --etcd-compaction-interval's 5 minutes).

The members all run on this machine: they survive one member dying or being cut off (the quorum
carries on), not the machine. docs/scaling-out.md says how to run them on several machines.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

from svcnet.cluster.supervised import Backoff, SupervisedProcess, progress, stop_all
from svcnet.cluster.topology import MAX_ETCD_MEMBERS, ClientPlan
from svcnet.core import pki
from svcnet.kernel.etcdserver import MemberSpec, PeerTls, healthy, member_command
from svcnet.kernel.process import process_id

LOCAL_ETCD = "etcd"  # the --storage value that asks `up` to run etcd itself
MAX_MEMBERS = MAX_ETCD_MEMBERS  # 7, etcd's own advice: more members only slow every write
MAX_SOCKET_PATH = 107  # sun_path: a longer socket path cannot be connected to
# 1 s, doubling to 30 s; a member that ran 60 s starts its back-off over.
BACKOFF = Backoff(initial=1.0, maximum=30.0, healthy_after=60.0)
STOP_TIMEOUT = 20.0  # then SIGKILL
READY_TIMEOUT = 60.0


class MembershipChanged(ValueError):
    pass


def etcd_dir(data_dir: Path) -> Path:
    return data_dir / "etcd"


def pid_path(data_dir: Path, name: str = "svcnet") -> Path:
    return etcd_dir(data_dir) / f"{name}.pid"


def member_names(size: int) -> list[str]:
    return ["svcnet"] if size == 1 else [f"svcnet-{index}" for index in range(1, size + 1)]


def member_specs(data_dir: Path, size: int = 1, on_lan: tuple[ClientPlan, ...] = ()) -> tuple[MemberSpec, ...]:
    """The members' names and data dirs: the ones they were first started with, if they were.

    on_lan (the topology's etcd namespaces, one per member): each member runs in its namespace
    and meets its peers on its LAN address with TLS; none: they peer over unix sockets."""
    if not 1 <= size <= MAX_MEMBERS:
        raise ValueError(f"etcd members: 1 to {MAX_MEMBERS} (3 or 5 for a quorum that survives losses)")
    if on_lan and len(on_lan) != size:
        raise ValueError(f"{size} etcd member(s) but {len(on_lan)} namespace(s) for them")
    directory = etcd_dir(data_dir).absolute()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    members_file = directory / "members.json"
    try:
        names = [str(name) for name in json.loads(members_file.read_text())["members"]]
    except (OSError, ValueError, KeyError, TypeError):
        names = member_names(size)
    if len(names) != size:
        raise MembershipChanged(f"the etcd under {directory} has {len(names)} member(s), not {size}: an etcd "
                                "cluster's size does not change by restarting it (etcdctl member add/remove does)")
    specs = tuple(_spec(directory, name, where) for name, where in zip(names, on_lan or (None,) * size, strict=True))
    _check_peer_urls(members_file, names, specs)
    longest = max(len(str(spec.client_socket)) for spec in specs)
    if longest > MAX_SOCKET_PATH:
        raise ValueError(f"the data dir {data_dir} is too long for etcd's unix sockets under it "
                         f"({longest} characters, at most {MAX_SOCKET_PATH}); use a shorter --data-dir")
    return specs


def pki_dir(data_dir: Path) -> Path:
    return etcd_dir(data_dir) / "pki"


def _spec(directory: Path, name: str, where: ClientPlan | None) -> MemberSpec:
    spec = MemberSpec(name, directory / f"{name}-data", socket_dir=directory)
    if where is None:
        return spec
    certs = directory / "pki"
    return replace(spec, namespace=where.namespace, peer_ip=where.ipv4,
                   peer_tls=PeerTls(certs / f"{name}-peer.crt", certs / f"{name}-peer.key", certs / "ca.crt"))


def _check_peer_urls(members_file: Path, names: list[str], specs: tuple[MemberSpec, ...]) -> None:
    """Write the members down the first time; refuse peer URLs other than the stored membership's (but
    for a lone member's). A file from before peer URLs were kept had the unix ones."""
    peers = [spec.peer_url for spec in specs]
    try:
        stored = json.loads(members_file.read_text())
    except (OSError, ValueError):
        stored = None
    if not isinstance(stored, dict):
        members_file.write_text(json.dumps({"members": names, "peers": peers}) + "\n")
        return
    before = stored.get("peers") or [f"unix://{name}.peer:0" for name in names]
    if before != peers and len(peers) == 1:
        # A lone member may move: its data keeps the old URL in the membership, which no peer ever dials.
        members_file.write_text(json.dumps({"members": names, "peers": peers}) + "\n")
    elif before != peers:
        raise MembershipChanged(f"the etcd under {members_file.parent} was started with its peers at "
                                f"{', '.join(before)}, not {', '.join(peers)} (with a cluster network, members "
                                "meet on the LAN; without one, on unix sockets): a member's peer URL is part of "
                                "the stored membership; use another --data-dir, or the same --nodes as before")


def write_peer_pki(data_dir: Path, specs: tuple[MemberSpec, ...]) -> None:
    """The etcd CA (made once, kept) and a peer certificate for each member on the LAN; keys 0600."""
    placed = [spec for spec in specs if spec.peer_tls is not None and spec.peer_ip is not None]
    if not placed:
        return
    directory = pki_dir(data_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
    if not (ca_cert.exists() and ca_key.exists()):
        key = pki.new_key()
        _write_private(ca_key, pki.key_pem(key))
        ca_cert.write_bytes(pki.cert_pem(pki.issue_ca("svcnet-etcd-ca", key)))
    authority = pki.Authority.from_pem(ca_cert.read_bytes(), ca_key.read_bytes())
    for spec in placed:
        assert spec.peer_tls is not None and spec.peer_ip is not None
        key = pki.new_key()
        _write_private(spec.peer_tls.key, pki.key_pem(key))
        # The address only: etcd matches a peer's certificate against the address it connects from, and
        # looks a DNS name up first (slowly, or not at all, from a namespace with no resolver).
        spec.peer_tls.cert.write_bytes(pki.cert_pem(pki.issue_peer(
            authority, spec.name, key.public_key(), ips=[spec.peer_ip])))


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def dsn(specs: tuple[MemberSpec, ...]) -> str:
    return "etcd://" + ",".join(spec.endpoint for spec in specs)


class _Member(SupervisedProcess):
    """One etcd member's process; a member that was killed leaves its socket files, and etcd cannot
    listen where one exists, so they go before every spawn."""

    def __init__(self, data_dir: Path, spec: MemberSpec, specs: tuple[MemberSpec, ...]) -> None:
        directory = etcd_dir(data_dir)
        super().__init__(f"etcd member {spec.name}", member_command(spec, specs), directory / f"{spec.name}.log",
                         pid_path=pid_path(data_dir, spec.name), backoff=BACKOFF, stop_timeout=STOP_TIMEOUT,
                         cwd=directory,  # where its sockets go
                         title="etcd" if len(specs) == 1 else None)
        self.spec = spec

    def before_spawn(self) -> None:
        for url in (self.spec.client_url, self.spec.peer_url):
            if url.startswith("unix://"):
                with contextlib.suppress(FileNotFoundError):
                    (self.cwd / url.removeprefix("unix://")).unlink()


class EtcdCluster:
    """The process.Component that runs, watches over and stops the local etcd members."""

    def __init__(self, data_dir: Path, size: int = 1, on_lan: tuple[ClientPlan, ...] = ()) -> None:
        self.data_dir = data_dir
        self.specs = member_specs(data_dir, size, on_lan)
        self.members: dict[str, _Member] = {}

    @property
    def dsn(self) -> str:
        return dsn(self.specs)

    async def start(self) -> None:
        await asyncio.to_thread(write_peer_pki, self.data_dir, self.specs)
        # Every member first: none becomes healthy before a majority of them runs.
        for spec in self.specs:
            member = self.members[spec.name] = _Member(self.data_dir, spec, self.specs)
            await member.spawn()
        for spec in self.specs:
            await self._until_healthy(self.members[spec.name])
            if spec.namespace is not None:
                progress(f"  etcd member {spec.name}: namespace {spec.namespace}, peers at {spec.peer_url} "
                         "(mutual TLS)")
        for member in self.members.values():
            member.supervise()

    async def _until_healthy(self, member: _Member) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not await asyncio.to_thread(healthy, member.spec):
            if member.process.returncode is not None:
                raise OSError(f"etcd member {member.spec.name} exited ({member.process.returncode}); "
                              f"see {member.log_path}")
            if time.monotonic() >= deadline:
                raise OSError(f"etcd member {member.spec.name} not healthy after {READY_TIMEOUT:.0f}s; "
                              f"see {member.log_path}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await stop_all(list(self.members.values()))
        progress("stopped etcd")


def stop_leftover_etcd(data_dir: Path, timeout: float = 20.0) -> list[int]:
    """End the etcd members a dead `up` left running (`svcnet down`'s sweep); their pids.

    A pid file alone is not trusted: the process must be an etcd whose data dir is this cluster's."""
    stopped = []
    for path in sorted(etcd_dir(data_dir).glob("*.pid")):
        pid = _leftover_member(path, data_dir)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        # A zombie counts as ended: an orphan's exit waits for init to reap it, and is over all the same.
        while process_id(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_id(pid) is not None:
            os.kill(pid, signal.SIGKILL)
        stopped.append(pid)
    return stopped


def _leftover_member(path: Path, data_dir: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    member_data = f"--data-dir={etcd_dir(data_dir).absolute() / path.stem}-data".encode()
    if not cmdline or not cmdline[0].endswith(b"etcd") or member_data not in cmdline:
        return None
    return pid
