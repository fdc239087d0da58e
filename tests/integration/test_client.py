"""svcnet.client against a real `svcnet apiserver`: REST verbs, watch, informer recovery, 410.

The REST verb and watch tests also run against svcnet.testing.api.FakeApi: the fake the unit
tests use answers the same calls as the server does.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.client import ApiClient, Backoff, Informer, TransportError, load_kubeconfig, unix_socket_config
from svcnet.config import ApiServerConfig
from svcnet.testing.api import FakeApi
from tests.integration.apiserver_harness import ApiServerProcess, free_port
from tests.waiting import until

PODS = lookup("", "v1", "pods")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
NAMESPACES = lookup("", "v1", "namespaces")


def pod(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}


def lease(name: str, holder: str = "a") -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"holderIdentity": holder}}



@pytest.fixture
async def api(apiserver: ApiServerProcess) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(apiserver.kubeconfig), component="test") as client:
        yield client


@pytest.fixture(params=["apiserver", "fake"])
async def api_or_fake(request: pytest.FixtureRequest) -> AsyncIterator[ApiClient | FakeApi]:
    """ApiClient over a real `svcnet apiserver`, then FakeApi: one set of calls, two answers to compare."""
    if request.param == "fake":
        async with FakeApi() as fake:
            yield fake
        return
    apiserver: ApiServerProcess = request.getfixturevalue("apiserver")
    async with ApiClient(load_kubeconfig(apiserver.kubeconfig), component="test") as client:
        yield client


async def expect_error(code: int, reason: str, call) -> ApiError:
    with pytest.raises(ApiError) as info:
        await call
    assert (info.value.code, info.value.reason) == (code, reason), info.value.message
    return info.value


async def test_crud_round_trip_with_api_error_codes(api_or_fake: ApiClient | FakeApi):
    api = api_or_fake
    created = await api.create(LEASES, "default", lease("l1"))
    assert created["metadata"]["uid"]
    await expect_error(409, "AlreadyExists", api.create(LEASES, "default", lease("l1")))

    got = await api.get(LEASES, "default", "l1")
    assert got["spec"]["holderIdentity"] == "a"

    got["spec"]["holderIdentity"] = "b"
    updated = await api.update(LEASES, "default", got)
    assert updated["spec"]["holderIdentity"] == "b"
    await expect_error(409, "Conflict", api.update(LEASES, "default", got))  # got's RV is stale now

    merged = await api.patch(LEASES, "default", "l1", {"spec": {"holderIdentity": "c"}})
    assert merged["spec"]["holderIdentity"] == "c"
    jsoned = await api.patch(LEASES, "default", "l1",
                             [{"op": "replace", "path": "/spec/holderIdentity", "value": "d"}],
                             patch_type="json")
    assert jsoned["spec"]["holderIdentity"] == "d"
    applied = await api.patch(LEASES, "default", "l2", lease("l2", "e"), patch_type="apply",
                              field_manager="client-test")
    assert applied["metadata"]["managedFields"][0]["manager"] == "client-test"

    listed = await api.list(LEASES, "default")
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["l1", "l2"]

    await expect_error(409, "Conflict", api.delete(LEASES, "default", "l1", preconditions={"uid": "other"}))
    await api.delete(LEASES, "default", "l1", propagation_policy="Background")
    await expect_error(404, "NotFound", api.get(LEASES, "default", "l1"))
    err = await expect_error(422, "Invalid", api.create(LEASES, "default", lease("Not_Valid")))
    assert err.causes and err.causes[0].field == "metadata.name"


async def test_status_subresource_and_strategic_patch(api_or_fake: ApiClient | FakeApi):
    api = api_or_fake
    await api.create(PODS, "default", pod("p"))
    current = await api.get(PODS, "default", "p")
    current["status"] = {"phase": "Running", "podIP": "10.244.1.5"}
    after = await api.update_status(PODS, "default", current)
    assert after["status"]["podIP"] == "10.244.1.5"
    patched = await api.patch(PODS, "default", "p", {"metadata": {"labels": {"app": "web"}}},
                              patch_type="strategic")
    assert patched["metadata"]["labels"] == {"app": "web"}


async def test_paged_list_and_selectors(api_or_fake: ApiClient | FakeApi):
    api = api_or_fake
    for i in range(5):
        await api.create(PODS, "default", pod(f"p{i}", {"parity": str(i % 2)}))
    first = await api.list(PODS, "default", limit=2)
    assert len(first["items"]) == 2 and first["metadata"]["continue"]
    rest = await api.list(PODS, "default", continue_=first["metadata"]["continue"])
    assert len(first["items"]) + len(rest["items"]) == 5
    odd = await api.list(PODS, "default", label_selector="parity=1")
    assert sorted(i["metadata"]["name"] for i in odd["items"]) == ["p1", "p3"]
    await expect_error(400, "BadRequest", api.list(PODS, field_selector="spec.bogus=x"))


async def test_watch_delivers_events(api_or_fake: ApiClient | FakeApi):
    api = api_or_fake
    start_rv = (await api.list(PODS, "default"))["metadata"]["resourceVersion"]
    await api.create(PODS, "default", pod("w", {"big": "yes"}))
    # A large object: one watch line far over aiohttp's default line limit.
    await api.patch(PODS, "default", "w", {"metadata": {"annotations": {"blob": "x" * 200_000}}})
    await api.delete(PODS, "default", "w")
    seen = []
    # A short server timeout: the apiserver's shutdown waits for open watch handlers.
    stream = api.watch(PODS, "default", resource_version=start_rv, timeout_seconds=2)
    async with contextlib.aclosing(stream) as events:
        async for event_type, obj in events:
            seen.append((event_type, obj["metadata"]["name"]))
            if event_type == "DELETED":
                break
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_unix_socket_needs_no_token(apiserver: ApiServerProcess):
    async with ApiClient(unix_socket_config(apiserver.data_dir / "apiserver.sock")) as api:
        names = [n["metadata"]["name"] for n in (await api.list(NAMESPACES))["items"]]
    assert "default" in names


async def test_bad_token_is_401(apiserver: ApiServerProcess):
    from dataclasses import replace

    cfg = replace(load_kubeconfig(apiserver.kubeconfig), token="wrong")
    async with ApiClient(cfg) as api:
        await expect_error(401, "Unauthorized", api.list(PODS))


async def test_connection_refused_is_a_transport_error(tmp_path: Path):
    from svcnet.client import ClientConfig

    async with ApiClient(ClientConfig(server=f"http://127.0.0.1:{free_port()}")) as api:
        with pytest.raises(TransportError):
            await api.list(PODS)


async def test_informer_syncs_sees_updates_and_recovers_from_a_server_restart(
        apiserver: ApiServerProcess, api: ApiClient):
    await api.create(PODS, "default", pod("before"))
    # Short watches: a SIGTERMed apiserver waits for open watch handlers before it exits.
    informer = Informer(api, PODS, namespace="default", backoff=Backoff(initial=0.05, cap=0.5),
                        min_watch_timeout=1)
    names: list[str] = []
    informer.add_handler(on_add=lambda o: names.append(o["metadata"]["name"]),
                         on_update=lambda old, new: names.append("~" + new["metadata"]["name"]))
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 30)
        assert names == ["before"]
        await api.patch(PODS, "default", "before", {"metadata": {"labels": {"v": "2"}}})
        await until(lambda: "~before" in names, timeout=30.0)

        await asyncio.to_thread(apiserver.stop)
        await asyncio.to_thread(apiserver.start)
        await api.create(PODS, "default", pod("after-restart"))
        await until(lambda: informer.get("default", "after-restart"), timeout=30.0)
        assert informer.relists == 1  # resumed the watch from its resourceVersion, no re-list
    finally:
        await informer.stop()


@pytest.fixture
async def in_process_server(tmp_path: Path):
    """The API server in this process, so the test can reach its store to compact it."""
    from svcnet.apiserver.daemon import RunningApiServer

    server = RunningApiServer(ApiServerConfig(data_dir=tmp_path / "data", port=free_port()))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_watch_from_a_compacted_revision_is_410_and_the_informer_relists(in_process_server):
    server = in_process_server
    async with ApiClient(load_kubeconfig(server.kubeconfig), component="test") as api:
        for name in ("keep", "gone"):
            await api.create(PODS, "default", pod(name))
        informer = Informer(api, PODS, namespace="default", backoff=Backoff(initial=0.01, cap=0.05),
                            min_watch_timeout=1)
        deleted: list[str] = []
        informer.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
        informer.start()
        await asyncio.wait_for(informer.wait_synced(), 30)
        await informer.stop()  # the informer misses what follows
        stale_rv = informer.last_resource_version

        await api.delete(PODS, "default", "gone")
        await api.create(PODS, "default", pod("later"))
        server.store.compact(server.store.current_revision())

        with pytest.raises(ApiError) as info:
            async for _ in api.watch(PODS, "default", resource_version=stale_rv, timeout_seconds=1):
                pass
        assert info.value.code == 410

        informer.start()  # resumes from stale_rv: 410, then a re-list diffed against the cache
        try:
            await until(lambda: informer.relists == 2, timeout=30.0)
            assert deleted == ["gone"]
            assert sorted(o["metadata"]["name"] for o in informer.list()) == ["keep", "later"]
        finally:
            await informer.stop()
