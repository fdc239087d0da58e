"""`svcnet up --storage etcd` (and `--etcd-members N`): a local etcd run for the user, supervised like
the agents.

Its data lives under the cluster's data dir (DATA_DIR/etcd, 0700); each member listens, for clients
and for its peers, only on unix sockets in that directory (DATA_DIR/etcd/<member>.client:0 and
.peer:0): only root reaches them, as only root reaches the API server's own socket, where a loopback
port would hand the whole cluster state to any local user. The members' names are kept in
DATA_DIR/etcd/members.json (a member's peer URL is part of the cluster's stored membership, and the
member count cannot change under existing data); the API server's store is
etcd:///DATA_DIR/etcd/svcnet.client:0[,...] with every member. A member
that dies is restarted after a back-off; `svcnet down` stops them all, and `down`'s sweep ends those a
dead `up` left. Compaction is the API server's, on kube-apiserver's schedule (config.compaction_interval,
--etcd-compaction-interval's 5 minutes).

The members of a multi-member cluster all run on this machine: they survive one member process dying
(the quorum carries on), not the machine. docs/scaling-out.md says how to run them on
several machines.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

from svcnet.kernel.etcdserver import MemberSpec, healthy, member_command

log = logging.getLogger("svcnet.cluster.etcd")

LOCAL_ETCD = "etcd"  # the --storage value that asks `up` to run etcd itself
MAX_MEMBERS = 7  # etcd's own advice: more members only slow every write
MAX_SOCKET_PATH = 107  # sun_path: a longer socket path cannot be connected to
RESTART_INITIAL = 1.0
RESTART_MAX = 30.0
HEALTHY_AFTER = 60.0  # a member that ran this long starts its back-off over
READY_TIMEOUT = 60.0


class MembershipChanged(ValueError):
    pass


def etcd_dir(data_dir: Path) -> Path:
    return data_dir / "etcd"


def pid_path(data_dir: Path, name: str = "svcnet") -> Path:
    return etcd_dir(data_dir) / f"{name}.pid"


def member_names(size: int) -> list[str]:
    return ["svcnet"] if size == 1 else [f"svcnet-{index}" for index in range(1, size + 1)]


def member_specs(data_dir: Path, size: int = 1) -> tuple[MemberSpec, ...]:
    """The members' names and data dirs: the ones they were first started with, if they were."""
    if not 1 <= size <= MAX_MEMBERS:
        raise ValueError(f"etcd members: 1 to {MAX_MEMBERS} (3 or 5 for a quorum that survives losses)")
    directory = etcd_dir(data_dir).absolute()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    members_file = directory / "members.json"
    try:
        names = [str(name) for name in json.loads(members_file.read_text())["members"]]
    except (OSError, ValueError, KeyError, TypeError):
        names = member_names(size)
        members_file.write_text(json.dumps({"members": names}) + "\n")
    if len(names) != size:
        raise MembershipChanged(f"the etcd under {directory} has {len(names)} member(s), not {size}: an etcd "
                                "cluster's size does not change by restarting it (etcdctl member add/remove does)")
    specs = tuple(MemberSpec(name, directory / f"{name}-data", socket_dir=directory) for name in names)
    longest = max(len(str(spec.client_socket)) for spec in specs)
    if longest > MAX_SOCKET_PATH:
        raise ValueError(f"the data dir {data_dir} is too long for etcd's unix sockets under it "
                         f"({longest} characters, at most {MAX_SOCKET_PATH}); use a shorter --data-dir")
    return specs


def dsn(specs: tuple[MemberSpec, ...]) -> str:
    return "etcd://" + ",".join(spec.endpoint for spec in specs)


def _progress(message: str) -> None:
    print(f"svcnet: {message}", flush=True)


class EtcdCluster:
    """The process.Component that runs, watches over and stops the local etcd members."""

    def __init__(self, data_dir: Path, size: int = 1) -> None:
        self.data_dir = data_dir
        self.specs = member_specs(data_dir, size)
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def dsn(self) -> str:
        return dsn(self.specs)

    async def start(self) -> None:
        # Every member first: none becomes healthy before a majority of them runs.
        for spec in self.specs:
            await self._spawn(spec)
        for spec in self.specs:
            await self._until_healthy(spec)
        self._tasks = [asyncio.create_task(self._supervise(spec), name=f"etcd-{spec.name}") for spec in self.specs]

    async def _spawn(self, spec: MemberSpec) -> None:
        # A member that was killed leaves its socket files; etcd cannot listen where one exists.
        for url in (spec.client_url, spec.peer_url):
            with contextlib.suppress(FileNotFoundError):
                (etcd_dir(self.data_dir) / url.removeprefix("unix://")).unlink()
        with open(etcd_dir(self.data_dir) / f"{spec.name}.log", "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *member_command(spec, self.specs), stdin=asyncio.subprocess.DEVNULL, stdout=log_file,
                stderr=log_file, start_new_session=True, cwd=etcd_dir(self.data_dir))  # where its sockets go
        self.processes[spec.name] = process
        pid_path(self.data_dir, spec.name).write_text(f"{process.pid}\n")

    async def _until_healthy(self, spec: MemberSpec) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        log_path = etcd_dir(self.data_dir) / f"{spec.name}.log"
        while not await asyncio.to_thread(healthy, spec):
            process = self.processes[spec.name]
            if process.returncode is not None:
                raise OSError(f"etcd member {spec.name} exited ({process.returncode}); see {log_path}")
            if time.monotonic() >= deadline:
                raise OSError(f"etcd member {spec.name} not healthy after {READY_TIMEOUT:.0f}s; see {log_path}")
            await asyncio.sleep(0.1)

    async def _supervise(self, spec: MemberSpec) -> None:
        delay = RESTART_INITIAL
        what = "etcd" if len(self.specs) == 1 else f"etcd member {spec.name}"
        while not self._stopping:
            started = time.monotonic()
            code = await self.processes[spec.name].wait()
            if self._stopping:
                return
            if time.monotonic() - started > HEALTHY_AFTER:
                delay = RESTART_INITIAL
            _progress(f"{what} exited ({code}); restarting it in {delay:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX)
            if not self._stopping:
                await self._spawn(spec)
                _progress(f"restarted {what} (pid {self.processes[spec.name].pid})")

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for name, process in self.processes.items():
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                log.warning("etcd member %s did not stop; killing it", name)
                process.kill()
                await process.wait()
            with contextlib.suppress(FileNotFoundError):
                pid_path(self.data_dir, name).unlink()
        _progress("stopped etcd")


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
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(pid)
    return stopped


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit waits for init to reap it; it is over all the same)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


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
