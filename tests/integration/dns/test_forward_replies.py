"""The forwarder takes only the reply to the question it asked (issue 12, item 6).

svcnet runs as `svcnet dns` (tests/integration/dns/harness.py) forwarding to a scriptable fake
upstream on 127.0.0.1 (fake_upstream.py). A reply with another name in its question, with QR
clear, or for another type is not an answer: svcnet keeps waiting for the real one and, when
none comes, answers SERVFAIL and caches nothing. Many slow questions in flight at once each get
their own answer, from more than one source port, with no ID reused while it is pending.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.integration.dns.fake_upstream import EVIL_ADDRESS, FakeUpstreamThread, address_for
from tests.integration.dns.harness import DnsProcess, dig, dig_available
from tests.unit.dns.cases import CLUSTER

pytestmark = pytest.mark.skipif(not dig_available(), reason="dig (dnsutils) is not installed")

MANY = 6000  # distinct names through the slow upstream, as in the measurement
WINDOW = 1000  # of them in flight at once
SLOW = 0.3  # seconds the slow upstream takes per answer, as in the issue
RESEND_AFTER = 3.0  # a stub resolver's retry interval: svcnet gives up on an upstream after 2 s
DEADLINE = 180.0  # a bound for the whole run to finish; never a performance limit


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstreamThread]:
    fake = FakeUpstreamThread().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def server(upstream: FakeUpstreamThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsProcess]:
    log = tmp_path_factory.mktemp("fwd-replies") / "dns.log"
    proc = DnsProcess(["--from", str(CLUSTER), "--upstream", f"127.0.0.1:{upstream.port}", "--workers", "1"],
                      log).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def fake(upstream: FakeUpstreamThread) -> Iterator[FakeUpstreamThread]:
    upstream.fake.mode, upstream.fake.delay = "honest", 0.0
    upstream.fake.reset()
    try:
        yield upstream
    finally:
        upstream.fake.mode, upstream.fake.delay = "honest", 0.0


@pytest.mark.parametrize("mode", ["other-name", "qr-clear", "wrong-type"])
def test_mismatched_reply_is_servfail_and_not_cached(server: DnsProcess, fake: FakeUpstreamThread,
                                                     mode: str) -> None:
    name = f"bank-{mode}.example."
    fake.fake.mode = mode
    got = dig(server.port, name, "A", "+time=8", timeout=20)
    assert got.status == "SERVFAIL", got.raw
    assert not any(EVIL_ADDRESS in line for line in got.answer)
    assert fake.fake.asked[name] >= 1
    fake.fake.mode = "honest"
    again = dig(server.port, name, "A", "+time=8", timeout=20)
    assert again.status == "NOERROR", again.raw
    assert again.answer == [f"{name} 30 IN A {address_for(name)}"]


def test_forged_reply_ahead_of_the_real_one_is_skipped(server: DnsProcess, fake: FakeUpstreamThread) -> None:
    fake.fake.mode = "other-name-first"
    name = "raced.example."
    got = dig(server.port, name, "A", "+time=8", timeout=20)
    assert got.status == "NOERROR", got.raw
    assert got.answer == [f"{name} 30 IN A {address_for(name)}"]
    fake.fake.mode = "honest"
    cached = dig(server.port, name, "A")
    assert [line.split()[-1] for line in cached.answer] == [address_for(name)]
    assert fake.fake.asked[name] == 1  # the second answer came from the cache: the honest one


# ---------------------------------------------------------------- many slow questions

class _Asker(asyncio.DatagramProtocol):
    """A stub resolver for many names at once: name i is asked with ID i, again after SERVFAIL or silence."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.answers: dict[int, dns.message.Message] = {}
        self.failed: set[int] = set()
        self.progress = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        message = dns.message.from_wire(data)
        if message.id >= len(self.names) or message.id in self.answers:
            return
        if message.rcode() == dns.rcode.NOERROR:
            self.answers[message.id] = message
        else:
            self.failed.add(message.id)
        self.progress.set()

    def send(self, i: int) -> None:
        query = dns.message.make_query(self.names[i], "A", use_edns=False)
        query.id = i
        assert self.transport is not None
        self.transport.sendto(query.to_wire())


async def ask_all(port: int, names: list[str]) -> dict[int, dns.message.Message]:
    """Every name's NOERROR reply from svcnet, keeping WINDOW questions in flight."""
    loop = asyncio.get_running_loop()
    _, asker = await loop.create_datagram_endpoint(lambda: _Asker(names), remote_addr=("127.0.0.1", port))
    sent: dict[int, float] = {}
    following = 0
    deadline = time.monotonic() + DEADLINE
    try:
        while len(asker.answers) < len(names) and time.monotonic() < deadline:
            now = time.monotonic()
            for i in [i for i in sent if i in asker.answers]:
                del sent[i]
            for i, at in list(sent.items()):
                if i in asker.failed or now - at > RESEND_AFTER:
                    asker.failed.discard(i)
                    asker.send(i)
                    sent[i] = now
            while len(sent) < WINDOW and following < len(names):
                asker.send(following)
                sent[following] = now
                following += 1
            asker.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asker.progress.wait(), 0.2)
    finally:
        assert asker.transport is not None
        asker.transport.close()
    return asker.answers


def mismatches(names: list[str], answers: dict[int, dns.message.Message]) -> list[tuple[str, list[str]]]:
    """(asked name, answer lines) for every reply whose answer is not the asked name's own record."""
    out = []
    for i, reply in answers.items():
        lines = [f"{rrset.name.to_text()} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
                 for rrset in reply.answer for rd in rrset]
        if lines != [f"{names[i]} A {address_for(names[i])}"]:
            out.append((names[i], lines))
    return out


def test_many_names_through_a_slow_upstream_each_get_their_own_answer(
        server: DnsProcess, fake: FakeUpstreamThread) -> None:
    fake.fake.delay = SLOW
    names = [f"n{i}.slow.example." for i in range(MANY)]
    answers = asyncio.run(ask_all(server.port, names))
    assert mismatches(names, answers) == []
    assert len(answers) == MANY, f"{MANY - len(answers)} names never answered"
    assert fake.fake.reused_while_pending == 0


def test_distinct_inflight_queries_use_more_than_one_source_port(server: DnsProcess,
                                                                  fake: FakeUpstreamThread) -> None:
    fake.fake.delay = SLOW
    names = [f"n{i}.ports.example." for i in range(50)]
    answers = asyncio.run(ask_all(server.port, names))
    assert len(answers) == len(names) and mismatches(names, answers) == []
    assert len(fake.fake.ports) > 1, fake.fake.ports
    assert fake.fake.reused_while_pending == 0

