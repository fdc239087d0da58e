"""EndpointSliceMirroringController over FakeApi: hand-written Endpoints follow into slices and out again."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from svcnet.controllers.base import ENDPOINTS, ENDPOINTSLICES, SERVICES
from svcnet.controllers.endpointslicemirroring import EndpointSliceMirroringController
from svcnet.core.endpoints import mirroring
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.unit.controllers.test_endpointslice import service
from tests.waiting import until

Obj = dict[str, Any]


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        yield fake


@pytest.fixture
async def running(api: FakeApi) -> AsyncIterator[Callable[[], Any]]:
    async with controller_starter(api, EndpointSliceMirroringController) as start:
        yield start


def user_endpoints(name: str, *ips: str, labels: dict[str, str] | None = None) -> Obj:
    md: Obj = {"name": name}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": md,
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 5432, "protocol": "TCP"}]}]}


def mirrored(api: FakeApi, name: str = "ext") -> list[list[str]]:
    """The addresses of each mirrored slice of the Service."""
    return [[e["addresses"][0] for e in s["endpoints"]] for s in api.objects(ENDPOINTSLICES)
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == name
            and mirroring.mirrored_by_controller(s)]


async def test_endpoints_of_a_selectorless_service_are_mirrored_and_follow_changes(api, running) -> None:
    await api.create(SERVICES, "default", service("ext", selector={}))
    written = await api.create(ENDPOINTS, "default", user_endpoints("ext", "192.0.2.10"))
    await running()
    await until(lambda: mirrored(api) == [["192.0.2.10"]])
    written["subsets"][0]["addresses"].append({"ip": "192.0.2.11"})
    await api.update(ENDPOINTS, "default", written)
    await until(lambda: mirrored(api) == [["192.0.2.10", "192.0.2.11"]])
    await api.delete(ENDPOINTS, "default", "ext")
    await until(lambda: mirrored(api) == [])


async def test_endpoints_of_a_service_with_a_selector_or_without_a_service_are_not_mirrored(api, running) -> None:
    await api.create(SERVICES, "default", service("web"))
    await api.create(ENDPOINTS, "default", user_endpoints("web", "192.0.2.10"))
    await api.create(ENDPOINTS, "default", user_endpoints("orphan", "192.0.2.12"))
    await api.create(SERVICES, "default", service("barrier", selector={}))
    await api.create(ENDPOINTS, "default", user_endpoints("barrier", "192.0.2.13"))
    r = await running()
    await until(lambda: mirrored(api, "barrier") == [["192.0.2.13"]])
    await r.settled()
    assert mirrored(api, "web") == [] and mirrored(api, "orphan") == []


async def test_a_selector_added_later_or_the_skip_mirror_label_removes_the_mirrored_slices(api, running) -> None:
    svc = await api.create(SERVICES, "default", service("ext", selector={}))
    await api.create(ENDPOINTS, "default", user_endpoints("ext", "192.0.2.10"))
    await api.create(SERVICES, "default", service("other", selector={}))
    await api.create(ENDPOINTS, "default", user_endpoints("other", "192.0.2.20"))
    await running()
    await until(lambda: mirrored(api) == [["192.0.2.10"]] and mirrored(api, "other") == [["192.0.2.20"]])
    svc["spec"]["selector"] = {"app": "ext"}
    await api.update(SERVICES, "default", svc)
    await until(lambda: mirrored(api) == [])
    other = next(e for e in api.objects(ENDPOINTS) if e["metadata"]["name"] == "other")
    other["metadata"]["labels"] = {mirroring.LABEL_SKIP_MIRROR: "true"}
    await api.update(ENDPOINTS, "default", other)
    await until(lambda: mirrored(api, "other") == [])


async def test_a_mirrored_slice_deleted_by_someone_else_is_put_back(api, running) -> None:
    await api.create(SERVICES, "default", service("ext", selector={}))
    await api.create(ENDPOINTS, "default", user_endpoints("ext", "192.0.2.10"))
    r = await running()
    await until(lambda: mirrored(api) == [["192.0.2.10"]])
    await r.settled()
    [slice_] = [s for s in api.objects(ENDPOINTSLICES) if mirroring.mirrored_by_controller(s)]
    await api.delete(ENDPOINTSLICES, "default", slice_["metadata"]["name"])
    await until(lambda: mirrored(api) == [["192.0.2.10"]]
                and all(s["metadata"]["name"] != slice_["metadata"]["name"] for s in api.objects(ENDPOINTSLICES)))
