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
that existed before and are no longer used are flushed and deleted (-X).

The jump rules from the built-in chains (PREROUTING -> KUBE-SERVICES, ...) are
not part of the restore input: kube-proxy ensures them one by one on full
syncs, so other programs' rules in those chains survive. jump_rules() lists them.
"""
from __future__ import annotations

import ipaddress
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
    filter_rules: int  # rules written to filter (always the whole table)
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


def _service_chain_rule_count(plan: Plan, sp: ServicePortPlan) -> int:
    """How many rules the per-service chains of `sp` hold (what _render_service writes there)."""
    count = 0
    if sp.has_internal_endpoints and (plan.config.masquerade_all or plan.local_traffic is not None):
        count += 1
    if sp.uses_external_chain:
        if not sp.external_policy_local:
            count += 1
        else:
            count += 2 + (1 if plan.local_traffic is not None else 0)
        count += 1 if sp.has_external_endpoints else 0
    if sp.uses_firewall:
        ranges = sp.info.load_balancer_source_ranges
        allow_from_node = bool(plan.node_ip) and any(_cidr_contains(c, plan.node_ip) for c in ranges)
        count += len(ranges) + (len(sp.info.load_balancer_vips) if allow_from_node else 0) + 1
    per_endpoint = 2 if sp.info.session_affinity_client_ip else 1
    if sp.uses_cluster_policy:
        count += per_endpoint * len(sp.cluster_endpoints)
    if sp.uses_local_policy:
        count += per_endpoint * len(sp.local_endpoints)
    return count + 2 * len(sp.reachable_endpoints)


def _active_chains(sp: ServicePortPlan) -> list[str]:
    """The per-service chains `sp` uses, in the order they are declared."""
    name = sp.name
    chains = []
    if sp.uses_external_chain:
        chains.append(names.external_chain(name))
    if sp.uses_firewall:
        chains.append(names.firewall_chain(name))
    if sp.uses_cluster_policy:
        chains.append(names.cluster_policy_chain(name))
    if sp.uses_local_policy:
        chains.append(names.local_policy_chain(name))
    chains.extend(names.endpoint_chain(name, e) for e in sp.reachable_endpoints)
    return chains


def _render_service(plan: Plan, sp: ServicePortPlan, buf: _Buffers, active: set[str],
                    write_chains: bool = True) -> None:
    """Write one service port's rules; with write_chains False only the always-written ones."""
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

    if not write_chains:
        active.update(_active_chains(sp))
        return

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
        active.add(ext_chain)
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
        active.add(fw_chain)
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
        active.add(svc_chain)
        _write_endpoint_dispatch(plan, sp, svc_chain, sp.cluster_endpoints, rules)
    if sp.uses_local_policy:
        chains.append(svl_chain)
        active.add(svl_chain)
        _write_endpoint_dispatch(plan, sp, svl_chain, sp.local_endpoints, rules)

    for endpoint in sp.reachable_endpoints:
        sep = names.endpoint_chain(name, endpoint)
        chains.append(sep)
        active.add(sep)
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
) -> RenderedRules:
    """The iptables-restore input for this plan.

    changed=None is a full sync. Otherwise it is the set of "namespace/name"
    services whose rules changed since the sync that produced `previous`; only
    their per-service chains are written. Chains in `previous` that are no
    longer used are flushed and deleted unless delete_stale is False (kube-proxy
    skips that in large clusters except once per sync period).
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

    active: set[str] = set()
    skipped_nat_rules = 0
    for sp in plan.services:
        write_chains = full or sp.name.service_key in changed
        _render_service(plan, sp, _Buffers(filter_rules, nat_rules, nat_chains, nat_rules), active, write_chains)
        if not write_chains:
            # Unchanged: its chains stay as they are in the kernel; count their rules for the totals.
            skipped_nat_rules += _service_chain_rule_count(plan, sp)

    deleted: list[str] = []
    kept_stale: set[str] = set()
    if previous is not None:
        stale = sorted(c for c in previous.nat_chains - active if names.is_service_chain(c))
        if delete_stale:
            for chain in stale:
                nat_chains.append(chain)  # declaring it flushes it, so -X can succeed
                nat_rules.append(f"-X {chain}")
                deleted.append(chain)
        else:
            kept_stale.update(stale)

    nat_rules.extend(_nodeports_jumps(plan))

    if not config.conntrack_tcp_be_liberal:
        nfacct = f" -m nfacct --nfacct-name {NFACCT_INVALID_DROPPED}" if config.nfacct_counters else ""
        filter_rules.append(f"-A {names.KUBE_FORWARD} -m conntrack --ctstate INVALID{nfacct} -j DROP")
    filter_rules.append(f'-A {names.KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" '
                        f"-m mark --mark {mark}/{mark} -j ACCEPT")
    filter_rules.append(f'-A {names.KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
                        f"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")

    lines = ["*filter"]
    lines.extend(f":{c} - [0:0]" for c in filter_chains)
    lines.extend(filter_rules)
    lines.append("COMMIT")
    lines.append("*nat")
    lines.extend(f":{c} - [0:0]" for c in nat_chains)
    lines.extend(nat_rules)
    lines.append("COMMIT")

    written_nat = len(nat_rules) - len(deleted)
    return RenderedRules(
        text="\n".join(lines) + "\n",
        chains=RenderedState(
            nat_chains=frozenset(NAT_TOP_CHAINS) | active | kept_stale,
            filter_chains=frozenset(filter_chains),
        ),
        full=full,
        filter_rules=len(filter_rules),
        nat_rules=written_nat,
        nat_rules_total=written_nat + skipped_nat_rules,
        deleted_chains=tuple(deleted),
    )
