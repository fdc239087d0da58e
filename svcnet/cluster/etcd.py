"""`svcnet up --storage etcd`: a local etcd member run for the user, supervised like the agents.

Its data lives under the cluster's data dir (DATA_DIR/etcd, 0700), it listens on loopback on ports
picked free on the first start and kept in DATA_DIR/etcd/ports.json (a member's peer URL is part of
its stored membership, so a restart must reuse it), and the API server's store is etcd://127.0.0.1:PORT.
It is restarted after a back-off when it dies, stopped by `svcnet down`, and ended by `down`'s
sweep when the `up` that ran it is gone. Compaction is the API server's, on kube-apiserver's
schedule (config.compaction_interval, --etcd-compaction-interval's 5 minutes).
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
MEMBER_NAME = "svcnet"
RESTART_INITIAL = 1.0
RESTART_MAX = 30.0
HEALTHY_AFTER = 60.0  # a member that ran this long starts its back-off over
READY_TIMEOUT = 60.0


def etcd_dir(data_dir: Path) -> Path:
    return data_dir / "etcd"


def pid_path(data_dir: Path) -> Path:
    return etcd_dir(data_dir) / "etcd.pid"


def member_spec(data_dir: Path) -> MemberSpec:
    """The member's name, data dir and ports: the ones it was first started with, if it was."""
    directory = etcd_dir(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ports_file = directory / "ports.json"
    try:
        ports = json.loads(ports_file.read_text())
        client, peer = int(ports["client"]), int(ports["peer"])
    except (OSError, ValueError, KeyError, TypeError):
        client, peer = free_loopback_port(), free_loopback_port()
        ports_file.write_text(json.dumps({"client": client, "peer": peer}) + "\n")
    return MemberSpec(MEMBER_NAME, directory / "member-data", client, peer)


def _progress(message: str) -> None:
    print(f"svcnet: {message}", flush=True)


class EtcdMember:
    """The process.Component that runs, watches over and stops the local etcd."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.spec = member_spec(data_dir)
        self.process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def dsn(self) -> str:
        return f"etcd://127.0.0.1:{self.spec.client_port}"

    async def start(self) -> None:
        await self._spawn()
        await self._until_healthy()
        self._task = asyncio.create_task(self._supervise(), name="etcd-supervisor")

    async def _spawn(self) -> None:
        log_path = etcd_dir(self.data_dir) / "etcd.log"
        with open(log_path, "ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                *member_command(self.spec), stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True)
        pid_path(self.data_dir).write_text(f"{self.process.pid}\n")

    async def _until_healthy(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not await asyncio.to_thread(self._healthy):
            assert self.process is not None
            if self.process.returncode is not None:
                raise OSError(f"etcd exited ({self.process.returncode}); see {etcd_dir(self.data_dir) / 'etcd.log'}")
            if time.monotonic() >= deadline:
                raise OSError(f"etcd not healthy after {READY_TIMEOUT:.0f}s; "
                              f"see {etcd_dir(self.data_dir) / 'etcd.log'}")
            await asyncio.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.spec.client_url + "/health", timeout=2) as response:
                return b'"true"' in response.read()
        except OSError:
            return False

    async def _supervise(self) -> None:
        delay = RESTART_INITIAL
        while not self._stopping:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            if time.monotonic() - started > HEALTHY_AFTER:
                delay = RESTART_INITIAL
            _progress(f"etcd exited ({code}); restarting it in {delay:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX)
            if not self._stopping:
                await self._spawn()
                _progress(f"restarted etcd (pid {self.process.pid})")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                log.warning("etcd did not stop; killing it")
                process.kill()
                await process.wait()
        with contextlib.suppress(FileNotFoundError):
            pid_path(self.data_dir).unlink()
        _progress("stopped etcd")


def stop_leftover_etcd(data_dir: Path, timeout: float = 20.0) -> int | None:
    """End the etcd a dead `up` left running (`svcnet down`'s sweep); its pid, or None if there was none.

    The pid file alone is not trusted: the process must be an etcd with this data dir's member data."""
    path = pid_path(data_dir)
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    member_data = f"--data-dir={etcd_dir(data_dir) / 'member-data'}".encode()
    if not cmdline or not cmdline[0].endswith(b"etcd") or member_data not in cmdline:
        path.unlink()
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    path.unlink()
    return pid
