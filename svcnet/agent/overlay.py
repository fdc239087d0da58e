"""The node's end of the VXLAN overlay, as flanneld's vxlan backend runs it (kube subnet manager).

At start (`prepare`, before any pod is wired) it makes the node's VXLAN devices
(`flannel.1`, and `flannel-v6.1` on a dual-stack node) on the uplink, gives each
the first address of the node's pod CIDR, and returns the MTU pods get (the
uplink's less the encapsulation, flannel's FLANNEL_MTU). Then (`start`) it
publishes its VTEP MACs and public addresses in its Node's flannel annotations
and, from a watch on the Nodes, keeps the routes, permanent neighbours and
forwarding entries to every other node (svcnet.core.overlay says which):
on every Node change and every `resync_seconds`, so an entry deleted by hand
comes back and a deleted Node's entries go.

DirectRouting is on (flannel's option, off by default upstream): a peer on
this node's own LAN is routed to directly via its node IP (host-gw), as the
one-host topology does; VXLAN carries only what crosses hosts.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

from svcnet.agent.nodeplan import NodePlan
from svcnet.api.resources import lookup
from svcnet.client.informer import Informer
from svcnet.core import overlay as core
from svcnet.kernel import FdbRecord, KernelError, OverlayKernel, Route, VxlanDevice
from svcnet.kernel import Neighbour as KernelNeighbour

log = logging.getLogger("svcnet.agent.overlay")

NODES = lookup("", "v1", "nodes")
RESYNC_SECONDS = 10.0


def vtep_mac(node: NodePlan, version: int) -> str:
    """A stable VTEP MAC from the node's IPv4 address (0a:58 for flannel.1, 0e:58 for flannel-v6.1): a
    restarted agent finds its device as it left it, as flannel keeps an existing device's MAC."""
    octets = ipaddress.IPv4Address(node.ipv4).packed
    return ("0a:58:" if version == 4 else "0e:58:") + ":".join(f"{b:02x}" for b in octets)


def _families(node: NodePlan) -> tuple[tuple[int, str, str], ...]:
    """(version, public address, pod CIDR) for each family the node runs an overlay device for."""
    out = [(4, node.ipv4, node.pod_cidr_v4)]
    if node.ipv6 and node.pod_cidr_v6:
        out.append((6, node.ipv6, node.pod_cidr_v6))
    return tuple(out)


def ensure_devices(kernel: OverlayKernel, node: NodePlan) -> tuple[dict[int, str], int]:
    """Make (or repair) the node's VXLAN devices; their MACs by family, and the pods' MTU."""
    uplink = kernel.get_link(node.namespace, node.uplink)
    if uplink is None or not uplink.mtu:
        raise KernelError(f"the uplink {node.uplink} of {node.namespace} is missing")
    macs: dict[int, str] = {}
    for version, public, pod_cidr in _families(node):
        name = core.device_for(version)
        want = VxlanDevice(vni=core.VNI, local=public, port=core.VXLAN_PORT, underlay=node.uplink)
        link = kernel.get_link(node.namespace, name)
        if link is not None and (link.kind != "vxlan" or link.vxlan != want):
            kernel.delete_link(node.namespace, name)
            link = None
        if link is None:
            kernel.add_vxlan(node.namespace, name, want, mac=vtep_mac(node, version))
            link = kernel.get_link(node.namespace, name)
            assert link is not None
        mtu = core.overlay_mtu(uplink.mtu, version)
        if link.mtu != mtu or not link.up:
            kernel.set_link(node.namespace, name, mtu=mtu, up=True, index=link.index)
        # Flannel's /32 (/128): the node's own address on the overlay, the source of its traffic to
        # other nodes' pods, so replies come back through the overlay (and no subnet route is made).
        address = f"{core.vtep_address(pod_cidr)}/{32 if version == 4 else 128}"
        if not any(a.link == name and a.cidr == address for a in kernel.list_addresses(node.namespace)):
            kernel.add_address(node.namespace, name, address, index=link.index)
        macs[version] = link.mac.lower()
    return macs, core.overlay_mtu(uplink.mtu, 4)


def read_state(kernel: OverlayKernel, node: NodePlan) -> core.OverlayState:
    """The overlay's entries as the kernel has them: routes inside the cluster's pod CIDRs, and the
    devices' permanent neighbours and forwarding entries."""
    devices = {core.device_for(version) for version, _, _ in _families(node)}
    routes = set()
    for route in kernel.list_routes(node.namespace):
        if route.via and core.inside(route.dst, node.overlay_cidrs):
            routes.add(core.OverlayRoute(route.dst, route.via, route.dev if route.dev in devices else None,
                                         route.onlink))
    neighbours, fdb = set(), set()
    for dev in devices:
        neighbours |= {core.Neighbour(n.dev, n.ip, n.mac) for n in kernel.list_neighbours(node.namespace, dev)}
        fdb |= {core.FdbEntry(f.dev, f.mac, f.dst) for f in kernel.list_fdb(node.namespace, dev)}
    return core.OverlayState(frozenset(routes), frozenset(neighbours), frozenset(fdb))


def apply_changes(kernel: OverlayKernel, node: NodePlan, changes: core.OverlayChanges) -> None:
    ns = node.namespace
    for route in changes.delete_routes:
        kernel.delete_route(ns, Route(route.dst))
    for n in changes.delete_neighbours:
        kernel.delete_neighbour(ns, KernelNeighbour(n.dev, n.ip, n.mac))
    for f in changes.delete_fdb:
        kernel.delete_fdb(ns, FdbRecord(f.dev, f.mac, f.dst))
    for n in changes.add_neighbours:
        kernel.replace_neighbour(ns, KernelNeighbour(n.dev, n.ip, n.mac))
    for f in changes.add_fdb:
        kernel.replace_fdb(ns, FdbRecord(f.dev, f.mac, f.dst))
    for route in changes.add_routes:  # last: the gateway's neighbour entry is there by now
        kernel.replace_route(ns, Route(route.dst, via=route.via, dev=route.dev, onlink=route.onlink))


def converge_overlay(kernel: OverlayKernel, node: NodePlan, want: core.OverlayState) -> core.OverlayChanges:
    """Make the node's overlay entries `want`; what it changed."""
    changes = core.overlay_changes(want, read_state(kernel, node))
    if changes:
        apply_changes(kernel, node, changes)
    return changes


class Overlay:
    """One node's overlay agent: prepare() before pods, start() once the Node is registered."""

    def __init__(self, api: Any, kernel: OverlayKernel, node: NodePlan, *, direct_routing: bool = True,
                 resync_seconds: float = RESYNC_SECONDS) -> None:
        self.api = api
        self.kernel = kernel
        self.node = node
        self.direct_routing = direct_routing
        self.resync_seconds = resync_seconds
        self.macs: dict[int, str] = {}
        self.nodes = Informer(api, NODES)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> int:
        """Make the devices; the MTU the node's pods get."""
        self.macs, mtu = await asyncio.to_thread(ensure_devices, self.kernel, self.node)
        return mtu

    def annotations(self) -> dict[str, str]:
        node = self.node
        return core.node_annotations(node.ipv4, self.macs.get(4), node.ipv6 if 6 in self.macs else None,
                                     self.macs.get(6))

    async def start(self) -> None:
        """Begin in the background: the agent's pods do not wait for the Nodes to be listed."""
        wake = lambda *_: self._wake.set()  # noqa: E731
        self.nodes.add_handler(on_add=wake, on_update=wake, on_delete=wake)
        self.nodes.start()
        self._task = asyncio.create_task(self._run(), name="overlay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.nodes.stop()

    async def _publish(self) -> None:
        """The Node's flannel annotations, written when they differ (a re-registered Node lost them)."""
        wanted = self.annotations()
        own = self.nodes.get(None, self.node.name) or {}
        current = (own.get("metadata") or {}).get("annotations") or {}
        if own and all(current.get(k) == v for k, v in wanted.items()):
            return
        await self.api.patch(NODES, None, self.node.name, {"metadata": {"annotations": wanted}})

    async def sync(self) -> None:
        peers = [p for p in (core.overlay_node(n) for n in self.nodes.list()) if p is not None]
        want = core.plan_overlay(self.node.name, peers, versions=tuple(self.macs),
                                 local_networks=self.node.lan_cidrs, direct_routing=self.direct_routing)
        await asyncio.to_thread(self._converge, want)

    def _converge(self, want: core.OverlayState) -> None:
        changes = converge_overlay(self.kernel, self.node, want)
        if changes:
            log.info("overlay: %s", changes)

    async def _run(self) -> None:
        await self.nodes.wait_synced()
        while True:
            self._wake.clear()
            try:
                await self.prepare()  # a device deleted by hand is made again
                await self._publish()
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API restarting, a namespace being torn down: the next round retries
                log.warning("overlay sync failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.resync_seconds)
