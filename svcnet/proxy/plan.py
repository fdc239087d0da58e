"""Policy: what each service port should do on this node, decided once for every backend.

This is the decision half of kube-proxy's syncProxyRules (pkg/proxy/iptables/
proxier.go) and of CategorizeEndpoints (pkg/proxy/topology.go), with no rule
syntax in it: per service port, which endpoints serve Cluster and Local
traffic policy (ready ones, else serving-and-terminating ones, with topology
hints honoured), whether internal and external traffic has somewhere to go
(and if not, REJECT when the service has no endpoints at all, DROP when only
the Local policy leaves it without), which "external" destinations exist,
whether the loadBalancerSourceRanges firewall applies, and how cluster-IP
traffic is masqueraded. The iptables and nftables renderers only spell it out.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from svcnet.proxy.model import IPV4, IPV6, EndpointInfo, ProxyState, ServicePortInfo, ServicePortName

REJECT = "REJECT"
DROP = "DROP"

# Above this many endpoints (all services together) kube-proxy stops writing
# per-endpoint comments, trading readability for restore size.
LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000

# --detect-local-mode values kube-proxy knows.
DETECT_LOCAL_CLUSTER_CIDR = "ClusterCIDR"
DETECT_LOCAL_NODE_CIDR = "NodeCIDR"
DETECT_LOCAL_BRIDGE = "BridgeInterface"
DETECT_LOCAL_INTERFACE_PREFIX = "InterfaceNamePrefix"


@dataclass(frozen=True)
class ProxyConfig:
    """The node proxy's settings for one IP family (kube-proxy's flags that shape the rules)."""

    family: str = IPV4
    cluster_cidrs: tuple[str, ...] = ()  # pod network(s); traffic from outside is masqueraded
    node_ips: tuple[str, ...] = ()  # this node's addresses; the first of the family is "the" node IP
    masquerade_bit: int = 14
    masquerade_all: bool = False
    # CIDRs whose local addresses accept NodePorts, or "primary" for node_ips; empty = every local address.
    nodeport_addresses: tuple[str, ...] = ()
    localhost_nodeports: bool = True
    detect_local_mode: str = DETECT_LOCAL_CLUSTER_CIDR
    node_pod_cidrs: tuple[str, ...] = ()  # for NodeCIDR mode
    bridge_interface: str = ""  # for BridgeInterface mode
    interface_name_prefix: str = ""  # for InterfaceNamePrefix mode
    # What the host's iptables/kernel supports (the apply half detects these).
    random_fully: bool = True
    conntrack_tcp_be_liberal: bool = False
    nfacct_counters: bool = False
    # The Service CIDRs (ServiceCIDR objects' spec.cidrs): nftables mode drops traffic to unallocated
    # cluster IPs in them. iptables mode does not read them.
    service_cidrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.family not in (IPV4, IPV6):
            raise ValueError(f"unknown IP family {self.family!r}")
        if not 0 <= self.masquerade_bit <= 31:
            raise ValueError(f"masquerade bit must be 0-31, got {self.masquerade_bit}")


@dataclass(frozen=True)
class LocalTraffic:
    """How "from a pod on this cluster/node" is recognised (kube-proxy's LocalTrafficDetector)."""

    kind: str  # "source-cidr" or "in-interface"
    value: str  # a CIDR, or an interface name ("veth+" for a prefix)


@dataclass(frozen=True)
class ServicePortPlan:
    """The decisions for one service port."""

    info: ServicePortInfo
    cluster_endpoints: tuple[EndpointInfo, ...]  # Cluster policy; empty if never used
    local_endpoints: tuple[EndpointInfo, ...]  # Local policy; empty if never used
    reachable_endpoints: tuple[EndpointInfo, ...]  # every endpoint this node may DNAT to
    has_endpoints: bool  # usable endpoints anywhere in the cluster
    has_internal_endpoints: bool
    has_external_endpoints: bool
    total_endpoints: int  # every endpoint known, usable or not (for large-cluster mode)

    @property
    def name(self) -> ServicePortName:
        return self.info.name

    @property
    def uses_cluster_policy(self) -> bool:
        return bool(self.cluster_endpoints) and self.info.uses_cluster_endpoints

    @property
    def uses_local_policy(self) -> bool:
        return bool(self.local_endpoints) and self.info.uses_local_endpoints

    @property
    def internal_policy_local(self) -> bool:
        return self.info.internal_policy_local

    @property
    def external_policy_local(self) -> bool:
        return self.info.external_policy_local

    @property
    def uses_external_chain(self) -> bool:
        # Needed even without external endpoints: pod and host traffic short-circuits.
        return self.has_endpoints and self.info.externally_accessible

    @property
    def uses_firewall(self) -> bool:
        return self.has_endpoints and bool(self.info.load_balancer_vips) and bool(
            self.info.load_balancer_source_ranges)

    @property
    def internal_block(self) -> str | None:
        """REJECT (no endpoints at all), DROP (Local policy, none here), or None."""
        if not self.has_endpoints:
            return REJECT
        return None if self.has_internal_endpoints else DROP

    @property
    def external_block(self) -> str | None:
        if not self.has_endpoints:
            return REJECT
        return None if self.has_external_endpoints else DROP


@dataclass(frozen=True)
class Plan:
    """Every decision for one node and one IP family."""

    family: str
    node_name: str
    config: ProxyConfig
    services: tuple[ServicePortPlan, ...]  # sorted by service port name
    local_traffic: LocalTraffic | None
    node_ip: str  # first node IP of this family, "" if none
    nodeport_ips: tuple[str, ...] | None  # None: every local address (--dst-type LOCAL)
    localhost_nodeports: bool  # effective: IPv4 only, and only if loopback may take NodePorts
    total_endpoints: int = 0
    service_keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def masquerade_mark(self) -> int:
        return 1 << self.config.masquerade_bit

    @property
    def large_cluster(self) -> bool:
        return self.total_endpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD

    def by_service(self, key: str) -> tuple[ServicePortPlan, ...]:
        return tuple(s for s in self.services if s.name.service_key == key)


# --- endpoint categorisation (pkg/proxy/topology.go) -------------------------------------------------------

def _topology_usable(endpoints: tuple[EndpointInfo, ...], zone: str) -> bool:
    """Zone hints are honoured when every ready endpoint has some and one names our zone."""
    if not zone:
        return False
    has_for_zone = False
    for endpoint in endpoints:
        if not endpoint.ready:
            continue
        if not endpoint.zone_hints:
            return False
        if zone in endpoint.zone_hints:
            has_for_zone = True
    return has_for_zone


@dataclass(frozen=True)
class Categorized:
    cluster: tuple[EndpointInfo, ...]
    local: tuple[EndpointInfo, ...]
    reachable: tuple[EndpointInfo, ...]
    has_any: bool


def categorize_endpoints(
    endpoints: tuple[EndpointInfo, ...], info: ServicePortInfo, zone: str,
) -> Categorized:
    """Which endpoints Cluster and Local policy use, with the serving-terminating fallback."""
    cluster: tuple[EndpointInfo, ...] = ()
    local: tuple[EndpointInfo, ...] = ()
    has_any = False
    use_topology = False
    use_terminating = False
    if info.uses_cluster_endpoints:
        use_topology = _topology_usable(endpoints, zone)
        cluster = tuple(e for e in endpoints if e.ready and (not use_topology or zone in e.zone_hints))
        if not cluster:
            # Best effort while everything terminates: keep serving connections, ignore topology.
            cluster = tuple(e for e in endpoints if e.serving and e.terminating)
        has_any = bool(cluster)
    if not info.uses_local_endpoints:
        return Categorized(cluster, (), cluster, has_any)

    local_ready = local_terminating = False
    for endpoint in endpoints:
        if endpoint.ready:
            has_any = True
            local_ready = local_ready or endpoint.is_local
        elif endpoint.serving and endpoint.terminating:
            has_any = True
            local_terminating = local_terminating or endpoint.is_local
    if local_ready:
        local = tuple(e for e in endpoints if e.is_local and e.ready)
    elif local_terminating:
        use_terminating = True
        local = tuple(e for e in endpoints if e.is_local and e.serving and e.terminating)

    if not info.uses_cluster_endpoints:
        return Categorized((), local, local, has_any)
    if not use_topology and not use_terminating:
        # cluster holds every ready endpoint, so it already contains the local ones.
        return Categorized(cluster, local, cluster, has_any)
    merged = {e.address: e for e in cluster}
    merged.update({e.address: e for e in local})
    return Categorized(cluster, local, tuple(merged[a] for a in sorted(merged)), has_any)


# --- the plan ----------------------------------------------------------------------------------------------

def _in_family(address: str, family: str) -> bool:
    try:
        return (ipaddress.ip_address(address).version == 6) == (family == IPV6)
    except ValueError:
        return False


def _cidrs_of_family(cidrs: tuple[str, ...], family: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr.strip(), strict=False)
        if (net.version == 6) == (family == IPV6):
            nets.append(net)
    return nets


def service_cidrs_of_family(config: ProxyConfig) -> tuple[str, ...]:
    """The configured Service CIDRs of the config's family, as given (kube-proxy's OnServiceCIDRsChanged)."""
    return tuple(cidr.strip() for cidr in config.service_cidrs
                 if _cidrs_of_family((cidr,), config.family))


def local_traffic_for(config: ProxyConfig) -> LocalTraffic | None:
    """The detect-local rule for this family, or None when it cannot be implemented."""
    mode = config.detect_local_mode
    if mode == DETECT_LOCAL_CLUSTER_CIDR:
        nets = _cidrs_of_family(config.cluster_cidrs, config.family)
        return LocalTraffic("source-cidr", str(nets[0])) if nets else None
    if mode == DETECT_LOCAL_NODE_CIDR:
        nets = _cidrs_of_family(config.node_pod_cidrs, config.family)
        return LocalTraffic("source-cidr", str(nets[0])) if nets else None
    if mode == DETECT_LOCAL_BRIDGE:
        return LocalTraffic("in-interface", config.bridge_interface) if config.bridge_interface else None
    if mode == DETECT_LOCAL_INTERFACE_PREFIX:
        prefix = config.interface_name_prefix
        return LocalTraffic("in-interface", prefix + "+") if prefix else None
    raise ValueError(f"unknown detect-local mode {mode!r}")


def _nodeport_ips(config: ProxyConfig) -> tuple[str, ...] | None:
    """None for "every local address"; else the node addresses NodePorts listen on."""
    if not config.nodeport_addresses:
        return None
    node_ips = [ip for ip in config.node_ips if _in_family(ip, config.family)]
    chosen: list[str] = []
    for entry in config.nodeport_addresses:
        if entry == "primary":
            candidates = node_ips[:1]
        else:
            nets = _cidrs_of_family((entry,), config.family)
            if not nets:
                continue
            # Loopback is a local address of every node, so a CIDR that covers it selects it.
            loopback = "127.0.0.1" if config.family == IPV4 else "::1"
            candidates = [ip for ip in [*node_ips, loopback] if ipaddress.ip_address(ip) in nets[0]]
        chosen.extend(ip for ip in candidates if ip not in chosen)
    return tuple(chosen)


def _nodeports_allow_loopback(config: ProxyConfig) -> bool:
    if config.family != IPV4 or not config.localhost_nodeports:
        return False
    if not config.nodeport_addresses:
        return True
    nets = _cidrs_of_family(tuple(a for a in config.nodeport_addresses if a != "primary"), IPV4)
    return any(ipaddress.ip_address("127.0.0.1") in net for net in nets)


def plan_service_port(info: ServicePortInfo, endpoints: tuple[EndpointInfo, ...], zone: str) -> ServicePortPlan:
    categorized = categorize_endpoints(endpoints, info, zone)
    has_internal = categorized.has_any
    if info.internal_policy_local and not categorized.local:
        has_internal = False
    has_external = categorized.has_any
    if info.external_policy_local and not categorized.local:
        has_external = False
    return ServicePortPlan(
        info=info,
        cluster_endpoints=categorized.cluster,
        local_endpoints=categorized.local,
        reachable_endpoints=categorized.reachable,
        has_endpoints=categorized.has_any,
        has_internal_endpoints=has_internal,
        has_external_endpoints=has_external,
        total_endpoints=len(endpoints),
    )


def plan(state: ProxyState, config: ProxyConfig | None = None) -> Plan:
    """Decide everything for this node and family; the renderers add only syntax."""
    config = config or ProxyConfig(family=state.family)
    if config.family != state.family:
        raise ValueError(f"plan for {config.family} asked of {state.family} state")
    zone = state.zone
    services = tuple(
        plan_service_port(info, state.endpoints_for(info.name), zone) for info in state.service_ports
    )
    return assemble_plan(state.node_name, config, services, state.service_keys())


def assemble_plan(node_name: str, config: ProxyConfig, services: tuple[ServicePortPlan, ...],
                  service_keys: frozenset[str]) -> Plan:
    """The node-wide plan around per-service plans (sorted by name) that a caller kept from earlier syncs."""
    node_ips = [ip for ip in config.node_ips if _in_family(ip, config.family)]
    return Plan(
        family=config.family,
        node_name=node_name,
        config=config,
        services=services,
        local_traffic=local_traffic_for(config),
        node_ip=node_ips[0] if node_ips else "",
        nodeport_ips=_nodeport_ips(config),
        localhost_nodeports=_nodeports_allow_loopback(config),
        total_endpoints=sum(s.total_endpoints for s in services),
        service_keys=service_keys,
    )
