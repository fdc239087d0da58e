"""The informer over FakeApi: list+watch, relist diffs after 410, handler replay, indexes."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from svcnet.api.errors import ApiError
from svcnet.client.informer import Backoff, Cache, Informer, object_key, split_key
from svcnet.testing.api import FakeApi
from tests.unit.client.helpers import NAMESPACES, NODES, PODS, Recorder, pod
from tests.waiting import until

FAST = Backoff(initial=0.001, cap=0.002)


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        yield fake


@pytest.fixture
async def started(api: FakeApi):
    informers: list[Informer] = []

    async def start(**kwargs) -> tuple[Informer, Recorder]:
        informer = Informer(api, kwargs.pop("resource", PODS), backoff=FAST, **kwargs)
        recorder = Recorder()
        informer.add_handler(**recorder.handlers())
        informer.start()
        informers.append(informer)
        await informer.wait_synced()
        return informer, recorder

    yield start
    for informer in informers:
        await informer.stop()


async def test_initial_list_fills_the_cache_and_calls_on_add_before_synced(api, started):
    for name in ("a", "b"):
        await api.create(PODS, "default", pod(name))
    informer, rec = await started()
    assert informer.has_synced()
    assert sorted(rec.events) == [("add", "default/a"), ("add", "default/b")]
    assert informer.get("default", "a")["kind"] == "Pod"  # list items get their kind back


async def test_list_is_paged(api, started):
    for i in range(7):
        await api.create(PODS, "default", pod(f"p{i}"))
    informer, rec = await started(page_size=3)
    assert len(informer.list()) == 7
    assert len(rec.events) == 7


async def test_watch_delivers_add_update_delete(api, started):
    informer, rec = await started()
    created = await api.create(PODS, "default", pod("a"))
    created["metadata"]["labels"] = {"v": "2"}
    await api.update(PODS, "default", created)
    await api.delete(PODS, "default", "a")
    await until(lambda: len(rec.events) == 3)
    assert rec.events == [("add", "default/a"), ("update", "default/a"), ("delete", "default/a")]
    assert informer.get("default", "a") is None


async def test_watch_end_resumes_from_the_last_resource_version_without_relisting(api, started):
    informer, rec = await started()
    api.close_watches()
    await api.create(PODS, "default", pod("after-close"))
    await until(lambda: informer.get("default", "after-close"))
    assert informer.relists == 1
    assert rec.events == [("add", "default/after-close")]


async def test_410_after_compaction_relists_and_emits_the_missed_delete(api, started):
    for name in ("keep", "gone", "changed"):
        await api.create(PODS, "default", pod(name))
    informer, rec = await started()
    rec.events.clear()
    # Changes the informer never sees as events: the watch drops them, history is compacted.
    await api.delete(PODS, "default", "gone")
    await api.patch(PODS, "default", "changed", {"metadata": {"labels": {"x": "y"}}})
    await api.create(PODS, "default", pod("new"))
    api.close_watches(drop_pending=True)
    api.compact()
    await until(lambda: informer.relists == 2)
    assert sorted(rec.events) == [("add", "default/new"), ("delete", "default/gone"),
                                  ("update", "default/changed")]
    assert sorted(o["metadata"]["name"] for o in informer.list()) == ["changed", "keep", "new"]


async def test_outage_is_retried_until_the_api_is_back(api, started):
    informer, rec = await started()
    api.outage = True
    await until(lambda: api.watcher_count() == 0)
    api.outage = False
    await api.create(PODS, "default", pod("after-outage"))
    await until(lambda: informer.get("default", "after-outage"))
    assert rec.events == [("add", "default/after-outage")]


async def test_handler_registered_after_sync_gets_adds_replayed(api, started):
    await api.create(PODS, "default", pod("a"))
    informer, _ = await started()
    late = Recorder()
    informer.add_handler(**late.handlers())
    assert late.events == [("add", "default/a")]


async def test_failing_handler_does_not_stop_the_others(api, started):
    informer, rec = await started()

    def broken(obj):
        raise RuntimeError("handler bug")

    informer.add_handler(on_add=broken)
    second = Recorder()
    informer.add_handler(**second.handlers())
    await api.create(PODS, "default", pod("a"))
    await until(lambda: second.events)
    assert rec.events == second.events == [("add", "default/a")]


async def test_selectors_and_namespace_narrow_what_is_cached(api, started):
    await api.create(NAMESPACES, None, {"metadata": {"name": "other"}})
    await api.create(PODS, "default", pod("web", labels={"app": "web"}))
    await api.create(PODS, "default", pod("db", labels={"app": "db"}))
    await api.create(PODS, "other", pod("web2", namespace="other", labels={"app": "web"}))
    informer, rec = await started(namespace="default", label_selector="app=web")
    assert [o["metadata"]["name"] for o in informer.list()] == ["web"]
    # A label change that moves an object out of the selector reaches the informer as a delete.
    await api.patch(PODS, "default", "web", {"metadata": {"labels": {"app": "old"}}})
    await until(lambda: ("delete", "default/web") in rec.events)
    assert informer.list() == []


async def test_bookmark_advances_the_resource_version(api, started):
    informer, _ = await started()
    await api.create(NODES, None, {"metadata": {"name": "n1"}})  # another resource moves the revision
    api.send_bookmarks()
    await until(lambda: informer.last_resource_version == api.resource_version)


async def test_index_follows_updates_and_deletes(api, started):
    informer, _ = await started()
    # Indexed by a label: a pod's spec.nodeName cannot change once set (pod validation).
    informer.add_index("node", lambda o: [o["metadata"]["labels"].get("node", "")])
    await api.create(PODS, "default", pod("a", labels={"node": "n1"}))
    await api.create(PODS, "default", pod("b", labels={"node": "n1"}))
    await until(lambda: len(informer.by_index("node", "n1")) == 2)
    await api.patch(PODS, "default", "a", {"metadata": {"labels": {"node": "n2"}}})
    await api.delete(PODS, "default", "b")
    await until(lambda: informer.by_index("node", "n2"))
    await until(lambda: not informer.by_index("node", "n1"))
    assert [o["metadata"]["name"] for o in informer.by_index("node", "n2")] == ["a"]


def test_cache_index_added_late_covers_existing_objects():
    cache = Cache()
    cache.put(pod("a", labels={"app": "web"}))
    cache.put(pod("b", labels={"app": "db"}))
    cache.add_index("app", lambda o: [o["metadata"]["labels"]["app"]])
    assert [o["metadata"]["name"] for o in cache.by_index("app", "web")] == ["a"]
    cache.remove("default/a")
    assert cache.by_index("app", "web") == []


@pytest.mark.parametrize("obj, key", [
    (pod("a", namespace="ns"), "ns/a"),
    ({"metadata": {"name": "node-1"}}, "node-1"),
])
def test_object_key_round_trips_through_split_key(obj, key):
    assert object_key(obj) == key
    md = obj["metadata"]
    assert split_key(key) == (md.get("namespace"), md["name"])


async def test_resync_calls_on_update_for_every_cached_object(api, started):
    await api.create(PODS, "default", pod("a"))
    informer, rec = await started(resync_period=0.005)
    await until(lambda: ("update", "default/a") in rec.events)


async def test_a_throttled_watch_is_retried_from_where_it_was_without_relisting(api, started):
    informer, rec = await started()
    real_watch = api.watch
    refused: list[str] = []

    def watch(*args, **kwargs):
        if not refused:
            refused.append(kwargs["resource_version"])
            # What kube-apiserver answers while it shuts down (--shutdown-send-retry-after).
            raise ApiError(429, "TooManyRequests", "The apiserver is shutting down, please try again later.")
        return real_watch(*args, **kwargs)

    api.watch = watch
    api.close_watches()
    await api.create(PODS, "default", pod("after-429"))
    await until(lambda: informer.get("default", "after-429"))
    assert len(refused) == 1 and refused[0]  # it was resuming from a resourceVersion when refused
    assert informer.relists == 1
    assert rec.events == [("add", "default/after-429")]
