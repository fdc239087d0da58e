"""What EndpointSlices and Endpoints a Service should have: pure decisions over plain objects.

This is the shared logic of kube-controller-manager's EndpointSlice controller
(the k8s.io/endpointslice reconciler) and the legacy Endpoints controller:

- which pods count (skip pods without an IP and terminal pods; the Endpoints
  object also skips terminating pods unless publishNotReadyAddresses is set);
- each pod's endpoint: conditions ready/serving/terminating, hostname when the
  pod's subdomain names the Service, nodeName, zone, targetRef;
- ports with a named targetPort resolved per pod, so pods that number a named
  port differently land in different slices (one group of slices per port set);
- plan_endpoint_slices(): the reconciler's minimal-churn plan (keep endpoints in
  the slice that holds them, update in place, fill changed slices before
  touching unchanged ones, at most 100 endpoints per slice, reuse a slice that
  would be deleted instead of creating a new one, a placeholder slice when
  there is nothing);
- endpoints_update(): the Endpoints object, subsets repacked and sorted as
  upstream's RepackSubsets does, truncated at 1000 addresses;
- the last-change-trigger-time annotation (TriggerTimes).

Nothing here does I/O; the controllers feed it informer caches and write the result.
"""
from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api.objects import (
    LABEL_SERVICE_NAME,
    annotations_of,
    condition_of,
    is_headless,
    is_pod_ready,
    labels_of,
    metadata_of,
    new_controller_ref,
    owner_references_of,
    spec_of,
    status_of,
)

Obj = dict[str, Any]

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_ZONE = "topology.kubernetes.io/zone"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LEADER_ELECTION_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
OVER_CAPACITY_TRUNCATED = "truncated"

MAX_ENDPOINTS_PER_SLICE = 100  # kube-controller-manager's --max-endpoints-per-slice default
MAX_ENDPOINTS_ADDRESSES = 1000  # the Endpoints object's capacity before truncation

_RESERVED_SLICE_LABELS = frozenset({LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS})


# ----------------------------------------------------------------- small reads




def service_selector(service: Mapping[str, Any]) -> Mapping[str, str]:
    """The selector map; empty means none (the API drops an empty map, as Go's omitempty does)."""
    return spec_of(service).get("selector") or {}


def manages_endpoints(service: Mapping[str, Any]) -> bool:
    """Whether the controllers compute endpoints for this Service at all.

    Services without a selector get user-written Endpoints/EndpointSlices; an
    ExternalName Service gets none (upstream issue 105986).
    """
    return bool(service_selector(service)) and spec_of(service).get("type") != "ExternalName"


def selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """The Service's selector matches the pod (same namespace, every key=value present)."""
    selector = service_selector(service)
    if not selector or metadata_of(service).get("namespace") != metadata_of(pod).get("namespace"):
        return False
    labels = labels_of(pod)
    return all(labels.get(k) == v for k, v in selector.items())


def selector_index_keys(service: Mapping[str, Any]) -> list[str]:
    """One "namespace/key=value" of the selector: any pod it selects carries that label.

    Indexing Services by it (and pods by every label, pod_label_index_keys)
    turns "which Services select this pod" into a few dict look-ups instead of
    a scan of every Service in the namespace.
    """
    selector = service_selector(service)
    if not selector:
        return []
    key = min(selector)
    return [f"{metadata_of(service).get('namespace')}/{key}={selector[key]}"]


def pod_label_index_keys(pod: Mapping[str, Any]) -> list[str]:
    namespace = metadata_of(pod).get("namespace")
    return [f"{namespace}/{k}={v}" for k, v in labels_of(pod).items()]


class LabelIndex:
    """Object keys by "namespace/key=value", so a selector's matches cost a look-up, not a scan.

    candidates() answers from the smallest bucket among the selector's pairs:
    a superset of the matches, which the caller filters with selects().
    """

    def __init__(self) -> None:
        self._buckets: dict[str, set[str]] = {}
        self._pairs_of: dict[str, list[str]] = {}

    def put(self, key: str, obj: Mapping[str, Any]) -> None:
        self.remove(key)
        pairs = pod_label_index_keys(obj)
        self._pairs_of[key] = pairs
        for pair in pairs:
            self._buckets.setdefault(pair, set()).add(key)

    def remove(self, key: str) -> None:
        for pair in self._pairs_of.pop(key, []):
            bucket = self._buckets.get(pair)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._buckets[pair]

    def candidates(self, namespace: str, selector: Mapping[str, str]) -> set[str]:
        if not selector:
            return set()
        smallest: set[str] | None = None
        for k, v in selector.items():
            bucket = self._buckets.get(f"{namespace}/{k}={v}")
            if not bucket:
                return set()
            if smallest is None or len(bucket) < len(smallest):
                smallest = bucket
        return set(smallest or ())

    def __len__(self) -> int:
        return len(self._pairs_of)


def _is_terminal(pod: Mapping[str, Any]) -> bool:
    return status_of(pod).get("phase") in ("Succeeded", "Failed")


def pod_ips(pod: Mapping[str, Any]) -> list[str]:
    """status.podIPs, or podIP alone (the API server fills podIPs from podIP the same way)."""
    status = status_of(pod)
    ips = [str(entry.get("ip")) for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def should_pod_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """Upstream's ShouldPodBeInEndpoints: not terminal, has an IP, terminating only if asked."""
    if _is_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not metadata_of(pod).get("deletionTimestamp")


def should_set_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    hostname = spec_of(pod).get("hostname")
    return bool(hostname) and spec_of(pod).get("subdomain") == metadata_of(service).get("name") \
        and metadata_of(pod).get("namespace") == metadata_of(service).get("namespace")


def pod_endpoints_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[bool, bool]:
    """(the pod's endpoint may differ, the Services selecting it may differ), as upstream's."""
    old_md, new_md = metadata_of(old), metadata_of(new)
    labels_changed = (old_md.get("labels") or {}) != (new_md.get("labels") or {}) \
        or spec_of(old).get("hostname") != spec_of(new).get("hostname") \
        or spec_of(old).get("subdomain") != spec_of(new).get("subdomain")
    pod_changed = (old_md.get("deletionTimestamp") != new_md.get("deletionTimestamp")
                   or is_pod_ready(old) != is_pod_ready(new)
                   or pod_ips(old) != pod_ips(new)
                   # Not in upstream's list (kubelet sets these together with the IP), but
                   # svcnet's kubelet doubles may write them separately: cheap to include.
                   or status_of(old).get("phase") != status_of(new).get("phase")
                   or spec_of(old).get("nodeName") != spec_of(new).get("nodeName"))
    return pod_changed, labels_changed


def services_to_update(old_services: set[str], new_services: set[str], pod_changed: bool) -> set[str]:
    """After a label change: all Services if the pod also changed, else only those it joined or left."""
    if pod_changed:
        return old_services | new_services
    return old_services ^ new_services


# ------------------------------------------------------------------- ports

def _is_ipv6(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return ":" in ip


def _normal_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The pod's port for a Service port: a number as is; a name looked up in the containers.

    Named ports are searched in the containers, then in sidecars (init
    containers with restartPolicy Always); the protocol must match too.
    """
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if target is None:
        return None
    protocol = service_port.get("protocol") or "TCP"
    spec = spec_of(pod)
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def service_ip_set(service: Mapping[str, Any]) -> bool:
    return spec_of(service).get("clusterIP") not in (None, "", "None")


def slice_ports_for_pod(service: Mapping[str, Any], pod: Mapping[str, Any]) -> list[Obj]:
    """The EndpointSlice ports this pod serves: one per Service port whose target resolves."""
    ports: list[Obj] = []
    for service_port in spec_of(service).get("ports") or []:
        number = find_port(pod, service_port)
        if number is None:
            continue  # upstream logs and leaves the port out for this pod
        port: Obj = {"name": service_port.get("name") or "", "port": number,
                     "protocol": service_port.get("protocol") or "TCP"}
        if service_port.get("appProtocol") is not None:
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def _port_tuple(port: Mapping[str, Any]) -> tuple[str, int, str, str]:
    return (str(port.get("name") or ""), int(port.get("port") or 0), str(port.get("protocol") or "TCP"),
            str(port.get("appProtocol") or ""))


def port_set_key(ports: Iterable[Mapping[str, Any]] | None) -> tuple[tuple[str, int, str, str], ...]:
    """Identifies a group of slices: the same ports in any order (upstream's PortMapKey)."""
    return tuple(sorted(_port_tuple(p) for p in ports or []))


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
        return ("IPv6",) if _is_ipv6(cluster_ip) else ("IPv4",)
    return ("IPv4", "IPv6")


def _addresses_of_type(pod: Mapping[str, Any], address_type: str) -> list[str]:
    want_v6 = address_type == "IPv6"
    return [_normal_ip(ip) for ip in pod_ips(pod) if _is_ipv6(ip) == want_v6]


# --------------------------------------------------------------- slice endpoints

def slice_endpoint(pod: Mapping[str, Any], node: Mapping[str, Any] | None, service: Mapping[str, Any],
                   address_type: str) -> Obj:
    """The discovery/v1 Endpoint for a pod (its addresses may be empty for this address type)."""
    md = metadata_of(pod)
    serving = is_pod_ready(pod)
    terminating = bool(md.get("deletionTimestamp"))
    # ready is never true for a terminating pod, unless the Service publishes not-ready addresses.
    ready = bool(spec_of(service).get("publishNotReadyAddresses")) or (serving and not terminating)
    endpoint: Obj = {
        "addresses": _addresses_of_type(pod, address_type),
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }
    if should_set_hostname(pod, service):
        endpoint["hostname"] = spec_of(pod)["hostname"]
    endpoint["targetRef"] = {"kind": "Pod", "namespace": md.get("namespace"), "name": md.get("name"),
                             "uid": md.get("uid")}
    node_name = spec_of(pod).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    zone = metadata_of(node).get("labels", {}).get(LABEL_ZONE)
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
    current = {k: v for k, v in metadata_of(existing).get("labels", {}).items()
               if k not in _RESERVED_SLICE_LABELS}
    wanted = {k: v for k, v in labels_of(service).items() if k not in _RESERVED_SLICE_LABELS}
    changed = current != wanted
    if not service_ip_set(service):
        wanted[LABEL_HEADLESS] = ""
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
    a, b = metadata_of(slice_), metadata_of(placeholder)
    return (a.get("namespace") == b.get("namespace")
            and (a.get("labels") or {}) == (b.get("labels") or {})
            and (a.get("ownerReferences") or []) == (b.get("ownerReferences") or [])
            and slice_.get("addressType") == placeholder.get("addressType")
            and not slice_.get("ports") and not slice_.get("endpoints"))


# ------------------------------------------------------------------ trigger time

def format_trigger_time(when: dt.datetime) -> str:
    """Go's RFC3339Nano in UTC: fractional seconds only when there are any, trailing zeros trimmed."""
    when = when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _pod_trigger_time(pod: Mapping[str, Any]) -> dt.datetime | None:
    return _parse_time((condition_of(pod, "Ready") or {}).get("lastTransitionTime"))


@dataclass(frozen=True)
class TriggerState:
    """What a Service's last sync saw: its trigger time and each pod's Ready transition time."""

    service_time: dt.datetime | None
    pod_times: Mapping[str, dt.datetime] = field(default_factory=dict)


def next_trigger_time(previous: TriggerState | None, service: Mapping[str, Any],
                      pods: Iterable[Mapping[str, Any]]) -> tuple[dt.datetime | None, TriggerState]:
    """Upstream's TriggerTimeTracker: (the time to publish, or None to clear it; the new state).

    A Service seen for the first time publishes its creationTimestamp; later,
    the earliest trigger time (pod Ready transitions, Service creation) that
    moved since the previous sync, if any did.
    """
    earliest_changed: dt.datetime | None = None
    pod_times: dict[str, dt.datetime] = {}
    old_pod_times = previous.pod_times if previous else {}
    for pod in pods:
        when = _pod_trigger_time(pod)
        if when is None:
            continue
        name = str(metadata_of(pod).get("name"))
        pod_times[name] = when
        before = old_pod_times.get(name)
        if before is None or when > before:
            earliest_changed = when if earliest_changed is None else min(earliest_changed, when)
    service_time = _parse_time(metadata_of(service).get("creationTimestamp"))
    old_service_time = previous.service_time if previous else None
    if service_time is not None and (old_service_time is None or service_time > old_service_time):
        earliest_changed = service_time if earliest_changed is None else min(earliest_changed, service_time)
    state = TriggerState(service_time, pod_times)
    if previous is None:
        return service_time, state
    return earliest_changed, state


def _with_trigger_time(obj: Obj, trigger_time: dt.datetime | None) -> None:
    annotations = meta_annotations(obj)
    if trigger_time is not None:
        annotations[ANNOTATION_TRIGGER_TIME] = format_trigger_time(trigger_time)
    else:
        annotations.pop(ANNOTATION_TRIGGER_TIME, None)
    if not annotations:
        obj["metadata"].pop("annotations", None)


def meta_annotations(obj: Obj) -> dict[str, str]:
    md = obj.setdefault("metadata", {})
    annotations = md.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
        md["annotations"] = annotations
    return annotations


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

    @property
    def empty(self) -> bool:
        return not (self.to_create or self.to_update or self.to_delete)


def _sorted_pods(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(pods, key=lambda p: str(metadata_of(p).get("name")))


def plan_endpoint_slices(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
                         nodes: Mapping[str, Mapping[str, Any]], existing: Iterable[Mapping[str, Any]], *,
                         trigger_time: dt.datetime | None = None,
                         max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """Plan the EndpointSlice writes for a Service with a selector, as upstream's reconciler.

    pods are the pods the selector matches; nodes maps node name to Node for
    the pods' nodes (for the zone); existing are the slices labelled with the
    Service's name and managed by this controller. Existing objects are not
    modified: the plan holds copies.
    """
    pods = _sorted_pods(pods)
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
    for address_type in supported:
        c, u, d, s = _plan_address_type(service, pods, nodes, by_type.get(address_type, []), address_type,
                                        max_endpoints_per_slice)
        creates += c
        updates += u
        to_delete += d
        skipped |= s
    creates, updates, to_delete = _reuse_deleted_slices(service, creates, updates, to_delete)
    if metadata_of(service).get("deletionTimestamp"):
        creates = []  # do not race the garbage collector with new slices for a dying Service
    for slice_ in creates + updates:
        _with_trigger_time(slice_, trigger_time)
    return SlicePlan(tuple(creates), tuple(updates), tuple(to_delete), tuple(sorted(skipped)))


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


# ------------------------------------------------------------------- Endpoints

def _endpoint_address_ip(service: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    """The pod IP of the Service's primary family (headless without families: the podIP's)."""
    families = spec_of(service).get("ipFamilies") or []
    if families:
        want_v6 = families[0] == "IPv6"
    elif service_ip_set(service):
        want_v6 = _is_ipv6(str(spec_of(service)["clusterIP"]))
    else:
        want_v6 = _is_ipv6(str(status_of(pod).get("podIP") or ""))
    for ip in pod_ips(pod):
        if _is_ipv6(ip) == want_v6:
            return ip
    return None


def _endpoint_address(service: Mapping[str, Any], pod: Mapping[str, Any], ip: str) -> Obj:
    md = metadata_of(pod)
    address: Obj = {"ip": ip}
    if should_set_hostname(pod, service):
        address["hostname"] = spec_of(pod)["hostname"]
    if spec_of(pod).get("nodeName"):
        address["nodeName"] = spec_of(pod)["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": md.get("namespace"), "name": md.get("name"),
                            "uid": md.get("uid")}
    return address


def desired_subsets(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The Endpoints subsets for a Service with a selector, repacked into canonical form."""
    publish_not_ready = bool(spec_of(service).get("publishNotReadyAddresses"))
    service_ports = spec_of(service).get("ports") or []
    entries: list[tuple[Obj, Obj | None, bool]] = []  # (address, port or None, ready)
    for pod in _sorted_pods(pods):
        if not should_pod_be_in_endpoints(pod, include_terminating=publish_not_ready):
            continue
        ip = _endpoint_address_ip(service, pod)
        if ip is None:
            continue  # no IP of the Service's family on this pod
        address = _endpoint_address(service, pod, ip)
        ready = publish_not_ready or is_pod_ready(pod)
        if not service_ports:
            if is_headless(service):
                entries.append((address, None, ready))  # headless Services may have no ports
            continue
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is None:
                continue
            port: Obj = {"name": service_port.get("name") or "", "port": number,
                         "protocol": service_port.get("protocol") or "TCP"}
            if service_port.get("appProtocol") is not None:
                port["appProtocol"] = service_port["appProtocol"]
            if not port["name"]:
                del port["name"]  # EndpointPort.name is omitempty
            entries.append((address, port, ready))
    return repack_subsets(entries)


_AddressKey = tuple[str, str]  # (ip, target uid)
_PortKey = tuple[str, int, str, str]


def _address_key(address: Mapping[str, Any]) -> _AddressKey:
    return (str(address.get("ip")), str((address.get("targetRef") or {}).get("uid") or ""))


def _address_sort_key(address: Mapping[str, Any]) -> tuple[bytes, int, str]:
    # Upstream's LessEndpointAddress: IP bytes first (so "10.244.1.10" < "10.244.1.8"), then UID.
    ref = address.get("targetRef")
    return (str(address.get("ip")).encode(), 0 if ref is None else 1, str((ref or {}).get("uid") or ""))


def repack_subsets(entries: Iterable[tuple[Obj, Obj | None, bool]]) -> list[Obj]:
    """Upstream's RepackSubsets over (address, port, ready) triples.

    Addresses are de-duplicated by IP and pod UID; "not ready" on any port wins
    over "ready"; addresses that serve exactly the same ports share a subset.
    Addresses sort by IP string then UID, as upstream. Upstream orders ports
    and subsets by a hash of their Go representation; svcnet orders them by
    their fields instead (name, port, protocol), which is just as stable.
    """
    all_addresses: dict[_AddressKey, Obj] = {}
    by_port: dict[_PortKey | None, dict[_AddressKey, bool]] = {}
    port_objects: dict[_PortKey, Obj] = {}
    for address, port, ready in entries:
        key = _address_key(address)
        all_addresses.setdefault(key, address)
        port_key = None if port is None else _port_tuple(port)
        if port is not None and port_key is not None:
            port_objects.setdefault(port_key, port)
        readiness = by_port.setdefault(port_key, {})
        if readiness.get(key, True):
            readiness[key] = ready  # not ready always trumps ready
    groups: dict[frozenset[tuple[_AddressKey, bool]], list[_PortKey]] = {}
    for port_key, readiness in by_port.items():
        ports = groups.setdefault(frozenset(readiness.items()), [])
        if port_key is not None:
            ports.append(port_key)
    subsets: list[Obj] = []
    for members, ports in groups.items():
        ready_addresses = sorted((all_addresses[k] for k, ready in members if ready), key=_address_sort_key)
        not_ready = sorted((all_addresses[k] for k, ready in members if not ready), key=_address_sort_key)
        subset: Obj = {}
        if ready_addresses:
            subset["addresses"] = copy.deepcopy(ready_addresses)
        if not_ready:
            subset["notReadyAddresses"] = copy.deepcopy(not_ready)
        if ports:
            subset["ports"] = [copy.deepcopy(port_objects[p]) for p in sorted(ports)]
        subsets.append(subset)
    subsets.sort(key=_subset_sort_key)
    return subsets


def _subset_sort_key(subset: Mapping[str, Any]) -> tuple[Any, ...]:
    return (tuple(_port_tuple(p) for p in subset.get("ports") or []),
            tuple(_address_sort_key(a) for a in subset.get("addresses") or []),
            tuple(_address_sort_key(a) for a in subset.get("notReadyAddresses") or []))


def _comparable_subsets(subsets: Any) -> list[Any]:
    """Subsets with targetRef.resourceVersion dropped and absent lists read as empty."""
    out = []
    for subset in subsets or []:
        addresses = []
        for key in ("addresses", "notReadyAddresses"):
            group = []
            for address in subset.get(key) or []:
                a = dict(address)
                if isinstance(a.get("targetRef"), dict):
                    a["targetRef"] = {k: v for k, v in a["targetRef"].items() if k != "resourceVersion"}
                group.append(a)
            addresses.append(group)
        ports = [{**{"protocol": "TCP"}, **p} for p in subset.get("ports") or []]
        out.append((addresses, ports))
    return out


def truncate_subsets(subsets: list[Obj], capacity: int = MAX_ENDPOINTS_ADDRESSES) -> bool:
    """Cut the subsets to capacity addresses in place, ready ones first, proportionally per subset.

    Returns whether anything was cut (then the over-capacity annotation is set).
    """
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= capacity:
        return False
    truncate_ready = total_ready > capacity
    budget = capacity if truncate_ready else capacity - total_ready
    total = total_ready if truncate_ready else total_not_ready
    can_add = budget
    for subset in subsets:
        field_name = "addresses" if truncate_ready else "notReadyAddresses"
        in_subset = len(subset.get(field_name) or [])
        share = min(math.ceil(in_subset / total * budget), can_add) if total else 0
        kept = (subset.get(field_name) or [])[:share]
        if kept:
            subset[field_name] = kept
        else:
            subset.pop(field_name, None)
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        can_add -= len(kept)
    # A subset left with no address at all would not pass validation: drop it.
    subsets[:] = [s for s in subsets if s.get("addresses") or s.get("notReadyAddresses")]
    return True


def _capacity_annotation_correct(current: Mapping[str, Any]) -> bool:
    count = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or [])
                for s in current.get("subsets") or [])
    if count > MAX_ENDPOINTS_ADDRESSES:
        return False
    return ANNOTATION_OVER_CAPACITY not in annotations_of(current)


def endpoints_update(service: Mapping[str, Any], current: Mapping[str, Any] | None, subsets: list[Obj],
                     trigger_time: dt.datetime | None) -> Obj | None:
    """The Endpoints object to write (create when current is None), or None when it is already right.

    Labels are the Service's (plus the headless label without a cluster IP);
    annotations carry the trigger time and, past 1000 addresses, over-capacity.
    """
    service_labels = dict(labels_of(service))
    if current is not None:
        current_labels = {k: v for k, v in labels_of(current).items() if k != LABEL_HEADLESS}
        if (_comparable_subsets(current.get("subsets")) == _comparable_subsets(subsets)
                and current_labels == service_labels and _capacity_annotation_correct(current)):
            return None
        new: Obj = copy.deepcopy(dict(current))
    else:
        new = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": metadata_of(service).get("name"), "namespace": metadata_of(service).get("namespace")}}
    new["subsets"] = copy.deepcopy(subsets)
    if not new["subsets"]:
        del new["subsets"]
    md = new["metadata"]
    labels = dict(service_labels)
    if service_ip_set(service):
        labels.pop(LABEL_HEADLESS, None)
    else:
        labels[LABEL_HEADLESS] = ""
    md["labels"] = labels
    if not labels:
        md.pop("labels")
    _with_trigger_time(new, trigger_time)
    if truncate_subsets(new.get("subsets") or []):
        meta_annotations(new)[ANNOTATION_OVER_CAPACITY] = OVER_CAPACITY_TRUNCATED
    else:
        annotations = (md.get("annotations") or {})
        annotations.pop(ANNOTATION_OVER_CAPACITY, None)
        if not annotations:
            md.pop("annotations", None)
    return new
