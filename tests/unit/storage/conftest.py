"""Fixtures every storage test shares: one store per driver, and an event recorder."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.storage.base import Store
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore

from .recording import Recorder

DRIVERS = ("memory", "sqlite")


def open_driver(driver: str, directory: Path) -> Store:
    if driver == "memory":
        return MemoryStore()
    return SqliteStore(str(directory / "store.db"))


@pytest.fixture(params=DRIVERS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_driver(request.param, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
