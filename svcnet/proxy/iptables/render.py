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
syncs, so other programs' rules in those chains survive. jump_rules() lists them.
"""
from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from svcnet.proxy.iptables import names
from svcnet.proxy.model import IPV6, EndpointInfo
from svcnet.proxy.plan import Plan, ServicePortPlan

TABLE_FILTER = "filter"
TABLE_NAT = "nat"

FILTER_TOP_CHAINS = (names.KUBE_SERVICES, names.KUBE_EXTERNAL_SERVICES, names.KUBE_FORWARD,
                     names.KUBE_NODEPORTS, names.KUBE_PROXY_FIREWALL)
NAT_TOP_CHAINS = (names.KUBE_SERVICES, names.KUBE_NODEPORTS, names.KUBE_POSTROUTING, names.KUBE_MARK_MASQ)

# nfacct counters kube-proxy creates when the kernel has nfnetlink_acct.
NFACCT_INVALID_DROPPED = "ct_state_invalid_dropped_pkts"
NFACCT_LOCALHOST_NODEPORTS = "localhost_nps_accepted_pkts"

NODEPORTS_LAST_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


# --- jump rules in the built-in chains --------------------------------------------------------------------

@dataclass(frozen=True)
class JumpRule:
    """A rule kube-proxy ensures (prepends if missing) in a built-in chain."""

    table: str
    chain: str  # built-in chain: INPUT, FORWARD, OUTPUT, PREROUTING, POSTROUTING
    target: str  # the svcnet chain it jumps to
    comment: str = ""
    extra: tuple[str, ...] = ()

    def args(self) -> tuple[str, ...]:
        """The rule as iptables arguments (for `iptables -t T -C/-I CHAIN ARGS...`)."""
        comment = ("-m", "comment", "--comment", self.comment) if self.comment else ()
        return (*self.extra, *comment, "-j", self.target)

    def restore_args(self) -> str:
        """The same arguments quoted for iptables-restore input."""
        return " ".join(f'"{a}"' if " " in a else a for a in self.args())


_CT_NEW = ("-m", "conntrack", "--ctstate", "NEW")
_PORTALS = "kubernetes service portals"
_EXTERNAL_PORTALS = "kubernetes externally-visible service portals"
_LB_FIREWALL = "kubernetes load balancer firewall"

_JUMP_RULES = (
    JumpRule(TABLE_FILTER, "INPUT", names.KUBE_EXTERNAL_SERVICES, _EXTERNAL_PORTALS, _CT_NEW),
    JumpRule(TABLE_FILTER, "FORWARD", names.KUBE_EXTERNAL_SERVICES, _EXTERNAL_PORTALS, _CT_NEW),
    JumpRule(TABLE_FILTER, "INPUT", names.KUBE_NODEPORTS, "kubernetes health check service ports"),
    JumpRule(TABLE_FILTER, "FORWARD", names.KUBE_SERVICES, _PORTALS, _CT_NEW),
    JumpRule(TABLE_FILTER, "OUTPUT", names.KUBE_SERVICES, _PORTALS, _CT_NEW),
    JumpRule(TABLE_FILTER, "FORWARD", names.KUBE_FORWARD, "kubernetes forwarding rules"),
    JumpRule(TABLE_FILTER, "INPUT", names.KUBE_PROXY_FIREWALL, _LB_FIREWALL, _CT_NEW),
    JumpRule(TABLE_FILTER, "OUTPUT", names.KUBE_PROXY_FIREWALL, _LB_FIREWALL, _CT_NEW),
    JumpRule(TABLE_FILTER, "FORWARD", names.KUBE_PROXY_FIREWALL, _LB_FIREWALL, _CT_NEW),
    JumpRule(TABLE_NAT, "OUTPUT", names.KUBE_SERVICES, _PORTALS),
    JumpRule(TABLE_NAT, "PREROUTING", names.KUBE_SERVICES, _PORTALS),
    JumpRule(TABLE_NAT, "POSTROUTING", names.KUBE_POSTROUTING, "kubernetes postrouting rules"),
    # kubelet's own chain; kube-proxy ensures it too but never deletes it.
    JumpRule(TABLE_FILTER, "INPUT", names.KUBE_FIREWALL),
    JumpRule(TABLE_FILTER, "OUTPUT", names.KUBE_FIREWALL),
)


def jump_rules() -> tuple[JumpRule, ...]:
    """The jumps to ensure, in kube-proxy's order; each is prepended, so the last ends up first."""
    return _JUMP_RULES


def jump_rules_restore_text(rules: Iterable[JumpRule] = _JUMP_RULES) -> str:
    """The jumps and their target chains as iptables-restore input (for a fresh table or a model).

    Declaring a chain flushes it, so this is for setting up before the first sync;
    a live proxy ensures chains and jumps with `iptables -N` / `-C` / `-I` instead.
    """
    lines: list[str] = []
    rules = list(rules)
    for table in (TABLE_FILTER, TABLE_NAT):
        in_table = [r for r in rules if r.table == table]
        if not in_table:
            continue
        lines.append(f"*{table}")
        for target in dict.fromkeys(r.target for r in in_table):
            lines.append(f":{target} - [0:0]")
        lines.extend(f"-I {r.chain} 1 {r.restore_args()}" for r in in_table)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


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


def _render_service(plan: Plan, sp: ServicePortPlan, buf: _Buffers) -> None:
    """Write one service port's rules into the buffers."""
    info = sp.info
    name = sp.name
    proto = info.protocol.lower()
    match_proto = f"-m {proto} -p {proto}"
    svc_chain = names.cluster_policy_chain(name)
    svl_chain = names.local_policy_chain(name)
    ext_chain = names.external_chain(name)
    fw_chain = names.firewall_chain(name)
    internal_chain = svl_chain if sp.internal_policy_local else svc_chain
    external_policy_chain = svl_chain if sp.external_policy_local else svc_chain
    lb_chain = fw_chain if sp.uses_firewall else ext_chain
    internal_block = sp.internal_block
    external_block = sp.external_block
    if not sp.has_endpoints:
        internal_comment = external_comment = f'"{name} has no endpoints"'
    else:
        internal_comment = external_comment = f'"{name} has no local endpoints"'
    filt = buf.filter_rules
    top = buf.nat_top_rules

    # Cluster IP.
    vip = f"-d {info.cluster_ip} --dport {info.port}"
    if sp.has_internal_endpoints:
        top.append(f'-A {names.KUBE_SERVICES} -m comment --comment "{name} cluster IP" {match_proto} {vip} '
                   f"-j {internal_chain}")
    else:
        filt.append(f"-A {names.KUBE_SERVICES} -m comment --comment {internal_comment} {match_proto} {vip} "
                    f"-j {internal_block}")

    # External IPs.
    for ip in info.external_ips:
        dest = f"-d {ip} --dport {info.port}"
        if sp.has_endpoints:
            top.append(f'-A {names.KUBE_SERVICES} -m comment --comment "{name} external IP" {match_proto} '
                       f"{dest} -j {ext_chain}")
        if not sp.has_external_endpoints:
            filt.append(f"-A {names.KUBE_EXTERNAL_SERVICES} -m comment --comment {external_comment} "
                        f"{match_proto} {dest} -j {external_block}")

    # LoadBalancer ingress IPs.
    for ip in info.load_balancer_vips:
        dest = f"-d {ip} --dport {info.port}"
        if sp.has_endpoints:
            top.append(f'-A {names.KUBE_SERVICES} -m comment --comment "{name} loadbalancer IP" {match_proto} '
                       f"{dest} -j {lb_chain}")
        if sp.uses_firewall:
            filt.append(f'-A {names.KUBE_PROXY_FIREWALL} -m comment --comment "{name} traffic not accepted by '
                        f'{fw_chain}" {match_proto} {dest} -j DROP')
    if not sp.has_external_endpoints:
        for ip in info.load_balancer_vips:
            filt.append(f"-A {names.KUBE_EXTERNAL_SERVICES} -m comment --comment {external_comment} "
                        f"{match_proto} -d {ip} --dport {info.port} -j {external_block}")

    # NodePort (not subject to loadBalancerSourceRanges, as upstream).
    if info.node_port:
        if sp.has_endpoints:
            if plan.localhost_nodeports and plan.config.nfacct_counters:
                top.append(f"-A {names.KUBE_NODEPORTS} -m comment --comment {name} {match_proto} "
                           f"-d 127.0.0.0/8 --dport {info.node_port} -m nfacct --nfacct-name "
                           f"{NFACCT_LOCALHOST_NODEPORTS} -j {ext_chain}")
            top.append(f"-A {names.KUBE_NODEPORTS} -m comment --comment {name} {match_proto} "
                       f"--dport {info.node_port} -j {ext_chain}")
        if not sp.has_external_endpoints:
            filt.append(f"-A {names.KUBE_EXTERNAL_SERVICES} -m comment --comment {external_comment} "
                        f"-m addrtype --dst-type LOCAL {match_proto} --dport {info.node_port} "
                        f"-j {external_block}")

    # Health check node port: accepted whether or not this node has endpoints.
    if info.health_check_node_port:
        filt.append(f'-A {names.KUBE_NODEPORTS} -m comment --comment "{name} health check node port" '
                    f"-m tcp -p tcp --dport {info.health_check_node_port} -j ACCEPT")

    chains = buf.nat_chains
    rules = buf.nat_rules

    # Masquerade cluster-IP traffic from outside the pod network (or all of it).
    if sp.has_internal_endpoints:
        match = f'-m comment --comment "{name} cluster IP" {match_proto} {vip}'
        if plan.config.masquerade_all:
            rules.append(f"-A {internal_chain} {match} -j {names.KUBE_MARK_MASQ}")
        elif plan.local_traffic is not None:
            rules.append(f"-A {internal_chain} {match} {_local_match(plan, negate=True)} -j {names.KUBE_MARK_MASQ}")

    if sp.uses_external_chain:
        chains.append(ext_chain)
        if not sp.external_policy_local:
            # The endpoint may be on another node: SNAT so the reply comes back through here.
            rules.append(f'-A {ext_chain} -m comment --comment "masquerade traffic for {name} external '
                         f'destinations" -j {names.KUBE_MARK_MASQ}')
        else:
            if plan.local_traffic is not None:
                # Pods reaching an external VIP are treated as if they had gone out and come back.
                rules.append(f'-A {ext_chain} -m comment --comment "pod traffic for {name} external '
                             f'destinations" {_local_match(plan, negate=False)} -j {svc_chain}')
            rules.append(f'-A {ext_chain} -m comment --comment "masquerade LOCAL traffic for {name} external '
                         f'destinations" -m addrtype --src-type LOCAL -j {names.KUBE_MARK_MASQ}')
            rules.append(f'-A {ext_chain} -m comment --comment "route LOCAL traffic for {name} external '
                         f'destinations" -m addrtype --src-type LOCAL -j {svc_chain}')
        if sp.has_external_endpoints:
            rules.append(f"-A {ext_chain} -j {external_policy_chain}")

    if sp.uses_firewall:
        chains.append(fw_chain)
        head = f'-A {fw_chain} -m comment --comment "{name} loadbalancer IP"'
        allow_from_node = False
        for cidr in info.load_balancer_source_ranges:
            rules.append(f"{head} -s {cidr} -j {ext_chain}")
            if plan.node_ip and _cidr_contains(cidr, plan.node_ip):
                allow_from_node = True
        if allow_from_node:
            # A VIP bound on the node loops back with the VIP as source.
            for ip in info.load_balancer_vips:
                rules.append(f"{head} -s {ip} -j {ext_chain}")
        rules.append(f'-A {fw_chain} -m comment --comment "other traffic to {name} will be dropped by '
                     f'{names.KUBE_PROXY_FIREWALL}"')

    if sp.uses_cluster_policy:
        chains.append(svc_chain)
        _write_endpoint_dispatch(plan, sp, svc_chain, sp.cluster_endpoints, rules)
    if sp.uses_local_policy:
        chains.append(svl_chain)
        _write_endpoint_dispatch(plan, sp, svl_chain, sp.local_endpoints, rules)

    for endpoint in sp.reachable_endpoints:
        sep = names.endpoint_chain(name, endpoint)
        chains.append(sep)
        head = f"-A {sep}{_service_comment(plan, str(name))}"
        # Hairpin: a pod reaching itself through the Service must be SNATed or it answers itself directly.
        rules.append(f"{head} -s {endpoint.ip} -j {names.KUBE_MARK_MASQ}")
        affinity = f" -m recent --name {sep} --set" if info.session_affinity_client_ip else ""
        rules.append(f"{head}{affinity} {match_proto} -j DNAT --to-destination {endpoint.address}")


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
    mark = _mark(plan)
    config = plan.config
    filter_chains = list(FILTER_TOP_CHAINS)
    filter_rules: list[str] = []
    nat_chains = list(NAT_TOP_CHAINS)
    nat_rules = [
        f"-A {names.KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
        # Clear the mark so a packet that goes round the stack again is not masqueraded twice.
        f"-A {names.KUBE_POSTROUTING} -j MARK --xor-mark {mark}",
        f'-A {names.KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
        f"-j MASQUERADE" + (" --random-fully" if config.random_fully else ""),
        f"-A {names.KUBE_MARK_MASQ} -j MARK --or-mark {mark}",
    ]
    if plan.family != IPV6 and plan.localhost_nodeports:
        # route_localnet opens 127.0.0.0/8 to the network; this closes it again (issue 90259).
        filter_chains.append(names.KUBE_FIREWALL)
        filter_rules.append(f'-A {names.KUBE_FIREWALL} -m comment --comment "block incoming localnet '
                            f'connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate '
                            f"RELATED,ESTABLISHED,DNAT -j DROP")

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
    nat_chains.extend(from_chain(r.nat_chains for r in to_write))
    service_chain_rules = list(from_chain(r.nat_rules for r in to_write))
    # Unchanged services' chains stay as they are in the kernel; count their rules for the totals.
    skipped_nat_rules = 0 if full else sum(len(r.nat_rules) for r in all_rules) - len(service_chain_rules)

    deleted: list[str] = []
    kept_stale: set[str] = set()
    if previous is not None:
        stale = sorted(c for c in previous.nat_chains - active if names.is_service_chain(c))
        if delete_stale:
            for chain in stale:
                nat_chains.append(chain)  # declaring it flushes it, so -X can succeed
                service_chain_rules.append(f"-X {chain}")
                deleted.append(chain)
        else:
            kept_stale.update(stale)

    kube_services.extend(_nodeports_jumps(plan))

    if not config.conntrack_tcp_be_liberal:
        nfacct = f" -m nfacct --nfacct-name {NFACCT_INVALID_DROPPED}" if config.nfacct_counters else ""
        filter_rules.append(f"-A {names.KUBE_FORWARD} -m conntrack --ctstate INVALID{nfacct} -j DROP")
    filter_rules.append(f'-A {names.KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" '
                        f"-m mark --mark {mark}/{mark} -j ACCEPT")
    filter_rules.append(f'-A {names.KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
                        f"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")

    # The top-level units: each is written whole (declaring a chain flushes it) or, when asked to
    # and unchanged since `previous`, not at all.
    units = {
        "filter": (tuple(filter_chains), filter_rules),
        f"nat/{names.KUBE_POSTROUTING}": ((names.KUBE_POSTROUTING, names.KUBE_MARK_MASQ), nat_rules),
        f"nat/{names.KUBE_SERVICES}": ((names.KUBE_SERVICES,), kube_services),
        f"nat/{names.KUBE_NODEPORTS}": ((names.KUBE_NODEPORTS,), kube_nodeports),
    }
    written = tuple((unit, hash(tuple(unit_rules))) for unit, (_, unit_rules) in units.items())
    unchanged: set[str] = set()
    if skip_unchanged and previous is not None and previous.written:
        unchanged = {unit for unit, digest in written if (unit, digest) in set(previous.written)}

    lines = []
    if "filter" not in unchanged:
        lines.append("*filter")
        lines.extend(f":{c} - [0:0]" for c in filter_chains)
        lines.extend(filter_rules)
        lines.append("COMMIT")
    written_top = 0
    skipped_top = 0
    nat_decls: list[str] = []
    nat_body: list[str] = []
    for unit in ("nat/KUBE-POSTROUTING", "nat/KUBE-SERVICES", "nat/KUBE-NODEPORTS"):
        unit_rules = units[unit][1]
        if unit in unchanged:
            skipped_top += len(unit_rules)
            continue
        nat_body.extend(unit_rules)
        written_top += len(unit_rules)
    skipped_chains = {c for unit in unchanged if unit != "filter" for c in units[unit][0]}
    nat_decls.extend(f":{c} - [0:0]" for c in NAT_TOP_CHAINS if c not in skipped_chains)
    nat_decls.extend(f":{c} - [0:0]" for c in nat_chains[len(NAT_TOP_CHAINS):])
    stale_deletions = service_chain_rules[len(service_chain_rules) - len(deleted):] if deleted else []
    lines.append("*nat")
    lines.extend(nat_decls)
    lines.extend(nat_body)
    lines.extend(service_chain_rules[:len(service_chain_rules) - len(deleted)])
    lines.extend(stale_deletions)  # last: nothing refers to them any more
    lines.append("COMMIT")
    nat_rules_written = len(service_chain_rules) - len(deleted) + written_top

    return RenderedRules(
        text="\n".join(lines) + "\n",
        chains=RenderedState(
            nat_chains=frozenset(NAT_TOP_CHAINS) | active | kept_stale,
            filter_chains=frozenset(filter_chains),
            written=written,
        ),
        full=full,
        filter_rules=len(filter_rules),
        nat_rules=nat_rules_written,
        nat_rules_total=nat_rules_written + skipped_nat_rules + skipped_top,
        deleted_chains=tuple(deleted),
    )
