"""EndpointsController over FakeApi: the legacy Endpoints object follows pods and Services."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from svcnet.controllers.base import ENDPOINTS, PODS, SERVICES
from svcnet.controllers.endpoints import EndpointsController
from svcnet.core import endpoints as core
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.unit.controllers.test_endpointslice import pod, service
from tests.waiting import until

Obj = dict[str, Any]


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        yield fake


@pytest.fixture
async def running(api: FakeApi) -> AsyncIterator[Callable[[], Any]]:
    async with controller_starter(api, EndpointsController) as start:
        yield start


def endpoints(api: FakeApi, name: str = "web") -> Obj | None:
    return next((e for e in api.objects(ENDPOINTS) if e["metadata"]["name"] == name), None)


def addresses(api: FakeApi, name: str = "web", kind: str = "addresses") -> list[str]:
    ep = endpoints(api, name) or {}
    return [a["ip"] for s in ep.get("subsets") or [] for a in s.get(kind) or []]


async def test_ready_pods_become_addresses_sorted_by_ip_string(api, running) -> None:
    await api.create(SERVICES, "default", service())
    for name, ip in (("a", "10.244.1.8"), ("b", "10.244.1.9"), ("c", "10.244.1.10")):
        await api.create_with_status(PODS, "default", pod(name, ip))
    await running()
    await until(lambda: len(addresses(api)) == 3)
    assert addresses(api) == ["10.244.1.10", "10.244.1.8", "10.244.1.9"]
    ep = endpoints(api)
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert core.ANNOTATION_TRIGGER_TIME in ep["metadata"]["annotations"]


async def test_unready_pod_moves_to_not_ready_addresses(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    b = await api.create_with_status(PODS, "default", pod("b", "10.244.1.9"))
    await running()
    await until(lambda: len(addresses(api)) == 2)
    b["status"]["conditions"][0]["status"] = "False"
    await api.update_status(PODS, "default", b)
    await until(lambda: addresses(api, kind="notReadyAddresses") == ["10.244.1.9"])
    assert addresses(api) == ["10.244.1.8"]


async def test_service_deleted_deletes_its_endpoints(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    await running()
    await until(lambda: endpoints(api))
    await api.delete(SERVICES, "default", "web")
    await until(lambda: endpoints(api) is None)


async def test_selectorless_service_keeps_user_endpoints(api, running) -> None:
    await api.create(SERVICES, "default", service("ext", selector={}))
    user = await api.create(ENDPOINTS, "default", {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432, "protocol": "TCP"}]}]})
    await api.create(SERVICES, "default", service("barrier"))
    r = await running()
    await until(lambda: endpoints(api, "barrier"))
    await r.settled()
    assert endpoints(api, "ext") == user


async def test_leftover_endpoints_without_a_service_are_deleted_at_start(api, running) -> None:
    await api.create(ENDPOINTS, "default", {"apiVersion": "v1", "kind": "Endpoints",
                                            "metadata": {"name": "orphan"}})
    await running()
    await until(lambda: endpoints(api, "orphan") is None)


async def test_endpoints_written_before_their_service_are_kept(api, running) -> None:
    r = await running()
    await api.create(ENDPOINTS, "default", {"apiVersion": "v1", "kind": "Endpoints",
                                            "metadata": {"name": "early"}})
    await api.create(SERVICES, "default", service("barrier"))
    await until(lambda: endpoints(api, "barrier"))
    await r.settled()
    assert endpoints(api, "early") is not None


async def test_endpoints_deleted_by_someone_else_are_recreated(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    await running()
    await until(lambda: endpoints(api))
    first_uid = endpoints(api)["metadata"]["uid"]
    await api.delete(ENDPOINTS, "default", "web")
    await until(lambda: (ep := endpoints(api)) and ep["metadata"]["uid"] != first_uid)
    assert addresses(api) == ["10.244.1.8"]


async def test_nothing_changed_means_no_write(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    r = await running()
    await until(lambda: endpoints(api))
    await r.settled()
    writes = [a for a in api.actions if a.plural == "endpoints"]
    await r.controller.reconcile("default/web")
    assert [a for a in api.actions if a.plural == "endpoints"] == writes


async def test_external_name_service_gets_no_endpoints(api, running) -> None:
    await api.create(SERVICES, "default", service("ext", type="ExternalName"))
    await api.create(SERVICES, "default", service("barrier"))
    r = await running()
    await until(lambda: endpoints(api, "barrier"))
    await r.settled()
    assert endpoints(api, "ext") is None
