"""The DNS transport: UDP and TCP on asyncio, the answer table on the hot path.

Sockets, batching and TCP framing only: what to answer is the Resolver's
(svcnet.dns.resolver), except that a UDP table hit is looked up here inline
(svcnet.dns.table) to save a call per packet. `UdpServer` drains its socket in batches
from one reader callback (one wakeup serves many packets under load): on Linux
one recvmmsg/sendmmsg pair per batch (svcnet.kernel.mmsg.MmsgBatch), a table hit answered from
AnswerTable.packets with one lookup, and metrics counted once per batch;
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
from collections.abc import Awaitable, Callable

from svcnet.dns.resolver import Reply, Resolver, table_reply
from svcnet.dns.table import fast_response, remember, udp_reply
from svcnet.kernel.mmsg import MmsgBatch

log = logging.getLogger("svcnet.dns.server")

TCP_IDLE_TIMEOUT = 8.0  # miekg/dns: idle time before the server closes a TCP connection
TCP_READ_TIMEOUT = 2.0  # miekg/dns: time to read one message once its length arrived
UDP_BATCH = 64  # datagrams per recvmmsg/sendmmsg
UDP_ROUNDS = 4  # batches per readable event before the loop runs other work


async def _settled(pending: Awaitable[Reply]) -> Reply | None:
    """The reply a query waiting for upstreams ends with; None (logged) when answering it failed."""
    try:
        return await pending
    except Exception:
        log.exception("answering a forwarded query failed")
        return None


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
    """One UDP socket on the event loop, answered in batches.

    Each readable event drains up to UDP_ROUNDS batches of UDP_BATCH datagrams. With
    recvmmsg/sendmmsg (MmsgBatch) a batch costs one system call each way; without them
    (not Linux, or --log-queries) datagrams are read and answered one by one. Either way
    a table hit is looked up in AnswerTable.packets by the packet's bytes after the ID,
    and hits are counted in a local dict handed to Metrics.count_hits once per batch.
    """

    def __init__(self, resolver: Resolver, sock: socket.socket, *, mmsg: bool = True) -> None:
        self.resolver = resolver
        self.sock = sock
        self.family = "2" if sock.family == socket.AF_INET6 else "1"
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._mmsg = mmsg
        self._batch = MmsgBatch.create(sock, UDP_BATCH) if mmsg and not resolver.log_queries else None
        reader = self._readable_mmsg if self._batch is not None else self._readable
        self._loop.add_reader(sock.fileno(), reader)

    def use(self, resolver: Resolver) -> None:
        """Answer with resolver from the next datagram on; batches only when it logs no queries."""
        self.resolver = resolver
        batched = self._mmsg and not resolver.log_queries
        if batched == (self._batch is not None):
            return
        self._batch = MmsgBatch.create(self.sock, UDP_BATCH) if batched else None
        self._loop.remove_reader(self.sock.fileno())
        self._loop.add_reader(self.sock.fileno(), self._readable_mmsg if self._batch is not None else self._readable)

    @property
    def batched(self) -> bool:
        """True when datagrams come and go through recvmmsg/sendmmsg."""
        return self._batch is not None

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        for task in list(self._tasks):
            task.cancel()
        self.sock.close()

    # ----------------------------------------------------- the slow path, shared
    def _defer(self, pending: Awaitable[Reply], data: bytes, started: float, addr: object) -> None:
        """A reply that waits for upstreams: a task sends it to addr when it is ready."""
        task = self._loop.create_task(self._finish(pending, addr, started, len(data)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, pending: Awaitable[Reply], addr: object, started: float, size: int) -> None:
        reply = await _settled(pending)
        if reply is None:
            return
        if reply.data is not None:
            with contextlib.suppress(OSError):
                self.sock.sendto(reply.data, addr)
        self.resolver.account(reply, "udp", self.family, started, addr, size)

    # ------------------------------------------------- one datagram at a time
    def _readable(self) -> None:
        sock = self.sock
        resolver = self.resolver
        table = resolver.table
        log_queries = resolver.log_queries
        perf = time.perf_counter
        stats: dict[int, int] = {}
        started = perf()
        for _ in range(UDP_BATCH * UDP_ROUNDS):
            try:
                data, addr = sock.recvfrom(65535)
            except OSError:  # drained (BlockingIOError), or an error queued on the socket
                break
            one_started = perf()
            hit = udp_reply(table, data)
            if hit is not None and not log_queries:
                with contextlib.suppress(OSError):
                    sock.sendto(hit[0], addr)
                stats[hit[1].stat] = stats.get(hit[1].stat, 0) + 1
                continue
            if hit is not None:
                reply: Reply | Awaitable[Reply] = table_reply(hit)
            else:
                reply = resolver.respond_slow(data, False)
            if not isinstance(reply, Reply):
                self._defer(reply, data, one_started, addr)
                continue
            if reply.data is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(reply.data, addr)
            resolver.account(reply, "udp", self.family, one_started, addr, len(data))
        if stats:
            resolver.metrics.count_hits("udp", self.family, stats, perf() - started)

    # ----------------------------------------------------- recvmmsg/sendmmsg
    def _readable_mmsg(self) -> None:
        batch = self._batch
        assert batch is not None
        resolver = self.resolver
        table = resolver.table
        packets = table.packets
        account = resolver.account
        hits = resolver.metrics.count_hits
        perf = time.perf_counter
        rview = batch.rview
        sview = batch.sview
        lengths = batch.lengths
        send_sizes = batch.send_sizes
        slots = batch.slots
        family = self.family
        for _ in range(UDP_ROUNDS):
            count = batch.recv()
            if count <= 0:
                return
            started = perf()
            stats: dict[int, int] = {}
            skipped: list[int] = []
            slow: list[tuple[Reply, int]] = []
            for index, offset, length_at, size_at in slots[:count]:
                end = offset + lengths[length_at]
                memo = packets.get(rview[offset + 2:end].tobytes())
                if memo is None or not memo[1].live:
                    data = rview[offset:end].tobytes()
                    hit = fast_response(table, data, False)
                    if hit is None:
                        placed, reply = self._slow_in_batch(batch, index, data, started)
                        if not placed:
                            skipped.append(index)
                        if reply is not None:
                            slow.append((reply, len(data)))
                        continue
                    memo = remember(table, data, hit[0], hit[1])
                body = memo[0]
                sview[offset:offset + len(body)] = body
                send_sizes[size_at] = len(body)
                stat = memo[1].stat
                stats[stat] = stats.get(stat, 0) + 1
            batch.send(count, skipped)
            if stats:
                hits("udp", family, stats, perf() - started)
            for reply, size in slow:
                account(reply, "udp", family, started, None, size)
            if count < UDP_BATCH:
                return

    def _slow_in_batch(self, batch: MmsgBatch, index: int, data: bytes,
                       started: float) -> tuple[bool, Reply | None]:
        """The slow path for slot index: (reply written into the slot, reply to account after the send)."""
        reply = self.resolver.respond_slow(data, False)
        if not isinstance(reply, Reply):
            self._defer(reply, data, started, batch.address(index))
            return False, None
        if reply.data is None:
            return False, reply
        if len(reply.data) - 2 > batch.slot_size or reply.data[:2] != data[:2]:
            with contextlib.suppress(OSError):  # not the slot's shape: send it on its own
                self.sock.sendto(reply.data, batch.address(index))
            return False, reply
        batch.put(index, reply.data[2:])
        return True, reply


# ------------------------------------------------------------------------ TCP

async def serve_tcp(resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    idle_timeout: float = TCP_IDLE_TIMEOUT, current: Callable[[], Resolver] | None = None) -> None:
    """One TCP connection; current() (when given) names the resolver for each message, so a
    connection kept open across a Corefile reload is answered by the new configuration."""
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
            if current is not None:
                resolver = current()
            answered = resolver.respond(data, True)
            reply = answered if isinstance(answered, Reply) else await _settled(answered)
            if reply is None:
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


PORT_ZERO_ATTEMPTS = 20


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
        udp_sock, tcp_sock = self._bind()
        self._udp = UdpServer(self.resolver, udp_sock)
        self._tcp = await asyncio.start_server(
            lambda r, w: serve_tcp(self.resolver, r, w, self.idle_timeout, lambda: self.resolver), sock=tcp_sock)

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        """UDP and TCP on one port. Port 0 (tests): TCP takes the port UDP got, and when another
        process holds that TCP port, both are tried again on a new one."""
        for attempt in range(PORT_ZERO_ATTEMPTS):
            udp_sock = bind_udp(self.host, self.port, self.reuse_port)
            port = udp_sock.getsockname()[1]
            try:
                tcp_sock = bind_tcp(self.host, port, self.reuse_port)
            except OSError:
                udp_sock.close()
                if self.port != 0 or attempt == PORT_ZERO_ATTEMPTS - 1:
                    raise
                continue
            self.port = port
            return udp_sock, tcp_sock
        raise AssertionError("unreachable")

    def swap(self, resolver: Resolver) -> None:
        """Answer with resolver from the next packet on (a reloaded Corefile); nothing is dropped:
        a query already being answered finishes with the resolver it started with."""
        self.resolver = resolver
        if self._udp is not None:
            self._udp.use(resolver)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
