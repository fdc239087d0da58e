"""Service IP families, ClusterIPs and NodePorts, allocated on the API server's write path.

As kube-apiserver's service REST storage: families and policy are settled
first, then each family's ClusterIP is taken (the one asked for, or a random
free one), then NodePorts (and healthCheckNodePort) for NodePort and
LoadBalancer Services. Allocations made for a write are undone if the write
fails; what an update gives up is released only once the write is stored.

The truth is in the store, as kube-apiserver keeps it in etcd, so that several API servers
over one store never hand out one address or port twice (alloc_state.py): a ClusterIP is
taken by creating its IPAddress object (a key that exists means taken: try the next), the
NodePorts by a compare-and-swap on the RangeAllocation bitmap. The tables in memory are this
server's view of that truth, for picking candidates: the IPAddress objects' watch and the
snapshot read at each NodePort allocation keep them current. The repair pass at start (and
every REPAIR_INTERVAL) rebuilds them from the stored Services, creates missing IPAddress
objects (data from before they existed), and removes leaked ones as upstream's repair does.
Without a store (repair never called: unit tests, fakes) the tables alone are the truth.

Cost on the write path: one store create per ClusterIP taken and, for a Service with
NodePorts, one read and one compare-and-swap of the snapshot; a delete gives them back the
same way.

Writes from many requests now interleave (steps.py), and the registry's plain methods may
be called from any thread, so one lock guards the tables: each admit takes its addresses
and ports under it, as do commit, rollback, release and repair (kube-apiserver's allocators
lock their bitmaps the same way: pkg/registry/core/service/allocator/bitmap.go,
AllocationBitmap.lock).
"""
from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import errors, objects
from svcnet.api.errors import ApiError, Cause
from svcnet.api.resources import Resource
from svcnet.apiserver import alloc_state
from svcnet.apiserver.alloc_state import PortsTaken
from svcnet.apiserver.registry import Undo
from svcnet.apiserver.steps import Read, Steps, run_inline
from svcnet.core.allocator import (
    AlreadyAllocated,
    IPRange,
    NotInRange,
    PortRange,
    RangeFull,
    mask_of,
    offsets_in,
)
from svcnet.storage.base import ListResult, NoSpace, RevisionConflict, StorageError, Store

log = logging.getLogger("svcnet.apiserver.alloc")

Obj = dict[str, Any]
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SERVICE_CIDR_PREFIX = "/registry/networking.k8s.io/servicecidrs/"
SERVICE_PREFIX = "/registry/core/services/"
# An IPAddress object no Service holds is left this long before repair removes it: a create
# on another server may have taken the address and not yet stored its Service (upstream's
# repairip.go grace period, kube-apiserver's default request timeout).
LEAK_GRACE = dt.timedelta(seconds=60)
# A NodePort set in the snapshot that no Service holds is freed only once this many repair
# passes in a row saw it so, for the same reason (portallocator/controller/repair.go,
# numRepairsBeforeLeakCleanup).
REPAIRS_BEFORE_LEAK_CLEANUP = 3
# Whole allocations tried again when another server's snapshot took a port this one chose.
ADMIT_ATTEMPTS = 8


@functools.lru_cache(maxsize=4096)  # asked of the same few addresses many times a write
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
    parent: tuple[str, str] = ("", "")  # the Service's (namespace, name), its IPAddresses' parentRef
    # With a store: the addresses chosen here, each to be claimed there (spec.clusterIPs index,
    # asked for by the user or not), and what was stored.
    slots: list[tuple[int, bool]] = field(default_factory=list)
    created_ips: list[str] = field(default_factory=list)  # IPAddress objects this write stored
    ports_stored: bool = False  # taken_ports are in the stored snapshot
    ports_fresh: bool = True  # the port table was read from the store for this attempt


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
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
        # The shared truth, from repair on (None: these tables are all there is).
        self._store: Store | None = None
        self._feed = alloc_state.IPAddressFeed()
        self._ports_known: tuple[int, int] = (0, 0)  # the snapshot (bits, revision) last read or written
        self._ports_in_flight: set[int] = set()  # chosen by writes not yet in the snapshot
        # One snapshot write at a time from this server: its own writes never race each other
        # (only other servers' do, and a lost race reads again). Held only across that write.
        self._port_writes = threading.Lock()
        self._leak_sightings: dict[int, int] = {}  # NodePort -> repairs in a row that found it leaked

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
    def repair(self, store: Store, prefix: str = SERVICE_PREFIX) -> RepairReport:
        """Rebuild the tables from the store; report doubles and strays as upstream's repair does.

        From here on the store holds the truth (IPAddress objects, the NodePort snapshot). The
        stored ServiceCIDRs are read first, so addresses taken from their ranges count as held.
        """
        with self._lock:
            self._store = store
            self.set_service_cidrs([rec.value for rec in store.list(SERVICE_CIDR_PREFIX).records])
            return self._repair(store, prefix)

    def _repair(self, store: Store, prefix: str) -> RepairReport:
        problems: list[str] = []
        for rng in self.ranges.values():
            for ip in list(rng.allocated()):
                rng.release(ip)
        listed = store.list(alloc_state.IP_ADDRESS_PREFIX)
        self._feed.start(store, listed.revision)  # what other servers do from the list on
        ip_objects = {objects.name_of(rec.value): rec.value for rec in listed.records}
        held_ports: set[int] = set()
        holders: set[str] = set()
        for rec in store.list(prefix).records:
            svc = rec.value
            namespace, name = str(svc["metadata"].get("namespace") or ""), objects.name_of(svc)
            for ip in _cluster_ips(svc):
                if self._repair_ip(store, ip, (namespace, name), ip_objects, problems):
                    holders.add(alloc_state.canonical(ip))
            held_ports.update(self._repair_node_ports(svc, f"{namespace}/{name}", held_ports, problems))
        self._repair_leaked_ips(store, ip_objects, holders)
        self._repair_port_snapshot(store, held_ports)
        for problem in problems:
            log.warning("repair: %s", problem)
        return RepairReport(sum(len(r.allocated()) for r in self.ranges.values()),
                            len(self.ports.allocated()), problems)

    def _repair_ip(self, store: Store, ip: str, parent: tuple[str, str], ip_objects: dict[str, Obj],
                   problems: list[str]) -> bool:
        """Hold a Service's address; create its IPAddress object when missing. True when held."""
        name = "/".join(parent)
        rng = self._known_range(_family_of(ip) or "", ip, allocatable_only=False)
        if rng is None:
            problems.append(f"Cluster IP {ip} of {name} is not within a configured service "
                            f"range; please recreate the service")
            return False
        try:
            rng.allocate(ip)
        except AlreadyAllocated:
            problems.append(f"Cluster IP {ip} of {name} was assigned to multiple services; "
                            f"please recreate the service")
            return False
        if alloc_state.canonical(ip) not in ip_objects:
            # Data from before IPAddress objects, or a crash between the two writes: as
            # upstream's repair (ClusterIPNotAllocated), the object is made for the Service.
            log.info("repair: Cluster IP %s of %s is not allocated; repairing", ip, name)
            try:
                alloc_state.create_ip(store, ip, *parent, self._now())
            except NoSpace:  # held in the table all the same; the next repair writes it
                log.warning("repair: cannot record Cluster IP %s of %s: the storage device is full", ip, name)
        return True

    def _repair_node_ports(self, svc: Obj, name: str, held: set[int], problems: list[str]) -> set[int]:
        ports: set[int] = set()
        for port in _node_ports(svc):
            if not self.ports.contains(port):
                problems.append(f"Port {port} of {name} is not within the port range "
                                f"{self.ports}; please recreate the service")
            elif port in held:
                problems.append(f"Port {port} of {name} was assigned to multiple services; "
                                f"please recreate the service")
            else:
                ports.add(port)
        return ports

    def _repair_leaked_ips(self, store: Store, ip_objects: dict[str, Obj], holders: set[str]) -> None:
        """IPAddress objects no Service holds: removed once older than LEAK_GRACE (a create on
        another server may be between its two writes), held until then; others' are left be."""
        now = self.clock()
        for ip, obj in ip_objects.items():
            if ip in holders:
                continue
            labels = objects.metadata_of(obj).get("labels") or {}
            created = _parse_time(objects.metadata_of(obj).get("creationTimestamp"))
            leaked = labels.get(alloc_state.MANAGED_BY_LABEL) == alloc_state.MANAGED_BY and (
                created is None or now - created > LEAK_GRACE)
            if leaked:
                log.warning("repair: IPAddress %s appears to have leaked: cleaning up", ip)
                alloc_state.delete_ip(store, ip)
            else:
                self._hold_ip(ip)

    def _repair_port_snapshot(self, store: Store, held: set[int]) -> None:
        """Write the snapshot as the Services hold it, keeping ports set in it that no Service
        holds until REPAIRS_BEFORE_LEAK_CLEANUP passes in a row found them so."""
        low, spec, size = self.ports.low, str(self.ports), self.ports.size
        held_bits = mask_of(held, low)
        sightings: dict[int, int] = {}

        def change(stored: int) -> int:
            sightings.clear()
            sightings.update({low + k: self._leak_sightings.get(low + k, 0) + 1
                              for k in offsets_in(stored & ~held_bits)})
            kept = [port for port, seen in sightings.items() if seen < REPAIRS_BEFORE_LEAK_CLEANUP]
            return held_bits | mask_of(kept, low)

        known = alloc_state.read_ports(store, spec, size)
        self._ports_known = (0, 0)
        self.ports.replace(self._ports_in_flight)  # what writes in flight here chose stays taken
        try:
            self._learn_ports(alloc_state.write_ports(store, spec, size, known, change, self._now()))
        except NoSpace:
            # A full disk must not keep the API server from starting and serving reads and deletes (as
            # kube-apiserver's repair loop, which only logs): the table holds what the Services hold and
            # what the stored snapshot says; the next repair writes the snapshot.
            log.warning("repair: cannot write the NodePort snapshot: the storage device is full")
            self._learn_ports((known[0] | held_bits, known[1]))
        self._leak_sightings = {port: seen for port, seen in sightings.items()
                                if seen < REPAIRS_BEFORE_LEAK_CLEANUP}

    def close(self) -> None:
        """Stop following the store (the server is stopping)."""
        self._feed.stop()

    # ------------------------------------------------------------ admission
    def admit(self, op: str, resource: Resource, obj: Obj, old: Obj | None,
              dry_run: bool = False) -> tuple[Undo, Undo] | None:
        """Mutate obj's IP and port fields; return (commit, rollback) or None when nothing applies.
        (admit_steps with the store calls made here.)"""
        return run_inline(self.admit_steps(op, resource, obj, old, dry_run))

    def admit_steps(self, op: str, resource: Resource, obj: Obj, old: Obj | None,
                    dry_run: bool = False) -> Steps[tuple[Undo, Undo] | None]:
        """admit as steps: the store calls (claiming the addresses and ports chosen here) are
        yielded, so the registry's driver makes them off the event loop and in the same group
        commits as other writes; this server's tables are changed under the lock, never across
        a store call."""
        if resource.kind != "Service" or resource.group != "":
            return None
        spec_before = _spec_copy(obj)
        parent = (str(objects.metadata_of(obj).get("namespace") or ""), objects.name_of(obj))
        if self._store is not None and self._feed.ended:
            # What other servers did since the watch ended is not in the table: read it again from
            # the IPAddress objects and follow them from that list on, as an informer relists.
            store = self._store
            listed = yield Read(functools.partial(store.list, alloc_state.IP_ADDRESS_PREFIX))
            with self._lock:
                self._feed.start(store, listed.revision)
                self._relearn_ips(listed)
        # The NodePort table as last read or written serves the first attempt (the snapshot's
        # compare-and-swap catches what it missed); a retry, and a dry run, which writes no
        # snapshot to be caught by, read it first.
        fresh = dry_run
        relisted = False
        for _ in range(ADMIT_ATTEMPTS):
            pending = Pending(parent=parent, ports_fresh=fresh)
            try:
                if self._store is not None and fresh and _may_hold_node_ports(obj, old):
                    store, spec, size = self._store, str(self.ports), self.ports.size
                    known = yield Read(functools.partial(alloc_state.read_ports, store, spec, size))
                    with self._lock:
                        self._learn_ports(known)
                with self._lock:
                    self._feed.drain(self._hold_ip, self._release_ip_here)
                    if op == "CREATE":
                        self._create(obj, pending)
                    else:
                        assert old is not None
                        self._update(obj, old, pending)
                    if self._store is not None:
                        self._ports_in_flight.update(pending.taken_ports)
                yield from self._claim_ips(obj, pending, dry_run)
                if not dry_run:
                    yield from self._claim_ports(pending)
            except PortsTaken:
                # Another server's snapshot took a port chosen here: choose again from it.
                self._rollback(pending)
                fresh = True
                obj["spec"] = _spec_copy({"spec": spec_before})
                continue
            except IPRangeFull:
                self._rollback(pending)
                if self._store is None or relisted:
                    raise
                # This server's table may be behind what others gave back (a lagging or broken
                # watch): read the IPAddress objects themselves once, and choose again.
                listed = yield Read(functools.partial(self._store.list, alloc_state.IP_ADDRESS_PREFIX))
                with self._lock:
                    self._relearn_ips(listed)
                relisted = True
                obj["spec"] = _spec_copy({"spec": spec_before})
                continue
            except BaseException:
                self._rollback(pending)
                raise
            if dry_run:
                self._rollback(pending)
                return (lambda: None), (lambda: None)
            return functools.partial(self._commit, pending), functools.partial(self._rollback, pending)
        raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a "
                                             "nodePort: the range kept changing under this write")

    def released(self, resource: Resource, obj: Obj) -> None:
        run_inline(self.released_steps(resource, obj))

    def released_steps(self, resource: Resource, obj: Obj) -> Steps[None]:
        """A deleted Service's addresses and ports given back, the store calls as steps."""
        if resource.kind != "Service" or resource.group != "":
            return
        try:
            yield from self._give_back_steps(_cluster_ips(obj), _node_ports(obj))
        except (StorageError, ApiError) as exc:
            # The Service is gone either way; what was not given back, the repair frees.
            log.warning("releasing the addresses and ports of %s: %s", objects.name_of(obj), exc)

    def _give_back(self, ips: list[str], ports: list[int]) -> None:
        run_inline(self._give_back_steps(ips, ports))

    def _give_back_steps(self, ips: list[str], ports: list[int]) -> Steps[None]:
        with self._lock:
            for ip in ips:
                self._release_ip_here(ip)
            for port in ports:
                self.ports.release(port)
        if self._store is None:
            return
        for ip in ips:
            yield functools.partial(alloc_state.delete_ip, self._store, ip)
        if ports:
            gone = mask_of(ports, self.ports.low)
            yield functools.partial(self._change_port_snapshot, lambda stored: stored & ~gone)

    def _commit(self, pending: Pending) -> None:
        self._give_back(pending.release_ips, pending.release_ports)

    def _rollback(self, pending: Pending) -> None:
        with self._lock:
            for rng, ip in pending.taken_ips:
                rng.release(ip)
            for port in pending.taken_ports:
                self.ports.release(port)
            self._ports_in_flight.difference_update(pending.taken_ports)
        if self._store is not None:
            for ip in pending.created_ips:
                alloc_state.delete_ip(self._store, ip)
            if pending.ports_stored:
                taken = mask_of(pending.taken_ports, self.ports.low)
                self._change_port_snapshot(lambda stored: stored & ~taken)
        pending.taken_ips.clear()
        pending.created_ips.clear()
        pending.taken_ports.clear()
        pending.ports_stored = False

    # ------------------------------------------------------- the shared truth
    def _now(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _relearn_ips(self, listed: ListResult) -> None:
        """The address table anew from the IPAddress objects as listed (and the watch's events
        after the list)."""
        for rng in self.ranges.values():
            for ip in list(rng.allocated()):
                rng.release(ip)
        for rec in listed.records:
            self._hold_ip(objects.name_of(rec.value))
        self._feed.drain(self._hold_ip, self._release_ip_here, after=listed.revision)

    def _hold_ip(self, ip: str) -> None:
        rng = self.ranges.get(_family_of(ip) or "")
        if rng is not None:
            rng.hold(ip)

    def _release_ip_here(self, ip: str) -> None:
        rng = self.ranges.get(_family_of(ip) or "")
        if rng is not None:
            rng.release(ip)  # the family's ranges share one table: this frees it in all of them

    def _claim_ips(self, svc: Obj, pending: Pending, dry_run: bool) -> Steps[None]:
        """Claim each address chosen here by creating its IPAddress object (dry run: by finding
        none). One that exists is held by another write: asked for by name, that is the
        "already allocated" refusal; picked at random, the next pick is tried."""
        store = self._store
        if store is None:
            return
        spec = svc["spec"]
        for index, wanted in pending.slots:
            while True:
                ip = spec["clusterIPs"][index]
                if dry_run:
                    claimed = not (yield Read(functools.partial(alloc_state.ip_taken, store, ip)))
                else:
                    claimed = yield functools.partial(alloc_state.create_ip, store, ip, *pending.parent,
                                                      self._now())
                if claimed:
                    if not dry_run:
                        pending.created_ips.append(ip)
                    break
                with self._lock:
                    self._keep_held(pending, ip)
                    if wanted:
                        raise _ip_already_allocated(objects.name_of(svc), f"spec.clusterIPs[{index}]", ip)
                    spec["clusterIPs"][index] = self._pick_ip(spec["ipFamilies"][index], pending)
                    spec["clusterIP"] = spec["clusterIPs"][0]

    @staticmethod
    def _keep_held(pending: Pending, ip: str) -> None:
        """The store says ip is held: this write's rollback must not free it here."""
        pending.taken_ips[:] = [(rng, taken) for rng, taken in pending.taken_ips if taken != ip]

    def _claim_ports(self, pending: Pending) -> Steps[None]:
        """Set the ports chosen here in the stored snapshot (compare-and-swap, read again after
        a lost race); PortsTaken when one is already set there."""
        if self._store is None or not pending.taken_ports:
            return
        taken = mask_of(pending.taken_ports, self.ports.low)

        def change(stored: int) -> int:
            if stored & taken:
                raise PortsTaken()
            return stored | taken

        yield functools.partial(self._change_port_snapshot, change)
        with self._lock:
            self._ports_in_flight.difference_update(pending.taken_ports)
            pending.ports_stored = True

    def _learn_ports(self, known: tuple[int, int]) -> None:
        """Bring this server's port table to a snapshot read or written (bits, revision): only the
        bits that differ from the last one are walked. Ports chosen by writes still in flight
        here stay taken."""
        bits, revision = known
        if revision < self._ports_known[1]:
            return  # an older snapshot than one already learnt (a slower concurrent read)
        changed = bits ^ self._ports_known[0]
        low = self.ports.low
        for offset in offsets_in(changed):
            port = low + offset
            if bits >> offset & 1:
                self.ports.hold(port)
            elif port not in self._ports_in_flight:
                self.ports.release(port)
        self._ports_known = known

    def _change_port_snapshot(self, change: Callable[[int], int]) -> None:
        assert self._store is not None
        with self._port_writes:
            try:
                known = alloc_state.write_ports(self._store, str(self.ports), self.ports.size,
                                                self._ports_known, change, self._now())
            except RevisionConflict:
                raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a "
                                                     "nodePort: the range kept changing under this write") from None
            with self._lock:
                self._learn_ports(known)

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
            ip = self._take_wanted_ip(name, family, wanted, f"spec.clusterIPs[{index}]", index, pending)
        else:
            ip = self._pick_ip(family, pending)
        pending.slots.append((index, bool(wanted)))
        return ip

    def _pick_ip(self, family: str, pending: Pending) -> str:
        rng = self.ranges[family]
        for candidate in ([rng] if self.base_ready[family] else []) + self._extra_ranges(family):
            try:
                ip = candidate.allocate_next()
            except RangeFull:
                continue
            pending.taken_ips.append((candidate, ip))
            return ip
        raise IPRangeFull(500, "InternalError", "Internal error occurred: failed to allocate a "
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
            # With a store, this server's table may not have seen another server give it back
            # yet: the claim in the store decides.
            if self._store is None:
                raise _ip_already_allocated(name, path, wanted) from None
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
                if not pending.ports_fresh:
                    raise PortsTaken() from None  # another server may have given it back: read again
                raise errors.invalid("Service", name, [Cause(
                    path, f"Invalid value: {wanted}: provided port is already allocated")]) from None
            pending.taken_ports.append(wanted)
            return wanted
        try:
            port = self.ports.allocate_next()
        except RangeFull:
            if not pending.ports_fresh:
                raise PortsTaken() from None  # another server may have given some back: read again
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


class IPRangeFull(ApiError):
    """No free address in this server's table (which, with a store, may be behind)."""


def _ip_already_allocated(name: str, path: str, ip: str) -> ApiError:
    return errors.invalid("Service", name, [Cause(path, f'Invalid value: "{ip}": provided IP is already allocated')])


def _may_hold_node_ports(svc: Obj, old: Obj | None) -> bool:
    """Whether a write may take or give back NodePorts (then the snapshot is read first)."""
    return any(objects.spec_of(o).get("type") in NODE_PORT_TYPES for o in (svc, old) if o is not None)


def _spec_copy(svc: Obj) -> Obj:
    """The spec as admission found it, to start again from: what admission changes are its
    keys and the ports' own dicts (a deep copy of the whole object cost more than the rest)."""
    spec = dict(objects.spec_of(svc))
    if isinstance(spec.get("ports"), list):
        spec["ports"] = [dict(p) if isinstance(p, dict) else p for p in spec["ports"]]
    return spec


def _parse_time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _go_list(values: list[str]) -> str:
    return "[]core.IPFamily{" + ", ".join(f'"{v}"' for v in values) + "}"
