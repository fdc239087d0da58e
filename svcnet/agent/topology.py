"""The cluster's network on one machine: plan it (pure), converge the kernel to it, tear it down.

Layout (docs/topology.md has the picture and how to look inside):

- `svcnet-<id>-lan`: bridge `br-lan`, a switch with no address of its own.
- `svcnet-<id>-node-<n>`: `eth0` on br-lan with the node IP (node n is host
  first_node_host + n - 1 of the node network: 192.168.0.106 for node 1, as in
  the seed), bridge `cni0` with the first address of the node's pod CIDRs
  (10.244.<n>.1/24, fd00:10:244:<n hex>::1/64), routes to every other node's
  pod CIDRs via that node's IP (host-gw), forwarding on.
- `svcnet-<id>-client`: `eth0` on br-lan (192.168.0.200): a machine outside the
  cluster. It knows only the LAN, so it reaches node IPs and never pod IPs.

`plan_topology` returns what should exist; `converge` makes the kernel match a
list of `NamespaceSpec`s (used for pods too, by `svcnet.agent.network`);
`apply_topology` and `destroy_topology` are the two calls `svcnet up/down` make.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from svcnet.kernel import Link, NetworkKernel, Route

CLUSTER_ID_PATTERN = re.compile(r"^[a-z0-9]{1,12}$")
LAN_BRIDGE = "br-lan"
NODE_BRIDGE = "cni0"
NODE_UPLINK = "eth0"

# Per-namespace sysctls: DAD off so addresses are usable at once (IPAM guarantees uniqueness).
BASE_SYSCTLS = (("net.ipv6.conf.default.accept_dad", "0"), ("net.ipv6.conf.all.accept_dad", "0"))
NODE_SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
)
# Present only when br_netfilter is loaded; svcnet never loads kernel modules itself.
NODE_OPTIONAL_SYSCTLS = (
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
)


# ---- names


def check_cluster_id(cluster_id: str) -> str:
    """Ids are short and dash-free so one cluster's prefix never prefixes another's."""
    if not CLUSTER_ID_PATTERN.match(cluster_id):
        raise ValueError(f"cluster id {cluster_id!r} must be 1-12 lowercase letters or digits")
    return cluster_id


def cluster_prefix(cluster_id: str) -> str:
    return f"svcnet-{check_cluster_id(cluster_id)}-"


def lan_namespace(cluster_id: str) -> str:
    return cluster_prefix(cluster_id) + "lan"


def client_namespace(cluster_id: str) -> str:
    return cluster_prefix(cluster_id) + "client"


def node_namespace(cluster_id: str, index: int) -> str:
    return cluster_prefix(cluster_id) + f"node-{index}"


def node_name(index: int) -> str:
    return f"node-{index}"


# ---- desired state, shared by the topology and pod sandboxes


@dataclass(frozen=True)
class LinkSpec:
    """One link as it should be. A veth names its peer; both ends appear, each in its namespace's spec."""

    name: str
    kind: Literal["loopback", "bridge", "veth"]
    peer_namespace: str | None = None
    peer_name: str | None = None
    mac: str | None = None
    master: str | None = None
    hairpin: bool = False
    up: bool = True
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamespaceSpec:
    """A namespace svcnet owns, entirely: its routes are exactly `routes` (plus the kernel's own)."""

    name: str
    links: tuple[LinkSpec, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    optional_sysctls: tuple[tuple[str, str], ...] = ()  # written when the kernel has them
    prune_routes: bool = True


@dataclass(frozen=True)
class NodePlan:
    cluster_id: str
    name: str
    index: int
    namespace: str
    ipv4: str
    ipv6: str | None
    pod_cidr_v4: str
    pod_cidr_v6: str | None
    gateway_v4: str  # cni0's address, every pod's default gateway
    gateway_v6: str | None
    bridge: str = NODE_BRIDGE
    bridge_mac: str = ""

    @property
    def pod_cidrs(self) -> tuple[str, ...]:
        """As Node.spec.podCIDRs: primary (IPv4) first."""
        return (self.pod_cidr_v4,) + ((self.pod_cidr_v6,) if self.pod_cidr_v6 else ())

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.ipv4,) + ((self.ipv6,) if self.ipv6 else ())


@dataclass(frozen=True)
class ClientPlan:
    namespace: str
    ipv4: str
    ipv6: str | None


@dataclass(frozen=True)
class TopologyPlan:
    cluster_id: str
    node_cidr_v4: str
    node_cidr_v6: str | None
    pod_cidr_v4: str
    pod_cidr_v6: str | None
    lan_namespace: str
    client: ClientPlan
    nodes: tuple[NodePlan, ...]
    namespaces: tuple[NamespaceSpec, ...] = field(repr=False)

    @property
    def prefix(self) -> str:
        return cluster_prefix(self.cluster_id)

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name or node.namespace == name:
                return node
        raise KeyError(f"no node {name!r} in cluster {self.cluster_id} (nodes: {', '.join(n.name for n in self.nodes)})")


# ---- planning (pure)


def mac_for(ip: str) -> str:
    """A stable locally administered MAC from an IPv4 address (0a:58 + the address, as Kubernetes CNIs do).

    A bridge keeps a MAC that was set explicitly; otherwise it takes the lowest
    port MAC and changes as pods come and go, leaving stale ARP entries in pods.
    """
    octets = ipaddress.IPv4Address(ip).packed
    return "0a:58:" + ":".join(f"{b:02x}" for b in octets)


def _host(network: ipaddress.IPv4Network | ipaddress.IPv6Network, offset: int, what: str) -> str:
    if not 0 < offset < network.num_addresses - (1 if network.version == 4 else 0):
        raise ValueError(f"{what}: host {offset} is outside {network}")
    return str(network[offset])


def _subnet(parent: ipaddress.IPv4Network | ipaddress.IPv6Network, new_prefix: int, index: int,
            what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if new_prefix < parent.prefixlen:
        raise ValueError(f"{what}: /{new_prefix} does not fit in {parent}")
    count = 1 << (new_prefix - parent.prefixlen)
    if index >= count:
        raise ValueError(f"{what}: {parent} has only {count} /{new_prefix} subnets, node {index} needs one more")
    return ipaddress.ip_network((int(parent.network_address) + index * (1 << (parent.max_prefixlen - new_prefix)),
                                 new_prefix))


def plan_topology(cluster_id: str, nodes: int, node_cidr: str = "192.168.0.0/24",
                  pod_cidr: str = "10.244.0.0/16", *, node_cidr_v6: str | None = "fd00:192:168::/64",
                  pod_cidr_v6: str | None = "fd00:10:244::/56", node_pod_prefix_v4: int = 24,
                  node_pod_prefix_v6: int = 64, first_node_host: int = 106,
                  client_host: int = 200,
                  service_cidrs: tuple[str, ...] = ("10.96.0.0/12", "fd00:10:96::/112")) -> TopologyPlan:
    """The whole cluster network for `nodes` nodes. Pass node_cidr_v6/pod_cidr_v6=None for IPv4 only."""
    check_cluster_id(cluster_id)
    if nodes < 1:
        raise ValueError(f"a cluster needs at least one node, got {nodes}")
    if (node_cidr_v6 is None) != (pod_cidr_v6 is None):
        raise ValueError("dual-stack needs both node_cidr_v6 and pod_cidr_v6 (or neither)")
    lan4 = ipaddress.IPv4Network(node_cidr)
    lan6 = ipaddress.IPv6Network(node_cidr_v6) if node_cidr_v6 else None
    pods4 = ipaddress.IPv4Network(pod_cidr)
    pods6 = ipaddress.IPv6Network(pod_cidr_v6) if pod_cidr_v6 else None
    node_offsets = range(first_node_host, first_node_host + nodes)
    if client_host in node_offsets:
        raise ValueError(f"client host {client_host} collides with a node address "
                         f"(nodes use hosts {first_node_host}-{first_node_host + nodes - 1})")

    node_plans = []
    for index in range(1, nodes + 1):
        offset = first_node_host + index - 1
        pod4 = _subnet(pods4, node_pod_prefix_v4, index, "pod CIDR")
        pod6 = _subnet(pods6, node_pod_prefix_v6, index, "IPv6 pod CIDR") if pods6 else None
        gateway4 = str(pod4[1])
        node_plans.append(NodePlan(
            cluster_id=cluster_id,
            name=node_name(index),
            index=index,
            namespace=node_namespace(cluster_id, index),
            ipv4=_host(lan4, offset, f"node {index} address"),
            ipv6=_host(lan6, offset, f"node {index} IPv6 address") if lan6 else None,
            pod_cidr_v4=str(pod4),
            pod_cidr_v6=str(pod6) if pod6 else None,
            gateway_v4=gateway4,
            gateway_v6=str(pod6[1]) if pod6 else None,
            bridge_mac=mac_for(gateway4),
        ))
    client = ClientPlan(
        namespace=client_namespace(cluster_id),
        ipv4=_host(lan4, client_host, "client address"),
        ipv6=_host(lan6, client_host, "client IPv6 address") if lan6 else None,
    )
    plan_nodes = tuple(node_plans)
    return TopologyPlan(
        cluster_id=cluster_id,
        node_cidr_v4=str(lan4),
        node_cidr_v6=str(lan6) if lan6 else None,
        pod_cidr_v4=str(pods4),
        pod_cidr_v6=str(pods6) if pods6 else None,
        lan_namespace=lan_namespace(cluster_id),
        client=client,
        nodes=plan_nodes,
        namespaces=_namespace_specs(cluster_id, lan4, lan6, client, plan_nodes, service_cidrs),
    )


def _namespace_specs(cluster_id: str, lan4: ipaddress.IPv4Network, lan6: ipaddress.IPv6Network | None,
                     client: ClientPlan, nodes: tuple[NodePlan, ...],
                     service_cidrs: tuple[str, ...] = ()) -> tuple[NamespaceSpec, ...]:
    lan_ns = lan_namespace(cluster_id)

    def on_lan(ipv4: str, ipv6: str | None) -> tuple[str, ...]:
        return (f"{ipv4}/{lan4.prefixlen}",) + ((f"{ipv6}/{lan6.prefixlen}",) if ipv6 and lan6 else ())

    lan_ports = [LinkSpec(name=f"{n.name}", kind="veth", peer_namespace=n.namespace, peer_name=NODE_UPLINK,
                          master=LAN_BRIDGE) for n in nodes]
    lan_ports.append(LinkSpec(name="client", kind="veth", peer_namespace=client.namespace,
                              peer_name=NODE_UPLINK, master=LAN_BRIDGE))
    specs = [NamespaceSpec(
        name=lan_ns,
        links=(LinkSpec(name="lo", kind="loopback"), LinkSpec(name=LAN_BRIDGE, kind="bridge"), *lan_ports),
        sysctls=BASE_SYSCTLS,
    )]
    for node in nodes:
        routes = []
        for other in nodes:
            if other is node:
                continue
            routes.append(Route(dst=other.pod_cidr_v4, via=other.ipv4))
            if other.pod_cidr_v6 and other.ipv6:
                routes.append(Route(dst=other.pod_cidr_v6, via=other.ipv6))
        # Service VIPs are only rules (the proxy DNATs them), but a node's own connections need
        # a route before OUTPUT's DNAT runs: send the service CIDRs out of the uplink, as a
        # node's default route would. Nothing ever leaves with such a destination.
        for cidr in service_cidrs:
            if ipaddress.ip_network(cidr).version == 4 or node.ipv6:
                routes.append(Route(dst=cidr, dev=NODE_UPLINK))
        bridge_addresses = (f"{node.gateway_v4}/{ipaddress.ip_network(node.pod_cidr_v4).prefixlen}",)
        if node.gateway_v6 and node.pod_cidr_v6:
            bridge_addresses += (f"{node.gateway_v6}/{ipaddress.ip_network(node.pod_cidr_v6).prefixlen}",)
        specs.append(NamespaceSpec(
            name=node.namespace,
            links=(
                LinkSpec(name="lo", kind="loopback"),
                LinkSpec(name=NODE_UPLINK, kind="veth", peer_namespace=lan_ns, peer_name=node.name,
                         addresses=on_lan(node.ipv4, node.ipv6)),
                LinkSpec(name=node.bridge, kind="bridge", mac=node.bridge_mac, addresses=bridge_addresses),
            ),
            routes=tuple(routes),
            sysctls=BASE_SYSCTLS + NODE_SYSCTLS,
            optional_sysctls=NODE_OPTIONAL_SYSCTLS,
        ))
    specs.append(NamespaceSpec(
        name=client.namespace,
        links=(
            LinkSpec(name="lo", kind="loopback"),
            LinkSpec(name=NODE_UPLINK, kind="veth", peer_namespace=lan_ns, peer_name="client",
                     addresses=on_lan(client.ipv4, client.ipv6)),
        ),
        sysctls=BASE_SYSCTLS,
    ))
    return tuple(specs)


# ---- converging the kernel to specs


def _is_kernel_address(link: LinkSpec, cidr: str) -> bool:
    """Addresses the kernel adds by itself and that converge must leave alone."""
    iface = ipaddress.ip_interface(cidr)
    return iface.ip.is_link_local or (link.kind == "loopback" and iface.ip.is_loopback)


def _veth_is_paired(ns: str, end: Link | None, peer_ns: str, peer: Link | None) -> bool:
    """Both ends exist as veths and point at each other (by index, and by namespace where the kernel says)."""
    if end is None or peer is None or end.kind != "veth" or peer.kind != "veth":
        return False
    if end.peer is None or peer.peer is None:
        return True  # the kernel did not say; names and kinds match, which is all we can check
    same_ns = ns == peer_ns
    return (end.peer.index == peer.index and peer.peer.index == end.index
            and end.peer.namespace == (None if same_ns else peer_ns)
            and peer.peer.namespace == (None if same_ns else ns))


def converge(kernel: NetworkKernel, specs: Sequence[NamespaceSpec]) -> tuple[str, ...]:
    """Make the kernel match `specs`: create what is missing, fix what differs. Returns what it changed.

    Safe to re-run after a failure part-way: every step looks before it acts.
    Links, addresses and routes not named in a spec are left alone, except
    unplanned addresses on a planned link and (with prune_routes) unplanned routes.
    """
    actions: list[str] = []
    existing = set(kernel.list_namespaces())
    for spec in specs:
        if spec.name not in existing:
            kernel.create_namespace(spec.name)
            actions.append(f"create namespace {spec.name}")
    for spec in specs:
        actions += _converge_sysctls(kernel, spec)
    actions += _converge_links_exist(kernel, specs)
    for spec in specs:
        actions += _converge_link_settings(kernel, spec)
        actions += _converge_addresses(kernel, spec)
    for spec in specs:  # after every namespace's addresses, so gateways are on connected subnets
        actions += _converge_routes(kernel, spec)
    return tuple(actions)


def _converge_sysctls(kernel: NetworkKernel, spec: NamespaceSpec) -> list[str]:
    actions = []
    for key, value in spec.sysctls + spec.optional_sysctls:
        current = kernel.read_sysctl(spec.name, key)
        if current is None and (key, value) in spec.optional_sysctls:
            continue
        if current != value:
            kernel.write_sysctl(spec.name, key, value)
            actions.append(f"sysctl {key}={value} in {spec.name}")
    return actions


def _converge_links_exist(kernel: NetworkKernel, specs: Sequence[NamespaceSpec]) -> list[str]:
    actions: list[str] = []
    links = {spec.name: {link.name: link for link in kernel.list_links(spec.name)} for spec in specs}

    def current(ns: str, name: str) -> Link | None:
        if ns not in links:  # a peer namespace outside these specs (a pod's node, say)
            links[ns] = {link.name: link for link in kernel.list_links(ns)}
        return links[ns].get(name)

    done: set[tuple[str, str]] = set()
    for spec in specs:
        for want in spec.links:
            if (spec.name, want.name) in done or want.kind == "loopback":
                continue
            have = current(spec.name, want.name)
            if want.kind == "bridge":
                if have is not None and have.kind != "bridge":
                    kernel.delete_link(spec.name, want.name)
                    actions.append(f"delete {want.name} in {spec.name} (not a bridge)")
                    have = None
                if have is None:
                    kernel.add_bridge(spec.name, want.name)
                    actions.append(f"add bridge {want.name} in {spec.name}")
                continue
            peer_ns = want.peer_namespace or spec.name
            peer_name = want.peer_name or ""
            done.add((peer_ns, peer_name))
            if _veth_is_paired(spec.name, have, peer_ns, current(peer_ns, peer_name)):
                continue
            # Half a pair, a stranger under our name, or a pair wired to someone else: start again.
            for ns, name in ((spec.name, want.name), (peer_ns, peer_name)):
                if current(ns, name) is not None:
                    kernel.delete_link(ns, name)
                    actions.append(f"delete stale {name} in {ns}")
            kernel.add_veth(spec.name, want.name, peer_name, None if peer_ns == spec.name else peer_ns)
            actions.append(f"add veth {want.name} in {spec.name} <-> {peer_name} in {peer_ns}")
            for ns in {spec.name, peer_ns}:
                links[ns] = {link.name: link for link in kernel.list_links(ns)}
    return actions


def _converge_link_settings(kernel: NetworkKernel, spec: NamespaceSpec) -> list[str]:
    actions = []
    have = {link.name: link for link in kernel.list_links(spec.name)}
    # Bridges first so ports can join them; `up` last so a port is wired before it carries traffic.
    for want in sorted(spec.links, key=lambda w: w.kind != "bridge"):
        link = have[want.name]
        changes: dict[str, object] = {}
        if want.mac and link.mac.lower() != want.mac.lower():
            changes["mac"] = want.mac
        if want.master != link.master:
            if want.master is None:
                changes["nomaster"] = True
            else:
                changes["master"] = want.master
        if want.master is not None and want.hairpin != link.hairpin:
            changes["hairpin"] = want.hairpin
        if want.up != link.up:
            changes["up"] = want.up
        if changes:
            kernel.set_link(spec.name, want.name, **changes)  # type: ignore[arg-type]
            actions.append(f"set {want.name} in {spec.name}: {', '.join(sorted(changes))}")
    return actions


def _converge_addresses(kernel: NetworkKernel, spec: NamespaceSpec) -> list[str]:
    actions = []
    current = kernel.list_addresses(spec.name)
    for want in spec.links:
        wanted = {str(ipaddress.ip_interface(c)) for c in want.addresses}
        have = {a.cidr for a in current if a.link == want.name and not _is_kernel_address(want, a.cidr)}
        for cidr in sorted(have - wanted):
            kernel.delete_address(spec.name, want.name, cidr)
            actions.append(f"delete address {cidr} from {want.name} in {spec.name}")
        for cidr in sorted(wanted - have):
            kernel.add_address(spec.name, want.name, cidr)
            actions.append(f"add address {cidr} to {want.name} in {spec.name}")
    return actions


def _same_route(want: Route, have: Route) -> bool:
    def ip(value: str | None) -> object:
        return ipaddress.ip_address(value) if value else None
    return ip(want.via) == ip(have.via) and (want.dev is None or want.dev == have.dev)


def _converge_routes(kernel: NetworkKernel, spec: NamespaceSpec) -> list[str]:
    actions = []
    have = {route.key(): route for route in kernel.list_routes(spec.name)}
    wanted = {route.key(): route for route in spec.routes}
    for key, route in wanted.items():
        if key not in have or not _same_route(route, have[key]):
            kernel.replace_route(spec.name, route)
            actions.append(f"route {route.dst} via {route.via or route.dev} in {spec.name}")
    if spec.prune_routes:
        for key, route in have.items():
            if key not in wanted:
                kernel.delete_route(spec.name, route)
                actions.append(f"delete route {route.dst} in {spec.name}")
    return actions


# ---- the cluster


def apply_topology(kernel: NetworkKernel, plan: TopologyPlan) -> tuple[str, ...]:
    """Create or repair the cluster network; a node namespace the plan no longer has is removed."""
    planned = {spec.name for spec in plan.namespaces}
    node_ns = re.compile(re.escape(plan.prefix) + r"node-\d+$")
    actions = []
    for name in kernel.list_namespaces():
        if node_ns.match(name) and name not in planned:
            kernel.delete_namespace(name)
            actions.append(f"delete namespace {name} (node not in plan)")
    return tuple(actions) + converge(kernel, plan.namespaces)


def cluster_namespaces(kernel: NetworkKernel, cluster_id: str) -> tuple[str, ...]:
    prefix = cluster_prefix(cluster_id)
    return tuple(name for name in kernel.list_namespaces() if name.startswith(prefix))


def destroy_topology(kernel: NetworkKernel, cluster_id: str) -> tuple[str, ...]:
    """Delete every namespace of the cluster (nodes, LAN, client, pods) and with them every link. Safe twice."""
    removed = cluster_namespaces(kernel, cluster_id)
    for name in removed:
        kernel.delete_namespace(name)
    return removed
