"""NDP frames for the LoadBalancer speaker: solicitations parsed, advertisements built with a
checksum a receiver accepts (recomputed over the IPv6 pseudo-header)."""
from __future__ import annotations

import ipaddress
import struct

from svcnet.core import ndp
from svcnet.core.arp import mac_bytes

OURS = mac_bytes("0a:58:c0:a8:00:6a")
CLIENT = mac_bytes("02:00:00:00:00:c8")
LB_IP = "fd00:192:168::fff0"
CLIENT_IP = "fd00:192:168::c8"


def fields(frame: bytes) -> dict:
    """The parts of an advertisement a receiver checks, read independently of ndp's packers."""
    src, dst = frame[22:38], frame[38:54]
    message = frame[54:]
    return {"eth_dst": frame[:6], "eth_src": frame[6:12], "ethertype": frame[12:14].hex(),
            "next_header": frame[20], "hop_limit": frame[21],
            "payload_length": struct.unpack("!H", frame[18:20])[0], "length": len(message),
            "src": str(ipaddress.IPv6Address(src)), "dst": str(ipaddress.IPv6Address(dst)),
            "type": message[0], "code": message[1], "flags": message[4],
            "target": str(ipaddress.IPv6Address(message[8:24])), "option": message[24:32]}


def test_solicited_node_group_and_its_mac():
    assert ndp.solicited_node(LB_IP) == "ff02::1:ff00:fff0"
    assert ndp.multicast_mac("ff02::1:ff00:fff0") == bytes.fromhex("3333ff00fff0")


def test_a_known_good_checksum():
    # An echo request ::1 -> ::1 with id 0, seq 0, no data: the sum is fixed by hand:
    # 0x0001 (src) + 0x0001 (dst) + 0x0008 (length) + 0x003a (next header) + 0x8000 (type 128) = 0x8044.
    assert ndp.checksum("::1", "::1", bytes([128, 0, 0, 0, 0, 0, 0, 0])) == 0xFFFF - 0x8044


def test_a_solicitation_round_trips():
    request = ndp.parse(ndp.solicitation(CLIENT, CLIENT_IP, LB_IP))
    assert request == ndp.Solicitation(CLIENT, CLIENT_IP, LB_IP, CLIENT)


def test_a_solicitation_with_a_bad_checksum_or_hop_limit_is_ignored():
    frame = bytearray(ndp.solicitation(CLIENT, CLIENT_IP, LB_IP))
    broken = bytes(frame[:56]) + bytes([frame[56] ^ 1]) + bytes(frame[57:])
    assert ndp.parse(broken) is None
    frame[21] = 64
    assert ndp.parse(bytes(frame)) is None


def test_a_solicitation_for_an_announced_address_gets_a_solicited_override_advertisement():
    reply = ndp.reply_to(ndp.parse(ndp.solicitation(CLIENT, CLIENT_IP, LB_IP)), OURS, {LB_IP})
    assert reply is not None
    got = fields(reply)
    assert got == {"eth_dst": CLIENT, "eth_src": OURS, "ethertype": "86dd", "next_header": 58, "hop_limit": 255,
                   "payload_length": 32, "length": 32, "src": LB_IP, "dst": CLIENT_IP,
                   "type": 136, "code": 0, "flags": 0x60, "target": LB_IP, "option": b"\x02\x01" + OURS}
    assert ndp.checksum(LB_IP, CLIENT_IP, reply[54:]) == 0  # the checksum field makes the sum come out right


def test_other_targets_other_frames_and_our_own_are_not_answered():
    assert ndp.reply_to(ndp.parse(ndp.solicitation(CLIENT, CLIENT_IP, "fd00:192:168::fff1")), OURS, {LB_IP}) is None
    assert ndp.reply_to(ndp.parse(ndp.solicitation(OURS, CLIENT_IP, LB_IP)), OURS, {LB_IP}) is None
    assert ndp.parse(ndp.unsolicited(LB_IP, OURS)) is None  # an advertisement is not a solicitation
    assert ndp.parse(b"\0" * 20) is None


def test_a_duplicate_address_probe_is_answered_to_all_nodes_without_the_solicited_flag():
    reply = ndp.reply_to(ndp.parse(ndp.solicitation(CLIENT, "::", LB_IP)), OURS, {LB_IP})
    assert reply is not None
    got = fields(reply)
    assert (got["eth_dst"], got["dst"], got["flags"]) == (bytes.fromhex("333300000001"), "ff02::1", 0x20)
    assert ndp.checksum(LB_IP, "ff02::1", reply[54:]) == 0


def test_the_takeover_advertisement_goes_to_all_nodes_with_override():
    got = fields(ndp.unsolicited(LB_IP, OURS))
    assert (got["eth_dst"], got["dst"], got["flags"], got["target"], got["option"]) == (
        bytes.fromhex("333300000001"), "ff02::1", 0x20, LB_IP, b"\x02\x01" + OURS)
