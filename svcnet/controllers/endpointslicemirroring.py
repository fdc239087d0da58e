"""The EndpointSlice mirroring controller: hand-written Endpoints of selector-less Services, as slices.

As kube-controller-manager's endpointslicemirroring controller
(pkg/controller/endpointslicemirroring/endpointslicemirroring_controller.go):
the work queue holds Endpoints keys (namespace/name, the Service's name too).
Endpoints events enqueue their key when the object is (or was) mirrorable;
Service events enqueue it when a selector-less Service appears or goes, or
gains or loses its selector; events on slices this controller manages
enqueue their Endpoints unless they only echo its own write. reconcile()
deletes the mirrored slices when the Endpoints, its Service or the right to
mirror is gone, and otherwise writes what
svcnet.core.endpoints.mirroring.plan_mirrored_slices asks for.
"""
from __future__ import annotations

import logging
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import slice_service_key
from svcnet.client.informer import split_key
from svcnet.controllers.base import ENDPOINTS, ENDPOINTSLICES, SERVICES, Controller
from svcnet.controllers.endpointslice import RecentWrites, add_index_once, delete_slice
from svcnet.core.endpoints import mirroring as core
from svcnet.core.endpoints.selection import service_selector

log = logging.getLogger("svcnet.controllers.endpointslicemirroring")

Obj = dict[str, Any]

MIRRORED_SLICE_INDEX = "svcnet.endpointslicemirroring/endpoints"


def _mirrored_slice_keys(slice_: Obj) -> list[str]:
    key = slice_service_key(slice_)
    return [key] if key and core.mirrored_by_controller(slice_) else []


class EndpointSliceMirroringController(Controller):
    name = "endpointslicemirroring"
    workers = 5  # kube-controller-manager's --mirroring-concurrent-service-endpoint-syncs default

    def setup(self) -> None:
        self.services = self.informers.informer(SERVICES)
        self.endpoints = self.informers.informer(ENDPOINTS)
        self.slices = self.informers.informer(ENDPOINTSLICES)
        add_index_once(self.slices, MIRRORED_SLICE_INDEX, _mirrored_slice_keys)
        self.recent = RecentWrites()
        self.services.add_handler(on_add=self._service_added, on_update=self._service_updated,
                                  on_delete=self._service_added)
        self.endpoints.add_handler(on_add=self._endpoints_changed, on_update=self._endpoints_updated,
                                   on_delete=self._endpoints_changed)
        self.slices.add_handler(on_add=self._slice_changed, on_update=self._slice_updated,
                                on_delete=lambda slice_: self._slice_changed(slice_, gone=True))

    # ------------------------------------------------------------ handlers

    def _service_added(self, service: Obj) -> None:
        if not service_selector(service):
            self.enqueue(service)

    def _service_updated(self, old: Obj, new: Obj) -> None:
        if bool(service_selector(old)) != bool(service_selector(new)):
            self.enqueue(new)

    def _endpoints_changed(self, endpoints: Obj) -> None:
        if core.should_mirror(endpoints):
            self.enqueue(endpoints)

    def _endpoints_updated(self, old: Obj, new: Obj) -> None:
        if core.should_mirror(old) or core.should_mirror(new):
            self.enqueue(new)  # a skip-mirror label added: the mirrored slices must go

    def _slice_changed(self, slice_: Obj, gone: bool = False) -> None:
        key = slice_service_key(slice_)
        if key and core.mirrored_by_controller(slice_) and not self.recent.observe(key, slice_, gone=gone):
            self.queue.add(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        old_key, new_key = slice_service_key(old), slice_service_key(new)
        if old_key != new_key or core.mirrored_by_controller(old) != core.mirrored_by_controller(new):
            for key in {old_key, new_key} - {None}:
                self.queue.add(str(key))  # relabelled or taken over: both sides look again
            return
        self._slice_changed(new)

    # ----------------------------------------------------------- reconcile

    def _mirrored_slices(self, key: str) -> list[Obj]:
        return self.recent.view(key, self.slices.by_index(MIRRORED_SLICE_INDEX, key))

    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key)

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        endpoints = self.endpoints.get(namespace, name)
        service = self.services.get(namespace, name)
        if not core.should_mirror(endpoints) or not core.mirrors_for_service(service):
            for slice_ in self._mirrored_slices(key):
                await self._delete_slice(key, namespace, slice_)
            return None
        assert endpoints is not None
        plan = core.plan_mirrored_slices(endpoints, self._mirrored_slices(key))
        await self._report_skipped(endpoints, plan)
        try:
            await self._apply(key, namespace, endpoints, plan)
        except ApiError:
            self.recent.forget(key)  # re-read everything from the cache on the retry
            raise
        return None

    async def _report_skipped(self, endpoints: Obj, plan: core.MirrorPlan) -> None:
        """The Warning events upstream records on the Endpoints (events.go)."""
        if plan.invalid_addresses:
            await self.events.emit(endpoints, "Warning", "InvalidIPAddress",
                                   f"Skipped {plan.invalid_addresses} invalid IP addresses when mirroring "
                                   "to EndpointSlices")
        if plan.skipped_addresses > plan.invalid_addresses:
            await self.events.emit(endpoints, "Warning", "TooManyAddressesToMirror",
                                   f"A max of {core.MAX_ENDPOINTS_PER_SUBSET} addresses can be mirrored to "
                                   f"EndpointSlices per Endpoints subset. {plan.skipped_addresses} addresses "
                                   "were skipped")

    async def _apply(self, key: str, namespace: str | None, endpoints: Obj, plan: core.MirrorPlan) -> None:
        # No new slices for an Endpoints object on its way out (finalize in upstream's reconciler).
        if not endpoints.get("metadata", {}).get("deletionTimestamp"):
            for slice_ in plan.to_create:
                self.recent.wrote(key, await self.api.create(ENDPOINTSLICES, namespace, slice_))
        for slice_ in plan.to_update:
            self.recent.wrote(key, await self.api.update(ENDPOINTSLICES, namespace, slice_))
        for slice_ in plan.to_delete:
            await self._delete_slice(key, namespace, slice_)

    async def _delete_slice(self, key: str, namespace: str | None, slice_: Obj) -> None:
        await delete_slice(self.api, self.recent, key, namespace, slice_)
