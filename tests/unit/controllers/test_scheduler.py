"""The scheduler over FakeApi (with pods/binding) and real informers."""
from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from svcnet.api import errors
from svcnet.controllers.base import EVENTS, NODES, PODS, InformerFactory
from svcnet.controllers.scheduler import Scheduler
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import caches_caught_up
from tests.waiting import until


class BindingFakeApi(FakeApi):
    """FakeApi that writes down each pods/binding the scheduler posts (the registry binds)."""

    def __init__(self) -> None:
        super().__init__()
        self.bindings: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        result = await super().request(method, path, **kwargs)
        self.bindings.append((path.strip("/").split("/")[5], kwargs["body"]["target"]["name"]))
        return result


def node(name: str, labels: dict | None = None, ready: bool = True) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "allocatable": {"pods": "110", "cpu": "2", "memory": "8Gi"}}}


def pod(name: str, *, selector: dict | None = None, node_name: str = "",
        scheduler: str = "default-scheduler") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "serve_hostname"}],
                            "schedulerName": scheduler}
    if selector:
        spec["nodeSelector"] = selector
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs",
                                              "uid": "rs-uid", "controller": True}]},
            "spec": spec, "status": {"phase": "Pending"}}


class Harness:
    def __init__(self, api: BindingFakeApi) -> None:
        self.api = api
        self.informers = InformerFactory(api)
        self.scheduler = Scheduler(api, self.informers)

    async def start(self) -> None:
        self.scheduler.setup()
        self.informers.start()
        await self.informers.wait_synced()

    async def settle(self) -> None:
        """Let the informers' caches catch up with what the fake API holds."""
        await caches_caught_up(self.api, list((self.scheduler.pods, self.scheduler.nodes)))

    async def drain(self, *, settle_between: bool = True) -> None:
        """Run the queued reconciles with no workers; settle_between=False keeps the cache behind."""
        await self.settle()
        queue = self.scheduler.queue
        for _ in range(100):
            if settle_between:
                await self.settle()
            if not len(queue):
                await self.scheduler.flush()  # the bindings and events under way
                await self.settle()
                if not len(queue):
                    return
                continue
            key = await queue.get()
            try:
                await self.scheduler.reconcile(key)
            finally:
                queue.done(key)
        raise AssertionError("queue did not drain")

    async def node_of(self, name: str) -> str | None:
        return (await self.api.get(PODS, "default", name))["spec"].get("nodeName")

    def events(self, reason: str) -> list[dict]:
        return [e for e in self.api.objects(EVENTS) if e["reason"] == reason]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with BindingFakeApi() as api:
        h = Harness(api)
        await h.start()
        yield h
        # Stopping with watch events still queued can hang on Python 3.11: FakeApi.watch's
        # asyncio.wait_for(queue.get()) swallows the cancellation when an item is ready.
        await h.scheduler.flush()
        await h.settle()
        h.scheduler.shutdown()
        await h.informers.stop()


async def test_pods_of_one_group_spread_over_two_nodes(harness: Harness) -> None:
    for name in ("n1", "n2"):
        await harness.api.create(NODES, None, node(name))
    for i in range(4):
        await harness.api.create(PODS, "default", pod(f"web-{i}"))
    await harness.drain()
    placed = [await harness.node_of(f"web-{i}") for i in range(4)]
    assert sorted(placed) == ["n1", "n1", "n2", "n2"]


async def test_decisions_count_pods_bound_a_moment_ago_that_the_cache_has_not_seen(harness: Harness) -> None:
    for name in ("n1", "n2"):
        await harness.api.create(NODES, None, node(name))
    for i in range(4):
        await harness.api.create(PODS, "default", pod(f"web-{i}"))
    await harness.drain(settle_between=False)
    assert sorted(n for _, n in harness.api.bindings) == ["n1", "n1", "n2", "n2"]


async def test_binding_records_a_scheduled_event(harness: Harness) -> None:
    await harness.api.create(NODES, None, node("n1"))
    await harness.api.create(PODS, "default", pod("web-0"))
    await harness.drain()
    (event,) = harness.events("Scheduled")
    assert (event["type"], event["message"]) == ("Normal", "Successfully assigned default/web-0 to n1")
    assert event["source"]["component"] == "default-scheduler"


async def test_unschedulable_pod_gets_the_condition_and_event_then_fits_a_new_node(harness: Harness) -> None:
    await harness.api.create(NODES, None, node("n1"))
    await harness.api.create(NODES, None, node("n2", ready=False))
    await harness.api.create(PODS, "default", pod("picky", selector={"disk": "ssd"}))
    await harness.drain()
    message = ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
               "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: 0/2 nodes "
               "are available: 2 Preemption is not helpful for scheduling.")
    stored = await harness.api.get(PODS, "default", "picky")
    assert stored["spec"].get("nodeName") is None
    (condition,) = [c for c in stored["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert (condition["status"], condition["reason"], condition["message"]) == ("False", "Unschedulable", message)
    assert stored["status"]["phase"] == "Pending"
    (event,) = harness.events("FailedScheduling")
    assert (event["type"], event["message"]) == ("Warning", message)

    await harness.api.create(NODES, None, node("n3", labels={"disk": "ssd"}))
    await harness.drain()
    assert await harness.node_of("picky") == "n3"


async def test_a_node_turning_ready_retries_waiting_pods(harness: Harness) -> None:
    await harness.api.create(NODES, None, node("n1", ready=False))
    await harness.api.create(PODS, "default", pod("web-0"))
    await harness.drain()
    assert await harness.node_of("web-0") is None
    current = await harness.api.get(NODES, None, "n1")
    current["status"]["conditions"][0]["status"] = "True"
    await harness.api.update_status(NODES, None, current)
    await harness.drain()
    assert await harness.node_of("web-0") == "n1"


async def test_repeated_failure_does_not_rewrite_an_unchanged_condition(harness: Harness) -> None:
    await harness.api.create(NODES, None, node("n1"))
    await harness.api.create(PODS, "default", pod("picky", selector={"disk": "ssd"}))
    await harness.drain()
    writes = len(harness.api.actions)
    harness.scheduler.queue.add("default/picky")
    await harness.drain()
    pod_writes = [a for a in harness.api.actions[writes:] if a.plural == "pods"]
    assert pod_writes == []
    (event,) = harness.events("FailedScheduling")
    assert event["count"] == 2


async def test_pods_already_bound_or_for_another_scheduler_are_left_alone(harness: Harness) -> None:
    await harness.api.create(NODES, None, node("n1"))
    await harness.api.create(NODES, None, node("n2"))
    await harness.api.create(PODS, "default", pod("pinned", node_name="n2"))
    await harness.api.create(PODS, "default", pod("foreign", scheduler="my-scheduler"))
    await harness.drain()
    assert harness.api.bindings == []
    assert await harness.node_of("pinned") == "n2"
    assert await harness.node_of("foreign") is None


class GatedBindingApi(BindingFakeApi):
    """Bindings wait at a gate the test opens; the most bindings ever in flight at once is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0
        self.gate = asyncio.Event()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.gate.wait()
            return await super().request(method, path, **kwargs)
        finally:
            self.in_flight -= 1


async def test_bindings_go_out_together_up_to_the_bound_and_each_pod_is_bound_once() -> None:
    async with GatedBindingApi() as api:
        h = Harness(api)
        h.scheduler.workers = 1
        await h.start()
        h.scheduler.max_binds_in_flight = 4
        for name in ("n1", "n2"):
            await api.create(NODES, None, node(name))
        for i in range(20):
            await api.create(PODS, "default", pod(f"web-{i:02d}"))
        worker = asyncio.create_task(h.scheduler.run())
        try:
            # Four bindings wait at the gate at once: the scheduling cycle did not wait for them.
            await until(lambda: api.in_flight == 4)
            assert api.bindings == []
            api.gate.set()
            await until(lambda: len(api.bindings) == 20)
            await h.scheduler.flush()
            await h.settle()
            await until(lambda: len(h.scheduler.queue) == 0 and not h.scheduler.queue.processing())
        finally:
            h.scheduler.shutdown()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await h.informers.stop()
        assert api.peak == 4
        bound = Counter(name for name, _ in api.bindings)
        assert bound == Counter({f"web-{i:02d}": 1 for i in range(20)})
        assert Counter(n for _, n in api.bindings) == Counter({"n1": 10, "n2": 10})
        assert all(p["spec"].get("nodeName") for p in api.objects(PODS))
        assert len(h.events("Scheduled")) == 20


async def test_a_failed_binding_is_taken_back_and_retried_after_backoff(harness: Harness) -> None:
    await harness.api.create(NODES, None, node("n1"))
    await harness.api.create(PODS, "default", pod("web-0"))
    harness.api.fail("create", PODS, errors.internal_error("etcd is away"), times=1)  # the binding
    await harness.drain()
    assert await harness.node_of("web-0") is None
    assert len(harness.scheduler.occupancy) == 0  # the assumption was forgotten
    assert harness.scheduler.queue.delayed() == 1  # back after the pod backoff
    (event,) = harness.events("FailedScheduling")
    assert event["message"].startswith("Binding rejected: ")
    harness.scheduler.queue.add("default/web-0")  # the backoff's due time, without waiting for it
    await harness.drain()
    assert await harness.node_of("web-0") == "n1"
    assert harness.scheduler.occupancy.node_of("default/web-0") == "n1"
