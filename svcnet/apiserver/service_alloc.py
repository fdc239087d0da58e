"""Service IP families, ClusterIPs and NodePorts, allocated on the API server's write path.

As kube-apiserver's service REST storage: families and policy are settled
first, then each family's ClusterIP is taken (the one asked for, or a random
free one), then NodePorts (and healthCheckNodePort) for NodePort and
LoadBalancer Services. Allocations made for a write are undone if the write
fails; what an update gives up is released only once the write is stored.

The allocation tables live in memory and are rebuilt from the stored Services
at start (the repair pass), so they can neither leak nor hand out an address a
stored Service holds.

Writes from many requests now interleave (steps.py), and the registry's plain methods may
be called from any thread, so one lock guards the tables: each admit takes its addresses
and ports under it, as do commit, rollback, release and repair (kube-apiserver's allocators
lock their bitmaps the same way: pkg/registry/core/service/allocator/bitmap.go,
AllocationBitmap.lock).
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import errors, objects
from svcnet.api.errors import ApiError, Cause
from svcnet.api.resources import Resource
from svcnet.core.allocator import AlreadyAllocated, IPRange, NotInRange, PortRange, RangeFull
from svcnet.storage.base import Store

log = logging.getLogger("svcnet.apiserver.alloc")

Obj = dict[str, Any]
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SERVICE_CIDR_PREFIX = "/registry/networking.k8s.io/servicecidrs/"


def _family_of(ip: str) -> str | None:
    try:
        return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"
    except ValueError:
        return None


@dataclass
class Pending:
    """What one write took (undone on failure) and gives back (released once stored)."""

    taken_ips: list[tuple[IPRange, str]] = field(default_factory=list)
    taken_ports: list[int] = field(default_factory=list)
    release_ips: list[str] = field(default_factory=list)
    release_ports: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class RepairReport:
    allocated_ips: int
    allocated_ports: int
    problems: list[str]


class ServiceAllocator:
    """The Admission hook for Services (see Registry)."""

    def __init__(self, service_cidrs: list[str], node_port_range: str = "30000-32767",
                 reserved_ips: tuple[str, ...] = ()) -> None:
        self.ranges: dict[str, IPRange] = {}
        self.reserved_ips = tuple(reserved_ips)
        for cidr in service_cidrs:
            r = IPRange(cidr, reserved=[ip for ip in reserved_ips if _family_of(ip) ==
                                        ("IPv4" if ipaddress.ip_network(cidr).version == 4 else "IPv6")])
            if r.family in self.ranges:
                raise ValueError(f"two service CIDRs of family {r.family}: {cidr}")
            self.ranges[r.family] = r
        self.families = [IPRange(c).family for c in service_cidrs]  # primary first
        self.ports = PortRange(node_port_range)
        # Ranges of ServiceCIDR objects beyond the configured ones: cidr -> (range, allocatable).
        # Each shares its family's allocations with the configured range (ServiceCIDRs may overlap).
        self.extra: dict[str, tuple[IPRange, bool]] = {}
        # A configured range stops taking allocations while every ServiceCIDR holding it (the
        # `kubernetes` one) is being deleted or not Ready, as upstream's allocator for it does.
        self.base_ready: dict[str, bool] = dict.fromkeys(self.ranges, True)
        self._lock = threading.RLock()

    @property
    def dual_stack(self) -> bool:
        return len(self.families) > 1

    # ----------------------------------------------------------- ServiceCIDRs
    def set_service_cidrs(self, service_cidrs: list[Obj]) -> None:
        """The ServiceCIDR objects (networking.k8s.io/v1), whose ranges ClusterIPs may also come from.

        As kube-apiserver's MultiCIDRServiceAllocator (ipallocator/cidrallocator.go): a range
        takes new allocations while one ServiceCIDR holding it is ready (Ready not False, and not
        being deleted); addresses already held in any known range stay held. Families the
        cluster is not configured for are ignored, as upstream keeps one allocator per family.
        """
        wanted: dict[str, bool] = {}
        base_holders: dict[str, list[bool]] = {family: [] for family in self.ranges}
        for obj in service_cidrs:
            ready = _allocatable(obj)
            for cidr in objects.spec_of(obj).get("cidrs") or []:
                try:
                    network = ipaddress.ip_network(str(cidr))
                except ValueError:
                    continue
                family = "IPv4" if network.version == 4 else "IPv6"
                base = self.ranges.get(family)
                if base is None:
                    continue
                if network == base.network:
                    base_holders[family].append(ready)
                else:
                    wanted[str(network)] = wanted.get(str(network), False) or ready
        with self._lock:
            # No ServiceCIDR holding a configured range (before the default exists): it stays usable.
            self.base_ready = {family: any(held) or not held for family, held in base_holders.items()}
            extra: dict[str, tuple[IPRange, bool]] = {}
            for cidr, ready in wanted.items():
                held = self.extra.get(cidr)
                family = "IPv4" if ipaddress.ip_network(cidr).version == 4 else "IPv6"
                extra[cidr] = (held[0] if held else IPRange(
                    cidr, reserved=[ip for ip in self.reserved_ips if _family_of(ip) == family],
                    shared_with=self.ranges[family]), ready)
            self.extra = extra

    def _known_range(self, family: str, ip: str, allocatable_only: bool) -> IPRange | None:
        """The range an address belongs to: the configured one first, then a ServiceCIDR's."""
        base = self.ranges.get(family)
        if base is not None and base.contains(ip) and (self.base_ready[family] or not allocatable_only):
            return base
        for cidr in sorted(self.extra):
            rng, ready = self.extra[cidr]
            if rng.family == family and rng.contains(ip) and (ready or not allocatable_only):
                return rng
        return None

    # --------------------------------------------------------------- repair
    def repair(self, store: Store, prefix: str = "/registry/core/services/") -> RepairReport:
        """Rebuild the tables from stored Services; report doubles and strays as upstream's repair does.

        The stored ServiceCIDRs are read first, so addresses taken from their ranges count as held.
        """
        with self._lock:
            self.set_service_cidrs([rec.value for rec in store.list(SERVICE_CIDR_PREFIX).records])
            return self._repair(store, prefix)

    def _repair(self, store: Store, prefix: str) -> RepairReport:
        problems: list[str] = []
        for rng in self.ranges.values():
            for ip in list(rng.allocated()):
                rng.release(ip)
        for port in list(self.ports.allocated()):
            self.ports.release(port)
        for rec in store.list(prefix).records:
            svc = rec.value
            name = f"{svc['metadata'].get('namespace')}/{svc['metadata'].get('name')}"
            for ip in _cluster_ips(svc):
                rng = self._known_range(_family_of(ip) or "", ip, allocatable_only=False)
                if rng is None:
                    problems.append(f"Cluster IP {ip} of {name} is not within a configured service "
                                    f"range; please recreate the service")
                    continue
                try:
                    rng.allocate(ip)
                except AlreadyAllocated:
                    problems.append(f"Cluster IP {ip} of {name} was assigned to multiple services; "
                                    f"please recreate the service")
            for port in _node_ports(svc):
                if not self.ports.contains(port):
                    problems.append(f"Port {port} of {name} is not within the port range "
                                    f"{self.ports}; please recreate the service")
                    continue
                try:
                    self.ports.allocate(port)
                except AlreadyAllocated:
                    problems.append(f"Port {port} of {name} was assigned to multiple services; "
                                    f"please recreate the service")
        for problem in problems:
            log.warning("repair: %s", problem)
        return RepairReport(sum(len(r.allocated()) for r in self.ranges.values()),
                            len(self.ports.allocated()), problems)

    # ------------------------------------------------------------ admission
    def admit(self, op: str, resource: Resource, obj: Obj, old: Obj | None,
              dry_run: bool = False) -> tuple[Callable[[], None], Callable[[], None]] | None:
        """Mutate obj's IP and port fields; return (commit, rollback) or None when nothing applies."""
        if resource.kind != "Service" or resource.group != "":
            return None
        pending = Pending()
        with self._lock:
            try:
                if op == "CREATE":
                    self._create(obj, pending)
                else:
                    assert old is not None
                    self._update(obj, old, pending)
            except BaseException:
                self._rollback(pending)
                raise
            if dry_run:
                self._rollback(pending)
                return (lambda: None), (lambda: None)
        return (lambda: self._commit(pending)), (lambda: self._rollback(pending))

    def released(self, resource: Resource, obj: Obj) -> None:
        if resource.kind != "Service" or resource.group != "":
            return
        with self._lock:
            self._release(obj)

    def _release(self, obj: Obj) -> None:
        for ip in _cluster_ips(obj):
            rng = self.ranges.get(_family_of(ip) or "")
            if rng is not None:
                rng.release(ip)
        for port in _node_ports(obj):
            self.ports.release(port)

    def _commit(self, pending: Pending) -> None:
        with self._lock:
            for ip in pending.release_ips:
                rng = self.ranges.get(_family_of(ip) or "")
                if rng is not None:
                    rng.release(ip)
            for port in pending.release_ports:
                self.ports.release(port)

    def _rollback(self, pending: Pending) -> None:
        with self._lock:
            for rng, ip in pending.taken_ips:
                rng.release(ip)
            for port in pending.taken_ports:
                self.ports.release(port)
            pending.taken_ips.clear()
            pending.taken_ports.clear()

    # ----------------------------------------------------------------- create
    def _create(self, svc: Obj, pending: Pending) -> None:
        spec = svc.setdefault("spec", {})
        name = objects.name_of(svc)
        self._settle_families(svc, None)
        if spec.get("type") != "ExternalName" and not objects.is_headless_spec(spec):
            ips = list(spec.get("clusterIPs") or [])
            families = spec.get("ipFamilies") or []
            out = []
            for i, family in enumerate(families):
                wanted = ips[i] if i < len(ips) else ""
                out.append(self._take_ip(name, family, wanted, i, pending))
            spec["clusterIPs"] = out
            spec["clusterIP"] = out[0]
        self._assign_node_ports(svc, None, pending)

    # ----------------------------------------------------------------- update
    def _update(self, svc: Obj, old: Obj, pending: Pending) -> None:
        spec = svc.setdefault("spec", {})
        old_spec = objects.spec_of(old)
        name = objects.name_of(svc)
        _drop_type_dependent_fields(spec, old_spec)
        if spec.get("type") == "ExternalName":
            pending.release_ips.extend(_cluster_ips(old))
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if old_spec.get("type") != "ExternalName" and spec.get(key) == old_spec.get(key):
                    spec.pop(key, None)
        elif old_spec.get("type") == "ExternalName":
            self._create_ips_only(svc, pending)
        else:
            _normalize_cluster_ips(spec, old_spec)
            self._settle_families(svc, old)
            if not objects.is_headless_spec(spec):
                ips = list(spec.get("clusterIPs") or [])
                old_ips = _cluster_ips(old)
                families = spec.get("ipFamilies") or []
                out = []
                for i, family in enumerate(families):
                    wanted = ips[i] if i < len(ips) else ""
                    if i < len(old_ips):
                        # An IP the Service already has: a change is for validation to refuse.
                        out.append(wanted or old_ips[i])
                    else:  # a dual-stack upgrade adds a family
                        out.append(self._take_ip(name, family, wanted, i, pending))
                spec["clusterIPs"] = out
                spec["clusterIP"] = out[0] if out else spec.get("clusterIP")
                pending.release_ips.extend(ip for ip in old_ips if ip not in out)
        self._assign_node_ports(svc, old, pending)

    def _create_ips_only(self, svc: Obj, pending: Pending) -> None:
        spec = svc["spec"]
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if spec.get(key) in ("", [], None):
                spec.pop(key, None)
        self._settle_families(svc, None)
        if not objects.is_headless_spec(spec):
            ips = list(spec.get("clusterIPs") or [])
            out = [self._take_ip(objects.name_of(svc), fam, ips[i] if i < len(ips) else "",
                                 i, pending) for i, fam in enumerate(spec.get("ipFamilies") or [])]
            spec["clusterIPs"] = out
            spec["clusterIP"] = out[0]

    # ---------------------------------------------------------------- helpers
    def _settle_families(self, svc: Obj, old: Obj | None) -> None:
        """ipFamilyPolicy, ipFamilies and clusterIPs as kube-apiserver initializes them."""
        spec = svc["spec"]
        name = objects.name_of(svc)
        if spec.get("type") == "ExternalName":
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if spec.get(key) in ("", [], None):
                    spec.pop(key, None)
            return
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIPs") and not spec.get("clusterIP"):
            spec["clusterIP"] = spec["clusterIPs"][0]
        headless = objects.is_headless_spec(spec)
        families = list(spec.get("ipFamilies") or [])
        if not families and not headless:
            families = [f for f in (_family_of(ip) for ip in spec.get("clusterIPs") or []) if f]
        policy = spec.get("ipFamilyPolicy")
        if not policy:
            if old_policy := objects.spec_of(old).get("ipFamilyPolicy"):
                policy = old_policy
            elif headless and not spec.get("selector") and self.dual_stack:
                policy = "RequireDualStack"
            else:
                policy = "SingleStack" if len(families) < 2 else "RequireDualStack"
        causes: list[Cause] = []
        if policy not in ("SingleStack", "PreferDualStack", "RequireDualStack"):
            return  # validation has already named the bad value
        if policy == "RequireDualStack" and not self.dual_stack:
            causes.append(Cause("spec.ipFamilyPolicy", 'Invalid value: "RequireDualStack": this '
                                'cluster is not configured for dual-stack services'))
        for i, family in enumerate(families):
            if family not in self.ranges:
                causes.append(Cause(f"spec.ipFamilies[{i}]", f'Invalid value: "{family}": not '
                                    f'configured on this cluster'))
        if causes:
            raise errors.invalid("Service", name, causes)
        if not families:
            families = [self.families[0]]
        if policy in ("PreferDualStack", "RequireDualStack") and len(families) == 1 and self.dual_stack:
            other = [f for f in self.families if f != families[0]]
            families.append(other[0])
        if policy == "SingleStack" and len(families) > 1:
            raise errors.invalid("Service", name, [Cause(
                "spec.ipFamilies", f"Invalid value: {_go_list(families)}: when spec.ipFamilyPolicy "
                f"is SingleStack, only one ipFamily may be specified")])
        spec["ipFamilyPolicy"] = policy
        spec["ipFamilies"] = families
        if headless:
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]

    def _take_ip(self, name: str, family: str, wanted: str, index: int, pending: Pending) -> str:
        if wanted:
            return self._take_wanted_ip(name, family, wanted, f"spec.clusterIPs[{index}]", index, pending)
        rng = self.ranges[family]
        for candidate in ([rng] if self.base_ready[family] else []) + self._extra_ranges(family):
            try:
                ip = candidate.allocate_next()
            except RangeFull:
                continue
            pending.taken_ips.append((candidate, ip))
            return ip
        raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a "
                                             "serviceIP: range is full")

    def _take_wanted_ip(self, name: str, family: str, wanted: str, path: str, index: int,
                        pending: Pending) -> str:
        if _family_of(wanted) != family:
            raise errors.invalid("Service", name, [Cause(
                path, f'Invalid value: "{wanted}": expected an {family} value as indicated by '
                      f'`ipFamilies[{index}]`')])
        rng = self._known_range(family, wanted, allocatable_only=True)
        try:
            if rng is None:
                raise NotInRange(wanted)
            rng.allocate(wanted)
        except NotInRange:
            raise errors.invalid("Service", name, [Cause(
                path, f'Invalid value: "{wanted}": provided IP is not in the valid range. '
                      f'The range of valid IPs is {self.ranges[family]}')]) from None
        except AlreadyAllocated:
            raise errors.invalid("Service", name, [Cause(
                path, f'Invalid value: "{wanted}": provided IP is already allocated')]) from None
        pending.taken_ips.append((rng, wanted))
        return wanted

    def _extra_ranges(self, family: str) -> list[IPRange]:
        """The allocatable ServiceCIDR ranges of a family, tried in turn once the configured one is
        full (upstream tries its allocators in map order; svcnet keeps the configured range first)."""
        return [rng for cidr, (rng, ready) in sorted(self.extra.items()) if ready and rng.family == family]

    def _take_port(self, name: str, path: str, wanted: int, pending: Pending) -> int:
        if wanted:
            try:
                self.ports.allocate(wanted)
            except NotInRange:
                raise errors.invalid("Service", name, [Cause(
                    path, f"Invalid value: {wanted}: provided port is not in the valid range. "
                          f"The range of valid ports is {self.ports}")]) from None
            except AlreadyAllocated:
                raise errors.invalid("Service", name, [Cause(
                    path, f"Invalid value: {wanted}: provided port is already allocated")]) from None
            pending.taken_ports.append(wanted)
            return wanted
        try:
            port = self.ports.allocate_next()
        except RangeFull:
            raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a "
                                                 "nodePort: range is full") from None
        pending.taken_ports.append(port)
        return port

    def _assign_node_ports(self, svc: Obj, old: Obj | None, pending: Pending) -> None:
        spec = svc["spec"]
        name = objects.name_of(svc)
        old_spec = objects.spec_of(old)
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or [] if p.get("nodePort")}
        old_held = set(_node_ports(old)) if old else set()
        wants_node_ports = spec.get("type") in NODE_PORT_TYPES and not (
            spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False)
        kept: set[int] = set()
        if wants_node_ports:
            by_service_port: dict[int, int] = {}
            for i, port in enumerate(spec.get("ports") or []):
                wanted = int(port.get("nodePort") or 0)
                if not wanted and old is not None:
                    wanted = int(old_ports.get((port.get("port"), port.get("protocol", "TCP"))) or 0)
                if not wanted:
                    wanted = by_service_port.get(port.get("port"), 0)
                if wanted and (wanted in old_held or wanted in kept):
                    pass  # this Service already holds it (another protocol of the same port, or before)
                else:
                    wanted = self._take_port(name, f"spec.ports[{i}].nodePort", wanted, pending)
                port["nodePort"] = wanted
                kept.add(wanted)
                by_service_port.setdefault(port.get("port"), wanted)
        else:
            for port in spec.get("ports") or []:
                # Leaving NodePort for ClusterIP drops the ports the user did not change.
                held = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if port.get("nodePort") and (old is None or port.get("nodePort") == held):
                    port.pop("nodePort", None)
        needs_hc = (spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local")
        if needs_hc:
            wanted = int(spec.get("healthCheckNodePort") or old_spec.get("healthCheckNodePort") or 0)
            if not (wanted and wanted == old_spec.get("healthCheckNodePort")):
                wanted = self._take_port(name, "spec.healthCheckNodePort", wanted, pending)
            spec["healthCheckNodePort"] = wanted
            kept.add(wanted)
        elif spec.get("healthCheckNodePort") and spec.get("healthCheckNodePort") == \
                old_spec.get("healthCheckNodePort"):
            spec.pop("healthCheckNodePort", None)
        pending.release_ports.extend(p for p in old_held if p not in kept)


def _drop_type_dependent_fields(spec: Obj, old_spec: Obj) -> None:
    """A type change drops fields the new type cannot have, when the user left them as they were.

    (kube-apiserver's dropTypeDependentFields; nodePorts are handled with the port allocation.)
    """
    if spec.get("type") == old_spec.get("type"):
        return
    external = spec.get("type") in NODE_PORT_TYPES
    if not external and spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)
    if spec.get("type") != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if key in spec and spec.get(key) == old_spec.get(key):
                spec.pop(key, None)


def _normalize_cluster_ips(spec: Obj, old_spec: Obj) -> None:
    """An old-style client changed clusterIP but not clusterIPs: carry it over (as upstream)."""
    if spec.get("clusterIP") == old_spec.get("clusterIP"):
        return
    if (spec.get("clusterIPs") or []) != (old_spec.get("clusterIPs") or []):
        return
    if not spec.get("clusterIP"):
        spec.pop("clusterIPs", None)
    elif not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    else:
        spec["clusterIPs"] = [spec["clusterIP"], *spec["clusterIPs"][1:]]


def _allocatable(service_cidr: Obj) -> bool:
    """Ready unless its Ready condition says otherwise (upstream assumes ready when
    kube-controller-manager has not set one), and not being deleted."""
    if objects.metadata_of(service_cidr).get("deletionTimestamp"):
        return False
    for cond in objects.status_of(service_cidr).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return True


def _cluster_ips(svc: Obj | None) -> list[str]:
    spec = objects.spec_of(svc)
    ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    return [ip for ip in ips if ip and ip != "None"]


def _node_ports(svc: Obj | None) -> list[int]:
    spec = objects.spec_of(svc)
    ports = {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    return sorted(ports)


def _go_list(values: list[str]) -> str:
    return "[]core.IPFamily{" + ", ".join(f'"{v}"' for v in values) + "}"
