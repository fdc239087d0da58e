"""The pid lock: one holder at a time, and a file that keeps its block between runs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from svcnet.kernel.process import AlreadyRunning, PidLock, is_locked, read_pid


def test_the_lock_names_its_holder_and_refuses_a_second_one(tmp_path: Path) -> None:
    path = tmp_path / "svcnet.pid"
    lock = PidLock(path)
    lock.acquire()
    try:
        assert read_pid(path) == os.getpid() and is_locked(path)
        with pytest.raises(AlreadyRunning):
            PidLock(path).acquire()
    finally:
        lock.release()
    assert not is_locked(path)


def test_release_blanks_the_file_in_place_instead_of_removing_it(tmp_path: Path) -> None:
    path = tmp_path / "svcnet.pid"
    path.write_text("123456789012345678901234567890\n")  # a longer line, as an older svcnet left
    lock = PidLock(path)
    lock.acquire()
    inode, size = path.stat().st_ino, path.stat().st_size
    assert path.read_text().strip() == str(os.getpid())
    lock.release()
    assert path.exists() and path.stat().st_ino == inode and path.stat().st_size == size
    assert read_pid(path) is None and not is_locked(path)
    again = PidLock(path)
    again.acquire()  # the same file, written in place
    assert path.stat().st_ino == inode and read_pid(path) == os.getpid()
    again.release()
