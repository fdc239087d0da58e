"""The event recorder folds repeats into a count, and remembers a bounded number of events."""
from __future__ import annotations

import asyncio
import datetime as dt

from svcnet.client.events import EVENTS, EventQueue, EventRecorder
from svcnet.testing.api import FakeApi

NOW = dt.datetime(2026, 12, 7, 8, 0, 0, tzinfo=dt.UTC)


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}}


async def test_a_repeated_event_is_folded_into_the_first_ones_count():
    async with FakeApi() as api:
        recorder = EventRecorder(api, "test", lambda: NOW)
        for _ in range(3):
            await recorder.emit(pod("a"), "Normal", "Pulled", "done")
        events = api.objects(EVENTS)
        assert len(events) == 1 and events[0]["count"] == 3


async def test_the_least_recently_used_event_is_forgotten_past_the_bound():
    async with FakeApi() as api:
        ticks = iter(range(1_000))  # each new Event's name carries the time: let it move
        recorder = EventRecorder(api, "test", lambda: NOW + dt.timedelta(seconds=next(ticks)), max_folded=2)
        await recorder.emit(pod("a"), "Normal", "R", "m")
        await recorder.emit(pod("b"), "Normal", "R", "m")
        await recorder.emit(pod("a"), "Normal", "R", "m")  # a is now the most recently used
        await recorder.emit(pod("c"), "Normal", "R", "m")  # b goes
        assert len(recorder._seen) == 2
        await recorder.emit(pod("a"), "Normal", "R", "m")  # still folded
        await recorder.emit(pod("b"), "Normal", "R", "m")  # forgotten: a new Event
        counts = sorted((e["involvedObject"]["name"], e["count"]) for e in api.objects(EVENTS))
        assert counts == [("a", 3), ("b", 1), ("b", 1), ("c", 1)]


async def test_queued_events_are_written_one_at_a_time_in_order_off_the_callers_path():
    in_flight, peak, written = 0, 0, []
    release = asyncio.Event()

    async def write(obj, event_type, reason, message):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        written.append(message)
        in_flight -= 1

    queue = EventQueue(write, lambda: 0.0)
    for i in range(20):  # returns at once: nothing is written before the caller lets the loop run
        queue.emit({"metadata": {"uid": f"u{i}", "name": f"p{i}"}}, "Normal", "Started", f"m{i}")
    assert written == []
    release.set()
    await queue.flush()
    assert written == [f"m{i}" for i in range(20)]
    assert peak == 1


async def test_queued_events_of_one_object_are_thinned_by_the_spam_filter():
    written = []

    async def write(obj, event_type, reason, message):
        written.append(message)

    queue = EventQueue(write, lambda: 0.0)
    for i in range(30):
        queue.emit({"metadata": {"uid": "same"}}, "Warning", "BackOff", f"m{i}")
    await queue.flush()
    assert len(written) == 25  # client-go's burst per object
