"""UDP replies capped at min(client's EDNS size, --bufsize), as CoreDNS's bufsize plugin and Msg.Truncate do.

A headless Service with 1,000 endpoints: its SRV answer is ~60 KB. Every path a reply can
take is checked: the slow path (first query), a table hit (the same query again), the UDP
packet memo, and a forwarded answer.
"""
from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import pytest

from svcnet.dns.answers import RR, Result, Settings
from svcnet.dns.resolver import Reply, Resolver
from svcnet.dns.table import udp_reply
from svcnet.dns.zone import ZoneData, zone_from_objects
from tests.unit.dns.helpers import headless_service

THOUSAND = "big.load.svc.cluster.local."  # short names: all 1,000 SRV records fit 64 KiB


@pytest.fixture(scope="module")
def data() -> ZoneData:
    return zone_from_objects(headless_service("big", "load", 1000))


def srv_query(payload: int | None, qid: int = 1) -> bytes:
    query = dns.message.make_query(THOUSAND, "SRV", use_edns=False if payload is None else 0,
                                   payload=payload or 1232)
    query.id = qid
    return query.to_wire()


def answered(resolver: Resolver, data: bytes, tcp: bool) -> bytes:
    reply = resolver.respond(data, tcp)
    assert isinstance(reply, Reply) and reply.data is not None
    return reply.data


# the client's EDNS size (None: no EDNS) -> the largest reply allowed with the default --bufsize 1232
CAPS = [(None, 512), (512, 512), (1232, 1232), (4096, 1232), (65535, 1232)]


@pytest.mark.parametrize("payload,cap", CAPS)
def test_udp_reply_is_capped_and_truncated_with_tc(payload: int | None, cap: int, data: ZoneData) -> None:
    resolver = Resolver(Settings(), data)
    for qid in (1, 2, 3):  # slow path, table hit, packet memo
        wire = answered(resolver, srv_query(payload, qid), tcp=False)
        reply = dns.message.from_wire(wire)
        assert len(wire) <= cap and reply.id == qid
        assert reply.flags & dns.flags.TC and 0 < len(reply.answer[0]) < 1000
        assert (reply.payload == cap) if payload is not None else reply.edns == -1
    memo = udp_reply(resolver.table, srv_query(payload, 9))
    assert memo is not None and len(memo[0]) <= cap


def test_the_same_question_over_tcp_gets_every_srv_record(data: ZoneData) -> None:
    resolver = Resolver(Settings(), data)
    for _ in range(2):
        reply = dns.message.from_wire(answered(resolver, srv_query(65535), tcp=True))
        assert len(reply.answer[0]) == 1000
        # 64 KiB holds every SRV record and as many of their address records as fit (miekg's
        # Truncate sets TC when any record, additional ones included, is left out)
        assert 0 < sum(len(rrset) for rrset in reply.additional) < 1000 and reply.flags & dns.flags.TC


@pytest.mark.parametrize("payload,cap", [(65535, 4096), (4096, 4096), (2000, 2000), (None, 512)])
def test_a_bigger_bufsize_allows_bigger_replies_up_to_the_clients_size(
        payload: int | None, cap: int, data: ZoneData) -> None:
    resolver = Resolver(Settings(), data, bufsize=4096)
    wire = answered(resolver, srv_query(payload), tcp=False)
    assert cap - 100 < len(wire) <= cap and dns.message.from_wire(wire).flags & dns.flags.TC


def test_an_answer_that_fits_is_whole_and_has_no_tc(data: ZoneData) -> None:
    resolver = Resolver(Settings(), data)
    query = dns.message.make_query("10-240-0-1." + THOUSAND, "A", use_edns=0, payload=65535)
    reply = dns.message.from_wire(answered(resolver, query.to_wire(), tcp=False))
    assert not reply.flags & dns.flags.TC and [rr.address for rr in reply.answer[0]] == ["10.240.0.1"]


class BigUpstream:
    """A forwarder whose every answer holds 300 A records (~5 KB)."""

    def handles(self, qname: str) -> bool:
        return True

    def is_probe(self, qname: str) -> bool:
        return False

    async def resolve(self, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        records = tuple(RR("example.org.", 30, "A", f"192.0.2.{i % 250 + 1}") for i in range(300))
        return Result(answer=records, authoritative=False), True

    async def lookup(self, name: str, qtype: int) -> tuple[RR, ...] | None:
        return None


@pytest.mark.parametrize("payload,cap", CAPS)
def test_forwarded_answers_are_capped_too(payload: int | None, cap: int, data: ZoneData) -> None:
    resolver = Resolver(Settings(), data, BigUpstream())
    query = dns.message.make_query("example.org.", "A", use_edns=False if payload is None else 0,
                                   payload=payload or 1232)
    pending = resolver.respond(query.to_wire(), False)
    assert not isinstance(pending, Reply)
    reply = asyncio.run(pending)  # type: ignore[arg-type]
    assert reply.data is not None and len(reply.data) <= cap
    assert dns.message.from_wire(reply.data).flags & dns.flags.TC
