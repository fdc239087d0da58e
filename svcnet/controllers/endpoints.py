"""The Endpoints controller: the legacy core/v1 Endpoints object of each Service with a selector.

As kube-controller-manager's endpoint controller: the object is named after
the Service, ready pods go to addresses and the others to notReadyAddresses,
subsets are repacked and sorted (svcnet.core.endpoints.desired_subsets),
more than 1000 addresses are truncated with the over-capacity annotation, and
the object is deleted when its Service is. Services without a selector keep
whatever Endpoints their users write; ExternalName Services get none.

At start, every existing Endpoints object is looked at once, so one left
behind by a Service deleted while the controller was down is removed too.
"""
from __future__ import annotations

import logging
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import annotations_of
from svcnet.client.informer import object_key, split_key
from svcnet.controllers.base import ENDPOINTS, PODS, SERVICES, Controller
from svcnet.controllers.endpointslice import RecentWrites, ServicePodHandlers, ServicePodIndex
from svcnet.core import endpoints as core

log = logging.getLogger("svcnet.controllers.endpoints")

Obj = dict[str, Any]


class EndpointsController(ServicePodHandlers, Controller):
    name = "endpoints"
    workers = 5  # kube-controller-manager's --concurrent-endpoint-syncs default

    def setup(self) -> None:
        self.services = self.informers.informer(SERVICES)
        self.pods = self.informers.informer(PODS)
        self.endpoints = self.informers.informer(ENDPOINTS)
        self.index = ServicePodIndex(self.services, self.pods)
        self.recent = RecentWrites()
        self.trigger_states: dict[str, core.TriggerState] = {}
        self.services.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                  on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)
        self.endpoints.add_handler(on_add=self._endpoints_listed, on_update=self._endpoints_updated,
                                   on_delete=self._endpoints_deleted)

    # ------------------------------------------------------------ handlers

    def _endpoints_listed(self, endpoints: Obj) -> None:
        key = object_key(endpoints)
        self.recent.observe(key, endpoints)
        # Only the first list: a user may create Endpoints before their Service (upstream's
        # checkLeftoverEndpoints runs once at start for the same reason).
        if self.endpoints.has_synced():
            return
        annotations = annotations_of(endpoints)
        if core.LEADER_ELECTION_ANNOTATION not in annotations:
            self.queue.add(key)

    def _endpoints_updated(self, old: Obj, new: Obj) -> None:
        self.recent.observe(object_key(new), new)

    def _endpoints_deleted(self, endpoints: Obj) -> None:
        key = object_key(endpoints)
        if not self.recent.observe(key, endpoints, gone=True):
            self.queue.add(key)  # deleted by someone else: recreate it if its Service wants one

    # ----------------------------------------------------------- reconcile
    def _current(self, key: str) -> Obj | None:
        namespace, name = split_key(key)
        cached = self.endpoints.get(namespace, name)
        view = self.recent.view(key, [cached] if cached is not None else [])
        return view[0] if view else None

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        if service is None:
            self.trigger_states.pop(key, None)
            current = self._current(key)
            try:
                await self.api.delete(ENDPOINTS, namespace, name)
            except ApiError as exc:
                if exc.code != 404:
                    raise
            if current is not None:
                self.recent.deleted(key, current)
            return None
        if not core.manages_endpoints(service):
            return None
        pods = self.index.pods_for(service)
        trigger_time, self.trigger_states[key] = core.next_trigger_time(
            self.trigger_states.get(key), service, pods)
        subsets = core.desired_subsets(service, pods)
        current = self._current(key)
        wanted = core.endpoints_update(service, current, subsets, trigger_time)
        if wanted is None:
            return None
        try:
            if current is None:
                written = await self.api.create(ENDPOINTS, namespace, wanted)
            else:
                written = await self.api.update(ENDPOINTS, namespace, wanted)
        except ApiError as exc:
            self.recent.forget(key)
            verb = "create" if current is None else "update"
            reason = "FailedToCreateEndpoint" if current is None else "FailedToUpdateEndpoint"
            await self.events.emit(wanted, "Warning", reason,
                                   f"Failed to {verb} endpoint {key}: {exc.message}")
            raise
        self.recent.wrote(key, written)
        return None
