"""`svcnet up --storage etcd` (and `--etcd-members N`): a local etcd run for the user, supervised like
the agents.

Its data lives under the cluster's data dir (DATA_DIR/etcd, 0700); each member listens on loopback on
ports picked free on the first start and kept in DATA_DIR/etcd/ports.json (a member's peer URL is part
of the cluster's stored membership, so a restart must reuse it, and the member count cannot change
under existing data); the API server's store is etcd://127.0.0.1:PORT[,...] with every member. A member
that dies is restarted after a back-off; `svcnet down` stops them all, and `down`'s sweep ends those a
dead `up` left. Compaction is the API server's, on kube-apiserver's schedule (config.compaction_interval,
--etcd-compaction-interval's 5 minutes).

The members of a multi-member cluster all run on this machine's loopback: they survive one member
process dying (the quorum carries on), not the machine. docs/scaling-out.md says how to run them on
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
import urllib.request
from pathlib import Path

from svcnet.kernel.etcdserver import MemberSpec, free_loopback_port, member_command

log = logging.getLogger("svcnet.cluster.etcd")

LOCAL_ETCD = "etcd"  # the --storage value that asks `up` to run etcd itself
MAX_MEMBERS = 7  # etcd's own advice: more members only slow every write
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
    """The members' names, data dirs and ports: the ones they were first started with, if they were."""
    if not 1 <= size <= MAX_MEMBERS:
        raise ValueError(f"etcd members: 1 to {MAX_MEMBERS} (3 or 5 for a quorum that survives losses)")
    directory = etcd_dir(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ports_file = directory / "ports.json"
    try:
        members = json.loads(ports_file.read_text())["members"]
        known = [(str(m["name"]), int(m["client"]), int(m["peer"])) for m in members]
    except (OSError, ValueError, KeyError, TypeError):
        known = [(name, free_loopback_port(), free_loopback_port()) for name in member_names(size)]
        ports_file.write_text(json.dumps({"members": [{"name": n, "client": c, "peer": p} for n, c, p in known]})
                              + "\n")
    if len(known) != size:
        raise MembershipChanged(f"the etcd under {directory} has {len(known)} member(s), not {size}: an etcd "
                                "cluster's size does not change by restarting it (etcdctl member add/remove does)")
    return tuple(MemberSpec(name, directory / f"{name}-data", client, peer) for name, client, peer in known)


def dsn(specs: tuple[MemberSpec, ...]) -> str:
    return "etcd://" + ",".join(f"127.0.0.1:{spec.client_port}" for spec in specs)


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
        with open(etcd_dir(self.data_dir) / f"{spec.name}.log", "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *member_command(spec, self.specs), stdin=asyncio.subprocess.DEVNULL, stdout=log_file,
                stderr=log_file, start_new_session=True)
        self.processes[spec.name] = process
        pid_path(self.data_dir, spec.name).write_text(f"{process.pid}\n")

    async def _until_healthy(self, spec: MemberSpec) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        log_path = etcd_dir(self.data_dir) / f"{spec.name}.log"
        while not await asyncio.to_thread(_healthy, spec):
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


def _healthy(spec: MemberSpec) -> bool:
    try:
        with urllib.request.urlopen(spec.client_url + "/health", timeout=2) as response:
            return b'"true"' in response.read()
    except OSError:
        return False


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
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        stopped.append(pid)
    return stopped


def _leftover_member(path: Path, data_dir: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    member_data = f"--data-dir={etcd_dir(data_dir) / path.stem}-data".encode()
    if not cmdline or not cmdline[0].endswith(b"etcd") or member_data not in cmdline:
        return None
    return pid
