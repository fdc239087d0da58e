"""ARP frames for the LoadBalancer speaker: requests parsed, replies and gratuitous ARP built."""
from __future__ import annotations

from svcnet.core import arp

OURS = arp.mac_bytes("0a:58:c0:a8:00:6a")
CLIENT = arp.mac_bytes("02:00:00:00:00:c8")


def request(target: str, sender_ip: str = "192.168.0.200") -> bytes:
    return arp.build(arp.BROADCAST, CLIENT, arp.ArpPacket(arp.ARP_REQUEST, CLIENT, sender_ip, b"\0" * 6, target))


def test_request_round_trips():
    packet = arp.parse(request("192.168.0.240"))
    assert packet == arp.ArpPacket(arp.ARP_REQUEST, CLIENT, "192.168.0.200", b"\0" * 6, "192.168.0.240")


def test_a_request_for_an_announced_address_gets_a_unicast_reply_from_our_mac():
    reply = arp.reply_to(arp.parse(request("192.168.0.240")), OURS, {"192.168.0.240"})
    assert reply is not None
    assert reply[:6] == CLIENT and reply[6:12] == OURS
    assert arp.parse(reply) == arp.ArpPacket(arp.ARP_REPLY, OURS, "192.168.0.240", CLIENT, "192.168.0.200")


def test_requests_for_other_addresses_are_not_answered():
    assert arp.reply_to(arp.parse(request("192.168.0.241")), OURS, {"192.168.0.240"}) is None


def test_replies_and_non_arp_frames_are_ignored():
    reply = arp.reply_to(arp.parse(request("192.168.0.240")), OURS, {"192.168.0.240"})
    assert arp.reply_to(arp.parse(reply), OURS, {"192.168.0.240"}) is None
    ipv4_frame = b"\xff" * 6 + CLIENT + b"\x08\x00" + b"\0" * 28
    assert arp.parse(ipv4_frame) is None
    assert arp.parse(b"short") is None


def test_gratuitous_arp_names_the_address_as_sender_and_target():
    req, rep = arp.gratuitous("192.168.0.240", OURS)
    for frame, op in ((req, arp.ARP_REQUEST), (rep, arp.ARP_REPLY)):
        packet = arp.parse(frame)
        assert frame[:6] == arp.BROADCAST
        assert packet.operation == op and packet.sender_mac == OURS
        assert packet.sender_ip == packet.target_ip == "192.168.0.240"
