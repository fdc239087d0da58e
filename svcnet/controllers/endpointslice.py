"""The EndpointSlice controller: each Service with a selector gets slices of its pods.

As kube-controller-manager's endpointslice controller: pod events map to the
Services whose selector matches the pod (old and new labels on a relabel),
Service events enqueue the Service, slice events enqueue the Service their
label names (someone else changed or deleted a slice we manage). reconcile()
reads the caches, asks svcnet.core.endpoints.plan_endpoint_slices what to
create, update and delete, and writes exactly that. Topology hints ride on the
same plan: Node events keep a core.TopologyCache of the zones' CPU shares (for
the topology-mode Auto annotation) and re-sync the Services whose hints no
longer fit; the plan's hint events are recorded on the Service.

Two things keep it fast at thousands of Services:
- pod -> Services and Service -> pods are index look-ups (ServicePodIndex),
  never scans of every Service or every pod;
- RecentWrites remembers the slices this controller just wrote, so the next
  sync of the same Service does not wait for the informer to catch up with
  its own writes (upstream waits and retries on a stale cache instead).

The module also holds the pieces the Endpoints controller shares.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of, namespace_of, resource_version, slice_service_key, spec_of, uid_of
from svcnet.client.informer import Informer, object_key, split_key
from svcnet.controllers.base import ENDPOINTSLICES, NODES, PODS, SERVICES, Controller
from svcnet.core import endpoints as core

log = logging.getLogger("svcnet.controllers.endpointslice")

Obj = dict[str, Any]

SERVICE_SELECTOR_INDEX = "svcnet.endpoints/selector-pair"
SLICE_SERVICE_INDEX = "svcnet.endpointslice/service"


def _rv(obj: Obj | None) -> int:
    raw = resource_version(obj)
    return int(raw) if raw.isdigit() else 0



def add_index_once(informer: Informer, name: str, func: Any) -> None:
    """Add an index to a shared informer unless another controller already did."""
    try:
        informer.add_index(name, func)
    except ValueError:
        pass  # same name, same function: the Endpoints and EndpointSlice controllers share it


class ServicePodIndex:
    """Which Services select a pod and which pods a Service selects, by look-up.

    Services are indexed on the shared informer by one selector pair; pods by
    every label in a LabelIndex fed by the pod handlers. Both answers are
    verified with the full selector.
    """

    def __init__(self, services: Informer, pods: Informer) -> None:
        self.services = services
        self.pods = pods
        self.pod_labels = core.LabelIndex()
        add_index_once(services, SERVICE_SELECTOR_INDEX, core.selector_index_keys)

    def track_pod(self, pod: Obj) -> None:
        self.pod_labels.put(object_key(pod), pod)

    def forget_pod(self, pod: Obj) -> None:
        self.pod_labels.remove(object_key(pod))

    def services_for(self, pod: Obj) -> set[str]:
        keys: set[str] = set()
        for pair in core.pod_label_index_keys(pod):
            for service in self.services.by_index(SERVICE_SELECTOR_INDEX, pair):
                if core.selects(service, pod):
                    keys.add(object_key(service))
        return keys

    def pods_for(self, service: Obj) -> list[Obj]:
        namespace = namespace_of(service)
        pods = []
        for key in self.pod_labels.candidates(namespace, core.service_selector(service)):
            pod = self.pods.cache.get_by_key(key)
            if pod is not None and core.selects(service, pod):
                pods.append(pod)
        return pods

    def services_to_sync_on_update(self, old: Obj, new: Obj) -> set[str]:
        """Upstream's GetServicesToUpdateOnPodChange: nothing unless the endpoint or labels changed."""
        if _rv(old) and _rv(old) == _rv(new):
            return set()  # a resync: Services are resynced on their own
        pod_changed, labels_changed = core.pod_endpoints_changed(old, new)
        if not pod_changed and not labels_changed:
            return set()
        if not labels_changed:
            return self.services_for(new)
        return core.services_to_update(self.services_for(old), self.services_for(new), pod_changed)


class RecentWrites:
    """This controller's own writes that the informer cache may not show yet.

    view() lays them over cached objects: a newer written version wins over
    an older cached one, a deleted object is hidden while the cache still has
    it, a created one is shown before the cache has it. An entry is dropped as
    soon as the cache has caught up, so this stays small.
    """

    def __init__(self) -> None:
        self._written: dict[str, dict[str, Obj]] = {}  # group -> name -> object as the server returned it
        self._deleted: dict[str, dict[str, str]] = {}  # group -> name -> uid

    def wrote(self, group: str, obj: Obj) -> None:
        name = str(obj["metadata"]["name"])
        self._written.setdefault(group, {})[name] = obj
        self._deleted.get(group, {}).pop(name, None)

    def deleted(self, group: str, obj: Obj) -> None:
        name = str(obj["metadata"]["name"])
        self._written.get(group, {}).pop(name, None)
        self._deleted.setdefault(group, {})[name] = uid_of(obj)

    def forget(self, group: str) -> None:
        self._written.pop(group, None)
        self._deleted.pop(group, None)

    def observe(self, group: str, obj: Obj, *, gone: bool = False) -> bool:
        """Note a watch event; True when it only reports a write of ours (nothing new to sync)."""
        name = str(metadata_of(obj).get("name"))
        written, deleted = self._written.get(group, {}), self._deleted.get(group, {})
        if gone:
            echo = deleted.pop(name, None) == uid_of(obj) != ""
            written.pop(name, None)
        else:
            mine = written.get(name)
            echo = mine is not None and _rv(mine) == _rv(obj)
            if mine is not None and _rv(obj) >= _rv(mine):
                del written[name]  # the cache has caught up with our write
        self._drop_if_empty(group)
        return echo

    def view(self, group: str, cached: Iterable[Obj]) -> list[Obj]:
        written = self._written.get(group, {})
        deleted = self._deleted.get(group, {})
        out: dict[str, Obj] = {}
        cached = list(cached)
        for name in set(deleted) - {str(o["metadata"]["name"]) for o in cached}:
            del deleted[name]  # the cache has seen it go
        for obj in cached:
            name = str(obj["metadata"]["name"])
            if deleted.get(name) == uid_of(obj):
                continue  # deleted by us; the cache has not seen it go
            mine = written.get(name)
            if mine is not None and _rv(mine) > _rv(obj):
                out[name] = mine
                continue
            written.pop(name, None)  # the cache is as new as our write, or newer
            out[name] = obj
        for name, mine in written.items():
            out.setdefault(name, mine)  # created by us, not in the cache yet
        self._drop_if_empty(group)
        return [out[n] for n in sorted(out)]

    def _drop_if_empty(self, group: str) -> None:
        if not self._written.get(group):
            self._written.pop(group, None)
        if not self._deleted.get(group):
            self._deleted.pop(group, None)

    def __len__(self) -> int:
        return sum(map(len, self._written.values())) + sum(map(len, self._deleted.values()))


class RetryDelays:
    """Per-key growing delays for "look again later" without an error (upstream requeues with backoff)."""

    def __init__(self, base: float = 0.05, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self._tries: dict[str, int] = {}

    def next(self, key: str) -> float:
        tries = self._tries.get(key, 0)
        self._tries[key] = tries + 1
        return min(self.base * (2 ** min(tries, 20)), self.cap)

    def reset(self, key: str) -> None:
        self._tries.pop(key, None)

    def keys(self) -> list[str]:
        return list(self._tries)


class ServicePodHandlers:
    """Pod events enqueue the Services that select the pod (both endpoint controllers use it).

    The class using it provides `index` (a ServicePodIndex) and `queue`.
    """

    index: ServicePodIndex

    def _pod_added(self, pod: Obj) -> None:
        self.index.track_pod(pod)
        for key in self.index.services_for(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self.index.track_pod(new)
        for key in self.index.services_to_sync_on_update(old, new):
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        self.index.forget_pod(pod)
        for key in self.index.services_for(pod):
            self.queue.add(key)


class EndpointSliceController(ServicePodHandlers, Controller):
    name = "endpointslice"
    workers = 5  # kube-controller-manager's --concurrent-service-endpoint-syncs default

    def setup(self) -> None:
        self.services = self.informers.informer(SERVICES)
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.slices = self.informers.informer(ENDPOINTSLICES)
        self.index = ServicePodIndex(self.services, self.pods)
        add_index_once(self.slices, SLICE_SERVICE_INDEX, _managed_slice_service_keys)
        self.recent = RecentWrites()
        self.trigger_states: dict[str, core.TriggerState] = {}
        self.node_waits = RetryDelays()
        self.services.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                  on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)
        self.slices.add_handler(on_add=self._slice_changed, on_update=self._slice_updated,
                                on_delete=lambda slice_: self._slice_changed(slice_, gone=True))
        # Auto topology hints need every Node's zone and CPU (upstream creates the cache while the
        # TopologyAwareHints gate is on, as it is by default in 1.32).
        self.topology = core.TopologyCache()
        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated,
                               on_delete=lambda node: self._node_topology_changed())

    # ------------------------------------------------------------ handlers

    def _slice_changed(self, slice_: Obj, gone: bool = False) -> None:
        key = slice_service_key(slice_)
        if key and core.managed_by_controller(slice_) and not self.recent.observe(key, slice_, gone=gone):
            self.queue.add(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        if core.managed_by_controller(old) and not core.managed_by_controller(new):
            key = slice_service_key(old)
            if key:
                self.queue.add(key)  # someone took our slice: make a new one
        self._slice_changed(new)

    def _node_added(self, node: Obj) -> None:
        # Services that left pods out waiting for their Node: look again now.
        for key in self.node_waits.keys():
            self.queue.add(key)
        self._node_topology_changed()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if core.node_topology_changed(old, new):
            self._node_topology_changed()

    def _node_topology_changed(self) -> None:
        """Upstream checkNodeTopologyDistribution: new zone shares; Services whose hints no longer fit sync."""
        self.topology.set_nodes(self.nodes.cache.list())
        for key in self.topology.overloaded_services():
            self.queue.add(key)

    # ----------------------------------------------------------- reconcile
    def _existing_slices(self, key: str) -> list[Obj]:
        return self.recent.view(key, self.slices.by_index(SLICE_SERVICE_INDEX, key))

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        if service is None:
            await self._service_gone(key, namespace)
            return None
        if not core.manages_endpoints(service):
            self.node_waits.reset(key)
            return None  # selector-less Services keep user-managed slices; ExternalName gets none
        pods = self.index.pods_for(service)
        nodes = {}
        for pod in pods:
            node_name = spec_of(pod).get("nodeName")
            if node_name and node_name not in nodes:
                node = self.nodes.get(None, node_name)
                if node is not None:
                    nodes[node_name] = node
        trigger_time, self.trigger_states[key] = core.next_trigger_time(
            self.trigger_states.get(key), service, pods)
        plan = core.plan_endpoint_slices(service, pods, nodes, self._existing_slices(key),
                                         trigger_time=trigger_time, topology=self.topology)
        try:
            await self._apply(key, namespace, plan)
        except ApiError as exc:
            self.recent.forget(key)  # re-read everything from the cache on the retry
            await self.events.emit(service, "Warning", "FailedToUpdateEndpointSlices",
                                   f"Error updating Endpoint Slices for Service {key}: {exc.message}")
            raise
        for event in plan.events:
            await self.events.emit(service, event.type, event.reason, event.message)
        if plan.skipped_pods:
            log.info("service %s: pods %s wait for their Node", key, ", ".join(plan.skipped_pods))
            return self.node_waits.next(key)
        self.node_waits.reset(key)
        return None

    async def _apply(self, key: str, namespace: str | None, plan: core.SlicePlan) -> None:
        for slice_ in plan.to_create:
            created = await self.api.create(ENDPOINTSLICES, namespace, slice_)
            self.recent.wrote(key, created)
        for slice_ in plan.to_update:
            updated = await self.api.update(ENDPOINTSLICES, namespace, slice_)
            self.recent.wrote(key, updated)
        for slice_ in plan.to_delete:
            await self._delete_slice(key, namespace, slice_)

    async def _delete_slice(self, key: str, namespace: str | None, slice_: Obj) -> None:
        await delete_slice(self.api, self.recent, key, namespace, slice_)

    async def _service_gone(self, key: str, namespace: str | None) -> None:
        """Remove the slices we made for a deleted Service.

        The garbage collector would remove them through their ownerReference;
        doing it here too makes the cleanup as fast as the rest of the controller.
        """
        self.trigger_states.pop(key, None)
        self.node_waits.reset(key)
        self.topology.forget(key)
        for slice_ in self._existing_slices(key):
            await self._delete_slice(key, namespace, slice_)


def _managed_slice_service_keys(slice_: Obj) -> list[str]:
    key = slice_service_key(slice_)
    return [key] if key and core.managed_by_controller(slice_) else []


async def delete_slice(api: Any, recent: RecentWrites, key: str, namespace: str | None, slice_: Obj) -> None:
    """Delete one of a Service's slices (gone already is fine) and remember it went."""
    try:
        await api.delete(ENDPOINTSLICES, namespace, slice_["metadata"]["name"])
    except ApiError as exc:
        if exc.code != 404:
            raise
    recent.deleted(key, slice_)
