"""Events about objects, as client-go's EventRecorder (tools/record) writes them.

The controllers and the node agent both record Events (kubectl describe shows
them); a repeat of the same event is folded into the first one's count.
"""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from svcnet.api import meta
from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of, namespace_of, uid_of
from svcnet.api.resources import lookup
from svcnet.client.informer import object_key
from svcnet.core.replicaset import EventBudget

log = logging.getLogger("svcnet.client.events")

EVENTS = lookup("", "v1", "events")
assert EVENTS is not None

# Events remembered for folding repeats, least recently used dropped first: client-go's
# EventCorrelator keeps an LRU of maxLruCacheEntries (tools/record/events_cache.go).
MAX_FOLDED_EVENTS = 4096
# Events waiting to be written; past this a new one is dropped (client-go's broadcaster,
# tools/record/event.go maxQueuedEvents).
MAX_QUEUED_EVENTS = 1000


class EventRecorder:
    """Writes core/v1 Events as client-go's recorder does, folding repeats into count.

    `api` needs `create` and `patch` (svcnet.client.rest.ApiClient, or a fake).
    """

    def __init__(self, api: Any, component: str, clock: Callable[[], dt.datetime],
                 max_folded: int = MAX_FOLDED_EVENTS) -> None:
        self.api = api
        self.component = component
        self.clock = clock
        self.max_folded = max_folded
        self._seen: dict[tuple[str, str, str, str], tuple[str, int]] = {}  # oldest use first

    def _remember(self, fingerprint: tuple[str, str, str, str], name: str, count: int) -> None:
        self._seen.pop(fingerprint, None)
        if len(self._seen) >= self.max_folded:
            del self._seen[next(iter(self._seen))]  # the least recently used
        self._seen[fingerprint] = (name, count)

    async def emit(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        md = metadata_of(obj)
        namespace = namespace_of(obj) or "default"
        now = meta.rfc3339(self.clock())
        fingerprint = (uid_of(obj), event_type, reason, message)
        try:
            if fingerprint in self._seen:
                name, count = self._seen[fingerprint]
                count += 1
                await self.api.patch(EVENTS, namespace, name,
                                     {"count": count, "lastTimestamp": now}, patch_type="merge")
                self._remember(fingerprint, name, count)
                return
            name = f"{md.get('name', 'unknown')}.{int(self.clock().timestamp() * 1e9):x}"
            await self.api.create(EVENTS, namespace, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                                   "name": md.get("name"), "namespace": md.get("namespace"),
                                   "uid": md.get("uid"), "resourceVersion": md.get("resourceVersion")},
                "reason": reason, "message": message, "type": event_type, "count": 1,
                "firstTimestamp": now, "lastTimestamp": now,
                "source": {"component": self.component},
                "reportingComponent": self.component, "reportingInstance": "",
            })
            self._remember(fingerprint, name, 1)
        except ApiError as exc:  # events are best effort, as upstream's recorder
            log.debug("event %s/%s for %s not recorded: %s", reason, message, md.get("name"), exc)
            self._seen.pop(fingerprint, None)


Event = tuple[dict[str, Any], str, str, str]  # the object, type, reason, message


class EventQueue:
    """Event writes off the sync path, one at a time, thinned by upstream's per-object spam filter.

    As client-go's broadcaster (tools/record/event.go StartRecordingToSink): emit() only
    queues; one writer sends the queued events in order, one request at a time, so a burst
    of pods does not put an Event write beside each create, binding, token or status write
    (a node agent starting 100 pods wrote ~300 Events at once, and its TokenRequests waited
    behind them for a free connection: issue 13); a full queue drops the new event.
    """

    def __init__(self, write: Callable[[dict[str, Any], str, str, str], Awaitable[None]],
                 monotonic: Callable[[], float], budget: EventBudget | None = None) -> None:
        self._write = write
        self._monotonic = monotonic
        self._budget = budget or EventBudget()
        self._queue: collections.deque[Event] = collections.deque()
        self._writer: asyncio.Task[None] | None = None
        self.dropped = 0

    def emit(self, obj: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        uid = str(metadata_of(obj).get("uid") or object_key(obj))
        if not self._budget.allow(uid, self._monotonic()):
            return
        if len(self._queue) >= MAX_QUEUED_EVENTS:
            self.dropped += 1
            return
        self._queue.append((obj, event_type, reason, message))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_queued())

    async def _write_queued(self) -> None:
        while self._queue:
            event = self._queue.popleft()
            try:
                await self._write(*event)
            except Exception:  # best effort, as upstream's recorder: a lost event stops nothing
                log.debug("event %s for %s not written", event[2], object_key(event[0]), exc_info=True)

    async def flush(self) -> None:
        """Wait for the events queued so far to be written (tests use this)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)

    def cancel(self) -> None:
        """Stop writing; what is still queued is dropped."""
        self._queue.clear()
        if self._writer is not None:
            self._writer.cancel()
