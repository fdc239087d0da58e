"""Names outside the cluster zones: forward to upstream resolvers, cache, health-check, no loops.

Like CoreDNS's `forward . /etc/resolv.conf` with `cache 30` and `loop` in front:

- upstreams from resolv.conf (or --upstream), tried in random order among the
  healthy ones (all of them when none is healthy, as CoreDNS does);
- UDP first, the same question again over TCP when the answer comes back
  truncated;
- a health check (". IN NS", any answer counts) every half second; two failures
  in a row mark an upstream down until a check succeeds;
- a positive and a negative cache (TTL capped, negative TTL from the SOA) keyed
  by question and DO bit; identical questions in flight share one upstream
  exchange (this also breaks any loop: a query that comes back to us joins its
  own exchange instead of being forwarded again);
- loop detection: an upstream that is this server (its listen address) is never
  used, and at start each upstream is sent a random probe name; if that name
  reaches us, the upstream forwards back to us and is dropped (CoreDNS's loop
  plugin halts; dropping one upstream keeps the cluster zone answering).

The cache and the parsing helpers are pure (the messages themselves are svcnet.dns.wire's);
Forwarder owns the sockets.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import secrets
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import dns.exception

from svcnet.dns import names
from svcnet.dns.answers import RR, Result
from svcnet.dns.metrics import RCODE_NAMES, Metrics
from svcnet.dns.resolver import UpstreamError
from svcnet.dns.wire import result_from_wire, upstream_query

log = logging.getLogger("svcnet.dns.forward")

DEFAULT_TIMEOUT = 2.0
HEALTH_INTERVAL = 0.5
MAX_FAILS = 2
LOOP_SUFFIX = "svcnet-loop-check."


# --------------------------------------------------------------------- pure

def parse_resolv_conf(text: str) -> list[str]:
    """The nameserver addresses of a resolv.conf, in order."""
    out = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                out.append(str(ipaddress.ip_address(fields[1].split("%", 1)[0])))
            except ValueError:
                continue
    return out


def split_host_port(spec: str, default_port: int) -> tuple[str, int]:
    """"h", "h:p", "[v6]:p", "[v6]", "v6" -> (host as written, port); the host is "" in ":p"."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if spec.count(":") == 1:
        host, _, port = spec.partition(":")
        return host, int(port)
    return spec, default_port


def parse_upstream(spec: str, default_port: int = 53) -> tuple[str, int]:
    """"10.0.0.1", "10.0.0.1:5353", "[fd00::1]:53", "fd00::1" -> (address, port)."""
    host, port = split_host_port(spec.strip(), default_port)
    return str(ipaddress.ip_address(host)), port


def cache_ttl(result: Result, max_ttl: int) -> tuple[int, bool]:
    """(seconds to keep, negative?) as CoreDNS's cache decides; 0 = do not cache."""
    if result.rcode not in (0, 3):
        return 0, False
    if result.answer and result.rcode == 0:
        ttls = [rr.ttl for rr in result.answer + result.authority + result.additional]
        return min(min(ttls), max_ttl), False
    for rr in result.authority:
        if rr.type == "SOA":
            minimum = int(rr.rdata.split()[-1])
            return min(rr.ttl, minimum, max_ttl), True
    return 0, True


def age_result(result: Result, elapsed: int) -> Result:
    def aged(records: tuple[RR, ...]) -> tuple[RR, ...]:
        return tuple(replace(rr, ttl=max(0, rr.ttl - elapsed)) for rr in records)
    return replace(result, answer=aged(result.answer), authority=aged(result.authority),
                   additional=aged(result.additional))


@dataclass
class CachedAnswer:
    result: Result
    ra: bool
    stored: float
    ttl: int
    negative: bool


@dataclass
class ForwardCache:
    max_ttl: int = 30
    capacity: int = 10_000
    entries: dict[bytes, CachedAnswer] = field(default_factory=dict)

    def get(self, key: bytes, now: float) -> tuple[Result, bool, bool] | None:
        """(aged result, RA, negative) or None."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        elapsed = int(now - entry.stored)
        if elapsed >= entry.ttl:
            del self.entries[key]
            return None
        return age_result(entry.result, elapsed), entry.ra, entry.negative

    def put(self, key: bytes, result: Result, ra: bool, now: float) -> None:
        ttl, negative = cache_ttl(result, self.max_ttl)
        if ttl <= 0:
            return
        if len(self.entries) >= self.capacity:
            self.entries.pop(next(iter(self.entries)))
        self.entries[key] = CachedAnswer(result, ra, now, ttl, negative)

    def sizes(self) -> dict[str, int]:
        negative = sum(1 for e in self.entries.values() if e.negative)
        return {"success": len(self.entries) - negative, "denial": negative}


# ------------------------------------------------------------------ sockets

class _UdpClient(asyncio.DatagramProtocol):
    """One unconnected socket; answers matched to questions by (address, port, id)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[tuple[str, int, int], asyncio.Future[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        if len(data) < 12:
            return
        key = (str(ipaddress.ip_address(addr[0])), addr[1], (data[0] << 8) | data[1])
        future = self.pending.pop(key, None)
        if future is not None and not future.done():
            future.set_result(data)

    async def exchange(self, query: bytes, addr: tuple[str, int], qid: int, timeout: float) -> bytes:
        assert self.transport is not None
        key = (addr[0], addr[1], qid)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[key] = future
        try:
            self.transport.sendto(query, addr)
            return await asyncio.wait_for(future, timeout)
        finally:
            self.pending.pop(key, None)


async def tcp_exchange(query: bytes, addr: tuple[str, int], timeout: float) -> bytes:
    async def run() -> bytes:
        reader, writer = await asyncio.open_connection(addr[0], addr[1])
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            length = struct.unpack("!H", await reader.readexactly(2))[0]
            return await reader.readexactly(length)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    return await asyncio.wait_for(run(), timeout)


@dataclass
class Upstream:
    address: str
    port: int
    fails: int = 0
    looped: bool = False

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def healthy(self) -> bool:
        return self.fails < MAX_FAILS


class Forwarder:
    def __init__(self, upstreams: Iterable[tuple[str, int]], metrics: Metrics | None = None, *,
                 own_addresses: Iterable[tuple[str, int]] = (), cache_max_ttl: int = 30,
                 timeout: float = DEFAULT_TIMEOUT, health_interval: float = HEALTH_INTERVAL) -> None:
        self.metrics = metrics or Metrics()
        self.timeout = timeout
        self.health_interval = health_interval
        self.cache = ForwardCache(max_ttl=cache_max_ttl)
        own = {(str(ipaddress.ip_address(a)), p) for a, p in own_addresses}
        self.upstreams: list[Upstream] = []
        for address, port in upstreams:
            if (address, port) in own or self._is_own_wildcard(address, port, own):
                log.error("upstream %s:%d is this server itself: not forwarding to it (loop)", address, port)
                continue
            self.upstreams.append(Upstream(address, port))
        self._clients: dict[int, _UdpClient] = {}
        self._inflight: dict[bytes, asyncio.Future[tuple[Result, bool]]] = {}
        self._probes: dict[str, Upstream] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    def _is_own_wildcard(address: str, port: int, own: set[tuple[str, int]]) -> bool:
        ip = ipaddress.ip_address(address)
        for own_address, own_port in own:
            if own_port == port and ipaddress.ip_address(own_address).is_unspecified and ip.is_loopback:
                return True
        return False

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for family, bind in ((4, "0.0.0.0"), (6, "::")):
            if any(ipaddress.ip_address(u.address).version == family for u in self.upstreams):
                _, client = await loop.create_datagram_endpoint(_UdpClient, local_addr=(bind, 0))
                self._clients[family] = client
        self._tasks.append(asyncio.create_task(self._health_loop(), name="dns-forward-health"))
        self._tasks.append(asyncio.create_task(self._probe_loops(), name="dns-loop-probe"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for client in self._clients.values():
            if client.transport is not None:
                client.transport.close()

    # ------------------------------------------------------------ loop check
    def is_probe(self, qname: str) -> bool:
        """Called for every query we receive: our own probe coming back means a loop."""
        name = qname.lower()
        if not name.endswith(LOOP_SUFFIX):
            return False
        upstream = self._probes.get(name)
        if upstream is None:
            return False  # another server's probe: forward it like any name, so it can see its loop
        if not upstream.looped:
            upstream.looped = True
            log.error("loop detected: upstream %s forwards queries back to this server; not using it",
                      upstream.label)
        return True

    async def _probe_loops(self) -> None:
        """Probe each upstream until it answers once (it may start after us, as CoreDNS's loop plugin)."""
        pending = list(self.upstreams)
        while pending:
            for upstream in list(pending):
                name = f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}.{LOOP_SUFFIX}"
                self._probes[name] = upstream
                try:
                    await self._exchange_udp(upstream, names.to_wire(name), 13, 1, False, timeout=2.0)
                    pending.remove(upstream)
                except (TimeoutError, OSError, UpstreamError):
                    continue
            if pending:
                await asyncio.sleep(1.0)

    # -------------------------------------------------------------- health
    async def _health_loop(self) -> None:
        while True:
            await asyncio.gather(*(self._check(u) for u in self.upstreams), return_exceptions=True)
            await asyncio.sleep(self.health_interval)

    async def _check(self, upstream: Upstream) -> None:
        try:
            await self._exchange_udp(upstream, b"\x00", 2, 1, False, timeout=1.0, rd=False)
            upstream.fails = 0
        except (TimeoutError, OSError, UpstreamError):
            upstream.fails += 1
            self.metrics.forward_healthcheck_failures[upstream.label] += 1

    # ------------------------------------------------------------ exchange
    def _candidates(self) -> list[Upstream]:
        usable = [u for u in self.upstreams if not u.looped]
        healthy = [u for u in usable if u.healthy]
        chosen = healthy or usable
        random.shuffle(chosen)
        return chosen

    async def _exchange_udp(self, upstream: Upstream, qname_wire: bytes, qtype: int, qclass: int,
                            do: bool, timeout: float | None = None, rd: bool = True) -> bytes:
        client = self._clients.get(ipaddress.ip_address(upstream.address).version)
        if client is None:
            raise UpstreamError("no socket for the upstream's family")
        qid = secrets.randbelow(0x10000)
        query = upstream_query(qname_wire, qtype, qclass, qid, do, rd)
        return await client.exchange(query, (upstream.address, upstream.port), qid, timeout or self.timeout)

    async def _ask(self, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        last: Exception | None = None
        for upstream in self._candidates():
            self.metrics.forward_requests[upstream.label] += 1
            try:
                wire = await self._exchange_udp(upstream, qname_wire, qtype, qclass, do)
                if len(wire) > 2 and wire[2] & 0x02:  # truncated: ask the same upstream over TCP
                    query = upstream_query(qname_wire, qtype, qclass, secrets.randbelow(0x10000), do)
                    wire = await tcp_exchange(query, (upstream.address, upstream.port), self.timeout)
                result, ra = result_from_wire(wire)
            except (TimeoutError, OSError, EOFError, asyncio.IncompleteReadError, UpstreamError,
                    dns.exception.DNSException) as exc:
                upstream.fails += 1
                last = exc
                continue
            self.metrics.forward_responses[(upstream.label, RCODE_NAMES.get(result.rcode, "?"))] += 1
            return result, ra
        raise UpstreamError(f"no upstream answered: {last}")

    async def resolve(self, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        """(Result, RA) for a question outside the zones: from the cache or an upstream."""
        key = qname_wire.lower() + struct.pack("!HHB", qtype, qclass, 1 if do else 0)
        now = time.monotonic()
        cached = self.cache.get(key, now)
        if cached is not None:
            result, ra, negative = cached
            self.metrics.cache_hits["denial" if negative else "success"] += 1
            return result, ra
        self.metrics.cache_misses += 1
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.wait_for(asyncio.shield(pending), self.timeout * 2)
        future: asyncio.Future[tuple[Result, bool]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result, ra = await self._ask(qname_wire, qtype, qclass, do)
            self.cache.put(key, result, ra, time.monotonic())
            self.metrics.cache_size = self.cache.sizes()
            future.set_result((result, ra))
            return result, ra
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else UpstreamError("cancelled"))
            future.exception()  # mark retrieved: joiners may be none
            raise
        finally:
            self._inflight.pop(key, None)

    async def lookup(self, name: str, qtype: int) -> tuple[RR, ...] | None:
        """CoreDNS's Upstream.Lookup for ExternalName targets: the answer records, None on failure."""
        try:
            result, _ = await self.resolve(names.to_wire(name), qtype, 1, False)
        except (UpstreamError, TimeoutError):
            return None
        if result.rcode == 2:
            return None
        return result.answer


__all__ = ["Forwarder", "ForwardCache", "UpstreamError", "parse_resolv_conf", "parse_upstream", "cache_ttl"]
