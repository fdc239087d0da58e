"""The LoadBalancer speaker over FakeApi and a fake ARP socket: it answers ARP only for the
addresses its node is elected for, takes an address over (gratuitous ARP, nodeAssigned Event)
when the elected node's speaker Lease goes, and stops answering when the Service goes."""
from __future__ import annotations

import datetime as dt

from svcnet.agent.speaker import ENDPOINTSLICES, LEASES, NODES, SERVICES, Speaker
from svcnet.api.resources import lookup
from svcnet.core import arp, ndp
from svcnet.core import loadbalancer as lb
from svcnet.testing.api import FakeApi
from svcnet.testing.arp import FakeArpSocket
from tests.waiting import until

EVENTS = lookup("", "v1", "events")
CLIENT_MAC = arp.mac_bytes("02:00:00:00:00:c8")
# An address node-1 wins, so node-2's speaker (the one under test) is second in line.
IP = next(f"192.168.0.{i}" for i in range(240, 255) if lb.elect_announcer(f"192.168.0.{i}", ["node-1", "node-2"])
          == "node-1")


def request_for(ip: str) -> bytes:
    return arp.build(arp.BROADCAST, CLIENT_MAC, arp.ArpPacket(arp.ARP_REQUEST, CLIENT_MAC, "192.168.0.200",
                                                              b"\0" * 6, ip))


async def cluster_with_a_load_balancer(api: FakeApi) -> None:
    for name in ("node-1", "node-2"):
        await api.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        await api.patch(NODES, None, name, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
                        subresource="status")
    await api.create(SERVICES, "default", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    await api.patch(SERVICES, "default", "web", {"status": {"loadBalancer": lb.ingress_status(IP)}},
                    subresource="status")
    await api.create(ENDPOINTSLICES, "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.2"], "nodeName": "node-1", "conditions": {"ready": True}}]})
    # node-1's speaker, alive for the whole test unless its Lease is deleted
    await api.create(LEASES, lb.SPEAKER_LEASE_NAMESPACE,
                     lb.speaker_lease("node-1", lb.micro_time(dt.datetime.now(dt.UTC)), 3600))


def replies(sock: FakeArpSocket) -> list[arp.ArpPacket]:
    """The answers to the client's requests (gratuitous replies name the address as target)."""
    return [p for p in map(arp.parse, sock.sent) if p and p.operation == arp.ARP_REPLY and p.target_ip != IP]


async def test_the_second_in_line_takes_over_when_the_first_speakers_lease_goes_and_leaves_with_the_service():
    api = FakeApi()
    await cluster_with_a_load_balancer(api)
    sockets: list[FakeArpSocket] = []

    def open_socket(netns: str, interface: str) -> FakeArpSocket:
        sockets.append(FakeArpSocket(netns, interface))
        return sockets[-1]

    speaker = Speaker(None, "node-2", "svcnet-x-node-2", api=api, open_socket=open_socket,
                      open_ndp_socket=open_socket)
    await speaker.start()
    try:
        sock = sockets[0]
        await until(lambda: speaker.leases.get(lb.SPEAKER_LEASE_NAMESPACE, "svcnet-speaker-node-2") is not None)
        await speaker.sync()
        sock.inject(request_for(IP))
        await until(lambda: not sock._waiting)
        assert speaker.announced == {} and sock.sent == []  # node-1 announces

        await api.delete(LEASES, lb.SPEAKER_LEASE_NAMESPACE, "svcnet-speaker-node-1")
        await until(lambda: speaker.announced == {IP: "default/web"}, timeout=10)
        garp = [arp.parse(f) for f in sock.sent]
        assert {(p.operation, p.sender_ip, p.target_ip) for p in garp} == {
            (arp.ARP_REQUEST, IP, IP), (arp.ARP_REPLY, IP, IP)}
        events = (await api.list(EVENTS, "default"))["items"]
        assert [e["message"] for e in events if e["reason"] == "nodeAssigned"] == [
            'announcing from node "node-2" with protocol "layer2"']

        sock.inject(request_for(IP))
        await until(lambda: replies(sock))
        assert replies(sock)[0] == arp.ArpPacket(arp.ARP_REPLY, sock.mac, IP, CLIENT_MAC, "192.168.0.200")

        await api.delete(SERVICES, "default", "web")
        await until(lambda: speaker.announced == {}, timeout=10)
        answered = len(replies(sock))
        sock.inject(request_for(IP))
        await until(lambda: not sock._waiting)
        assert len(replies(sock)) == answered
    finally:
        await speaker.stop()
    # A clean stop hands over at once: its Lease is gone.
    assert [o["metadata"]["name"] for o in api.objects(LEASES)] == []



async def test_an_ipv6_address_is_advertised_on_takeover_and_solicitations_for_it_are_answered():
    api = FakeApi()
    await cluster_with_a_load_balancer(api)
    ip6 = "fd00:192:168::f0"
    await api.patch(SERVICES, "default", "web", {"status": {"loadBalancer": lb.ingress_status([IP, ip6])}},
                    subresource="status")
    await api.delete(LEASES, lb.SPEAKER_LEASE_NAMESPACE, "svcnet-speaker-node-1")  # node-2 alone: it announces
    arp_socket, ndp_socket = FakeArpSocket("n", "eth0"), FakeArpSocket("n", "eth0")
    speaker = Speaker(None, "node-2", "svcnet-x-node-2", api=api, open_socket=lambda netns, ifname: arp_socket,
                      open_ndp_socket=lambda netns, ifname: ndp_socket)
    await speaker.start()
    try:
        await until(lambda: speaker.announced == {IP: "default/web", ip6: "default/web"}, timeout=10)
        await until(lambda: ndp_socket.sent)
        takeover = ndp_socket.sent[0]
        assert takeover == ndp.unsolicited(ip6, ndp_socket.mac)  # to all nodes, Override
        assert all(ndp.parse(f) is None for f in arp_socket.sent) and arp.parse(arp_socket.sent[0])  # ARP for IPv4
        events = (await api.list(EVENTS, "default"))["items"]
        assert len([e for e in events if e["reason"] == "nodeAssigned"]) == 1  # one per Service, not per address

        ndp_socket.inject(ndp.solicitation(CLIENT_MAC, "fd00:192:168::c8", ip6))
        ndp_socket.inject(ndp.solicitation(CLIENT_MAC, "fd00:192:168::c8", "fd00:192:168::f1"))  # not ours
        await until(lambda: any(f[:6] == CLIENT_MAC for f in ndp_socket.sent))
        answers = [f for f in ndp_socket.sent if f[:6] == CLIENT_MAC]
        expected = ndp.reply_to(ndp.Solicitation(CLIENT_MAC, "fd00:192:168::c8", ip6, CLIENT_MAC), ndp_socket.mac,
                                {ip6})
        assert answers == [expected]
    finally:
        await speaker.stop()
