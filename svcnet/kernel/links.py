"""The real `NetworkKernel`: netlink through pyroute2, one namespace at a time.

Each call runs on a thread that has joined the target namespace (see
`svcnet.kernel.netns.run_in_netns`) and opens a plain `IPRoute()` there, so the
netlink socket lives in that namespace and nothing is ever sent to the host's.
This also avoids pyroute2's fork-per-namespace socket helper and works from a
process that runs an asyncio loop (the call happens on its own thread).
"""
from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from svcnet.kernel import (
    Address,
    KernelError,
    Link,
    LinkKind,
    LinkNotFound,
    LinkPeer,
    NamespaceNotFound,
    Route,
    check_link_name,
    check_namespace_name,
)
from svcnet.kernel import netns as nsmod
from svcnet.kernel import sysctl as sysctlmod

T = TypeVar("T")

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254
# Routes the kernel derives by itself (connected prefixes, link-local, router advertisements).
_KERNEL_ROUTE_PROTOS = frozenset({2, 9})  # RTPROT_KERNEL, RTPROT_RA
BRIDGE_PORT_HAIRPIN = 1


class LinuxNetworkKernel:
    """NetworkKernel over netlink. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root)."""

    # ---- namespaces

    def list_namespaces(self) -> tuple[str, ...]:
        return nsmod.list_netns()

    def create_namespace(self, name: str) -> None:
        nsmod.create_netns(name)

    def delete_namespace(self, name: str) -> None:
        nsmod.delete_netns(name)

    def namespace_path(self, name: str) -> str:
        return nsmod.netns_path(name)

    # ---- links

    def list_links(self, ns: str) -> tuple[Link, ...]:
        return self._in(ns, "list links", _list_links)

    def add_bridge(self, ns: str, name: str) -> None:
        check_link_name(name)
        self._in(ns, f"add bridge {name}", lambda ipr: ipr.link("add", ifname=name, kind="bridge"))

    def add_veth(self, ns: str, name: str, peer_name: str, peer_ns: str | None = None) -> None:
        check_link_name(name)
        check_link_name(peer_name)
        peer: dict[str, Any] = {"ifname": peer_name}
        fd = nsmod.open_netns(peer_ns) if peer_ns is not None else None
        try:
            if fd is not None:
                # The kernel creates the peer directly in the other namespace: no veth end
                # ever exists in a namespace we did not choose.
                peer["net_ns_fd"] = fd
            self._in(ns, f"add veth {name}/{peer_name}",
                     lambda ipr: ipr.link("add", ifname=name, kind="veth", peer=peer))
        finally:
            if fd is not None:
                os.close(fd)

    def move_link(self, ns: str, name: str, to_ns: str, new_name: str | None = None) -> None:
        if new_name is not None:
            check_link_name(new_name)
        fd = nsmod.open_netns(to_ns)
        try:
            def move(ipr: IPRoute) -> None:
                attrs: dict[str, Any] = {"net_ns_fd": fd}
                if new_name is not None:
                    attrs["ifname"] = new_name
                ipr.link("set", index=_index(ipr, name, ns), **attrs)
            self._in(ns, f"move {name} to {to_ns}", move)
        finally:
            os.close(fd)

    def delete_link(self, ns: str, name: str) -> None:
        def delete(ipr: IPRoute) -> None:
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])
        self._in(ns, f"delete link {name}", delete)

    def set_link(self, ns: str, name: str, *, up: bool | None = None, mac: str | None = None,
                 master: str | None = None, nomaster: bool = False,
                 hairpin: bool | None = None) -> None:
        def apply(ipr: IPRoute) -> None:
            index = _index(ipr, name, ns)
            if mac is not None:
                ipr.link("set", index=index, address=mac)
            if master is not None:
                ipr.link("set", index=index, master=_index(ipr, master, ns))
            elif nomaster:
                ipr.link("set", index=index, master=0)
            if hairpin is not None:
                # pyroute2 names bridge-port attributes after IFLA_BRPORT_*: MODE is hairpin.
                ipr.brport("set", index=index, mode=BRIDGE_PORT_HAIRPIN if hairpin else 0)
            if up is not None:
                ipr.link("set", index=index, state="up" if up else "down")
        self._in(ns, f"set link {name}", apply)

    # ---- addresses and routes

    def list_addresses(self, ns: str) -> tuple[Address, ...]:
        return self._in(ns, "list addresses", _list_addresses)

    def add_address(self, ns: str, link: str, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)

        def add(ipr: IPRoute) -> None:
            attrs: dict[str, Any] = {}
            if iface.version == 6:
                # Duplicate address detection would leave the address "tentative" (unusable)
                # for a second or two; addresses here are handed out by IPAM, so skip it as
                # the bridge CNI plugin does.
                attrs["IFA_FLAGS"] = IFA_F_NODAD
            ipr.addr("add", index=_index(ipr, link, ns), address=str(iface.ip),
                     prefixlen=iface.network.prefixlen, **attrs)
        self._in(ns, f"add address {cidr} to {link}", add)

    def delete_address(self, ns: str, link: str, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        self._in(ns, f"delete address {cidr} from {link}",
                 lambda ipr: ipr.addr("del", index=_index(ipr, link, ns), address=str(iface.ip),
                                      prefixlen=iface.network.prefixlen))

    def list_routes(self, ns: str) -> tuple[Route, ...]:
        return self._in(ns, "list routes", _list_routes)

    def replace_route(self, ns: str, route: Route) -> None:
        self._in(ns, f"replace route {route.dst}", lambda ipr: ipr.route("replace", **_route_args(ipr, route, ns)))

    def delete_route(self, ns: str, route: Route) -> None:
        def delete(ipr: IPRoute) -> None:
            net = ipaddress.ip_network(route.dst)
            try:
                ipr.route("del", dst=str(net.network_address), dst_len=net.prefixlen,
                          family=_family(net.version), table=RT_TABLE_MAIN)
            except NetlinkError as e:
                if e.code != 3:  # ESRCH: already gone
                    raise
        self._in(ns, f"delete route {route.dst}", delete)

    # ---- sysctls

    def read_sysctl(self, ns: str, key: str) -> str | None:
        self._require(ns)
        return sysctlmod.read_sysctl(ns, key)

    def write_sysctl(self, ns: str, key: str, value: str) -> None:
        self._require(ns)
        sysctlmod.write_sysctl(ns, key, value)

    # ---- plumbing

    def _require(self, ns: str) -> None:
        if not os.path.exists(nsmod.netns_path(check_namespace_name(ns))):
            raise NamespaceNotFound(f"network namespace {ns} does not exist")

    def _in(self, ns: str, what: str, fn: Callable[[IPRoute], T]) -> T:
        def with_socket() -> T:
            with IPRoute() as ipr:
                return fn(ipr)
        try:
            return nsmod.run_in_netns(ns, with_socket)
        except NetlinkError as e:
            raise KernelError(f"{what} in {ns}: {os.strerror(e.code) if e.code else e}") from e


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _index(ipr: IPRoute, name: str, ns: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LinkNotFound(f"link {name} not found in {ns}")
    return int(found[0])


def _nsid_names(ipr: IPRoute) -> dict[int, str]:
    """Map this namespace's ids for other namespaces to their /run/netns names (as `ip link` prints them)."""
    names: dict[int, str] = {}
    for name in nsmod.list_netns():
        try:
            fd = nsmod.open_netns(name)
        except NamespaceNotFound:
            continue
        try:
            info = ipr.get_netnsid(fd=fd)
        except NetlinkError:
            continue
        finally:
            os.close(fd)
        if info and info.get("nsid") is not None and info["nsid"] >= 0:
            names[int(info["nsid"])] = name
    return names


def _list_links(ipr: IPRoute) -> tuple[Link, ...]:
    raw = list(ipr.get_links())
    by_index = {int(m["index"]): m.get_attr("IFLA_IFNAME") for m in raw}
    nsids = None
    links = []
    for m in raw:
        flags = int(m["flags"])
        kind_attr = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        kind: LinkKind
        if flags & IFF_LOOPBACK:
            kind = "loopback"
        elif kind_attr in ("bridge", "veth"):
            kind = kind_attr
        else:
            kind = "other"
        master_index = m.get_attr("IFLA_MASTER")
        hairpin_mode = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_MODE")
        peer = None
        if kind == "veth" and m.get_attr("IFLA_LINK") is not None:
            nsid = m.get_attr("IFLA_LINK_NETNSID")
            peer_ns = None
            if nsid is not None:
                if nsids is None:
                    nsids = _nsid_names(ipr)
                peer_ns = nsids.get(int(nsid), f"nsid:{nsid}")
            peer = LinkPeer(namespace=peer_ns, index=int(m.get_attr("IFLA_LINK")))
        links.append(Link(
            name=m.get_attr("IFLA_IFNAME"),
            index=int(m["index"]),
            kind=kind,
            up=bool(flags & IFF_UP),
            mac=m.get_attr("IFLA_ADDRESS") or "",
            master=by_index.get(int(master_index)) if master_index else None,
            hairpin=bool(hairpin_mode),
            peer=peer,
        ))
    return tuple(sorted(links, key=lambda link: link.index))


def _list_addresses(ipr: IPRoute) -> tuple[Address, ...]:
    names = {int(m["index"]): m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
    out = []
    for m in ipr.get_addr():
        ip = m.get_attr("IFA_ADDRESS")
        if ip is None:
            continue
        out.append(Address(link=names.get(int(m["index"]), str(m["index"])), cidr=f"{ip}/{m['prefixlen']}"))
    return tuple(out)


def _list_routes(ipr: IPRoute) -> tuple[Route, ...]:
    names = {int(m["index"]): m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
            if int(m["proto"]) in _KERNEL_ROUTE_PROTOS or int(m["type"]) != 1:  # unicast only
                continue
            dst = m.get_attr("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
            oif = m.get_attr("RTA_OIF")
            out.append(Route(
                dst=str(ipaddress.ip_network(f"{dst}/{m['dst_len']}")),
                via=m.get_attr("RTA_GATEWAY"),
                dev=names.get(int(oif)) if oif is not None else None,
            ))
    return tuple(out)


def _route_args(ipr: IPRoute, route: Route, ns: str) -> dict[str, Any]:
    net = ipaddress.ip_network(route.dst)
    args: dict[str, Any] = {"dst": str(net.network_address), "dst_len": net.prefixlen,
                            "family": _family(net.version), "table": RT_TABLE_MAIN}
    if route.via is not None:
        args["gateway"] = route.via
    if route.dev is not None:
        args["oif"] = _index(ipr, route.dev, ns)
    return args
