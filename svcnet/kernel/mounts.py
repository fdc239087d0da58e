"""Mounts inside a pod's own mount namespace: binds, tmpfs, and mount points that exist only there;
and the one mount the agent makes in the host's namespace, the tmpfs its pods' directories live on.

Everything here is called by the pod's infra process after it unshared its mount namespace and made
every mount private (runtime/sandbox.py), so nothing reaches the host's mount table. A volume's
mountPath often does not exist on the host (/etc/config, /var/run/secrets/...): creating it there
would change the host's filesystem. Instead its nearest existing parent gets, in the pod's
namespace only, an overlay whose upper layer is a tmpfs of the pod's: the parent's entries stay
visible, the new directories go to the tmpfs, and both vanish with the namespace. Mounts that were
below that parent are moved aside and back on top, so they stay where they were.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encoded(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    result = _libc.mount(encoded(source), encoded(target), encoded(fstype), ctypes.c_ulong(flags), encoded(data))
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {fstype or 'bind'} {source or ''} on {target}: {os.strerror(code)}")


def bind(source: str, target: str, *, read_only: bool) -> None:
    mount(source, target, None, MS_BIND)
    if read_only:  # a bind's flags change only with a remount of the bind itself
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def tmpfs(target: str, size_bytes: int = 0, mode: int = 0o777) -> None:
    """A tmpfs (a memory-backed emptyDir); size 0 leaves the kernel's default (half the RAM)."""
    options = f"mode={mode:o}" + (f",size={size_bytes}" if size_bytes else "")
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def ensure_private_tmpfs(path: Path) -> bool:
    """A tmpfs at path (made if missing, mode 0700) unless something is mounted there already, or path
    holds files (a node's pods from before, kept on disk so they stay adoptable, never hidden): a node's
    pod directories (svcnet.runtime.containers.Runtime.keep_pods_in_memory). True if it mounted one."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.path.ismount(path) or any(path.iterdir()):
        return False
    mount("tmpfs", str(path), "tmpfs", MS_NOSUID | MS_NODEV, "mode=700")
    return True


def unmount_tmpfs(path: Path) -> bool:
    """Detach the tmpfs at path (lazily: a process still inside keeps it until it leaves) and free its
    memory; False if nothing is mounted there."""
    if not os.path.ismount(path):
        return False
    if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"umount {path}: {os.strerror(code)}")
    return True


def mount_points() -> list[str]:
    """Every mount point of this namespace, in mount order."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split(" ", 5)[4]
            points.append(target.encode().decode("unicode_escape") if "\\" in target else target)
    return points


def _top_submounts(parent: str) -> list[str]:
    """The mount points strictly below parent that no other such mount point contains."""
    prefix = parent.rstrip("/") + "/"
    below = sorted({p for p in mount_points() if p.startswith(prefix)}, key=len)
    top: list[str] = []
    for point in below:
        if not any(point.startswith(t.rstrip("/") + "/") for t in top):
            top.append(point)
    return top


def _placeholder(path: str, like: str) -> None:
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        Path(path).touch()


@dataclass
class PodMountPoints:
    """Creates mount points in the pod's namespace, overlaying each missing path's nearest parent once.

    scratch: a directory of the pod's (under the runtime root) on which a tmpfs is mounted, in this
    namespace only, to hold the overlays' upper and work directories."""

    scratch: Path
    overlaid: set[str] = field(default_factory=set)
    writable_volumes: set[str] = field(default_factory=set)  # where a volume is bound read-write
    _scratch_ready: bool = False

    def ensure(self, target: str, *, directory: bool) -> None:
        if os.path.lexists(target):
            return
        parent = os.path.dirname(target)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        real = os.path.realpath(parent)
        if real == "/":
            raise OSError(f"cannot create {target} in the pod: it would go directly under /, "
                          "which svcnet pods share with the node")
        inside = self.overlaid | self.writable_volumes  # the pod's own: made there directly
        if not any(real == o or real.startswith(o + "/") for o in inside):
            self._overlay(real)
        if directory:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            Path(target).touch()

    def bind_volume(self, source: str, target: str, *, read_only: bool) -> None:
        """Bind a volume at target (made first if missing); mount points below a writable one are made in it,
        as a container runtime makes them in the volume (it is the pod's, not the node's)."""
        self.ensure(target, directory=os.path.isdir(source))
        bind(source, target, read_only=read_only)
        if not read_only and os.path.isdir(source):
            self.writable_volumes.add(os.path.realpath(target))

    def _overlay(self, path: str) -> None:
        if "," in path or ":" in path:
            raise OSError(f"cannot overlay {path}: commas and colons are not allowed in overlay paths")
        if not self._scratch_ready:
            self.scratch.mkdir(parents=True, exist_ok=True)
            tmpfs(str(self.scratch), mode=0o700)
            self._scratch_ready = True
        layer = self.scratch / str(len(self.overlaid))
        upper, work, aside = layer / "upper", layer / "work", layer / "aside"
        for directory in (upper, work, aside):
            directory.mkdir(parents=True)
        moved = []
        own = str(self.scratch)
        for index, point in enumerate(p for p in _top_submounts(path) if p != own):
            holder = str(aside / str(index))
            _placeholder(holder, point)
            mount(point, holder, None, MS_MOVE)
            moved.append((holder, point))
        mount("overlay", path, "overlay", 0, f"lowerdir={path},upperdir={upper},workdir={work}")
        for holder, point in moved:
            mount(holder, point, None, MS_MOVE)
        self.overlaid.add(path)


__all__ = ["PodMountPoints", "bind", "mount", "mount_points", "tmpfs"]
