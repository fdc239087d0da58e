"""Names outside the cluster zones: forward to upstream resolvers, cache, health-check, no loops.

Like CoreDNS's `forward . /etc/resolv.conf` with `cache 30` and `loop` in front:

- upstreams from resolv.conf (or --upstream), tried in random order among the
  healthy ones (all of them when none is healthy, as CoreDNS does);
- UDP first, the same question again over TCP when the answer comes back
  truncated;
- only the reply to the question asked is taken (reply_matches: ID, QR, question
  name/type/class, as CoreDNS's proxy and Request.Match); anything else is dropped
  and the query keeps waiting until its deadline, so only validated answers reach
  the cache. UDP goes out over connected sockets, one per query in flight
  (UdpPool: random source port each, reused oldest-idle-first, closed after 10 s
  idle; past 256 per upstream, queries share them under distinct pending IDs);
- a health check (". IN NS", any matching reply counts, whatever its rcode) every half second; two failures
  in a row mark an upstream down until a check succeeds;
- a positive and a negative cache (TTL capped, negative TTL from the SOA) keyed
  by question and DO bit; identical questions in flight share one upstream
  exchange (this also breaks any loop: a query that comes back to us joins its
  own exchange instead of being forwarded again);
- loop detection: an upstream that is this server (its listen address) is never
  used, and at start each upstream is sent a random probe name; if that name
  reaches us, the upstream forwards back to us and is dropped (CoreDNS's loop
  plugin halts; dropping one upstream keeps the cluster zone answering).

The cache, reply matching and the parsing helpers are pure (the messages themselves are
svcnet.dns.wire's); UdpSocket/UdpPool and Forwarder own the sockets.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import random
import secrets
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import dns.exception

from svcnet.dns import names
from svcnet.dns.answers import RR, Result
from svcnet.dns.metrics import RCODE_NAMES, Metrics
from svcnet.dns.resolver import LimitExceeded, UpstreamError, cache_key
from svcnet.dns.wire import result_from_wire, upstream_query

log = logging.getLogger("svcnet.dns.forward")

DEFAULT_TIMEOUT = 2.0
HEALTH_INTERVAL = 0.5
MAX_FAILS = 2
LOOP_SUFFIX = "svcnet-loop-check."
SOCKET_EXPIRE = 10.0  # an idle upstream socket is closed after this (CoreDNS proxy: defaultExpire)
MAX_SOCKETS = 256  # UDP sockets per upstream; more queries in flight share them
PER_SOCKET = 64  # queries in flight on one shared socket, each with its own ID


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


def reply_matches(reply: bytes, qid: int, qname_wire: bytes, qtype: int, qclass: int) -> bool:
    """reply answers the question (qname_wire, qtype, qclass) sent with ID qid.

    The checks of CoreDNS's forward plugin: the proxy's read loop drops other IDs
    (plugin/pkg/proxy/connect.go, Proxy.lookupDNS) and forward.go's ServeDNS then requires
    state.Match(ret) (request/request.go, Request.Match): QR set, exactly one question, its
    name equal ignoring ASCII case, same type. svcnet also requires the same class, and
    discards a mismatch and keeps waiting where CoreDNS answers FORMERR, so that a forgery
    racing the real reply cannot end the query. The question name must be written out in
    full: at offset 12 there is nothing earlier to point to, so an honest server never
    compresses it.
    """
    end = 12 + len(qname_wire)
    if len(reply) < end + 4 or reply[0] != qid >> 8 or reply[1] != qid & 0xFF:
        return False
    if not reply[2] & 0x80 or reply[4:6] != b"\x00\x01":  # QR clear, or not exactly one question
        return False
    if reply[12:end].lower() != qname_wire.lower():  # bytes.lower: ASCII letters only, as DNS compares
        return False
    return reply[end:end + 4] == struct.pack("!HH", qtype, qclass)


def wire_name(qname_wire: bytes) -> str:
    """An uncompressed wire name -> its normalized text."""
    labels, at = [], 0
    while at < len(qname_wire) and qname_wire[at]:
        labels.append(qname_wire[at + 1:at + 1 + qname_wire[at]])
        at += 1 + qname_wire[at]
    return names.normalize(names.from_labels(labels))


def query_builder(qname_wire: bytes, qtype: int, qclass: int, do: bool, rd: bool = True) -> Callable[[int], bytes]:
    """ID -> the query for the question: the socket that sends it draws the ID."""
    return lambda qid: upstream_query(qname_wire, qtype, qclass, qid, do, rd)


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
    generation: int | None = None  # the kubernetes data's generation when stored (names in its zones)


@dataclass
class ForwardCache:
    """Positive and negative answers, each kind with its own capacity and TTL bounds (CoreDNS's cache:
    `success CAPACITY TTL MINTTL`, `denial ...`, `serve_stale DURATION`). capacity 0 caches nothing."""

    max_ttl: int = 30
    capacity: int = 10_000
    min_ttl: int = 0
    denial_max_ttl: int | None = None  # None: max_ttl
    denial_capacity: int | None = None  # None: capacity
    denial_min_ttl: int = 0
    serve_stale: float = 0.0  # seconds past expiry an answer may still be served (get_stale)
    zones: tuple[str, ...] = (".",)  # only names under these are cached (`cache TTL ZONES...`)
    skip_success: tuple[str, ...] = ()  # `disable success ZONES...`
    skip_denial: tuple[str, ...] = ()  # `disable denial ZONES...`
    # svcnet's one deviation from CoreDNS's cache: an entry for a name inside the kubernetes plugin's
    # zones (`guarded`) is served only while that plugin's data is unchanged since it was stored
    # (`generation` reads its counter), so cluster names stay fresh within a watch event's latency.
    guarded: tuple[str, ...] = ()
    generation: Callable[[], int] | None = None
    entries: dict[bytes, CachedAnswer] = field(default_factory=dict)
    denials: int = 0

    def get(self, key: bytes, now: float) -> tuple[Result, bool, bool] | None:
        """(aged result, RA, negative) or None."""
        entry = self._current(key)
        if entry is None:
            return None
        elapsed = int(now - entry.stored)
        if elapsed >= entry.ttl:
            if elapsed >= entry.ttl + self.serve_stale:
                self._drop(key)
            return None
        return age_result(entry.result, elapsed), entry.ra, entry.negative

    def get_stale(self, key: bytes, now: float) -> tuple[Result, bool, bool] | None:
        """An expired answer still within serve_stale, its TTLs 0 (CoreDNS serves stale records so)."""
        entry = self._current(key)
        if entry is None or now - entry.stored >= entry.ttl + self.serve_stale:
            return None
        return age_result(entry.result, entry.ttl + 1), entry.ra, entry.negative

    def put(self, key: bytes, result: Result, ra: bool, now: float, name: str = ".") -> None:
        """Keep result for key (the question name is name, normalized) as the bounds say."""
        if not self.stores(name, result):
            return
        ttl, negative = cache_ttl(result, 2**31)
        if negative:
            cap = self.max_ttl if self.denial_max_ttl is None else self.denial_max_ttl
            ttl = max(self.denial_min_ttl, min(ttl, cap))
        else:
            ttl = max(self.min_ttl, min(ttl, self.max_ttl))
        self._drop(key)
        if (self.denials if negative else len(self.entries) - self.denials) >= self._capacity(negative):
            self._evict(negative)
        generation = None
        if self.generation is not None and names.match_zone(name, self.guarded) is not None:
            generation = self.generation()
        self.entries[key] = CachedAnswer(result, ra, now, ttl, negative, generation)
        self.denials += negative

    def stores(self, name: str, result: Result) -> bool:
        """put() would keep result for name (normalized): a TTL, room, in the zones, not disabled."""
        ttl, negative = cache_ttl(result, 2**31)
        return (ttl > 0 and self._capacity(negative) > 0 and names.match_zone(name, self.zones) is not None
                and names.match_zone(name, self.skip_denial if negative else self.skip_success) is None)

    def _capacity(self, negative: bool) -> int:
        return self.denial_capacity if negative and self.denial_capacity is not None else self.capacity

    def _current(self, key: bytes) -> CachedAnswer | None:
        """The entry for key unless the kubernetes data changed since it was stored (then dropped)."""
        entry = self.entries.get(key)
        if entry is not None and entry.generation is not None:
            assert self.generation is not None
            if entry.generation != self.generation():
                self._drop(key)
                return None
        return entry

    def _drop(self, key: bytes) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.denials -= entry.negative

    def _evict(self, negative: bool) -> None:
        """The oldest entry of the same kind makes room."""
        for key, entry in self.entries.items():
            if entry.negative == negative:
                self._drop(key)
                return

    def sizes(self) -> dict[str, int]:
        return {"success": len(self.entries) - self.denials, "denial": self.denials}


# ------------------------------------------------------------------ sockets

class Overloaded(UpstreamError):
    """Every socket to an upstream carries as many queries as it may: this one is not sent."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A question sent on a UdpSocket and the future its matching reply completes."""

    qname_wire: bytes
    qtype: int
    qclass: int
    reply: asyncio.Future[bytes]


class UdpSocket:
    """One UDP socket connected to one upstream, on a source port the kernel picks at random.

    Each query waiting on it has its own ID, never one still pending here (ID and port are
    what a blind spoofer must guess). A datagram is handed to the query whose ID it carries
    only if reply_matches() says it answers that query's question; anything else is counted
    and dropped, and the query keeps waiting for the real reply until its deadline (miekg/dns
    client.go, Client.ExchangeWithConnContext: "Ignore replies with mismatched IDs"). Being
    connected, the socket only receives datagrams from the upstream's address and port. The
    socket is read with the loop's add_reader, as the server's own (svcnet.dns.server): opening
    one takes no await, so a query never waits for another's socket to open.
    """

    READS_PER_WAKEUP = 64

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock  # None: a socket without I/O, fed through received() (tests)
        self.waiting: dict[int, Waiting] = {}
        self.discarded = 0
        self.idle_since = time.monotonic()
        self.closed = False

    @classmethod
    def connect(cls, address: str, port: int) -> UdpSocket:
        raw = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            raw.setblocking(False)
            raw.connect((address, port))  # binds a random ephemeral source port
            sock = cls(raw)
            asyncio.get_running_loop().add_reader(raw.fileno(), sock._readable)
        except BaseException:
            raw.close()
            raise
        return sock

    def _readable(self) -> None:
        assert self.sock is not None
        for _ in range(self.READS_PER_WAKEUP):
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            except OSError as exc:  # an ICMP error queued on the socket (port unreachable, ...)
                self.failed(exc)
                return
            self.received(data)

    def received(self, data: bytes) -> None:
        if len(data) >= 12:
            qid = (data[0] << 8) | data[1]
            waiting = self.waiting.get(qid)
            if (waiting is not None and not waiting.reply.done()
                    and reply_matches(data, qid, waiting.qname_wire, waiting.qtype, waiting.qclass)):
                waiting.reply.set_result(data)
                return
        self.discarded += 1

    def failed(self, exc: Exception) -> None:
        """An error for this upstream's socket: every query waiting on it fails with exc."""
        for waiting in self.waiting.values():
            if not waiting.reply.done():
                waiting.reply.set_exception(exc)

    def register(self, qname_wire: bytes, qtype: int, qclass: int) -> tuple[int, asyncio.Future[bytes]]:
        """A fresh random ID for a question (none pending here shares it) and the future of its reply."""
        qid = secrets.randbelow(0x10000)
        while qid in self.waiting:
            qid = secrets.randbelow(0x10000)
        waiting = Waiting(qname_wire, qtype, qclass, asyncio.get_running_loop().create_future())
        self.waiting[qid] = waiting
        return qid, waiting.reply

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.send(data)  # OSError (a queued ICMP error, a full buffer): this attempt fails

    def release(self, qid: int) -> None:
        self.waiting.pop(qid, None)
        if not self.waiting:
            self.idle_since = time.monotonic()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.sock is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
        self.failed(ConnectionError("upstream socket closed"))


class UdpPool:
    """The UDP sockets to one upstream: one per query in flight, up to max_sockets, then shared.

    As CoreDNS's proxy Transport (plugin/pkg/proxy/persistent.go, connect.go Transport.Dial): a
    query takes the socket idle the longest (FIFO, "for source port diversity") or opens a new
    one (a new random source port); a socket idle for longer than expire (CoreDNS's
    defaultExpire, 10 s) is closed. CoreDNS opens sockets without limit; svcnet stops at
    max_sockets per upstream (a bound on file descriptors) and then lets up to per_socket
    queries share the least busy socket, each with its own pending ID; beyond that the query
    fails (SERVFAIL), as CoreDNS's max_concurrent refuses.
    """

    def __init__(self, address: str, port: int, *, max_sockets: int = MAX_SOCKETS,
                 per_socket: int = PER_SOCKET, expire: float = SOCKET_EXPIRE) -> None:
        self.address = address
        self.port = port
        self.max_sockets = max_sockets
        self.per_socket = per_socket
        self.expire = expire
        self.sockets: set[UdpSocket] = set()
        self.idle: collections.deque[UdpSocket] = collections.deque()

    async def exchange(self, qname_wire: bytes, qtype: int, qclass: int, build: Callable[[int], bytes],
                       timeout: float) -> bytes:
        """Send build(id) and return the first reply that answers (id, question), or TimeoutError."""
        sock = self.take()
        qid, reply = sock.register(qname_wire, qtype, qclass)
        try:
            sock.send(build(qid))
            return await asyncio.wait_for(reply, timeout)
        finally:
            sock.release(qid)
            if sock.closed:
                self.sockets.discard(sock)
            elif not sock.waiting:
                self.idle.append(sock)

    def take(self) -> UdpSocket:
        """The socket for one more query: the longest idle, a new one, or the least busy one."""
        self.sweep(time.monotonic())
        while self.idle:
            sock = self.idle.popleft()
            if not sock.closed:
                return sock
            self.sockets.discard(sock)
        if len(self.sockets) < self.max_sockets:
            sock = UdpSocket.connect(self.address, self.port)
            self.sockets.add(sock)
            return sock
        shared = min(self.sockets, key=lambda s: len(s.waiting))
        if len(shared.waiting) >= self.per_socket:
            raise Overloaded(f"too many queries in flight to {self.address}:{self.port}")
        return shared

    def sweep(self, now: float) -> None:
        """Close the sockets idle for longer than expire (the longest idle are first in line)."""
        while self.idle and (self.idle[0].closed or now - self.idle[0].idle_since > self.expire):
            sock = self.idle.popleft()
            sock.close()
            self.sockets.discard(sock)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        self.idle.clear()


async def tcp_exchange(qname_wire: bytes, qtype: int, qclass: int, build: Callable[[int], bytes],
                       addr: tuple[str, int], timeout: float) -> bytes:
    """The question over a new TCP connection: the first reply that answers it, within timeout.

    Replies that do not match are skipped, as CoreDNS's proxy lookupDNS drops out-of-order ones.
    """
    qid = secrets.randbelow(0x10000)

    async def run() -> bytes:
        reader, writer = await asyncio.open_connection(addr[0], addr[1])
        try:
            query = build(qid)
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            while True:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await reader.readexactly(length)
                if reply_matches(reply, qid, qname_wire, qtype, qclass):
                    return reply
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
    max_fails: int = MAX_FAILS  # 0: never marked down
    expire: float = SOCKET_EXPIRE
    udp: UdpPool = field(init=False)

    def __post_init__(self) -> None:
        self.udp = UdpPool(self.address, self.port, expire=self.expire)

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def healthy(self) -> bool:
        return self.max_fails == 0 or self.fails < self.max_fails


@dataclass(frozen=True)
class ForwardOptions:
    """The forward plugin's knobs a Corefile sets (defaults: svcnet's flags, which match kubeadm's)."""

    policy: str = "random"  # random | round_robin | sequential
    max_concurrent: int = 0  # 0: unlimited
    max_fails: int = MAX_FAILS
    expire: float = SOCKET_EXPIRE
    from_zone: str = "."  # only names under it are forwarded
    excepted: tuple[str, ...] = ()  # ... and not under these
    loop_check: bool = True  # the loop plugin's probe
    stale_verify: bool = False  # serve_stale verify: ask upstream before serving a stale answer


class Forwarder:
    def __init__(self, upstreams: Iterable[tuple[str, int]], metrics: Metrics | None = None, *,
                 own_addresses: Iterable[tuple[str, int]] = (), cache_max_ttl: int = 30,
                 timeout: float = DEFAULT_TIMEOUT, health_interval: float = HEALTH_INTERVAL,
                 options: ForwardOptions | None = None, cache: ForwardCache | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.timeout = timeout
        self.health_interval = health_interval
        self.options = options or ForwardOptions()
        self.cache = cache if cache is not None else ForwardCache(max_ttl=cache_max_ttl)
        self._next = 0  # round_robin's turn
        self._concurrent = 0
        own = {(str(ipaddress.ip_address(a)), p) for a, p in own_addresses}
        self.upstreams: list[Upstream] = []
        for address, port in upstreams:
            if (address, port) in own or self._is_own_wildcard(address, port, own):
                log.error("upstream %s:%d is this server itself: not forwarding to it (loop)", address, port)
                continue
            self.upstreams.append(Upstream(address, port, max_fails=self.options.max_fails,
                                           expire=self.options.expire))
        self._inflight: dict[bytes, asyncio.Future[tuple[Result, bool]]] = {}
        self._probes: dict[str, Upstream] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshes: set[asyncio.Task[None]] = set()  # serve_stale's background fetches

    @staticmethod
    def _is_own_wildcard(address: str, port: int, own: set[tuple[str, int]]) -> bool:
        ip = ipaddress.ip_address(address)
        for own_address, own_port in own:
            if own_port == port and ipaddress.ip_address(own_address).is_unspecified and ip.is_loopback:
                return True
        return False

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._health_loop(), name="dns-forward-health"))
        if self.options.loop_check:
            self._tasks.append(asyncio.create_task(self._probe_loops(), name="dns-loop-probe"))

    def handles(self, qname: str) -> bool:
        """qname is forwarded by this forward stanza (under FROM, not under an `except` zone)."""
        name = names.normalize(qname)
        return (names.is_subdomain(name, self.options.from_zone)
                and names.match_zone(name, self.options.excepted) is None)

    async def stop(self) -> None:
        self._tasks.extend(self._refreshes)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for upstream in self.upstreams:
            upstream.udp.close()

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
            now = time.monotonic()
            for upstream in self.upstreams:
                upstream.udp.sweep(now)
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
        """Upstreams in the order the policy tries them, healthy ones first (CoreDNS skips down ones
        and, when all are down, tries anyway)."""
        usable = [u for u in self.upstreams if not u.looped]
        policy = self.options.policy
        if policy == "random":
            random.shuffle(usable)
        elif policy == "round_robin" and usable:
            turn = self._next % len(usable)
            self._next += 1
            usable = usable[turn:] + usable[:turn]
        healthy = [u for u in usable if u.healthy]
        return healthy or usable

    async def _exchange_udp(self, upstream: Upstream, qname_wire: bytes, qtype: int, qclass: int,
                            do: bool, timeout: float | None = None, rd: bool = True) -> bytes:
        build = query_builder(qname_wire, qtype, qclass, do, rd)
        return await upstream.udp.exchange(qname_wire, qtype, qclass, build, timeout or self.timeout)

    async def _ask(self, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        """The first validated answer from an upstream; a mismatched reply is no answer (time out, next)."""
        last: Exception | None = None
        for upstream in self._candidates():
            self.metrics.forward_requests[upstream.label] += 1
            try:
                wire = await self._exchange_udp(upstream, qname_wire, qtype, qclass, do)
                if wire[2] & 0x02:  # truncated: ask the same upstream over TCP
                    wire = await tcp_exchange(qname_wire, qtype, qclass, query_builder(qname_wire, qtype, qclass, do),
                                              (upstream.address, upstream.port), self.timeout)
                result, ra = result_from_wire(wire)
            except Overloaded as exc:  # our own load, not the upstream's failure
                last = exc
                continue
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
        key = cache_key(qname_wire, qtype, qclass, do)
        now = time.monotonic()
        cached = self.cache.get(key, now)
        if cached is not None:
            result, ra, negative = cached
            self.metrics.cache_hits["denial" if negative else "success"] += 1
            return result, ra
        self.metrics.cache_misses += 1
        stale = self.cache.get_stale(key, now) if self.cache.serve_stale else None
        if stale is not None and not self.options.stale_verify:
            # serve_stale immediate: the expired answer now, a fresh one fetched behind it.
            if key not in self._inflight:
                task = asyncio.create_task(self._fetch_quietly(key, qname_wire, qtype, qclass, do))
                self._refreshes.add(task)
                task.add_done_callback(self._refreshes.discard)
            return stale[0], stale[1]
        try:
            return await self._fetch(key, qname_wire, qtype, qclass, do)
        except LimitExceeded:
            raise
        except (UpstreamError, TimeoutError):
            if stale is None:
                raise
            return stale[0], stale[1]  # serve_stale verify, or immediate when the refresh failed

    async def _fetch_quietly(self, key: bytes, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> None:
        with contextlib.suppress(UpstreamError, TimeoutError):
            await self._fetch(key, qname_wire, qtype, qclass, do)

    async def _fetch(self, key: bytes, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        """One upstream exchange for the question, shared by identical questions in flight."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.wait_for(asyncio.shield(pending), self.timeout * 2)
        limit = self.options.max_concurrent
        if limit and self._concurrent >= limit:
            raise LimitExceeded(f"concurrent queries exceeded maximum {limit}")
        self._concurrent += 1
        try:
            return await self._exchange_shared(key, qname_wire, qtype, qclass, do)
        finally:
            self._concurrent -= 1

    async def _exchange_shared(self, key: bytes, qname_wire: bytes, qtype: int, qclass: int,
                               do: bool) -> tuple[Result, bool]:
        future: asyncio.Future[tuple[Result, bool]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result, ra = await self._ask(qname_wire, qtype, qclass, do)
            self.cache.put(key, result, ra, time.monotonic(), wire_name(qname_wire))
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


__all__ = ["Forwarder", "ForwardCache", "ForwardOptions", "LimitExceeded", "UpstreamError", "parse_resolv_conf", "parse_upstream", "cache_ttl"]
