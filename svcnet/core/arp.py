"""ARP frames (RFC 826) for the LoadBalancer speaker: parse a request, build the reply and the
gratuitous announcement (pure bytes; the socket is svcnet.kernel.arp).

Only Ethernet + IPv4 ARP, what a LAN of veths carries. MetalLB's internal/layer2/arp.go answers
the same way: a request whose target is an address we announce gets a unicast reply from our
MAC; taking an address over sends gratuitous ARP so neighbours repoint their caches at once.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST = b"\xff" * 6
_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
FRAME_LEN = _ETH.size + _ARP.size  # 42; the kernel pads what it sends to 60


@dataclass(frozen=True)
class ArpPacket:
    operation: int
    sender_mac: bytes
    sender_ip: str
    target_mac: bytes
    target_ip: str


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse(frame: bytes) -> ArpPacket | None:
    """The Ethernet/IPv4 ARP packet in frame, or None for anything else."""
    if len(frame) < FRAME_LEN:
        return None
    _, _, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH.size)
    if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4) or op not in (ARP_REQUEST, ARP_REPLY):
        return None
    return ArpPacket(op, sha, str(ipaddress.IPv4Address(spa)), tha, str(ipaddress.IPv4Address(tpa)))


def build(eth_dst: bytes, eth_src: bytes, packet: ArpPacket) -> bytes:
    return _ETH.pack(eth_dst, eth_src, ETH_P_ARP) + _ARP.pack(
        1, ETH_P_IP, 6, 4, packet.operation, packet.sender_mac,
        ipaddress.IPv4Address(packet.sender_ip).packed, packet.target_mac,
        ipaddress.IPv4Address(packet.target_ip).packed)


def reply_to(request: ArpPacket, our_mac: bytes, announced: frozenset[str] | set[str]) -> bytes | None:
    """Our reply to a request for an address we announce (None: not ours, or not a request).

    A probe (sender 0.0.0.0, RFC 5227) is answered too: it asks whether the address is taken."""
    if request.operation != ARP_REQUEST or request.target_ip not in announced:
        return None
    if request.sender_mac == our_mac:
        return None
    return build(request.sender_mac, our_mac, ArpPacket(
        ARP_REPLY, our_mac, request.target_ip, request.sender_mac, request.sender_ip))


def gratuitous(ip: str, our_mac: bytes) -> tuple[bytes, bytes]:
    """A gratuitous ARP request and reply for ip (sender = target = ip), both broadcast: Linux
    repoints an existing neighbour entry on either; MetalLB sends both kinds too."""
    request = build(BROADCAST, our_mac, ArpPacket(ARP_REQUEST, our_mac, ip, b"\0" * 6, ip))
    reply = build(BROADCAST, our_mac, ArpPacket(ARP_REPLY, our_mac, ip, BROADCAST, ip))
    return request, reply
