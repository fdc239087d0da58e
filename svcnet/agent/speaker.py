"""The LoadBalancer speaker of one node: it answers ARP (IPv4) and NDP (IPv6) on the node's LAN
interface for the LoadBalancer addresses this node is elected to announce, as MetalLB's speaker does in layer-2 mode.

It runs inside the node agent's process (so when the agent goes away, its node stops announcing
and the others see its speaker Lease lapse), with an identity of its own (MetalLB's speaker has
its own ServiceAccount): it reads Services, Nodes and EndpointSlices and renews a short Lease,
kube-system/svcnet-speaker-<node>, which is how speakers know which of them are alive (MetalLB
uses memberlist for that). Who announces what is svcnet.core.loadbalancer.announcements; every
speaker computes it from the same caches, so exactly one node answers for each address.

On taking an address over it sends gratuitous ARP (unsolicited Neighbor Advertisements for an
IPv6 one) a few times, so the client's neighbour cache
repoints at this node within a second or two; on a clean stop it deletes its Lease first, so
another node takes over at once instead of after the Lease lapses.

Traffic that then reaches the node for the address is kube-proxy's (KUBE-SERVICES -> KUBE-EXT-...
in iptables mode, the service-ips map in nftables mode): the speaker only attracts it.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import slice_service_key
from svcnet.api.resources import lookup
from svcnet.client.events import EventRecorder
from svcnet.client.informer import Informer, split_key
from svcnet.client.rest import ApiClient, TransportError
from svcnet.core import arp, ndp
from svcnet.core import loadbalancer as lb
from svcnet.kernel.arp import ArpSocket
from svcnet.kernel.ndp import NdpSocket

log = logging.getLogger("svcnet.agent.speaker")

SERVICES = lookup("", "v1", "services")
NODES = lookup("", "v1", "nodes")
ENDPOINTSLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
LEASES = lookup("coordination.k8s.io", "v1", "leases")

LEASE_DURATION_SECONDS = 3  # a stopped or hung speaker's addresses move after this long
RENEW_SECONDS = 1.0
RECHECK_SECONDS = 0.5  # how often Lease expiry is looked at when nothing else changes
GARP_REPEATS = 3  # neighbours ignore an update within locktime (1 s) of the last: send a few
GARP_INTERVAL = 1.0
SERVICE_INDEX = "service"


class Speaker:
    """A supervisor component: start() joins, stop() leaves (deleting its Lease)."""

    def __init__(self, client_config: Any, node_name: str, netns: str, interface: str = "eth0", *,
                 clock: Callable[[], dt.datetime] | None = None, api: Any = None,
                 open_socket: Callable[[str, str], Any] = ArpSocket,
                 open_ndp_socket: Callable[[str, str], Any] = NdpSocket) -> None:
        """api: a client to use instead of one made from client_config (tests pass a FakeApi);
        open_socket / open_ndp_socket(netns, interface): the ARP and NDP sockets (tests pass fakes)."""
        self.client_config = client_config
        self._own_api = api is None
        self.open_socket = open_socket
        self.open_ndp_socket = open_ndp_socket
        self.node_name = node_name
        self.netns = netns
        self.interface = interface
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.announced: dict[str, str] = {}  # ip -> service key, what this node answers for
        self.api: Any = api
        self.socket: Any = None
        self.ndp_socket: Any = None
        self._informers: list[Informer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._garp: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()

    async def start(self) -> None:
        if self._own_api:
            self.api = ApiClient(self.client_config, component=f"svcnet-speaker/{self.node_name}")
            await self.api.open()
        self.events = EventRecorder(self.api, "svcnet-speaker", self.clock)
        self.socket = await asyncio.to_thread(self.open_socket, self.netns, self.interface)
        self.ndp_socket = await asyncio.to_thread(self.open_ndp_socket, self.netns, self.interface)
        self.services = Informer(self.api, SERVICES)
        self.nodes = Informer(self.api, NODES)
        self.slices = Informer(self.api, ENDPOINTSLICES)
        self.slices.add_index(SERVICE_INDEX, lambda eps: [slice_service_key(eps) or ""])
        self.leases = Informer(self.api, LEASES, namespace=lb.SPEAKER_LEASE_NAMESPACE)
        self._informers = [self.services, self.nodes, self.slices, self.leases]
        for informer in self._informers:
            informer.add_handler(on_add=self._poke, on_update=lambda old, new: self._poke(new),
                                 on_delete=self._poke)
            informer.start()
        await self._renew()
        await asyncio.gather(*(i.wait_synced() for i in self._informers))
        asyncio.get_running_loop().add_reader(self.socket.fileno(), self._answer, self.socket, arp)
        asyncio.get_running_loop().add_reader(self.ndp_socket.fileno(), self._answer, self.ndp_socket, ndp)
        self._tasks = [asyncio.create_task(self._renew_forever(), name="speaker-lease"),
                       asyncio.create_task(self._sync_forever(), name="speaker-sync")]
        log.info("speaker for %s answering ARP and NDP on %s (%s)", self.node_name, self.interface, self.socket.mac_text)

    def _poke(self, _obj: Any = None) -> None:
        self._changed.set()

    # ---- who this node announces

    async def _sync_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), RECHECK_SECONDS)
            self._changed.clear()
            try:
                await self.sync()
            except Exception:  # a bad object must not stop the node from answering
                log.exception("speaker sync failed")

    def wanted(self) -> dict[str, str]:
        live = lb.live_speakers(self.leases.list(), self.clock())
        chosen = lb.announcements(self.services.list(), self.nodes.list(), live,
                                  lambda key: self.slices.by_index(SERVICE_INDEX, key))
        return {a.ip: a.service for a in chosen if a.node == self.node_name}

    async def sync(self) -> None:
        wanted = self.wanted()
        for ip in [ip for ip in self.announced if ip not in wanted]:
            log.info("no longer announcing %s (%s)", ip, self.announced.pop(ip))
            task = self._garp.pop(ip, None)
            if task is not None:
                task.cancel()
        taken_over = []
        for ip, key in wanted.items():
            if self.announced.get(ip) == key:
                continue
            self.announced[ip] = key
            log.info("announcing %s (%s) from %s", ip, key, self.node_name)
            self._garp[ip] = asyncio.create_task(self._announce(ip), name=f"garp-{ip}")
            if key not in taken_over:  # one Event per Service, however many families it has
                taken_over.append(key)
        for key in taken_over:
            namespace, name = split_key(key)
            svc = self.services.get(namespace, name)
            if svc is not None:
                await self.events.emit(svc, "Normal", lb.NODE_ASSIGNED,
                                       f"announcing from node \"{self.node_name}\" with protocol \"layer2\"")

    async def _announce(self, ip: str) -> None:
        """Gratuitous ARP for an IPv4 address, unsolicited Neighbor Advertisements for an IPv6 one."""
        assert self.socket is not None and self.ndp_socket is not None
        for i in range(GARP_REPEATS):
            if i:
                await asyncio.sleep(GARP_INTERVAL)
            if ":" in ip:
                frames, sock = (ndp.unsolicited(ip, self.ndp_socket.mac),), self.ndp_socket
            else:
                frames, sock = arp.gratuitous(ip, self.socket.mac), self.socket
            for frame in frames:
                with contextlib.suppress(OSError):
                    sock.send(frame)

    def _answer(self, sock: Any, protocol: Any) -> None:
        """Reader callback: reply to each waiting request (ARP, or an NDP solicitation, as `protocol`
        parses and answers them) for an address we announce."""
        announced = frozenset(self.announced)
        for frame in sock.receive():
            request = protocol.parse(frame)
            if request is None:
                continue
            reply = protocol.reply_to(request, sock.mac, announced)
            if reply is not None:
                with contextlib.suppress(OSError):
                    sock.send(reply)

    # ---- the speaker's Lease

    async def _renew(self) -> None:
        name = lb.SPEAKER_LEASE_PREFIX + self.node_name
        now = lb.micro_time(self.clock())
        try:
            await self.api.patch(LEASES, lb.SPEAKER_LEASE_NAMESPACE, name,
                                 {"spec": {"renewTime": now, "holderIdentity": self.node_name,
                                           "leaseDurationSeconds": LEASE_DURATION_SECONDS}},
                                 patch_type="merge")
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self.api.create(LEASES, lb.SPEAKER_LEASE_NAMESPACE,
                                  lb.speaker_lease(self.node_name, now, LEASE_DURATION_SECONDS))

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await self._renew()
            except (ApiError, TransportError, OSError) as exc:  # the API restarting: try again next time
                log.warning("speaker lease renewal failed: %s", exc)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._garp.values()]:
            task.cancel()
        for task in [*self._tasks, *self._garp.values()]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.announced.clear()
        for sock in (self.socket, self.ndp_socket):
            if sock is not None:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(sock.fileno())
                sock.close()
        if self.api is not None:
            # Leave at once: the next node takes the addresses over without waiting for the Lease to lapse.
            with contextlib.suppress(ApiError, TransportError, OSError):
                await self.api.delete(LEASES, lb.SPEAKER_LEASE_NAMESPACE, lb.SPEAKER_LEASE_PREFIX + self.node_name)
        for informer in self._informers:
            await informer.stop()
        if self.api is not None and self._own_api:
            await self.api.close()
