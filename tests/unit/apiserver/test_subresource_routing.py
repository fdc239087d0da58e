"""Which handler a subresource request reaches, through the real aiohttp app over the in-memory store.

pods/exec is served by the exec handler for GET (WebSocket upgrade) and POST; the other
subresources answer only the verbs discovery lists for them. pods/log, exec, portforward and
nodes/proxy are proxied to the node's kubelet (a fake kubelet API on localhost here).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from svcnet.api.resources import lookup
from svcnet.apiserver import subresources
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.nodeaccess import KubeletDialer, kubelet_location
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
class FakeKubelet:
    """A kubelet API on localhost (plain HTTP: the dialer here has no TLS) that records what it was asked."""
    asked: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.serve)
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.asked.append((request.method, request.path_qs))
        if "authorization" in request.headers:
            return web.Response(status=500, text="the user's credentials reached the kubelet")
        if request.path.startswith("/containerLogs/"):
            if request.query.get("previous") == "true":
                return web.Response(status=400, text='previous terminated container "main" in pod "p" not found')
            if request.query.get("follow") == "true":
                response = web.StreamResponse()
                response.enable_chunked_encoding()
                await response.prepare(request)
                for part in (b"hel", b"lo\n"):
                    await response.write(part)
                await response.write_eof()
                return response
            return web.Response(text="hello\n")
        if request.path.startswith("/exec/") and request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io",))
            await ws.prepare(request)
            message = await ws.receive_bytes()
            await ws.send_bytes(b"\x01" + message[1:].upper())
            await ws.close()
            return ws
        if request.path.startswith("/exec/"):
            return web.Response(status=500, text='container not found ("main")')
        return web.Response(status=418, text=f"kubelet path {request.path}")


@pytest.fixture
async def kubelet() -> AsyncIterator[tuple[FakeKubelet, int]]:
    fake = FakeKubelet()
    async with TestServer(fake.app()) as server:
        yield fake, server.port


@pytest.fixture
async def bound_client(registry: Registry, kubelet: tuple[FakeKubelet, int]) -> AsyncIterator[TestClient]:
    """The pod bound to node n1, whose kubelet is the fake; the server dials it from this namespace."""
    assert NODES is not None
    node = registry.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
                           WriteOptions())
    node["status"] = {"addresses": [{"type": "Hostname", "address": "n1"},
                                    {"type": "InternalIP", "address": "127.0.0.1"}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet[1]}}}
    registry.update(NODES, None, "n1", node, WriteOptions(), subresource="status")
    registry.bind_pod("default", "p", {"target": {"kind": "Node", "name": "n1"}})
    app = ApiServer(registry, ServerSettings(token=None), KubeletDialer(None)).make_app(authenticate=False)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_log_without_node_access_answers_that_the_container_is_waiting(client: TestClient) -> None:
    resp = await client.get(f"{POD_PATH}/log")
    assert resp.status == 400
    assert (await resp.json())["message"] == \
        'container "main" in pod "p" is waiting to start: ContainerCreating'


async def test_log_is_the_kubelets_container_log_with_the_options_passed_on(
        bound_client: TestClient, kubelet: tuple[FakeKubelet, int]) -> None:
    resp = await bound_client.get(f"{POD_PATH}/log?tailLines=3&timestamps=true&sinceTime=1970-01-01T00:00:01.5Z",
                                  headers={"Authorization": "Bearer user-token"})
    assert resp.status == 200
    assert await resp.read() == b"hello\n"
    assert kubelet[0].asked == [("GET", "/containerLogs/default/p/main?tailLines=3&sinceTime=1970-01-01T00%3A00%3A01.5Z"
                                        "&timestamps=true")]


async def test_log_follow_streams_what_the_kubelet_writes(bound_client: TestClient) -> None:
    resp = await bound_client.get(f"{POD_PATH}/log?follow=true")
    assert await resp.read() == b"hello\n"


async def test_a_kubelets_bad_request_is_a_bad_request_status(bound_client: TestClient) -> None:
    resp = await bound_client.get(f"{POD_PATH}/log?previous=true")
    assert resp.status == 400
    assert (await resp.json())["message"] == 'previous terminated container "main" in pod "p" not found'


async def test_bad_log_options_are_refused_before_the_kubelet_is_asked(
        bound_client: TestClient, kubelet: tuple[FakeKubelet, int]) -> None:
    resp = await bound_client.get(f"{POD_PATH}/log?tailLines=many")
    assert resp.status == 400
    assert kubelet[0].asked == []


async def test_exec_refused_by_the_kubelet_passes_its_answer_through(
        bound_client: TestClient, kubelet: tuple[FakeKubelet, int]) -> None:
    resp = await bound_client.post(f"{POD_PATH}/exec?command=true&stdout=true")
    assert resp.status == 500
    assert await resp.text() == 'container not found ("main")'
    assert kubelet[0].asked == [("POST", "/exec/default/p/main?command=true&stdout=true")]


async def test_exec_upgrade_is_spliced_to_the_kubelets_websocket(bound_client: TestClient) -> None:
    async with bound_client.ws_connect(f"{POD_PATH}/exec?command=cat&stdin=true&stdout=true",
                                       protocols=("v5.channel.k8s.io",)) as ws:
        assert ws.protocol == "v5.channel.k8s.io"
        await ws.send_bytes(b"\x00hi")
        assert await ws.receive_bytes() == b"\x01HI"


async def test_node_proxy_reaches_the_kubelet_path(bound_client: TestClient, kubelet: tuple[FakeKubelet, int]) -> None:
    resp = await bound_client.get("/api/v1/nodes/n1/proxy/healthz/sub?x=1")
    assert (resp.status, await resp.text()) == (418, "kubelet path /healthz/sub")
    assert kubelet[0].asked == [("GET", "/healthz/sub?x=1")]


async def test_node_proxy_of_an_unknown_node_is_not_found(bound_client: TestClient) -> None:
    resp = await bound_client.get("/api/v1/nodes/nope/proxy/healthz")
    assert resp.status == 404


async def test_port_forward_goes_to_the_pods_kubelet(bound_client: TestClient, kubelet: tuple[FakeKubelet, int]) -> None:
    resp = await bound_client.post(f"{POD_PATH}/portforward?ports=80")
    assert resp.status == 418
    assert kubelet[0].asked == [("POST", "/portForward/default/p?ports=80")]


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


async def test_an_spdy_upgrade_is_spliced_both_ways(registry: Registry) -> None:
    """SPDY/3.1 (port-forward) is no protocol aiohttp knows: after the kubelet's 101 the proxy relays raw bytes."""
    asked: list[bytes] = []

    async def kubelet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
        while data := await reader.read(100):
            writer.write(data[::-1])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(kubelet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert NODES is not None
    node = registry.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
                           WriteOptions())
    node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
    registry.update(NODES, None, "n1", node, WriteOptions(), subresource="status")
    registry.bind_pod("default", "p", {"target": {"kind": "Node", "name": "n1"}})
    app = ApiServer(registry, ServerSettings(token=None), KubeletDialer(None)).make_app(authenticate=False)
    async with server, TestServer(app) as api:
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(f"POST {POD_PATH}/portforward HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"X-Stream-Protocol-Version: portforward.k8s.io" in head
        writer.write(b"frames")
        assert await reader.readexactly(6) == b"semarf"
        writer.close()
    assert asked[0].startswith(b"POST /portForward/default/p HTTP/1.1\r\n")
    assert b"Upgrade: SPDY/3.1" in asked[0]


@pytest.mark.parametrize(("status", "where"), [
    ({"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
      "daemonEndpoints": {"kubeletEndpoint": {"Port": 10255}}}, ("10.0.0.1", 10255)),
    ({"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}, {"type": "Hostname", "address": "n1"}]},
     ("1.2.3.4", 10250)),
    ({"addresses": [{"type": "Hostname", "address": "n1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}},
     ("n1", 10250)),
    ({}, None),
])
def test_the_kubelet_is_at_the_preferred_address_and_advertised_port(status: dict, where: tuple | None) -> None:
    assert kubelet_location({"status": status}) == where


class FakeTransport:
    def __init__(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def test_a_spliced_client_is_not_read_while_the_kubelet_lags_behind() -> None:
    from svcnet.apiserver.kubeletproxy import _RawFeed

    transport = FakeTransport()
    feed = _RawFeed(transport)  # type: ignore[arg-type]
    block = b"x" * (_RawFeed.HIGH_WATER // 4)
    for _ in range(5):
        feed.feed_data(block)
    assert not transport.reading  # more than the high-water mark waits
    await feed.read()
    await feed.read()
    assert not transport.reading
    await feed.read()  # half the mark or less left
    assert transport.reading
    feed.feed_eof()
    assert [await feed.read(), await feed.read(), await feed.read()] == [block, block, b""]
