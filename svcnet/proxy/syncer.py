"""When to sync (a bounded-frequency runner) and what one sync does (plan, render, apply, clean up).

When: kube-proxy's BoundedFrequencyRunner. Events ask for a sync; syncs start
at least `min_interval` apart, so a burst of events costs one sync; with no
events a sync still runs every `max_interval` (the sync period). SyncSchedule
is the decision, pure and driven by explicit times; BoundedFrequencyRunner runs
it on asyncio with an injectable clock and wait, so tests need no sleeps.

What: RuleSyncer.sync() takes what the ChangeTracker recorded, plans, and hands
each family's plan to the proxy mode's RuleWriter. In iptables mode
(IptablesWriter) that
- plans only the services that changed (every service on a full sync), keeping
  each service's plan and rendered rules from earlier syncs, so a partial sync
  at 10,000 services costs the changed service plus one pass over the
  top-level rules (KEP-3453);
- on a full sync reads `iptables-save` to learn which chains exist (stale ones
  are deleted), ensures the canary and the jumps from the built-in chains;
- applies one `iptables-restore --noflush` per IP family; a failed restore
  makes the next sync full and asks for a retry;
- after a sync that touched a UDP service (or a full one), deletes stale UDP
  conntrack entries.
Periodic syncs are full, so rules someone deleted by hand come back within a
sync period (kube-proxy does a full resync only hourly and relies on its canary;
svcnet does both, trading a little CPU for quicker repair), except in a large
cluster (more than 1,000 endpoints, kube-proxy's threshold): there a full sync
costs seconds, so periodic syncs are partial and a full one runs at most every
FULL_SYNC_PERIOD, as kube-proxy does; the canary still catches flushed tables.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from svcnet.kernel.iptables import IptablesError, RestoreFailed
from svcnet.proxy.changes import ChangeTracker, SyncInput
from svcnet.proxy.conntrack import Conntrack, ConntrackFilter, clean_stale_entries
from svcnet.proxy.healthcheck import (
    HealthCheckSnapshot,
    health_check_port,
    listen_addresses,
    local_ready_endpoints,
    merge_families,
)
from svcnet.proxy.iptables.apply import (
    IptablesBackend,
    canary_present,
    ensure_canary,
    ensure_jump_rules,
)
from svcnet.proxy.iptables.render import RenderCache, RenderedRules, RenderedState, render_iptables
from svcnet.proxy.model import IPV4, IPV6, LABEL_ZONE, node_addresses
from svcnet.proxy.plan import (
    DETECT_LOCAL_CLUSTER_CIDR,
    DETECT_LOCAL_NODE_CIDR,
    Plan,
    ProxyConfig,
    ServicePortPlan,
    assemble_plan,
    plan_service_port,
)

log = logging.getLogger("svcnet.proxy.syncer")

StateT = TypeVar("StateT")

REASON_REQUESTED = "requested"
REASON_RETRY = "retry"
REASON_PERIODIC = "periodic"
FULL_SYNC_PERIOD = 3600.0  # kube-proxy's proxyutil.FullSyncPeriod: the longest a large cluster goes without one


# --- when to sync ------------------------------------------------------------------------------------------------

@dataclass
class SyncSchedule:
    """Decides when the next sync runs; times are seconds on one monotonic clock."""

    min_interval: float
    max_interval: float  # 0: no periodic syncs
    last_run: float | None = None
    requested: bool = False
    retry_at: float | None = None

    def request(self) -> None:
        """Something changed: sync as soon as min_interval allows. Requests before that coalesce."""
        self.requested = True

    def retry_after(self, now: float, delay: float) -> None:
        """The last sync failed: run again no later than `delay` from now (min_interval still holds)."""
        at = now + delay
        self.retry_at = at if self.retry_at is None else min(self.retry_at, at)

    def next_run(self) -> tuple[float, str]:
        """(time, reason) of the next sync; (inf, "") while nothing is due ever."""
        earliest = -math.inf if self.last_run is None else self.last_run + self.min_interval
        candidates: list[tuple[float, str]] = []
        if self.requested:
            candidates.append((earliest, REASON_REQUESTED))
        if self.retry_at is not None:
            candidates.append((max(self.retry_at, earliest), REASON_RETRY))
        if self.last_run is not None and self.max_interval > 0:
            candidates.append((max(self.last_run + self.max_interval, earliest), REASON_PERIODIC))
        if not candidates:
            return math.inf, ""
        return min(candidates, key=lambda c: c[0])  # stable: a request wins a tie

    def started(self, now: float) -> None:
        """A sync starts now and covers everything asked for so far."""
        self.last_run = now
        self.requested = False
        self.retry_at = None


async def _wait_event(event: asyncio.Event, timeout: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


class BoundedFrequencyRunner:
    """Runs `fn(reason)` as SyncSchedule says, one run at a time, until cancelled."""

    def __init__(self, fn: Callable[[str], Awaitable[None]], min_interval: float, max_interval: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[asyncio.Event, float | None], Awaitable[None]] = _wait_event) -> None:
        self.fn = fn
        self.schedule = SyncSchedule(min_interval, max_interval)
        self.clock = clock
        self._wait = wait
        self._wake = asyncio.Event()

    def run(self) -> None:
        """Ask for a sync (cheap; call it from every event handler)."""
        self.schedule.request()
        self._wake.set()

    def retry_after(self, delay: float) -> None:
        self.schedule.retry_after(self.clock(), delay)
        self._wake.set()

    async def loop(self) -> None:
        while True:
            # Clear before deciding, so a request that arrives meanwhile wakes the wait at once.
            self._wake.clear()
            when, reason = self.schedule.next_run()
            now = self.clock()
            if when > now:
                await self._wait(self._wake, None if math.isinf(when) else when - now)
                continue
            self.schedule.started(now)
            await self.fn(reason)


# --- what one sync does ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProxySettings:
    """The node proxy's flags that shape the rules (node IPs come from the Node unless given here)."""

    node_name: str
    families: tuple[str, ...] = (IPV4,)
    cluster_cidrs: tuple[str, ...] = ()
    node_ips: tuple[str, ...] = ()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    nodeport_addresses: tuple[str, ...] = ()
    localhost_nodeports: bool = True
    conntrack_tcp_be_liberal: bool = False
    mode: str = "iptables"  # kube-proxy's --proxy-mode: iptables or nftables
    detect_local_mode: str = DETECT_LOCAL_CLUSTER_CIDR  # NodeCIDR takes the Node's podCIDRs (set_node)
    bridge_interface: str = ""  # for --detect-local-mode BridgeInterface
    interface_name_prefix: str = ""  # for --detect-local-mode InterfaceNamePrefix
    nfacct_counters: bool = False  # the kernel has nfacct and the counters exist: the rules count with them


@dataclass(frozen=True)
class FamilySync:
    """What one sync did in one IP family."""

    family: str
    full: bool
    ok: bool
    restore_bytes: int = 0
    filter_rules: int = 0
    nat_rules: int = 0  # written in this sync
    nat_rules_total: int = 0  # in the kernel afterwards
    rendered_services: int = 0  # service ports re-rendered (cache misses)
    deleted_chains: tuple[str, ...] = ()
    added_jumps: tuple[str, ...] = ()
    conntrack_filters: tuple[ConntrackFilter, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class SyncResult:
    ok: bool
    full: bool
    reason: str
    changed: frozenset[str] | None  # None: full
    seconds: float
    families: tuple[FamilySync, ...] = ()
    trigger_times: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The health check node ports and local ready endpoints the rules now reflect (healthcheck.py).
    health_checks: HealthCheckSnapshot = field(default_factory=HealthCheckSnapshot)

    @property
    def error(self) -> str:
        return "; ".join(f.error for f in self.families if f.error)


@dataclass
class _FamilyState:
    plans: dict[str, tuple[ServicePortPlan, ...]] = field(default_factory=dict)
    sorted_keys: list[str] | None = None
    sorted_plans: tuple[ServicePortPlan, ...] | None = None
    config: ProxyConfig | None = None
    large_cluster: bool = False  # as of the last sync
    # Services with a healthCheckNodePort: (port, local ready endpoints), kept like the plans.
    health_checks: dict[str, tuple[int, int]] = field(default_factory=dict)
    nodeport_ips: tuple[str, ...] | None = None  # as of the last plan (None: every local address)


def _writes_nothing(restore_text: str) -> bool:
    # Legacy iptables rewrites a whole table even for an empty block: do not run it for nothing.
    return all(line in ("*filter", "*nat", "COMMIT", "") for line in restore_text.splitlines())


def _sort_key(service_key: str) -> tuple[str, ...]:
    # ServicePortName orders by (namespace, name); "a/x" vs "a-b/y" as strings would not.
    return tuple(service_key.split("/", 1))


class RuleWriter(Protocol):
    """One proxy mode's half of a sync: the plan of one family spelled out and put into the kernel."""

    random_fully: bool  # what the host's tools support, for the plan's config

    def write(self, plan: Plan, *, full: bool, changed: frozenset[str] | None) -> FamilySync: ...
    def forget(self) -> None: ...  # the kernel's rules are unknown: the next write reads them again
    def known(self, family: str) -> bool: ...  # False: the next write of this family must be full
    def canary_missing(self, families: Sequence[str]) -> bool: ...


class FamilyStates(Generic[StateT]):
    """A writer's per-family memory of the kernel: `previous` (None: unknown, the next write is full)."""

    def __init__(self, new_state: Callable[[], StateT]) -> None:
        self._new_state = new_state
        self._families: dict[str, StateT] = {}

    def _state(self, family: str) -> StateT:
        state = self._families.get(family)
        if state is None:
            state = self._families[family] = self._new_state()
        return state

    def known(self, family: str) -> bool:
        return self._state(family).previous is not None

    def forget(self) -> None:
        for state in self._families.values():
            state.previous = None


@dataclass
class _IptablesFamily:
    previous: RenderedState | None = None  # None: unknown, read iptables-save next time
    cache: RenderCache = field(default_factory=RenderCache)


class IptablesWriter(FamilyStates[_IptablesFamily]):
    """iptables mode: one `iptables-restore --noflush` per family, the canary and the jumps on full syncs."""

    def __init__(self, backend: IptablesBackend) -> None:
        super().__init__(_IptablesFamily)
        self.backend = backend

    @property
    def random_fully(self) -> bool:
        return self.backend.random_fully

    def write(self, plan: Plan, *, full: bool, changed: frozenset[str] | None) -> FamilySync:
        family = plan.family
        state = self._state(family)
        misses_before = state.cache.misses
        try:
            previous = RenderedState.from_save(self.backend.save(family, "nat")) if full else state.previous
            rendered: RenderedRules = render_iptables(
                plan, previous=previous, changed=None if full else changed, cache=state.cache,
                skip_unchanged=not full)
            added: tuple[str, ...] = ()
            if full:
                ensure_canary(self.backend, family)
                added = ensure_jump_rules(self.backend, family)
            if full or not _writes_nothing(rendered.text):
                self.backend.restore(family, rendered.text)
        except (RestoreFailed, IptablesError) as exc:
            log.error("%s sync failed (%s): %s", family, "full" if full else "partial", exc)
            state.previous = None
            return FamilySync(family, full, False, error=str(exc))
        state.previous = rendered.chains
        return FamilySync(
            family, full, True, restore_bytes=len(rendered.text), filter_rules=rendered.filter_rules,
            nat_rules=rendered.nat_rules, nat_rules_total=rendered.nat_rules_total,
            rendered_services=state.cache.misses - misses_before, deleted_chains=rendered.deleted_chains,
            added_jumps=added)

    def canary_missing(self, families: Sequence[str]) -> bool:
        try:
            return not all(canary_present(self.backend, family) for family in families)
        except IptablesError as exc:
            log.warning("cannot check the canary chain: %s", exc)
            return False


class RuleSyncer:
    """One node's proxy rules: turns tracked changes into iptables-restore runs in its namespace."""

    def __init__(self, tracker: ChangeTracker, backend: IptablesBackend | None, settings: ProxySettings, *,
                 conntrack: Conntrack | None = None, clock: Callable[[], float] = time.monotonic,
                 writer: RuleWriter | None = None) -> None:
        if tuple(tracker.families) != tuple(settings.families):
            raise ValueError(f"tracker families {tracker.families} differ from settings {settings.families}")
        if writer is None:
            if backend is None:
                raise ValueError("a RuleSyncer needs an iptables backend or a rule writer")
            writer = IptablesWriter(backend)
        self.tracker = tracker
        self.backend = backend
        self.writer = writer
        self.settings = settings
        self.conntrack = conntrack
        self._node_ips: tuple[str, ...] = settings.node_ips
        self._service_cidrs: tuple[str, ...] = ()
        self._node_pod_cidrs: tuple[str, ...] = ()
        self._families = {family: _FamilyState() for family in settings.families}
        self.syncs = 0
        self.clock = clock
        self._last_full: float | None = None  # when the last full sync succeeded (clock time)

    # --- inputs besides the tracker ------------------------------------------------------------------------

    def set_node(self, node: Mapping[str, Any] | None) -> bool:
        """Record the Node's addresses (unless given as flags) and podCIDRs; True when they changed."""
        changed = False
        addresses = node_addresses(node)
        if not self.settings.node_ips and addresses != self._node_ips:
            self._node_ips = addresses
            changed = True
        spec = (node or {}).get("spec") or {}
        pod_cidrs = tuple(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
        if pod_cidrs != self._node_pod_cidrs:
            self._node_pod_cidrs = pod_cidrs
            # Only NodeCIDR mode reads them (kube-proxy restarts when they change; a full sync does here).
            changed = changed or self.settings.detect_local_mode == DETECT_LOCAL_NODE_CIDR
        return changed

    def set_service_cidrs(self, cidrs: tuple[str, ...]) -> bool:
        """Record the ServiceCIDRs' ranges (nftables mode drops traffic to unallocated IPs in them)."""
        if cidrs == self._service_cidrs:
            return False
        self._service_cidrs = cidrs
        return True

    def config_for(self, family: str) -> ProxyConfig:
        s = self.settings
        return ProxyConfig(
            family=family, cluster_cidrs=s.cluster_cidrs, node_ips=self._node_ips, masquerade_bit=s.masquerade_bit,
            masquerade_all=s.masquerade_all, nodeport_addresses=s.nodeport_addresses,
            localhost_nodeports=s.localhost_nodeports, random_fully=self.writer.random_fully,
            conntrack_tcp_be_liberal=s.conntrack_tcp_be_liberal, detect_local_mode=s.detect_local_mode,
            node_pod_cidrs=self._node_pod_cidrs if s.detect_local_mode == DETECT_LOCAL_NODE_CIDR else (),
            bridge_interface=s.bridge_interface,
            interface_name_prefix=s.interface_name_prefix, nfacct_counters=s.nfacct_counters,
            service_cidrs=self._service_cidrs,
        )

    def forget_kernel_state(self) -> None:
        """The rules are gone or unknown (cleanup, a flushed table): the next sync reads and rewrites all."""
        self.writer.forget()
        self.tracker.force_full_sync()

    # --- the sync --------------------------------------------------------------------------------------------

    def sync(self, *, reason: str = REASON_REQUESTED, force_full: bool = False) -> SyncResult:
        """Checkout and apply in one call (for callers on one thread)."""
        return self.apply(self.tracker.checkout(include_objects=False), reason=reason, force_full=force_full)

    def apply(self, sync_input: SyncInput, *, reason: str = REASON_REQUESTED,
              force_full: bool = False) -> SyncResult:
        """Apply a checked-out SyncInput. Safe on a worker thread while events keep updating the tracker."""
        started = time.perf_counter()
        self.syncs += 1
        now = self.clock()
        full = (sync_input.full or force_full or reason == REASON_RETRY
                or (reason == REASON_PERIODIC and self._periodic_sync_is_full(now)))
        zone = sync_input.node_labels.get(LABEL_ZONE, "")
        results = []
        for family, state in self._families.items():
            results.append(self._sync_family(family, state, sync_input, full, zone))
        ok = all(r.ok for r in results)
        if ok and all(r.full for r in results):
            self._last_full = now
        if not ok:
            # Whatever the kernel holds now, the next sync rewrites all of it.
            self.tracker.force_full_sync()
        elif self.conntrack is not None and (full or sync_input.conntrack_cleanup_required):
            results = [replace(r, conntrack_filters=self._clean_conntrack(r.family)) for r in results]
        return SyncResult(ok=ok, full=full or any(r.full for r in results), reason=reason,
                          changed=None if full else sync_input.changed,
                          seconds=time.perf_counter() - started, families=tuple(results),
                          trigger_times=sync_input.trigger_times, health_checks=self.health_checks())

    def health_checks(self) -> HealthCheckSnapshot:
        """The Services that need a health check listener on this node, and their local ready endpoints."""
        states = self._families.values()
        ports, counts = merge_families(state.health_checks for state in states)
        return HealthCheckSnapshot(ports, counts, listen_addresses((s.nodeport_ips for s in states),
                                                                   self._families))

    def _periodic_sync_is_full(self, now: float) -> bool:
        large = any(state.large_cluster for state in self._families.values())
        return not large or self._last_full is None or now - self._last_full >= FULL_SYNC_PERIOD

    def _sync_family(self, family: str, state: _FamilyState, sync_input: SyncInput, full: bool,
                     zone: str) -> FamilySync:
        config = self.config_for(family)
        if config != state.config:
            state.config = config
            full = True
        if not self.writer.known(family):
            full = True
        self._update_plans(family, state, sync_input, full, zone)
        assert state.sorted_plans is not None
        plan = assemble_plan(self.settings.node_name, config, state.sorted_plans, frozenset(state.plans))
        state.large_cluster = plan.large_cluster
        state.nodeport_ips = plan.nodeport_ips
        return self.writer.write(plan, full=full, changed=None if full else sync_input.changed)

    def _update_plans(self, family: str, state: _FamilyState, sync_input: SyncInput, full: bool,
                      zone: str) -> None:
        """Re-plan the changed services (all on a full sync); keep the others' plan objects as they are."""
        tracker = self.tracker
        keys: Sequence[str] | frozenset[str]
        if full or sync_input.changed is None:
            keys = tracker.synced_service_keys()
            for gone in [k for k in state.plans if k not in keys]:
                del state.plans[gone]
            for gone in [k for k in state.health_checks if k not in keys]:
                del state.health_checks[gone]
        else:
            keys = sync_input.changed
        keys_changed = full or state.sorted_keys is None
        plans_changed = keys_changed
        for key in keys:
            infos = tracker.synced_service_ports(key, family)
            if not infos:
                state.health_checks.pop(key, None)
                if state.plans.pop(key, None) is not None:
                    keys_changed = plans_changed = True
                continue
            endpoints = tracker.synced_endpoints(key, family)
            _note_health_check(state, key, infos, endpoints)
            plans = tuple(plan_service_port(info, endpoints.get(info.name, ()), zone) for info in infos)
            old = state.plans.get(key)
            if old is None:
                keys_changed = True
            elif old == plans:
                continue  # keep the old objects: the render cache recognises them by identity
            state.plans[key] = plans
            plans_changed = True
        if keys_changed or state.sorted_keys is None:
            state.sorted_keys = sorted(state.plans, key=_sort_key)
        if plans_changed or state.sorted_plans is None:
            plans_by_key = state.plans
            state.sorted_plans = tuple(sp for key in state.sorted_keys for sp in plans_by_key[key])

    def _clean_conntrack(self, family: str) -> tuple[ConntrackFilter, ...]:
        assert self.conntrack is not None
        state = self._families[family]
        udp_keys = {key for key, plans in state.plans.items() if any(sp.info.protocol == "UDP" for sp in plans)}
        if not udp_keys:
            return ()
        services = [sp.info for key in sorted(udp_keys) for sp in state.plans[key]]
        endpoints = {}
        for key in udp_keys:
            endpoints.update(self.tracker.synced_endpoints(key, family))
        return tuple(clean_stale_entries(self.conntrack, family, services, endpoints))

    # --- outside the sync ------------------------------------------------------------------------------------

    def canary_missing(self) -> bool:
        """True when a canary chain is gone (tables were flushed); the caller then forces a full sync."""
        return self.writer.canary_missing(tuple(self._families))

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self._families)


def _note_health_check(state: _FamilyState, key: str, infos: Sequence[Any],
                       endpoints: Mapping[Any, tuple[Any, ...]]) -> None:
    port = health_check_port(infos)
    if port:
        state.health_checks[key] = (port, local_ready_endpoints(ep for eps in endpoints.values() for ep in eps))
    else:
        state.health_checks.pop(key, None)


def default_families(cluster_cidrs: Sequence[str]) -> tuple[str, ...]:
    """IPv4, IPv6 or both, from the families of the cluster CIDRs (IPv4 when there are none)."""
    families = []
    for cidr in cluster_cidrs:
        family = IPV6 if ":" in cidr else IPV4
        if family not in families:
            families.append(family)
    return tuple(sorted(families, key=lambda f: f != IPV4)) or (IPV4,)
