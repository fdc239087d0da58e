"""Fixtures shared by the API server's unit tests."""
from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import Registry
from svcnet.storage.memory import MemoryStore

# The clock the `registry` fixture starts at.
T0 = dt.datetime(2026, 11, 27, 8, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def registry() -> Registry:
    """The registry as the API server builds it (defaulting, validation, strict fields and pruning,
    managedFields) over the in-memory store, at a fixed clock, with the system namespaces.

    Modules that test the bare Registry define their own `registry`, which wins over this one.
    """
    reg = build_registry(MemoryStore())
    reg.clock = lambda: T0
    reg.ensure_system_namespaces()
    return reg


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient]:
    """The real aiohttp app over `registry`, without a socket or a token."""
    app = ApiServer(registry, ServerSettings(token=None)).make_app(authenticate=False)
    async with TestClient(TestServer(app)) as c:
        yield c
