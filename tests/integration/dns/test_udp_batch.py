"""The UDP server's batches on a loopback socket: replies reach the right peers, every query is counted.

Queries are queued on the server's socket before the server starts reading, so the
first readable event takes them all in one batch (one recvmmsg on Linux): packets that
get no reply, or whose reply waits for an upstream, sit between ordinary ones.
Both readers run: recvmmsg/sendmmsg and one datagram at a time.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Iterator

import dns.flags
import dns.message
import pytest

from svcnet.dns.answers import RR, Result, Settings
from svcnet.dns.resolver import Resolver
from svcnet.dns.server import UdpServer, bind_udp
from svcnet.dns.zone import zone_from_objects
from tests.unit.dns.helpers import cluster_objects

KUBERNETES = "kubernetes.default.svc.cluster.local."
DEADLINE = 10.0  # a generous bound for a reply that must come; never a performance limit


class HeldUpstream:
    """A forwarder whose answers wait until the test releases them."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def handles(self, qname: str) -> bool:
        return True

    def is_probe(self, qname: str) -> bool:
        return False

    async def resolve(self, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        await self.release.wait()
        return Result(answer=(RR("example.org.", 30, "A", "192.0.2.7"),), authoritative=False), True


def query(name: str, qid: int, qtype: str = "A") -> bytes:
    message = dns.message.make_query(name, qtype, use_edns=False)
    message.id = qid
    return message.to_wire()


def response_packet(qid: int) -> bytes:
    message = dns.message.make_query(KUBERNETES, "A", use_edns=False)
    message.id = qid
    message.flags |= dns.flags.QR
    return message.to_wire()


@pytest.fixture(params=["mmsg", "one-by-one"])
def reader(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    socks = []
    for _ in range(3):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
    yield socks
    for sock in socks:
        sock.close()


def make_resolver(**kw) -> Resolver:
    return Resolver(Settings(local_ips=("10.244.0.5",)), zone_from_objects(cluster_objects()), **kw)


async def receive(sock: socket.socket) -> dns.message.Message:
    async with asyncio.timeout(DEADLINE):
        data, _ = await asyncio.get_running_loop().sock_recvfrom(sock, 65535)
    return dns.message.from_wire(data)


async def ids_then_marker(sock: socket.socket, server: tuple, count: int, marker: int) -> list[int]:
    """The IDs of the next count replies; then a marker query's reply must come next (nothing else queued)."""
    ids = [(await receive(sock)).id for _ in range(count)]
    sock.sendto(query(KUBERNETES, marker), server)
    assert (await receive(sock)).id == marker
    return ids


async def test_replies_in_a_batch_go_to_their_own_peers_around_dropped_packets(
        reader: str, clients: list[socket.socket]) -> None:
    resolver = make_resolver()
    sock = bind_udp("127.0.0.1", 0, False)
    server = sock.getsockname()
    a, b, c = clients
    # Twice over: the first round takes the slow path and fills the table, the second hits it.
    for base in (0, 100):
        a.sendto(query(KUBERNETES, base + 1), server)
        b.sendto(b"\x00\x07\x01\x00\x00", server)  # shorter than a header: dropped
        a.sendto(response_packet(base + 2), server)  # a response: never answered
        c.sendto(query("dual.default.svc.cluster.local.", base + 5, "AAAA"), server)
        a.sendto(query("nope.default.svc.cluster.local.", base + 3), server)
        b.sendto(query("KUBERNETES.default.svc.cluster.local.", base + 4), server)
    udp = UdpServer(resolver, sock, mmsg=reader == "mmsg")
    try:
        assert udp.batched == (reader == "mmsg" and sys.platform.startswith("linux"))
        assert await ids_then_marker(a, server, 4, 50) == [1, 3, 101, 103]
        assert await ids_then_marker(b, server, 2, 51) == [4, 104]
        assert await ids_then_marker(c, server, 2, 52) == [5, 105]
        again = query("KUBERNETES.default.svc.cluster.local.", 9)
        b.sendto(again, server)
        reply = await receive(b)
        assert reply.id == 9 and reply.answer[0].name.to_text() == "KUBERNETES.default.svc.cluster.local."
        assert [rr.to_text() for rr in reply.answer[0]] == ["10.96.0.1"]
    finally:
        udp.close()
    requests = resolver.metrics.requests
    assert sum(requests.values()) == 8 + 3 + 1  # every answered query, none of the dropped packets
    assert requests[("udp", "1", "AAAA")] == 2
    assert resolver.metrics.responses[("NXDOMAIN", "kubernetes")] == 2
    assert sum(sum(h.counts) for h in resolver.metrics.durations.values()) == 12


async def test_a_forwarded_query_in_a_batch_is_answered_later_to_its_peer(
        reader: str, clients: list[socket.socket]) -> None:
    upstream = HeldUpstream()
    resolver = make_resolver(forwarder=upstream)  # type: ignore[arg-type]
    sock = bind_udp("127.0.0.1", 0, False)
    server = sock.getsockname()
    a, b, _ = clients
    a.sendto(query("example.org.", 10), server)
    a.sendto(query(KUBERNETES, 11), server)
    b.sendto(query(KUBERNETES, 12), server)
    udp = UdpServer(resolver, sock, mmsg=reader == "mmsg")
    try:
        assert (await receive(a)).id == 11
        assert (await receive(b)).id == 12
        upstream.release.set()
        forwarded = await receive(a)
        assert forwarded.id == 10 and forwarded.flags & dns.flags.RA
        assert [rr.to_text() for rr in forwarded.answer[0]] == ["192.0.2.7"]
    finally:
        udp.close()
    assert resolver.metrics.responses[("NOERROR", "forward")] == 1
    assert sum(resolver.metrics.requests.values()) == 3


async def test_ipv6_peers_get_their_replies(reader: str) -> None:
    try:
        sock = bind_udp("::1", 0, False)
    except OSError:
        pytest.skip("no IPv6 loopback")
    resolver = make_resolver()
    client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    client.setblocking(False)
    server = sock.getsockname()[:2]
    udp = UdpServer(resolver, sock, mmsg=reader == "mmsg")
    try:
        for qid in (21, 22):  # slow path, then the table
            client.sendto(query(KUBERNETES, qid), server)
            assert (await receive(client)).id == qid
    finally:
        udp.close()
        client.close()
    assert resolver.metrics.requests[("udp", "2", "A")] == 2


async def test_query_logging_logs_table_hits_too(clients: list[socket.socket],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    resolver = make_resolver(log_queries=True)
    sock = bind_udp("127.0.0.1", 0, False)
    server = sock.getsockname()
    udp = UdpServer(resolver, sock)
    try:
        with caplog.at_level(logging.INFO, logger="svcnet.dns.query"):
            for qid in (31, 32):
                clients[0].sendto(query(KUBERNETES, qid), server)
                assert (await receive(clients[0])).id == qid
    finally:
        udp.close()
    assert len([r for r in caplog.records if r.name == "svcnet.dns.query" and '"A udp" NOERROR' in r.message]) == 2
