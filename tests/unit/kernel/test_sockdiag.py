"""sock_diag's wire format, bytes in and out (the socket itself: tests/integration/netns/test_sockdiag.py)."""
from __future__ import annotations

import errno
import socket
import struct

import pytest

from svcnet.kernel.sockdiag import (
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    TCP_LISTEN,
    listen_dump_request,
    parse_listen_dump,
)


def message(kind: int, seq: int, payload: bytes) -> bytes:
    raw = struct.pack("=IHHII", 16 + len(payload), kind, 2, seq, 0) + payload
    return raw + bytes(-len(raw) % 4)  # NLMSG_ALIGN


def diag_msg(port: int, family: int = socket.AF_INET) -> bytes:
    """struct inet_diag_msg of a listening socket: sport big-endian right after 4 bytes of header."""
    sockid = struct.pack("!HH", port, 0) + bytes(32) + struct.pack("=IQ", 0, 0)
    return struct.pack("=BBBB", family, TCP_LISTEN, 0, 0) + sockid + struct.pack("=IIIII", 0, 0, 128, 0, 4242)


def test_the_request_asks_for_a_dump_of_listening_tcp_sockets_of_one_family() -> None:
    request = listen_dump_request(socket.AF_INET6, 7)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", request)
    assert (length, kind, flags, seq, pid) == (len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 7, 0)
    family, protocol, ext, _pad, states = struct.unpack_from("=BBBBI", request, 16)
    assert (family, protocol, ext, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 0, 1 << TCP_LISTEN)
    assert len(request) == 16 + 8 + 48  # nlmsghdr + inet_diag_req_v2 with its sockid


def test_ports_of_this_dump_are_read_until_done_and_other_dumps_are_skipped() -> None:
    data = message(SOCK_DIAG_BY_FAMILY, 3, diag_msg(8080)) + message(SOCK_DIAG_BY_FAMILY, 2, diag_msg(1)) \
        + message(SOCK_DIAG_BY_FAMILY, 3, diag_msg(9376, socket.AF_INET6))
    assert parse_listen_dump(data, 3) == ({8080, 9376}, False)
    assert parse_listen_dump(data + message(NLMSG_DONE, 3, struct.pack("=i", 0)), 3) == ({8080, 9376}, True)


def test_an_error_answer_is_an_os_error_and_a_truncated_one_too() -> None:
    with pytest.raises(OSError) as error:
        parse_listen_dump(message(NLMSG_ERROR, 1, struct.pack("=i", -errno.EPERM) + bytes(16)), 1)
    assert error.value.errno == errno.EPERM
    with pytest.raises(OSError, match="truncated"):
        parse_listen_dump(message(SOCK_DIAG_BY_FAMILY, 1, diag_msg(80))[:40], 1)
