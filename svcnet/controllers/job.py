"""The Job controller: runs a Job's pods to completion (pkg/controller/job).

Thin over svcnet.core.job: reconcile reads the Job (fresh from the API, since a stale
status could lose a pod's count) and its pods from the informer cache, asks
`plan_job` what to write, and writes it in the order that keeps counting exact:
status (with the newly finished pods' uids in uncountedTerminatedPods) before the
pods' tracking finalizers are removed. Expectations keep it from acting again
before its own pod writes show up in the cache, as upstream's controller does.
Events go on the Job as upstream's: SuccessfulCreate "Created pod: x",
SuccessfulDelete "Deleted pod: x", Completed, BackoffLimitExceeded, DeadlineExceeded,
Suspended/Resumed.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from svcnet.api.errors import ApiError
from svcnet.api.objects import (
    controller_ref,
    finalizers_of,
    is_being_deleted,
    metadata_of,
    name_of,
    namespace_of,
    uid_of,
)
from svcnet.client.informer import split_key
from svcnet.controllers.base import PODS, Api, Controller, InformerFactory, Obj, resource
from svcnet.core import job as core
from svcnet.core.job_labels import TRACKING_FINALIZER

log = logging.getLogger("svcnet.controllers.job")

JOBS = resource("batch", "jobs")
_BY_OWNER = "job-controller/owner-uid"
_ORPHAN_POD = "orphan-pod:"  # queue keys of pods that keep the tracking finalizer without a Job
EXPECTATION_RECHECK = 0.2  # seconds: look again while our own writes are not yet in the cache
EXPECTATIONS_TIMEOUT = 300.0  # upstream's ExpectationsTimeout: a write whose event never came is forgotten


def _owner_index(pod: Obj) -> list[str]:
    ref = controller_ref(pod)
    return [str(ref.get("uid"))] if ref is not None and ref.get("kind") == "Job" else []


class JobController(Controller):
    name = "job-controller"
    workers = 2

    def __init__(self, api: Api, informers: InformerFactory, *,
                 clock: Callable[[], dt.datetime] | None = None,
                 backoff_base: float = core.POD_FAILURE_BACKOFF) -> None:
        super().__init__(api, informers, clock=clock)
        self.backoff_base = backoff_base
        # job key -> pod names created/deleted/un-finalized that the cache has not shown yet
        self._expect_present: dict[str, set[str]] = {}
        self._expect_changed: dict[str, dict[str, str]] = {}  # name -> resourceVersion written over
        self._expect_since: dict[str, float] = {}

    def setup(self) -> None:
        self.jobs = self.informers.informer(JOBS)
        self.pods = self.informers.informer(PODS)
        try:
            self.pods.add_index(_BY_OWNER, _owner_index)
        except ValueError:
            pass  # shared informer: already registered
        self.jobs.add_handler(**self.enqueue_handlers())
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new),
                              on_delete=self._pod_changed)

    def _pod_changed(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == "Job":
            self.queue.add(f"{namespace_of(pod)}/{ref.get('name')}")
        elif TRACKING_FINALIZER in finalizers_of(pod):
            # Orphaned (its Job deleted with propagation Orphan): nobody counts it any more.
            self.queue.add(f"{_ORPHAN_POD}{namespace_of(pod)}/{name_of(pod)}")

    # ------------------------------------------------------------ reconcile
    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key)

    async def _sync(self, key: str) -> float | None:
        if key.startswith(_ORPHAN_POD):
            await self._release_orphan_pod(key[len(_ORPHAN_POD):])
            return None
        namespace, name = split_key(key)
        try:
            job = await self.api.get(JOBS, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                self._forget(key)
                await self._release_orphans(namespace or "", name)
                return None
            raise
        pods = self.pods.by_index(_BY_OWNER, uid_of(job))
        if not self._expectations_met(key, pods):
            return EXPECTATION_RECHECK
        if (job.get("spec") or {}).get("managedBy") not in (None, "kubernetes.io/job-controller"):
            return None  # another controller owns this Job (spec.managedBy)
        if is_being_deleted(job):
            await self._release_finalizers(key, job, pods, [name_of(p) for p in pods
                                                            if TRACKING_FINALIZER in finalizers_of(p)])
            return None
        plan = core.plan_job(job, pods, now=self.clock(), backoff_base=self.backoff_base)
        return await self._execute(key, job, pods, plan)

    async def _execute(self, key: str, job: Obj, pods: list[Obj], plan: core.JobPlan) -> float | None:
        if core.status_differs(job, plan.status):
            job = await self.api.update_status(JOBS, namespace_of(job), {**job, "status": plan.status})
        failure: ApiError | None = None
        for pod_name in plan.delete:
            failure = failure or await self._delete_pod(key, job, pod_name)
        await self._release_finalizers(key, job, pods, plan.remove_finalizer)
        created = await asyncio.gather(*(self._create_pod(key, job, pod) for pod in plan.create))
        failure = failure or next((f for f in created if f is not None), None)
        for event_type, reason, message in plan.events:
            await self.events.emit(job, event_type, reason, message)
        if failure is not None:
            raise failure
        if plan.remove_finalizer:
            return EXPECTATION_RECHECK  # count them once their finalizers are gone
        return plan.requeue_after

    # --------------------------------------------------------------- writes
    async def _create_pod(self, key: str, job: Obj, pod: Obj) -> ApiError | None:
        try:
            created = await self.api.create(PODS, namespace_of(job), pod)
        except ApiError as exc:
            await self.events.emit(job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            return exc
        self._expect_present.setdefault(key, set()).add(name_of(created))
        await self.events.emit(job, "Normal", "SuccessfulCreate", f"Created pod: {name_of(created)}")
        return None

    async def _delete_pod(self, key: str, job: Obj, pod_name: str) -> ApiError | None:
        try:
            deleted = await self.api.delete(PODS, namespace_of(job), pod_name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            await self.events.emit(job, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
            return exc
        if isinstance(deleted, dict) and metadata_of(deleted).get("resourceVersion"):
            self._expect_changed.setdefault(key, {})[pod_name] = str(metadata_of(deleted)["resourceVersion"])
        await self.events.emit(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_name}")
        return None

    async def _release_finalizers(self, key: str, job: Obj, pods: list[Obj], names: list[str]) -> None:
        """Remove the tracking finalizer, guarded by a test of its position (a JSON patch)."""
        by_name = {name_of(p): p for p in pods}
        for pod_name in names:
            pod = by_name.get(pod_name)
            if pod is None or TRACKING_FINALIZER not in finalizers_of(pod):
                continue
            index = finalizers_of(pod).index(TRACKING_FINALIZER)
            path = f"/metadata/finalizers/{index}"
            try:
                patched = await self.api.patch(PODS, namespace_of(job), pod_name, [
                    {"op": "test", "path": path, "value": TRACKING_FINALIZER}, {"op": "remove", "path": path}],
                    patch_type="json")
            except ApiError as exc:
                if exc.code in (404, 409, 422):
                    continue  # gone or changed: the pod's next event brings us back
                raise
            self._expect_changed.setdefault(key, {})[pod_name] = str(metadata_of(patched).get("resourceVersion"))

    async def _release_orphans(self, namespace: str, job_name: str) -> None:
        """The Job is gone: its pods must not keep the tracking finalizer, or they could never go."""
        for pod in self.pods.list():
            ref = controller_ref(pod)
            if (namespace_of(pod) == namespace and ref is not None and ref.get("kind") == "Job"
                    and ref.get("name") == job_name and TRACKING_FINALIZER in finalizers_of(pod)):
                await self._release_finalizers(f"{namespace}/{job_name}", pod, [pod], [name_of(pod)])
        self._forget(f"{namespace}/{job_name}")

    async def _release_orphan_pod(self, pod_key: str) -> None:
        namespace, name = split_key(pod_key)
        pod = self.pods.get(namespace, name)
        ref = controller_ref(pod) if pod is not None else None
        if pod is None or (ref is not None and ref.get("kind") == "Job"):
            return
        await self._release_finalizers(pod_key, pod, [pod], [name])

    # --------------------------------------------------------- expectations
    def _expectations_met(self, key: str, pods: list[Obj]) -> bool:
        """Our creates are in the cache and it has caught up with our deletes and patches."""
        started = self._expect_since.setdefault(key, time.monotonic())
        if time.monotonic() - started > EXPECTATIONS_TIMEOUT:
            self._forget(key)
            return True
        seen = {name_of(p): p for p in pods}
        present = self._expect_present.get(key, set())
        present -= set(seen)
        changed = self._expect_changed.get(key, {})
        for pod_name, version in list(changed.items()):
            pod = seen.get(pod_name)
            if pod is None or _not_older(str(metadata_of(pod).get("resourceVersion") or ""), version):
                del changed[pod_name]
        if present or changed:
            return False
        self._expect_since.pop(key, None)
        return True

    def _forget(self, key: str) -> None:
        self._expect_present.pop(key, None)
        self._expect_changed.pop(key, None)
        self._expect_since.pop(key, None)


def _not_older(cached: str, written: str) -> bool:
    """The cached copy is at least the version we wrote (svcnet's and etcd's versions are numbers)."""
    try:
        return int(cached) >= int(written)
    except ValueError:
        return cached == written

