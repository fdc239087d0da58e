"""Recording changes between syncs: kube-proxy's service and endpoints change trackers.

Event handlers only call service_update / endpoint_slice_update / node_update;
they never touch rules. Each call keeps the latest objects and compares the
proxy-relevant view of the affected Service (its ServicePortInfos, its
endpoints, in every IP family) with the view at the last sync: an edit that
changes nothing the proxy uses (a label, an annotation, a status condition) or
that is undone before the next sync leaves nothing pending. checkout() then
hands the sync loop the current objects and the set of services that really
changed, which is what makes partial syncs possible (KEP-3453); a change of the
node's topology labels, or force_full_sync() after a failed apply, makes the
next sync full.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api.objects import annotations_of, labels_of, name_of, namespace_of, slice_service_key
from svcnet.proxy.model import (
    ANNOTATION_TRIGGER_TIME,
    IPV4,
    EndpointInfo,
    ServicePortInfo,
    ServicePortName,
    endpoints_by_port,
    service_port_infos,
)

Obj = Mapping[str, Any]

TOPOLOGY_LABEL_PREFIX = "topology.kubernetes.io/"


@dataclass(frozen=True)
class SyncInput:
    """What one sync works from."""

    services: tuple[Obj, ...]
    slices: tuple[Obj, ...]
    node_labels: Mapping[str, str]
    changed: frozenset[str] | None  # "namespace/name" of changed services; None = sync everything
    # Slices' last-change-trigger-time annotations per changed service (network programming latency).
    trigger_times: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    conntrack_cleanup_required: bool = False  # a changed service has a UDP port

    @property
    def full(self) -> bool:
        return self.changed is None


def _key(obj: Obj) -> str:
    return f"{namespace_of(obj) or 'default'}/{name_of(obj)}"


ServiceView = tuple[tuple[ServicePortInfo, ...], ...]
EndpointsView = tuple[tuple[tuple[ServicePortName, tuple[EndpointInfo, ...]], ...], ...]


class ChangeTracker:
    """Accumulates Service/EndpointSlice/Node events for one node's proxy."""

    def __init__(self, node_name: str, families: Iterable[str] = (IPV4,)) -> None:
        self.node_name = node_name
        self.families = tuple(families)
        self._services: dict[str, Obj] = {}
        self._slices: dict[str, dict[str, Obj]] = {}  # service key -> slice name -> slice
        self._node_labels: dict[str, str] = {}
        self._synced_services: dict[str, ServiceView] = {}
        self._synced_endpoints: dict[str, EndpointsView] = {}
        # Pending keys with the view computed when their last event arrived (checkout reuses it).
        self._pending_services: dict[str, ServiceView] = {}
        self._pending_endpoints: dict[str, EndpointsView] = {}
        self._trigger_times: dict[str, list[str]] = {}
        self._needs_full_sync = True  # nothing has been written yet

    # --- views -------------------------------------------------------------------------------------------

    def _service_view(self, key: str) -> ServiceView:
        service = self._services.get(key)
        if service is None:
            return ()
        return tuple(service_port_infos(service, family) for family in self.families)

    def _endpoints_view(self, key: str) -> EndpointsView:
        slices = list(self._slices.get(key, {}).values())
        if not slices:
            return ()
        return tuple(
            tuple(sorted(endpoints_by_port(slices, family, self.node_name).items()))
            for family in self.families
        )

    # --- events ------------------------------------------------------------------------------------------

    def service_update(self, old: Obj | None, new: Obj | None) -> bool:
        """A Service was added (old None), updated, or deleted (new None). True if a sync is due."""
        current = new if new is not None else old
        if current is None:
            return self.pending
        key = _key(current)
        if new is None:
            self._services.pop(key, None)
        else:
            self._services[key] = new
        view = self._service_view(key)
        if view != self._synced_services.get(key, ()):
            self._pending_services[key] = view
        else:
            self._pending_services.pop(key, None)
        return self.pending

    def endpoint_slice_update(self, endpoint_slice: Obj, removed: bool = False) -> bool:
        """An EndpointSlice was added/updated, or deleted (removed=True). True if a sync is due."""
        key, slice_name = slice_service_key(endpoint_slice), name_of(endpoint_slice)
        if key is None or not slice_name:
            return self.pending  # not tied to a Service (or unnamed): kube-proxy ignores it
        by_name = self._slices.setdefault(key, {})
        if removed:
            by_name.pop(slice_name, None)
            if not by_name:
                del self._slices[key]
        else:
            by_name[slice_name] = endpoint_slice
        view = self._endpoints_view(key)
        if view != self._synced_endpoints.get(key, ()):
            self._pending_endpoints[key] = view
            trigger = annotations_of(endpoint_slice).get(ANNOTATION_TRIGGER_TIME)
            if trigger and not removed:
                self._trigger_times.setdefault(key, []).append(trigger)
        else:
            self._pending_endpoints.pop(key, None)
            self._trigger_times.pop(key, None)
        return self.pending

    def node_update(self, node: Obj | None) -> bool:
        """This node changed; new topology labels re-decide every service, so the next sync is full."""
        labels = dict(labels_of(node))
        topology = {k: v for k, v in labels.items() if k.startswith(TOPOLOGY_LABEL_PREFIX)}
        old_topology = {k: v for k, v in self._node_labels.items() if k.startswith(TOPOLOGY_LABEL_PREFIX)}
        self._node_labels = labels
        if topology != old_topology:
            self._needs_full_sync = True
        return self.pending

    def force_full_sync(self) -> None:
        """The last apply failed (or rules were flushed behind our back): rewrite everything next time."""
        self._needs_full_sync = True

    @property
    def pending(self) -> bool:
        return self._needs_full_sync or bool(self._pending_services) or bool(self._pending_endpoints)

    # --- what the last checkout made current (the proxy's model, per service) ---------------------------

    def synced_service_keys(self) -> frozenset[str]:
        """"namespace/name" of every service or slice group as of the last checkout."""
        return frozenset(self._synced_services) | frozenset(self._synced_endpoints)

    def synced_service_ports(self, key: str, family: str) -> tuple[ServicePortInfo, ...]:
        """The service's ports in one family as of the last checkout (empty when it has none)."""
        view = self._synced_services.get(key)
        return view[self.families.index(family)] if view else ()

    def synced_endpoints(self, key: str, family: str) -> dict[ServicePortName, tuple[EndpointInfo, ...]]:
        """The service's endpoints per port in one family as of the last checkout."""
        view = self._synced_endpoints.get(key)
        return dict(view[self.families.index(family)]) if view else {}

    # --- sync --------------------------------------------------------------------------------------------

    def checkout(self, *, include_objects: bool = True) -> SyncInput:
        """Everything a sync needs; what was pending is now considered synced.

        include_objects=False leaves SyncInput.services/slices empty: a sync loop that
        reads the per-service model (synced_service_ports, synced_endpoints) does not
        need them, and collecting 10,000 objects costs more than a partial sync should.
        """
        changed_keys = set(self._pending_services) | set(self._pending_endpoints)
        udp = False
        for key in changed_keys:
            before = self._synced_services.get(key, ())
            after = self._pending_services.get(key, before)
            udp = udp or any(info.protocol == "UDP" for view in (*before, *after) for info in view)
        for key, view in self._pending_services.items():
            if view:
                self._synced_services[key] = view
            else:
                self._synced_services.pop(key, None)
        for key, view in self._pending_endpoints.items():
            if view:
                self._synced_endpoints[key] = view
            else:
                self._synced_endpoints.pop(key, None)
        services: tuple[Obj, ...] = ()
        slices: tuple[Obj, ...] = ()
        if include_objects:
            services = tuple(self._services[k] for k in sorted(self._services))
            slices = tuple(s for k in sorted(self._slices) for _, s in sorted(self._slices[k].items()))
        result = SyncInput(
            services=services,
            slices=slices,
            node_labels=dict(self._node_labels),
            changed=None if self._needs_full_sync else frozenset(changed_keys),
            trigger_times={k: tuple(v) for k, v in self._trigger_times.items() if k in changed_keys},
            conntrack_cleanup_required=udp,
        )
        self._pending_services.clear()
        self._pending_endpoints.clear()
        self._trigger_times.clear()
        self._needs_full_sync = False
        return result
