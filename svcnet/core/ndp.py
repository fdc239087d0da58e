"""IPv6 Neighbor Discovery frames (RFC 4861) for the LoadBalancer speaker: parse a Neighbor
Solicitation, build the Neighbor Advertisement that answers it and the unsolicited one sent on
takeover (pure bytes; the socket is svcnet.kernel.ndp). The IPv6 counterpart of svcnet.core.arp.

Only Ethernet frames with the ICMPv6 message right after the fixed IPv6 header, which is how
Linux sends solicitations. MetalLB's internal/layer2/ndp.go answers the same way: a solicitation
whose target is an address we announce gets a solicited, override advertisement carrying our MAC
in a target link-layer address option.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
OPTION_SOURCE_LL = 1
OPTION_TARGET_LL = 2
FLAG_SOLICITED = 0x40
FLAG_OVERRIDE = 0x20
HOP_LIMIT = 255  # RFC 4861 7.1.1: receivers drop ND messages that crossed a router
ALL_NODES = "ff02::1"
UNSPECIFIED = "::"
_ETH = struct.Struct("!6s6sH")
_IPV6 = struct.Struct("!IHBB16s16s")
_ND = struct.Struct("!BBHI16s")  # type, code, checksum, flags/reserved, target
HEADERS = _ETH.size + _IPV6.size  # where the ICMPv6 message starts


@dataclass(frozen=True)
class Solicitation:
    eth_src: bytes
    source_ip: str  # "::" for duplicate address detection
    target_ip: str
    source_mac: bytes | None  # the source link-layer address option, when present


def multicast_mac(ip: str) -> bytes:
    """The Ethernet address an IPv6 multicast group maps to (RFC 2464: 33:33 + its last 32 bits)."""
    return b"\x33\x33" + ipaddress.IPv6Address(ip).packed[-4:]


def solicited_node(ip: str) -> str:
    """The solicited-node multicast group a solicitation for ip is sent to (ff02::1:ffXX:XXXX)."""
    low = ipaddress.IPv6Address(ip).packed[-3:]
    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + low))


def checksum(source: str, destination: str, message: bytes) -> int:
    """The ICMPv6 checksum: one's complement sum over the pseudo-header (source, destination,
    upper-layer length, next header) and the message with its checksum field zero."""
    pseudo = (ipaddress.IPv6Address(source).packed + ipaddress.IPv6Address(destination).packed
              + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6))
    data = pseudo + message + (b"\0" if len(message) % 2 else b"")
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _options(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while len(data) >= 2:
        kind, length = data[0], data[1] * 8
        if length == 0 or length > len(data):
            break  # RFC 4861 says drop the message; the caller treats a bad option as none
        found.setdefault(kind, data[2:length])
        data = data[length:]
    return found


def parse(frame: bytes) -> Solicitation | None:
    """The Neighbor Solicitation in frame, or None for anything else (or one that fails the
    RFC 4861 7.1.1 checks: hop limit 255, code 0, a correct checksum)."""
    if len(frame) < HEADERS + _ND.size:
        return None
    _, eth_src, ethertype = _ETH.unpack_from(frame)
    first, length, next_header, hop_limit, src, dst = _IPV6.unpack_from(frame, _ETH.size)
    if ethertype != ETH_P_IPV6 or first >> 28 != 6 or next_header != IPPROTO_ICMPV6 or hop_limit != HOP_LIMIT:
        return None
    message = frame[HEADERS:HEADERS + length]
    if len(message) != length or len(message) < _ND.size:
        return None
    kind, code, _, _, target = _ND.unpack_from(message)
    if kind != NEIGHBOR_SOLICITATION or code != 0:
        return None
    source, destination = str(ipaddress.IPv6Address(src)), str(ipaddress.IPv6Address(dst))
    if checksum(source, destination, message) != 0:  # over a message with its checksum in: 0 when right
        return None
    option = _options(message[_ND.size:]).get(OPTION_SOURCE_LL)
    return Solicitation(eth_src, source, str(ipaddress.IPv6Address(target)),
                        option[:6] if option and len(option) >= 6 else None)


def advertisement(eth_dst: bytes, our_mac: bytes, target: str, destination: str, flags: int) -> bytes:
    """A Neighbor Advertisement for target (sent from target itself) with our MAC as its target
    link-layer address."""
    body = bytes([OPTION_TARGET_LL, 1]) + our_mac
    unsummed = _ND.pack(NEIGHBOR_ADVERTISEMENT, 0, 0, flags << 24,
                        ipaddress.IPv6Address(target).packed) + body
    message = unsummed[:2] + struct.pack("!H", checksum(target, destination, unsummed)) + unsummed[4:]
    return (_ETH.pack(eth_dst, our_mac, ETH_P_IPV6)
            + _IPV6.pack(6 << 28, len(message), IPPROTO_ICMPV6, HOP_LIMIT,
                         ipaddress.IPv6Address(target).packed, ipaddress.IPv6Address(destination).packed)
            + message)


def reply_to(request: Solicitation, our_mac: bytes, announced: frozenset[str] | set[str]) -> bytes | None:
    """Our advertisement answering a solicitation for an address we announce (None: not ours).

    A duplicate address detection probe (source ::) is answered to all-nodes without the
    solicited flag (RFC 4861 7.2.4), so the prober learns the address is taken."""
    if ipaddress.IPv6Address(request.target_ip).compressed not in announced or request.eth_src == our_mac:
        return None
    if request.source_ip == UNSPECIFIED:
        return advertisement(multicast_mac(ALL_NODES), our_mac, request.target_ip, ALL_NODES, FLAG_OVERRIDE)
    return advertisement(request.source_mac or request.eth_src, our_mac, request.target_ip, request.source_ip,
                         FLAG_SOLICITED | FLAG_OVERRIDE)


def unsolicited(ip: str, our_mac: bytes) -> bytes:
    """The advertisement sent to all nodes on takeover: override, so neighbours repoint at once."""
    return advertisement(multicast_mac(ALL_NODES), our_mac, ip, ALL_NODES, FLAG_OVERRIDE)


def solicitation(eth_src: bytes, source_ip: str, target: str) -> bytes:
    """A Neighbor Solicitation for target (to its solicited-node group), as a host sends one:
    what tests probe the speaker with."""
    group = solicited_node(target)
    body = bytes([OPTION_SOURCE_LL, 1]) + eth_src
    unsummed = _ND.pack(NEIGHBOR_SOLICITATION, 0, 0, 0, ipaddress.IPv6Address(target).packed) + body
    message = unsummed[:2] + struct.pack("!H", checksum(source_ip, group, unsummed)) + unsummed[4:]
    return (_ETH.pack(multicast_mac(group), eth_src, ETH_P_IPV6)
            + _IPV6.pack(6 << 28, len(message), IPPROTO_ICMPV6, HOP_LIMIT,
                         ipaddress.IPv6Address(source_ip).packed, ipaddress.IPv6Address(group).packed)
            + message)
