"""agent/configsource: ConfigMaps and Secrets by name, cached for a TTL, missing ones not cached."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from svcnet.agent.configsource import CONFIGMAPS, ConfigSource, SourceError
from svcnet.api.errors import ApiError
from svcnet.testing.api import FakeApi


class CountingApi(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    async def get(self, resource: Any, namespace: str | None, name: str, subresource: str | None = None) -> Any:
        self.gets.append(name)
        return await super().get(resource, namespace, name)


async def test_an_object_is_read_by_name_once_per_ttl_and_fresh_reads_the_api() -> None:
    api, now = CountingApi(), [0.0]
    await api.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                                             "data": {"k": "1"}})
    source = ConfigSource(api, ttl_seconds=15, clock=lambda: now[0])
    assert (await source.get("ConfigMap", "default", "a"))["data"] == {"k": "1"}
    now[0] = 14.0
    await source.get("ConfigMap", "default", "a")
    assert api.gets == ["a"]
    await source.get("ConfigMap", "default", "a", fresh=True)
    now[0] = 40.0
    await source.get("ConfigMap", "default", "a")
    assert api.gets == ["a", "a", "a"]


async def test_a_missing_object_is_none_and_not_cached() -> None:
    api = CountingApi()
    source = ConfigSource(api, clock=lambda: 0.0)
    assert await source.get("Secret", "default", "nope") is None
    assert await source.get("Secret", "default", "nope") is None
    assert api.gets == ["nope", "nope"]


class ForbiddingApi:
    async def get(self, resource: Any, namespace: str | None, name: str) -> Any:
        raise ApiError(403, "Forbidden", f'configmaps "{name}" is forbidden')


async def test_other_errors_name_the_object() -> None:
    with pytest.raises(SourceError, match="cannot read configmap default/a: .*forbidden"):
        await ConfigSource(ForbiddingApi()).get("ConfigMap", "default", "a")


class GatedApi(CountingApi):
    """Holds every GET until `gate` opens, so reads can meet while one is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def get(self, resource: Any, namespace: str | None, name: str, subresource: str | None = None) -> Any:
        self.gets.append(name)
        await self.gate.wait()
        return await FakeApi.get(self, resource, namespace, name)


async def test_reads_of_one_object_while_its_get_is_in_flight_share_that_get() -> None:
    api = GatedApi()
    await api.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                                             "data": {"k": "1"}})
    source = ConfigSource(api, clock=lambda: 0.0)
    readers = [asyncio.create_task(source.get("ConfigMap", "default", "a")) for _ in range(50)]
    await asyncio.sleep(0)  # every reader reaches its wait
    one_cancelled = readers.pop()
    one_cancelled.cancel()
    api.gate.set()
    results = await asyncio.gather(*readers)
    assert api.gets == ["a"]
    assert all(r is not None and r["data"] == {"k": "1"} for r in results)


async def test_a_shared_get_that_fails_fails_every_reader_and_the_next_read_tries_again() -> None:
    class FlakyApi(GatedApi):
        async def get(self, resource: Any, namespace: str | None, name: str, subresource: str | None = None) -> Any:
            self.gets.append(name)
            await self.gate.wait()
            if len(self.gets) == 1:
                raise ApiError(500, "InternalError", "boom")
            return {"metadata": {"name": name}}

    api = FlakyApi()
    source = ConfigSource(api, clock=lambda: 0.0)
    readers = [asyncio.create_task(source.get("Secret", "default", "s")) for _ in range(3)]
    await asyncio.sleep(0)
    api.gate.set()
    outcomes = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(o, SourceError) for o in outcomes)
    assert (await source.get("Secret", "default", "s")) == {"metadata": {"name": "s"}}
    assert api.gets == ["s", "s"]
