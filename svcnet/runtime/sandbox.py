"""Pod sandboxes: an infra process holding a pod's UTS and mount namespaces inside its network namespace.

Like the pause container. `python -m svcnet.runtime.sandbox` joins the pod's
network namespace (made by the network code), unshares UTS and mount
namespaces, sets the hostname, makes every mount private (nothing leaks back to
the host), drops the copies of other namespaces' /run/netns mounts (so they do
not keep deleted pods' namespaces alive), mounts a sysfs that shows the pod's
interfaces, and bind-mounts the generated resolv.conf, hosts and hostname over
/etc. It then forks a `sleep infinity` that keeps those namespaces, reports it
and exits, so the infra process is nobody's child and outlives the agent.
Containers and `exec` join it through /proc/<pid>/ns/{net,uts,mnt}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.api.objects import name_of, namespace_of, uid_of
from svcnet.kernel import NETNS_RUN_DIR, mounts, process
from svcnet.kernel.process import ProcessId
from svcnet.runtime.launch import Launcher, SubprocessLauncher, fd_ready

PODS_DIR = "pods"  # under the runtime root: one directory per pod (see Runtime.keep_pods_in_memory)
SANDBOX_DIR = "_sandbox"  # "_" cannot begin a container name, so no clash with container directories
STATE_FILE = "state.json"
MOUNTS_FILE = "mounts.json"
SCRATCH_DIR = "overlays"  # in the pod's namespace only: a tmpfs for the overlays' upper layers
ETC_FILES = ("resolv.conf", "hosts", "hostname")


@dataclass(frozen=True)
class PodKey:
    namespace: str
    name: str
    uid: str

    @property
    def dir_name(self) -> str:
        """kubelet's log directory name: <namespace>_<name>_<uid>."""
        return f"{self.namespace}_{self.name}_{self.uid}"

    @staticmethod
    def of(pod: Mapping[str, Any]) -> PodKey:
        return PodKey(namespace_of(pod) or "default", name_of(pod), uid_of(pod))


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the infra process needs: the pod's netns, hostname and /etc files."""

    netns: str  # a path, e.g. /run/netns/svcnet-<id>-pod-<shortuid>
    hostname: str
    resolv_conf: str
    hosts: str
    warnings: tuple[str, ...] = ()
    mounts: tuple[VolumeMount, ...] = ()  # the pod's volumes, parent paths first
    memory_volumes: tuple[tuple[str, int], ...] = ()  # (host dir, size bytes or 0): a tmpfs in the pod


@dataclass(frozen=True)
class VolumeMount:
    """A volume directory of the node (or a path inside it) mounted at target in the pod's namespace."""

    source: str
    target: str
    read_only: bool
    sub_path: str = ""
    create_sub_path: bool = False  # emptyDir: a missing subPath is made (kubelet does)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "readOnly": self.read_only,
                "subPath": self.sub_path, "createSubPath": self.create_sub_path}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> VolumeMount:
        return VolumeMount(str(data["source"]), str(data["target"]), bool(data["readOnly"]),
                           str(data.get("subPath") or ""), bool(data.get("createSubPath")))


@dataclass(frozen=True)
class Sandbox:
    key: PodKey
    directory: Path  # <root>/pods/<ns>_<name>_<uid>
    infra: ProcessId
    netns: str
    hostname: str
    created_at: float

    @property
    def netns_of_infra(self) -> str:
        return f"/proc/{self.infra.pid}/ns/net"

    def alive(self) -> bool:
        return process.is_alive(self.infra)


class SandboxError(RuntimeError):
    pass


def pod_directory(root: Path, key: PodKey) -> Path:
    return root / PODS_DIR / key.dir_name


def load_sandbox(directory: Path) -> Sandbox | None:
    """The sandbox recorded in a pod directory (alive or not), or None if none was recorded."""
    try:
        data = json.loads((directory / SANDBOX_DIR / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    key = PodKey(data["namespace"], data["name"], data["uid"])
    infra = ProcessId.from_json(data["infra"])
    assert infra is not None
    return Sandbox(key, directory, infra, data["netns"], data["hostname"], data["createdAt"])


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def run_sandbox(root: Path, key: PodKey, config: SandboxConfig, *, launcher: Launcher | None = None,
                      python: str = sys.executable, timeout: float = 30.0) -> Sandbox:
    """Start the infra process for a pod and record it; raises SandboxError with the reason if it fails.

    The launcher runs this module's main (a new `python -m` interpreter unless a fork server is given)."""
    directory = pod_directory(root, key)
    files = directory / SANDBOX_DIR
    files.mkdir(parents=True, exist_ok=True)
    for name, text in zip(ETC_FILES, (config.resolv_conf, config.hosts, config.hostname + "\n"), strict=True):
        _write_atomically(files / name, text)
    _write_atomically(files / MOUNTS_FILE, json.dumps({
        "mounts": [m.to_json() for m in config.mounts],
        "memory": [{"path": path, "size": size} for path, size in config.memory_volumes]}))
    args = ["--netns", config.netns, "--hostname", config.hostname, "--files", str(files),
            "--title", f"{key.namespace}/{key.name}"]
    finished = await (launcher or SubprocessLauncher(python)).run("sandbox", args, timeout)
    if finished.timed_out:
        raise SandboxError(f"sandbox for {key.namespace}/{key.name} did not start within {timeout:g}s")
    out, err = finished.out.decode(errors="replace"), finished.err.decode(errors="replace")
    words = out.split()
    # returncode None: the fork server lost it (it died after the fork); "ok" is only printed on success
    if finished.returncode not in (0, None) or len(words) != 3 or words[0] != "ok":
        raise SandboxError(f"failed to create pod sandbox: {err.strip() or out.strip()}")
    infra = ProcessId(int(words[1]), int(words[2]))
    sandbox = Sandbox(key, directory, infra, config.netns, config.hostname, time.time())
    _write_atomically(files / STATE_FILE, json.dumps({
        "namespace": key.namespace, "name": key.name, "uid": key.uid, "infra": infra.to_json(),
        "netns": config.netns, "hostname": config.hostname, "createdAt": sandbox.created_at}))
    return sandbox


async def wait_gone(proc: ProcessId, timeout: float | None) -> bool:
    """Wait until proc has exited (without being its parent: a pidfd becomes readable); False on timeout."""
    fd = process.open_pidfd(proc)
    if fd is None:
        return True
    try:
        return await fd_ready(fd, timeout)
    finally:
        os.close(fd)


async def stop_sandbox(sandbox: Sandbox) -> None:
    """End the infra process (its namespaces go when nothing else holds them)."""
    if process.signal_process(sandbox.infra, 9):
        await wait_gone(sandbox.infra, 10.0)


def remove_sandbox_files(sandbox: Sandbox) -> None:
    shutil.rmtree(sandbox.directory, ignore_errors=True)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def nsenter_argv(fds: Sequence[tuple[int, int]], argv: Sequence[str], cwd: str | None) -> list[str]:
    names = {process.CLONE_NEWNET: "--net", process.CLONE_NEWUTS: "--uts", process.CLONE_NEWNS: "--mount"}
    nsenter = shutil.which("nsenter") or "nsenter"
    command = [nsenter] + [f"{names[nstype]}=/proc/self/fd/{fd}" for fd, nstype in fds]
    if cwd:
        command.append(f"--wd={cwd}")
    return [*command, "--", *argv]


async def exec_in_pod(infra: ProcessId, argv: Sequence[str], *, stdin: Any = None, stdout: Any = None,
                      stderr: Any = None, env: Mapping[str, str] | None = None, cwd: str | None = None,
                      timeout: float | None = None) -> int:
    """Run argv inside the pod's network, UTS and mount namespaces; its exit code (128+N if killed by signal N).

    stdin/stdout/stderr are what asyncio subprocesses take (None inherits, a file descriptor, PIPE is not
    useful here). On timeout the command's process group is killed and TimeoutError raised.
    """
    fds = process.open_namespaces(infra)
    try:
        proc = await asyncio.create_subprocess_exec(
            *nsenter_argv(fds, argv, cwd), stdin=stdin, stdout=stdout, stderr=stderr,
            env=dict(env) if env is not None else {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            pass_fds=[fd for fd, _ in fds], start_new_session=True)
    finally:
        process.close_all(fds)
    try:
        return _exit_code(await asyncio.wait_for(proc.wait(), timeout))
    except (TimeoutError, asyncio.CancelledError):
        _kill_group(proc.pid)
        await proc.wait()
        raise


async def run_in_pod(infra: ProcessId, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                     cwd: str | None = None, timeout: float | None = None) -> tuple[int, bytes, bytes]:
    """exec_in_pod, collecting output: (exit code, stdout, stderr)."""
    fds = process.open_namespaces(infra)
    try:
        proc = await asyncio.create_subprocess_exec(
            *nsenter_argv(fds, argv, cwd), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            pass_fds=[fd for fd, _ in fds], start_new_session=True)
    finally:
        process.close_all(fds)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        _kill_group(proc.pid)
        await proc.wait()
        raise
    assert proc.returncode is not None
    return _exit_code(proc.returncode), out, err


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, 9)
    except ProcessLookupError:
        pass


# ---- the infra process itself (runs as `python -m svcnet.runtime.sandbox`) ----

def _unescape_mountinfo(text: str) -> str:
    return text.encode().decode("unicode_escape") if "\\" in text else text


def _detach_namespace_mounts() -> None:
    """Drop our copies of nsfs mounts (/run/netns/*): they would pin other pods' namespaces."""
    # /run/netns is a mount of its own (netns.create_netns makes it one, as `ip netns` does), so one
    # lazy unmount drops it with every namespace mounted under it. One umount per namespace grew with
    # the pods on the node (3.3 ms against 0.9 ms at 250 pods, alone) and took the kernel's mount lock
    # 250 times, which every sandbox starting at once waits on. Any nsfs mount elsewhere goes below.
    try:
        process.umount_detach(NETNS_RUN_DIR)
    except OSError:
        pass  # not a mount point here
    with open("/proc/self/mountinfo") as f:
        targets = []
        for line in f:
            before, _, after = line.partition(" - ")
            if after.split(" ", 1)[0] == "nsfs":
                targets.append(_unescape_mountinfo(before.split()[4]))
    for target in sorted(targets, key=len, reverse=True):
        try:
            process.umount_detach(target)
        except OSError:
            pass


def _mount_volumes(files: Path) -> None:
    """The pod's volumes at their mountPaths; memory-backed ones get their tmpfs first."""
    try:
        plan = json.loads((files / MOUNTS_FILE).read_text())
    except FileNotFoundError:
        return
    for memory in plan.get("memory") or []:
        mounts.tmpfs(str(memory["path"]), int(memory.get("size") or 0))
    points = mounts.PodMountPoints(files / SCRATCH_DIR)
    for entry in plan.get("mounts") or []:
        _mount_volume(VolumeMount.from_json(entry), points)


def _mount_volume(volume: VolumeMount, points: mounts.PodMountPoints) -> None:
    source = os.path.join(volume.source, volume.sub_path) if volume.sub_path else volume.source
    if volume.sub_path and volume.create_sub_path and not os.path.lexists(source):
        os.makedirs(source, mode=0o777, exist_ok=True)
    real = os.path.realpath(source)
    root = os.path.realpath(volume.source)
    if real != root and not real.startswith(root + "/"):  # a symlink must not lead out of the volume
        raise OSError(f"subPath {volume.sub_path} of {volume.source} points outside the volume")
    if not os.path.exists(real):
        raise OSError(f"subPath {volume.sub_path} does not exist in the volume mounted at {volume.target}")
    points.bind_volume(real, volume.target, read_only=volume.read_only)


def _enter_and_prepare(netns: str, hostname: str, files: Path) -> None:
    fd = os.open(netns, os.O_RDONLY)
    try:
        process.setns(fd, process.CLONE_NEWNET)
    finally:
        os.close(fd)
    process.unshare(process.CLONE_NEWUTS | process.CLONE_NEWNS)
    process.mount(None, "/", None, process.MS_REC | process.MS_PRIVATE)
    _detach_namespace_mounts()
    try:  # a sysfs for this netns, so /sys/class/net lists the pod's interfaces (as `ip netns exec` does)
        process.umount_detach("/sys")
        process.mount("sysfs", "/sys", "sysfs", 0)
    except OSError:
        pass
    socket.sethostname(hostname)
    _mount_volumes(files)  # before the /etc files: an overlay over /etc must not hide them
    for name in ETC_FILES:
        target = f"/etc/{name}"
        if name == "hostname" and not os.path.exists(target):
            continue  # never create files on the host; /etc/hostname is optional
        process.mount(str(files / name), target, None, process.MS_BIND)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svcnet-sandbox")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--files", required=True, type=Path)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    try:
        _enter_and_prepare(args.netns, args.hostname, args.files)
    except OSError as error:
        print(f"setting up the sandbox in {args.netns}: {error}", file=sys.stderr)
        return 1
    sleep = shutil.which("sleep") or "/bin/sleep"
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.chdir("/")
            os.execv(sleep, [f"svcnet-pause {args.title}".strip(), "infinity"])
        finally:
            os._exit(127)
    infra = process.process_id(child)
    if infra is None:
        print("the infra process died at once", file=sys.stderr)
        return 1
    print(f"ok {infra.pid} {infra.start_ticks}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["PodKey", "Sandbox", "SandboxConfig", "SandboxError", "VolumeMount", "exec_in_pod", "load_sandbox",
           "pod_directory", "remove_sandbox_files", "run_in_pod", "run_sandbox", "stop_sandbox",
           "wait_gone"]
