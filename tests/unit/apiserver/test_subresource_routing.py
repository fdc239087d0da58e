"""Which handler a subresource request reaches, through the real aiohttp app over the in-memory store.

pods/exec is served by the exec handler for GET (WebSocket upgrade) and POST; the other
subresources answer only the verbs discovery lists for them.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.api.resources import lookup
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.storage.memory import MemoryStore

PODS = lookup("", "v1", "pods")
POD_PATH = "/api/v1/namespaces/default/pods/p"


@pytest.fixture
def registry() -> Registry:
    reg = Registry(MemoryStore())
    reg.ensure_system_namespaces()
    assert PODS is not None
    reg.create(PODS, "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                 "spec": {"containers": [{"name": "main", "image": "busybox"}]}},
               WriteOptions())
    return reg


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient]:
    app = ApiServer(registry, ServerSettings(token=None)).make_app(authenticate=False)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_exec_get_and_post_reach_the_exec_handler(client: TestClient, method: str) -> None:
    """The pod is not scheduled: only the exec handler answers with this."""
    resp = await client.request(method, f"{POD_PATH}/exec?command=true&stdout=true")
    assert resp.status == 400
    assert (await resp.json())["message"] == "pod p does not have a host assigned"


async def test_exec_post_reads_its_options_from_the_query(client: TestClient) -> None:
    resp = await client.post(f"{POD_PATH}/exec?command=true&stdout=true&container=nope")
    assert (await resp.json())["message"] == "container nope is not valid for pod p"


async def test_delete_on_a_status_subresource_is_refused_and_keeps_the_object(
        client: TestClient, registry: Registry) -> None:
    resp = await client.delete(f"{POD_PATH}/status")
    assert resp.status == 405
    assert (await resp.json())["reason"] == "MethodNotAllowed"
    assert PODS is not None and registry.get(PODS, "default", "p")["metadata"]["name"] == "p"


async def test_status_still_answers_get(client: TestClient) -> None:
    resp = await client.get(f"{POD_PATH}/status")
    assert resp.status == 200
    assert (await resp.json())["metadata"]["name"] == "p"


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_finalize_answers_only_update(client: TestClient, method: str) -> None:
    resp = await client.request(method, "/api/v1/namespaces/default/finalize",
                                headers={"Content-Type": "application/merge-patch+json"}, data=b"{}")
    assert resp.status == 405


async def test_finalize_put_still_works(client: TestClient) -> None:
    ns = await (await client.get("/api/v1/namespaces/default")).json()
    resp = await client.put("/api/v1/namespaces/default/finalize", json=ns)
    assert resp.status == 200
    assert (await resp.json())["metadata"]["name"] == "default"
