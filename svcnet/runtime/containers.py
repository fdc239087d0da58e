"""Start, stop and inspect containers: processes under a shim, joined to their pod's sandbox.

Everything the runtime knows lives in files under the pod directory, so a new
runtime (an agent restarted after a crash) adopts running pods by reading them:

    <root>/pods/<ns>_<name>_<uid>/_sandbox/state.json     the infra process
    <root>/pods/<ns>_<name>_<uid>/<container>/<n>.spec.json   what instance n runs
    <root>/pods/<ns>_<name>_<uid>/<container>/<n>.state.json  written by its shim
    <root>/pods/<ns>_<name>_<uid>/<container>/<n>.log         its CRI-format log

n is the instance's restart count. Processes are named by (pid, start time),
so a recycled pid is never taken for a container.
"""
from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from svcnet.kernel import mounts
from svcnet.kernel.process import ProcessId, is_alive, signal_group, signal_process
from svcnet.runtime import sandbox
from svcnet.runtime.launch import Launcher, SubprocessLauncher
from svcnet.runtime.logs import PreviousLogNotFound
from svcnet.runtime.sandbox import PodKey, Sandbox, SandboxConfig

_INSTANCE_SPEC = re.compile(r"^(\d+)\.spec\.json$")
DEFAULT_GRACE_SECONDS = 30.0
KILL_WAIT_SECONDS = 10.0


class RunState(Enum):
    NONE = "none"  # never started
    RUNNING = "running"
    EXITED = "exited"


@dataclass(frozen=True)
class ContainerView:
    """What the runtime knows of a container's latest instance (what restart decisions look at)."""

    state: RunState = RunState.NONE
    exit_code: int | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """A container ready to run: the resolved argv and environment (see images.py and envvars.py)."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    restart_count: int  # the instance number: how many ran before this one
    state: RunState
    started_at: float | None = None  # unix seconds
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    process: ProcessId | None = None
    shim: ProcessId | None = None
    log_path: Path | None = None

    def view(self) -> ContainerView:
        return ContainerView(self.state, self.exit_code, self.finished_at)


def interpret_state(name: str, instance: int, state: Mapping[str, Any] | None, *, process_alive: bool,
                    shim_alive: bool, log_path: Path | None = None) -> ContainerStatus:
    """A container instance's status from its shim's state record and whether its processes still run."""
    def seconds(key: str) -> float | None:
        value = (state or {}).get(key)
        return value / 1e9 if value is not None else None

    if state is None:
        return ContainerStatus(name, instance, RunState.EXITED, exit_code=128, reason="StartError",
                               message="the container's shim ended before it started the process", log_path=log_path)
    process = ProcessId.from_json(state.get("process"))
    shim = ProcessId.from_json(state.get("shim"))
    if state.get("state") == "exited":
        return ContainerStatus(name, instance, RunState.EXITED, seconds("startedAt"), seconds("finishedAt"),
                               state.get("exitCode"), state.get("reason", ""), state.get("message", ""),
                               process, shim, log_path)
    if process_alive or shim_alive:
        return ContainerStatus(name, instance, RunState.RUNNING, seconds("startedAt"), process=process, shim=shim,
                               log_path=log_path)
    # Both gone without a record (the shim was killed): the exit status is lost, as containerd reports it.
    return ContainerStatus(name, instance, RunState.EXITED, seconds("startedAt"), seconds("startedAt"), 255,
                           "Unknown", "the container's shim ended without recording the exit status",
                           process, shim, log_path)


class Runtime:
    """Pods and containers on this node, as files under root plus the processes they name."""

    def __init__(self, root: Path, *, python: str = sys.executable, launcher: Launcher | None = None) -> None:
        """launcher starts sandboxes and shims: the agent passes its fork server; by default each is a new
        `python -m` interpreter (what one-shot CLI commands use)."""
        self.root = root
        self.python = python
        self.launcher: Launcher = launcher or SubprocessLauncher(python)

    def keep_pods_in_memory(self) -> bool:
        """Put the pods' directories on a tmpfs of their own (mounted once, kept across agent restarts so
        running pods stay adoptable; `svcnet down` unmounts it): their state, spec and /etc files, and
        their volumes' files, Secrets and ServiceAccount tokens among them, which kubelet also keeps in
        memory (its secret and projected volumes are tmpfs mounts) so that they never reach the disk. Every pod creates
        and replaces some 30 files; on a disk file system that has seen many deletions, each new file
        can cost a scan of the recently deleted ones (ext4 without a journal checks each candidate
        inode's deletion time: 0.2 ms a file after 10,000 deletions against 0.015 ms on tmpfs), a third
        of the agent's CPU in a burst of pods (docs/benchmarks.md, issue 13). Container logs live there
        too, as under /run for containerd's state: they go with the pods. False if it was mounted
        already, or the directory holds pods from before (they stay on disk)."""
        return mounts.ensure_private_tmpfs(self.root / sandbox.PODS_DIR)

    # ---- sandboxes ----

    async def create_sandbox(self, key: PodKey, config: SandboxConfig) -> Sandbox:
        return await sandbox.run_sandbox(self.root, key, config, launcher=self.launcher)

    def sandboxes(self) -> list[Sandbox]:
        """Every recorded sandbox (live or dead): what a restarted agent adopts."""
        pods = self.root / sandbox.PODS_DIR
        if not pods.is_dir():
            return []
        found = (sandbox.load_sandbox(directory) for directory in sorted(pods.iterdir()))
        return [item for item in found if item is not None]

    def get_sandbox(self, key: PodKey) -> Sandbox | None:
        return sandbox.load_sandbox(sandbox.pod_directory(self.root, key))

    def sandbox_alive(self, pod: Sandbox) -> bool:
        return pod.alive()

    async def stop_sandbox(self, pod: Sandbox) -> None:
        await sandbox.stop_sandbox(pod)

    def sandboxes_named(self, namespace: str, name: str) -> list[Sandbox]:
        """The recorded sandboxes of one pod name (any uid), read without loading every pod's record."""
        pods = self.root / sandbox.PODS_DIR
        if not pods.is_dir():
            return []
        found = (sandbox.load_sandbox(d) for d in sorted(pods.glob(f"{namespace}_{name}_*")))
        return [item for item in found if item is not None and (item.key.namespace, item.key.name) == (namespace, name)]

    async def remove_pod(self, pod: Sandbox, grace_seconds: float = 0.0) -> None:
        """Stop every container (SIGTERM, grace, SIGKILL), end the infra process, delete the pod's files."""
        await asyncio.gather(*(self.stop_container(pod, name, grace_seconds) for name in self.container_names(pod)))
        await sandbox.stop_sandbox(pod)
        # On a thread: removing a pod's directory tree (logs, specs, the sandbox's files) took
        # the agent's event loop a few ms a pod, in bursts of deletes (py-spy, issue 13).
        await asyncio.to_thread(sandbox.remove_sandbox_files, pod)

    # ---- containers ----

    def container_names(self, pod: Sandbox) -> list[str]:
        if not pod.directory.is_dir():
            return []
        return sorted(entry.name for entry in pod.directory.iterdir()
                      if entry.is_dir() and entry.name != sandbox.SANDBOX_DIR)

    def _instances(self, pod: Sandbox, name: str) -> list[int]:
        directory = pod.directory / name
        if not directory.is_dir():
            return []
        return sorted(int(m.group(1)) for entry in directory.iterdir() if (m := _INSTANCE_SPEC.match(entry.name)))

    def _paths(self, pod: Sandbox, name: str, instance: int) -> tuple[Path, Path, Path]:
        directory = pod.directory / name
        return (directory / f"{instance}.spec.json", directory / f"{instance}.state.json",
                directory / f"{instance}.log")

    def status(self, pod: Sandbox, name: str, instance: int | None = None) -> ContainerStatus | None:
        """The latest (or a given) instance of a container, or None if it never started."""
        if instance is None:
            instances = self._instances(pod, name)
            if not instances:
                return None
            instance = instances[-1]
        _, state_path, log_path = self._paths(pod, name, instance)
        try:
            state = json.loads(state_path.read_text())
        except FileNotFoundError:
            state = None
        process = ProcessId.from_json((state or {}).get("process"))
        shim = ProcessId.from_json((state or {}).get("shim"))
        return interpret_state(name, instance, state, process_alive=is_alive(process),
                               shim_alive=is_alive(shim), log_path=log_path)

    async def start_container(self, pod: Sandbox, spec: ContainerSpec, *, timeout: float = 30.0) -> ContainerStatus:
        """Start the next instance of a container under a new shim; a program that cannot start is
        reported as an exited instance (StartError, exit code 128), as containerd does."""
        instances = self._instances(pod, spec.name)
        instance = instances[-1] + 1 if instances else 0
        spec_path, state_path, log_path = self._paths(pod, spec.name, instance)
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps({
            "name": spec.name, "argv": list(spec.argv), "env": dict(spec.env), "workingDir": spec.working_dir,
            "sandbox": pod.infra.to_json(), "statePath": str(state_path), "logPath": str(log_path)}))
        log_path.touch()
        finished = await self.launcher.run("shim", [str(spec_path)], timeout)
        out, err = finished.out, finished.err
        if finished.timed_out:
            err = f"the shim did not report within {timeout:g}s".encode()
        report = out.decode().strip()
        if report != "ok":
            message = report.removeprefix("error ").strip() or err.decode().strip() or "the shim failed"
            now = time.time_ns()
            state_path.write_text(json.dumps({"state": "exited", "startedAt": now, "finishedAt": now,
                                              "exitCode": 128, "reason": "StartError", "message": message}))
        status = self.status(pod, spec.name, instance)
        assert status is not None
        return status

    async def _wait_done(self, status: ContainerStatus, timeout: float | None) -> bool:
        """Wait until the instance's shim (or, without one, its process) is gone."""
        watched = status.shim if is_alive(status.shim) else status.process
        if watched is None:
            return True
        return await sandbox.wait_gone(watched, timeout)

    async def wait_container(self, pod: Sandbox, name: str, timeout: float | None = None) -> ContainerStatus | None:
        """Wait for the latest instance to exit; its status (still running if the timeout came first)."""
        status = self.status(pod, name)
        if status is None or status.state is not RunState.RUNNING:
            return status
        await self._wait_done(status, timeout)
        return self.status(pod, name, status.restart_count)

    async def stop_container(self, pod: Sandbox, name: str,
                             grace_seconds: float = DEFAULT_GRACE_SECONDS) -> ContainerStatus | None:
        """SIGTERM, wait up to the grace period, then SIGKILL the container's process group."""
        status = self.status(pod, name)
        if status is None or status.state is not RunState.RUNNING:
            return status
        if status.process is not None:
            signal_process(status.process, signal.SIGTERM)
        if not await self._wait_done(status, grace_seconds):
            if status.process is not None and is_alive(status.process):
                signal_group(status.process, signal.SIGKILL)
            if not await self._wait_done(status, KILL_WAIT_SECONDS) and status.shim is not None:
                signal_process(status.shim, signal.SIGKILL)  # a wedged shim must not keep the pod
        return self.status(pod, name, status.restart_count)

    # ---- logs ----

    def log_path(self, pod: Sandbox, name: str, *, previous: bool = False) -> Path:
        """The log file kubectl logs reads: the latest instance's, or with previous the one before."""
        instances = self._instances(pod, name)
        if previous:
            if len(instances) < 2:
                raise PreviousLogNotFound(
                    f'previous terminated container "{name}" in pod "{pod.key.name}" not found')
            instance = instances[-2]
        elif instances:
            instance = instances[-1]
        else:
            raise LookupError(f'container "{name}" in pod "{pod.key.name}" is waiting to start: ContainerCreating')
        return self._paths(pod, name, instance)[2]

    def log_closed(self, pod: Sandbox, name: str, instance: int) -> bool:
        """True once the instance's shim has finished writing its log (follow stops there)."""
        status = self.status(pod, name, instance)
        return status is None or status.state is not RunState.RUNNING


def latest_instances(runtime: Runtime, pod: Sandbox) -> dict[str, ContainerStatus]:
    """Every container's latest instance in a pod."""
    result = {}
    for name in runtime.container_names(pod):
        status = runtime.status(pod, name)
        if status is not None:
            result[name] = status
    return result


