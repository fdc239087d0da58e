"""The VXLAN overlay as flannel's vxlan backend builds it: what a node publishes, and what it programs.

Each node has a VXLAN device, `flannel.1` (VNI 1, UDP 8472, the kernel's
default port for VXLAN, learning off) with the first address of its IPv4 pod
CIDR as a /32 (`10.244.1.0/32`), and for IPv6 `flannel-v6.1` with its IPv6
pod CIDR's first address as a /128. It publishes on its Node, in the
annotations flannel's kube subnet manager uses, its device's MAC (the VTEP
MAC) and its public (node) address. For every other node it programs, from
that node's annotations:

- a route to the other node's pod CIDR via the CIDR's first address, `onlink`
  out of the VXLAN device (no address of that subnet is on the device);
- a permanent neighbour entry on the device: that first address is the VTEP MAC;
- a forwarding entry on the device: frames for that MAC go in UDP to the other
  node's public address.

With DirectRouting (flannel's option) a peer whose public address is on one of
this node's own networks gets a plain route via that address instead (host-gw),
and no VXLAN entries: what flannel decides by finding no gateway on the way to it.

Everything here is pure: Nodes in, the entries a node should have out, and the
difference between two such states (flannel applies each event's entries; svcnet
compares with what the kernel has, so it also repairs and removes leftovers).
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VNI = 1
VXLAN_PORT = 8472  # the Linux default: flannel leaves its Port at 0, so the kernel's
DEVICE_V4 = f"flannel.{VNI}"
DEVICE_V6 = f"flannel-v6.{VNI}"
# flannel's MTU() is the uplink's less 50 (20 IPv4 + 8 UDP + 8 VXLAN + 14 inner Ethernet); an IPv6
# outer header is 20 bytes more, which is what the kernel takes off a VXLAN device over IPv6.
ENCAP_OVERHEAD_V4 = 50
ENCAP_OVERHEAD_V6 = 70
BACKEND_TYPE = "vxlan"

ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"
ANN_BACKEND_TYPE = ANNOTATION_PREFIX + "backend-type"
ANN_BACKEND_DATA = ANNOTATION_PREFIX + "backend-data"
ANN_BACKEND_V6_DATA = ANNOTATION_PREFIX + "backend-v6-data"
ANN_PUBLIC_IP = ANNOTATION_PREFIX + "public-ip"
ANN_PUBLIC_IPV6 = ANNOTATION_PREFIX + "public-ipv6"
ANN_SUBNET_MANAGER = ANNOTATION_PREFIX + "kube-subnet-manager"
MAX_ANNOTATION_BYTES = 1024  # a backend-data value is ~40 bytes; anything far larger is not ours


def overlay_mtu(uplink_mtu: int, version: int = 4) -> int:
    """The VXLAN device's MTU over an uplink of uplink_mtu (flannel's FLANNEL_MTU for version 4)."""
    mtu = uplink_mtu - (ENCAP_OVERHEAD_V4 if version == 4 else ENCAP_OVERHEAD_V6)
    if mtu < (576 if version == 4 else 1280):
        raise ValueError(f"an uplink MTU of {uplink_mtu} leaves too little for IPv{version} over VXLAN")
    return mtu


def vtep_address(pod_cidr: str) -> str:
    """The device's own address and every peer's gateway: the pod CIDR's first (network) address."""
    return str(ipaddress.ip_network(pod_cidr).network_address)


def normalize_mac(mac: str) -> str:
    """A MAC as Go's net.HardwareAddr prints it (lowercase, colons); ValueError when it is not one."""
    parts = mac.strip().lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    return ":".join(parts)


def node_annotations(public_ip: str | None, vtep_mac: str | None, public_ipv6: str | None = None,
                     vtep_mac_v6: str | None = None) -> dict[str, str]:
    """What a node publishes on its Node (flannel's kube subnet manager writes the same keys)."""
    out = {ANN_BACKEND_TYPE: BACKEND_TYPE, ANN_SUBNET_MANAGER: "true"}
    if public_ip and vtep_mac:
        out[ANN_BACKEND_DATA] = json.dumps({"VNI": VNI, "VtepMAC": normalize_mac(vtep_mac)}, separators=(",", ":"))
        out[ANN_PUBLIC_IP] = public_ip
    if public_ipv6 and vtep_mac_v6:
        out[ANN_BACKEND_V6_DATA] = json.dumps({"VNI": VNI, "VtepMAC": normalize_mac(vtep_mac_v6)},
                                              separators=(",", ":"))
        out[ANN_PUBLIC_IPV6] = public_ipv6
    return out


@dataclass(frozen=True)
class Lease:
    """One address family of a node's overlay lease: its pod CIDR, public address and VTEP MAC."""

    pod_cidr: str
    public_ip: str
    vtep_mac: str

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.pod_cidr).version


@dataclass(frozen=True)
class OverlayNode:
    """A Node as the overlay sees it: its name and a lease per family it published."""

    name: str
    leases: tuple[Lease, ...] = ()

    def lease(self, version: int) -> Lease | None:
        return next((lease for lease in self.leases if lease.version == version), None)


def _backend_mac(raw: str | None) -> str | None:
    if not raw or len(raw) > MAX_ANNOTATION_BYTES:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("VNI", VNI) != VNI:
            return None
        return normalize_mac(str(data["VtepMAC"]))
    except (ValueError, KeyError):
        return None


def _address(raw: str | None, version: int) -> str | None:
    try:
        ip = ipaddress.ip_address((raw or "").strip())
    except ValueError:
        return None
    return str(ip) if ip.version == version else None


def overlay_node(node: Mapping[str, Any]) -> OverlayNode | None:
    """The node's overlay lease from its annotations and spec.podCIDRs; None when it has no vxlan lease
    (flannel ignores a lease of another backend type, and one whose backend data does not parse)."""
    metadata = node.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if annotations.get(ANN_BACKEND_TYPE) != BACKEND_TYPE:
        return None
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    leases = []
    for version, data_key, ip_key in ((4, ANN_BACKEND_DATA, ANN_PUBLIC_IP), (6, ANN_BACKEND_V6_DATA, ANN_PUBLIC_IPV6)):
        cidr = next((c for c in cidrs if _version(c) == version), None)
        mac = _backend_mac(annotations.get(data_key))
        public = _address(annotations.get(ip_key), version)
        if cidr and mac and public:
            leases.append(Lease(str(ipaddress.ip_network(cidr)), public, mac))
    if not leases:
        return None
    return OverlayNode(str(metadata.get("name") or ""), tuple(leases))


def _version(cidr: str) -> int | None:
    try:
        return ipaddress.ip_network(cidr).version
    except ValueError:
        return None


@dataclass(frozen=True, order=True)
class OverlayRoute:
    """A route to a peer's pod CIDR: via its VTEP address onlink out of the device, or (direct) via its node IP."""

    dst: str
    via: str
    dev: str | None = None  # None: wherever the kernel's route to `via` goes (a direct route)
    onlink: bool = False


@dataclass(frozen=True, order=True)
class Neighbour:
    dev: str
    ip: str
    mac: str


@dataclass(frozen=True, order=True)
class FdbEntry:
    dev: str
    mac: str
    dst: str


@dataclass(frozen=True)
class OverlayState:
    routes: frozenset[OverlayRoute] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    fdb: frozenset[FdbEntry] = frozenset()


def device_for(version: int) -> str:
    return DEVICE_V4 if version == 4 else DEVICE_V6


def inside(cidr: str, prefixes: Iterable[str]) -> bool:
    """cidr lies within one of prefixes (same family)."""
    net = ipaddress.ip_network(cidr, strict=False)
    for prefix in (ipaddress.ip_network(p, strict=False) for p in prefixes):
        if net.version == prefix.version and net.prefixlen >= prefix.prefixlen and \
                int(net.network_address) & int(prefix.netmask) == int(prefix.network_address):
            return True
    return False


def _on_local_network(ip: str, local_networks: Iterable[str]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address.version == net.version and address in net
               for net in (ipaddress.ip_network(n, strict=False) for n in local_networks))


def plan_overlay(me: str, nodes: Iterable[OverlayNode], *, versions: Iterable[int] = (4, 6),
                 local_networks: Iterable[str] = (), direct_routing: bool = False) -> OverlayState:
    """The routes, neighbour and forwarding entries node `me` should have for every other node.

    versions: the families this node runs an overlay device for. local_networks: this node's own
    networks (its uplink's), which DirectRouting looks at. Two peers claiming one pod CIDR: the
    first by name wins, so every node decides the same way."""
    routes: set[OverlayRoute] = set()
    neighbours: set[Neighbour] = set()
    fdb: set[FdbEntry] = set()
    families = set(versions)
    local = tuple(local_networks)
    claimed: set[str] = set()
    for node in sorted(nodes, key=lambda n: n.name):
        if node.name == me:
            continue
        for lease in node.leases:
            if lease.version not in families or lease.pod_cidr in claimed:
                continue
            claimed.add(lease.pod_cidr)
            if direct_routing and _on_local_network(lease.public_ip, local):
                routes.add(OverlayRoute(lease.pod_cidr, lease.public_ip))
                continue
            dev = device_for(lease.version)
            gateway = vtep_address(lease.pod_cidr)
            routes.add(OverlayRoute(lease.pod_cidr, gateway, dev, onlink=True))
            neighbours.add(Neighbour(dev, gateway, lease.vtep_mac))
            fdb.add(FdbEntry(dev, lease.vtep_mac, lease.public_ip))
    return OverlayState(frozenset(routes), frozenset(neighbours), frozenset(fdb))


@dataclass(frozen=True)
class OverlayChanges:
    """What turns one state into another. Applied in order: deletions route first, additions route last
    (as flannel: the kernel would resolve a route's gateway itself were its neighbour entry not there yet)."""

    delete_routes: tuple[OverlayRoute, ...] = ()
    delete_neighbours: tuple[Neighbour, ...] = ()
    delete_fdb: tuple[FdbEntry, ...] = ()
    add_neighbours: tuple[Neighbour, ...] = ()
    add_fdb: tuple[FdbEntry, ...] = ()
    add_routes: tuple[OverlayRoute, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.delete_routes or self.delete_neighbours or self.delete_fdb
                    or self.add_neighbours or self.add_fdb or self.add_routes)


def overlay_changes(want: OverlayState, have: OverlayState) -> OverlayChanges:
    """The entries to delete (in `have`, not wanted) and to add (wanted, missing or different).

    A route is one per destination: a wanted destination routed differently is replaced (added)
    rather than deleted; a neighbour is one per (device, address), an FDB entry one per (device,
    MAC, destination), as the kernel keys them."""
    wanted_dsts = {r.dst for r in want.routes}
    wanted_neigh_keys = {(n.dev, n.ip) for n in want.neighbours}
    return OverlayChanges(
        delete_routes=tuple(sorted(r for r in have.routes - want.routes if r.dst not in wanted_dsts)),
        delete_neighbours=tuple(sorted(n for n in have.neighbours - want.neighbours
                                       if (n.dev, n.ip) not in wanted_neigh_keys)),
        delete_fdb=tuple(sorted(have.fdb - want.fdb)),
        add_neighbours=tuple(sorted(want.neighbours - have.neighbours)),
        add_fdb=tuple(sorted(want.fdb - have.fdb)),
        add_routes=tuple(sorted(want.routes - have.routes)),
    )
