"""Fixtures every storage test shares: one store per driver, and an event recorder.

The etcd driver's stores share the session's one etcd (tests/conftest.py, etcd_server), each test
under a key prefix of its own. etcd's revision is global and starts at 1, not 0, so a test states
revisions relative to where its store started: `rev(n)` is the n-th revision after the start (for
memory and SQLite that is n itself, as a new store is at revision 0).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from svcnet.storage.base import Store
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore

from .recording import Recorder

DRIVERS = ("memory", "sqlite", "etcd")
_namespaces = itertools.count()


def open_driver(driver: str, directory: Path, request: pytest.FixtureRequest) -> Store:
    if driver == "memory":
        return MemoryStore()
    if driver == "sqlite":
        return SqliteStore(str(directory / "store.db"))
    from svcnet.storage.etcd import EtcdConfig, EtcdStore

    server = request.getfixturevalue("etcd_server")
    return EtcdStore(EtcdConfig((("127.0.0.1", server.spec.client_port),), root=f"/test-{next(_namespaces)}"))


@pytest.fixture(params=DRIVERS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_driver(request.param, tmp_path, request)
    yield opened
    opened.close()


@dataclass(frozen=True)
class Origin:
    """Where a test's store started: its revision and compaction point then."""

    revision: int
    compacted: int

    def __call__(self, n: int) -> int:
        return self.revision + n


@pytest.fixture
def rev(store: Store, request: pytest.FixtureRequest) -> Origin:
    if request.node.callspec.params.get("store") != "etcd":
        return Origin(0, 0)  # a new memory or SQLite store: exactly revision 0, never compacted
    return Origin(store.current_revision(), store.compacted_revision())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
