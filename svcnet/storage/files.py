"""The files a store keeps on disk: private modes, and a space reserve for a full disk.

Modes follow etcd (client/pkg/fileutil/fileutil.go): directories it creates
are PrivateDirMode (0700) and its files PrivateFileMode (0600). An existing
directory keeps its mode, as etcd's TouchDirAll does (CheckDirPermission only
warns): the parent of `--storage` may be shared (/tmp, /var/lib). Files are
created with their mode and then chmod'ed, so a permissive umask changes
nothing; the store's own files are tightened when found looser.

The reserve plays the part of the slack between etcd's backend quota and the
disk (server/storage/quota.go): while it exists, the disk filling up stops
growth before it stops deletes. Releasing it is what really frees space on the
filesystem; a SQLite delete only moves pages to the database's free list.
"""
from __future__ import annotations

import errno
import logging
import os
import stat

log = logging.getLogger("svcnet.storage")

PRIVATE_DIR_MODE = 0o700  # etcd fileutil.PrivateDirMode
PRIVATE_FILE_MODE = 0o600  # etcd fileutil.PrivateFileMode

RESERVE_MIN = 256 * 1024
# Twice SQLite's default WAL (1000 pages of 4 KiB), so a released reserve always fits a checkpoint.
# etcd preallocates more (64 MB WAL segments, server/storage/wal/wal.go SegmentSizeBytes); every
# test's data dir holds one reserve, so svcnet keeps it small.
RESERVE_MAX = 8 * 1024 * 1024
RESERVE_FRACTION = 8  # of the filesystem's size


def private_dir(path: str) -> None:
    """Create path and its missing parents 0700; warn when an existing one is looser."""
    missing: list[str] = []
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, keep its mode
        os.chmod(directory, PRIVATE_DIR_MODE)  # the umask may have taken bits away
    if not missing:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != PRIVATE_DIR_MODE:
            log.warning("storage directory %s has mode %04o; %04o keeps the data private (as etcd "
                        "recommends); svcnet leaves an existing directory as it is", path, mode,
                        PRIVATE_DIR_MODE)


def private_file(path: str) -> None:
    """Create path empty with mode 0600 when missing; make an existing one 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE_MODE:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


def tighten(path: str) -> None:
    """chmod a file that another library created (SQLite's -wal and -shm) to 0600, if it exists."""
    try:
        if stat.S_IMODE(os.stat(path).st_mode) != PRIVATE_FILE_MODE:
            os.chmod(path, PRIVATE_FILE_MODE)
    except FileNotFoundError:
        pass


def free_bytes(directory: str) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def reserve_size(directory: str) -> int:
    """An eighth of the filesystem, at least 256 KiB and at most 8 MiB."""
    st = os.statvfs(directory)
    return max(RESERVE_MIN, min(RESERVE_MAX, st.f_blocks * st.f_frsize // RESERVE_FRACTION))


class SpaceReserve:
    """A file of allocated blocks, given back to the filesystem a quarter at a time when it is full.

    A quarter at a time, so another process filling the disk can only take what one shortage
    released: the rest still serves the next shortage, and the next start.
    """

    PARTS = 4

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size

    @property
    def held(self) -> int:
        """How many bytes the reserve holds now."""
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def take(self) -> bool:
        """Allocate the whole reserve (posix_fallocate: real blocks, not a sparse file); False if no room."""
        had = self.held
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
            os.posix_fallocate(fd, 0, self.size)
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, had)  # some filesystems keep a partial allocation
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise
        finally:
            os.close(fd)
        return True

    def release(self) -> bool:
        """Give a quarter of the reserve back; False when nothing is left to give."""
        held = self.held
        if not held:
            return False
        keep = max(0, held - max(self.size // self.PARTS, 1))
        os.truncate(self.path, keep)
        log.warning("storage device full: released %d bytes of the space reserve %s (%d left)",
                    held - keep, self.path, keep)
        return True
