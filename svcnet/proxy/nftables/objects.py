"""One service port's nftables objects, rendered from its plan exactly as kube-proxy's nftables proxier does.

Matched against pkg/proxy/nftables/proxier.go of kubernetes/kubernetes at commit
b0f823e6ccd8a10b3893fc75011b9981af39285c: the stored version closest to v1.33
(it has v1.33's nftElementStorage, which updates map elements instead of
rebuilding the maps, and the `filter-output-post-dnat` chain with
`cluster-ips-check`; not yet v1.34's `filter-*-pre-dnat` chains at priority
-110 nor its cluster-IP masquerade rule without the port match). That version
writes no counters and has no large-cluster mode: every sync writes the same
objects whatever the cluster's size.

A service port contributes:
- elements: its cluster IP in `cluster-ips`; "IP . proto . port : goto chain"
  in `service-ips` (cluster IP, external IPs, load-balancer IPs) and "proto .
  nodePort : goto chain" in `service-nodeports` while it has endpoints; the
  same keys in `no-endpoint-services` / `no-endpoint-nodeports` with "goto
  reject-chain" (no endpoints at all) or "drop" (Local policy, none here), with
  the service port's name as element comment; load-balancer IPs subject to
  loadBalancerSourceRanges in `firewall-ips`;
- chains: `service-` (Cluster policy) / `local-` (Local policy) with a
  masquerade rule for cluster-IP traffic and a `numgen random mod N vmap`
  over the endpoints; `external-` for NodePort/external/LB traffic;
  `firewall-` dropping sources outside loadBalancerSourceRanges; one
  `endpoint-` chain per endpoint (hairpin masquerade, DNAT);
- sets: one `affinity-` set per endpoint with sessionAffinity ClientIP, filled
  by `update @set { ip saddr }` in the endpoint chain and checked first in the
  service chain.

Nothing here does I/O.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import NamedTuple

from svcnet.proxy.model import IPV6, EndpointInfo, ServicePortName
from svcnet.proxy.nftables import names
from svcnet.proxy.plan import DETECT_LOCAL_INTERFACE_PREFIX, Plan, ServicePortPlan

REJECT_VERDICT = f"goto {names.REJECT_CHAIN}"
DROP_VERDICT = "drop"


class Element(NamedTuple):
    """One set or map element: "key" (" . "-joined), "value" ("" in a set), and an optional comment."""

    container: str
    key: str
    value: str = ""
    comment: str = ""


@dataclass(frozen=True)
class ServiceObjects:
    """Everything one service port adds to the table."""

    service_key: str  # "namespace/name", as a partial sync names changed services
    chains: tuple[str, ...]  # in the order kube-proxy creates them
    sets: tuple[tuple[str, str], ...]  # affinity sets: (name, "{ type ... }")
    rules: tuple[tuple[str, str], ...]  # (chain, rule text), in order
    elements: tuple[Element, ...]
    _text: dict[str, tuple[str, int, str, int]] = field(default_factory=dict, compare=False, repr=False)

    def text(self, prefix: str) -> tuple[str, int, str, int]:
        """Its transaction lines for table `prefix` ("ip kube-proxy"), kept once written: the chains
        added and flushed, then its sets and rules; with how many commands each holds."""
        cached = self._text.get(prefix)
        if cached is None:
            head = "".join(f"add chain {prefix} {c}\nflush chain {prefix} {c}\n" for c in self.chains)
            body = "".join([*(f"add set {prefix} {n} {spec}\n" for n, spec in self.sets),
                            *(f"add rule {prefix} {chain} {rule}\n" for chain, rule in self.rules)])
            cached = self._text[prefix] = (head, 2 * len(self.chains), body, len(self.sets) + len(self.rules))
        return cached


def quote(text: str) -> str:
    """A string as Go's %q writes it (our comments are plain ASCII)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def nft_family(plan: Plan) -> str:
    return "ip6" if plan.family == IPV6 else "ip"


def addr_type(plan: Plan) -> str:
    return "ipv6_addr" if plan.family == IPV6 else "ipv4_addr"


def local_match(plan: Plan, negate: bool) -> str | None:
    """kube-proxy's LocalTrafficDetector in nft syntax, or None when it is not implemented."""
    traffic = plan.local_traffic
    if traffic is None:
        return None
    op = "!= " if negate else ""
    if traffic.kind == "source-cidr":
        return f"{nft_family(plan)} saddr {op}{traffic.value}"
    value = traffic.value
    if plan.config.detect_local_mode == DETECT_LOCAL_INTERFACE_PREFIX:
        value = value.removesuffix("+") + "*"  # iptables' "veth+" is nft's "veth*"
    return f"iifname {op}{value}"


def render_context(plan: Plan) -> tuple[object, ...]:
    """Everything outside a ServicePortPlan that render_service_objects reads."""
    config = plan.config
    return (plan.family, config.masquerade_all, plan.local_traffic, config.detect_local_mode, plan.node_ip)


@dataclass(frozen=True)
class _Names:
    name: ServicePortName
    proto: str
    cluster: str
    local: str
    external: str
    firewall: str
    internal: str  # where cluster-IP traffic goes (cluster or local policy chain)
    external_policy: str  # where the external chain ends
    uses_firewall: bool
    # By id(): the plan's endpoint tuples share their EndpointInfo objects, which outlive one render.
    endpoint_bases: dict[int, str] = field(default_factory=dict)

    def endpoint_base(self, endpoint: EndpointInfo) -> str:
        """Each endpoint's name is hashed once per render, though four places use it."""
        base = self.endpoint_bases.get(id(endpoint))
        if base is None:
            base = self.endpoint_bases[id(endpoint)] = names.endpoint_base(self.name, endpoint)
        return base

    def endpoint_chain(self, endpoint: EndpointInfo) -> str:
        return names.ENDPOINT_PREFIX + self.endpoint_base(endpoint)

    def affinity_set(self, endpoint: EndpointInfo) -> str:
        return names.AFFINITY_PREFIX + self.endpoint_base(endpoint)

    @classmethod
    def of(cls, sp: ServicePortPlan) -> _Names:
        name = sp.name
        cluster, local = names.cluster_policy_chain(name), names.local_policy_chain(name)
        info = sp.info
        return cls(
            name=name,
            proto=info.protocol.lower(),
            cluster=cluster, local=local,
            external=names.external_chain(name), firewall=names.firewall_chain(name),
            internal=local if sp.internal_policy_local else cluster,
            external_policy=local if sp.external_policy_local else cluster,
            # Unlike iptables mode, the firewall applies whether or not there are endpoints.
            uses_firewall=bool(info.load_balancer_vips) and bool(info.load_balancer_source_ranges),
        )


def render_service_objects(plan: Plan, sp: ServicePortPlan) -> ServiceObjects:
    """The objects of one service port under this plan's node-wide settings."""
    n = _Names.of(sp)
    chains = [names.ENDPOINT_PREFIX + n.endpoint_base(ep) for ep in sp.reachable_endpoints]
    if sp.uses_cluster_policy:
        chains.append(n.cluster)
    if sp.uses_local_policy:
        chains.append(n.local)
    if sp.uses_external_chain:
        chains.append(n.external)
    if n.uses_firewall:
        chains.append(n.firewall)
    rules: list[tuple[str, str]] = []
    _internal_rules(plan, sp, n, rules)
    _external_rules(plan, sp, n, rules)
    _firewall_rules(plan, sp, n, rules)
    sets = _affinity_sets(plan, sp, n)
    if sp.uses_cluster_policy:
        _dispatch_rules(plan, sp, n, n.cluster, sp.cluster_endpoints, rules)
    if sp.uses_local_policy:
        _dispatch_rules(plan, sp, n, n.local, sp.local_endpoints, rules)
    _endpoint_rules(plan, sp, n, rules)
    return ServiceObjects(
        service_key=sp.name.service_key,
        chains=tuple(dict.fromkeys(chains)),
        sets=sets,
        rules=tuple(rules),
        elements=_elements(sp, n),
    )


def _elements(sp: ServicePortPlan, n: _Names) -> tuple[Element, ...]:
    """The service port's set and map elements, in the order kube-proxy ensures them."""
    info = sp.info
    comment = str(sp.name)
    if not sp.has_endpoints:
        internal_verdict = external_verdict = REJECT_VERDICT
    else:
        internal_verdict = "" if sp.has_internal_endpoints else DROP_VERDICT
        external_verdict = "" if sp.has_external_endpoints else DROP_VERDICT
    port = f"{n.proto} . {info.port}"
    out = [Element(names.CLUSTER_IPS, info.cluster_ip)]
    if sp.has_internal_endpoints:
        out.append(Element(names.SERVICE_IPS, f"{info.cluster_ip} . {port}", f"goto {n.internal}"))
    else:
        out.append(Element(names.NO_ENDPOINT_SERVICES, f"{info.cluster_ip} . {port}", internal_verdict, comment))
    for ip in info.external_ips:
        if sp.has_endpoints:
            out.append(Element(names.SERVICE_IPS, f"{ip} . {port}", f"goto {n.external}"))
        if not sp.has_external_endpoints:
            out.append(Element(names.NO_ENDPOINT_SERVICES, f"{ip} . {port}", external_verdict, comment))
    for ip in info.load_balancer_vips:
        if sp.has_endpoints:
            out.append(Element(names.SERVICE_IPS, f"{ip} . {port}", f"goto {n.external}"))
        if n.uses_firewall:
            out.append(Element(names.FIREWALL_IPS, f"{ip} . {port}", f"goto {n.firewall}"))
    if not sp.has_external_endpoints:
        for ip in info.load_balancer_vips:
            out.append(Element(names.NO_ENDPOINT_SERVICES, f"{ip} . {port}", external_verdict, comment))
    if info.node_port:
        # NodePorts are not subject to loadBalancerSourceRanges, as upstream.
        node_port = f"{n.proto} . {info.node_port}"
        if sp.has_endpoints:
            out.append(Element(names.SERVICE_NODEPORTS, node_port, f"goto {n.external}"))
        if not sp.has_external_endpoints:
            out.append(Element(names.NO_ENDPOINT_NODEPORTS, node_port, external_verdict, comment))
    return tuple(out)


def _internal_rules(plan: Plan, sp: ServicePortPlan, n: _Names, rules: list[tuple[str, str]]) -> None:
    """Masquerade cluster-IP traffic from outside the pod network (or all of it with --masquerade-all)."""
    if not sp.has_internal_endpoints:
        return
    head = f"{nft_family(plan)} daddr {sp.info.cluster_ip} {n.proto} dport {sp.info.port}"
    if plan.config.masquerade_all:
        rules.append((n.internal, f"{head} jump {names.MARK_FOR_MASQUERADE}"))
        return
    not_local = local_match(plan, negate=True)
    if not_local is not None:
        # Off-cluster clients may route the service range to any node, which may bounce off-node.
        rules.append((n.internal, f"{head} {not_local} jump {names.MARK_FOR_MASQUERADE}"))


def _external_rules(plan: Plan, sp: ServicePortPlan, n: _Names, rules: list[tuple[str, str]]) -> None:
    """external-: masquerade (Cluster policy), or short-circuit pod and host traffic (Local policy)."""
    if not sp.uses_external_chain:
        return
    chain = n.external
    if not sp.external_policy_local:
        # The endpoint may be on another node: SNAT so the reply comes back through here.
        rules.append((chain, f"jump {names.MARK_FOR_MASQUERADE}"))
    else:
        is_local = local_match(plan, negate=False)
        if is_local is not None:
            # Pods reaching an external destination act as if they had gone out and come back in.
            rules.append((chain, f"{is_local} goto {n.cluster} comment {quote('short-circuit pod traffic')}"))
        # The host's own traffic has a local (VIP) source: masquerade it and send it to every endpoint.
        rules.append((chain, f"fib saddr type local jump {names.MARK_FOR_MASQUERADE} "
                             f"comment {quote('masquerade local traffic')}"))
        rules.append((chain, f"fib saddr type local goto {n.cluster} comment {quote('short-circuit local traffic')}"))
    if sp.has_external_endpoints:
        rules.append((chain, f"goto {n.external_policy}"))


def _cidr_contains(cidr: str, ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _firewall_rules(plan: Plan, sp: ServicePortPlan, n: _Names, rules: list[tuple[str, str]]) -> None:
    """firewall-: drop what does not come from loadBalancerSourceRanges."""
    if not n.uses_firewall:
        return
    ranges = sp.info.load_balancer_source_ranges
    sources = list(ranges)
    if plan.node_ip and any(_cidr_contains(cidr, plan.node_ip) for cidr in ranges):
        # A VIP bound on the node loops back with the VIP as source.
        sources.extend(sp.info.load_balancer_vips)
    rules.append((n.firewall, f"{nft_family(plan)} saddr != {{ {' , '.join(sources)} }} drop"))


def _affinity_sets(plan: Plan, sp: ServicePortPlan, n: _Names) -> tuple[tuple[str, str], ...]:
    if not sp.info.session_affinity_client_ip:
        return ()
    # "dynamic" although the nft docs do not ask for it: some kernels add it, and a later
    # "add set" with different flags would then fail.
    spec = (f"{{ type {addr_type(plan)} ; flags dynamic,timeout ; "
            f"timeout {sp.info.sticky_max_age_seconds}s ; }}")
    return tuple((n.affinity_set(ep), spec) for ep in sp.reachable_endpoints)


def _dispatch_rules(plan: Plan, sp: ServicePortPlan, n: _Names, chain: str,
                    endpoints: tuple[EndpointInfo, ...], rules: list[tuple[str, str]]) -> None:
    """Clients with affinity go back to their endpoint; the rest pick one at random."""
    if sp.info.session_affinity_client_ip:
        for ep in endpoints:
            rules.append((chain, f"{nft_family(plan)} saddr @{n.affinity_set(ep)} goto {n.endpoint_chain(ep)}"))
    entries = " , ".join(f"{i} : goto {n.endpoint_chain(ep)}" for i, ep in enumerate(endpoints))
    rules.append((chain, f"numgen random mod {len(endpoints)} vmap {{ {entries} }}"))


def _endpoint_rules(plan: Plan, sp: ServicePortPlan, n: _Names, rules: list[tuple[str, str]]) -> None:
    fam = nft_family(plan)
    for ep in sp.reachable_endpoints:
        chain = n.endpoint_chain(ep)
        # Hairpin: a pod reaching itself through the Service must be SNATed or it answers itself directly.
        rules.append((chain, f"{fam} saddr {ep.ip} jump {names.MARK_FOR_MASQUERADE}"))
        if sp.info.session_affinity_client_ip:
            rules.append((chain, f"update @{n.affinity_set(ep)} {{ {fam} saddr }}"))
        rules.append((chain, f"meta l4proto {n.proto} dnat to {ep.address}"))
