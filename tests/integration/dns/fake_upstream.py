"""A scriptable upstream resolver for the forwarder tests: an asyncio DatagramProtocol on 127.0.0.1.

It runs its own event loop on a thread, so blocking tests (dig, DnsProcess) can talk to svcnet
while it answers. `mode` says how it answers each query (switchable between queries):

- "honest": the question echoed, `NAME 30 A address_for(NAME)` for A queries;
- "other-name": QR set and the query's ID, but question and answer are `evil.example. 30 A 6.6.6.6`;
- "qr-clear": the asked question and ID, `NAME 30 A 6.6.6.6`, but QR clear (not a response);
- "wrong-type": the asked name and ID, `NAME 30 A 6.6.6.6`, but the question's type is AAAA;
- "other-name-first": the "other-name" forgery at once, then the honest reply.

Every reply waits `delay` seconds. It records what it saw: the source ports of queries under
`example.`, how often each name was asked, and how often a query arrived with a (source port, ID)
that was still waiting for its reply (an ID reused while pending).
"""
from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter

import dns.exception
import dns.flags
import dns.message
import dns.rrset

EVIL_NAME = "evil.example."
EVIL_ADDRESS = "6.6.6.6"
MODES = ("honest", "other-name", "qr-clear", "wrong-type", "other-name-first")


def address_for(name: str) -> str:
    """The honest A record of a name: n<i>.… maps to 10.<i as three octets>, anything else to 192.0.2.1."""
    first = name.split(".", 1)[0]
    if first.startswith("n") and first[1:].isdigit():
        i = int(first[1:])
        return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    return "192.0.2.1"


def _forged(qid: int, qname: str, qtype: str, owner: str, response: bool) -> bytes:
    message = dns.message.make_query(qname, qtype, use_edns=False)
    message.id = qid
    message.flags = dns.flags.RD | dns.flags.RA | (dns.flags.QR if response else 0)
    message.answer.append(dns.rrset.from_text(owner, 30, "IN", "A", EVIL_ADDRESS))
    return message.to_wire()


def _honest(query: dns.message.Message) -> bytes:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    question = query.question[0]
    if question.rdtype == dns.rdatatype.A:
        name = question.name.to_text()
        response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", address_for(name.lower())))
    return response.to_wire()


class FakeUpstream(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.mode = "honest"
        self.delay = 0.0
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.ports: set[int] = set()
            self.asked: Counter[str] = Counter()
            self.waiting: Counter[tuple[int, int]] = Counter()
            self.reused_while_pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        if len(query.question) != 1:
            return
        question = query.question[0]
        name = question.name.to_text().lower()
        key = (addr[1], query.id)
        with self.lock:
            if name.endswith("example."):
                self.ports.add(addr[1])
                self.asked[name] += 1
            if self.waiting[key]:
                self.reused_while_pending += 1
            self.waiting[key] += 1
        qtype = dns.rdatatype.to_text(question.rdtype)
        replies: list[bytes]
        if self.mode == "other-name":
            replies = [_forged(query.id, EVIL_NAME, "A", EVIL_NAME, True)]
        elif self.mode == "qr-clear":
            replies = [_forged(query.id, name, qtype, name, False)]
        elif self.mode == "wrong-type":
            replies = [_forged(query.id, name, "AAAA", name, True)]
        elif self.mode == "other-name-first":
            replies = [_forged(query.id, EVIL_NAME, "A", EVIL_NAME, True), _honest(query)]
        else:
            replies = [_honest(query)]
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay, self._send, replies, addr, key)

    def _send(self, replies: list[bytes], addr: tuple, key: tuple[int, int]) -> None:
        with self.lock:
            if self.waiting[key] > 1:
                self.waiting[key] -= 1
            else:  # the last reply for key (or one queued before a reset())
                self.waiting.pop(key, None)
        assert self.transport is not None
        for reply in replies:
            self.transport.sendto(reply, addr)


class FakeUpstreamThread:
    """FakeUpstream on 127.0.0.1:<port>, served by an event loop on its own thread until stop()."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.fake = FakeUpstream()
        self.thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def serve() -> None:
            await self.loop.create_datagram_endpoint(lambda: self.fake, sock=self.sock)
            self._ready.set()
        self.loop.run_until_complete(serve())
        self.loop.run_forever()
        if self.fake.transport is not None:
            self.fake.transport.close()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def start(self) -> FakeUpstreamThread:
        self.thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the fake upstream did not start")
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.sock.close()
