"""The persistent-volume binder and the two storage protection controllers
(kube-controller-manager's persistentvolume-binder, pv-protection and pvc-protection).

Thin over svcnet.core.pvbinder: the binder syncs claims ("pvc/<ns>/<name>") and
volumes ("pv/<name>") from its caches and writes bindings in upstream's order
(the volume's claimRef, its phase, the claim's volumeName, the claim's status);
a Pending claim is looked at again every 15 s, upstream's sync period. The
protection controllers take kubernetes.io/pv-protection off a deleted volume
that is not Bound, and kubernetes.io/pvc-protection off a deleted claim no
running pod mounts.
"""
from __future__ import annotations

import copy
import logging
import time
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import finalizers_of, metadata_of, name_of, spec_of, status_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import PODS, Api, Controller, InformerFactory, resource
from svcnet.controllers.replicaset import BackgroundEvents
from svcnet.core import pvbinder as core

log = logging.getLogger("svcnet.controllers.pvbinder")

Obj = dict[str, Any]

PERSISTENTVOLUMES = resource("", "persistentvolumes")
PERSISTENTVOLUMECLAIMS = resource("", "persistentvolumeclaims")
SYNC_PERIOD = 15.0  # kube-controller-manager's --pvclaimbinder-sync-period
CONFLICT_RETRY_SECONDS = 0.05


def _claim_key(namespace: str, name: str) -> str:
    return f"pvc/{namespace}/{name}"


class PersistentVolumeBinder(Controller):
    name = "persistentvolume-controller"
    workers = 1  # bindings race each other: one at a time, as upstream's single claim and volume workers

    def __init__(self, api: Api, informers: InformerFactory, *, clock: Any = None) -> None:
        super().__init__(api, informers, clock=clock)
        self.background = BackgroundEvents(self, time.monotonic)

    def setup(self) -> None:
        self.volumes = self.informers.informer(PERSISTENTVOLUMES)
        self.claims = self.informers.informer(PERSISTENTVOLUMECLAIMS)
        self.volumes.add_handler(on_add=self._volume_changed, on_update=lambda old, new: self._volume_changed(new),
                                 on_delete=self._volume_changed)
        self.claims.add_handler(on_add=self._claim_changed, on_update=lambda old, new: self._claim_changed(new),
                                on_delete=self._claim_changed)

    def _volume_changed(self, volume: Obj) -> None:
        self.queue.add(f"pv/{name_of(volume)}")
        ref = spec_of(volume).get("claimRef")
        if isinstance(ref, dict) and ref.get("name"):
            self.queue.add(_claim_key(str(ref.get("namespace") or ""), str(ref["name"])))
        # A new or freed volume may be what a Pending claim waits for.
        for claim in self.claims.list():
            if status_of(claim).get("phase") in (None, "", core.PENDING):
                self.queue.add(_claim_key(metadata_of(claim).get("namespace") or "", name_of(claim)))

    def _claim_changed(self, claim: Obj) -> None:
        self.queue.add(_claim_key(metadata_of(claim).get("namespace") or "", name_of(claim)))
        volume = spec_of(claim).get("volumeName")
        if volume:
            self.queue.add(f"pv/{volume}")
        for pv in self.volumes.list():
            ref = spec_of(pv).get("claimRef") or {}
            if ref.get("name") == name_of(claim) and ref.get("namespace") == metadata_of(claim).get("namespace"):
                self.queue.add(f"pv/{name_of(pv)}")

    async def reconcile(self, key: str) -> float | None:
        if key.startswith("pv/"):
            return await self.requeue_on_conflict(self._sync_volume, key[3:], CONFLICT_RETRY_SECONDS)
        return await self.requeue_on_conflict(self._sync_claim, key[4:], CONFLICT_RETRY_SECONDS)

    # ------------------------------------------------------------------ claims
    async def _sync_claim(self, claim_key: str) -> float | None:
        namespace, name = split_key(claim_key)
        claim = self.claims.get(namespace, name)
        if claim is None:
            return None
        volumes = {name_of(v): v for v in self.volumes.list()}
        decision = core.decide_claim(claim, volumes)
        if decision.event is not None:
            self.background.emit(claim, decision.event.type, decision.event.reason, decision.event.message)
        if decision.volume is not None:
            await self._bind(claim, decision.volume)
            return None
        if decision.phase and status_of(claim).get("phase") != decision.phase:
            body = copy.deepcopy(claim)
            body.setdefault("status", {})["phase"] = decision.phase
            await self.api.update_status(PERSISTENTVOLUMECLAIMS, namespace, body)
        return SYNC_PERIOD if decision.phase == core.PENDING else None

    async def _bind(self, claim: Obj, volume: Obj) -> None:
        """bind(): volume claimRef, volume phase, claim volumeName, claim status, each only if needed."""
        if core.volume_needs_binding(volume, claim):
            body = copy.deepcopy(volume)
            if spec_of(body).get("claimRef") is None:
                body["metadata"].setdefault("annotations", {})[core.BOUND_BY_CONTROLLER] = "yes"
            body["spec"]["claimRef"] = core.claim_ref(claim)
            volume = await self.api.update(PERSISTENTVOLUMES, None, body)
        if status_of(volume).get("phase") != core.BOUND:
            body = copy.deepcopy(volume)
            body["status"] = {**status_of(volume), "phase": core.BOUND}
            body["status"].pop("message", None)
            body["status"].pop("reason", None)
            await self.api.update_status(PERSISTENTVOLUMES, None, body)
        namespace = metadata_of(claim).get("namespace")
        if core.claim_needs_binding(claim, volume):
            body = copy.deepcopy(claim)
            annotations = body["metadata"].setdefault("annotations", {})
            if not spec_of(claim).get("volumeName"):
                annotations[core.BOUND_BY_CONTROLLER] = "yes"
            annotations[core.BIND_COMPLETED] = "yes"
            body["spec"]["volumeName"] = name_of(volume)
            claim = await self.api.update(PERSISTENTVOLUMECLAIMS, namespace, body)
        status = core.bound_claim_status(claim, volume)
        if status != status_of(claim):
            body = copy.deepcopy(claim)
            body["status"] = status
            await self.api.update_status(PERSISTENTVOLUMECLAIMS, namespace, body)
            log.info("claim %s/%s bound to volume %s", namespace, name_of(claim), name_of(volume))

    # ----------------------------------------------------------------- volumes
    async def _sync_volume(self, name: str) -> float | None:
        volume = self.volumes.get(None, name)
        if volume is None:
            return None
        ref = spec_of(volume).get("claimRef")
        claim = None
        if isinstance(ref, dict) and ref.get("name"):
            claim = self.claims.get(str(ref.get("namespace") or ""), str(ref["name"]))
        decision = core.decide_volume(volume, claim)
        if decision.event is not None:
            self.background.emit(volume, decision.event.type, decision.event.reason, decision.event.message)
        if decision.unbind:
            body = copy.deepcopy(volume)
            body["spec"].pop("claimRef", None)
            body["metadata"].get("annotations", {}).pop(core.BOUND_BY_CONTROLLER, None)
            volume = await self.api.update(PERSISTENTVOLUMES, None, body)
        status = status_of(volume)
        if decision.phase and (status.get("phase") != decision.phase
                               or (status.get("message") or "") != decision.message):
            body = copy.deepcopy(volume)
            body["status"] = {"phase": decision.phase, "lastPhaseTransitionTime": _rfc3339(self.clock())}
            if decision.message:
                body["status"]["message"] = decision.message
            await self.api.update_status(PERSISTENTVOLUMES, None, body)
        return None


def _rfc3339(now: Any) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _remove_finalizer(api: Api, res: Any, obj: Obj, finalizer: str) -> None:
    body = copy.deepcopy(obj)
    body["metadata"]["finalizers"] = [f for f in finalizers_of(obj) if f != finalizer]
    try:
        await api.update(res, metadata_of(obj).get("namespace"), body)
    except ApiError as exc:
        if exc.code != 404:
            raise


class PersistentVolumeProtection(Controller):
    name = "pv-protection-controller"

    def setup(self) -> None:
        self.volumes = self.informers.informer(PERSISTENTVOLUMES)
        self.volumes.add_handler(**self.enqueue_handlers())

    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key, CONFLICT_RETRY_SECONDS)

    async def _sync(self, key: str) -> float | None:
        volume = self.volumes.get(None, split_key(key)[1])
        if volume is None or not metadata_of(volume).get("deletionTimestamp"):
            return None
        if core.PV_PROTECTION in finalizers_of(volume) and status_of(volume).get("phase") != core.BOUND:
            await _remove_finalizer(self.api, PERSISTENTVOLUMES, volume, core.PV_PROTECTION)
        return None


class ClaimProtection(Controller):
    name = "pvc-protection-controller"

    def setup(self) -> None:
        self.claims = self.informers.informer(PERSISTENTVOLUMECLAIMS)
        self.pods = self.informers.informer(PODS)
        self.claims.add_handler(**self.enqueue_handlers())
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new),
                              on_delete=self._pod_changed)

    def _pod_changed(self, pod: Obj) -> None:
        namespace = metadata_of(pod).get("namespace") or ""
        for volume in spec_of(pod).get("volumes") or []:
            source = volume.get("persistentVolumeClaim") if isinstance(volume, dict) else None
            if isinstance(source, dict) and source.get("claimName"):
                self.queue.add(f"{namespace}/{source['claimName']}")

    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key, CONFLICT_RETRY_SECONDS)

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        claim = self.claims.get(namespace, name)
        if claim is None or not metadata_of(claim).get("deletionTimestamp"):
            return None
        if core.PVC_PROTECTION not in finalizers_of(claim):
            return None
        if core.pods_using_claim(self.pods.list(), claim):
            return None  # a pod's change brings the claim back here
        # The cache may not have a pod created just now: ask the API server before letting go,
        # as upstream's askAPIServer.
        live = await self.api.list(PODS, namespace)
        if core.pods_using_claim(live.get("items") or [], claim):
            return None
        await _remove_finalizer(self.api, PERSISTENTVOLUMECLAIMS, claim, core.PVC_PROTECTION)
        return None

