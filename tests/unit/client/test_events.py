"""The event recorder folds repeats into a count, and remembers a bounded number of events."""
from __future__ import annotations

import datetime as dt

from svcnet.client.events import EVENTS, EventRecorder
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
