"""A raw IPv6 socket on one interface of a namespace (AF_PACKET, ETH_P_IPV6) that sees only
Neighbor Solicitations: what the LoadBalancer speaker answers NDP with and sends unsolicited
advertisements from. Frames are built and parsed by svcnet.core.ndp.

An ETH_P_IPV6 packet socket would get a copy of every IPv6 frame on the interface (all the pod
traffic between nodes), so a classic BPF filter attached before bind keeps only ICMPv6 type 135
right after the fixed IPv6 header; the kernel drops the rest without waking the agent.
Solicitations go to solicited-node multicast MACs (33:33:ff:..); a veth accepts every
destination and the LAN bridge floods them (no MLD querier on it), so the socket needs no
multicast membership. Needs CAP_NET_RAW (the agent runs as root).
"""
from __future__ import annotations

import ctypes
import socket
import struct

from svcnet.core.ndp import ETH_P_IPV6, HEADERS, IPPROTO_ICMPV6, NEIGHBOR_SOLICITATION
from svcnet.kernel.arp import ArpSocket

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_LD_H_ABS, _LD_B_ABS, _JEQ_K, _RET_K = 0x28, 0x30, 0x15, 0x06
_KEEP = 0x40000  # bytes of a matching frame to keep: all of it


def solicitation_filter() -> list[tuple[int, int, int, int]]:
    """(code, jump-if-true, jump-if-false, k): IPv6, next header ICMPv6, type 135; else drop."""
    return [(_LD_H_ABS, 0, 0, 12), (_JEQ_K, 0, 5, ETH_P_IPV6),
            (_LD_B_ABS, 0, 0, 20), (_JEQ_K, 0, 3, IPPROTO_ICMPV6),
            (_LD_B_ABS, 0, 0, HEADERS), (_JEQ_K, 0, 1, NEIGHBOR_SOLICITATION),
            (_RET_K, 0, 0, _KEEP), (_RET_K, 0, 0, 0)]


class NdpSocket(ArpSocket):
    """A non-blocking AF_PACKET socket bound to `interface` in `netns`, receiving only solicitations."""

    ethertype = ETH_P_IPV6

    def prepare(self, sock: socket.socket) -> None:
        program = solicitation_filter()
        code = b"".join(struct.pack("HBBI", *insn) for insn in program)
        buffer = ctypes.create_string_buffer(code)
        fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))  # struct sock_fprog
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
