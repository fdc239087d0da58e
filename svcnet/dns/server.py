"""The DNS server: UDP and TCP on asyncio, the answer table on the hot path.

`Resolver` is the whole decision for one packet: the fast path is a table hit
(svcnet.dns.wire.fast_response); the slow path parses with miekg/dns's rules,
asks answers.answer, stores the rendered answer in the table, and goes to the
forwarder for names outside the zones. `UdpServer` drains its socket in batches
from one reader callback (one wakeup serves many packets under load);
`serve_tcp` reads length-prefixed queries one after another on a connection
(pipelining works: answers go out in order) until the client is idle for
TCP_IDLE_TIMEOUT, miekg/dns's default.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from svcnet.dns import answers, names, wire
from svcnet.dns.answers import Result, Settings
from svcnet.dns.forward import Forwarder, UpstreamError
from svcnet.dns.metrics import RCODE_NAMES, TYPE_NAMES, Metrics
from svcnet.dns.wire import AnswerTable, Drop, Query, Rejected, fast_response, make_entry, parse_query
from svcnet.dns.zone import ZoneData

log = logging.getLogger("svcnet.dns.server")
query_log = logging.getLogger("svcnet.dns.query")

TCP_IDLE_TIMEOUT = 8.0  # miekg/dns: idle time before the server closes a TCP connection
TCP_READ_TIMEOUT = 2.0  # miekg/dns: time to read one message once its length arrived
UDP_BATCH = 64


@dataclass(frozen=True)
class Reply:
    data: bytes | None
    rcode: int
    qtype: int
    plugin: str


class Resolver:
    def __init__(self, settings: Settings, data: ZoneData, forwarder: Forwarder | None = None,
                 metrics: Metrics | None = None, *, log_queries: bool = False) -> None:
        self.settings = settings
        self.data = data
        self.forwarder = forwarder
        self.metrics = metrics or Metrics()
        self.table = AnswerTable()
        self.log_queries = log_queries

    # ------------------------------------------------------------ zone side
    def zone_changed(self, tags: set[str] | None = None) -> None:
        """Drop the answers tags say may have changed; None drops everything (first sync)."""
        if tags is None:
            self.table.clear()
        else:
            self.table.invalidate(tags)
        self.metrics.table_entries = len(self.table)
        self.metrics.ready = self.data.synced

    # ------------------------------------------------------------ packet side
    def respond(self, data: bytes, tcp: bool) -> Reply | Awaitable[Reply]:
        """The reply to one packet: at once when the zone or the table can answer, else a coroutine."""
        hit = fast_response(self.table, data, tcp)
        if hit is not None:
            return Reply(hit[0], hit[1].rcode, hit[1].qtype, "kubernetes")
        try:
            return self._slow(data, tcp)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("answering a query failed")
            return self._servfail_for(data)

    def _servfail_for(self, data: bytes) -> Reply:
        try:
            query = parse_query(data)
        except Drop:
            return Reply(None, -1, 0, "")
        if isinstance(query, Rejected):
            return Reply(query.response, query.rcode, 0, "")
        return Reply(wire.simple_reply(query, answers.SERVFAIL), answers.SERVFAIL, query.qtype, "")

    def _slow(self, data: bytes, tcp: bool) -> Reply | Awaitable[Reply]:
        try:
            query = parse_query(data)
        except Drop:
            return Reply(None, -1, 0, "")
        if isinstance(query, Rejected):
            return Reply(query.response, query.rcode, 0, "")
        if query.qname_wire is None:  # CoreDNS: a message without a question is SERVFAIL
            return Reply(wire.simple_reply(query, answers.SERVFAIL), answers.SERVFAIL, 0, "")
        if self.forwarder is not None and self.forwarder.is_probe(query.qname):
            return Reply(wire.simple_reply(query, answers.SERVFAIL), answers.SERVFAIL, query.qtype, "loop")
        # Build from the lowercased name: owners compress into the question, which carries the case.
        result = answers.answer(self.data, self.settings, names.normalize(query.qname), query.qtype)
        if result.fallthrough or result.chase is not None:
            if self.forwarder is None:
                return self._unforwarded(query, result, tcp)
            return self._forwarded(query, result, tcp)
        limit = wire.size_limit(query.edns, tcp)
        if result.rcode != answers.REFUSED:
            key = query.qname_wire.lower() + struct.pack("!HH", query.qtype, query.qclass)
            self.table.put(key, make_entry(result, query.qname_wire.lower(), query.qtype, query.qclass))
            self.metrics.table_entries = len(self.table)
            hit = fast_response(self.table, data, tcp)
            if hit is not None:
                return Reply(hit[0], result.rcode, query.qtype, "kubernetes")
        else:
            return Reply(wire.simple_reply(query, answers.REFUSED), answers.REFUSED, query.qtype, "")
        return Reply(self._render(result, query, limit), result.rcode, query.qtype, "kubernetes")

    def _render(self, result: Result, query: Query, limit: int, ra: bool = False) -> bytes:
        assert query.qname_wire is not None
        return wire.render(result, query.qname_wire, query.qtype, query.qclass, qid=query.id,
                           request_flags=query.flags, edns=query.edns, limit=limit, ra=ra)

    def _unforwarded(self, query: Query, result: Result, tcp: bool) -> Reply:
        """No upstreams configured: an ExternalName cannot be chased, other names are not ours."""
        if result.chase is not None:
            done = answers.complete_chase(result, None, self.settings, self.data.serial,
                                          names.normalize(query.qname))
            return Reply(self._render(done, query, wire.size_limit(query.edns, tcp)), done.rcode, query.qtype,
                         "kubernetes")
        # Inside a zone (a reverse name): CoreDNS has no next plugin -> SERVFAIL; outside: REFUSED.
        rcode = answers.SERVFAIL if result.zone else answers.REFUSED
        return Reply(wire.simple_reply(query, rcode), rcode, query.qtype, "")

    async def _forwarded(self, query: Query, result: Result, tcp: bool) -> Reply:
        assert query.qname_wire is not None and self.forwarder is not None
        limit = wire.size_limit(query.edns, tcp)
        if result.chase is not None:
            upstream = await self.forwarder.lookup(result.chase.target, result.chase.qtype)
            done = answers.complete_chase(result, upstream, self.settings, self.data.serial,
                                          names.normalize(query.qname))
            return Reply(self._render(done, query, limit), done.rcode, query.qtype, "kubernetes")
        do = bool(query.edns and query.edns.do)
        try:
            upstream_result, ra = await self.forwarder.resolve(query.qname_wire, query.qtype, query.qclass, do)
        except (UpstreamError, TimeoutError):
            return Reply(wire.simple_reply(query, answers.SERVFAIL), answers.SERVFAIL, query.qtype, "forward")
        return Reply(self._render(upstream_result, query, limit, ra=ra), upstream_result.rcode, query.qtype,
                     "forward")

    # --------------------------------------------------------------- logging
    def account(self, reply: Reply, proto: str, family: str, started: float, peer: object,
                size: int) -> None:
        elapsed = time.perf_counter() - started
        if reply.rcode >= 0:
            self.metrics.query(proto, family, reply.qtype, reply.rcode, reply.plugin, elapsed)
        if self.log_queries:
            query_log.info('%s - "%s %s" %s %d %.6fs', peer, TYPE_NAMES.get(reply.qtype, reply.qtype), proto,
                           RCODE_NAMES.get(reply.rcode, reply.rcode), size, elapsed)


# ------------------------------------------------------------------------ UDP

def bind_udp(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class UdpServer:
    def __init__(self, resolver: Resolver, sock: socket.socket) -> None:
        self.resolver = resolver
        self.sock = sock
        self.family = "2" if sock.family == socket.AF_INET6 else "1"
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        for task in list(self._tasks):
            task.cancel()
        self.sock.close()

    def _readable(self) -> None:
        sock = self.sock
        respond = self.resolver.respond
        account = self.resolver.account
        perf = time.perf_counter
        for _ in range(UDP_BATCH):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            started = perf()
            reply = respond(data, False)
            if isinstance(reply, Reply):
                if reply.data is not None:
                    with contextlib.suppress(OSError):
                        sock.sendto(reply.data, addr)
                account(reply, "udp", self.family, started, addr, len(data))
            else:
                task = self._loop.create_task(self._finish(reply, addr, started, len(data)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _finish(self, pending: Awaitable[Reply], addr: tuple, started: float, size: int) -> None:
        try:
            reply = await pending
        except Exception:
            log.exception("answering a forwarded query failed")
            return
        if reply.data is not None:
            with contextlib.suppress(OSError):
                self.sock.sendto(reply.data, addr)
        self.resolver.account(reply, "udp", self.family, started, addr, size)


# ------------------------------------------------------------------------ TCP

async def serve_tcp(resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    idle_timeout: float = TCP_IDLE_TIMEOUT) -> None:
    peer = writer.get_extra_info("peername")
    family = "2" if writer.get_extra_info("socket") and writer.get_extra_info("socket").family == socket.AF_INET6 \
        else "1"
    try:
        while True:
            try:
                prefix = await asyncio.wait_for(reader.readexactly(2), idle_timeout)
                length = struct.unpack("!H", prefix)[0]
                if length == 0:
                    break
                data = await asyncio.wait_for(reader.readexactly(length), TCP_READ_TIMEOUT)
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                break
            started = time.perf_counter()
            reply = resolver.respond(data, True)
            if not isinstance(reply, Reply):
                try:
                    reply = await reply
                except Exception:
                    log.exception("answering a forwarded query failed")
                    continue
            if reply.data is not None:
                writer.write(struct.pack("!H", len(reply.data)) + reply.data)
                await writer.drain()
            resolver.account(reply, "tcp", family, started, peer, len(data))
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def bind_tcp(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class DnsServer:
    """UDP + TCP on one address for one Resolver."""

    def __init__(self, resolver: Resolver, host: str, port: int, *, reuse_port: bool = False,
                 idle_timeout: float = TCP_IDLE_TIMEOUT) -> None:
        self.resolver = resolver
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.idle_timeout = idle_timeout
        self._udp: UdpServer | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        udp_sock = bind_udp(self.host, self.port, self.reuse_port)
        if self.port == 0:  # tests: let TCP take the port UDP got
            self.port = udp_sock.getsockname()[1]
        tcp_sock = bind_tcp(self.host, self.port, self.reuse_port)
        self._udp = UdpServer(self.resolver, udp_sock)
        self._tcp = await asyncio.start_server(
            lambda r, w: serve_tcp(self.resolver, r, w, self.idle_timeout), sock=tcp_sock)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
