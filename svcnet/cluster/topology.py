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
- `svcnet-<id>-control-plane`: `eth0` on br-lan (192.168.0.100), where the API
  server (a process of the host) also listens, as kind's control-plane node
  does: the address of default/kubernetes's endpoint, so pods reach the API
  through 10.96.0.1:443 (their traffic to the LAN leaves masqueraded as their node).
- `svcnet-<id>-etcd-<n>` (`svcnet up --storage etcd`): `eth0` on br-lan (192.168.0.90+n), where
  etcd member n listens for its peers (mutual TLS); with --hosts, all on host 1's LAN.
- `svcnet-<id>-apiserver-<k>` (`svcnet up --apiservers N`, k = 2..N): `eth0` on br-lan
  (192.168.0.80+k), where API server k also listens, as another control-plane node: one more
  address of default/kubernetes's endpoints.

`plan_topology` returns what should exist, as `NamespaceSpec`s that
`svcnet.kernel.converge.converge` makes the kernel match (pods are declared the
same way, by `svcnet.agent.network`); each node's part is a `NodePlan`, what its
agent needs; `apply_topology` and `destroy_topology` are the two calls
`svcnet up/down` make.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from svcnet.agent.nodeplan import BASE_SYSCTLS, NodePlan, check_cluster_id, cluster_prefix
from svcnet.core.loadbalancer import Pools, parse_pools
from svcnet.kernel import NetworkKernel, Route
from svcnet.kernel.converge import LinkSpec, NamespaceSpec, converge

LAN_BRIDGE = "br-lan"
NODE_UPLINK = "eth0"

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


def lan_namespace(cluster_id: str) -> str:
    return cluster_prefix(cluster_id) + "lan"


def client_namespace(cluster_id: str) -> str:
    return cluster_prefix(cluster_id) + "client"


def control_plane_namespace(cluster_id: str) -> str:
    return cluster_prefix(cluster_id) + "control-plane"


def node_namespace(cluster_id: str, index: int) -> str:
    return cluster_prefix(cluster_id) + f"node-{index}"


def etcd_namespace(cluster_id: str, index: int) -> str:
    return cluster_prefix(cluster_id) + f"etcd-{index}"


def node_name(index: int) -> str:
    return f"node-{index}"


def host_lan_namespace(cluster_id: str, host: int) -> str:
    """Host 1's LAN keeps the one-host name, so a one-host cluster is what it always was."""
    return lan_namespace(cluster_id) if host == 1 else cluster_prefix(cluster_id) + f"lan-{host}"


def router_namespace(cluster_id: str) -> str:
    return cluster_prefix(cluster_id) + "router"


MAX_HOSTS = 16
ETCD_HOST_BASE = 90  # etcd member n is host 90 + n of the node network (192.168.0.91 for the first)
MAX_ETCD_MEMBERS = 7  # hosts 91-97: below the control plane's 100 and the nodes' 106 on
APISERVER_HOST_BASE = 80  # API server k (2..N) is host 80 + k (192.168.0.82 for the second)
MAX_APISERVERS = 7  # hosts 82-87: below the etcd members'
ROUTER_HOST = 1  # the router's address on every host LAN: .1 (and ::1)
ROUTER_PORT = "router"  # its leg's name on each host LAN's bridge
OVERLAY = "vxlan"


@dataclass(frozen=True)
class HostPlan:
    """One simulated host: an L2 segment (its own LAN bridge) holding its nodes."""

    index: int
    lan_namespace: str
    node_cidr_v4: str
    node_cidr_v6: str | None
    router_v4: str | None  # the router's leg on this LAN (None: one host, no router)
    router_v6: str | None

    @property
    def router_leg(self) -> str:
        return f"host-{self.index}"


@dataclass(frozen=True)
class ClientPlan:
    """A namespace with one address on the LAN and nothing else (the client, the control plane)."""

    namespace: str
    ipv4: str
    ipv6: str | None
    lan_port: str = "client"  # its veth peer's name in the LAN namespace


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
    control_plane: ClientPlan | None = None  # where the API server listens on the LAN
    hosts: tuple[HostPlan, ...] = ()  # host 1's LAN is node_cidr_v4/v6, the client's and control plane's
    router_namespace: str | None = None  # joins the hosts' LANs when there are several
    etcd: tuple[ClientPlan, ...] = ()  # the local etcd's members, each in its namespace on host 1's LAN
    apiservers: tuple[ClientPlan, ...] = ()  # API servers 2..N (`up --apiservers`), each in its namespace there

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
                  client_host: int = 200, control_plane_host: int = 100,
                  service_cidrs: tuple[str, ...] = ("10.96.0.0/12", "fd00:10:96::/112"),
                  zones: tuple[str, ...] = (), hosts: int = 1,
                  placements: tuple[tuple[int, int], ...] = (), etcd_members: int = 0,
                  apiservers: int = 1) -> TopologyPlan:
    """The whole cluster network for `nodes` nodes. Pass node_cidr_v6/pod_cidr_v6=None for IPv4 only.

    zones are handed to the nodes round-robin (node 1 the first, node 2 the second, ...), and so
    are hosts: with hosts > 1 host h has its own LAN, the node network's h-th block of its size
    (192.168.1.0/24 for host 2), a router joins the LANs, and pods cross hosts only by the VXLAN
    overlay the agents program (docs/topology.md). placements: (node index, host) pairs that put a
    node on another host than round-robin would (a node joined onto a chosen host); its address is
    still host first_node_host + index - 1 of its host's LAN, so it clashes with no other node.
    etcd_members: that many etcd namespaces on host 1's LAN (none: the cluster's store is not a local etcd).
    apiservers: with more than one, a namespace on host 1's LAN for each API server after the first."""
    check_cluster_id(cluster_id)
    if nodes < 1:
        raise ValueError(f"a cluster needs at least one node, got {nodes}")
    if not 1 <= hosts <= min(nodes, MAX_HOSTS):
        raise ValueError(f"--hosts must be 1-{min(nodes, MAX_HOSTS)} (every host holds a node, at most "
                         f"{MAX_HOSTS} hosts), got {hosts}")
    if (node_cidr_v6 is None) != (pod_cidr_v6 is None):
        raise ValueError("dual-stack needs both node_cidr_v6 and pod_cidr_v6 (or neither)")
    lan4 = ipaddress.IPv4Network(node_cidr)
    lan6 = ipaddress.IPv6Network(node_cidr_v6) if node_cidr_v6 else None
    pods4 = ipaddress.IPv4Network(pod_cidr)
    pods6 = ipaddress.IPv6Network(pod_cidr_v6) if pod_cidr_v6 else None
    node_offsets = range(first_node_host, first_node_host + nodes)
    for what, host in (("client", client_host), ("control-plane", control_plane_host)):
        if host in node_offsets:
            raise ValueError(f"{what} host {host} collides with a node address "
                             f"(nodes use hosts {first_node_host}-{first_node_host + nodes - 1})")
    if client_host == control_plane_host:
        raise ValueError(f"client and control-plane hosts are both {client_host}")
    if hosts > 1 and ROUTER_HOST in (*node_offsets, client_host, control_plane_host):
        raise ValueError(f"host {ROUTER_HOST} of each LAN is the router's")
    host_plans = _host_plans(cluster_id, hosts, lan4, lan6)
    host_of = _host_of(nodes, hosts, placements)

    node_plans = [_node_plan(cluster_id, index, first_node_host + index - 1, host_plans[host_of[index] - 1],
                             _subnet(pods4, node_pod_prefix_v4, index, "pod CIDR"),
                             _subnet(pods6, node_pod_prefix_v6, index, "IPv6 pod CIDR") if pods6 else None,
                             zones[(index - 1) % len(zones)] if zones else "",
                             (str(pods4),) + ((str(pods6),) if pods6 else ()) if hosts > 1 else ())
                  for index in range(1, nodes + 1)]
    client = ClientPlan(
        namespace=client_namespace(cluster_id),
        ipv4=_host(lan4, client_host, "client address"),
        ipv6=_host(lan6, client_host, "client IPv6 address") if lan6 else None,
    )
    control_plane = ClientPlan(
        namespace=control_plane_namespace(cluster_id),
        ipv4=_host(lan4, control_plane_host, "control-plane address"),
        ipv6=_host(lan6, control_plane_host, "control-plane IPv6 address") if lan6 else None,
        lan_port="control-plane",
    )
    taken = {**dict.fromkeys(node_offsets, "a node"), client_host: "the client",
             control_plane_host: "the control plane"}
    etcd = _etcd_plans(cluster_id, etcd_members, lan4, lan6, taken)
    peers = _apiserver_plans(cluster_id, apiservers, lan4, lan6, taken)
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
        namespaces=_namespace_specs(cluster_id, lan4, lan6, (client, control_plane, *etcd, *peers), plan_nodes,
                                    service_cidrs)
        if hosts == 1 else _multi_host_specs(cluster_id, host_plans, (client, control_plane, *etcd, *peers),
                                             plan_nodes, service_cidrs,
                                             (str(pods4),) + ((str(pods6),) if pods6 else ())),
        control_plane=control_plane,
        hosts=host_plans,
        router_namespace=router_namespace(cluster_id) if hosts > 1 else None,
        etcd=etcd,
        apiservers=peers,
    )


def _host_of(nodes: int, hosts: int, placements: tuple[tuple[int, int], ...]) -> dict[int, int]:
    """Each node index's host: round-robin, except where placements say otherwise."""
    host_of = {index: (index - 1) % hosts + 1 for index in range(1, nodes + 1)}
    for index, host in placements:
        if index not in host_of:
            raise ValueError(f"placement of node {index}: the cluster has nodes 1-{nodes}")
        if not 1 <= host <= hosts:
            raise ValueError(f"node {index} placed on host {host}: the cluster has hosts 1-{hosts}")
        host_of[index] = host
    return host_of


def _etcd_plans(cluster_id: str, members: int, lan4: ipaddress.IPv4Network, lan6: ipaddress.IPv6Network | None,
                taken: dict[int, str]) -> tuple[ClientPlan, ...]:
    """The local etcd's members: member n in its own namespace, host ETCD_HOST_BASE + n of host 1's LAN."""
    if not 0 <= members <= MAX_ETCD_MEMBERS:
        raise ValueError(f"etcd members: 0 to {MAX_ETCD_MEMBERS}, got {members}")
    return _lan_plans(range(1, members + 1), ETCD_HOST_BASE, "etcd member", "etcd",
                      lambda index: etcd_namespace(cluster_id, index), lan4, lan6, taken)


def _lan_plans(indices: range, host_base: int, what: str, port_prefix: str, namespace: Callable[[int], str],
               lan4: ipaddress.IPv4Network, lan6: ipaddress.IPv6Network | None,
               taken: dict[int, str]) -> tuple[ClientPlan, ...]:
    """A namespace with one address on host 1's LAN per index (host host_base + index), none on an
    address taken already."""
    plans = []
    for index in indices:
        host = host_base + index
        if host in taken:
            raise ValueError(f"{what} {index}'s address (host {host}) is {taken[host]}'s")
        plans.append(ClientPlan(
            namespace=namespace(index),
            ipv4=_host(lan4, host, f"{what} {index} address"),
            ipv6=_host(lan6, host, f"{what} {index} IPv6 address") if lan6 else None,
            lan_port=f"{port_prefix}-{index}"))
    return tuple(plans)


def apiserver_namespace(cluster_id: str, index: int) -> str:
    return cluster_prefix(cluster_id) + f"apiserver-{index}"


def _apiserver_plans(cluster_id: str, count: int, lan4: ipaddress.IPv4Network, lan6: ipaddress.IPv6Network | None,
                     taken: dict[int, str]) -> tuple[ClientPlan, ...]:
    """API servers 2..count: server k in its own namespace, host APISERVER_HOST_BASE + k of host 1's LAN."""
    if not 1 <= count <= MAX_APISERVERS:
        raise ValueError(f"API servers: 1 to {MAX_APISERVERS}, got {count}")
    return _lan_plans(range(2, count + 1), APISERVER_HOST_BASE, "API server", "apiserver",
                      lambda index: apiserver_namespace(cluster_id, index), lan4, lan6, taken)


def _node_plan(cluster_id: str, index: int, offset: int, host: HostPlan,
               pod4: ipaddress.IPv4Network | ipaddress.IPv6Network,
               pod6: ipaddress.IPv4Network | ipaddress.IPv6Network | None, zone: str,
               overlay_cidrs: tuple[str, ...]) -> NodePlan:
    """Node `index`, host `offset` of its host's LAN; overlay_cidrs (the cluster's pod CIDRs) only when
    the cluster spans several hosts, whose nodes then run the overlay."""
    lan4 = ipaddress.IPv4Network(host.node_cidr_v4)
    lan6 = ipaddress.IPv6Network(host.node_cidr_v6) if host.node_cidr_v6 else None
    gateway4 = str(pod4[1])
    return NodePlan(
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
        zone=zone,
        host=host.index,
        lan_cidrs=tuple(c for c in (host.node_cidr_v4, host.node_cidr_v6) if c) if overlay_cidrs else (),
        overlay=OVERLAY if overlay_cidrs else "",
        overlay_cidrs=overlay_cidrs,
    )


def _host_plans(cluster_id: str, hosts: int, lan4: ipaddress.IPv4Network,
                lan6: ipaddress.IPv6Network | None) -> tuple[HostPlan, ...]:
    """Host h's LAN is the h-th block of the node network's size, counting from it (host 1's is it)."""
    plans = []
    for index in range(1, hosts + 1):
        net4 = _next_block(lan4, index - 1, f"host {index}'s LAN")
        net6 = _next_block(lan6, index - 1, f"host {index}'s IPv6 LAN") if lan6 else None
        plans.append(HostPlan(
            index=index, lan_namespace=host_lan_namespace(cluster_id, index),
            node_cidr_v4=str(net4), node_cidr_v6=str(net6) if net6 else None,
            router_v4=str(net4[ROUTER_HOST]) if hosts > 1 else None,
            router_v6=str(net6[ROUTER_HOST]) if hosts > 1 and net6 else None))
    return tuple(plans)


def _next_block(network: ipaddress.IPv4Network | ipaddress.IPv6Network, steps: int,
                what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    start = int(network.network_address) + steps * network.num_addresses
    if start + network.num_addresses > 1 << network.max_prefixlen:
        raise ValueError(f"{what}: no room after {network}")
    return ipaddress.ip_network((start, network.prefixlen))


def _namespace_specs(cluster_id: str, lan4: ipaddress.IPv4Network, lan6: ipaddress.IPv6Network | None,
                     hosts: tuple[ClientPlan, ...], nodes: tuple[NodePlan, ...],
                     service_cidrs: tuple[str, ...] = ()) -> tuple[NamespaceSpec, ...]:
    lan_ns = lan_namespace(cluster_id)

    def on_lan(ipv4: str, ipv6: str | None) -> tuple[str, ...]:
        return (f"{ipv4}/{lan4.prefixlen}",) + ((f"{ipv6}/{lan6.prefixlen}",) if ipv6 and lan6 else ())

    lan_ports = [LinkSpec(name=f"{n.name}", kind="veth", peer_namespace=n.namespace, peer_name=NODE_UPLINK,
                          master=LAN_BRIDGE) for n in nodes]
    for host in hosts:
        lan_ports.append(LinkSpec(name=host.lan_port, kind="veth", peer_namespace=host.namespace,
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
    for host in hosts:
        specs.append(NamespaceSpec(
            name=host.namespace,
            links=(
                LinkSpec(name="lo", kind="loopback"),
                LinkSpec(name=NODE_UPLINK, kind="veth", peer_namespace=lan_ns, peer_name=host.lan_port,
                         addresses=on_lan(host.ipv4, host.ipv6)),
            ),
            sysctls=BASE_SYSCTLS,
        ))
    return tuple(specs)


def _on(net4: str, net6: str | None, ipv4: str, ipv6: str | None) -> tuple[str, ...]:
    out = (f"{ipv4}/{ipaddress.ip_network(net4).prefixlen}",)
    return out + ((f"{ipv6}/{ipaddress.ip_network(net6).prefixlen}",) if ipv6 and net6 else ())


def _routes_to_other_hosts(home: HostPlan, hosts: tuple[HostPlan, ...], ipv6: bool) -> list[Route]:
    """Every other host's LAN via the router's leg on this one: node IPs cross hosts only by routing."""
    routes = []
    for other in hosts:
        if other is home or home.router_v4 is None:
            continue
        routes.append(Route(dst=other.node_cidr_v4, via=home.router_v4))
        if ipv6 and other.node_cidr_v6 and home.router_v6:
            routes.append(Route(dst=other.node_cidr_v6, via=home.router_v6))
    return routes


def _multi_host_specs(cluster_id: str, hosts: tuple[HostPlan, ...], clients: tuple[ClientPlan, ...],
                      nodes: tuple[NodePlan, ...], service_cidrs: tuple[str, ...],
                      pod_cidrs: tuple[str, ...]) -> tuple[NamespaceSpec, ...]:
    """Several hosts: a LAN per host, a router between them, and no route to any pod CIDR here.

    Routes inside the pod CIDRs are the overlay's (each agent programs them from the Nodes), so
    converging the topology again leaves them alone (`unowned_routes`)."""
    router = router_namespace(cluster_id)
    specs = [NamespaceSpec(
        name=router,
        links=(LinkSpec(name="lo", kind="loopback"),
               *(LinkSpec(name=h.router_leg, kind="veth", peer_namespace=h.lan_namespace, peer_name=ROUTER_PORT,
                          addresses=_on(h.node_cidr_v4, h.node_cidr_v6, h.router_v4 or "", h.router_v6))
                 for h in hosts)),
        sysctls=BASE_SYSCTLS + NODE_SYSCTLS,
    )]
    home = hosts[0]  # the client and the control plane live on host 1
    for host in hosts:
        ports = [LinkSpec(name=n.name, kind="veth", peer_namespace=n.namespace, peer_name=NODE_UPLINK,
                          master=LAN_BRIDGE) for n in nodes if n.host == host.index]
        if host is home:
            ports += [LinkSpec(name=c.lan_port, kind="veth", peer_namespace=c.namespace, peer_name=NODE_UPLINK,
                               master=LAN_BRIDGE) for c in clients]
        ports.append(LinkSpec(name=ROUTER_PORT, kind="veth", peer_namespace=router, peer_name=host.router_leg,
                              master=LAN_BRIDGE))
        specs.append(NamespaceSpec(
            name=host.lan_namespace,
            links=(LinkSpec(name="lo", kind="loopback"), LinkSpec(name=LAN_BRIDGE, kind="bridge"), *ports),
            sysctls=BASE_SYSCTLS))
    for node in nodes:
        host = hosts[node.host - 1]
        routes = _routes_to_other_hosts(host, hosts, node.ipv6 is not None)
        routes += [Route(dst=cidr, dev=NODE_UPLINK) for cidr in service_cidrs
                   if ipaddress.ip_network(cidr).version == 4 or node.ipv6]
        specs.append(NamespaceSpec(
            name=node.namespace,
            links=(LinkSpec(name="lo", kind="loopback"),
                   LinkSpec(name=NODE_UPLINK, kind="veth", peer_namespace=host.lan_namespace, peer_name=node.name,
                            addresses=_on(host.node_cidr_v4, host.node_cidr_v6, node.ipv4, node.ipv6)),
                   LinkSpec(name=node.bridge, kind="bridge", mac=node.bridge_mac, addresses=_bridge_addresses(node))),
            routes=tuple(routes),
            sysctls=BASE_SYSCTLS + NODE_SYSCTLS,
            optional_sysctls=NODE_OPTIONAL_SYSCTLS,
            unowned_routes=pod_cidrs))
    for client in clients:
        specs.append(NamespaceSpec(
            name=client.namespace,
            links=(LinkSpec(name="lo", kind="loopback"),
                   LinkSpec(name=NODE_UPLINK, kind="veth", peer_namespace=home.lan_namespace,
                            peer_name=client.lan_port,
                            addresses=_on(home.node_cidr_v4, home.node_cidr_v6, client.ipv4, client.ipv6))),
            routes=tuple(_routes_to_other_hosts(home, hosts, client.ipv6 is not None)),
            sysctls=BASE_SYSCTLS))
    return tuple(specs)


def _bridge_addresses(node: NodePlan) -> tuple[str, ...]:
    out = (f"{node.gateway_v4}/{ipaddress.ip_network(node.pod_cidr_v4).prefixlen}",)
    if node.gateway_v6 and node.pod_cidr_v6:
        out += (f"{node.gateway_v6}/{ipaddress.ip_network(node.pod_cidr_v6).prefixlen}",)
    return out


# ---- LoadBalancer addresses


LB_POOL_PREFIX = 28  # the default pool: the top /28 of the node network (192.168.0.240/28)
LB_POOL_PREFIX_V6 = 124  # and the top /124 of the IPv6 one, when the LAN is dual-stack


def _top(network: ipaddress.IPv4Network | ipaddress.IPv6Network, prefix: int) -> str:
    if network.prefixlen > prefix:
        raise ValueError(f"the node network {network} is too small for a default LoadBalancer pool; give --lb-pool")
    return str(ipaddress.ip_network((int(network.broadcast_address) + 1 - (1 << (network.max_prefixlen - prefix)),
                                     prefix)))


def default_lb_pool(plan: TopologyPlan) -> str:
    """The top /28 of the IPv4 node network, and the top /124 of the IPv6 one on a dual-stack LAN."""
    pools = [_top(ipaddress.IPv4Network(plan.node_cidr_v4), LB_POOL_PREFIX)]
    if plan.node_cidr_v6:
        pools.append(_top(ipaddress.IPv6Network(plan.node_cidr_v6), LB_POOL_PREFIX_V6))
    return ",".join(pools)


def lb_pool_for(plan: TopologyPlan, cidr: str | None) -> Pools:
    """The LoadBalancer pools `cidr` names (one CIDR per family, comma-separated; the default ones
    for None): each on the LAN of its family, and clear of the nodes', client's and control
    plane's addresses (PoolError says which clash)."""
    hosts = [*plan.nodes, plan.client, *([plan.control_plane] if plan.control_plane is not None else []), *plan.etcd,
             *plan.apiservers]
    taken = [ip for host in hosts for ip in (host.ipv4, host.ipv6) if ip]
    taken += [ip for lan in plan.hosts for ip in (lan.router_v4, lan.router_v6) if ip]  # several hosts: the router
    lans = {4: plan.node_cidr_v4, **({6: plan.node_cidr_v6} if plan.node_cidr_v6 else {})}
    return parse_pools(cidr or default_lb_pool(plan), lans, taken)


# ---- the cluster


def apply_topology(kernel: NetworkKernel, plan: TopologyPlan) -> tuple[str, ...]:
    """Create or repair the cluster network; a node namespace the plan no longer has is removed."""
    planned = {spec.name for spec in plan.namespaces}
    node_ns = re.compile(re.escape(plan.prefix) + r"(node-\d+|lan-\d+|router|etcd-\d+|apiserver-\d+)$")
    actions = []
    for name in kernel.list_namespaces():
        if node_ns.match(name) and name not in planned:
            kernel.delete_namespace(name)
            actions.append(f"delete namespace {name} (not in plan)")
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
