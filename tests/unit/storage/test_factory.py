"""Choosing the driver from a DSN."""
from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.storage.factory import open_store
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("dsn_template", "driver", "file_name"),
    [
        ("memory://", MemoryStore, None),
        ("sqlite://{dir}/a.db", SqliteStore, "a.db"),  # sqlite:// + /abs/path: three slashes in all
        ("{dir}/bare.db", SqliteStore, "bare.db"),
    ],
)
def test_dsn_picks_the_driver(tmp_path: Path, dsn_template: str, driver: type, file_name: str | None) -> None:
    store = open_store(dsn_template.format(dir=tmp_path))
    try:
        assert isinstance(store, driver)
        if file_name is not None:
            assert isinstance(store, SqliteStore) and store.path == str(tmp_path / file_name)
            assert (tmp_path / file_name).exists()
    finally:
        store.close()


def test_relative_sqlite_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite://rel/dir.db")
    try:
        assert isinstance(store, SqliteStore) and store.path == str(tmp_path / "rel" / "dir.db")
    finally:
        store.close()


@pytest.mark.parametrize("dsn", ["etcd://127.0.0.1:2379", "memory://somewhere", "sqlite://", ""])
def test_unusable_dsn_is_a_clear_error(dsn: str) -> None:
    with pytest.raises(ValueError, match="storage DSN"):
        open_store(dsn)
