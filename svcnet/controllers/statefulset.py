"""The StatefulSet controller: ordered, stably named pods (pkg/controller/statefulset).

Thin by design: reconcile reads the set and the namespace's pods from the
informer caches, claims the set's pods (adopting orphans, releasing pods the
selector no longer matches), asks svcnet.core.statefulset.plan_stateful_set
what to write, writes it, then records status. Events go on the StatefulSet
as upstream's: SuccessfulCreate "create Pod web-0 in StatefulSet web
successful", SuccessfulDelete, and FailedCreate/FailedDelete with the error.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from svcnet.api import selectors
from svcnet.api.errors import ApiError
from svcnet.api.objects import (
    controller_ref,
    labels_of,
    metadata_of,
    name_of,
    namespace_of,
    spec_of,
    status_of,
)
from svcnet.client.informer import split_key
from svcnet.controllers.base import PODS, STATEFULSETS, Controller, Obj
from svcnet.core import statefulset as core

log = logging.getLogger("svcnet.controllers.statefulset")

_BY_NAMESPACE = "statefulset-controller/namespace"


def _namespace_index(obj: Obj) -> list[str]:
    return [namespace_of(obj)]


def _add_index(informer: Any, name: str) -> None:
    try:
        informer.add_index(name, _namespace_index)
    except ValueError:
        pass  # the informers are shared: a second controller of this kind already added it


class StatefulSetController(Controller):
    name = "statefulset-controller"
    workers = 2

    def setup(self) -> None:
        self.sets = self.informers.informer(STATEFULSETS)
        self.pods = self.informers.informer(PODS)
        _add_index(self.sets, _BY_NAMESPACE)
        _add_index(self.pods, _BY_NAMESPACE)
        self.sets.add_handler(**self.enqueue_handlers())
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                              on_delete=self._pod_changed)

    # ------------------------------------------------------------- handlers
    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") == "StatefulSet":
                self.queue.add(f"{namespace_of(pod)}/{ref.get('name')}")
            return
        # An orphan: every set that could adopt it looks again (upstream's getStatefulSetsForPod).
        for sts in self._sets_selecting(pod):
            self.enqueue(sts)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            self._pod_changed(old)
        self._pod_changed(new)

    def _sets_selecting(self, pod: Obj) -> list[Obj]:
        labels = labels_of(pod)
        found = []
        for sts in self.sets.by_index(_BY_NAMESPACE, namespace_of(pod)):
            selector = spec_of(sts).get("selector")
            if selector and core.is_member_of(sts, pod) and _selector_matches(selector, labels):
                found.append(sts)
        return found

    # ------------------------------------------------------------ reconcile
    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        sts = self.sets.get(namespace, name)
        if sts is None:
            return None  # deleted: the garbage collector removes its pods
        selector = spec_of(sts).get("selector")
        if not selector:
            return None  # upstream refuses to act on a set without a selector
        in_namespace = self.pods.by_index(_BY_NAMESPACE, namespace or "")
        claim = core.claim_pods(sts, in_namespace,
                                lambda labels: _selector_matches(selector, labels))
        pods = list(claim.owned)
        for orphan in claim.adopt:
            adopted = await self._adopt(sts, orphan)
            if adopted is not None:
                pods.append(adopted)
        for stray in claim.release:
            await self._release(sts, stray)

        plan = core.plan_stateful_set(sts, pods, now=self.clock(),
                                      current_template=self._current_template(sts, pods))
        failure: ApiError | None = None
        for action in plan.actions:
            try:
                await self._execute(sts, action)
            except ApiError as exc:
                failure = failure or exc
        if core.status_differs(sts, plan.status):
            await self._write_status(sts, plan.status)
        if failure is not None:
            raise failure  # retried with backoff; status above is already recorded, as upstream
        return plan.requeue_after

    async def _write_status(self, sts: Obj, status: Obj) -> None:
        """Record status; on a conflict with a newer copy of the same generation, retry on it.

        Our own last status write is usually what makes the cached copy stale;
        a newer generation is left to the reconcile its watch event brings.
        """
        namespace, name = namespace_of(sts), name_of(sts)
        try:
            await self.api.update_status(STATEFULSETS, namespace,
                                         {**sts, "status": {**status_of(sts), **status}})
            return
        except ApiError as exc:
            if exc.code != 409:
                raise
        latest = await self.api.get(STATEFULSETS, namespace, name)
        generation = metadata_of(sts).get("generation")
        if metadata_of(latest).get("generation") != generation:
            return
        if metadata_of(latest).get("uid") != metadata_of(sts).get("uid"):
            return
        if core.status_differs(latest, status):
            await self.api.update_status(STATEFULSETS, namespace,
                                         {**latest, "status": {**status_of(latest), **status}})

    def _current_template(self, sts: Obj, pods: list[Obj]) -> Obj | None:
        """The template of status.currentRevision, recovered from a pod that still runs it."""
        current = status_of(sts).get("currentRevision")
        if not current or current == core.revision_name(sts):
            return None
        for pod in sorted(pods, key=core.ordinal_of):
            if core.pod_revision(pod) == current and not core.is_terminating(pod):
                return core.template_from_pod(pod)
        return None

    # --------------------------------------------------------------- writes
    async def _execute(self, sts: Obj, action: core.PodAction) -> None:
        namespace = namespace_of(sts)
        if action.kind == "create":
            assert action.pod is not None
            await self._write_pod(sts, "create", action.name, self.api.create(PODS, namespace, action.pod))
        elif action.kind == "delete":
            await self._write_pod(sts, "delete", action.name, self.api.delete(PODS, namespace, action.name))
        elif action.kind == "relabel":
            await self._write_pod(sts, "update", action.name, self.api.patch(
                PODS, namespace, action.name, {"metadata": {"labels": action.pod}}, patch_type="merge"))

    async def _write_pod(self, sts: Obj, verb: str, pod_name: str, write: Awaitable[Any]) -> None:
        """One pod write, recorded as the StatefulSet controller's pod control records it.

        A pod that already exists (create) or is already gone (delete, update) means our cache is
        behind: the pod's watch event brings us back, so that is no failure.
        """
        event = verb.capitalize()
        try:
            await write
        except ApiError as exc:
            if (exc.code == 409 and exc.reason == "AlreadyExists") if verb == "create" else exc.code == 404:
                return
            await self.events.emit(sts, "Warning", f"Failed{event}",
                                   f"{verb} Pod {pod_name} in StatefulSet {name_of(sts)} failed "
                                   f"error: {exc.message}")
            raise
        await self.events.emit(sts, "Normal", f"Successful{event}",
                               f"{verb} Pod {pod_name} in StatefulSet {name_of(sts)} successful")

    async def _adopt(self, sts: Obj, pod: Obj) -> Obj | None:
        md = metadata_of(pod)
        refs = [*(md.get("ownerReferences") or []), core.controller_reference(sts)]
        try:
            # The resourceVersion makes this conditional: a pod changed meanwhile is left alone.
            return await self.api.patch(PODS, namespace_of(pod), name_of(pod), {
                "metadata": {"ownerReferences": refs, "resourceVersion": md.get("resourceVersion")}},
                patch_type="merge")
        except ApiError as exc:
            if exc.code in (404, 409):
                return None
            raise

    async def _release(self, sts: Obj, pod: Obj) -> None:
        md = metadata_of(pod)
        uid = metadata_of(sts).get("uid")
        refs = [r for r in md.get("ownerReferences") or [] if r.get("uid") != uid]
        try:
            await self.api.patch(PODS, namespace_of(pod), name_of(pod), {
                "metadata": {"ownerReferences": refs or None,
                             "resourceVersion": md.get("resourceVersion")}}, patch_type="merge")
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise


def _selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    try:
        return selectors.label_selector_from_object(selector).matches(labels)
    except ApiError:
        return False  # an invalid selector selects nothing
