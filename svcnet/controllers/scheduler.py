"""The scheduler (kube-scheduler, small): binds pending pods to nodes.

It watches pods without spec.nodeName whose schedulerName is
default-scheduler, and the Nodes. For each pod, one at a time (one worker, as
upstream's scheduling cycle), svcnet.core.scheduling.schedule picks a node;
the choice is "assumed" at once, so the next pod already counts it, then
bound with POST pods/{name}/binding, as upstream's DefaultBinder. The API
server's binding sets spec.nodeName and PodScheduled=True.

When no node fits, the pod stays Pending: the scheduler writes
PodScheduled=False reason Unschedulable with upstream's FitError message and a
FailedScheduling event, and tries again when a node is added or changes in a
way that matters, when a bound pod goes away, and every few minutes anyway
(upstream's unschedulable queue flush).
"""
from __future__ import annotations

import logging
from typing import Any

from svcnet.api import meta
from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of, name_of, namespace_of, spec_of, status_of
from svcnet.client.informer import object_key, split_key
from svcnet.client.rest import resource_path
from svcnet.controllers.base import NODES, PODS, Controller, Obj
from svcnet.core import scheduling

log = logging.getLogger("svcnet.controllers.scheduler")

_BY_NODE = "scheduler/node"
# Upstream moves pods that have waited this long in the unschedulable queue back for another try.
UNSCHEDULABLE_RETRY_SECONDS = 300.0


def _node_index(pod: Obj) -> list[str]:
    return [pod["spec"]["nodeName"]] if scheduling.occupies_node(pod) else []


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
        try:
            self.pods.add_index(_BY_NODE, _node_index)
        except ValueError:
            pass  # shared informer: already indexed by another scheduler instance
        # Pods bound (or being bound) by us that the cache may not show yet: key -> (node, pod).
        self._assumed: dict[str, tuple[str, Obj]] = {}
        self._unschedulable: set[str] = set()
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=lambda node: self._retry_unschedulable(),
                               on_update=self._node_updated)

    # ------------------------------------------------------------- handlers
    def _pod_added(self, pod: Obj) -> None:
        if scheduling.needs_scheduling(pod):
            self.enqueue(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        if spec_of(new).get("nodeName"):
            self._assumed.pop(key, None)  # the cache shows the binding now
        if scheduling.needs_scheduling(new) and (key not in self._unschedulable
                                                 or _changed_beyond_status(old, new)):
            self.enqueue(new)  # our own condition write on a waiting pod is no reason to retry
        if scheduling.occupies_node(old) and not scheduling.occupies_node(new):
            self._retry_unschedulable()  # a finished pod leaves room on its node

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self._assumed.pop(key, None)
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
            return None  # bound already; the watch has not caught up
        decision = scheduling.schedule(pod, self.nodes.list(), self._pods_on_nodes())
        if decision.node is not None:
            await self._bind(key, pod, decision.node)
            return None
        self._unschedulable.add(key)
        await self._record_unschedulable(pod, decision.message)
        return UNSCHEDULABLE_RETRY_SECONDS

    def _pods_on_nodes(self) -> dict[str, list[Obj]]:
        pods_on: dict[str, list[Obj]] = {}
        for node in self.nodes.list():
            node_name = name_of(node)
            pods_on[node_name] = self.pods.by_index(_BY_NODE, node_name)
        for key, (node_name, pod) in self._assumed.items():
            bound = pods_on.setdefault(node_name, [])
            if all(object_key(p) != key for p in bound):
                bound.append(pod)
        return pods_on

    async def _bind(self, key: str, pod: Obj, node_name: str) -> None:
        md = metadata_of(pod)
        namespace, name = namespace_of(pod), name_of(pod)
        assumed = {**pod, "spec": {**spec_of(pod), "nodeName": node_name}}
        self._assumed[key] = (node_name, assumed)
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": name, "namespace": namespace, "uid": md.get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        try:
            await self._post_binding(namespace, name, binding)
        except ApiError as exc:
            self._assumed.pop(key, None)
            if exc.code in (404, 409):
                # Gone, replaced, or bound by someone else meanwhile: the informer has the truth.
                log.info("binding %s to %s: %s", key, node_name, exc.message)
                return
            await self.events.emit(pod, "Warning", "FailedScheduling",
                                   f"Binding rejected: {exc.message}")
            raise
        except Exception:
            self._assumed.pop(key, None)
            raise
        self._unschedulable.discard(key)
        await self.events.emit(pod, "Normal", "Scheduled",
                               f"Successfully assigned {namespace}/{name} to {node_name}")

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
        await self.events.emit(pod, "Warning", "FailedScheduling", message)
