"""The ReplicaSet controller: keeps spec.replicas pods of a ReplicaSet's template in existence.

Thin over svcnet.core.replicaset: reconcile reads the ReplicaSet and its
candidate pods from the informer caches, claims them (adopt/release by
ownerReference patches), creates or deletes the difference, and writes
status. Expectations keep it from acting twice before its own writes show up
in the cache, as upstream's controller does.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import controller_ref, is_pod_ready, metadata_of, spec_of, status_of
from svcnet.api.selectors import LabelSelector, label_selector_from_object
from svcnet.client.events import EventQueue
from svcnet.client.informer import Informer, object_key, split_key
from svcnet.controllers.base import PODS, REPLICASETS, Api, Controller, InformerFactory
from svcnet.core import replicaset as core

log = logging.getLogger("svcnet.controllers.replicaset")

Obj = dict[str, Any]

CONFLICT_RETRY_SECONDS = 0.05

# Shared informer indexes (any controller may register the same function under the same name).
BY_CONTROLLER = "svcnet/by-controller"


def by_controller(obj: Obj) -> list[str]:
    """Index value: "uid:<controller uid>" for owned objects, "orphan:<namespace>" for the rest."""
    ref = controller_ref(obj)
    if ref is not None and ref.get("uid"):
        return [f"uid:{ref['uid']}"]
    return [f"orphan:{(obj.get('metadata') or {}).get('namespace') or ''}"]


def ensure_index(informer: Informer, name: str, func: Callable[[Obj], Iterable[str]]) -> None:
    try:
        informer.add_index(name, func)
    except ValueError:
        pass  # another controller on the same shared informer registered it


class ManageReplicasError(Exception):
    """Creating or deleting pods failed; the key is retried with backoff."""


# client-go's broadcaster queues at most this many events and drops the rest
# (tools/record/event.go: maxQueuedEvents, watch.DropIfChannelFull).


async def delete_expected_pod(api: Any, expectations: core.Expectations, events: BackgroundEvents, key: str,
                              owner: Obj, pod: Obj) -> None:
    """Delete one of owner's pods whose deletion key's sync expects, with the owner's events; a
    deletion the informer will never see (the delete failed) is no longer expected."""
    md = pod["metadata"]
    try:
        await api.delete(PODS, md.get("namespace"), md["name"])
    except ApiError as exc:
        expectations.deletion_observed(key, object_key(pod))
        if exc.code == 404:
            return
        events.emit(owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
        raise
    events.emit(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {md['name']}")


class BackgroundEvents(EventQueue):
    """A controller's events, written one at a time off its sync path (EventQueue)."""

    def __init__(self, controller: Controller, monotonic: Callable[[], float]) -> None:
        super().__init__(lambda *event: controller.events.emit(*event), monotonic)


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    workers = 5  # kube-controller-manager's --concurrent-replicaset-syncs
    # What it manages: the ReplicationController controller is this one over another kind
    # (upstream's NewReplicationManager wraps the ReplicaSet controller the same way).
    owner_resource = REPLICASETS
    owner_kind = "ReplicaSet"

    @staticmethod
    def selector_of(owner: Obj) -> LabelSelector:
        """The owner's pod selector (ApiError when it is invalid)."""
        return label_selector_from_object(spec_of(owner).get("selector"))

    def __init__(self, api: Api, informers: InformerFactory, *, clock: Any = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        super().__init__(api, informers, clock=clock)
        self.monotonic = monotonic or time.monotonic
        self.expectations = core.Expectations()
        self.background = BackgroundEvents(self, self.monotonic)

    # ------------------------------------------------------------------ wiring
    def setup(self) -> None:
        self.replicasets = self.informers.informer(self.owner_resource)
        self.pods = self.informers.informer(PODS)
        ensure_index(self.pods, BY_CONTROLLER, by_controller)
        ensure_index(self.replicasets, BY_CONTROLLER, by_controller)
        self.replicasets.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                     on_delete=self._replica_set_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)

    def _replica_set_deleted(self, rs: Obj) -> None:
        key = object_key(rs)
        self.expectations.forget(key)
        self.queue.add(key)

    def _owner_of(self, pod: Obj, ref: Obj | None) -> Obj | None:
        """The ReplicaSet a controller ref names, if it is one we know (same uid)."""
        if ref is None or ref.get("kind") != self.owner_kind:
            return None
        rs = self.replicasets.get(metadata_of(pod).get("namespace"), str(ref.get("name")))
        if rs is None or metadata_of(rs).get("uid") != ref.get("uid"):
            return None
        return rs

    def _enqueue_matching(self, pod: Obj) -> None:
        """An orphan changed: every ReplicaSet in its namespace that selects it takes a look."""
        md = metadata_of(pod)
        for rs in self.replicasets.list():
            if metadata_of(rs).get("namespace") != md.get("namespace"):
                continue
            try:
                selector = self.selector_of(rs)
            except ApiError:
                continue
            if not selector.empty and selector.matches(md.get("labels") or {}):
                self.enqueue(rs)

    def _pod_added(self, pod: Obj) -> None:
        if metadata_of(pod).get("deletionTimestamp"):
            # Seen for the first time already terminating (e.g. after a restart): count it as gone.
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            rs = self._owner_of(pod, ref)
            if rs is not None:
                key = object_key(rs)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        old_md, cur_md = metadata_of(old), metadata_of(cur)
        if old_md.get("resourceVersion") == cur_md.get("resourceVersion"):
            return  # a resync: nothing changed
        labels_changed = old_md.get("labels") != cur_md.get("labels")
        if cur_md.get("deletionTimestamp"):
            self._pod_deleted(cur)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        ref_changed = old_ref != cur_ref
        if ref_changed and old_ref is not None:
            previous = self._owner_of(old, old_ref)
            if previous is not None:
                self.enqueue(previous)
        if cur_ref is not None:
            rs = self._owner_of(cur, cur_ref)
            if rs is None:
                return
            self.enqueue(rs)
            min_ready = int(spec_of(rs).get("minReadySeconds") or 0)
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                # Look again when the pod turns available.
                self.queue.add_after(object_key(rs), min_ready + 1.0)
            return
        if labels_changed or ref_changed:
            self._enqueue_matching(cur)

    def _pod_deleted(self, pod: Obj) -> None:
        rs = self._owner_of(pod, controller_ref(pod))
        if rs is None:
            return
        key = object_key(rs)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # --------------------------------------------------------------- reconcile
    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key, CONFLICT_RETRY_SECONDS)

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        rs = self.replicasets.get(namespace, name)
        if rs is None:
            self.expectations.forget(key)
            return None
        needs_sync = self.expectations.satisfied(key, self.monotonic())
        try:
            selector = self.selector_of(rs)
        except ApiError as exc:
            log.warning("%s %s: invalid selector: %s", self.owner_kind, key, exc.message)
            return None
        pods = await self._claim_pods(rs, selector)
        failure: core.ManageError | None = None
        if needs_sync and not metadata_of(rs).get("deletionTimestamp"):
            failure = await self._manage_replicas(key, rs, pods)
        status = core.replica_set_status(rs, pods, failure, self.clock())
        updated = await self._write_status(rs, status)
        if failure is not None:
            raise ManageReplicasError(f"{key}: {failure.message}")
        spec, st = spec_of(updated), status_of(updated)
        min_ready = int(spec.get("minReadySeconds") or 0)
        replicas = int(spec.get("replicas", 1))
        if min_ready > 0 and st.get("readyReplicas", 0) == replicas \
                and st.get("availableReplicas", 0) != replicas:
            return float(min_ready)  # as upstream: a last look once minReadySeconds has passed
        return None

    def _candidate_pods(self, rs: Obj) -> list[Obj]:
        md = metadata_of(rs)
        owned = self.pods.by_index(BY_CONTROLLER, f"uid:{md.get('uid')}")
        orphans = self.pods.by_index(BY_CONTROLLER, f"orphan:{md.get('namespace') or ''}")
        return [p for p in owned + orphans if core.is_pod_active(p)]

    async def _claim_pods(self, rs: Obj, selector: LabelSelector) -> list[Obj]:
        verdict = core.claim(rs, selector, self._candidate_pods(rs))
        pods = list(verdict.owned)
        namespace = metadata_of(rs).get("namespace")
        if verdict.adopt:
            await self._check_can_adopt(rs)
        for pod in verdict.adopt:
            try:
                pods.append(await self.api.patch(PODS, namespace, pod["metadata"]["name"],
                                                 core.adopt_patch(rs, pod), patch_type="strategic"))
            except ApiError as exc:
                if exc.code != 404:
                    raise
        for pod in verdict.release:
            try:
                await self.api.patch(PODS, namespace, pod["metadata"]["name"],
                                     core.release_patch(rs, pod), patch_type="strategic")
            except ApiError as exc:
                if exc.code not in (404, 422):  # gone, or already released (upstream ignores both)
                    raise
        return pods

    async def _check_can_adopt(self, rs: Obj) -> None:
        """RecheckDeletionTimestamp: adopt only for a live ReplicaSet read fresh from the API."""
        md = rs["metadata"]
        fresh = await self.api.get(self.owner_resource, md.get("namespace"), md["name"])
        fresh_md = metadata_of(fresh)
        if fresh_md.get("uid") != md.get("uid"):
            raise ManageReplicasError(f"original {self.owner_kind} {md.get('namespace')}/{md['name']} is gone: "
                                      f"got uid {fresh_md.get('uid')}, wanted {md.get('uid')}")
        if fresh_md.get("deletionTimestamp"):
            raise ManageReplicasError(f"{md.get('namespace')}/{md['name']} has just been deleted at "
                                      f"{fresh_md['deletionTimestamp']}")

    async def _manage_replicas(self, key: str, rs: Obj, pods: list[Obj]) -> core.ManageError | None:
        replicas = int(spec_of(rs).get("replicas", 1))
        diff = len(pods) - replicas
        if diff < 0:
            return await self._create_pods(key, rs, min(-diff, core.BURST_REPLICAS))
        if diff > 0:
            return await self._delete_pods(key, rs, pods, min(diff, core.BURST_REPLICAS))
        return None

    async def _create_pods(self, key: str, rs: Obj, count: int) -> core.ManageError | None:
        self.expectations.expect_creations(key, count, self.monotonic())
        created = 0
        error: BaseException | None = None
        for size in core.slow_start_batches(count):
            results = await asyncio.gather(*(self._create_pod(rs) for _ in range(size)),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            created += size - len(failures)
            if failures:
                error = failures[0]
                break
        if count - created > 0:
            # Creates never made (or failed) will never be observed: stop waiting for them.
            self.expectations.creation_observed(key, count - created)
        if error is None:
            return None
        if not isinstance(error, Exception):
            raise error
        return core.ManageError("FailedCreate", _message(error))

    async def _create_pod(self, rs: Obj) -> None:
        md = rs["metadata"]
        body = core.pod_from_template(rs, spec_of(rs).get("template") or {})
        try:
            pod = await self.api.create(PODS, md.get("namespace"), body)
        except ApiError as exc:
            if any(c.reason == "NamespaceTerminating" for c in exc.causes):
                return  # every create will fail until the namespace is gone: nothing to report
            self.background.emit(rs, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.background.emit(rs, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    async def _delete_pods(self, key: str, rs: Obj, pods: list[Obj], count: int) -> core.ManageError | None:
        related = self._related_pods(rs)
        doomed = core.pods_to_delete(pods, related, count, self.clock())
        self.expectations.expect_deletions(key, [object_key(p) for p in doomed], self.monotonic())
        results = await asyncio.gather(*(self._delete_pod(key, rs, p) for p in doomed),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                return core.ManageError("FailedDelete", _message(result))
            if isinstance(result, BaseException):
                raise result
        return None

    async def _delete_pod(self, key: str, rs: Obj, pod: Obj) -> None:
        await delete_expected_pod(self.api, self.expectations, self.background, key, rs, pod)

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """Pods of every ReplicaSet with the same owner (a Deployment's old and new ones)."""
        ref = controller_ref(rs)
        siblings = [rs] if ref is None else self.replicasets.by_index(BY_CONTROLLER, f"uid:{ref.get('uid')}")
        related: list[Obj] = []
        for sibling in siblings:
            related += self.pods.by_index(BY_CONTROLLER, f"uid:{(sibling.get('metadata') or {}).get('uid')}")
        return related

    async def _write_status(self, rs: Obj, status: Obj) -> Obj:
        if core.status_is_current(rs, status):
            return rs
        md = rs["metadata"]
        body = copy.deepcopy(rs)
        body["status"] = status
        try:
            return await self.api.update_status(self.owner_resource, md.get("namespace"), body)
        except ApiError as exc:
            if exc.code == 404:
                return rs
            if exc.code != 409:
                raise
        # One retry on a fresh copy, as upstream (statusUpdateRetries = 1).
        fresh = await self.api.get(self.owner_resource, md.get("namespace"), md["name"])
        fresh["status"] = status
        return await self.api.update_status(self.owner_resource, md.get("namespace"), fresh)


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ApiError) else str(exc)
