"""Plan -> nft transactions, sync by sync, as kube-proxy's nftables proxier writes them.

Matched against pkg/proxy/nftables/proxier.go of kubernetes/kubernetes at commit
b0f823e6ccd8a10b3893fc75011b9981af39285c (the stored version closest to v1.33;
see objects.py for what sets it apart). The text is knftables' form, one
command a line (`add chain ip kube-proxy services`, `add element ip kube-proxy
service-ips { 172.30.0.41 . tcp . 80 : goto service-... }`), which `nft -f -`
runs as one atomic transaction.

A sync follows syncProxyRules:

- full (the first sync, or changed=None, e.g. after a failed transaction): the
  table and every fixed chain, set and map are added and flushed, the fixed
  rules written again (base chains are deleted and re-created once per
  process, so a changed priority takes), the six element containers flushed,
  and every service port's chains (add + flush + rules), affinity sets and
  elements written; all in one transaction, so the table never shows a
  half-built state;
- partial (changed = the "namespace/name" of services whose objects or
  endpoints changed): only those services' chains are added, flushed and
  rewritten. Map and set elements are *not* rebuilt: like v1.33's
  nftElementStorage, the state remembers every element and the transaction
  adds what is new, deletes and re-adds what changed value, and deletes what
  no service wants any more. So a one-endpoint change at 10,000 services
  writes a few lines, whatever the cluster's size;
- either way, service chains no longer used are flushed and remembered with
  the sync's time; a later sync deletes those older than one second in a
  transaction of their own (`cleanup`, to run before `text`), because kernels
  before 6.2 notice only a moment later that a deleted map element no longer
  refers to a chain. As upstream, a stale chain still there at a sync is
  flushed again and its time renewed. Unused affinity sets are deleted at once.

Per-service objects (and their transaction lines) are rendered once and kept
in an NftRenderCache while the service port's plan is unchanged, so a partial
sync renders only what changed: at 10,000 services x 10 endpoints a
one-endpoint change renders in about 1 ms and writes 45 commands; a full sync
writes 460,000 commands (58 MB), in about 0.2 s with a warm cache and 1.1 s
cold. What applying them costs is the kernel adapter's business
(svcnet.kernel.nft: partial syncs as one netlink batch without nft's cache
fetch, a cold start in steps; docs/benchmarks.md "Proxy sync" has where the
time goes: at 10,000 services the kernel's commit-time validation alone is
~220 ms per transaction that adds a rule).
Nothing here does I/O: time comes in as `now`, and what the kernel holds comes
from the previous sync's NftablesState (or NftablesState.existing() built from
`nft list` output after a restart).
"""
from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from svcnet.proxy.model import ServicePortName
from svcnet.proxy.nftables import names
from svcnet.proxy.nftables.objects import (
    Element,
    ServiceObjects,
    addr_type,
    nft_family,
    quote,
    render_context,
    render_service_objects,
)
from svcnet.proxy.plan import Plan, ServicePortPlan, service_cidrs_of_family

# The base chains: (name, type, hook, priority). Filter chains run before DNAT (priority dstnat-10)
# so they see the service IPs; filter-output-post-dnat (dstnat+10) sees where DNAT sent a packet.
DNAT_PRIORITY = -100
SNAT_PRIORITY = 100
BASE_CHAINS = (
    (names.FILTER_PREROUTING, "filter", "prerouting", DNAT_PRIORITY - 10),
    (names.FILTER_INPUT, "filter", "input", DNAT_PRIORITY - 10),
    (names.FILTER_FORWARD, "filter", "forward", DNAT_PRIORITY - 10),
    (names.FILTER_OUTPUT, "filter", "output", DNAT_PRIORITY - 10),
    (names.FILTER_OUTPUT_POST_DNAT, "filter", "output", DNAT_PRIORITY + 10),
    (names.NAT_PREROUTING, "nat", "prerouting", DNAT_PRIORITY),
    (names.NAT_OUTPUT, "nat", "output", DNAT_PRIORITY),
    (names.NAT_POSTROUTING, "nat", "postrouting", SNAT_PRIORITY),
)

# Jumps from the base chains: (target, from, match). Endpoint checks may REJECT, which kernels
# before 5.9 allow only in input, forward and output hooks, hence not from filter-prerouting.
JUMPS = (
    (names.NODEPORT_ENDPOINTS_CHECK, names.FILTER_INPUT, "ct state new"),
    (names.SERVICE_ENDPOINTS_CHECK, names.FILTER_INPUT, "ct state new"),
    (names.SERVICE_ENDPOINTS_CHECK, names.FILTER_FORWARD, "ct state new"),
    (names.SERVICE_ENDPOINTS_CHECK, names.FILTER_OUTPUT, "ct state new"),
    (names.FIREWALL_CHECK, names.FILTER_PREROUTING, "ct state new"),
    (names.FIREWALL_CHECK, names.FILTER_OUTPUT, "ct state new"),
    (names.SERVICES, names.NAT_OUTPUT, ""),
    (names.SERVICES, names.NAT_PREROUTING, ""),
    (names.MASQUERADING, names.NAT_POSTROUTING, ""),
    (names.CLUSTER_IPS_CHECK, names.FILTER_FORWARD, "ct state new"),
    (names.CLUSTER_IPS_CHECK, names.FILTER_OUTPUT_POST_DNAT, "ct state new"),
)

# The element containers a full sync flushes (nodeport-ips is handled with the node's addresses).
ELEMENT_CONTAINERS = (names.CLUSTER_IPS, names.SERVICE_IPS, names.FIREWALL_IPS, names.NO_ENDPOINT_SERVICES,
                      names.NO_ENDPOINT_NODEPORTS, names.SERVICE_NODEPORTS)
SETS = frozenset({names.CLUSTER_IPS, names.NODEPORT_IPS})

# Kernels before 6.2 see that a chain is no longer referenced only a moment after the map
# element that referred to it is gone; upstream waits this long before deleting a stale chain.
STALE_CHAIN_DELAY_SECONDS = 1.0

ElementKey = tuple[str, str]  # (container, key)


# --- state between syncs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NftablesState:
    """What the kernel's kube-proxy table holds once a sync is applied: the next sync's `previous`.

    Service chains are known through the services that own them, so a partial sync copies nothing
    of the size of the cluster but the element maps.
    """

    family: str
    services: Mapping[str, tuple[ServiceObjects, ...]] = field(default_factory=dict)  # by "namespace/name"
    # Every element of the six containers: (container, key) -> (value, comment), and which services want it.
    elements: Mapping[ElementKey, tuple[str, str]] = field(default_factory=dict)
    claims: Mapping[ElementKey, tuple[str, ...]] = field(default_factory=dict)
    stale_chains: Mapping[str, float] = field(default_factory=dict)  # flushed, unused: chain -> since
    affinity_sets: frozenset[str] = frozenset()
    unowned_chains: frozenset[str] = frozenset()  # service chains in the table that no service owns
    flushed: bool = False  # base chains were re-created once (upstream does it once per process)

    @classmethod
    def existing(cls, family: str, chains: Iterable[str] = (), sets: Iterable[str] = ()) -> NftablesState:
        """What a restarted proxy knows from `nft list chains/sets`: service chains and affinity sets only.

        The next sync is then full; it flushes these chains (they go stale) and deletes the sets no
        service uses.
        """
        return cls(family=family,
                   unowned_chains=frozenset(c for c in chains if names.is_service_chain(c)),
                   affinity_sets=frozenset(s for s in sets if names.is_affinity_set(s)))

    @property
    def active_chains(self) -> frozenset[str]:
        """Service chains in use (computed: proportional to the cluster)."""
        return frozenset(chain for objs in self.services.values() for obj in objs for chain in obj.chains)

    @property
    def kernel_chains(self) -> frozenset[str]:
        return self.active_chains | self.unowned_chains | frozenset(self.stale_chains)


@dataclass(frozen=True)
class NftablesSync:
    """One sync: the transactions to run, in order (`cleanup` first, if any), and the state after them.

    A failed `cleanup` is not fatal (upstream logs it and goes on): run `text` anyway and keep
    `cleanup_failed(now)` as the state. If `text` fails, nothing of it was applied: sync again with
    changed=None and the same `previous` (upstream's needFullSync); chains the cleanup deleted are
    deleted again by that sync's cleanup, whose failure is again harmless, and left alone by its
    `text`.
    """

    text: str  # the sync transaction for `nft -f -`
    cleanup: str  # "delete chain" of stale chains, its own transaction ("" when none is due)
    state: NftablesState
    full: bool
    operations: int  # commands in `text` (knftables' NumOperations)
    deleted_chains: tuple[str, ...] = ()  # what `cleanup` deletes

    def cleanup_failed(self, now: float) -> NftablesState:
        """The state when `cleanup` failed but `text` ran: its chains are still there, stale from `now`."""
        return replace(self.state, stale_chains={**self.state.stale_chains,
                                                 **{chain: now for chain in self.deleted_chains}})


# --- the per-service render cache -------------------------------------------------------------------------------

class NftRenderCache:
    """Rendered ServiceObjects by service port, so a sync renders only service ports whose plan changed."""

    def __init__(self) -> None:
        self._context: tuple[object, ...] | None = None
        self._plan: Plan | None = None
        self._by_name: dict[ServicePortName, tuple[ServicePortPlan, ServiceObjects]] = {}
        self.hits = 0
        self.misses = 0

    def objects_for(self, plan: Plan, sp: ServicePortPlan) -> ServiceObjects:
        if plan is not self._plan:
            self._plan = plan
            context = render_context(plan)
            if context != self._context:
                self._by_name.clear()  # node-wide settings changed: every service renders differently
                self._context = context
        entry = self._by_name.get(sp.name)
        if entry is not None and (entry[0] is sp or entry[0] == sp):
            self.hits += 1
            return entry[1]
        self.misses += 1
        objects = render_service_objects(plan, sp)
        self._by_name[sp.name] = (sp, objects)
        return objects

    def forget_missing(self, plan: Plan) -> None:
        """Drop entries of service ports the plan no longer has (a full sync calls this)."""
        if len(self._by_name) > len(plan.services):
            live = {sp.name for sp in plan.services}
            self._by_name = {k: v for k, v in self._by_name.items() if k in live}


def _objects(plan: Plan, sp: ServicePortPlan, cache: NftRenderCache | None) -> ServiceObjects:
    return cache.objects_for(plan, sp) if cache is not None else render_service_objects(plan, sp)


# --- the transaction ------------------------------------------------------------------------------------------------

class _Tx:
    """knftables' Transaction: commands for one table, one a line."""

    def __init__(self, plan: Plan) -> None:
        self.prefix = f"{nft_family(plan)} {names.TABLE}"
        self.parts: list[str] = []
        self.operations = 0

    def line(self, text: str) -> None:
        self.parts.append(text + "\n")
        self.operations += 1

    def block(self, text: str, operations: int) -> None:
        """Lines written once and kept (a service's chains and rules)."""
        self.parts.append(text)
        self.operations += operations

    def add(self, kind: str, text: str) -> None:
        self.line(f"add {kind} {self.prefix} {text}")

    def flush(self, kind: str, name: str) -> None:
        self.line(f"flush {kind} {self.prefix} {name}")

    def delete(self, kind: str, name: str) -> None:
        self.line(f"delete {kind} {self.prefix} {name}")

    def rule(self, chain: str, rule: str) -> None:
        self.line(f"add rule {self.prefix} {chain} {rule}")

    def ensure_chain(self, chain: str) -> None:
        """Create the chain if needed and empty it, so it holds only what this transaction writes."""
        self.add("chain", chain)
        self.flush("chain", chain)

    def add_element(self, element: Element) -> None:
        self.line(f"add element {self.prefix} {element_text(element)}")

    def delete_element(self, container: str, key: str) -> None:
        self.line(f"delete element {self.prefix} {container} {{ {key} }}")

    def text(self) -> str:
        return "".join(self.parts)


def element_text(element: Element) -> str:
    """An element as knftables writes it: "map { key comment "..." : value }"."""
    comment = f" comment {quote(element.comment)}" if element.comment else ""
    value = f" : {element.value}" if element.value else ""
    return f"{element.container} {{ {element.key}{comment}{value} }}"


def container_kind(container: str) -> str:
    return "set" if container in SETS else "map"


# --- the fixed objects --------------------------------------------------------------------------------------------

def nodeport_match_all(plan: Plan) -> bool:
    """No --nodeport-addresses, or one that is the whole address space: NodePorts on every local address."""
    if plan.nodeport_ips is None:
        return True
    zero = "::/0" if nft_family(plan) == "ip6" else "0.0.0.0/0"
    return any(entry.strip() == zero for entry in plan.config.nodeport_addresses)


def nodeport_set_ips(plan: Plan) -> tuple[str, ...]:
    """The nodeport-ips set: node addresses chosen by --nodeport-addresses, never loopback."""
    ips = plan.nodeport_ips or ()
    return tuple(ip for ip in ips if not (ip == "::1" or ip.startswith("127.")))


def _jump_rule(target: str, match: str) -> str:
    return f"{match} jump {target}" if match else f"jump {target}"


def _mark(plan: Plan) -> str:
    # Go's "%#08x": eight hex digits after the 0x, e.g. 0x00004000.
    return f"0x{plan.masquerade_mark:08x}"


@dataclass(frozen=True)
class FixedObjects:
    """The table's objects that do not depend on services, as kube-proxy's setupNFTables writes them."""

    chains: tuple[tuple[str, str], ...]  # (name, spec text after the name, or "")
    sets: tuple[tuple[str, str], ...]  # sets and maps: (name, spec)
    rules: tuple[tuple[str, str], ...]
    nodeport_ips: tuple[str, ...] | None  # None: no nodeport-ips set


def fixed_objects(plan: Plan) -> FixedObjects:
    fam, addr = nft_family(plan), addr_type(plan)
    no_localhost = "ip6 daddr != ::1" if fam == "ip6" else "ip daddr != 127.0.0.0/8"
    match_all = nodeport_match_all(plan)
    chains = [(name, f"{{ type {kind} hook {hook} priority {prio} ; }}") for name, kind, hook, prio in BASE_CHAINS]
    for target in dict.fromkeys([j[0] for j in JUMPS] + [names.SERVICES, names.CLUSTER_IPS_CHECK,
                                                         names.MASQUERADING, names.MARK_FOR_MASQUERADE]):
        chains.append((target, ""))
    chains.append((names.REJECT_CHAIN, f"{{ comment {quote('helper for @no-endpoint-services / @no-endpoint-nodeports')} ; }}"))
    rules = [(src, _jump_rule(target, match)) for target, src, match in JUMPS]
    mark = _mark(plan)
    rules += [
        (names.MARK_FOR_MASQUERADE, f"mark set mark or {mark}"),
        (names.MASQUERADING, f"mark and {mark} == 0 return"),
        # Clear the mark so a packet that goes round the stack again is not masqueraded twice.
        (names.MASQUERADING, f"mark set mark xor {mark}"),
        (names.MASQUERADING, "masquerade fully-random"),
        (names.CLUSTER_IPS_CHECK, f"{fam} daddr @{names.CLUSTER_IPS} reject "
                                  f"comment {quote('Reject traffic to invalid ports of ClusterIPs')}"),
    ]
    cidrs = service_cidrs_of_family(plan.config)
    if cidrs:
        rules.append((names.CLUSTER_IPS_CHECK, f"{fam} daddr {{ {','.join(cidrs)} }} drop "
                                               f"comment {quote('Drop traffic to unallocated ClusterIPs')}"))
    rules.append((names.REJECT_CHAIN, "reject"))
    dispatch = "daddr . meta l4proto . th dport vmap"
    rules.append((names.SERVICE_ENDPOINTS_CHECK, f"{fam} {dispatch} @{names.NO_ENDPOINT_SERVICES}"))
    nodeports_at = no_localhost if match_all else f"{fam} daddr @{names.NODEPORT_IPS}"
    rules.append((names.NODEPORT_ENDPOINTS_CHECK,
                  f"{nodeports_at} meta l4proto . th dport vmap @{names.NO_ENDPOINT_NODEPORTS}"))
    rules.append((names.FIREWALL_CHECK, f"{fam} {dispatch} @{names.FIREWALL_IPS}"))
    rules.append((names.SERVICES, f"{fam} {dispatch} @{names.SERVICE_IPS}"))
    nodeports_at = f"fib daddr type local {no_localhost}" if match_all else f"{fam} daddr @{names.NODEPORT_IPS}"
    rules.append((names.SERVICES, f"{nodeports_at} meta l4proto . th dport vmap @{names.SERVICE_NODEPORTS}"))
    verdict_map = f"{addr} . inet_proto . inet_service : verdict"
    sets = [
        (names.CLUSTER_IPS, f"{{ type {addr} ; comment {quote('Active ClusterIPs')} ; }}"),
        (names.NODEPORT_IPS, f"{{ type {addr} ; comment {quote('IPs that accept NodePort traffic')} ; }}"),
        (names.NO_ENDPOINT_SERVICES, f"{{ type {verdict_map} ; comment "
                                     f"{quote('vmap to drop or reject packets to services with no endpoints')} ; }}"),
        (names.NO_ENDPOINT_NODEPORTS, f"{{ type inet_proto . inet_service : verdict ; comment "
                                      f"{quote('vmap to drop or reject packets to service nodeports with no endpoints')} ; }}"),
        (names.FIREWALL_IPS, f"{{ type {verdict_map} ; comment "
                             f"{quote('destinations that are subject to LoadBalancerSourceRanges')} ; }}"),
        (names.SERVICE_IPS, f"{{ type {verdict_map} ; comment {quote('ClusterIP, ExternalIP and LoadBalancer IP traffic')} ; }}"),
        (names.SERVICE_NODEPORTS, f"{{ type inet_proto . inet_service : verdict ; comment {quote('NodePort traffic')} ; }}"),
    ]
    return FixedObjects(tuple(chains), tuple(sets), tuple(rules), None if match_all else nodeport_set_ips(plan))


def _write_setup(tx: _Tx, plan: Plan, fixed: FixedObjects, recreate_base_chains: bool) -> None:
    """A full sync's first part, in setupNFTables' order: fixed objects added and emptied, rules rewritten."""
    specs = dict(fixed.chains) | dict(fixed.sets)
    rules: dict[str, list[str]] = {}
    for chain, rule in fixed.rules:
        rules.setdefault(chain, []).append(rule)
    tx.add("table", f"{{ comment {quote(names.TABLE_COMMENT)} ; }}")
    if recreate_base_chains:
        # Deleting them once lets a base chain's priority change; "add" first so "delete" cannot fail.
        for name, *_ in BASE_CHAINS:
            tx.add("chain", name)
            tx.delete("chain", name)
    for name, *_ in BASE_CHAINS:
        tx.add("chain", f"{name} {specs[name]}")
        tx.flush("chain", name)
    created: set[str] = set()
    for target, src, match in JUMPS:
        if target not in created:
            created.add(target)
            tx.ensure_chain(target)
        tx.rule(src, _jump_rule(target, match))
    for chain in (names.SERVICES, names.CLUSTER_IPS_CHECK, names.MASQUERADING, names.MARK_FOR_MASQUERADE):
        if chain not in created:
            created.add(chain)
            tx.ensure_chain(chain)
    for chain in (names.MARK_FOR_MASQUERADE, names.MASQUERADING):
        for rule in rules[chain]:
            tx.rule(chain, rule)
    tx.add("set", f"{names.CLUSTER_IPS} {specs[names.CLUSTER_IPS]}")
    for rule in rules[names.CLUSTER_IPS_CHECK]:
        tx.rule(names.CLUSTER_IPS_CHECK, rule)
    tx.add("set", f"{names.NODEPORT_IPS} {specs[names.NODEPORT_IPS]}")
    if fixed.nodeport_ips is None:
        tx.delete("set", names.NODEPORT_IPS)  # after "add", so deleting cannot fail
    else:
        tx.flush("set", names.NODEPORT_IPS)
        for ip in fixed.nodeport_ips:
            tx.add_element(Element(names.NODEPORT_IPS, ip))
    for container in (names.NO_ENDPOINT_SERVICES, names.NO_ENDPOINT_NODEPORTS):
        tx.add("map", f"{container} {specs[container]}")
    tx.add("chain", f"{names.REJECT_CHAIN} {specs[names.REJECT_CHAIN]}")
    tx.flush("chain", names.REJECT_CHAIN)
    for chain in (names.REJECT_CHAIN, names.SERVICE_ENDPOINTS_CHECK, names.NODEPORT_ENDPOINTS_CHECK):
        for rule in rules[chain]:
            tx.rule(chain, rule)
    tx.add("map", f"{names.FIREWALL_IPS} {specs[names.FIREWALL_IPS]}")
    for rule in rules[names.FIREWALL_CHECK]:
        tx.rule(names.FIREWALL_CHECK, rule)
    for container in (names.SERVICE_IPS, names.SERVICE_NODEPORTS):
        tx.add("map", f"{container} {specs[container]}")
    for rule in rules[names.SERVICES]:
        tx.rule(names.SERVICES, rule)
    for container in ELEMENT_CONTAINERS:
        tx.flush(container_kind(container), container)


# --- element bookkeeping (nftElementStorage) ----------------------------------------------------------------------

class _Elements:
    """The elements of the six containers, updated like upstream's nftElementStorage.

    An element is added when new, deleted and re-added when its value changed, and deleted at the
    end of the transaction when no service wants it any more. Claims record which services want
    a key, so two services sharing one (an externalIP:port listed twice) do not delete it for each
    other.
    """

    def __init__(self, previous: NftablesState | None) -> None:
        self.elements: dict[ElementKey, tuple[str, str]] = dict(previous.elements) if previous else {}
        self.claims: dict[ElementKey, tuple[str, ...]] = dict(previous.claims) if previous else {}
        self.released: dict[ElementKey, None] = {}
        self.ensured: set[ElementKey] = set()  # written by a changed service in this sync

    def release(self, service_key: str, objects: Iterable[ServiceObjects]) -> None:
        """Forget what a changed service wanted; it claims again what it still wants."""
        for obj in objects:
            for element in obj.elements:
                ck = (element.container, element.key)
                left = tuple(k for k in self.claims.get(ck, ()) if k != service_key)
                if left:
                    self.claims[ck] = left
                else:
                    self.claims.pop(ck, None)
                self.released[ck] = None

    def ensure(self, tx: _Tx, service_key: str, element: Element) -> None:
        ck = (element.container, element.key)
        claimants = self.claims.get(ck, ())
        if service_key not in claimants:
            self.claims[ck] = (*claimants, service_key)
        self.ensured.add(ck)
        existing = self.elements.get(ck)
        if existing is not None and existing[0] == element.value:
            return
        if existing is not None:
            tx.delete_element(element.container, element.key)
        tx.add_element(element)
        self.elements[ck] = (element.value, element.comment)

    def settle(self, tx: _Tx, services: Mapping[str, tuple[ServiceObjects, ...]]) -> None:
        """Delete what no service wants; give a key another service still wants that service's value."""
        for ck in self.released:
            claimants = self.claims.get(ck)
            if claimants is None:
                if ck in self.elements:
                    tx.delete_element(*ck)
                    del self.elements[ck]
                continue
            if ck in self.ensured:
                continue
            wanted = _wanted(services, claimants[0], ck)
            if wanted is not None and self.elements.get(ck, ("",))[0] != wanted.value:
                self.ensure(tx, claimants[0], wanted)
        self.released.clear()
        self.ensured.clear()


def _wanted(services: Mapping[str, tuple[ServiceObjects, ...]], service_key: str, ck: ElementKey) -> Element | None:
    for obj in services.get(service_key, ()):
        for element in obj.elements:
            if (element.container, element.key) == ck:
                return element
    return None


# --- the sync -------------------------------------------------------------------------------------------------------

def _changed_keys(plan: Plan, previous: NftablesState | None, changed: Iterable[str] | None) -> set[str] | None:
    if previous is None or changed is None:
        return None
    if previous.family != plan.family:
        raise ValueError(f"previous state is for {previous.family}, the plan for {plan.family}")
    return set(changed)


def render_nftables(
    plan: Plan,
    *,
    previous: NftablesState | None = None,
    changed: Iterable[str] | None = None,
    now: float = 0.0,
    cache: NftRenderCache | None = None,
    kernel_chains: Iterable[str] | None = None,
    kernel_sets: Iterable[str] | None = None,
) -> NftablesSync:
    """The nft transactions of one sync.

    changed=None (or previous=None) is a full sync; otherwise `changed` holds the "namespace/name"
    of services whose Service or endpoints changed since the sync that produced `previous`. `now`
    is the time in seconds (any monotonic clock) for the stale-chain delay. kernel_chains /
    kernel_sets, when given, are what `nft list chains` / `list sets` show in the table, and
    override what `previous` believes exists (upstream lists them every sync; pass them on a full
    sync after a failure).
    """
    changed_keys = _changed_keys(plan, previous, changed)
    base = previous or NftablesState(family=plan.family)
    if kernel_chains is not None or kernel_sets is not None:
        base = _with_kernel_view(base, kernel_chains, kernel_sets)
    if base.unowned_chains:
        changed_keys = None  # chains nobody owns are found only by a full sync (as after a restart)
    full = changed_keys is None

    cleanup, deleted, stale = _due_stale_chains(plan, base, now)
    tx = _Tx(plan)
    if full:
        _write_setup(tx, plan, fixed_objects(plan), recreate_base_chains=not base.flushed)
        if cache is not None:
            cache.forget_missing(plan)
    elements = _Elements(None if full else base)
    services = {} if full else dict(base.services)
    if full:
        old_chains, old_sets = base.active_chains | base.unowned_chains, base.affinity_sets
        groups = [(key, list(sps)) for key, sps in itertools.groupby(plan.services, lambda sp: sp.name.service_key)]
    else:
        old_chains = frozenset(c for key in changed_keys for obj in base.services.get(key, ()) for c in obj.chains)
        old_sets = frozenset(n for key in changed_keys for obj in base.services.get(key, ()) for n, _ in obj.sets)
        groups = [(key, _service_ports_of(plan, key)) for key in sorted(changed_keys)]
        for key, _ in groups:
            elements.release(key, services.pop(key, ()))
    new_chains: set[str] = set()
    new_sets: set[str] = set()
    for key, sps in groups:
        objs = tuple(_objects(plan, sp, cache) for sp in sps)
        if objs:
            services[key] = services.get(key, ()) + objs if full else objs
        for obj in objs:
            _write_service(tx, elements, obj)
            new_chains.update(obj.chains)
            new_sets.update(name for name, _ in obj.sets)

    # Chains that existed and are no longer used: flush now, delete after the delay. A chain can
    # only come back into use through a changed service, so new_chains is all there is to check.
    for chain in sorted((old_chains | stale.keys()) - new_chains - set(deleted)):
        tx.flush("chain", chain)
        stale[chain] = now
    for chain in [c for c in stale if c in new_chains]:
        del stale[chain]
    # Affinity sets can go at once: nothing outlives its rules' reference.
    for name in sorted(old_sets - new_sets):
        tx.delete("set", name)
    elements.settle(tx, services)

    affinity_sets = frozenset(new_sets) if full else (base.affinity_sets - old_sets) | new_sets
    state = NftablesState(plan.family, services, elements.elements, elements.claims, stale, affinity_sets,
                          flushed=True)
    return NftablesSync(text=tx.text(), cleanup=cleanup, state=state, full=full,
                        operations=tx.operations, deleted_chains=tuple(deleted))


def _service_ports_of(plan: Plan, service_key: str) -> list[ServicePortPlan]:
    """The plan's service ports of one service: a binary search, the plan being sorted by name."""
    namespace, _, name = service_key.partition("/")
    services = plan.services
    start = bisect.bisect_left(services, (namespace, name), key=lambda sp: (sp.name.namespace, sp.name.name))
    end = start
    while end < len(services) and services[end].name.namespace == namespace and services[end].name.name == name:
        end += 1
    return list(services[start:end])


def _with_kernel_view(base: NftablesState, kernel_chains: Iterable[str] | None,
                      kernel_sets: Iterable[str] | None) -> NftablesState:
    """`base` corrected by what `nft list` shows: stale chains that are gone are forgotten, chains
    nobody owns will be flushed by a full sync, affinity sets are what is listed."""
    listed = NftablesState.existing(base.family,
                                    base.kernel_chains if kernel_chains is None else kernel_chains,
                                    base.affinity_sets if kernel_sets is None else kernel_sets)
    present = listed.unowned_chains
    stale = {chain: since for chain, since in base.stale_chains.items() if chain in present}
    return replace(base, stale_chains=stale, affinity_sets=listed.affinity_sets,
                   unowned_chains=present - base.active_chains - stale.keys())


def _due_stale_chains(plan: Plan, base: NftablesState, now: float) -> tuple[str, list[str], dict[str, float]]:
    """The cleanup transaction for stale chains older than the delay, what it deletes, and what stays stale."""
    stale = dict(base.stale_chains)
    deleted = sorted(c for c, since in stale.items() if since < now - STALE_CHAIN_DELAY_SECONDS)
    for chain in deleted:
        del stale[chain]
    tx = _Tx(plan)
    for chain in deleted:
        tx.delete("chain", chain)
    return tx.text(), deleted, stale


def _write_service(tx: _Tx, elements: _Elements, obj: ServiceObjects) -> None:
    """One changed service port: its chains emptied, its elements ensured, its sets and rules written."""
    head, head_ops, body, body_ops = obj.text(tx.prefix)
    tx.block(head, head_ops)
    for element in obj.elements:
        elements.ensure(tx, obj.service_key, element)
    tx.block(body, body_ops)



# --- the whole ruleset as text ------------------------------------------------------------------------------------

def dump_nftables(plan: Plan, *, cache: NftRenderCache | None = None) -> str:
    """The whole table after a sync of this plan, as knftables' fake dumps it: valid `nft -f` input.

    Every object is added before anything refers to it: the table, chains, sets and maps (each
    sorted by name), then each chain's rules in order, then set and map elements.
    """
    fixed = fixed_objects(plan)
    objects = [_objects(plan, sp, cache) for sp in plan.services]
    chains = dict(fixed.chains)
    containers: dict[str, str] = {name: spec for name, spec in fixed.sets
                                  if name != names.NODEPORT_IPS or fixed.nodeport_ips is not None}
    rules: dict[str, list[str]] = {}
    for chain, rule in fixed.rules:
        rules.setdefault(chain, []).append(rule)
    contents: dict[str, dict[str, Element]] = {name: {} for name in containers}
    for ip in fixed.nodeport_ips or ():
        contents[names.NODEPORT_IPS][ip] = Element(names.NODEPORT_IPS, ip)
    for obj in objects:
        for chain in obj.chains:
            chains.setdefault(chain, "")
        containers.update(obj.sets)
        for chain, rule in obj.rules:
            rules.setdefault(chain, []).append(rule)
        for element in obj.elements:
            bucket = contents[element.container]
            existing = bucket.get(element.key)
            if existing is None or existing.value != element.value:
                bucket.pop(element.key, None)  # a changed value is deleted and re-added: it moves last
                bucket[element.key] = element
    prefix = f"{nft_family(plan)} {names.TABLE}"
    lines = [f"add table {prefix} {{ comment {quote(names.TABLE_COMMENT)} ; }}"]
    lines += [f"add chain {prefix} {name} {spec}".rstrip() for name, spec in sorted(chains.items())]
    set_names = sorted(n for n in containers if container_kind(n) == "set" or names.is_affinity_set(n))
    map_names = sorted(n for n in containers if n not in set_names)
    lines += [f"add set {prefix} {name} {containers[name]}" for name in set_names]
    lines += [f"add map {prefix} {name} {containers[name]}" for name in map_names]
    lines += [f"add rule {prefix} {chain} {rule}" for chain in sorted(chains) for rule in rules.get(chain, ())]
    for name in (*set_names, *map_names):
        lines += [f"add element {prefix} {element_text(e)}" for e in contents.get(name, {}).values()]
    return "\n".join(lines) + "\n"
