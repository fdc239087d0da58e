"""Which TCP ports listen inside a network namespace: NETLINK_SOCK_DIAG (inet_diag), as `ss -ltn` asks.

The node agent uses it to probe a container as soon as its server listens
(svcnet.agent.probes). One dump of the LISTEN sockets (state filter in the
request, so the kernel walks only its listening hash, not every connection) per
address family, over a netlink socket made inside the pod's namespace and kept
for the container's life.

The protocol is bytes in, bytes out (`listen_dump_request`, `parse_listen_dump`);
the socket lives only in `NetnsListeningPorts`. The fake is
svcnet.testing.sockdiag.FakeListeningPorts.

Wire format: linux/sock_diag.h (SOCK_DIAG_BY_FAMILY), linux/inet_diag.h
(struct inet_diag_req_v2, struct inet_diag_msg), linux/netlink.h (nlmsghdr).
"""
from __future__ import annotations

import errno
import socket
import struct
from typing import Protocol

from svcnet.kernel.netns import run_in_netns

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10  # include/net/tcp_states.h

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQ_V2 = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states; then inet_diag_sockid (48 bytes)
_SOCKID_LEN = 48
_MSG_SPORT_OFFSET = 4  # inet_diag_msg: family, state, timer, retrans, then sockid (sport first, big-endian)
MAX_DUMP_BYTES = 1 << 20  # a pod with more listening sockets than 1 MiB of answers is cut off there
RECV_TIMEOUT = 1.0  # the kernel answers a dump at once; this only bounds a wedged socket


class ListeningPorts(Protocol):
    """The TCP ports some socket listens on in one namespace (any address, IPv4 or IPv6)."""

    def listening_ports(self) -> frozenset[int]: ...
    def close(self) -> None: ...


def listen_dump_request(family: int, seq: int) -> bytes:
    """SOCK_DIAG_BY_FAMILY dump of TCP sockets in state LISTEN of one address family."""
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN) + bytes(_SOCKID_LEN)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_listen_dump(data: bytes, seq: int) -> tuple[set[int], bool]:
    """(local ports of the inet_diag_msg records in `data`, whether NLMSG_DONE ended the dump).

    Messages of another sequence number are skipped; an NLMSG_ERROR is raised as OSError.
    """
    ports: set[int] = set()
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise OSError(f"sock_diag: truncated netlink message ({length} bytes at {offset})")
        payload = offset + _NLMSGHDR.size
        if msg_seq == seq:
            if kind == NLMSG_DONE:
                return ports, True
            if kind == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", data, payload)
                if error:
                    raise OSError(-error, f"sock_diag: {errno.errorcode.get(-error, -error)}")
                return ports, True
            if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG_SPORT_OFFSET + 2:
                (port,) = struct.unpack_from("!H", data, payload + _MSG_SPORT_OFFSET)
                ports.add(port)
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return ports, False


class NetnsListeningPorts:
    """LISTEN sockets of one named namespace (/run/netns/NAME), over a netlink socket opened there on first use."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._sock: socket.socket | None = None
        self._seq = 0

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = run_in_netns(self.netns, socket.socket, socket.AF_NETLINK,
                                socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
            sock.settimeout(RECV_TIMEOUT)
            self._sock = sock
        return self._sock

    def listening_ports(self) -> frozenset[int]:
        sock = self._socket()
        ports: set[int] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            self._seq += 1
            sock.send(listen_dump_request(family, self._seq))
            received = 0
            while True:
                data = sock.recv(65536)
                received += len(data)
                found, done = parse_listen_dump(data, self._seq)
                ports |= found
                if done or not data or received > MAX_DUMP_BYTES:
                    break
        return frozenset(ports)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["ListeningPorts", "NetnsListeningPorts", "listen_dump_request", "parse_listen_dump"]
