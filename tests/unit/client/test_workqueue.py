"""Work queue semantics, with a fake clock wherever time matters."""
from __future__ import annotations

import asyncio

import pytest

from svcnet.client.workqueue import ExponentialBackoff, FakeClock, ShutDown, WorkQueue, run_workers


def queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    return WorkQueue(clock=clock or FakeClock())


async def test_pending_key_is_deduplicated():
    q = queue()
    for key in ("a", "b", "a", "a"):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_key_added_while_processing_is_requeued_only_after_done():
    q = queue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_a_key_is_never_held_by_two_workers():
    q = queue()
    held: set[str] = set()
    overlaps: list[str] = []
    finished = asyncio.Event()
    count = 0

    async def reconcile(key: str) -> None:
        nonlocal count
        if key in held:
            overlaps.append(key)
        held.add(key)
        await asyncio.sleep(0)
        if count < 20:
            q.add(key)  # re-added mid-flight: must wait for this worker
        count += 1
        held.discard(key)
        if count >= 20:
            finished.set()

    workers = asyncio.create_task(run_workers(q, 4, reconcile))
    for key in ("a", "b", "a", "b", "c"):
        q.add(key)
    await asyncio.wait_for(finished.wait(), 5)
    q.shutdown()
    await asyncio.wait_for(workers, 5)
    assert overlaps == []


async def test_get_waits_for_an_add():
    q = queue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_shutdown_drains_then_raises_and_refuses_new_keys():
    q = queue()
    q.add("a")
    q.shutdown()
    q.add("b")
    assert await q.get() == "a"
    with pytest.raises(ShutDown):
        await q.get()


async def test_shutdown_wakes_a_waiting_getter():
    q = queue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(getter, 1)


async def test_add_after_adds_once_the_delay_passes():
    clock = FakeClock()
    q = queue(clock)
    q.add_after("a", 10)
    clock.advance(9.9)
    assert len(q) == 0
    clock.advance(0.1)
    assert len(q) == 1


async def test_add_after_keeps_the_earliest_time_for_a_key():
    clock = FakeClock()
    q = queue(clock)
    q.add_after("a", 10)
    q.add_after("a", 2)
    q.add_after("a", 30)
    assert q.delayed() == 1
    clock.advance(2)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    clock.advance(100)
    assert len(q) == 0  # the later times were covered by the first add


async def test_add_after_orders_keys_by_due_time():
    clock = FakeClock()
    q = queue(clock)
    q.add_after("late", 5)
    q.add_after("early", 1)
    clock.advance(10)
    assert [await q.get(), await q.get()] == ["early", "late"]


async def test_add_after_zero_adds_at_once():
    q = queue()
    q.add_after("a", 0)
    assert len(q) == 1


@pytest.mark.parametrize("failures, delay", [(0, 0.005), (1, 0.01), (2, 0.02), (10, 5.12), (30, 1000.0)])
def test_exponential_backoff_doubles_from_5ms_up_to_1000s(failures, delay):
    limiter: ExponentialBackoff[str] = ExponentialBackoff()
    for _ in range(failures):
        limiter.when("k")
    assert limiter.when("k") == pytest.approx(delay)


async def test_add_rate_limited_backs_off_per_key_until_forget():
    clock = FakeClock()
    q = queue(clock)
    q.add_rate_limited("a")
    clock.advance(0.005)
    assert await q.get() == "a"
    q.done("a")
    q.add_rate_limited("a")
    clock.advance(0.005)
    assert len(q) == 0  # second failure waits 10 ms
    clock.advance(0.005)
    assert len(q) == 1
    assert q.num_requeues("a") == 2
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_shutdown_cancels_delayed_keys():
    clock = FakeClock()
    q = queue(clock)
    q.add_after("a", 1)
    q.shutdown()
    clock.advance(5)
    assert len(q) == 0
    assert clock.pending_timers() == 0


async def test_run_workers_retries_a_failing_key_with_backoff_and_forgets_on_success():
    clock = FakeClock()
    q = queue(clock)
    attempts: list[str] = []
    succeeded = asyncio.Event()

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("transient")
        succeeded.set()

    workers = asyncio.create_task(run_workers(q, 1, reconcile))
    q.add("a")
    while len(attempts) < 1:
        await asyncio.sleep(0)
    assert q.num_requeues("a") == 1
    for _ in range(2):
        while q.delayed() == 0:
            await asyncio.sleep(0)
        clock.advance(1)
    await asyncio.wait_for(succeeded.wait(), 5)
    while "a" in q.processing():
        await asyncio.sleep(0)
    assert q.num_requeues("a") == 0
    q.shutdown()
    await asyncio.wait_for(workers, 5)
    assert attempts == ["a", "a", "a"]


async def test_run_workers_requeues_after_the_delay_reconcile_returns():
    clock = FakeClock()
    q = queue(clock)
    calls: list[str] = []

    async def reconcile(key: str) -> float | None:
        calls.append(key)
        return 30.0 if len(calls) == 1 else None

    workers = asyncio.create_task(run_workers(q, 2, reconcile))
    q.add("a")
    while q.delayed() == 0:
        await asyncio.sleep(0)
    clock.advance(30)
    while len(calls) < 2:
        await asyncio.sleep(0)
    q.shutdown()
    await asyncio.wait_for(workers, 5)
    assert calls == ["a", "a"]
