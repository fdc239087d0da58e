"""The real `NetworkKernel`: netlink through pyroute2, one namespace at a time.

Every call runs inside the target namespace (see `svcnet.kernel.netns`), so
nothing is ever sent to the host's. By default each call opens a socket on a
fresh thread that joined the namespace and closes it. With
`reuse_sockets=True` (the node agent) a namespace's socket is opened once on a
`NamespaceThread` that stays in the namespace, and later calls run there,
instead of paying for a thread, a setns and a socket each; deleting a
namespace through this kernel closes its socket first (an open socket keeps
the namespace alive), at most `SOCKET_CACHE` stay open (least recently used
closed first), and `close()` ends them all. This also avoids pyroute2's
fork-per-namespace socket helper and works from a process that runs an
asyncio loop.

Work per call does not grow with the links of the namespace: `get_link`
asks for one link by name (RTM_GETLINK with IFLA_IFNAME, as `ip link show
dev NAME` does) and a veth's peer namespace is named from a cache of netns
ids, so a pod's setup costs the same on a node with 10 pods as with 250.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

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
ENODEV = 19
ENOENT = 2
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
AF_BRIDGE = 7
# Open netlink sockets kept: the node namespace's, and a few pods' being set up at once (the
# agent's pool is smaller than this); each is one fd and holds its namespace while open.
SOCKET_CACHE = 16


class _Sockets:
    """One netlink socket per namespace, on that namespace's own thread, reused; bounded, LRU.

    pyroute2 (0.9) keeps a sync IPRoute's socket per thread: used from another
    thread it quietly opens a new one in *that* thread's namespace. So each
    socket lives on a `NamespaceThread` that joined its namespace, and every
    request for it runs there (one at a time, as a socket serves them).
    An entry is trusted while /run/netns/NAME is still the namespace it was
    made in (device and inode): a namespace deleted or replaced behind our back
    gets its socket closed (so it does not hold the old namespace alive).
    """

    def __init__(self, limit: int = SOCKET_CACHE) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._open: OrderedDict[str, tuple[nsmod.NamespaceThread, tuple[int, int]]] = OrderedDict()

    def call(self, ns: str, fn: Callable[[IPRoute], T]) -> T:
        identity = _identity(ns)
        stale: list[nsmod.NamespaceThread] = []
        with self._lock:
            entry = self._open.get(ns)
            if entry is not None and entry[1] == identity:
                self._open.move_to_end(ns)
            elif entry is not None:
                stale.append(self._open.pop(ns)[0])
                entry = None
        for thread in stale:
            thread.close(_close_socket)
        stale.clear()
        if identity is None:
            raise NamespaceNotFound(f"network namespace {ns} does not exist")
        if entry is None:
            made = (nsmod.NamespaceThread(ns, IPRoute), identity)
            with self._lock:
                raced = self._open.get(ns)
                if raced is not None and raced[1] == identity:
                    stale.append(made[0])
                    entry = raced
                else:
                    if raced is not None:
                        stale.append(raced[0])
                    self._open[ns] = entry = made
                    while len(self._open) > self._limit:
                        stale.append(self._open.popitem(last=False)[1][0])
            for thread in stale:
                thread.close(_close_socket)
        return entry[0].call(fn)

    def close(self, ns: str) -> None:
        with self._lock:
            entry = self._open.pop(ns, None)
        if entry is not None:
            entry[0].close(_close_socket)

    def close_all(self) -> None:
        with self._lock:
            threads = [thread for thread, _ in self._open.values()]
            self._open.clear()
        for thread in threads:
            thread.close(_close_socket)


def _close_socket(ipr: IPRoute | None) -> None:
    if ipr is not None:
        ipr.close()


class _NsidNames:
    """Names for the netns ids a namespace's veths report, cached and checked by inode.

    IFLA_LINK_NETNSID is an id local to the namespace that reports it; naming it
    means asking that namespace for its id of a named namespace (RTM_GETNSID),
    one name at a time. A full scan grows with the pods of the node, so an answer
    is kept and trusted while /run/netns/NAME is still the namespace (same device
    and inode) it was when learnt, and a miss asks only the names this namespace
    has not mapped yet, the caller's hint first (converge knows where each veth's
    peer should be), then the most often answered: one query per new pod.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, dict[int, tuple[str, tuple[int, int]]]] = {}  # ns -> nsid -> (name, identity)
        self._hits: dict[str, int] = {}  # name -> how often it was the answer

    def name(self, ipr: IPRoute, ns: str, nsid: int, hint: str | None = None) -> str:
        with self._lock:
            known = dict(self._known.get(ns, {}))
        cached = known.get(nsid)
        if cached is not None and _identity(cached[0]) == cached[1]:
            return cached[0]
        if hint is not None and hint != ns and self._learn(ipr, ns, hint, nsid):
            # The caller knows where the peer should be (converge declares both ends): one query,
            # before the scan below, which stats every namespace of the host (~2 ms at 250 pods).
            return hint
        mapped = {name: identity for name, identity in known.values()}
        candidates = [name for name in nsmod.list_netns() if name != ns and mapped.get(name, ()) != _identity(name)]
        with self._lock:
            candidates.sort(key=lambda name: -self._hits.get(name, 0))
        for candidate in candidates:
            # Without a hint (or a wrong one), in the worst case every namespace on the host that
            # has no id here, such as the other node's pods.
            if candidate != hint and self._learn(ipr, ns, candidate, nsid):
                return candidate
        return f"nsid:{nsid}"

    def _learn(self, ipr: IPRoute, ns: str, candidate: str, nsid: int) -> bool:
        """Ask ns for its id of candidate and remember it; True when that id is nsid."""
        found = _nsid_of(ipr, candidate)
        if found is None:
            return False
        found_id, identity = found
        with self._lock:
            self._known.setdefault(ns, {})[found_id] = (candidate, identity)
            if found_id == nsid:
                self._hits[candidate] = self._hits.get(candidate, 0) + 1
        return found_id == nsid

    def forget(self, name: str) -> None:
        with self._lock:
            self._known.pop(name, None)
            self._hits.pop(name, None)
            for table in self._known.values():
                for nsid in [i for i, (n, _) in table.items() if n == name]:
                    del table[nsid]


def _identity(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(nsmod.netns_path(name))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class LinuxNetworkKernel:
    """NetworkKernel over netlink. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root)."""

    def __init__(self, *, reuse_sockets: bool = False) -> None:
        # Reuse is for a long-lived owner that deletes its namespaces through this kernel and
        # calls close() when it stops (the node agent); one-shot users get a socket per call.
        self._sockets = _Sockets() if reuse_sockets else None
        self._nsids = _NsidNames()

    def close(self) -> None:
        """Close every cached netlink socket (each holds its namespace while open)."""
        if self._sockets is not None:
            self._sockets.close_all()

    # ---- namespaces

    def list_namespaces(self) -> tuple[str, ...]:
        return nsmod.list_netns()

    def create_namespace(self, name: str) -> None:
        nsmod.create_netns(name)

    def delete_namespace(self, name: str) -> None:
        if self._sockets is not None:
            self._sockets.close(name)
        self._nsids.forget(name)
        nsmod.delete_netns(name)

    def namespace_path(self, name: str) -> str:
        return nsmod.netns_path(name)

    # ---- links

    def list_links(self, ns: str) -> tuple[Link, ...]:
        return self._in(ns, "list links", lambda ipr: _list_links(ipr, self._peer_namespace(ipr, ns)))

    def get_link(self, ns: str, name: str, peer_hint: str | None = None) -> Link | None:
        """One link by name (one RTM_GETLINK, not a dump of the namespace); None if there is none.
        A veth's peer namespace is looked for in peer_hint first (see _NsidNames)."""
        check_link_name(name)

        def get(ipr: IPRoute) -> Link | None:
            m = _link_named(ipr, name)
            if m is None:
                return None
            master_index = m.get_attr("IFLA_MASTER")
            master = None
            if master_index:
                master = ipr.link("get", index=int(master_index))[0].get_attr("IFLA_IFNAME")
            link = _to_link(m, lambda _index: master, self._peer_namespace(ipr, ns, peer_hint))
            if link.vxlan is not None and link.vxlan.underlay.startswith("#"):
                underlay = ipr.link("get", index=int(link.vxlan.underlay[1:]))[0].get_attr("IFLA_IFNAME")
                link = dataclasses.replace(link, vxlan=dataclasses.replace(link.vxlan, underlay=underlay))
            return link
        return self._in(ns, f"get link {name}", get)

    def _peer_namespace(self, ipr: IPRoute, ns: str, hint: str | None = None) -> Callable[[int], str]:
        return lambda nsid: self._nsids.name(ipr, ns, nsid, hint)

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
            index = _find_index(ipr, name)
            if index is not None:
                ipr.link("del", index=index)
        self._in(ns, f"delete link {name}", delete)

    def set_link(self, ns: str, name: str, *, up: bool | None = None, mac: str | None = None,
                 master: str | None = None, nomaster: bool = False,
                 hairpin: bool | None = None, index: int | None = None, mtu: int | None = None) -> None:
        known = index

        def apply(ipr: IPRoute) -> None:
            index = known if known is not None else _index(ipr, name, ns)
            if mac is not None:
                ipr.link("set", index=index, address=mac)
            if master is not None:
                ipr.link("set", index=index, master=_index(ipr, master, ns))
            elif nomaster:
                ipr.link("set", index=index, master=0)
            if mtu is not None:
                ipr.link("set", index=index, mtu=mtu)
            if hairpin is not None:
                # pyroute2 names bridge-port attributes after IFLA_BRPORT_*: MODE is hairpin.
                ipr.brport("set", index=index, mode=BRIDGE_PORT_HAIRPIN if hairpin else 0)
            if up is not None:
                ipr.link("set", index=index, state="up" if up else "down")
        self._in(ns, f"set link {name}", apply)

    # ---- addresses and routes

    def list_addresses(self, ns: str) -> tuple[Address, ...]:
        return self._in(ns, "list addresses", _list_addresses)

    def add_address(self, ns: str, link: str, cidr: str, index: int | None = None) -> None:
        iface = ipaddress.ip_interface(cidr)

        def add(ipr: IPRoute) -> None:
            attrs: dict[str, Any] = {}
            if iface.version == 6:
                # Duplicate address detection would leave the address "tentative" (unusable)
                # for a second or two; addresses here are handed out by IPAM, so skip it as
                # the bridge CNI plugin does.
                attrs["IFA_FLAGS"] = IFA_F_NODAD
            ipr.addr("add", index=index if index is not None else _index(ipr, link, ns), address=str(iface.ip),
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

    # ---- the VXLAN overlay (flannel's vxlan backend: one device, permanent neighbours and FDB entries)

    def add_vxlan(self, ns: str, name: str, device: VxlanDevice, mac: str | None = None) -> None:
        check_link_name(name)
        local_key = "vxlan_local" if ipaddress.ip_address(device.local).version == 4 else "vxlan_local6"

        def add(ipr: IPRoute) -> None:
            attrs: dict[str, Any] = {"ifname": name, "kind": "vxlan", "vxlan_id": device.vni,
                                     local_key: device.local, "vxlan_port": device.port, "vxlan_learning": 0,
                                     "vxlan_link": _index(ipr, device.underlay, ns)}
            if mac is not None:
                attrs["address"] = mac
            ipr.link("add", **attrs)
        self._in(ns, f"add vxlan {name}", add)

    def list_neighbours(self, ns: str, dev: str) -> tuple[Neighbour, ...]:
        def dump(ipr: IPRoute) -> tuple[Neighbour, ...]:
            index = _find_index(ipr, dev)
            if index is None:
                return ()
            out = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for m in ipr.get_neighbours(family=family, ifindex=index):
                    ip, mac = m.get_attr("NDA_DST"), m.get_attr("NDA_LLADDR")
                    if ip and mac and int(m["state"]) & NUD_PERMANENT:
                        out.append(Neighbour(dev, str(ipaddress.ip_address(ip)), str(mac).lower()))
            return tuple(out)
        return self._in(ns, f"list neighbours of {dev}", dump)

    def replace_neighbour(self, ns: str, entry: Neighbour) -> None:
        family = _family(ipaddress.ip_address(entry.ip).version)
        self._in(ns, f"replace neighbour {entry.ip} on {entry.dev}",
                 lambda ipr: ipr.neigh("replace", ifindex=_index(ipr, entry.dev, ns), dst=entry.ip,
                                       lladdr=entry.mac, state=NUD_PERMANENT, family=family))

    def delete_neighbour(self, ns: str, entry: Neighbour) -> None:
        family = _family(ipaddress.ip_address(entry.ip).version)

        def delete(ipr: IPRoute) -> None:
            index = _find_index(ipr, entry.dev)
            if index is not None:
                _ignore_missing(lambda: ipr.neigh("del", ifindex=index, dst=entry.ip, family=family))
        self._in(ns, f"delete neighbour {entry.ip} on {entry.dev}", delete)

    def list_fdb(self, ns: str, dev: str) -> tuple[FdbRecord, ...]:
        def dump(ipr: IPRoute) -> tuple[FdbRecord, ...]:
            index = _find_index(ipr, dev)
            if index is None:
                return ()
            out = []
            for m in ipr.fdb("dump", ifindex=index):
                dst, mac = m.get_attr("NDA_DST"), m.get_attr("NDA_LLADDR")
                if dst and mac and int(m["ifindex"]) == index:
                    out.append(FdbRecord(dev, str(mac).lower(), str(ipaddress.ip_address(dst))))
            return tuple(out)
        return self._in(ns, f"list fdb of {dev}", dump)

    def replace_fdb(self, ns: str, entry: FdbRecord) -> None:
        # As flannel (netlink.NeighSet): replace, permanent, on the device itself (NTF_SELF).
        self._in(ns, f"replace fdb {entry.mac} on {entry.dev}",
                 lambda ipr: ipr.neigh("replace", family=AF_BRIDGE, ifindex=_index(ipr, entry.dev, ns),
                                       lladdr=entry.mac, dst=entry.dst, state=NUD_PERMANENT, flags=NTF_SELF))

    def delete_fdb(self, ns: str, entry: FdbRecord) -> None:
        def delete(ipr: IPRoute) -> None:
            index = _find_index(ipr, entry.dev)
            if index is not None:
                _ignore_missing(lambda: ipr.neigh("del", family=AF_BRIDGE, ifindex=index, lladdr=entry.mac,
                                                  dst=entry.dst, state=NUD_PERMANENT, flags=NTF_SELF))
        self._in(ns, f"delete fdb {entry.mac} on {entry.dev}", delete)

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
            if self._sockets is not None:
                return self._sockets.call(ns, fn)
            return nsmod.run_in_netns(ns, with_socket)
        except NetlinkError as e:
            raise KernelError(f"{what} in {ns}: {os.strerror(e.code) if e.code else e}") from e


def _ignore_missing(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except NetlinkError as e:
        if e.code not in (ENOENT, 3):  # already gone
            raise


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _index(ipr: IPRoute, name: str, ns: str) -> int:
    index = _find_index(ipr, name)
    if index is None:
        raise LinkNotFound(f"link {name} not found in {ns}")
    return index


def _find_index(ipr: IPRoute, name: str) -> int | None:
    m = _link_named(ipr, name)
    return int(m["index"]) if m is not None else None


def _link_named(ipr: IPRoute, name: str) -> Any:
    """The RTM_NEWLINK answer for one name (`ip link show dev NAME`), or None if there is no such link."""
    try:
        found = ipr.link("get", ifname=name)
    except NetlinkError as e:
        if e.code == ENODEV:
            return None
        raise
    return found[0] if found else None


def _nsid_of(ipr: IPRoute, name: str) -> tuple[int, tuple[int, int]] | None:
    """This namespace's id for /run/netns/NAME and that namespace's (device, inode); None if it has none."""
    try:
        fd = nsmod.open_netns(name)
    except NamespaceNotFound:
        return None
    try:
        st = os.fstat(fd)
        info = ipr.get_netnsid(fd=fd)
    except NetlinkError:
        return None
    finally:
        os.close(fd)
    if info and info.get("nsid") is not None and info["nsid"] >= 0:
        return int(info["nsid"]), (st.st_dev, st.st_ino)
    return None


def _to_link(m: Any, master_name: Callable[[int], str | None], peer_namespace: Callable[[int], str]) -> Link:
    flags = int(m["flags"])
    kind_attr = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    kind: LinkKind
    if flags & IFF_LOOPBACK:
        kind = "loopback"
    elif kind_attr in ("bridge", "veth", "vxlan"):
        kind = kind_attr
    else:
        kind = "other"
    master_index = m.get_attr("IFLA_MASTER")
    hairpin_mode = m.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_MODE")
    peer = None
    if kind == "veth" and m.get_attr("IFLA_LINK") is not None:
        nsid = m.get_attr("IFLA_LINK_NETNSID")
        peer = LinkPeer(namespace=peer_namespace(int(nsid)) if nsid is not None else None,
                        index=int(m.get_attr("IFLA_LINK")))
    return Link(
        name=m.get_attr("IFLA_IFNAME"),
        index=int(m["index"]),
        kind=kind,
        up=bool(flags & IFF_UP),
        mac=m.get_attr("IFLA_ADDRESS") or "",
        master=master_name(int(master_index)) if master_index else None,
        hairpin=bool(hairpin_mode),
        peer=peer,
        mtu=int(m.get_attr("IFLA_MTU") or 0),
        vxlan=_vxlan_settings(m) if kind == "vxlan" else None,
    )


def _vxlan_settings(m: Any) -> VxlanDevice:
    def data(name: str) -> Any:
        return m.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", name)
    underlay = data("IFLA_VXLAN_LINK")
    return VxlanDevice(vni=int(data("IFLA_VXLAN_ID") or 0),
                       local=str(data("IFLA_VXLAN_LOCAL") or data("IFLA_VXLAN_LOCAL6") or ""),
                       port=int(data("IFLA_VXLAN_PORT") or 0),
                       underlay=f"#{underlay}" if underlay else "")


def _list_links(ipr: IPRoute, peer_namespace: Callable[[int], str]) -> tuple[Link, ...]:
    raw = list(ipr.get_links())
    by_index = {int(m["index"]): m.get_attr("IFLA_IFNAME") for m in raw}
    links = [_to_link(m, by_index.get, peer_namespace) for m in raw]
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
                onlink=bool(int(m["flags"]) & RTNH_F_ONLINK),
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
    if route.onlink:
        args["flags"] = RTNH_F_ONLINK
    return args
