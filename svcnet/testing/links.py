"""The fake of svcnet.kernel.links: an in-memory `NetworkKernel` that behaves like Linux where the agent depends on it.

It keeps namespaces, links (veth pairs know their peer, bridges their ports),
addresses, routes and sysctls, and refuses what the kernel refuses: duplicate
names, names over 15 characters, a master that is not a bridge in the same
namespace, a gateway not on a connected subnet of an up link. It does what the
kernel does on its own: `lo` in every new namespace, 127.0.0.1 and ::1 when lo
comes up, an fe80:: address on other links when they come up, routes gone with
their link, a veth pair gone when either end or its namespace goes.

`trace()` follows a packet through the model (route lookup, veth, bridge,
forwarding sysctls) so tests can say "pod A reaches pod B" without root.
"""
from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from typing import Any

from svcnet.kernel import (
    Address,
    FdbRecord,
    KernelError,
    Link,
    LinkKind,
    LinkNotFound,
    LinkPeer,
    NamespaceNotFound,
    Neighbour,
    Route,
    VxlanDevice,
    check_link_name,
    check_namespace_name,
)
from svcnet.kernel.sysctl import sysctl_path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Unreachable(Exception):
    """trace() could not deliver the packet; the message says where and why."""


@dataclass(eq=False)  # identity, not field equality: veth ends point at each other
class _Link:
    name: str
    index: int
    kind: LinkKind
    ns: str
    mac: str
    up: bool = False
    master: _Link | None = None
    hairpin: bool = False
    peer: _Link | None = None
    mtu: int = 1500
    vxlan: VxlanDevice | None = None


@dataclass
class _Namespace:
    name: str
    links: dict[str, _Link] = field(default_factory=dict)
    addresses: list[Address] = field(default_factory=list)
    routes: dict[tuple[int, str], Route] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    next_index: int = 1
    neighbours: dict[tuple[str, str], Neighbour] = field(default_factory=dict)  # (dev, ip) -> entry
    fdb: dict[tuple[str, str], FdbRecord] = field(default_factory=dict)  # (dev, mac) -> entry


def default_sysctls(bridge_netfilter: bool) -> dict[str, str]:
    """The per-namespace defaults a fresh namespace starts with."""
    values = {
        "net.ipv4.ip_forward": "0",
        "net.ipv6.conf.all.forwarding": "0",
        "net.ipv6.conf.default.forwarding": "0",
        "net.ipv6.conf.all.accept_dad": "0",
        "net.ipv6.conf.default.accept_dad": "1",
    }
    if bridge_netfilter:
        values["net.bridge.bridge-nf-call-iptables"] = "1"
        values["net.bridge.bridge-nf-call-ip6tables"] = "1"
    return values


class FakeNetworkKernel:
    """NetworkKernel in memory. `bridge_netfilter=False` models a host without br_netfilter."""

    def __init__(self, *, bridge_netfilter: bool = True) -> None:
        self._namespaces: dict[str, _Namespace] = {}
        self._bridge_netfilter = bridge_netfilter
        self._macs = itertools.count(1)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []  # mutating calls, for "converged: no changes" tests
        self.dumps: list[tuple[str, str]] = []  # (what, namespace) of each list_* call: work that grows with it

    # ---- namespaces

    def list_namespaces(self) -> tuple[str, ...]:
        return tuple(sorted(self._namespaces))

    def create_namespace(self, name: str) -> None:
        check_namespace_name(name)
        if name in self._namespaces:
            return
        self._record("create_namespace", name)
        ns = _Namespace(name=name, sysctls=default_sysctls(self._bridge_netfilter))
        self._namespaces[name] = ns
        self._new_link(ns, "lo", "loopback", mac="00:00:00:00:00:00")

    def delete_namespace(self, name: str) -> None:
        ns = self._namespaces.get(name)
        if ns is None:
            return
        self._record("delete_namespace", name)
        for link in list(ns.links.values()):
            self._destroy_link(link)
        del self._namespaces[name]

    def namespace_path(self, name: str) -> str:
        return f"/run/netns/{check_namespace_name(name)}"

    # ---- links

    def get_link(self, ns: str, name: str, peer_hint: str | None = None) -> Link | None:
        link = self._ns(ns).links.get(name)
        return self._public_link(link) if link is not None else None

    def list_links(self, ns: str) -> tuple[Link, ...]:
        self.dumps.append(("list_links", ns))
        return tuple(self._public_link(link) for link in sorted(self._ns(ns).links.values(), key=lambda x: x.index))

    def add_bridge(self, ns: str, name: str) -> None:
        space = self._ns(ns)
        self._check_free(space, name)
        self._record("add_bridge", ns, name)
        self._new_link(space, name, "bridge")

    def add_veth(self, ns: str, name: str, peer_name: str, peer_ns: str | None = None) -> None:
        space = self._ns(ns)
        peer_space = self._ns(peer_ns) if peer_ns is not None else space
        self._check_free(space, name)
        self._check_free(peer_space, peer_name)
        if peer_space is space and name == peer_name:
            raise KernelError(f"add veth {name}: both ends cannot have the same name")
        self._record("add_veth", ns, name, peer_name, peer_ns)
        end = self._new_link(space, name, "veth")
        other = self._new_link(peer_space, peer_name, "veth")
        end.peer, other.peer = other, end

    def move_link(self, ns: str, name: str, to_ns: str, new_name: str | None = None) -> None:
        space, target = self._ns(ns), self._ns(to_ns)
        link = self._link(space, name)
        final = new_name or name
        self._check_free(target, final)
        self._record("move_link", ns, name, to_ns, new_name)
        # As in Linux: the link arrives down, without addresses, master or routes.
        self._forget_l3(space, link)
        for port in space.links.values():
            if port.master is link:
                port.master = None
        del space.links[name]
        link.name, link.ns, link.up, link.master, link.hairpin = final, to_ns, False, None, False
        link.index = target.next_index
        target.next_index += 1
        target.links[final] = link

    def delete_link(self, ns: str, name: str) -> None:
        space = self._ns(ns)
        link = space.links.get(name)
        if link is None:
            return
        self._record("delete_link", ns, name)
        self._destroy_link(link)

    def set_link(self, ns: str, name: str, *, up: bool | None = None, mac: str | None = None,
                 master: str | None = None, nomaster: bool = False,
                 hairpin: bool | None = None, index: int | None = None, mtu: int | None = None) -> None:
        space = self._ns(ns)
        self._check_index(space, name, index)
        link = self._link(space, name)
        self._record("set_link", ns, name, up, mac, master, nomaster, hairpin)
        if mac is not None:
            link.mac = mac.lower()
        if mtu is not None:
            if not 68 <= mtu <= 65535:
                raise KernelError(f"set {name} mtu {mtu} in {ns}: Invalid argument")
            link.mtu = mtu
        if master is not None:
            bridge = self._link(space, master)
            if bridge.kind != "bridge":
                raise KernelError(f"set {name} master {master} in {ns}: {master} is not a bridge")
            if link.kind == "bridge" or link is bridge:
                raise KernelError(f"set {name} master {master} in {ns}: a bridge cannot be a port")
            link.master = bridge
            self._forget_routes(space, link)
        elif nomaster:
            link.master, link.hairpin = None, False
        if hairpin is not None:
            if link.master is None:
                raise KernelError(f"set {name} hairpin in {ns}: not a bridge port")
            link.hairpin = hairpin
        if up is not None and up != link.up:
            link.up = up
            if up:
                self._on_up(space, link)
            else:
                self._forget_routes(space, link)

    # ---- addresses and routes

    def list_addresses(self, ns: str) -> tuple[Address, ...]:
        self.dumps.append(("list_addresses", ns))
        return tuple(self._ns(ns).addresses)

    def add_address(self, ns: str, link: str, cidr: str, index: int | None = None) -> None:
        space = self._ns(ns)
        self._link(space, link)
        self._check_index(space, link, index)
        address = Address(link=link, cidr=str(ipaddress.ip_interface(cidr)))
        if any(a.link == link and a.ip == address.ip for a in space.addresses):
            raise KernelError(f"add address {cidr} to {link} in {ns}: File exists")
        self._record("add_address", ns, link, cidr)
        space.addresses.append(address)

    def delete_address(self, ns: str, link: str, cidr: str) -> None:
        space = self._ns(ns)
        wanted = str(ipaddress.ip_interface(cidr))
        if not any(a.link == link and a.cidr == wanted for a in space.addresses):
            raise KernelError(f"delete address {cidr} from {link} in {ns}: Cannot assign requested address")
        self._record("delete_address", ns, link, cidr)
        space.addresses = [a for a in space.addresses if not (a.link == link and a.cidr == wanted)]

    def list_routes(self, ns: str) -> tuple[Route, ...]:
        self.dumps.append(("list_routes", ns))
        return tuple(self._ns(ns).routes.values())

    def replace_route(self, ns: str, route: Route) -> None:
        space = self._ns(ns)
        dev = route.dev
        if route.onlink:  # the gateway is taken to be on dev, whatever its addresses say
            if dev is None or route.via is None:
                raise KernelError(f"replace route {route.dst} onlink in {ns}: needs a gateway and a device")
            if not self._link(space, dev).up:
                raise KernelError(f"replace route {route.dst} dev {dev} in {ns}: Network is down")
        elif route.via is not None:
            via_link = self._connected_link(space, ipaddress.ip_address(route.via), dev)
            if via_link is None:
                raise KernelError(f"replace route {route.dst} via {route.via} in {ns}: Nexthop has invalid gateway")
            dev = via_link.name
        elif dev is None:
            raise KernelError(f"replace route {route.dst} in {ns}: needs a gateway or a device")
        else:
            link = self._link(space, dev)
            if not link.up:
                raise KernelError(f"replace route {route.dst} dev {dev} in {ns}: Network is down")
        self._record("replace_route", ns, route)
        stored = Route(dst=str(ipaddress.ip_network(route.dst)), via=route.via, dev=dev, onlink=route.onlink)
        space.routes[stored.key()] = stored

    def delete_route(self, ns: str, route: Route) -> None:
        space = self._ns(ns)
        if route.key() in space.routes:
            self._record("delete_route", ns, route)
            del space.routes[route.key()]

    # ---- the VXLAN overlay

    def add_vxlan(self, ns: str, name: str, device: VxlanDevice, mac: str | None = None) -> None:
        space = self._ns(ns)
        self._check_free(space, name)
        underlay = self._link(space, device.underlay)
        self._record("add_vxlan", ns, name, device)
        link = self._new_link(space, name, "vxlan", mac=mac.lower() if mac else None)
        link.vxlan = device
        link.mtu = underlay.mtu - (50 if ipaddress.ip_address(device.local).version == 4 else 70)

    def list_neighbours(self, ns: str, dev: str) -> tuple[Neighbour, ...]:
        return tuple(n for n in self._ns(ns).neighbours.values() if n.dev == dev)

    def replace_neighbour(self, ns: str, entry: Neighbour) -> None:
        space = self._ns(ns)
        self._link(space, entry.dev)
        self._record("replace_neighbour", ns, entry)
        space.neighbours[(entry.dev, entry.ip)] = entry

    def delete_neighbour(self, ns: str, entry: Neighbour) -> None:
        space = self._ns(ns)
        if space.neighbours.pop((entry.dev, entry.ip), None) is not None:
            self._record("delete_neighbour", ns, entry)

    def list_fdb(self, ns: str, dev: str) -> tuple[FdbRecord, ...]:
        return tuple(f for f in self._ns(ns).fdb.values() if f.dev == dev)

    def replace_fdb(self, ns: str, entry: FdbRecord) -> None:
        space = self._ns(ns)
        if self._link(space, entry.dev).kind != "vxlan":
            raise KernelError(f"replace fdb {entry.mac} on {entry.dev} in {ns}: not a VXLAN device")
        self._record("replace_fdb", ns, entry)
        space.fdb[(entry.dev, entry.mac)] = entry

    def delete_fdb(self, ns: str, entry: FdbRecord) -> None:
        space = self._ns(ns)
        if space.fdb.get((entry.dev, entry.mac)) == entry:
            self._record("delete_fdb", ns, entry)
            del space.fdb[(entry.dev, entry.mac)]

    # ---- sysctls

    def read_sysctl(self, ns: str, key: str) -> str | None:
        sysctl_path(key)  # same key rules as the real one
        return self._ns(ns).sysctls.get(key)

    def write_sysctl(self, ns: str, key: str, value: str) -> None:
        sysctl_path(key)
        space = self._ns(ns)
        if key not in space.sysctls:
            raise KernelError(f"sysctl {key} does not exist in this kernel (namespace {ns})")
        self._record("write_sysctl", ns, key, value)
        space.sysctls[key] = value

    # ---- packet tracing

    def trace(self, src_ns: str, dst_ip: str, *, max_hops: int = 16) -> tuple[str, ...]:
        """Namespaces a packet from src_ns to dst_ip passes, ending where it is delivered; raises Unreachable."""
        dst = ipaddress.ip_address(dst_ip)
        path = [src_ns]
        current = self._ns(src_ns)
        for hop in range(max_hops):
            if self._owns(current, dst):
                return tuple(path)
            if hop > 0 and not self._forwards(current, dst.version):
                raise Unreachable(f"{current.name} does not forward IPv{dst.version} (to {dst})")
            link, next_hop = self._lookup(current, dst)
            receiver = self._neighbour(link, next_hop)
            if receiver is None:
                raise Unreachable(f"{current.name}: nobody on {link.name}'s segment has {next_hop}")
            current = self._namespaces[receiver.ns]
            path.append(current.name)
        raise Unreachable(f"{dst} from {src_ns}: routing loop ({' -> '.join(path)})")

    def reachable(self, src_ns: str, dst_ip: str) -> bool:
        """True when dst_ip is delivered from src_ns and the reply finds its way back."""
        try:
            path = self.trace(src_ns, dst_ip)
            source = self._source_address(self._ns(src_ns), ipaddress.ip_address(dst_ip))
            if source is None:
                return False
            back = self.trace(path[-1], str(source))
        except Unreachable:
            return False
        return back[-1] == src_ns

    # ---- model internals

    def _record(self, op: str, *args: Any) -> None:
        self.calls.append((op, args))

    def _ns(self, name: str | None) -> _Namespace:
        if name is None or name not in self._namespaces:
            raise NamespaceNotFound(f"network namespace {name} does not exist")
        return self._namespaces[name]

    def _link(self, space: _Namespace, name: str) -> _Link:
        link = space.links.get(name)
        if link is None:
            raise LinkNotFound(f"link {name} not found in {space.name}")
        return link

    def _check_index(self, space: _Namespace, name: str, index: int | None) -> None:
        """An index a caller passes must be the link's (a stale one would change another link)."""
        if index is not None and (name not in space.links or space.links[name].index != index):
            raise AssertionError(f"index {index} is not link {name}'s in {space.name}")

    def _check_free(self, space: _Namespace, name: str) -> None:
        check_link_name(name)
        if name in space.links:
            raise KernelError(f"link {name} in {space.name}: File exists")

    def _new_link(self, space: _Namespace, name: str, kind: LinkKind, mac: str | None = None) -> _Link:
        n = next(self._macs)
        link = _Link(name=name, index=space.next_index, kind=kind, ns=space.name,
                     mac=mac or f"02:00:00:{(n >> 16) & 0xff:02x}:{(n >> 8) & 0xff:02x}:{n & 0xff:02x}")
        space.next_index += 1
        space.links[name] = link
        return link

    def _destroy_link(self, link: _Link) -> None:
        for end in (link, link.peer):
            if end is None:
                continue
            space = self._namespaces.get(end.ns)
            if space is None or space.links.get(end.name) is not end:
                continue
            self._forget_l3(space, end)
            for port in space.links.values():
                if port.master is end:
                    port.master, port.hairpin = None, False
            del space.links[end.name]

    def _forget_l3(self, space: _Namespace, link: _Link) -> None:
        space.addresses = [a for a in space.addresses if a.link != link.name]
        space.neighbours = {k: n for k, n in space.neighbours.items() if n.dev != link.name}
        space.fdb = {k: f for k, f in space.fdb.items() if f.dev != link.name}
        self._forget_routes(space, link)

    def _forget_routes(self, space: _Namespace, link: _Link) -> None:
        space.routes = {k: r for k, r in space.routes.items() if r.dev != link.name}

    def _on_up(self, space: _Namespace, link: _Link) -> None:
        if link.kind == "loopback":
            for cidr in ("127.0.0.1/8", "::1/128"):
                if not any(a.link == link.name and a.cidr == cidr for a in space.addresses):
                    space.addresses.append(Address(link=link.name, cidr=cidr))
        elif not any(a.link == link.name and a.cidr.startswith("fe80:") for a in space.addresses):
            space.addresses.append(Address(link=link.name, cidr=f"fe80::{link.index:x}/64"))

    def _public_link(self, link: _Link) -> Link:
        peer = None
        if link.peer is not None:
            peer = LinkPeer(namespace=None if link.peer.ns == link.ns else link.peer.ns, index=link.peer.index)
        return Link(name=link.name, index=link.index, kind=link.kind, up=link.up, mac=link.mac,
                    master=link.master.name if link.master else None, hairpin=link.hairpin, peer=peer,
                    mtu=link.mtu, vxlan=link.vxlan)

    def _l3_usable(self, link: _Link) -> bool:
        return link.up and link.master is None

    def _connected_link(self, space: _Namespace, ip: IPAddress, dev: str | None) -> _Link | None:
        for a in space.addresses:
            link = space.links.get(a.link)
            if link is None or not self._l3_usable(link) or (dev is not None and link.name != dev):
                continue
            if ip in ipaddress.ip_interface(a.cidr).network and not a.cidr.startswith("fe80:"):
                return link
        return None

    def _owns(self, space: _Namespace, ip: IPAddress) -> bool:
        return any(ipaddress.ip_interface(a.cidr).ip == ip and space.links[a.link].up for a in space.addresses)

    def _forwards(self, space: _Namespace, version: int) -> bool:
        key = "net.ipv4.ip_forward" if version == 4 else "net.ipv6.conf.all.forwarding"
        return space.sysctls.get(key) == "1"

    def _lookup(self, space: _Namespace, dst: IPAddress) -> tuple[_Link, IPAddress]:
        """Longest-prefix match over connected subnets and routes: (out link, next hop)."""
        best: tuple[int, _Link, IPAddress] | None = None
        for a in space.addresses:
            link = space.links[a.link]
            net = ipaddress.ip_interface(a.cidr).network
            if self._l3_usable(link) and dst.version == net.version and dst in net and link.kind != "loopback":
                if best is None or net.prefixlen > best[0]:
                    best = (net.prefixlen, link, dst)
        for route in space.routes.values():
            net = ipaddress.ip_network(route.dst)
            if dst.version == net.version and dst in net and (best is None or net.prefixlen > best[0]):
                link = space.links.get(route.dev or "")
                if link is not None and self._l3_usable(link):
                    hop = ipaddress.ip_address(route.via) if route.via else dst
                    best = (net.prefixlen, link, hop)
        if best is None:
            raise Unreachable(f"{space.name}: no route to {dst} (Network is unreachable)")
        return best[1], best[2]

    def _segment(self, start: _Link) -> list[_Link]:
        """Every link on the same layer-2 segment as `start` (through veths and bridges)."""
        seen: list[_Link] = []
        todo = [start]
        while todo:
            link = todo.pop()
            if any(link is s for s in seen) or not link.up:
                continue
            seen.append(link)
            if link.peer is not None:
                todo.append(link.peer)
            if link.master is not None:
                todo.append(link.master)
            if link.kind == "bridge":
                space = self._namespaces[link.ns]
                todo.extend(p for p in space.links.values() if p.master is link)
        return seen

    def _neighbour(self, out: _Link, next_hop: IPAddress) -> _Link | None:
        for link in self._segment(out):
            if link is out or not self._l3_usable(link):
                continue
            space = self._namespaces[link.ns]
            if any(a.link == link.name and ipaddress.ip_interface(a.cidr).ip == next_hop for a in space.addresses):
                return link
        return None

    def _source_address(self, space: _Namespace, dst: IPAddress) -> IPAddress | None:
        if self._owns(space, dst):
            return dst
        link, _ = self._lookup(space, dst)
        for a in space.addresses:
            iface = ipaddress.ip_interface(a.cidr)
            if a.link == link.name and iface.version == dst.version and not iface.ip.is_link_local:
                return iface.ip
        return None
