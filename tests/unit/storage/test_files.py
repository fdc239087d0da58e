"""Private modes for the store's files whatever the umask, and the space reserve's parts."""
from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.storage.files import SpaceReserve, private_dir, private_file, tighten
from svcnet.storage.sqlite import SqliteStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_missing_directories_are_created_0700_even_with_a_permissive_umask(tmp_path, permissive_umask):
    private_dir(str(tmp_path / "a" / "b" / "c"))
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700, 0o700, 0o700]


def test_a_restrictive_umask_does_not_leave_the_directory_unusable(tmp_path):
    old = os.umask(0o277)
    try:
        private_dir(str(tmp_path / "d"))
    finally:
        os.umask(old)
    assert mode(tmp_path / "d") == 0o700


def test_an_existing_directory_keeps_its_mode_with_a_warning_as_etcd(tmp_path, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="svcnet.storage"):
        private_dir(str(shared))
    assert mode(shared) == 0o755
    assert "has mode 0755" in caplog.text


def test_files_are_created_0600_and_loose_ones_tightened(tmp_path, permissive_umask):
    new = tmp_path / "new.db"
    private_file(str(new))
    assert mode(new) == 0o600
    loose = tmp_path / "loose-wal"
    loose.write_text("x")
    loose.chmod(0o644)
    tighten(str(loose))
    assert mode(loose) == 0o600
    tighten(str(tmp_path / "absent"))  # SQLite had no reason to create it: nothing to do
    assert not (tmp_path / "absent").exists()


def test_every_store_file_is_0600_and_a_new_directory_0700_under_umask_0(tmp_path, permissive_umask):
    directory = tmp_path / "elsewhere" / "db"
    store = SqliteStore(str(directory / "state.db"))
    try:
        store.create("/registry/core/pods/default/a", {"metadata": {"name": "a"}})
        files = {p.name: mode(p) for p in directory.iterdir()}
    finally:
        store.close()
    assert mode(tmp_path / "elsewhere") == 0o700 and mode(directory) == 0o700
    assert {"state.db", "state.db-wal", "state.db-shm", "state.db.lock", "state.db.reserve"} <= files.keys()
    assert set(files.values()) == {0o600}


def test_the_reserve_holds_real_blocks_and_is_released_a_quarter_at_a_time(tmp_path):
    reserve = SpaceReserve(str(tmp_path / "reserve"), 256 * 1024)
    assert reserve.held == 0 and not reserve.release()
    assert reserve.take()
    assert os.stat(reserve.path).st_blocks * 512 >= reserve.size  # allocated, not sparse
    held = []
    while reserve.release():
        held.append(reserve.held)
    assert held == [192 * 1024, 128 * 1024, 64 * 1024, 0]
    assert reserve.take() and reserve.held == reserve.size
