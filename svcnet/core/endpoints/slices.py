"""EndpointSlices for a Service: each pod's endpoint, slice objects, and the reconciler's plan.

kube-controller-manager's EndpointSlice controller (the k8s.io/endpointslice
reconciler), pure:

- one group of slices per address type (IP family) of the Service, and within
  it one group per port set: ports with a named targetPort resolve per pod, so
  pods that number a named port differently land in different slices;
- each pod's endpoint: conditions ready/serving/terminating, hostname when the
  pod's subdomain names the Service, nodeName, zone, targetRef;
- plan_endpoint_slices(): the minimal-churn plan (keep endpoints in the slice
  that holds them, update in place, fill changed slices before touching
  unchanged ones, at most 100 endpoints per slice, reuse a slice that would be
  deleted instead of creating a new one, a placeholder slice when there is
  nothing).
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.objects import (
    LABEL_SERVICE_NAME,
    is_being_deleted,
    is_pod_ready,
    labels_of,
    metadata_of,
    new_controller_ref,
    owner_references_of,
    spec_of,
)
from svcnet.core.endpoints.hints import HintEvent, SliceWrites, TopologyCache, reconcile_hints
from svcnet.core.endpoints.pods import (
    LABEL_HEADLESS,
    PortTuple,
    endpoint_port,
    find_port,
    is_ipv6,
    normal_ip,
    pod_ips,
    pod_target_ref,
    port_tuple,
    set_headless_label,
    should_pod_be_in_endpoints,
    should_set_hostname,
    sorted_pods,
)
from svcnet.core.endpoints.triggertime import with_trigger_time

Obj = dict[str, Any]

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_ZONE = "topology.kubernetes.io/zone"

MAX_ENDPOINTS_PER_SLICE = 100  # kube-controller-manager's --max-endpoints-per-slice default

_RESERVED_SLICE_LABELS = frozenset({LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS})


# ------------------------------------------------------------------- ports

def slice_ports_for_pod(service: Mapping[str, Any], pod: Mapping[str, Any]) -> list[Obj]:
    """The EndpointSlice ports this pod serves: one per Service port whose target resolves."""
    ports: list[Obj] = []
    for service_port in spec_of(service).get("ports") or []:
        number = find_port(pod, service_port)
        if number is None:
            continue  # upstream logs and leaves the port out for this pod
        ports.append(endpoint_port(service_port, number))
    return ports


def port_set_key(ports: Iterable[Mapping[str, Any]] | None) -> tuple[PortTuple, ...]:
    """Identifies a group of slices: the same ports in any order (upstream's PortMapKey)."""
    return tuple(sorted(port_tuple(p) for p in ports or []))


# ----------------------------------------------------------- address types

def address_types(service: Mapping[str, Any]) -> tuple[str, ...]:
    """One EndpointSlice addressType per IP family of the Service, in family order."""
    families = spec_of(service).get("ipFamilies") or []
    types = [{"IPv4": "IPv4", "IPv6": "IPv6"}[f] for f in families if f in ("IPv4", "IPv6")]
    if types:
        return tuple(dict.fromkeys(types))
    # A Service written before the API server defaulted ipFamilies: guess as upstream does.
    cluster_ip = spec_of(service).get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        return ("IPv6",) if is_ipv6(cluster_ip) else ("IPv4",)
    return ("IPv4", "IPv6")


def _addresses_of_type(pod: Mapping[str, Any], address_type: str) -> list[str]:
    want_v6 = address_type == "IPv6"
    return [normal_ip(ip) for ip in pod_ips(pod) if is_ipv6(ip) == want_v6]


# --------------------------------------------------------------- slice endpoints

def slice_endpoint(pod: Mapping[str, Any], node: Mapping[str, Any] | None, service: Mapping[str, Any],
                   address_type: str) -> Obj:
    """The discovery/v1 Endpoint for a pod (its addresses may be empty for this address type)."""
    serving = is_pod_ready(pod)
    terminating = is_being_deleted(pod)
    # ready is never true for a terminating pod, unless the Service publishes not-ready addresses.
    ready = bool(spec_of(service).get("publishNotReadyAddresses")) or (serving and not terminating)
    endpoint: Obj = {
        "addresses": _addresses_of_type(pod, address_type),
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }
    if should_set_hostname(pod, service):
        endpoint["hostname"] = spec_of(pod)["hostname"]
    endpoint["targetRef"] = pod_target_ref(pod)
    node_name = spec_of(pod).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    zone = labels_of(node).get(LABEL_ZONE)
    if zone:
        endpoint["zone"] = zone
    return endpoint


EndpointKey = tuple[tuple[str, ...], str, str, str]


def endpoint_key(endpoint: Mapping[str, Any]) -> EndpointKey:
    """What identifies an endpoint across syncs: addresses, hostname and the pod it stands for.

    Conditions, node and zone are left out on purpose, so a readiness flip is an
    in-place update of the slice that already holds the endpoint.
    """
    ref = endpoint.get("targetRef") or {}
    return (tuple(sorted(endpoint.get("addresses") or [])), str(endpoint.get("hostname") or ""),
            str(ref.get("namespace") or ""), str(ref.get("name") or ""))


def _endpoint_attributes(endpoint: Mapping[str, Any]) -> tuple[Any, ...]:
    conditions = endpoint.get("conditions") or {}
    ref = {k: v for k, v in (endpoint.get("targetRef") or {}).items() if k != "resourceVersion"}
    return (endpoint.get("nodeName"), endpoint.get("zone"), conditions.get("ready"),
            conditions.get("serving"), conditions.get("terminating"), sorted(ref.items()))


def endpoints_equal_beyond_key(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Upstream's EndpointsEqualBeyondHash: node, zone, conditions and targetRef (sans resourceVersion)."""
    return _endpoint_attributes(a) == _endpoint_attributes(b)


# -------------------------------------------------------------- slice objects

def slice_labels(existing: Mapping[str, Any] | None, service: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
    """(the labels a slice should carry, whether its Service-copied labels changed).

    A slice carries the Service's labels, except the reserved ones, plus
    service-name, managed-by and (for headless Services) the headless label.
    Only a change in the copied labels counts, as upstream's setEndpointSliceLabels.
    """
    current = {k: v for k, v in labels_of(existing).items()
               if k not in _RESERVED_SLICE_LABELS}
    wanted = {k: v for k, v in labels_of(service).items() if k not in _RESERVED_SLICE_LABELS}
    changed = current != wanted
    set_headless_label(wanted, service)
    wanted[LABEL_SERVICE_NAME] = str(metadata_of(service).get("name"))
    wanted[LABEL_MANAGED_BY] = CONTROLLER_NAME
    return wanted, changed


def service_owner_reference(service: Mapping[str, Any]) -> Obj:
    return new_controller_ref(service, "v1", "Service")


def slice_name_prefix(service_name: str) -> str:
    """generateName "<svc>-", or the bare name when the dash would make it too long."""
    prefix = f"{service_name}-"
    return prefix if len(prefix) <= 253 else service_name


def new_slice(service: Mapping[str, Any], ports: list[Obj], address_type: str) -> Obj:
    labels, _ = slice_labels(None, service)
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"generateName": slice_name_prefix(str(metadata_of(service).get("name"))),
                     "namespace": metadata_of(service).get("namespace"), "labels": labels,
                     "ownerReferences": [service_owner_reference(service)]},
        "addressType": address_type,
        "endpoints": [],
        "ports": copy.deepcopy(ports),
    }


def owned_by(slice_: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    uid = metadata_of(service).get("uid")
    return any(ref.get("uid") == uid and ref.get("kind") == "Service" and ref.get("apiVersion") == "v1"
               for ref in owner_references_of(slice_))


def managed_by_controller(slice_: Mapping[str, Any]) -> bool:
    return labels_of(slice_).get(LABEL_MANAGED_BY) == CONTROLLER_NAME


def _is_placeholder_of(slice_: Mapping[str, Any], placeholder: Mapping[str, Any]) -> bool:
    """Upstream compares namespace, labels, owner references, addressType, ports and endpoints."""
    return (metadata_of(slice_).get("namespace") == metadata_of(placeholder).get("namespace")
            and labels_of(slice_) == labels_of(placeholder)
            and owner_references_of(slice_) == owner_references_of(placeholder)
            and slice_.get("addressType") == placeholder.get("addressType")
            and not slice_.get("ports") and not slice_.get("endpoints"))


# --------------------------------------------------------------- slice planning

@dataclass(frozen=True)
class SlicePlan:
    """The writes that bring a Service's slices to the desired state.

    to_create have generateName and no name; to_update are whole objects
    for PUT (with the resourceVersion they were read at, except a slice
    reused in place of a create); to_delete are the existing objects.
    skipped_pods names pods left out because their Node is not known yet:
    the caller should look again later, as upstream requeues.
    """

    to_create: tuple[Obj, ...] = ()
    to_update: tuple[Obj, ...] = ()
    to_delete: tuple[Obj, ...] = ()
    skipped_pods: tuple[str, ...] = ()
    events: tuple[HintEvent, ...] = ()  # topology hints turned on or off, and why

    @property
    def empty(self) -> bool:
        return not (self.to_create or self.to_update or self.to_delete)


def plan_endpoint_slices(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
                         nodes: Mapping[str, Mapping[str, Any]], existing: Iterable[Mapping[str, Any]], *,
                         trigger_time: dt.datetime | None = None,
                         max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
                         topology: TopologyCache | None = None) -> SlicePlan:
    """Plan the EndpointSlice writes for a Service with a selector, as upstream's reconciler.

    pods are the pods the selector matches; nodes maps node name to Node for
    the pods' nodes (for the zone); existing are the slices labelled with the
    Service's name and managed by this controller. Existing objects are not
    modified: the plan holds copies. topology is the Auto mode's state (upstream
    passes none when the TopologyAwareHints gate is off); PreferClose needs none.
    """
    pods = sorted_pods(pods)
    supported = address_types(service)
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    to_delete: list[Obj] = []
    for slice_ in sorted(existing, key=lambda s: str(metadata_of(s).get("name"))):
        if slice_.get("addressType") not in supported:
            to_delete.append(copy.deepcopy(dict(slice_)))
        else:
            by_type.setdefault(str(slice_.get("addressType")), []).append(slice_)
    creates: list[Obj] = []
    updates: list[Obj] = []
    skipped: set[str] = set()
    events: list[HintEvent] = []
    for address_type in supported:
        of_type = by_type.get(address_type, [])
        c, u, d, s = _plan_address_type(service, pods, nodes, of_type, address_type, max_endpoints_per_slice)
        touched = {metadata_of(x).get("name") for x in u + d}
        writes = SliceWrites(c, u, [x for x in of_type if metadata_of(x).get("name") not in touched])
        events += reconcile_hints(service, address_type, writes, topology)
        creates += writes.creates
        updates += writes.updates
        to_delete += d
        skipped |= s
    creates, updates, to_delete = _reuse_deleted_slices(service, creates, updates, to_delete)
    if is_being_deleted(service):
        creates = []  # do not race the garbage collector with new slices for a dying Service
    for slice_ in creates + updates:
        with_trigger_time(slice_, trigger_time)
    return SlicePlan(tuple(creates), tuple(updates), tuple(to_delete), tuple(sorted(skipped)), tuple(events))


def _plan_address_type(service: Mapping[str, Any], pods: list[Mapping[str, Any]],
                       nodes: Mapping[str, Mapping[str, Any]], existing: list[Mapping[str, Any]],
                       address_type: str, max_per_slice: int,
                       ) -> tuple[list[Obj], list[Obj], list[Obj], set[str]]:
    to_delete: list[Obj] = []
    existing_by_ports: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for slice_ in existing:
        if owned_by(slice_, service):
            existing_by_ports.setdefault(port_set_key(slice_.get("ports")), []).append(slice_)
        else:
            to_delete.append(copy.deepcopy(dict(slice_)))  # left by an older Service of the same name

    desired: dict[tuple[Any, ...], dict[EndpointKey, Obj]] = {}
    desired_ports: dict[tuple[Any, ...], list[Obj]] = {}
    skipped: set[str] = set()
    publish_not_ready = bool(spec_of(service).get("publishNotReadyAddresses"))
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = slice_ports_for_pod(service, pod)
        key = port_set_key(ports)
        group = desired.setdefault(key, {})
        desired_ports.setdefault(key, ports)
        node_name = spec_of(pod).get("nodeName")
        node = nodes.get(node_name) if node_name else None
        if node_name and node is None and not publish_not_ready:
            # Upstream leaves the pod out until its Node is known, and retries.
            skipped.add(str(metadata_of(pod).get("name")))
            continue
        endpoint = slice_endpoint(pod, node, service, address_type)
        if endpoint["addresses"]:
            group[endpoint_key(endpoint)] = endpoint

    to_create: list[Obj] = []
    to_update: list[Obj] = []
    for key, wanted in desired.items():
        c, u, d = _plan_port_group(service, existing_by_ports.get(key, []), wanted,
                                   desired_ports[key], address_type, max_per_slice)
        to_create += c
        to_update += u
        to_delete += d
    for key, slices in existing_by_ports.items():
        if key not in desired:
            to_delete += [copy.deepcopy(dict(s)) for s in slices]

    # A Service with no endpoints of this type still gets one empty slice: a placeholder.
    if len(existing) == len(to_delete) and not to_create:
        placeholder = new_slice(service, [], address_type)
        if len(to_delete) == 1 and _is_placeholder_of(to_delete[0], placeholder):
            to_delete = []
        else:
            to_create.append(placeholder)
    return to_create, to_update, to_delete, skipped


def _plan_port_group(service: Mapping[str, Any], existing: list[Mapping[str, Any]],
                     wanted: dict[EndpointKey, Obj], ports: list[Obj], address_type: str,
                     max_per_slice: int) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """Upstream's reconcileByPortMapping, with deterministic order instead of Go map order."""
    remaining = dict(wanted)
    by_name: dict[str, Obj | Mapping[str, Any]] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    # 1. Keep each still-wanted endpoint where it is, refreshed; drop the rest.
    for slice_ in existing:
        name = str(metadata_of(slice_).get("name"))
        by_name[name] = slice_
        kept: list[Obj] = []
        endpoint_changed = False
        for endpoint in slice_.get("endpoints") or []:
            key = endpoint_key(endpoint)
            got = remaining.pop(key, None)
            if got is None:
                continue
            kept.append(got)
            if not endpoints_equal_beyond_key(got, endpoint):
                endpoint_changed = True
        labels, labels_changed = slice_labels(slice_, service)
        if endpoint_changed or len(kept) != len(slice_.get("endpoints") or []):
            if not kept:
                to_delete.append(name)
            else:
                updated = copy.deepcopy(dict(slice_))
                updated["endpoints"] = kept
                updated["metadata"]["labels"] = labels
                by_name[name] = updated
                to_update.append(name)
        elif labels_changed:
            updated = copy.deepcopy(dict(slice_))
            updated["metadata"]["labels"] = labels
            by_name[name] = updated
            to_update.append(name)
        else:
            unchanged.append(name)

    leftovers = list(remaining.values())
    # 2. Fill the slices being written anyway, fullest first: no extra writes.
    if leftovers and to_update:
        for name in sorted(to_update, key=lambda n: -len(by_name[n].get("endpoints") or [])):
            slice_ = by_name[name]
            while leftovers and len(slice_["endpoints"]) < max_per_slice:
                slice_["endpoints"].append(leftovers.pop(0))

    # 3. Then fit the rest into the unchanged slice that ends up closest to full, or new slices.
    to_create: list[Obj] = []
    while leftovers:
        target: Obj | None = None
        if len(leftovers) < max_per_slice and unchanged:
            target_name = _slice_to_fill([by_name[n] for n in unchanged], len(leftovers), max_per_slice)
            if target_name is not None:
                target = copy.deepcopy(dict(by_name[target_name]))
                by_name[target_name] = target
                unchanged.remove(target_name)
                to_update.append(target_name)
        if target is None:
            target = new_slice(service, ports, address_type)
            to_create.append(target)
        while leftovers and len(target["endpoints"]) < max_per_slice:
            target["endpoints"].append(leftovers.pop(0))
    return (to_create, [dict(by_name[n]) for n in to_update],
            [copy.deepcopy(dict(by_name[n])) for n in to_delete])


def _slice_to_fill(slices: list[Mapping[str, Any]], count: int, max_per_slice: int) -> str | None:
    """The slice that would be closest to full after taking count endpoints, if any can."""
    best: str | None = None
    best_room = max_per_slice
    for slice_ in slices:
        room = max_per_slice - (count + len(slice_.get("endpoints") or []))
        if 0 <= room < best_room:
            best, best_room = str(metadata_of(slice_).get("name")), room
            if room == 0:
                break
    return best


def _reuse_deleted_slices(service: Mapping[str, Any], creates: list[Obj], updates: list[Obj],
                          deletes: list[Obj]) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """Turn a create plus a delete of the same addressType into one update of the old slice."""
    remaining_deletes: list[Obj] = []
    for old in deletes:
        match = next((c for c in reversed(creates) if c.get("addressType") == old.get("addressType")), None)
        if match is not None and owned_by(old, service):
            creates.remove(match)
            md = match["metadata"]
            md["name"] = metadata_of(old).get("name")
            md.pop("generateName", None)
            updates.append(match)  # an unconditional update, as upstream's
        else:
            remaining_deletes.append(old)
    return creates, updates, remaining_deletes

