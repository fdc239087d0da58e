"""The only code that touches the host's kernel, behind small interfaces.

`NetworkKernel` is what the node agent needs from Linux networking: named
network namespaces (the `ip netns` convention, /run/netns/NAME), bridges, veth
pairs, addresses, routes and per-namespace sysctls. Every call names the
namespace it acts in; there is deliberately no way to address the host
namespace, so nothing built on this interface can change the host's network.

Backends: `svcnet.kernel.links.LinuxNetworkKernel` (netlink via pyroute2) and
`svcnet.testing.links.FakeNetworkKernel` (an in-memory model for pure tests).
Calls are synchronous and may block briefly; asyncio callers use
`asyncio.to_thread`.

The other adapters, each with its fake in svcnet.testing under the same name:
`exec` (run a command inside a namespace), `iptables` (the iptables binaries
there) and `conntrack` (the conntrack tool). They run things and report what
happened; what to write and what it means is decided by their callers.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal, Protocol

# Where named network namespaces are mounted (iproute2's NETNS_RUN_DIR). Here, not in netns.py, so
# that what needs only the path (a pod sandbox, forked from the agent's fork server) does not import
# pyroute2: ~12 MB more in the fork server, and every fork of it copies the page tables of them.
NETNS_RUN_DIR = "/run/netns"

LinkKind = Literal["loopback", "bridge", "veth", "vxlan", "other"]

# Linux IFNAMSIZ is 16 including the terminating NUL.
MAX_LINK_NAME = 15


class KernelError(Exception):
    """A kernel operation failed; the message says which and why."""


class NamespaceNotFound(KernelError):
    """The named network namespace does not exist."""


class LinkNotFound(KernelError):
    """The named link does not exist in that namespace."""


@dataclass(frozen=True)
class LinkPeer:
    """Where the other end of a veth lives. `namespace` is None when it is in the same namespace."""

    namespace: str | None
    index: int


@dataclass(frozen=True)
class VxlanDevice:
    """A VXLAN device's settings: its VNI, the local (source) address and UDP port of its tunnels and
    the link they leave by. Address learning is always off: every forwarding entry is written."""

    vni: int
    local: str
    port: int
    underlay: str


@dataclass(frozen=True)
class Link:
    """One network interface as the kernel reports it."""

    name: str
    index: int
    kind: LinkKind
    up: bool
    mac: str = ""
    master: str | None = None  # bridge this link is a port of
    hairpin: bool = False  # only meaningful for a bridge port
    peer: LinkPeer | None = None  # veth only; None when the kernel does not say
    mtu: int = 0  # 0: not reported
    vxlan: VxlanDevice | None = None  # a VXLAN device's settings


@dataclass(frozen=True)
class Address:
    """An address on a link, as `10.244.1.1/24` (ip_interface notation)."""

    link: str
    cidr: str

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.cidr).ip)

    @property
    def version(self) -> int:
        return ipaddress.ip_interface(self.cidr).version


@dataclass(frozen=True)
class Route:
    """A route in the main table. `dst` is a network (`default` is written 0.0.0.0/0 or ::/0)."""

    dst: str
    via: str | None = None
    dev: str | None = None
    onlink: bool = False  # the gateway is on the device even though no address says so (a VXLAN peer)

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.dst).version

    def key(self) -> tuple[int, str]:
        """Routes are identified by destination: one route per prefix, as `ip route replace` treats them."""
        return (self.version, str(ipaddress.ip_network(self.dst)))


class NetworkKernel(Protocol):
    """Network namespaces and the links, addresses, routes and sysctls inside them."""

    # namespaces
    def list_namespaces(self) -> tuple[str, ...]: ...
    def create_namespace(self, name: str) -> None: ...  # no-op when it exists
    def delete_namespace(self, name: str) -> None: ...  # no-op when it is gone
    def namespace_path(self, name: str) -> str: ...

    # links
    def list_links(self, ns: str) -> tuple[Link, ...]: ...
    def get_link(self, ns: str, name: str, peer_hint: str | None = None) -> Link | None:
        """One link by name, not a dump. peer_hint: the namespace a veth's peer is expected in,
        asked first when naming the peer's namespace."""
    def add_bridge(self, ns: str, name: str) -> None: ...
    def add_veth(self, ns: str, name: str, peer_name: str, peer_ns: str | None = None) -> None: ...
    def move_link(self, ns: str, name: str, to_ns: str, new_name: str | None = None) -> None: ...
    def delete_link(self, ns: str, name: str) -> None: ...  # a veth takes its peer with it
    # index: the link's index as the caller just read it (get_link), to spare a lookup by name
    def set_link(self, ns: str, name: str, *, up: bool | None = None, mac: str | None = None,
                 master: str | None = None, nomaster: bool = False,
                 hairpin: bool | None = None, index: int | None = None, mtu: int | None = None) -> None: ...

    # addresses and routes
    def list_addresses(self, ns: str) -> tuple[Address, ...]: ...
    def add_address(self, ns: str, link: str, cidr: str, index: int | None = None) -> None: ...
    def delete_address(self, ns: str, link: str, cidr: str) -> None: ...
    def list_routes(self, ns: str) -> tuple[Route, ...]: ...  # main table, routes someone added
    def replace_route(self, ns: str, route: Route) -> None: ...
    def delete_route(self, ns: str, route: Route) -> None: ...

    # sysctls under net.* (the per-namespace ones)
    def read_sysctl(self, ns: str, key: str) -> str | None: ...  # None: not present in this kernel
    def write_sysctl(self, ns: str, key: str, value: str) -> None: ...


@dataclass(frozen=True, order=True)
class Neighbour:
    """A permanent neighbour (ARP/NDP) entry: on dev, ip is at mac."""

    dev: str
    ip: str
    mac: str


@dataclass(frozen=True, order=True)
class FdbRecord:
    """A forwarding entry of a VXLAN device: frames for mac go in UDP to dst."""

    dev: str
    mac: str
    dst: str


class OverlayKernel(NetworkKernel, Protocol):
    """What a VXLAN overlay needs on top: the device, permanent neighbours and forwarding entries."""

    def add_vxlan(self, ns: str, name: str, device: VxlanDevice, mac: str | None = None) -> None: ...
    def list_neighbours(self, ns: str, dev: str) -> tuple[Neighbour, ...]: ...  # permanent ones only
    def replace_neighbour(self, ns: str, entry: Neighbour) -> None: ...
    def delete_neighbour(self, ns: str, entry: Neighbour) -> None: ...  # no-op when gone
    def list_fdb(self, ns: str, dev: str) -> tuple[FdbRecord, ...]: ...
    def replace_fdb(self, ns: str, entry: FdbRecord) -> None: ...
    def delete_fdb(self, ns: str, entry: FdbRecord) -> None: ...  # no-op when gone


def check_link_name(name: str) -> str:
    """Reject names the kernel would refuse, with a message that says why."""
    if not name or len(name) > MAX_LINK_NAME or "/" in name or any(c.isspace() for c in name):
        raise KernelError(f"invalid link name {name!r}: 1-{MAX_LINK_NAME} characters, no '/' or spaces")
    return name


def check_namespace_name(name: str) -> str:
    """Namespace names are file names under /run/netns."""
    if not name or name in (".", "..") or "/" in name or len(name) > 200:
        raise KernelError(f"invalid network namespace name {name!r}")
    return name
