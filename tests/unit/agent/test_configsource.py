"""agent/configsource: ConfigMaps and Secrets by name, cached for a TTL, missing ones not cached."""
from __future__ import annotations

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
