"""The legacy core/v1 Endpoints object of a Service: subsets, repacking, truncation.

What kube-controller-manager's endpoints controller writes: one Endpoints
object named after the Service, its addresses grouped into subsets by the
ports they serve (upstream's RepackSubsets), cut at 1000 addresses with an
over-capacity annotation. Only the Service's primary IP family appears, and
terminating pods only when the Service publishes not-ready addresses.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from svcnet.api.objects import (
    annotations_of,
    is_headless,
    is_pod_ready,
    labels_of,
    metadata_of,
    spec_of,
    status_of,
)
from svcnet.core.endpoints.pods import (
    LABEL_HEADLESS,
    PortTuple,
    endpoint_port,
    find_port,
    is_ipv6,
    pod_ips,
    pod_target_ref,
    port_tuple,
    service_ip_set,
    set_headless_label,
    should_pod_be_in_endpoints,
    should_set_hostname,
    sorted_pods,
)
from svcnet.core.endpoints.triggertime import meta_annotations, with_trigger_time

Obj = dict[str, Any]

ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
OVER_CAPACITY_TRUNCATED = "truncated"
# Endpoints used as a leader-election lock carry this; the controllers leave such objects alone.
LEADER_ELECTION_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

MAX_ENDPOINTS_ADDRESSES = 1000  # the Endpoints object's capacity before truncation


# ------------------------------------------------------------------ addresses

def _endpoint_address_ip(service: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    """The pod IP of the Service's primary family (headless without families: the podIP's)."""
    families = spec_of(service).get("ipFamilies") or []
    if families:
        want_v6 = families[0] == "IPv6"
    elif service_ip_set(service):
        want_v6 = is_ipv6(str(spec_of(service)["clusterIP"]))
    else:
        want_v6 = is_ipv6(str(status_of(pod).get("podIP") or ""))
    for ip in pod_ips(pod):
        if is_ipv6(ip) == want_v6:
            return ip
    return None


def _endpoint_address(service: Mapping[str, Any], pod: Mapping[str, Any], ip: str) -> Obj:
    address: Obj = {"ip": ip}
    if should_set_hostname(pod, service):
        address["hostname"] = spec_of(pod)["hostname"]
    if spec_of(pod).get("nodeName"):
        address["nodeName"] = spec_of(pod)["nodeName"]
    address["targetRef"] = pod_target_ref(pod)
    return address


def desired_subsets(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The Endpoints subsets for a Service with a selector, repacked into canonical form."""
    publish_not_ready = bool(spec_of(service).get("publishNotReadyAddresses"))
    service_ports = spec_of(service).get("ports") or []
    entries: list[tuple[Obj, Obj | None, bool]] = []  # (address, port or None, ready)
    for pod in sorted_pods(pods):
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
            port = endpoint_port(service_port, number)
            if not port["name"]:
                del port["name"]  # EndpointPort.name is omitempty
            entries.append((address, port, ready))
    return repack_subsets(entries)


# -------------------------------------------------------------------- subsets

_AddressKey = tuple[str, str]  # (ip, target uid)


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
    by_port: dict[PortTuple | None, dict[_AddressKey, bool]] = {}
    port_objects: dict[PortTuple, Obj] = {}
    for address, port, ready in entries:
        key = _address_key(address)
        all_addresses.setdefault(key, address)
        port_key = None if port is None else port_tuple(port)
        if port is not None and port_key is not None:
            port_objects.setdefault(port_key, port)
        readiness = by_port.setdefault(port_key, {})
        if readiness.get(key, True):
            readiness[key] = ready  # not ready always trumps ready
    groups: dict[frozenset[tuple[_AddressKey, bool]], list[PortTuple]] = {}
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
    return (tuple(port_tuple(p) for p in subset.get("ports") or []),
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


# ------------------------------------------------------------------ the object

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
               "metadata": {"name": metadata_of(service).get("name"),
                            "namespace": metadata_of(service).get("namespace")}}
    new["subsets"] = copy.deepcopy(subsets)
    if not new["subsets"]:
        del new["subsets"]
    md = new["metadata"]
    labels = dict(service_labels)
    set_headless_label(labels, service)
    md["labels"] = labels
    if not labels:
        md.pop("labels")
    with_trigger_time(new, trigger_time)
    if truncate_subsets(new.get("subsets") or []):
        meta_annotations(new)[ANNOTATION_OVER_CAPACITY] = OVER_CAPACITY_TRUNCATED
    else:
        annotations = annotations_of(new)
        annotations.pop(ANNOTATION_OVER_CAPACITY, None)
        if not annotations:
            md.pop("annotations", None)
    return new
