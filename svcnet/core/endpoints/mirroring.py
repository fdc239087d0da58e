"""EndpointSlices mirrored from user-written Endpoints: pure decisions over plain objects.

kube-controller-manager's endpointslicemirroring controller
(pkg/controller/endpointslicemirroring: reconciler.go, reconciler_helpers.go,
utils.go). A Service without a selector gets no computed endpoints; whoever
writes its core/v1 Endpoints by hand expects the proxies (which read only
EndpointSlices) to route to them. So each such Endpoints object is copied
into slices:

- only Endpoints whose Service exists and has no selector, without the
  `endpointslice.kubernetes.io/skip-mirror: "true"` label and without the
  leader-election annotation (should_mirror, mirrors_for_service);
- one slice per (address type, port set): subsets with the same ports share
  a slice; `addresses` become ready endpoints, `notReadyAddresses`
  not-ready ones; an IP that does not parse is skipped (and counted);
- at most 1000 addresses of each subset are mirrored, and at most 1000
  endpoints per slice (upstream's --mirroring-max-endpoints-per-subset);
- slices are labelled `kubernetes.io/service-name` and
  `endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`,
  carry the Endpoints' other labels and annotations (without the
  trigger-time and last-applied ones) and are owned by the Endpoints object;
- per port set the first existing slice is kept and rewritten only when its
  endpoints, labels or annotations differ; the others are deleted, and a
  slice about to be deleted is reused instead of creating one of the same
  address type (recycleSlices).

svcnet differs only in order: upstream fills a slice from a Go map (any
order); svcnet keeps the Endpoints' order, first occurrence of an address.
"""
from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api.objects import LABEL_SERVICE_NAME, annotations_of, labels_of, metadata_of, new_controller_ref
from svcnet.core.endpoints.legacy import LEADER_ELECTION_ANNOTATION
from svcnet.core.endpoints.selection import service_selector
from svcnet.core.endpoints.slices import (
    LABEL_MANAGED_BY,
    EndpointKey,
    endpoint_key,
    endpoints_equal_beyond_key,
    port_set_key,
    slice_name_prefix,
)

Obj = dict[str, Any]

MIRRORING_CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
LABEL_SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
MAX_ENDPOINTS_PER_SUBSET = 1000  # kube-controller-manager's --mirroring-max-endpoints-per-subset default
# Annotations of the Endpoints that are not copied to its slices.
_UNMIRRORED_ANNOTATIONS = frozenset({"endpoints.kubernetes.io/last-change-trigger-time",
                                     "kubectl.kubernetes.io/last-applied-configuration"})
_RESERVED_LABELS = frozenset({LABEL_SERVICE_NAME, LABEL_MANAGED_BY})

# A group of mirrored slices: (addressType, the port set as port_set_key gives it).
MirrorKey = tuple[str, tuple[Any, ...]]


def should_mirror(endpoints: Mapping[str, Any] | None) -> bool:
    """Upstream's shouldMirror: not skipped by label, not a leader-election lock."""
    if endpoints is None:
        return False
    if labels_of(endpoints).get(LABEL_SKIP_MIRROR) == "true":
        return False
    return LEADER_ELECTION_ANNOTATION not in annotations_of(endpoints)


def mirrors_for_service(service: Mapping[str, Any] | None) -> bool:
    """Only a Service without a selector has its Endpoints mirrored (others get computed slices)."""
    return service is not None and not service_selector(service)


def mirrored_by_controller(slice_: Mapping[str, Any]) -> bool:
    return labels_of(slice_).get(LABEL_MANAGED_BY) == MIRRORING_CONTROLLER_NAME


def mirror_key_of_slice(slice_: Mapping[str, Any]) -> MirrorKey:
    return (str(slice_.get("addressType") or "IPv4"), port_set_key(slice_.get("ports")))


# ------------------------------------------------------------- desired state

def _slice_ports(subset_ports: Iterable[Mapping[str, Any]] | None) -> list[Obj]:
    """Endpoints ports as EndpointSlice ports (upstream's epPortsToEpsPorts)."""
    ports = []
    for p in subset_ports or []:
        port: Obj = {"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP"}
        if p.get("appProtocol") is not None:
            port["appProtocol"] = p["appProtocol"]
        ports.append(port)
    return ports


def _address_endpoint(address: Mapping[str, Any], ready: bool) -> tuple[str, Obj] | None:
    """(addressType, endpoint) for an Endpoints address; None when its IP does not parse."""
    try:
        ip = ipaddress.ip_address(str(address.get("ip") or ""))
    except ValueError:
        return None
    endpoint: Obj = {"addresses": [str(ip)], "conditions": {"ready": ready}}
    if address.get("hostname"):
        endpoint["hostname"] = address["hostname"]
    if address.get("nodeName"):
        endpoint["nodeName"] = address["nodeName"]
    if address.get("targetRef"):
        endpoint["targetRef"] = copy.deepcopy(address["targetRef"])
    return ("IPv6" if ip.version == 6 else "IPv4"), endpoint


@dataclass
class DesiredMirror:
    """What the Endpoints object asks for: endpoints and ports per slice group, and what was skipped."""

    endpoints: dict[MirrorKey, dict[EndpointKey, Obj]] = field(default_factory=dict)
    ports: dict[MirrorKey, list[Obj]] = field(default_factory=dict)
    invalid_addresses: int = 0
    skipped_addresses: int = 0  # over the per-subset limit or invalid


def desired_mirror(endpoints: Mapping[str, Any], max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> DesiredMirror:
    desired = DesiredMirror()
    for subset in endpoints.get("subsets") or []:
        ports = _slice_ports(subset.get("ports"))
        keys = {t: (t, port_set_key(ports)) for t in ("IPv4", "IPv6")}
        for key in keys.values():
            desired.endpoints.setdefault(key, {})
            desired.ports[key] = ports
        addresses = [(a, True) for a in subset.get("addresses") or []]
        addresses += [(a, False) for a in subset.get("notReadyAddresses") or []]
        added = 0
        for address, ready in addresses:
            if added >= max_per_subset:
                break
            converted = _address_endpoint(address, ready)
            if converted is None:
                desired.invalid_addresses += 1
                continue
            address_type, endpoint = converted
            group = desired.endpoints[keys[address_type]]
            group.pop(endpoint_key(endpoint), None)  # a later duplicate wins, as a set insert does
            group[endpoint_key(endpoint)] = endpoint
            added += 1
        desired.skipped_addresses += len(addresses) - added
    return desired


# -------------------------------------------------------------------- slices

def mirrored_labels(endpoints: Mapping[str, Any]) -> dict[str, str]:
    labels = {k: v for k, v in labels_of(endpoints).items() if k not in _RESERVED_LABELS}
    labels[LABEL_SERVICE_NAME] = str(metadata_of(endpoints).get("name"))
    labels[LABEL_MANAGED_BY] = MIRRORING_CONTROLLER_NAME
    return labels


def mirrored_annotations(endpoints: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in annotations_of(endpoints).items() if k not in _UNMIRRORED_ANNOTATIONS}


def new_mirrored_slice(endpoints: Mapping[str, Any], key: MirrorKey, ports: list[Obj],
                       members: list[Obj], name: str | None = None) -> Obj:
    md = metadata_of(endpoints)
    meta: Obj = {"namespace": md.get("namespace"), "labels": mirrored_labels(endpoints),
                 "ownerReferences": [new_controller_ref(endpoints, "v1", "Endpoints")]}
    annotations = mirrored_annotations(endpoints)
    if annotations:
        meta["annotations"] = annotations
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = slice_name_prefix(str(md.get("name")))
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
            "addressType": key[0], "endpoints": copy.deepcopy(members), "ports": copy.deepcopy(ports)}


def _in_sync(slice_: Mapping[str, Any], endpoints: Mapping[str, Any], wanted: Mapping[EndpointKey, Obj]) -> bool:
    """The slice already holds exactly the wanted endpoints, labels and annotations (totalChanges is zero)."""
    have = {endpoint_key(e): e for e in slice_.get("endpoints") or []}
    if have.keys() != wanted.keys() or len(have) != len(slice_.get("endpoints") or []):
        return False
    if any(not endpoints_equal_beyond_key(have[k], wanted[k]) for k in wanted):
        return False
    return (labels_of(slice_) == mirrored_labels(endpoints)
            and annotations_of(slice_) == mirrored_annotations(endpoints))


@dataclass(frozen=True)
class MirrorPlan:
    """The writes that bring an Endpoints object's mirrored slices to the desired state.

    to_create have generateName; to_update are whole objects for PUT (a reused
    slice keeps its name); to_delete are existing objects. invalid_addresses
    and skipped_addresses are for the Warning events upstream records.
    """

    to_create: tuple[Obj, ...] = ()
    to_update: tuple[Obj, ...] = ()
    to_delete: tuple[Obj, ...] = ()
    invalid_addresses: int = 0
    skipped_addresses: int = 0

    @property
    def empty(self) -> bool:
        return not (self.to_create or self.to_update or self.to_delete)


def plan_mirrored_slices(endpoints: Mapping[str, Any], existing: Iterable[Mapping[str, Any]],
                         max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> MirrorPlan:
    """Upstream's reconcile: the slice writes that mirror endpoints, given the slices mirrored so far."""
    desired = desired_mirror(endpoints, max_per_subset)
    by_key: dict[MirrorKey, list[Mapping[str, Any]]] = {}
    for slice_ in sorted(existing, key=lambda s: str(metadata_of(s).get("name"))):
        by_key.setdefault(mirror_key_of_slice(slice_), []).append(slice_)
    creates: list[Obj] = []
    updates: list[Obj] = []
    deletes: list[Obj] = [dict(s) for k, group in by_key.items() if k not in desired.endpoints for s in group]
    for key in sorted(desired.endpoints, key=repr):
        wanted = desired.endpoints[key]
        current = by_key.get(key, [])
        if not wanted:
            deletes += [dict(s) for s in current]
            continue
        deletes += [dict(s) for s in current[1:]]
        if current and _in_sync(current[0], endpoints, wanted):
            continue
        members = list(wanted.values())[:max_per_subset]
        if current:
            updated = new_mirrored_slice(endpoints, key, desired.ports[key], members,
                                         name=str(metadata_of(current[0]).get("name")))
            updated["metadata"]["resourceVersion"] = metadata_of(current[0]).get("resourceVersion")
            updates.append(updated)
        else:
            creates.append(new_mirrored_slice(endpoints, key, desired.ports[key], members))
    creates, recycled, deletes = _recycle(creates, deletes)
    return MirrorPlan(tuple(creates), tuple(updates + recycled), tuple(deletes),
                      desired.invalid_addresses, desired.skipped_addresses)


def _recycle(creates: list[Obj], deletes: list[Obj]) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """Upstream's recycleSlices: a create becomes an update of a slice of its address type being deleted."""
    remaining_creates: list[Obj] = []
    recycled: list[Obj] = []
    deletes = list(deletes)
    for slice_ in creates:
        victim = next((d for d in deletes if d.get("addressType") == slice_["addressType"]), None)
        if victim is None:
            remaining_creates.append(slice_)
            continue
        deletes.remove(victim)
        reused = copy.deepcopy(slice_)
        reused["metadata"].pop("generateName", None)
        reused["metadata"]["name"] = metadata_of(victim).get("name")
        recycled.append(reused)
    return remaining_creates, recycled, deletes
