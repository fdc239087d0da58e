"""Events about objects, as client-go's EventRecorder (tools/record) writes them.

The controllers and the node agent both record Events (kubectl describe shows
them); a repeat of the same event is folded into the first one's count.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from svcnet.api import meta
from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of, namespace_of, uid_of
from svcnet.api.resources import lookup

log = logging.getLogger("svcnet.client.events")

EVENTS = lookup("", "v1", "events")
assert EVENTS is not None

# Events remembered for folding repeats, least recently used dropped first: client-go's
# EventCorrelator keeps an LRU of maxLruCacheEntries (tools/record/events_cache.go).
MAX_FOLDED_EVENTS = 4096


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
