"""The scheduler (kube-scheduler, small): binds pending pods to nodes.

It watches pods without spec.nodeName whose schedulerName is
default-scheduler, and the Nodes. For each pod, one at a time (one worker, as
upstream's scheduling cycle), svcnet.core.scheduling.schedule picks a node
from an Occupancy kept pod by pod from the informer (upstream's scheduler
cache), so a decision costs O(nodes), not a re-list of every pod. The choice
is "assumed" at once, so the next pod already counts it, and the binding
(POST pods/{name}/binding, as upstream's DefaultBinder) goes out in a task of
its own while the next pod is scheduled, as upstream's ScheduleOne runs the
binding cycle in a goroutine (pkg/scheduler/schedule_one.go). At most
MAX_BINDS_IN_FLIGHT bindings are outstanding; the scheduling cycle waits for a
slot. A failed binding forgets the assumption and retries the pod after
upstream's pod backoff (1 s doubling to 10 s). The API server's binding sets
spec.nodeName and PodScheduled=True; Scheduled events are written off the
binding path.

When no node fits, the pod stays Pending: the scheduler writes
PodScheduled=False reason Unschedulable with upstream's FitError message and a
FailedScheduling event, and tries again when a node is added or changes in a
way that matters, when a bound pod goes away, and every few minutes anyway
(upstream's unschedulable queue flush).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from svcnet.api import meta
from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of, name_of, namespace_of, spec_of, status_of
from svcnet.client.informer import object_key, split_key
from svcnet.client.rest import resource_path
from svcnet.client.workqueue import ExponentialBackoff
from svcnet.controllers.base import NODES, PODS, Controller, Obj
from svcnet.controllers.replicaset import BackgroundEvents
from svcnet.core import scheduling

log = logging.getLogger("svcnet.controllers.scheduler")

# Upstream moves pods that have waited this long in the unschedulable queue back for another try.
UNSCHEDULABLE_RETRY_SECONDS = 300.0
# Bindings outstanding at once: kube-scheduler's client burst (ClientConnection.Burst = 100,
# pkg/scheduler/apis/config/v1/defaults.go), which is as many as upstream sends without waiting.
MAX_BINDS_IN_FLIGHT = 100
# A pod whose binding failed is retried after podInitialBackoffSeconds = 1, doubling up to
# podMaxBackoffSeconds = 10 (same defaults.go).
BIND_BACKOFF_SECONDS = (1.0, 10.0)


def _changed_beyond_status(old: Obj, new: Obj) -> bool:
    """Upstream's isPodUpdated: anything but status and bookkeeping metadata changed."""
    def strip(pod: Obj) -> Obj:
        md = {k: v for k, v in metadata_of(pod).items()
              if k not in ("resourceVersion", "generation", "managedFields")}
        return {**{k: v for k, v in pod.items() if k != "status"}, "metadata": md}

    return strip(old) != strip(new)


class Scheduler(Controller):
    name = scheduling.DEFAULT_SCHEDULER  # the component kubectl describe shows on its events
    workers = 1  # one scheduling cycle at a time: each decision sees the ones before it

    def setup(self) -> None:
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        # Bound pods the cache shows, plus pods assumed bound whose binding is not shown yet.
        self.occupancy = scheduling.Occupancy()
        self._assumed: set[str] = set()
        self._unschedulable: set[str] = set()
        self.max_binds_in_flight = MAX_BINDS_IN_FLIGHT
        self._bind_slots: asyncio.Semaphore | None = None
        self._binds: set[asyncio.Task[None]] = set()
        self._bind_backoff: ExponentialBackoff[str] = ExponentialBackoff(*BIND_BACKOFF_SECONDS)
        self.background = BackgroundEvents(self, lambda: asyncio.get_running_loop().time())
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=lambda node: self._retry_unschedulable(),
                               on_update=self._node_updated)

    # ------------------------------------------------------------- handlers
    def _observe(self, key: str, pod: Obj) -> None:
        """Keep the occupancy in step with the cache; an assumed pod stays until shown bound."""
        if scheduling.occupies_node(pod):
            self._assumed.discard(key)  # the cache shows the binding now
            self.occupancy.place(key, spec_of(pod)["nodeName"], pod)
        elif key not in self._assumed:
            self.occupancy.remove(key)

    def _pod_added(self, pod: Obj) -> None:
        self._observe(object_key(pod), pod)
        if scheduling.needs_scheduling(pod):
            self.enqueue(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        self._observe(key, new)
        if scheduling.needs_scheduling(new) and (key not in self._unschedulable
                                                 or _changed_beyond_status(old, new)):
            self.enqueue(new)  # our own condition write on a waiting pod is no reason to retry
        if scheduling.occupies_node(old) and not scheduling.occupies_node(new):
            self._retry_unschedulable()  # a finished pod leaves room on its node

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self._assumed.discard(key)
        self.occupancy.remove(key)
        self._bind_backoff.forget(key)
        self._unschedulable.discard(key)
        if scheduling.occupies_node(pod):
            self._retry_unschedulable()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if scheduling.scheduling_view(old) != scheduling.scheduling_view(new):
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        for key in sorted(self._unschedulable):
            self.queue.add(key)

    # ------------------------------------------------------------ reconcile
    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        pod = self.pods.get(namespace, name)
        if pod is None or not scheduling.needs_scheduling(pod):
            self._unschedulable.discard(key)
            return None
        if key in self._assumed:
            return None  # bound or being bound; the watch has not caught up
        decision = scheduling.schedule(pod, self.nodes.list(), self.occupancy.by_node)
        if decision.node is not None:
            await self._start_binding(key, pod, decision.node)
            return None
        self._unschedulable.add(key)
        await self._record_unschedulable(pod, decision.message)
        return UNSCHEDULABLE_RETRY_SECONDS

    async def _start_binding(self, key: str, pod: Obj, node_name: str) -> None:
        """Assume the pod on node_name now, and bind it in a task once a slot is free."""
        if self._bind_slots is None:
            self._bind_slots = asyncio.Semaphore(self.max_binds_in_flight)
        await self._bind_slots.acquire()
        self._assumed.add(key)
        self.occupancy.place(key, node_name, {**pod, "spec": {**spec_of(pod), "nodeName": node_name}})
        task = asyncio.create_task(self._bind(key, pod, node_name), name=f"bind-{key}")
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    def _forget(self, key: str) -> None:
        """The binding did not happen: take the assumption back (unless the cache shows it bound)."""
        if key in self._assumed:
            self._assumed.discard(key)
            self.occupancy.remove(key)

    async def _bind(self, key: str, pod: Obj, node_name: str) -> None:
        md = metadata_of(pod)
        namespace, name = namespace_of(pod), name_of(pod)
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": name, "namespace": namespace, "uid": md.get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        try:
            await self._post_binding(namespace, name, binding)
        except ApiError as exc:
            self._forget(key)
            if exc.code in (404, 409):
                # Gone, replaced, or bound by someone else meanwhile: the informer has the truth.
                log.info("binding %s to %s: %s", key, node_name, exc.message)
                return
            self.background.emit(pod, "Warning", "FailedScheduling", f"Binding rejected: {exc.message}")
            self._retry_binding(key, exc)
            return
        except Exception as exc:  # no answer (TransportError): try again later
            self._forget(key)
            self._retry_binding(key, exc)
            return
        finally:
            assert self._bind_slots is not None
            self._bind_slots.release()
        self._bind_backoff.forget(key)
        self._unschedulable.discard(key)
        self.background.emit(pod, "Normal", "Scheduled",
                             f"Successfully assigned {namespace}/{name} to {node_name}")

    def _retry_binding(self, key: str, exc: BaseException) -> None:
        delay = self._bind_backoff.when(key)
        log.warning("binding %s failed: %s; retrying in %.1f s", key, exc, delay)
        self.queue.add_after(key, delay)

    async def flush(self) -> None:
        """Wait for the bindings and event writes started so far (tests use this)."""
        while self._binds:
            await asyncio.gather(*list(self._binds), return_exceptions=True)
        await self.background.flush()

    def shutdown(self) -> None:
        super().shutdown()
        for task in list(self._binds):
            task.cancel()

    async def _post_binding(self, namespace: str, name: str, binding: Obj) -> Any:
        return await self.api.request(  # type: ignore[attr-defined]
            "POST", resource_path(PODS, namespace, name, "binding"), body=binding)

    async def _record_unschedulable(self, pod: Obj, message: str) -> None:
        """PodScheduled=False/Unschedulable on the pod (when it changed) and a FailedScheduling event."""
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": message}
        existing = next((c for c in status_of(pod).get("conditions") or []
                         if c.get("type") == "PodScheduled"), None)
        if existing is None or any(existing.get(k) != condition[k] for k in ("status", "reason", "message")):
            condition["lastTransitionTime"] = (
                existing["lastTransitionTime"] if existing is not None and existing.get("status") == "False"
                and existing.get("lastTransitionTime") else meta.rfc3339(self.clock()))
            try:
                await self.api.patch(PODS, namespace_of(pod), name_of(pod),
                                     {"status": {"conditions": [condition]}}, patch_type="strategic",
                                     subresource="status")
            except ApiError as exc:
                if exc.code != 404:
                    raise
                return
        self.background.emit(pod, "Warning", "FailedScheduling", message)
