"""The Deployment controller: rolls a Deployment's template out through ReplicaSets.

Thin over svcnet.core.deployment, in upstream's order (syncDeployment): claim
ReplicaSets, note pause/resume, then either a scaling pass (paused, or the
replica count changed) or a rollout (RollingUpdate or Recreate), each ending
with a status write. Every write uses the resourceVersion read from the
cache, so a decision taken on a stale cache fails with a conflict and is
retried rather than applied twice.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import annotations_of, controller_ref, labels_of, metadata_of, spec_of, status_of
from svcnet.api.selectors import LabelSelector, label_selector_from_object
from svcnet.client.informer import split_key
from svcnet.controllers.base import DEPLOYMENTS, PODS, REPLICASETS, Api, Controller, InformerFactory
from svcnet.controllers.replicaset import BY_CONTROLLER, BackgroundEvents, by_controller, ensure_index
from svcnet.core import deployment as core
from svcnet.core import replicaset as rscore

log = logging.getLogger("svcnet.controllers.deployment")

Obj = dict[str, Any]

CONFLICT_RETRY_SECONDS = 0.05


class DeploymentError(Exception):
    """A sync step could not be done; the key is retried with backoff."""



class DeploymentController(Controller):
    name = "deployment-controller"
    workers = 5  # kube-controller-manager's --concurrent-deployment-syncs

    def __init__(self, api: Api, informers: InformerFactory, *, clock: Any = None,
                 monotonic: Any = None) -> None:
        super().__init__(api, informers, clock=clock)
        self.background = BackgroundEvents(self, monotonic or time.monotonic)

    # ------------------------------------------------------------------ wiring
    def setup(self) -> None:
        self.deployments = self.informers.informer(DEPLOYMENTS)
        self.replicasets = self.informers.informer(REPLICASETS)
        self.pods = self.informers.informer(PODS)
        ensure_index(self.replicasets, BY_CONTROLLER, by_controller)
        ensure_index(self.pods, BY_CONTROLLER, by_controller)
        self.deployments.add_handler(**self.enqueue_handlers())
        self.replicasets.add_handler(on_add=self._rs_added, on_update=self._rs_updated,
                                     on_delete=self._rs_deleted)
        self.pods.add_handler(on_delete=self._pod_deleted)

    def _owner_deployment(self, obj: Obj, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(metadata_of(obj).get("namespace"), str(ref.get("name")))
        if d is None or metadata_of(d).get("uid") != ref.get("uid"):
            return None
        return d

    def _deployments_selecting(self, rs: Obj) -> list[Obj]:
        found = []
        for d in self.deployments.list():
            if metadata_of(d).get("namespace") != metadata_of(rs).get("namespace"):
                continue
            try:
                selector = label_selector_from_object(spec_of(d).get("selector"))
            except ApiError:
                continue
            if not selector.empty and selector.matches(labels_of(rs)):
                found.append(d)
        return found

    def _rs_added(self, rs: Obj) -> None:
        if metadata_of(rs).get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            d = self._owner_deployment(rs, ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_selecting(rs):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if metadata_of(old).get("resourceVersion") == metadata_of(cur).get("resourceVersion"):
            return
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        ref_changed = old_ref != cur_ref
        if ref_changed and old_ref is not None:
            previous = self._owner_deployment(old, old_ref)
            if previous is not None:
                self.enqueue(previous)
        if cur_ref is not None:
            d = self._owner_deployment(cur, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if ref_changed or metadata_of(old).get("labels") != metadata_of(cur).get("labels"):
            for d in self._deployments_selecting(cur):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._owner_deployment(rs, controller_ref(rs))
        if d is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to be gone: their deletion is news to it."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(metadata_of(pod).get("namespace"), str(ref.get("name")))
        if rs is None:
            return
        d = self._owner_deployment(rs, controller_ref(rs))
        if d is not None and not core.is_rolling_update(d):
            self.enqueue(d)

    # --------------------------------------------------------------- reconcile
    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key, CONFLICT_RETRY_SECONDS)

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.deployments.get(namespace, name)
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        try:
            selector = label_selector_from_object(spec_of(d).get("selector"))
        except ApiError as exc:
            log.warning("deployment %s: invalid selector: %s", key, exc.message)
            return None
        if selector.empty:
            self.background.emit(d, "Warning", "SelectingAll",
                                 "This deployment is selecting all pods. A non-empty selector is required.")
            status = status_of(d)
            if int(status.get("observedGeneration") or 0) < int(metadata_of(d).get("generation") or 0):
                d["status"] = {**status, "observedGeneration": int(metadata_of(d).get("generation") or 0)}
                await self._write(d)
            return None
        rs_list = await self._claim_replica_sets(d, selector)
        if metadata_of(d).get("deletionTimestamp"):
            d, new_rs, old_rss = await self._sync_revision(d, rs_list, create=False)
            await self._sync_status(d, new_rs, old_rss)
            return None
        paused_status = core.paused_condition_update(d, self.clock())
        if paused_status is not None:
            d["status"] = paused_status
            d = await self._write(d)
        if spec_of(d).get("paused"):
            return await self._scale_only(d, rs_list)
        new_rs = core.find_new_replica_set(d, rs_list)
        if core.is_scaling_event(d, new_rs, core.find_old_replica_sets(d, rs_list)):
            return await self._scale_only(d, rs_list)
        if core.is_rolling_update(d):
            return await self._rollout_rolling(d, rs_list)
        return await self._rollout_recreate(d, rs_list)

    # ---------------------------------------------------------------- claiming
    async def _claim_replica_sets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        md = metadata_of(d)
        candidates = (self.replicasets.by_index(BY_CONTROLLER, f"uid:{md.get('uid')}")
                      + self.replicasets.by_index(BY_CONTROLLER, f"orphan:{md.get('namespace') or ''}"))
        verdict = rscore.claim(d, selector, candidates)
        owned = list(verdict.owned)
        if verdict.adopt:
            fresh = await self.api.get(DEPLOYMENTS, md.get("namespace"), md["name"])
            if metadata_of(fresh).get("uid") != md.get("uid") or metadata_of(fresh).get("deletionTimestamp"):
                raise DeploymentError(f"deployment {md.get('namespace')}/{md['name']} is gone or "
                                      f"being deleted: not adopting ReplicaSets")
        for rs in verdict.adopt:
            try:
                owned.append(await self.api.patch(REPLICASETS, md.get("namespace"), metadata_of(rs)["name"],
                                                  rscore.adopt_patch(d, rs), patch_type="strategic"))
            except ApiError as exc:
                if exc.code != 404:
                    raise
        for rs in verdict.release:
            try:
                await self.api.patch(REPLICASETS, md.get("namespace"), metadata_of(rs)["name"],
                                     rscore.release_patch(d, rs), patch_type="strategic")
            except ApiError as exc:
                if exc.code not in (404, 422):
                    raise
        return owned

    # ------------------------------------------------------------- the new RS
    async def _sync_revision(self, d: Obj, rs_list: Sequence[Obj],
                             create: bool) -> tuple[Obj, Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: the new ReplicaSet (made if asked), old ones, revisions."""
        old_rss = core.find_old_replica_sets(d, rs_list)
        existing = core.find_new_replica_set(d, rs_list)
        new_revision = str(core.max_revision(old_rss) + 1)
        namespace = metadata_of(d).get("namespace")
        spec = spec_of(d)
        if existing is not None:
            annotations = core.new_replica_set_annotations(d, existing, new_revision, exists=True)
            min_ready = int(spec.get("minReadySeconds") or 0)
            if annotations != annotations_of(existing) \
                    or int(spec_of(existing).get("minReadySeconds") or 0) != min_ready:
                body = copy.deepcopy(existing)
                body["metadata"]["annotations"] = annotations
                body["spec"]["minReadySeconds"] = min_ready
                updated = await self.api.update(REPLICASETS, namespace, body)
                return d, updated, old_rss
            needs_write = self._set_revision(d, annotations_of(existing).get(core.REVISION))
            status = d.setdefault("status", {})
            if core.has_progress_deadline(d) and core.get_condition(status, core.PROGRESSING) is None:
                core.set_condition(status, core.new_condition(
                    core.PROGRESSING, "True", core.FOUND_NEW_RS_REASON,
                    f'Found new replica set "{metadata_of(existing)["name"]}"', self.clock()))
                needs_write = True
            if needs_write:
                d = await self._write(d)
            return d, existing, old_rss
        if not create:
            return d, None, old_rss
        collision_count = status_of(d).get("collisionCount")
        pod_hash = core.compute_hash(spec.get("template") or {}, collision_count)
        placeholder: Obj = {"metadata": {"name": ""}, "spec": {"replicas": 0}}
        replicas = core.new_rs_new_replicas(d, [*old_rss, placeholder], placeholder)
        body = core.replica_set_for(d, pod_hash, replicas, new_revision)
        rs_name = body["metadata"]["name"]
        already_exists = False
        try:
            created = await self.api.create(REPLICASETS, namespace, body)
        except ApiError as exc:
            if exc.reason == "AlreadyExists":
                found = await self.api.get(REPLICASETS, namespace, rs_name)
                ref = controller_ref(found)
                if ref is not None and ref.get("uid") == metadata_of(d).get("uid") and core.equal_ignore_hash(
                        spec.get("template") or {}, spec_of(found).get("template") or {}):
                    created, already_exists = found, True
                else:
                    # A hash collision: the next sync hashes with a bigger collisionCount.
                    status = d.setdefault("status", {})
                    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                    await self._write(d)
                    raise DeploymentError(f"hash collision for {rs_name}: collisionCount is now "
                                          f"{status['collisionCount']}") from exc
            elif any(c.reason == "NamespaceTerminating" for c in exc.causes):
                raise
            else:
                message = f'Failed to create new replica set "{rs_name}": {exc.message}'
                if core.has_progress_deadline(d):
                    core.set_condition(d.setdefault("status", {}), core.new_condition(
                        core.PROGRESSING, "False", core.FAILED_RS_CREATE_REASON, message, self.clock()))
                    await self._write(d)
                self.background.emit(d, "Warning", core.FAILED_RS_CREATE_REASON, message)
                raise
        if not already_exists and replicas > 0:
            self.background.emit(d, "Normal", "ScalingReplicaSet",
                                 f"Scaled up replica set {rs_name} from 0 to {replicas}")
        needs_write = self._set_revision(d, new_revision)
        if not already_exists and core.has_progress_deadline(d):
            core.set_condition(d.setdefault("status", {}), core.new_condition(
                core.PROGRESSING, "True", core.NEW_RS_REASON, f'Created new replica set "{rs_name}"',
                self.clock()))
            needs_write = True
        if needs_write:
            d = await self._write(d)
        return d, created, old_rss

    @staticmethod
    def _set_revision(d: Obj, revision: str | None) -> bool:
        if revision is None:
            return False
        annotations = d.setdefault("metadata", {}).setdefault("annotations", {})
        if annotations.get(core.REVISION) == revision:
            return False
        annotations[core.REVISION] = revision
        return True

    # ---------------------------------------------------------------- passes
    async def _scale_only(self, d: Obj, rs_list: Sequence[Obj]) -> float | None:
        """sync(): a paused Deployment or a replica count change, without rolling anything."""
        d, new_rs, old_rss = await self._sync_revision(d, rs_list, create=False)
        steps = core.plan_proportional_scale(d, new_rs, old_rss)
        new_rs, old_rss = await self._apply(d, steps, new_rs, old_rss)
        if spec_of(d).get("paused") and core.ROLLBACK_TO not in annotations_of(d):
            await self._clean_up(d, old_rss)
        await self._sync_status(d, new_rs, old_rss)
        return None

    async def _rollout_rolling(self, d: Obj, rs_list: Sequence[Obj]) -> float | None:
        d, new_rs, old_rss = await self._sync_revision(d, rs_list, create=True)
        assert new_rs is not None
        plan = core.plan_rolling_update(d, new_rs, old_rss)
        if plan.steps:
            new_rs, old_rss = await self._apply(d, plan.steps, new_rs, old_rss)
            return await self._sync_rollout_status(d, new_rs, old_rss)
        if core.deployment_complete(d, status_of(d)):
            await self._clean_up(d, old_rss)
        return await self._sync_rollout_status(d, new_rs, old_rss)

    async def _rollout_recreate(self, d: Obj, rs_list: Sequence[Obj]) -> float | None:
        d, new_rs, old_rss = await self._sync_revision(d, rs_list, create=False)
        scale_down = [core.ScaleStep(metadata_of(rs)["name"], 0, "down") for rs in core.active(old_rss)]
        if scale_down:
            new_rs, old_rss = await self._apply(d, scale_down, new_rs, old_rss)
            return await self._sync_rollout_status(d, new_rs, old_rss)
        if core.old_pods_running(new_rs, old_rss, self._pods_by_owner(d, rs_list)):
            return await self._sync_rollout_status(d, new_rs, old_rss)
        if new_rs is None:
            d, new_rs, old_rss = await self._sync_revision(d, rs_list, create=True)
        assert new_rs is not None
        replicas = core.replicas_of(d)
        if core.replicas_of(new_rs) != replicas:
            operation = "up" if core.replicas_of(new_rs) < replicas else "down"
            new_rs, old_rss = await self._apply(
                d, [core.ScaleStep(metadata_of(new_rs)["name"], replicas, operation)], new_rs, old_rss)
        if core.deployment_complete(d, status_of(d)):
            await self._clean_up(d, old_rss)
        return await self._sync_rollout_status(d, new_rs, old_rss)

    def _pods_by_owner(self, d: Obj, rs_list: Sequence[Obj]) -> dict[str, list[Obj]]:
        selector = label_selector_from_object(spec_of(d).get("selector"))
        out: dict[str, list[Obj]] = {}
        for rs in rs_list:
            uid = str(metadata_of(rs).get("uid"))
            out[uid] = [p for p in self.pods.by_index(BY_CONTROLLER, f"uid:{uid}")
                        if selector.matches(labels_of(p))]
        return out

    # ---------------------------------------------------------------- writes
    async def _apply(self, d: Obj, steps: Sequence[core.ScaleStep], new_rs: Obj | None,
                     old_rss: Sequence[Obj]) -> tuple[Obj | None, list[Obj]]:
        """Perform scale steps in order; returns the ReplicaSets as written."""
        by_name: dict[str, Obj] = {metadata_of(rs)["name"]: rs for rs in [*old_rss, new_rs] if rs is not None}
        for step in steps:
            rs = by_name[step.name]
            body = core.scaled_replica_set(rs, step.replicas, d)
            if body == rs:
                continue
            old_size = core.replicas_of(rs)
            by_name[step.name] = await self.api.update(REPLICASETS, metadata_of(rs).get("namespace"), body)
            if step.replicas != old_size:
                operation = step.operation or ("up" if old_size < step.replicas else "down")
                self.background.emit(d, "Normal", "ScalingReplicaSet",
                                     f"Scaled {operation} replica set {step.name} from {old_size} "
                                     f"to {step.replicas}")
        new = by_name[metadata_of(new_rs)["name"]] if new_rs is not None else None
        return new, [by_name[metadata_of(rs)["name"]] for rs in old_rss]

    async def _clean_up(self, d: Obj, old_rss: Sequence[Obj]) -> None:
        for rs in core.replica_sets_to_clean_up(d, old_rss):
            try:
                await self.api.delete(REPLICASETS, metadata_of(rs).get("namespace"), metadata_of(rs)["name"])
            except ApiError as exc:
                if exc.code != 404:
                    raise

    async def _sync_status(self, d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> None:
        status = core.calculate_status(d, [*old_rss, new_rs], new_rs, self.clock())
        if core.status_changed(d, status):
            d["status"] = status
            await self._write(d)

    async def _sync_rollout_status(self, d: Obj, new_rs: Obj | None,
                                   old_rss: Sequence[Obj]) -> float | None:
        now = self.clock()
        status = core.rollout_status(d, new_rs, old_rss, now)
        if not core.status_changed(d, status):
            return core.stuck_requeue_after(d, status, now)
        d["status"] = status
        await self._write(d)
        return None

    async def _write(self, d: Obj) -> Obj:
        """UpdateStatus, then the revision annotation if the status write did not keep it.

        Upstream's status endpoint for Deployments keeps metadata changes; svcnet's
        (like most status strategies) ignores them, so the annotation goes by patch.
        """
        namespace, name = metadata_of(d).get("namespace"), metadata_of(d)["name"]
        wanted = annotations_of(d).get(core.REVISION)
        written = await self.api.update_status(DEPLOYMENTS, namespace, d)
        if wanted is not None and annotations_of(written).get(core.REVISION) != wanted:
            written = await self.api.patch(
                DEPLOYMENTS, namespace, name,
                {"metadata": {"annotations": {core.REVISION: wanted},
                              "resourceVersion": metadata_of(written).get("resourceVersion")}},
                patch_type="merge")
        return written

