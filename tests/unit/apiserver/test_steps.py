"""Registry writes as steps: the same write inline or from the event loop with its store calls
on threads, and what stays true when writes from many requests run at once (distinct ClusterIPs,
revisions that only go up, per-key event order, group commit batching API writes)."""
from __future__ import annotations

import asyncio
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.api.resources import lookup
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import WriteOptions
from svcnet.apiserver.service_alloc import ServiceAllocator
from svcnet.apiserver.steps import Read, StoreCalls, run_inline, run_off_loop
from svcnet.apiserver.watch import _enqueue
from svcnet.storage.base import Event
from svcnet.storage.sqlite import SqliteStore
from tests.threads import run_at_once
from tests.waiting import until

SERVICES = lookup("", "v1", "services")
PODS = lookup("", "v1", "pods")


class Boom(Exception):
    pass


def steps_log(log: list[str]):
    """A write of two store calls; the second fails and the write answers for it."""
    first = yield lambda: "one"
    log.append(first)
    try:
        yield _raise
    except Boom:
        log.append("caught")
    return "done"


def _raise() -> None:
    raise Boom()


def test_inline_sends_results_and_throws_errors_into_the_steps() -> None:
    log: list[str] = []
    assert run_inline(steps_log(log)) == "done"
    assert log == ["one", "caught"]


def test_an_error_the_steps_do_not_catch_reaches_the_caller() -> None:
    def steps():
        yield _raise

    with pytest.raises(Boom):
        run_inline(steps())


class FakeClock:
    """Each store call 'takes' `step` seconds."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step / 2
        return self.now


def where_steps(threads: list[int]):
    for _ in range(3):
        yield lambda: threads.append(threading.get_ident())
        yield Read(lambda: threads.append(threading.get_ident()))
    return len(threads)


async def test_quick_writes_stay_on_the_loop_slow_ones_go_to_threads_reads_stay_and_probes_bring_writes_back() -> None:
    loop_thread = threading.get_ident()
    clock = FakeClock(step=0.0001)  # 0.1 ms a write: under the 1 ms threshold
    calls = StoreCalls(offload_above=0.001, clock=clock, probe_every=4)
    threads: list[int] = []
    assert await run_off_loop(where_steps(threads), calls) == 6
    assert set(threads) == {loop_thread}

    clock.step = 0.05  # the disk turns slow: the average passes the threshold, calls move
    threads.clear()
    await run_off_loop(where_steps(threads), calls)
    assert calls.offloading()
    writes, reads = threads[0::2], threads[1::2]
    assert writes[0] == loop_thread and writes[-1] != loop_thread
    assert set(reads) == {loop_thread}  # reads never wait for a commit: they stay on the loop

    clock.step = 0.0  # quick again: writes on threads are not timed; the probes bring calls back
    offloaded_latency = calls.latency
    for _ in range(30):
        threads.clear()
        await run_off_loop(where_steps(threads), calls)
        if set(threads) == {loop_thread}:
            break
    assert calls.latency < offloaded_latency
    assert not calls.offloading()
    assert set(threads) == {loop_thread}
    calls.close()


def test_one_write_in_probe_every_is_made_on_the_loop_while_offloading() -> None:
    calls = StoreCalls(offload_above=0.001, probe_every=4)
    calls.latency = 0.01
    assert [calls.offloading() for _ in range(8)] == [True, True, True, False] * 2


async def test_a_write_whose_request_is_cancelled_still_runs_to_its_end() -> None:
    calls = StoreCalls(offload_above=-1)
    release = threading.Event()
    log: list[str] = []

    def steps():
        with_cleanup = "admitted"
        log.append(with_cleanup)
        yield release.wait
        log.append("committed")  # e.g. the ClusterIP taken for the stored Service
        return "stored"

    request = asyncio.ensure_future(run_off_loop(steps(), calls))
    await until(lambda: log == ["admitted"], what="the write to start")
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    release.set()
    await until(lambda: log == ["admitted", "committed"], what="the write to finish after the cancel")
    calls.close()


# ---------------------------------------------------------------- many writers at once

@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[tuple[Any, ServiceAllocator, SqliteStore]]:
    store = SqliteStore(str(tmp_path / "state.db"))
    alloc = ServiceAllocator(["10.96.0.0/26"], "30000-30100")  # 62 addresses: picks collide often
    alloc.repair(store)
    reg = build_registry(store, [alloc])
    reg.ensure_system_namespaces()
    try:
        yield reg, alloc, store
    finally:
        store.close()


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
            "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}}


@pytest.fixture
def fine_switching() -> Iterator[None]:
    """Threads switch every microsecond, so check-then-act races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_concurrent_service_creates_on_threads_never_share_a_cluster_ip_or_node_port(
        sqlite_registry, fine_switching) -> None:
    reg, alloc, store = sqlite_registry
    count = 60
    created: dict[int, dict[str, Any]] = {}

    def create(i: int) -> None:
        created[i] = reg.create(SERVICES, "default", service(i), WriteOptions())

    run_at_once(create, count)
    ips = [svc["spec"]["clusterIP"] for svc in created.values()]
    ports = [svc["spec"]["ports"][0]["nodePort"] for svc in created.values()]
    assert len(set(ips)) == count and len(set(ports)) == count
    stored = {r.value["spec"]["clusterIP"] for r in store.list("/registry/core/services/default/").records}
    assert set(ips) <= stored
    assert set(ips) <= alloc.ranges["IPv4"].allocated()


class FirstPick(random.Random):
    """Every pick starts at the first address of the band."""

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 0


class MeetingSet(set):
    """A used-address set whose membership test waits for a second caller (at most 1 s): two
    allocations that run side by side both ask before either adds, so only a lock keeps them apart."""

    def __init__(self) -> None:
        super().__init__()
        self.meeting = threading.Barrier(2, timeout=1.0)

    def __contains__(self, value: object) -> bool:
        answer = super().__contains__(value)
        try:
            self.meeting.wait()
        except threading.BrokenBarrierError:
            pass  # the other caller is held off (by the lock): go on alone
        return answer


def test_two_allocations_side_by_side_never_take_the_same_address() -> None:
    alloc = ServiceAllocator(["10.96.0.0/24"], "30000-30100")
    table = alloc.ranges["IPv4"]._range
    table.rng = FirstPick()
    table.used = MeetingSet()
    got: list[str] = []

    def admit(i: int) -> None:
        obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "default"},
               "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
        commit, _ = alloc.admit("CREATE", SERVICES, obj, None)
        commit()
        got.append(obj["spec"]["clusterIP"])

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] != got[1]


async def test_writes_through_http_on_threads_are_batched_and_keep_revisions_and_event_order(
        sqlite_registry) -> None:
    reg, _, store = sqlite_registry
    calls = StoreCalls(offload_above=-1)  # every store call on a thread, as with a slow disk
    app = ApiServer(reg, ServerSettings(token=None), store_calls=calls).make_app(authenticate=False)
    events: list[tuple[str, str, int]] = []
    watch = store.watch("/registry/core/pods/", store.current_revision(),
                        lambda e: events.append((e.type, e.key, e.revision)))
    _, writes_before = store.group_commit_stats()
    count = 96
    try:
        async with TestClient(TestServer(app)) as client:
            async def create_and_label(i: int) -> list[int]:
                body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
                r = await client.post("/api/v1/namespaces/default/pods", json=body)
                assert r.status == 201, await r.text()
                first = int((await r.json())["metadata"]["resourceVersion"])
                r = await client.patch(f"/api/v1/namespaces/default/pods/p{i}",
                                       json={"metadata": {"labels": {"n": str(i)}}},
                                       headers={"Content-Type": "application/merge-patch+json"})
                assert r.status == 200, await r.text()
                return [first, int((await r.json())["metadata"]["resourceVersion"])]

            acked = await asyncio.gather(*(create_and_label(i) for i in range(count)))
    finally:
        watch.cancel()
        calls.close()
    revisions = [rv for pair in acked for rv in pair]
    assert len(set(revisions)) == 2 * count  # no two writes share a revision
    assert all(first < second for first, second in acked)
    await until(lambda: len(events) >= 2 * count, what="every event delivered")
    assert [rv for _, _, rv in events] == sorted(rv for _, _, rv in events)  # strictly in order
    for i in range(count):
        mine = [t for t, key, _ in events if key.endswith(f"/p{i}")]
        assert mine == ["ADDED", "MODIFIED"]
    _, writes = store.group_commit_stats()
    assert writes - writes_before == 2 * count


class MeetingStore:
    """The store, but each create waits until `together` creates are in it at once."""

    def __init__(self, store: SqliteStore, together: int) -> None:
        self._store = store
        self.meeting = threading.Barrier(together, timeout=20)

    def create(self, key: str, value: dict[str, Any]):
        self.meeting.wait()  # raises BrokenBarrierError unless `together` creates arrive together
        return self._store.create(key, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_creates_from_concurrent_requests_reach_the_store_together(sqlite_registry) -> None:
    reg, _, store = sqlite_registry
    reg.store = MeetingStore(store, together=4)  # what group commit needs to put them in one transaction
    calls = StoreCalls(offload_above=-1)
    app = ApiServer(reg, ServerSettings(token=None), store_calls=calls).make_app(authenticate=False)
    try:
        async with TestClient(TestServer(app)) as client:
            async def create(i: int) -> int:
                body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"m{i}"},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
                r = await client.post("/api/v1/namespaces/default/pods", json=body)
                return r.status

            assert await asyncio.gather(*(create(i) for i in range(8))) == [201] * 8
    finally:
        calls.close()


async def test_a_watch_gets_events_in_revision_order_when_threads_and_the_loop_both_commit() -> None:
    queue: asyncio.Queue = asyncio.Queue()
    on_event = _enqueue(queue)
    # revision 10 is committed (and published) on a write thread, just before the loop, still
    # busy with another request, commits revision 11 itself
    thread = threading.Thread(target=on_event, args=(Event("ADDED", "/k/a", {"n": 10}, 10),))
    thread.start()
    thread.join()
    on_event(Event("ADDED", "/k/b", {"n": 11}, 11))
    got = [await asyncio.wait_for(queue.get(), 5) for _ in range(2)]
    assert [e.revision for e in got] == [10, 11]
