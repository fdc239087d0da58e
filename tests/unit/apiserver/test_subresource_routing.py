"""Which handler a subresource request reaches, through the real aiohttp app over the in-memory store.

pods/exec is served by the exec handler for GET (WebSocket upgrade) and POST; the other
subresources answer only the verbs discovery lists for them. pods/log and pods/exec reach
the pod's node only through the NodeAccess the server is given (a fake here).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.api.podlogs import LogOptions
from svcnet.api.resources import lookup
from svcnet.apiserver import subresources
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.storage.memory import MemoryStore

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
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


# ---------------------------------------------------------------- pods/log and pods/exec through NodeAccess

@dataclass
class FakeLog:
    text: bytes
    asked: list[LogOptions] = field(default_factory=list)

    async def read(self, options: LogOptions) -> bytes:
        self.asked.append(options)
        return self.text

    async def follow(self, options: LogOptions, pod_gone: Callable[[], bool]) -> AsyncIterator[bytes]:
        self.asked.append(options)
        yield self.text


@dataclass
class FakeNodeAccess:
    """Reaches node n1 only; has a log for container main, and no running container."""
    log: FakeLog = field(default_factory=lambda: FakeLog(b"hello\n"))
    calls: list[tuple[str, str, bool]] = field(default_factory=list)

    def reaches(self, node: dict[str, Any]) -> bool:
        return node["metadata"]["name"] == "n1"

    def container_log(self, node: dict[str, Any], pod: dict[str, Any], container: str, *,
                      previous: bool) -> FakeLog | None:
        self.calls.append((pod["metadata"]["name"], container, previous))
        if previous:
            raise LookupError(f'previous terminated container "{container}" in pod "p" not found')
        return self.log

    def running_container(self, node: dict[str, Any], pod: dict[str, Any], container: str) -> None:
        self.calls.append((pod["metadata"]["name"], container, False))
        return None


@pytest.fixture
def access() -> FakeNodeAccess:
    return FakeNodeAccess()


@pytest.fixture
async def bound_client(registry: Registry, access: FakeNodeAccess) -> AsyncIterator[TestClient]:
    """The pod bound to node n1, which exists; the server reaches nodes through the fake."""
    assert NODES is not None
    registry.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
                    WriteOptions())
    registry.bind_pod("default", "p", {"target": {"kind": "Node", "name": "n1"}})
    app = ApiServer(registry, ServerSettings(token=None), access).make_app(authenticate=False)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_log_without_node_access_answers_that_the_container_is_waiting(client: TestClient) -> None:
    resp = await client.get(f"{POD_PATH}/log")
    assert resp.status == 400
    assert (await resp.json())["message"] == \
        'container "main" in pod "p" is waiting to start: ContainerCreating'


async def test_log_is_read_through_node_access_with_the_parsed_options(
        bound_client: TestClient, access: FakeNodeAccess) -> None:
    resp = await bound_client.get(f"{POD_PATH}/log?tailLines=3&timestamps=true&sinceTime=1970-01-01T00:00:01.5Z")
    assert resp.status == 200
    assert await resp.read() == b"hello\n"
    assert access.calls == [("p", "main", False)]
    assert access.log.asked == [LogOptions(tail_lines=3, timestamps=True, since_ns=1_500_000_000)]


async def test_log_follow_streams_what_node_access_yields(bound_client: TestClient, access: FakeNodeAccess) -> None:
    resp = await bound_client.get(f"{POD_PATH}/log?follow=true")
    assert await resp.read() == b"hello\n"
    assert access.log.asked[0].follow


async def test_log_lookup_errors_from_the_node_are_bad_requests(bound_client: TestClient) -> None:
    resp = await bound_client.get(f"{POD_PATH}/log?previous=true")
    assert resp.status == 400
    assert (await resp.json())["message"] == 'previous terminated container "main" in pod "p" not found'


async def test_exec_in_a_container_the_node_does_not_run_is_refused(
        bound_client: TestClient, access: FakeNodeAccess) -> None:
    resp = await bound_client.post(f"{POD_PATH}/exec?command=true&stdout=true")
    assert resp.status == 400
    assert (await resp.json())["message"] == 'container not found ("main")'
    assert access.calls == [("p", "main", False)]


@pytest.mark.parametrize(("text", "unix_ns"), [
    ("1970-01-01T00:00:01Z", 1_000_000_000),
    ("1970-01-01T00:00:01.5Z", 1_500_000_000),
    ("1970-01-01T00:00:01.000000007Z", 1_000_000_007),
    ("1970-01-01T00:00:01.Z", 1_000_000_000),
])
def test_since_time_is_read_as_unix_nanoseconds(text: str, unix_ns: int) -> None:
    assert subresources.unix_ns(text) == unix_ns


@pytest.mark.parametrize("text", ["1970-01-01T00:00:01+01:00", "1970-01-01T00:00:01.5", "yesterday", "1970-01-01T00:00:01.x5Z"])
def test_since_time_must_be_utc_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):
        subresources.unix_ns(text)
