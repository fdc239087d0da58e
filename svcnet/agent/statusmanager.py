"""Pod status writes, one in flight per pod, the latest wanted status replacing a pending one.

kubelet's status manager (pkg/kubelet/status/status_manager.go): `SetPodStatus` →
`updateStatusInternal` keeps only the newest status per pod uid in `podStatuses` and
nudges `podStatusChannel`; `syncPod` writes what is cached then, so a burst of changes
while the API is slow to answer becomes one write of the last one. Here the sync that
computed a status does not wait for the API either: `set` records it and returns, and
one writer task per pod sends it (and whatever replaced it meanwhile) after the write
in flight is answered.

Kept from the blocking writer it replaces: a write is skipped when it would change
nothing; each write carries the pod's uid and the resourceVersion we last saw (a
409 means someone else wrote the pod: the key is synced again from a fresh read);
a 404 means the pod is gone and the write is dropped.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from svcnet.agent import podstatus
from svcnet.agent.podstate import newer
from svcnet.api.errors import ApiError
from svcnet.api.objects import object_key, status_of, uid_of
from svcnet.api.resources import Resource

log = logging.getLogger("svcnet.agent.status")

Obj = dict[str, Any]
CONFLICT_RETRY_SECONDS = 0.05  # a 409: sync the key again from the informer's copy, soon
ERROR_RETRY_SECONDS = 1.0  # the API did not answer: sync the key again later and recompute


@dataclass
class _PodWrites:
    """One pod's writes: what is being sent, and the newest status wanted after it."""

    pending: tuple[Obj, Obj] | None = None  # (pod as the sync saw it, wanted status)
    sending: Obj | None = None  # the status of the write in flight
    task: asyncio.Task[None] | None = None


class StatusManager:
    """`set(pod, wanted)` never waits for the API; writes of one pod never overlap.

    `on_written(uid, pod)` hands back the pod as each write returned it (the agent reads
    the newer of that and its informer's copy); `requeue(key, delay)` asks for the pod
    to be synced again after a conflict or an error.
    """

    def __init__(self, api: Any, resource: Resource, on_written: Callable[[str, Obj | None], None],
                 requeue: Callable[[str, float], None]) -> None:
        self.api = api
        self.resource = resource
        self.on_written = on_written
        self.requeue = requeue
        self.writes = 0  # writes sent (for tests and the bench)
        self._pods: dict[str, _PodWrites] = {}

    def set(self, pod: Obj, wanted: Obj) -> None:
        """Write `wanted` as the pod's status unless it is what the pod shows or what is being sent."""
        uid = uid_of(pod)
        entry = self._pods.get(uid)
        if entry is None:
            if not podstatus.status_differs(status_of(pod), wanted):
                return
            entry = self._pods[uid] = _PodWrites()
        elif entry.pending is None and entry.sending is not None \
                and not podstatus.status_differs(entry.sending, wanted):
            return  # the write in flight says this already
        entry.pending = (pod, wanted)  # a pending one that was not sent yet is replaced: only the latest counts
        if entry.task is None:
            entry.task = asyncio.create_task(self._write_loop(uid, entry), name=f"status-{object_key(pod)}")

    def wanted(self, uid: str) -> Obj | None:
        """The newest status set for the pod and not yet answered by the API (None: nothing in flight).

        The next status is computed from this rather than from a copy that predates it, so its
        transition times carry on from what is being written.
        """
        entry = self._pods.get(uid)
        if entry is None:
            return None
        return entry.pending[1] if entry.pending is not None else entry.sending

    def busy(self) -> bool:
        """Whether some write is in flight or pending."""
        return bool(self._pods)

    def forget(self, uid: str) -> None:
        """The pod is gone (or being finalized): drop what was not sent yet."""
        entry = self._pods.pop(uid, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()

    async def idle(self) -> None:
        """Wait until no write is in flight or pending (tests; a clean stop)."""
        while self._pods:
            tasks = [e.task for e in self._pods.values() if e.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        for uid in list(self._pods):
            self.forget(uid)

    async def _write_loop(self, uid: str, entry: _PodWrites) -> None:
        written: Obj | None = None
        try:
            while entry.pending is not None:
                pod, wanted = entry.pending
                entry.pending = None
                base = newer(written, pod)  # the newest copy we know: its resourceVersion is the precondition
                if written is not None and not podstatus.status_differs(status_of(written), wanted):
                    continue
                entry.sending = wanted
                key = object_key(pod)
                try:
                    self.writes += 1
                    written = await self.api.update_status(self.resource, base["metadata"].get("namespace"),
                                                           {**base, "status": wanted})
                except ApiError as exc:
                    if exc.code == 404:  # the pod is gone: nothing to report to
                        return
                    if exc.code == 409:  # someone wrote the pod since we read it: read it again and look again
                        self.on_written(uid, None)
                        self.requeue(key, CONFLICT_RETRY_SECONDS)
                        return
                    log.warning("status of %s: %s; retrying", key, exc)
                    self.requeue(key, ERROR_RETRY_SECONDS)
                    return
                except Exception as exc:  # the API is unreachable: the next sync recomputes and writes again
                    log.warning("status of %s: %s; retrying", key, exc)
                    self.requeue(key, ERROR_RETRY_SECONDS)
                    return
                self.on_written(uid, written)
        finally:
            if self._pods.get(uid) is entry:
                del self._pods[uid]


__all__ = ["StatusManager"]
