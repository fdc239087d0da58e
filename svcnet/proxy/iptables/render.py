"""Plan -> iptables-restore text, rule for rule as kube-proxy's iptables proxier writes it.

The output is one iptables-restore input with a *filter and a *nat table, to be
applied with `iptables-restore --noflush` (so chains svcnet does not own are
left alone). Its layout follows pkg/proxy/iptables/proxier.go (v1.32):

- filter: KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-NODEPORTS,
  KUBE-PROXY-FIREWALL (and KUBE-FIREWALL's anti-martian rule when localhost
  NodePorts are on): REJECT for services without endpoints, DROP where a Local
  policy leaves none here, the loadBalancerSourceRanges DROP, health-check
  node ports, and the FORWARD accept rules for marked and established traffic;
- nat: KUBE-POSTROUTING (RETURN unless marked; clear the mark; MASQUERADE),
  KUBE-MARK-MASQ, KUBE-SERVICES (one rule per VIP, then the jump to
  KUBE-NODEPORTS which must stay last), KUBE-NODEPORTS, and per service port
  KUBE-SVC/SVL (probability rules), KUBE-EXT, KUBE-FW and one KUBE-SEP per
  endpoint (hairpin masquerade + DNAT).

Services are written in ServicePortName order (kube-proxy's order is a Go map's,
i.e. random; sorting makes the output reproducible without changing its meaning).

A partial sync (KEP-3453) rewrites the top-level chains and the filter table in
full, but writes the per-service chains only of services that changed; chains
that existed before and are no longer used are flushed and deleted (-X). With
skip_unchanged, top-level chains whose content is unchanged are left out too.
Per-service rules can be kept between syncs in a RenderCache.

The jump rules from the built-in chains (PREROUTING -> KUBE-SERVICES, ...) are
not part of the restore input: kube-proxy ensures them one by one on full
syncs, so other programs' rules in those chains survive (svcnet.proxy.iptables.jumps).
"""
from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass

from svcnet.proxy.iptables import names
from svcnet.proxy.model import IPV6, EndpointInfo
from svcnet.proxy.plan import Plan, ServicePortPlan

FILTER_TOP_CHAINS = (names.KUBE_SERVICES, names.KUBE_EXTERNAL_SERVICES, names.KUBE_FORWARD,
                     names.KUBE_NODEPORTS, names.KUBE_PROXY_FIREWALL)
NAT_TOP_CHAINS = (names.KUBE_SERVICES, names.KUBE_NODEPORTS, names.KUBE_POSTROUTING, names.KUBE_MARK_MASQ)

# nfacct counters kube-proxy creates when the kernel has nfnetlink_acct.
NFACCT_INVALID_DROPPED = "ct_state_invalid_dropped_pkts"
NFACCT_LOCALHOST_NODEPORTS = "localhost_nps_accepted_pkts"

NODEPORTS_LAST_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


# --- rendered output ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderedState:
    """Which svcnet chains exist once a rendered ruleset is applied: the next sync's `previous`."""

    nat_chains: frozenset[str] = frozenset()
    filter_chains: frozenset[str] = frozenset()
    # Fingerprints of what was written into the top-level chains ("filter" for the whole filter
    # table), so a later sync may leave chains whose content is unchanged alone. Empty when unknown.
    written: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_save(cls, nat_save: str, filter_save: str = "") -> RenderedState:
        """What exists according to `iptables-save -t nat` (and `-t filter`) output."""
        return cls(frozenset(_declared_chains(nat_save)), frozenset(_declared_chains(filter_save)))


def _declared_chains(save_text: str) -> list[str]:
    return [line[1:].split()[0] for line in save_text.splitlines() if line.startswith(":") and len(line) > 1]


@dataclass(frozen=True)
class RenderedRules:
    """One sync's iptables-restore input and what it leaves behind."""

    text: str
    chains: RenderedState
    full: bool
    filter_rules: int  # rules svcnet has in the filter table (written whole, or unchanged and skipped)
    nat_rules: int  # nat rules written in this sync
    nat_rules_total: int  # nat rules svcnet has in the kernel after applying
    deleted_chains: tuple[str, ...] = ()


# --- per-service rules ----------------------------------------------------------------------------------------

@dataclass
class _Buffers:
    filter_rules: list[str]
    nat_top_rules: list[str]  # KUBE-SERVICES / KUBE-NODEPORTS: always written
    nat_chains: list[str]  # per-service chain declarations: skipped when unchanged
    nat_rules: list[str]  # per-service chain rules: skipped when unchanged


@dataclass(frozen=True)
class ServiceRules:
    """One service port's share of the ruleset, rendered once and reused while its plan is unchanged."""

    service_key: str  # "namespace/name", as a partial sync names changed services
    filter_rules: tuple[str, ...]
    services_rules: tuple[str, ...]  # its KUBE-SERVICES rules: written every sync
    nodeports_rules: tuple[str, ...]  # its KUBE-NODEPORTS rules: written every sync
    nat_chains: tuple[str, ...]  # the per-service chains it uses, in declaration order
    nat_rules: tuple[str, ...]  # the rules of those chains: written only when the service changed

    @property
    def nat_top_rules(self) -> tuple[str, ...]:
        return self.services_rules + self.nodeports_rules


def _render_context(plan: Plan) -> tuple[object, ...]:
    """Everything outside a ServicePortPlan that _render_service reads."""
    return (plan.family, plan.config, plan.local_traffic, plan.node_ip, plan.localhost_nodeports,
            plan.large_cluster)


def render_service_rules(plan: Plan, sp: ServicePortPlan) -> ServiceRules:
    """The rules of one service port under this plan's node-wide settings."""
    buf = _Buffers([], [], [], [])
    _render_service(plan, sp, buf)
    services_prefix = f"-A {names.KUBE_SERVICES} "
    return ServiceRules(
        service_key=sp.name.service_key,
        filter_rules=tuple(buf.filter_rules),
        services_rules=tuple(line for line in buf.nat_top_rules if line.startswith(services_prefix)),
        nodeports_rules=tuple(line for line in buf.nat_top_rules if not line.startswith(services_prefix)),
        nat_chains=tuple(buf.nat_chains),
        nat_rules=tuple(buf.nat_rules),
    )


class RenderCache:
    """Rendered ServiceRules by service port, so a sync re-renders only services whose plan changed.

    With 10,000 services a full render costs seconds, while a partial sync should cost
    what changed. An entry is reused when the service port's plan is the same object
    (or equal) and the node-wide settings it was rendered under are unchanged.
    """

    def __init__(self) -> None:
        self._context: tuple[object, ...] | None = None
        self._by_plan: dict[int, tuple[ServicePortPlan, ServiceRules]] = {}  # id(plan) -> entry
        self._by_name: dict[object, tuple[ServicePortPlan, ServiceRules]] = {}
        self.hits = 0
        self.misses = 0

    def rules_for_all(self, plan: Plan) -> list[ServiceRules]:
        """Every service port's rules, in plan order; only new or changed plans are rendered."""
        context = _render_context(plan)
        if context != self._context:
            self._by_plan.clear()
            self._by_name.clear()
            self._context = context
        by_plan = self._by_plan
        result: list[ServiceRules] = []
        misses = 0
        for sp in plan.services:
            entry = by_plan.get(id(sp))
            if entry is None or entry[0] is not sp:
                entry = self._by_name.get(sp.name)
                if entry is None or entry[0] != sp:
                    misses += 1
                    entry = (sp, render_service_rules(plan, sp))
                    self._by_name[sp.name] = entry
                by_plan[id(sp)] = entry
            result.append(entry[1])
        self.misses += misses
        self.hits += len(result) - misses
        if len(by_plan) > 2 * len(result) or len(self._by_name) > len(result):
            # Forget plans that are gone (ids of dead objects may be reused: entries keep them alive).
            live = {id(sp): sp for sp in plan.services}
            self._by_plan = {k: v for k, v in by_plan.items() if live.get(k) is v[0]}
            names_live = {sp.name for sp in plan.services}
            self._by_name = {k: v for k, v in self._by_name.items() if k in names_live}
        return result


def _local_match(plan: Plan, negate: bool) -> str:
    traffic = plan.local_traffic
    assert traffic is not None
    flag = "-s" if traffic.kind == "source-cidr" else "-i"
    return f"! {flag} {traffic.value}" if negate else f"{flag} {traffic.value}"


def _service_comment(plan: Plan, comment: str) -> str:
    """Comments on SVC->SEP and SEP rules are dropped in large clusters (restore size)."""
    return "" if plan.large_cluster else f" -m comment --comment {comment}"


def _write_endpoint_dispatch(plan: Plan, sp: ServicePortPlan, chain: str,
                             endpoints: tuple[EndpointInfo, ...], out: list[str]) -> None:
    name = sp.name
    if sp.info.session_affinity_client_ip:
        # A client seen recently goes back to the same endpoint before any dice are rolled.
        for endpoint in endpoints:
            sep = names.endpoint_chain(name, endpoint)
            comment = _service_comment(plan, f'"{name} -> {endpoint.address}"')
            out.append(f"-A {chain}{comment} -m recent --name {sep} --rcheck "
                       f"--seconds {sp.info.sticky_max_age_seconds} --reap -j {sep}")
    count = len(endpoints)
    for index, endpoint in enumerate(endpoints):
        sep = names.endpoint_chain(name, endpoint)
        comment = _service_comment(plan, f'"{name} -> {endpoint.address}"')
        statistic = ""
        if index < count - 1:
            # 1/n of what is left, so every endpoint gets 1/count overall; the last is unconditional.
            statistic = f" -m statistic --mode random --probability {1.0 / (count - index):0.10f}"
        out.append(f"-A {chain}{comment}{statistic} -j {sep}")


@dataclass(frozen=True)
class _ServiceNames:
    """The chain names and match text one service port's rules share."""

    match_proto: str  # "-m tcp -p tcp"
    vip: str  # "-d CLUSTER-IP --dport PORT"
    svc: str  # KUBE-SVC: dispatch to every endpoint
    svl: str  # KUBE-SVL: dispatch to this node's endpoints
    ext: str  # KUBE-EXT: traffic from outside
    fw: str  # KUBE-FW: loadBalancerSourceRanges
    internal: str  # the chain cluster-IP traffic goes to (SVC or SVL)
    external_policy: str  # the chain KUBE-EXT ends in (SVC or SVL)
    lb: str  # the chain load balancer IPs go to (FW or EXT)
    block_comment: str  # why traffic is rejected or dropped

    @classmethod
    def of(cls, sp: ServicePortPlan) -> _ServiceNames:
        name = sp.name
        proto = sp.info.protocol.lower()
        svc, svl = names.cluster_policy_chain(name), names.local_policy_chain(name)
        ext, fw = names.external_chain(name), names.firewall_chain(name)
        return cls(
            match_proto=f"-m {proto} -p {proto}",
            vip=f"-d {sp.info.cluster_ip} --dport {sp.info.port}",
            svc=svc, svl=svl, ext=ext, fw=fw,
            internal=svl if sp.internal_policy_local else svc,
            external_policy=svl if sp.external_policy_local else svc,
            lb=fw if sp.uses_firewall else ext,
            block_comment=f'"{name} has no endpoints"' if not sp.has_endpoints else f'"{name} has no local endpoints"',
        )


def _render_service(plan: Plan, sp: ServicePortPlan, buf: _Buffers) -> None:
    """Write one service port's rules into the buffers."""
    chains = _ServiceNames.of(sp)
    _write_frontends(plan, sp, chains, buf)
    _write_service_chains(plan, sp, chains, buf)


def _write_frontends(plan: Plan, sp: ServicePortPlan, n: _ServiceNames, buf: _Buffers) -> None:
    """Where traffic enters: the service's rules in KUBE-SERVICES / KUBE-NODEPORTS and in the filter table."""
    info = sp.info
    name = sp.name
    filt = buf.filter_rules
    top = buf.nat_top_rules

    # Cluster IP.
    if sp.has_internal_endpoints:
        top.append(f'-A {names.KUBE_SERVICES} -m comment --comment "{name} cluster IP" {n.match_proto} {n.vip} '
                   f"-j {n.internal}")
    else:
        filt.append(f"-A {names.KUBE_SERVICES} -m comment --comment {n.block_comment} {n.match_proto} {n.vip} "
                    f"-j {sp.internal_block}")

    # External IPs.
    for ip in info.external_ips:
        dest = f"-d {ip} --dport {info.port}"
        if sp.has_endpoints:
            top.append(f'-A {names.KUBE_SERVICES} -m comment --comment "{name} external IP" {n.match_proto} '
                       f"{dest} -j {n.ext}")
        if not sp.has_external_endpoints:
            filt.append(f"-A {names.KUBE_EXTERNAL_SERVICES} -m comment --comment {n.block_comment} "
                        f"{n.match_proto} {dest} -j {sp.external_block}")

    # LoadBalancer ingress IPs.
    for ip in info.load_balancer_vips:
        dest = f"-d {ip} --dport {info.port}"
        if sp.has_endpoints:
            top.append(f'-A {names.KUBE_SERVICES} -m comment --comment "{name} loadbalancer IP" {n.match_proto} '
                       f"{dest} -j {n.lb}")
        if sp.uses_firewall:
            filt.append(f'-A {names.KUBE_PROXY_FIREWALL} -m comment --comment "{name} traffic not accepted by '
                        f'{n.fw}" {n.match_proto} {dest} -j DROP')
    if not sp.has_external_endpoints:
        for ip in info.load_balancer_vips:
            filt.append(f"-A {names.KUBE_EXTERNAL_SERVICES} -m comment --comment {n.block_comment} "
                        f"{n.match_proto} -d {ip} --dport {info.port} -j {sp.external_block}")

    # NodePort (not subject to loadBalancerSourceRanges, as upstream).
    if info.node_port:
        if sp.has_endpoints:
            if plan.localhost_nodeports and plan.config.nfacct_counters:
                top.append(f"-A {names.KUBE_NODEPORTS} -m comment --comment {name} {n.match_proto} "
                           f"-d 127.0.0.0/8 --dport {info.node_port} -m nfacct --nfacct-name "
                           f"{NFACCT_LOCALHOST_NODEPORTS} -j {n.ext}")
            top.append(f"-A {names.KUBE_NODEPORTS} -m comment --comment {name} {n.match_proto} "
                       f"--dport {info.node_port} -j {n.ext}")
        if not sp.has_external_endpoints:
            filt.append(f"-A {names.KUBE_EXTERNAL_SERVICES} -m comment --comment {n.block_comment} "
                        f"-m addrtype --dst-type LOCAL {n.match_proto} --dport {info.node_port} "
                        f"-j {sp.external_block}")

    # Health check node port: accepted whether or not this node has endpoints.
    if info.health_check_node_port:
        filt.append(f'-A {names.KUBE_NODEPORTS} -m comment --comment "{name} health check node port" '
                    f"-m tcp -p tcp --dport {info.health_check_node_port} -j ACCEPT")


def _write_service_chains(plan: Plan, sp: ServicePortPlan, n: _ServiceNames, buf: _Buffers) -> None:
    """The service port's own chains: masquerade marks, KUBE-EXT, KUBE-FW, KUBE-SVC/SVL and one KUBE-SEP each."""
    chains = buf.nat_chains
    rules = buf.nat_rules

    # Masquerade cluster-IP traffic from outside the pod network (or all of it).
    if sp.has_internal_endpoints:
        match = f'-m comment --comment "{sp.name} cluster IP" {n.match_proto} {n.vip}'
        if plan.config.masquerade_all:
            rules.append(f"-A {n.internal} {match} -j {names.KUBE_MARK_MASQ}")
        elif plan.local_traffic is not None:
            rules.append(f"-A {n.internal} {match} {_local_match(plan, negate=True)} -j {names.KUBE_MARK_MASQ}")

    if sp.uses_external_chain:
        chains.append(n.ext)
        _write_external_chain(plan, sp, n, rules)
    if sp.uses_firewall:
        chains.append(n.fw)
        _write_firewall_chain(plan, sp, n, rules)
    if sp.uses_cluster_policy:
        chains.append(n.svc)
        _write_endpoint_dispatch(plan, sp, n.svc, sp.cluster_endpoints, rules)
    if sp.uses_local_policy:
        chains.append(n.svl)
        _write_endpoint_dispatch(plan, sp, n.svl, sp.local_endpoints, rules)

    for endpoint in sp.reachable_endpoints:
        sep = names.endpoint_chain(sp.name, endpoint)
        chains.append(sep)
        head = f"-A {sep}{_service_comment(plan, str(sp.name))}"
        # Hairpin: a pod reaching itself through the Service must be SNATed or it answers itself directly.
        rules.append(f"{head} -s {endpoint.ip} -j {names.KUBE_MARK_MASQ}")
        affinity = f" -m recent --name {sep} --set" if sp.info.session_affinity_client_ip else ""
        rules.append(f"{head}{affinity} {n.match_proto} -j DNAT --to-destination {endpoint.address}")


def _write_external_chain(plan: Plan, sp: ServicePortPlan, n: _ServiceNames, rules: list[str]) -> None:
    """KUBE-EXT: masquerade what may leave the node again, then on to the external policy's chain."""
    name = sp.name
    if not sp.external_policy_local:
        # The endpoint may be on another node: SNAT so the reply comes back through here.
        rules.append(f'-A {n.ext} -m comment --comment "masquerade traffic for {name} external '
                     f'destinations" -j {names.KUBE_MARK_MASQ}')
    else:
        if plan.local_traffic is not None:
            # Pods reaching an external VIP are treated as if they had gone out and come back.
            rules.append(f'-A {n.ext} -m comment --comment "pod traffic for {name} external '
                         f'destinations" {_local_match(plan, negate=False)} -j {n.svc}')
        rules.append(f'-A {n.ext} -m comment --comment "masquerade LOCAL traffic for {name} external '
                     f'destinations" -m addrtype --src-type LOCAL -j {names.KUBE_MARK_MASQ}')
        rules.append(f'-A {n.ext} -m comment --comment "route LOCAL traffic for {name} external '
                     f'destinations" -m addrtype --src-type LOCAL -j {n.svc}')
    if sp.has_external_endpoints:
        rules.append(f"-A {n.ext} -j {n.external_policy}")


def _write_firewall_chain(plan: Plan, sp: ServicePortPlan, n: _ServiceNames, rules: list[str]) -> None:
    """KUBE-FW: load balancer traffic from loadBalancerSourceRanges goes on to KUBE-EXT; the rest is dropped."""
    head = f'-A {n.fw} -m comment --comment "{sp.name} loadbalancer IP"'
    allow_from_node = False
    for cidr in sp.info.load_balancer_source_ranges:
        rules.append(f"{head} -s {cidr} -j {n.ext}")
        if plan.node_ip and _cidr_contains(cidr, plan.node_ip):
            allow_from_node = True
    if allow_from_node:
        # A VIP bound on the node loops back with the VIP as source.
        for ip in sp.info.load_balancer_vips:
            rules.append(f"{head} -s {ip} -j {n.ext}")
    rules.append(f'-A {n.fw} -m comment --comment "other traffic to {sp.name} will be dropped by '
                 f'{names.KUBE_PROXY_FIREWALL}"')


def _cidr_contains(cidr: str, ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


# --- the whole ruleset ------------------------------------------------------------------------------------------

def _mark(plan: Plan) -> str:
    # Go's "%#08x": eight hex digits after the 0x, e.g. 0x00004000.
    return f"0x{plan.masquerade_mark:08x}"


def _nodeports_jumps(plan: Plan) -> list[str]:
    head = f"-A {names.KUBE_SERVICES} -m comment --comment {NODEPORTS_LAST_COMMENT}"
    ipv6 = plan.family == IPV6
    if plan.nodeport_ips is None:
        destination = "-m addrtype --dst-type LOCAL"
        if ipv6:
            destination += " ! -d ::1/128"  # localhost NodePorts never work on IPv6
        elif not plan.localhost_nodeports:
            destination += " ! -d 127.0.0.0/8"
        return [f"{head} {destination} -j {names.KUBE_NODEPORTS}"]
    lines = []
    for ip in plan.nodeport_ips:
        loopback = ip == "::1" or ip.startswith("127.")
        if loopback and (ipv6 or not plan.localhost_nodeports):
            continue
        lines.append(f"{head} -d {ip} -j {names.KUBE_NODEPORTS}")
    return lines


def render_iptables(
    plan: Plan,
    *,
    previous: RenderedState | None = None,
    changed: set[str] | frozenset[str] | None = None,
    delete_stale: bool = True,
    cache: RenderCache | None = None,
    skip_unchanged: bool = False,
) -> RenderedRules:
    """The iptables-restore input for this plan.

    changed=None is a full sync. Otherwise it is the set of "namespace/name"
    services whose rules changed since the sync that produced `previous`; only
    their per-service chains are written. Chains in `previous` that are no
    longer used are flushed and deleted unless delete_stale is False (kube-proxy
    skips that in large clusters except once per sync period). A RenderCache
    kept across syncs makes the cost of unchanged services a few list appends.

    skip_unchanged=True (partial syncs only) leaves out the top-level chains and
    the filter table when their content is what `previous` says was written, so a
    one-endpoint change at 10,000 services does not rewrite 10,000 KUBE-SERVICES
    rules; kube-proxy always rewrites them. A chain flushed by hand is then put
    back by the next full sync rather than the next partial one.
    """
    full = changed is None
    filter_chains, filter_rules, postrouting_rules = _node_wide_rules(plan)
    from_chain = itertools.chain.from_iterable
    if cache is not None:
        all_rules = cache.rules_for_all(plan)
    else:
        all_rules = [render_service_rules(plan, sp) for sp in plan.services]
    filter_rules.extend(from_chain(r.filter_rules for r in all_rules))
    kube_services = list(from_chain(r.services_rules for r in all_rules))
    kube_nodeports = list(from_chain(r.nodeports_rules for r in all_rules))
    active = set(from_chain(r.nat_chains for r in all_rules))
    to_write = all_rules if full else [r for r in all_rules if r.service_key in changed]
    service_chains = list(from_chain(r.nat_chains for r in to_write))
    service_chain_rules = list(from_chain(r.nat_rules for r in to_write))
    # Unchanged services' chains stay as they are in the kernel; count their rules for the totals.
    skipped_nat_rules = 0 if full else sum(len(r.nat_rules) for r in all_rules) - len(service_chain_rules)

    stale = [] if previous is None else sorted(
        c for c in previous.nat_chains - active if names.is_service_chain(c))
    deleted, kept_stale = (stale, []) if delete_stale else ([], stale)
    kube_services.extend(_nodeports_jumps(plan))
    filter_rules.extend(_forward_rules(plan))

    # The top-level units: each is written whole (declaring a chain flushes it) or, when asked to
    # and unchanged since `previous`, not at all.
    units = {
        "filter": (tuple(filter_chains), filter_rules),
        f"nat/{names.KUBE_POSTROUTING}": ((names.KUBE_POSTROUTING, names.KUBE_MARK_MASQ), postrouting_rules),
        f"nat/{names.KUBE_SERVICES}": ((names.KUBE_SERVICES,), kube_services),
        f"nat/{names.KUBE_NODEPORTS}": ((names.KUBE_NODEPORTS,), kube_nodeports),
    }
    written = tuple((unit, hash(tuple(unit_rules))) for unit, (_, unit_rules) in units.items())
    unchanged: set[str] = set()
    if skip_unchanged and previous is not None and previous.written:
        unchanged = {unit for unit, digest in written if (unit, digest) in set(previous.written)}

    lines = []
    if "filter" not in unchanged:
        lines.extend([f"*{names.TABLE_FILTER}", *(f":{c} - [0:0]" for c in filter_chains), *filter_rules, "COMMIT"])
    nat_lines, written_top, skipped_top = _nat_block(units, unchanged, service_chains, service_chain_rules, deleted)
    lines.extend(nat_lines)
    nat_rules_written = len(service_chain_rules) + written_top

    return RenderedRules(
        text="\n".join(lines) + "\n",
        chains=RenderedState(
            nat_chains=frozenset(NAT_TOP_CHAINS) | active | set(kept_stale),
            filter_chains=frozenset(filter_chains),
            written=written,
        ),
        full=full,
        filter_rules=len(filter_rules),
        nat_rules=nat_rules_written,
        nat_rules_total=nat_rules_written + skipped_nat_rules + skipped_top,
        deleted_chains=tuple(deleted),
    )


def _node_wide_rules(plan: Plan) -> tuple[list[str], list[str], list[str]]:
    """The filter chains and rules every sync starts with, and KUBE-POSTROUTING / KUBE-MARK-MASQ."""
    mark = _mark(plan)
    filter_chains = list(FILTER_TOP_CHAINS)
    filter_rules: list[str] = []
    postrouting_rules = [
        f"-A {names.KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
        # Clear the mark so a packet that goes round the stack again is not masqueraded twice.
        f"-A {names.KUBE_POSTROUTING} -j MARK --xor-mark {mark}",
        f'-A {names.KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
        f"-j MASQUERADE" + (" --random-fully" if plan.config.random_fully else ""),
        f"-A {names.KUBE_MARK_MASQ} -j MARK --or-mark {mark}",
    ]
    if plan.family != IPV6 and plan.localhost_nodeports:
        # route_localnet opens 127.0.0.0/8 to the network; this closes it again (issue 90259).
        filter_chains.append(names.KUBE_FIREWALL)
        filter_rules.append(f'-A {names.KUBE_FIREWALL} -m comment --comment "block incoming localnet '
                            f'connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate '
                            f"RELATED,ESTABLISHED,DNAT -j DROP")
    return filter_chains, filter_rules, postrouting_rules


def _forward_rules(plan: Plan) -> list[str]:
    """KUBE-FORWARD: drop INVALID (unless TCP is liberal), accept marked and established traffic."""
    mark = _mark(plan)
    rules = []
    if not plan.config.conntrack_tcp_be_liberal:
        nfacct = f" -m nfacct --nfacct-name {NFACCT_INVALID_DROPPED}" if plan.config.nfacct_counters else ""
        rules.append(f"-A {names.KUBE_FORWARD} -m conntrack --ctstate INVALID{nfacct} -j DROP")
    rules.append(f'-A {names.KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" '
                 f"-m mark --mark {mark}/{mark} -j ACCEPT")
    rules.append(f'-A {names.KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
                 f"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    return rules


def _nat_block(units: dict[str, tuple[tuple[str, ...], list[str]]], unchanged: set[str],
               service_chains: list[str], service_chain_rules: list[str], deleted: list[str],
               ) -> tuple[list[str], int, int]:
    """The *nat block, and how many top-level rules it writes and leaves out (unchanged units)."""
    written_top = skipped_top = 0
    body: list[str] = []
    for unit in (f"nat/{names.KUBE_POSTROUTING}", f"nat/{names.KUBE_SERVICES}", f"nat/{names.KUBE_NODEPORTS}"):
        unit_rules = units[unit][1]
        if unit in unchanged:
            skipped_top += len(unit_rules)
            continue
        body.extend(unit_rules)
        written_top += len(unit_rules)
    skipped_chains = {c for unit in unchanged if unit != "filter" for c in units[unit][0]}
    lines = [f"*{names.TABLE_NAT}"]
    lines.extend(f":{c} - [0:0]" for c in NAT_TOP_CHAINS if c not in skipped_chains)
    # Declaring a stale chain flushes it, so its -X (last: nothing refers to it any more) can succeed.
    lines.extend(f":{c} - [0:0]" for c in (*service_chains, *deleted))
    lines.extend(body)
    lines.extend(service_chain_rules)
    lines.extend(f"-X {chain}" for chain in deleted)
    lines.append("COMMIT")
    return lines, written_top, skipped_top
