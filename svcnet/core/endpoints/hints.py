"""Topology hints on EndpointSlice endpoints (`hints.forZones`), as kube-controller-manager sets them.

Two ways a Service asks for them, as upstream 1.32's EndpointSlice reconciler
(staging/src/k8s.io/endpointslice/reconciler.go, reconcile):

- `spec.trafficDistribution: PreferClose` (trafficdist/trafficdist.go): every
  ready endpoint is hinted for its own zone, so each node's proxy prefers the
  endpoints of its zone while that zone has any;
- the annotation `service.kubernetes.io/topology-mode: Auto` (or the older
  `service.kubernetes.io/topology-aware-hints: Auto`), which wins over the field
  (topologycache/): endpoints are handed out to zones in proportion to the
  allocatable CPU of the zone's ready nodes, and hints are dropped altogether
  (with a Warning event saying why) when that cannot be done without loading an
  endpoint more than 20% above its share.

Neither: hints are removed. `reconcile_hints` does this for one address type's
planned writes; `TopologyCache` is the state Auto keeps between syncs (zone CPU
ratios from the Nodes, which Services have hints). Where upstream iterates Go
maps (random order), zones and slices are taken in sorted order here.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.objects import labels_of, metadata_of, spec_of, status_of
from svcnet.core.scheduling import parse_quantity

Obj = dict[str, Any]

ANNOTATION_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
ANNOTATION_TOPOLOGY_AWARE_HINTS = "service.kubernetes.io/topology-aware-hints"  # deprecated spelling
PREFER_CLOSE = "PreferClose"
LABEL_ZONE = "topology.kubernetes.io/zone"
# Nodes with either label are left out of the zones' capacity (upstream hasExcludedLabels).
EXCLUDED_NODE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
# No endpoint should get more than 20% over its share of traffic.
OVERLOAD_THRESHOLD = 0.2

# Event messages, as upstream's topologycache/event.go words them.
NO_ZONE_SPECIFIED = "One or more endpoints do not have a zone specified"
NO_ALLOCATED_HINTS_FOR_ZONES = "No hints allocated for zones"
HINTS_ENABLED = "Topology Aware Hints has been enabled"
HINTS_DISABLED = "Topology Aware Hints has been disabled"
INSUFFICIENT_NODE_INFO = ("Insufficient Node information: allocatable CPU or zone not specified on one or more "
                          "nodes")
NODES_READY_IN_ONE_ZONE_ONLY = "Nodes only ready in one zone"
INSUFFICIENT_NUMBER_OF_ENDPOINTS = "Insufficient number of endpoints"
MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD = ("Unable to allocate minimum required endpoints to each zone without "
                                             "exceeding overload threshold")
REASON_ENABLED = "TopologyAwareHintsEnabled"
REASON_DISABLED = "TopologyAwareHintsDisabled"


@dataclass(frozen=True)
class HintEvent:
    """An Event the controller should record on the Service."""

    type: str  # Normal or Warning
    reason: str
    message: str


def hints_enabled(service: Mapping[str, Any]) -> bool:
    """The topology-mode annotation (else the deprecated one) is Auto or auto."""
    annotations = metadata_of(service).get("annotations") or {}
    value = annotations.get(ANNOTATION_TOPOLOGY_MODE, annotations.get(ANNOTATION_TOPOLOGY_AWARE_HINTS))
    return value in ("Auto", "auto")


def uses_traffic_distribution(service: Mapping[str, Any]) -> bool:
    """PreferClose, unless the Auto annotation takes over (upstream canUseTrafficDistribution)."""
    return spec_of(service).get("trafficDistribution") == PREFER_CLOSE and not hints_enabled(service)


def _ready(endpoint: Mapping[str, Any]) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is True


def _zone_hints(endpoint: Mapping[str, Any]) -> list[str]:
    return [str(z.get("name")) for z in (endpoint.get("hints") or {}).get("forZones") or []]


def _with_format(message: str, address_type: str) -> str:
    return f"{message}, addressType: {address_type}"


# ------------------------------------------------------------------ the node side

def zone_cpu_ratios(nodes: Iterable[Mapping[str, Any]]) -> dict[str, float] | None:
    """Each zone's share of the ready nodes' allocatable CPU (upstream TopologyCache.SetNodes).

    None when hints cannot be given: a ready node without a zone or CPU, no CPU at
    all, or fewer than two zones.
    """
    cpu_by_zone: dict[str, Any] = {}
    for node in nodes:
        labels = labels_of(node)
        if any(label in labels for label in EXCLUDED_NODE_LABELS) or not node_ready(node):
            continue
        cpu = parse_quantity((status_of(node).get("allocatable") or {}).get("cpu", 0))
        zone = labels.get(LABEL_ZONE, "")
        if not zone or cpu <= 0:
            return None
        cpu_by_zone[zone] = cpu_by_zone.get(zone, 0) + cpu
    total = sum(cpu_by_zone.values())
    if total <= 0 or len(cpu_by_zone) < 2:
        return None
    return {zone: float(cpu / total) for zone, cpu in sorted(cpu_by_zone.items())}


def node_ready(node: Mapping[str, Any]) -> bool:
    for condition in status_of(node).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def node_topology_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A change that can move the zones' CPU shares: readiness, zone or allocatable CPU."""
    def facts(node: Mapping[str, Any]) -> tuple[Any, ...]:
        return (node_ready(node), labels_of(node).get(LABEL_ZONE),
                (status_of(node).get("allocatable") or {}).get("cpu"),
                tuple(label in labels_of(node) for label in EXCLUDED_NODE_LABELS))
    return facts(old) != facts(new)


@dataclass(frozen=True)
class Allocation:
    minimum: int
    maximum: int
    desired: float


def allocations(ratios: Mapping[str, float] | None, endpoints: int) -> dict[str, Allocation] | str:
    """Per zone, how many endpoints it should get; or why no allocation is possible (getAllocations)."""
    if ratios is None:
        return INSUFFICIENT_NODE_INFO
    if len(ratios) < 2:
        return NODES_READY_IN_ONE_ZONE_ONLY
    if len(ratios) > endpoints:
        return f"{INSUFFICIENT_NUMBER_OF_ENDPOINTS} ({endpoints} endpoints, {len(ratios)} zones)"
    wanted: dict[str, tuple[int, float]] = {}
    remaining = endpoints
    for zone, ratio in sorted(ratios.items()):
        desired = ratio * endpoints
        minimum = math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)))
        wanted[zone] = (minimum, max(desired, float(minimum)))
        remaining -= minimum
        if remaining < 0:
            return f"{MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD} ({endpoints} endpoints, {len(ratios)} zones)"
    spare = remaining  # endpoints - the sum of minimums
    return {zone: Allocation(minimum, minimum + spare, desired) for zone, (minimum, desired) in wanted.items()}


def service_overloaded(hinted: Mapping[str, int], ratios: Mapping[str, float] | None) -> bool:
    """Whether some zone has fewer hinted endpoints than its share needs (serviceOverloaded)."""
    if not hinted:
        return False
    if not ratios:
        return True
    total = sum(hinted.values())
    for zone, ratio in ratios.items():
        if zone not in hinted or hinted[zone] < math.ceil(total * ratio * (1 / (1 + OVERLOAD_THRESHOLD))):
            return True
    return False


class TopologyCache:
    """What the Auto mode keeps between syncs: the zones' CPU shares and each Service's hints per zone.

    Pure state, no I/O: the controller feeds it Nodes and asks it for hints.
    """

    def __init__(self) -> None:
        self.ratios: dict[str, float] | None = None
        self._hinted: dict[str, dict[str, dict[str, int]]] = {}  # service key -> address type -> zone -> count
        self._populated: set[str] = set()

    def set_nodes(self, nodes: Iterable[Mapping[str, Any]]) -> None:
        self.ratios = zone_cpu_ratios(nodes)

    def overloaded_services(self) -> list[str]:
        """Services whose hints no longer fit the zones' shares: the controller syncs them again."""
        return sorted(key for key, by_type in self._hinted.items()
                      if any(service_overloaded(z, self.ratios) for z in by_type.values()))

    def has_populated_hints(self, key: str) -> bool:
        return key in self._populated

    def set_hints(self, key: str, address_type: str, by_zone: Mapping[str, int]) -> None:
        self._hinted.setdefault(key, {})[address_type] = dict(by_zone)
        self._populated.add(key)

    def remove_hints(self, key: str, address_type: str) -> None:
        by_type = self._hinted.get(key, {})
        by_type.pop(address_type, None)
        if not by_type:
            self._hinted.pop(key, None)
        self._populated.discard(key)  # as upstream: the Service as a whole, whichever type lost them

    def forget(self, key: str) -> None:
        self._hinted.pop(key, None)
        self._populated.discard(key)


# ------------------------------------------------------------------ the slice side

@dataclass
class SliceWrites:
    """One address type's planned writes, as the reconciler hands them to the hint logic.

    Slices in `unchanged` are the caller's (cached) objects and are never modified:
    a slice that needs new hints is deep-copied into `updates` (upstream's SliceInfo).
    """

    creates: list[Obj]
    updates: list[Obj]
    unchanged: list[Mapping[str, Any]]

    def changed(self) -> list[Obj]:
        return self.creates + self.updates

    def move_to_updates(self, keep: Any) -> None:
        """Unchanged slices for which keep(slice) is false become deep-copied updates."""
        still: list[Mapping[str, Any]] = []
        for slice_ in self.unchanged:
            if keep(slice_):
                still.append(slice_)
            else:
                self.updates.append(copy.deepcopy(dict(slice_)))
        self.unchanged = still


def remove_hints_from_slices(writes: SliceWrites) -> None:
    """No hints anywhere: strip them from the slices being written, and rewrite unchanged ones that had some."""
    for slice_ in writes.changed():
        for endpoint in slice_.get("endpoints") or []:
            endpoint.pop("hints", None)
    writes.move_to_updates(lambda s: not any("hints" in e for e in s.get("endpoints") or []))
    for slice_ in writes.updates:
        for endpoint in slice_.get("endpoints") or []:
            endpoint.pop("hints", None)


def _prefer_close_stale(slice_: Mapping[str, Any]) -> bool:
    """A ready endpoint whose hint is not exactly its own zone (or that has a hint but no zone)."""
    for endpoint in slice_.get("endpoints") or []:
        if not _ready(endpoint):
            continue
        zone = endpoint.get("zone")
        if zone and _zone_hints(endpoint) != [zone]:
            return True
        if not zone and _zone_hints(endpoint):
            return True
    return False


def prefer_close_hints(writes: SliceWrites) -> None:
    """PreferClose: each ready endpoint hinted for its own zone (trafficdist's preferCloseHeuristic).

    Endpoints that are not ready keep whatever they have: the proxy ignores them for topology.
    """
    writes.move_to_updates(lambda s: not _prefer_close_stale(s))
    for slice_ in writes.changed():
        for endpoint in slice_.get("endpoints") or []:
            if not _ready(endpoint):
                continue
            zone = endpoint.get("zone")
            if zone:
                endpoint["hints"] = {"forZones": [{"name": zone}]}
            else:
                endpoint.pop("hints", None)


def _ready_count(slices: Iterable[Mapping[str, Any]]) -> int:
    return sum(1 for s in slices for e in s.get("endpoints") or [] if _ready(e))


def _hints_by_zone(slice_: Mapping[str, Any], allocated: Mapping[str, int],
                   plan: Mapping[str, Allocation]) -> dict[str, int] | None:
    """The hints an unchanged slice holds per zone; None when it must be rewritten (getHintsByZone)."""
    counts: dict[str, int] = {}
    for endpoint in slice_.get("endpoints") or []:
        if not _ready(endpoint):
            continue
        zones = _zone_hints(endpoint)
        if not zones:
            return None
        for zone in zones:
            if zone not in plan:
                return None
            counts[zone] = counts.get(zone, 0) + 1
    for zone, count in counts.items():
        if count + allocated.get(zone, 0) > plan[zone].maximum:
            return None
    return counts


def _allocated_hints_by_zone(writes: SliceWrites, plan: Mapping[str, Allocation]) -> dict[str, int]:
    """Hints unchanged slices already give; slices whose hints no longer fit become updates."""
    allocated: dict[str, int] = {}

    def keep(slice_: Mapping[str, Any]) -> bool:
        counts = _hints_by_zone(slice_, allocated, plan)
        if counts is None:
            return False
        for zone, count in counts.items():
            allocated[zone] = allocated.get(zone, 0) + count
        return True

    writes.move_to_updates(keep)
    return allocated


def _most(amounts: Mapping[str, float]) -> tuple[str, float]:
    zone, most = "", 0.0
    for name in sorted(amounts):
        if amounts[name] > most:
            zone, most = name, amounts[name]
    return zone, most


def giving_and_receiving_zones(plan: Mapping[str, Allocation],
                               allocated: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """How many endpoints each zone has to spare, and each needs (getGivingAndReceivingZones)."""
    giving_wanted: dict[str, float] = {}
    receiving_wanted: dict[str, float] = {}
    for zone, allocation in plan.items():
        have = float(allocated.get(zone, 0))
        if have > allocation.desired:
            giving_wanted[zone] = have - allocation.desired
        elif have < allocation.desired:
            receiving_wanted[zone] = allocation.desired - have
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        give_zone, to_give = _most(giving_wanted)
        receive_zone, to_receive = _most(receiving_wanted)
        if (not give_zone or not receive_zone or (to_give < 1.0 and to_receive < 1.0)
                or to_give < 0.5 or to_receive < 0.5):
            return giving, receiving
        giving[give_zone] = giving.get(give_zone, 0) + 1
        giving_wanted[give_zone] -= 1
        receiving[receive_zone] = receiving.get(receive_zone, 0) + 1
        receiving_wanted[receive_zone] -= 1


def redistribute_hints(slices: list[Obj], giving: dict[str, int], receiving: dict[str, int]) -> dict[str, int]:
    """Hint endpoints of giving zones for receiving ones; the change in hints per zone (redistributeHints)."""
    moved: dict[str, int] = {}
    for slice_ in slices:
        for endpoint in slice_.get("endpoints") or []:
            if not _ready(endpoint):
                continue
            if not giving or not receiving:
                return moved
            zone = endpoint.get("zone")
            if not zone or giving.get(zone, 0) <= 0:
                continue
            target = next(z for z in sorted(receiving) if receiving[z] > 0)
            endpoint["hints"] = {"forZones": [{"name": target}]}
            for counts, name in ((giving, zone), (receiving, target)):
                counts[name] -= 1
                if counts[name] == 0:
                    del counts[name]
            moved[target] = moved.get(target, 0) + 1
            moved[zone] = moved.get(zone, 0) - 1
    return moved


def _disable(cache: TopologyCache, key: str, address_type: str, writes: SliceWrites,
             message: str) -> list[HintEvent]:
    cache.remove_hints(key, address_type)
    remove_hints_from_slices(writes)
    return [HintEvent("Warning", REASON_DISABLED, _with_format(message, address_type))]


def add_auto_hints(cache: TopologyCache, key: str, address_type: str, writes: SliceWrites) -> list[HintEvent]:
    """The Auto mode for one address type (TopologyCache.AddHints): hints in proportion to zone CPU."""
    plan = allocations(cache.ratios, _ready_count([*writes.changed(), *writes.unchanged]))
    if isinstance(plan, str):
        return _disable(cache, key, address_type, writes, plan)
    allocated = _allocated_hints_by_zone(writes, plan)
    allocatable = writes.changed()
    # 1. Every ready endpoint starts hinted for its own zone.
    for slice_ in allocatable:
        for endpoint in slice_.get("endpoints") or []:
            if not _ready(endpoint):
                continue
            zone = endpoint.get("zone")
            if not zone:
                return _disable(cache, key, address_type, writes, NO_ZONE_SPECIFIED)
            allocated[zone] = allocated.get(zone, 0) + 1
            endpoint["hints"] = {"forZones": [{"name": zone}]}
    # 2. and 3. Zones above their share hand endpoints to zones below it.
    giving, receiving = giving_and_receiving_zones(plan, allocated)
    for zone, change in redistribute_hints(allocatable, giving, receiving).items():
        allocated[zone] = allocated.get(zone, 0) + change
    if not allocated:
        return _disable(cache, key, address_type, writes, NO_ALLOCATED_HINTS_FOR_ZONES)
    was_populated = cache.has_populated_hints(key)
    cache.set_hints(key, address_type, allocated)
    if was_populated:
        return []
    return [HintEvent("Normal", REASON_ENABLED, _with_format(HINTS_ENABLED, address_type))]


def reconcile_hints(service: Mapping[str, Any], address_type: str, writes: SliceWrites,
                    cache: TopologyCache | None) -> list[HintEvent]:
    """Set, keep or remove hints on one address type's slices; the events to record (upstream reconcile)."""
    md = metadata_of(service)
    key = f"{md.get('namespace')}/{md.get('name')}"
    events: list[HintEvent] = []
    if cache is not None and hints_enabled(service):
        events = add_auto_hints(cache, key, address_type, writes)
    else:
        if cache is not None:
            if cache.has_populated_hints(key):
                events.append(HintEvent("Warning", REASON_DISABLED, _with_format(HINTS_DISABLED, address_type)))
            cache.remove_hints(key, address_type)
        if not uses_traffic_distribution(service):
            remove_hints_from_slices(writes)
    if uses_traffic_distribution(service):
        prefer_close_hints(writes)
    return events
