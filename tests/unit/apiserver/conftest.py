"""Fixtures for tests that drive the real aiohttp app over an in-memory registry."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.registry import Registry


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient]:
    """The API server's app, unauthenticated, over the test module's `registry` fixture."""
    app = ApiServer(registry, ServerSettings(token=None)).make_app(authenticate=False)
    async with TestClient(TestServer(app)) as c:
        yield c
