"""Converge network namespaces to a declared state: namespaces, links, addresses, routes, sysctls.

The desired state is a list of `NamespaceSpec`s (each holding `LinkSpec`s);
`converge` reads what the kernel has through `NetworkKernel`, creates what is
missing and fixes what differs. It reads the links it declares by name
(`get_link`), never a dump of the namespace: a pod's port on the node's
bridge is converged at the same cost whatever the number of pods on the node
(the bridge CNI plugin likewise looks links up by name: containernetworking/
plugins pkg/ip/link_linux.go, netlink.LinkByName). The cluster topology (`svcnet.cluster.topology`)
and pod sandboxes (`svcnet.agent.network`) both declare their networks this way,
as a CNI plugin's ADD is idempotent: a half-made state is completed by the next run.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from svcnet.kernel import Link, LinkNotFound, NetworkKernel, Route


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
    mtu: int | None = None  # None: whatever the kernel gave it


@dataclass(frozen=True)
class NamespaceSpec:
    """A namespace svcnet owns, entirely: its routes are exactly `routes` (plus the kernel's own)."""

    name: str
    links: tuple[LinkSpec, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    optional_sysctls: tuple[tuple[str, str], ...] = ()  # written when the kernel has them
    prune_routes: bool = True
    # False: only the addresses a link declares are added; others on it are left alone (and the
    # namespace's addresses are not read at all when no link declares any: a node's bridge port).
    prune_addresses: bool = True
    # Prefixes whose routes belong to someone else (the overlay's routes to other nodes' pod CIDRs):
    # routes inside them are neither declared here nor pruned.
    unowned_routes: tuple[str, ...] = ()


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
    # A namespace made by this call holds nothing but what this call adds (and the kernel's own
    # addresses and routes, which converge never touches): its addresses and routes are not read
    # back. A new pod's namespace was dumped three times (links twice, addresses, routes), in
    # Python, a third of the agent's netlink time in a pod burst (issue 13).
    fresh = {spec.name for spec in specs if spec.name not in existing}
    for spec in specs:
        if spec.name in fresh:
            kernel.create_namespace(spec.name)
            actions.append(f"create namespace {spec.name}")
    for spec in specs:
        actions += _converge_sysctls(kernel, spec)
    actions += _converge_links_exist(kernel, specs)
    for spec in specs:
        indexes: dict[str, int] = {}  # each declared link's index, as its settings step read it
        actions += _converge_link_settings(kernel, spec, indexes)
        actions += _converge_addresses(kernel, spec, indexes, fresh=spec.name in fresh)
    for spec in specs:  # after every namespace's addresses, so gateways are on connected subnets
        actions += _converge_routes(kernel, spec, fresh=spec.name in fresh)
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
    links: dict[tuple[str, str], Link | None] = {}

    def current(ns: str, name: str, peer_ns: str) -> Link | None:
        if (ns, name) not in links:
            links[(ns, name)] = kernel.get_link(ns, name, peer_hint=None if peer_ns == ns else peer_ns)
        return links[(ns, name)]

    done: set[tuple[str, str]] = set()
    for spec in specs:
        for want in spec.links:
            if (spec.name, want.name) in done or want.kind == "loopback":
                continue
            have = current(spec.name, want.name, want.peer_namespace or spec.name)
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
            if _veth_is_paired(spec.name, have, peer_ns, current(peer_ns, peer_name, spec.name)):
                continue
            # Half a pair, a stranger under our name, or a pair wired to someone else: start again.
            for ns, name, other in ((spec.name, want.name, peer_ns), (peer_ns, peer_name, spec.name)):
                if current(ns, name, other) is not None:
                    kernel.delete_link(ns, name)
                    actions.append(f"delete stale {name} in {ns}")
            kernel.add_veth(spec.name, want.name, peer_name, None if peer_ns == spec.name else peer_ns)
            actions.append(f"add veth {want.name} in {spec.name} <-> {peer_name} in {peer_ns}")
            links.pop((spec.name, want.name), None)
            links.pop((peer_ns, peer_name), None)
    return actions


def _converge_link_settings(kernel: NetworkKernel, spec: NamespaceSpec, indexes: dict[str, int]) -> list[str]:
    actions = []
    # Bridges first so ports can join them; `up` last so a port is wired before it carries traffic.
    for want in sorted(spec.links, key=lambda w: w.kind != "bridge"):
        link = kernel.get_link(spec.name, want.name, peer_hint=want.peer_namespace)
        if link is None:
            raise LinkNotFound(f"link {want.name} not found in {spec.name}")
        indexes[want.name] = link.index
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
        if want.mtu is not None and want.mtu != link.mtu:
            changes["mtu"] = want.mtu
        if want.up != link.up:
            changes["up"] = want.up
        if changes:
            kernel.set_link(spec.name, want.name, index=link.index, **changes)  # type: ignore[arg-type]
            actions.append(f"set {want.name} in {spec.name}: {', '.join(sorted(changes))}")
    return actions


def _converge_addresses(kernel: NetworkKernel, spec: NamespaceSpec, indexes: dict[str, int],
                        fresh: bool = False) -> list[str]:
    actions: list[str] = []
    if not spec.prune_addresses and not any(link.addresses for link in spec.links):
        return actions
    current = () if fresh else kernel.list_addresses(spec.name)
    for want in spec.links:
        wanted = {str(ipaddress.ip_interface(c)) for c in want.addresses}
        have = {a.cidr for a in current if a.link == want.name and not _is_kernel_address(want, a.cidr)}
        for cidr in sorted(have - wanted if spec.prune_addresses else ()):
            kernel.delete_address(spec.name, want.name, cidr)
            actions.append(f"delete address {cidr} from {want.name} in {spec.name}")
        for cidr in sorted(wanted - have):
            kernel.add_address(spec.name, want.name, cidr, index=indexes.get(want.name))
            actions.append(f"add address {cidr} to {want.name} in {spec.name}")
    return actions


def _same_route(want: Route, have: Route) -> bool:
    def ip(value: str | None) -> object:
        return ipaddress.ip_address(value) if value else None
    return (ip(want.via) == ip(have.via) and (want.dev is None or want.dev == have.dev)
            and want.onlink == have.onlink)


def _inside(dst: str, prefixes: tuple[str, ...]) -> bool:
    net = ipaddress.ip_network(dst)
    for prefix in map(ipaddress.ip_network, prefixes):
        if net.version == prefix.version and int(net.network_address) & int(prefix.netmask) == int(
                prefix.network_address) and net.prefixlen >= prefix.prefixlen:
            return True
    return False


def _converge_routes(kernel: NetworkKernel, spec: NamespaceSpec, fresh: bool = False) -> list[str]:
    actions: list[str] = []
    if not spec.routes and not spec.prune_routes:
        return actions
    have = {} if fresh else {route.key(): route for route in kernel.list_routes(spec.name)}
    wanted = {route.key(): route for route in spec.routes}
    for key, route in wanted.items():
        if key not in have or not _same_route(route, have[key]):
            kernel.replace_route(spec.name, route)
            actions.append(f"route {route.dst} via {route.via or route.dev} in {spec.name}")
    if spec.prune_routes:
        for key, route in have.items():
            if key not in wanted and not _inside(route.dst, spec.unowned_routes):
                kernel.delete_route(spec.name, route)
                actions.append(f"delete route {route.dst} in {spec.name}")
    return actions
