"""nfacct's netlink messages, bytes in and bytes out (svcnet.kernel.nfacct), against kernel-shaped answers."""
from __future__ import annotations

import errno
import struct

import pytest

from svcnet.kernel.nfacct import (
    NFNL_MSG_ACCT_GET,
    NFNL_MSG_ACCT_NEW,
    Counter,
    NfacctError,
    parse_reply,
    request,
)


def attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def message(kind: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, seq, 0) + body


def counter_message(seq: int, name: str, packets: int, size: int) -> bytes:
    body = struct.pack("=BBH", 0, 0, 0) + attr(1, name.encode() + b"\0") + attr(2, packets.to_bytes(8, "big")) \
        + attr(3, size.to_bytes(8, "big")) + attr(4, (1).to_bytes(4, "big"))  # NFACCT_USE: skipped
    return message((7 << 8) | 0, seq, body)


def ack(seq: int, code: int = 0) -> bytes:
    return message(2, seq, struct.pack("=i", code) + b"\0" * 16)


def test_a_get_request_names_the_counter_in_the_acct_subsystem_and_asks_for_an_ack():
    data = request(NFNL_MSG_ACCT_GET, "ct_state_invalid_dropped_pkts", 7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data)
    assert (length, kind, flags, seq) == (len(data), (7 << 8) | 1, 0x1 | 0x4, 7)
    assert len(data) % 4 == 0 and data[20:24] == struct.pack("=HH", 4 + 30, 1)
    assert data[24:54] == b"ct_state_invalid_dropped_pkts\0"
    _, _, new_flags, _, _ = struct.unpack_from("=IHHII", request(NFNL_MSG_ACCT_NEW, "x", 1))
    assert new_flags == 0x1 | 0x4 | 0x400  # NLM_F_CREATE


@pytest.mark.parametrize("name", ["", "x" * 32])
def test_names_kube_proxy_refuses_are_refused(name):
    with pytest.raises(NfacctError):
        request(NFNL_MSG_ACCT_GET, name, 1)


def test_an_answer_and_its_ack_give_the_counter():
    data = counter_message(3, "localhost_nps_accepted_pkts", 5, 145) + ack(3)
    assert parse_reply(data, 3) == ([Counter("localhost_nps_accepted_pkts", 5, 145)], True)


def test_messages_of_another_request_are_skipped():
    assert parse_reply(counter_message(2, "old", 1, 1), 3) == ([], False)


def test_an_error_ack_carries_the_errno():
    with pytest.raises(NfacctError) as caught:
        parse_reply(ack(4, -errno.ENOENT), 4)
    assert caught.value.errno == errno.ENOENT


def test_a_counter_without_its_counts_is_an_error_as_upstreams_strict_decode():
    body = struct.pack("=BBH", 0, 0, 0) + attr(1, b"x\0")
    with pytest.raises(NfacctError):
        parse_reply(message(7 << 8, 1, body), 1)
