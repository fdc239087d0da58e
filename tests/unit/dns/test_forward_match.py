"""Which upstream replies answer the forwarder's question: reply_matches on plain packets, and the
UdpSocket that hands a reply only to the query it answers (no network: datagrams fed by hand)."""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from svcnet.dns import names
from svcnet.dns.forward import Overloaded, UdpPool, UdpSocket, reply_matches, tcp_exchange

QNAME = names.to_wire("Bank.Example.")
A, AAAA, IN, CH = 1, 28, 1, 3


def packet(qid: int = 0x1234, flags: int = 0x8180, question: bytes | None = None, qdcount: int = 1,
           rest: bytes = b"") -> bytes:
    """A header, the question as given (default Bank.Example. A IN), then rest."""
    if question is None:
        question = QNAME + struct.pack("!HH", A, IN)
    return struct.pack("!HHHHHH", qid, flags, qdcount, 0, 0, 0) + question + rest


def matches(reply: bytes, qid: int = 0x1234, qtype: int = A, qclass: int = IN) -> bool:
    return reply_matches(reply, qid, QNAME, qtype, qclass)


def test_the_reply_to_the_question_matches() -> None:
    assert matches(packet())
    answer = b"\xc0\x0c" + struct.pack("!HHIH", A, IN, 30, 4) + bytes([192, 0, 2, 1])
    assert matches(packet(rest=answer))


def test_name_compares_without_letter_case() -> None:
    assert matches(packet(question=names.to_wire("bANK.eXAMPLE.") + struct.pack("!HH", A, IN)))


@pytest.mark.parametrize("reply", [
    packet(qid=0x1235),  # another ID
    packet(flags=0x0100),  # QR clear: a query, not a response
    packet(question=names.to_wire("evil.example.") + struct.pack("!HH", A, IN)),  # another name
    packet(question=names.to_wire("bank.example.com.") + struct.pack("!HH", A, IN)),  # a longer name
    packet(question=names.to_wire("ank.example.") + struct.pack("!HH", A, IN)),  # a shorter one
    packet(question=QNAME + struct.pack("!HH", AAAA, IN)),  # another type
    packet(question=QNAME + struct.pack("!HH", A, CH)),  # another class
    packet(qdcount=0, question=b""),  # no question
    packet(qdcount=2),  # two questions
    packet()[:-2],  # cut inside the question
    packet()[:11],  # shorter than a header
    b"",
], ids=["id", "qr-clear", "other-name", "longer-name", "shorter-name", "type", "class", "no-question",
        "two-questions", "cut", "short-header", "empty"])
def test_a_reply_to_anything_else_does_not_match(reply: bytes) -> None:
    assert not matches(reply)


def test_a_compressed_question_name_does_not_match() -> None:
    # the question's name as a pointer into the header: no honest server writes that
    assert not matches(packet(question=b"\xc0\x02" + struct.pack("!HH", A, IN)))


def test_case_folding_touches_only_the_name_not_type_or_class() -> None:
    # type 65 (HTTPS) is the byte "A"; lowercased it would read as type 97
    https = QNAME + struct.pack("!HH", 65, IN)
    assert reply_matches(packet(question=https), 0x1234, QNAME, 65, IN)
    assert not reply_matches(packet(question=QNAME + struct.pack("!HH", 97, IN)), 0x1234, QNAME, 65, IN)


# ----------------------------------------------------------------- the socket's waiting queries

async def test_socket_hands_a_reply_only_to_the_query_it_answers() -> None:
    sock = UdpSocket()
    bank_id, bank = sock.register(QNAME, A, IN)
    other_id, other = sock.register(names.to_wire("other.example."), A, IN)
    assert bank_id != other_id
    # a reply carrying bank's ID but the other question, then one with QR clear: dropped
    sock.received(packet(qid=bank_id, question=names.to_wire("other.example.") + struct.pack("!HH", A, IN)))
    sock.received(packet(qid=bank_id, flags=0x0100))
    assert not bank.done() and not other.done() and sock.discarded == 2
    sock.received(packet(qid=bank_id))
    assert bank.done() and bank.result() == packet(qid=bank_id) and not other.done()
    sock.received(packet(qid=bank_id))  # a duplicate: no second result
    assert sock.discarded == 3
    sock.release(bank_id)
    sock.release(other_id)
    assert sock.waiting == {}


async def test_no_id_is_drawn_twice_while_pending() -> None:
    sock = UdpSocket()
    ids = [sock.register(QNAME, A, IN)[0] for _ in range(3000)]
    assert len(set(ids)) == len(ids)


async def test_an_icmp_error_fails_the_queries_waiting_on_the_socket() -> None:
    sock = UdpSocket()
    _, reply = sock.register(QNAME, A, IN)
    sock.failed(ConnectionRefusedError())
    with pytest.raises(ConnectionRefusedError):
        await reply


@pytest.fixture
def silent() -> Iterator[int]:
    """A port on 127.0.0.1 that takes datagrams and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def test_a_full_pool_shares_sockets_then_refuses(silent: int) -> None:
    # one socket allowed: two queries share it under distinct IDs, a third is refused
    pool = UdpPool("127.0.0.1", silent, max_sockets=1, per_socket=2)
    try:
        first = asyncio.create_task(pool.exchange(QNAME, A, IN, lambda qid: packet(qid, 0x0100), 5.0))
        second = asyncio.create_task(pool.exchange(QNAME, A, IN, lambda qid: packet(qid, 0x0100), 5.0))
        while sum(len(s.waiting) for s in pool.sockets) < 2:
            await asyncio.sleep(0)
        assert len(pool.sockets) == 1
        assert len(next(iter(pool.sockets)).waiting) == 2
        with pytest.raises(Overloaded):
            await pool.exchange(QNAME, A, IN, lambda qid: packet(qid, 0x0100), 5.0)
        first.cancel()
        second.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
    finally:
        pool.close()


async def test_an_idle_socket_is_reused_oldest_first_and_expires() -> None:
    pool = UdpPool("127.0.0.1", 9, expire=10.0)
    try:
        a, b = UdpSocket(), UdpSocket()
        now = time.monotonic()
        a.idle_since, b.idle_since = now - 12.0, now - 1.0
        pool.sockets |= {a, b}
        pool.idle.extend([a, b])
        pool.sweep(now)
        assert a.closed and not b.closed and list(pool.idle) == [b] and pool.sockets == {b}
        assert pool.take() is b
    finally:
        pool.close()


async def test_tcp_exchange_skips_replies_that_do_not_answer_and_takes_the_one_that_does() -> None:
    seen: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
        qid = struct.unpack("!H", (await reader.readexactly(length))[:2])[0]
        seen.append(qid)
        for reply in (packet(qid=qid, flags=0x0100), packet(qid=qid ^ 1), packet(qid=qid)):
            writer.write(struct.pack("!H", len(reply)) + reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reply = await tcp_exchange(QNAME, A, IN, lambda qid: packet(qid, 0x0100), ("127.0.0.1", port), 5.0)
        assert reply == packet(qid=seen[0])
    finally:
        server.close()
        await server.wait_closed()
