"""The DaemonSet controller: one pod of a DaemonSet's template on every node that should run it.

Thin over svcnet.core.daemonset: reconcile reads the DaemonSet, the nodes and the
candidate pods from the informer caches, claims pods (adopt/release as the
ReplicaSet controller does), creates and deletes what the plan says, and writes
status. Pods are created unbound, naming their node through node affinity; the
scheduler binds them, as upstream since 1.12.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import controller_ref, metadata_of, spec_of
from svcnet.api.selectors import LabelSelector, label_selector_from_object
from svcnet.client.informer import object_key, split_key
from svcnet.controllers.base import NODES, PODS, Api, Controller, InformerFactory, resource
from svcnet.controllers.replicaset import (
    BY_CONTROLLER,
    BackgroundEvents,
    by_controller,
    delete_expected_pod,
    ensure_index,
)
from svcnet.core import daemonset as core
from svcnet.core import replicaset as rs_core
from svcnet.core.scheduling import scheduling_view

log = logging.getLogger("svcnet.controllers.daemonset")

Obj = dict[str, Any]

DAEMONSETS = resource("apps", "daemonsets")
CONFLICT_RETRY_SECONDS = 0.05


class DaemonSetController(Controller):
    name = "daemonset-controller"
    workers = 2  # kube-controller-manager's --concurrent-daemonset-syncs

    def __init__(self, api: Api, informers: InformerFactory, *, clock: Any = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        super().__init__(api, informers, clock=clock)
        self.monotonic = monotonic or time.monotonic
        self.expectations = rs_core.Expectations()
        self.background = BackgroundEvents(self, self.monotonic)

    # ------------------------------------------------------------------ wiring
    def setup(self) -> None:
        self.daemonsets = self.informers.informer(DAEMONSETS)
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        ensure_index(self.pods, BY_CONTROLLER, by_controller)
        self.daemonsets.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                    on_delete=self._daemon_set_deleted)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._enqueue_all, on_update=self._node_updated,
                               on_delete=self._enqueue_all)

    def _daemon_set_deleted(self, ds: Obj) -> None:
        self.expectations.forget(object_key(ds))
        self.queue.add(object_key(ds))

    def _enqueue_all(self, _: Obj | None = None) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    def _node_updated(self, old: Obj, cur: Obj) -> None:
        if scheduling_view(old) != scheduling_view(cur):  # heartbeats change nothing here
            self._enqueue_all()

    def _owner_of(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        ds = self.daemonsets.get(metadata_of(pod).get("namespace"), str(ref.get("name")))
        if ds is None or metadata_of(ds).get("uid") != ref.get("uid"):
            return None
        return ds

    def _pod_changed(self, pod: Obj) -> None:
        if metadata_of(pod).get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ds = self._owner_of(pod)
        if ds is not None:
            self.expectations.creation_observed(object_key(ds))
            self.enqueue(ds)
        elif controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if metadata_of(old).get("resourceVersion") == metadata_of(cur).get("resourceVersion"):
            return
        if metadata_of(cur).get("deletionTimestamp"):
            self._pod_deleted(cur)
            return
        for pod in (old, cur):
            ds = self._owner_of(pod)
            if ds is not None:
                self.enqueue(ds)
                min_ready = int(spec_of(ds).get("minReadySeconds") or 0)
                if min_ready > 0:
                    self.queue.add_after(object_key(ds), min_ready + 1.0)
        if controller_ref(cur) is None:
            self._enqueue_matching(cur)

    def _pod_deleted(self, pod: Obj) -> None:
        ds = self._owner_of(pod)
        if ds is not None:
            self.expectations.deletion_observed(object_key(ds), object_key(pod))
            self.enqueue(ds)

    def _enqueue_matching(self, pod: Obj) -> None:
        md = metadata_of(pod)
        for ds in self.daemonsets.list():
            if metadata_of(ds).get("namespace") != md.get("namespace"):
                continue
            try:
                selector = label_selector_from_object(spec_of(ds).get("selector"))
            except ApiError:
                continue
            if not selector.empty and selector.matches(md.get("labels") or {}):
                self.enqueue(ds)

    # --------------------------------------------------------------- reconcile
    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key, CONFLICT_RETRY_SECONDS)

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        ds = self.daemonsets.get(namespace, name)
        if ds is None:
            self.expectations.forget(key)
            return None
        try:
            selector = label_selector_from_object(spec_of(ds).get("selector"))
        except ApiError as exc:
            log.warning("daemonset %s: invalid selector: %s", key, exc.message)
            return None
        pods = await self._claim_pods(ds, selector)
        nodes = self.nodes.list()
        now = self.clock()
        if self.expectations.satisfied(key, self.monotonic()) and not metadata_of(ds).get("deletionTimestamp"):
            plan = core.plan_daemon_set(ds, nodes, pods, now)
            await self._apply(key, ds, plan)
        await self._write_status(ds, core.daemon_set_status(ds, nodes, pods, now))
        min_ready = int(spec_of(ds).get("minReadySeconds") or 0)
        return float(min_ready) if min_ready > 0 else None

    async def _claim_pods(self, ds: Obj, selector: LabelSelector) -> list[Obj]:
        md = metadata_of(ds)
        candidates = (self.pods.by_index(BY_CONTROLLER, f"uid:{md.get('uid')}")
                      + self.pods.by_index(BY_CONTROLLER, f"orphan:{md.get('namespace') or ''}"))
        verdict = rs_core.claim(ds, selector, candidates)
        pods = list(verdict.owned)
        for pod in verdict.adopt:
            try:
                pods.append(await self.api.patch(PODS, md.get("namespace"), pod["metadata"]["name"],
                                                 rs_core.adopt_patch(ds, pod), patch_type="strategic"))
            except ApiError as exc:
                if exc.code != 404:
                    raise
        for pod in verdict.release:
            try:
                await self.api.patch(PODS, md.get("namespace"), pod["metadata"]["name"],
                                     rs_core.release_patch(ds, pod), patch_type="strategic")
            except ApiError as exc:
                if exc.code not in (404, 422):
                    raise
        return pods

    async def _apply(self, key: str, ds: Obj, plan: core.Plan) -> None:
        """syncNodes: creates in slow-start batches, then deletes; expectations cover both."""
        if plan.create_on:
            await self._create_pods(key, ds, plan.create_on[:rs_core.BURST_REPLICAS])
        if plan.delete:
            doomed = plan.delete[:rs_core.BURST_REPLICAS]
            self.expectations.expect_deletions(key, [object_key(p) for p in doomed], self.monotonic())
            results = await asyncio.gather(*(self._delete_pod(key, ds, p) for p in doomed), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]

    async def _create_pods(self, key: str, ds: Obj, node_names: list[str]) -> None:
        hash_ = core.current_hash(ds)
        self.expectations.expect_creations(key, len(node_names), self.monotonic())
        pending = list(node_names)
        error: BaseException | None = None
        for size in rs_core.slow_start_batches(len(pending)):
            batch, pending = pending[:size], pending[size:]
            results = await asyncio.gather(*(self._create_pod(ds, n, hash_) for n in batch), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                self.expectations.creation_observed(key, len(failures) + len(pending))
                error = failures[0]
                break
        if error is not None:
            raise error

    async def _create_pod(self, ds: Obj, node_name: str, hash_: str) -> None:
        body = core.pod_for_node(ds, node_name, hash_)
        try:
            pod = await self.api.create(PODS, metadata_of(ds).get("namespace"), body)
        except ApiError as exc:
            self.background.emit(ds, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.background.emit(ds, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    async def _delete_pod(self, key: str, ds: Obj, pod: Obj) -> None:
        await delete_expected_pod(self.api, self.expectations, self.background, key, ds, pod)

    async def _write_status(self, ds: Obj, status: Obj) -> None:
        if core.status_is_current(ds, status):
            return
        md = ds["metadata"]
        body = copy.deepcopy(ds)
        body["status"] = status
        try:
            await self.api.update_status(DAEMONSETS, md.get("namespace"), body)
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
