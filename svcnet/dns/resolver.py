"""The query handler: one query packet in, the reply to send (and its accounting) out.

CoreDNS's ServeDNS chain for svcnet's Corefile (loop, kubernetes, forward), minus the
sockets, which live in svcnet.dns.server. One query reads top-down:

1. `respond`: the answer table (svcnet.dns.table) answers the packet as it is, or
2. `respond_slow`: svcnet.dns.wire parses it (miekg/dns's rules: FORMERR, NOTIMP,
   or no reply at all; the EDNS size clamped to --bufsize), then `_decide` picks the
   answer as CoreDNS's server and plugins do, in their order: SERVFAIL for an empty
   question, REFUSED for a class other than IN unless a forwarder is configured
   (core/dnsserver/server.go ServeDNS: non-IN classes are blocked unless a plugin of
   EnableChaos, `forward` among them, is loaded), BADVERS for EDNS version > 0,
   SERVFAIL for our own loop probe coming back, the cache plugin's entry (a
   Corefile block with `cache`: for names in the zones, only while the zone data
   is unchanged since it was stored), the zone's answer from svcnet.dns.answers
   (kept in the cache when it takes it, else in the table), or the forwarder for
   names outside the zones and ExternalName targets; svcnet.dns.wire renders the
   bytes.

A name outside the zones with no upstreams configured is REFUSED (SERVFAIL inside a
reverse zone: CoreDNS has no next plugin there). A bug costs one SERVFAIL, never the
server.
"""
from __future__ import annotations

import logging
import random
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Protocol

from svcnet.dns import answers, names, wire
from svcnet.dns.answers import RR, Result, Settings
from svcnet.dns.metrics import RCODE_NAMES, TYPE_NAMES, Metrics
from svcnet.dns.table import AnswerTable, TableEntry, entry_reply, fast_response, make_entry
from svcnet.dns.wire import Drop, Query, Rejected
from svcnet.dns.zone import ZoneData

log = logging.getLogger("svcnet.dns.resolver")
query_log = logging.getLogger("svcnet.dns.query")

ZONE_PLUGIN = "kubernetes"
CLASS_IN = 1  # the plugin label metrics give answers from the cluster zones


class UpstreamError(Exception):
    """No upstream answered."""


class LimitExceeded(UpstreamError):
    """More queries in flight than forward's `max_concurrent` allows: CoreDNS answers REFUSED."""


class Upstreams(Protocol):
    """What the resolver asks of the forwarder (svcnet.dns.forward.Forwarder owns the sockets)."""

    def handles(self, qname: str) -> bool:
        """qname is the forwarder's to forward (forward FROM ... { except ... })."""
        ...

    def is_probe(self, qname: str) -> bool:
        """qname is this server's own loop probe, come back."""
        ...

    async def resolve(self, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        """(Result, RA) for a question outside the zones; UpstreamError or TimeoutError when none answers."""
        ...

    async def lookup(self, name: str, qtype: int) -> tuple[RR, ...] | None:
        """The answer records for an ExternalName's target, None on failure."""
        ...


@dataclass(frozen=True)
class Reply:
    data: bytes | None  # None: send nothing
    rcode: int  # -1 with no reply: not counted
    qtype: int
    plugin: str


NO_REPLY = Reply(None, -1, 0, "")


def parse_or_reply(data: bytes, bufsize: int) -> Query | Reply:
    """A packet the table did not answer: its query, or the reply it gets as it is (NO_REPLY for one
    to drop, the FORMERR/NOTIMP/... wire.parse_query decided for one it refused)."""
    try:
        query = wire.parse_query(data, bufsize)
    except Drop:
        return NO_REPLY
    if isinstance(query, Rejected):
        return Reply(query.response, query.rcode, 0, "")
    return query


def table_reply(hit: tuple[bytes, TableEntry]) -> Reply:
    """The Reply for a table hit (the response and the entry it came from)."""
    return Reply(hit[0], hit[1].rcode, hit[1].qtype, ZONE_PLUGIN)


def cache_key(qname_wire: bytes, qtype: int, qclass: int, do: bool) -> bytes:
    """The cache plugin's key for a question: the name in any letter case, type, class, DO bit."""
    return qname_wire.lower() + struct.pack("!HHB", qtype, qclass, 1 if do else 0)


class Cache(Protocol):
    """The block's cache plugin (svcnet.dns.forward.ForwardCache), shared with its forwarder."""

    def get(self, key: bytes, now: float) -> tuple[Result, bool, bool] | None:
        """(aged result, RA, negative) while fresh; an entry for a cluster name only while the zone
        data is unchanged since it was stored."""
        ...

    def stores(self, name: str, result: Result) -> bool:
        ...

    def put(self, key: bytes, result: Result, ra: bool, now: float, name: str = ".") -> None:
        ...

    def sizes(self) -> dict[str, int]:
        ...


class Hosts(Protocol):
    """The hosts plugin in front of the zone (svcnet.dns.chain.HostsTable)."""

    def answer(self, qname: str, qtype: int) -> Result | None:
        """Its answer, or None to pass the query on."""
        ...


class Resolver:
    """Query packets -> Replies for one view of the zones: the table first, then the zone, then upstreams.

    A Corefile server block adds `hosts` before the zone and `loadbalance` (A/AAAA records in
    forwarded and hosts answers shuffled); several blocks share one `table` (svcnet.dns.chain).
    """

    def __init__(self, settings: Settings, data: ZoneData, forwarder: Upstreams | None = None,
                 metrics: Metrics | None = None, *, log_queries: bool = False,
                 bufsize: int = wire.BUFSIZE_DEFAULT, table: AnswerTable | None = None,
                 hosts: Hosts | None = None, loadbalance: bool = False,
                 unserved_rcode: int = answers.REFUSED, cache: Cache | None = None) -> None:
        self.settings = settings
        self.data = data
        self.forwarder = forwarder
        self.metrics = metrics or Metrics()
        self.table = table if table is not None else AnswerTable(bufsize=bufsize)
        self.log_queries = log_queries
        self.hosts = hosts
        self.loadbalance = loadbalance
        # A name outside the zones that nothing forwards. The flags' server serves only its zones:
        # REFUSED, as CoreDNS for a name no server block has. A Corefile block has the name (its zone
        # matched) and runs out of plugins: SERVFAIL, as CoreDNS's "no next plugin found".
        self.unserved_rcode = unserved_rcode
        # A Corefile's `cache` in front of the zone: answers it keeps (names not `disable`d) are served
        # from it, TTLs counting down, instead of from the answer table.
        self.cache = cache
        self.zone_names = settings.zones + settings.reverse_zones

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
            return table_reply(hit)
        return self.respond_slow(data, tcp)

    def respond_slow(self, data: bytes, tcp: bool) -> Reply | Awaitable[Reply]:
        """respond() for a packet the table did not answer."""
        query = parse_or_reply(data, self.table.bufsize)
        return query if isinstance(query, Reply) else self.answer_query(query, tcp)

    def answer_query(self, query: Query, tcp: bool, *, keep: bool = True) -> Reply | Awaitable[Reply]:
        """The reply to a parsed query; keep=False leaves the zone's answer out of the table (a
        rewritten question: its answer belongs to the name the client did not ask)."""
        try:
            return self._decide(query, tcp, keep)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("answering a query failed")
            return _rcode_reply(query, answers.SERVFAIL)

    def _decide(self, query: Query, tcp: bool, keep: bool = True) -> Reply | Awaitable[Reply]:
        if query.qname_wire is None:  # CoreDNS: a message without a question is SERVFAIL
            return _rcode_reply(query, answers.SERVFAIL)
        if query.qclass != CLASS_IN and self.forwarder is None:
            return _rcode_reply(query, answers.REFUSED)
        if query.edns is not None and query.edns.version != 0:
            return Reply(wire.badvers_response(query), 16, query.qtype, "")
        if self.forwarder is not None and self.forwarder.is_probe(query.qname):
            return _rcode_reply(query, answers.SERVFAIL, "loop")
        if self.hosts is not None:
            found = self.hosts.answer(query.qname, query.qtype)
            if found is not None:
                return self._from_hosts(query, found, tcp)
        cache_key = self._zone_cache_key(query) if keep else None
        if cache_key is not None:
            hit = self._cached(query, cache_key, tcp)
            if hit is not None:
                return hit
        # Built for the question in capitals: see svcnet.dns.table.make_entry for how that lets one
        # rendering echo every spelling the way CoreDNS does.
        qname = query.qname.upper()
        result = answers.answer(self.data, self.settings, qname, query.qtype)
        if result.fallthrough or result.chase is not None:
            if self.forwarder is None or (result.chase is None and not self.forwarder.handles(query.qname)):
                return self._unforwarded(query, qname, result, tcp)
            return self._forwarded(query, qname, result, tcp)
        if result.rcode == answers.REFUSED:
            return _rcode_reply(query, answers.REFUSED)
        if cache_key is not None and self._cache_stores(query, cache_key, result):
            return self._rendered(query, result, tcp)
        return self._from_zone(query, result, tcp, keep)

    # ---------------------------------------------------------------- cache
    def _zone_cache_key(self, query: Query) -> bytes | None:
        """The cache key of a question in the kubernetes zones, when the block has a cache."""
        if self.cache is None or query.qname_wire is None or names.match_zone(
                names.normalize(query.qname), self.zone_names) is None:
            return None
        return cache_key(query.qname_wire, query.qtype, query.qclass, bool(query.edns and query.edns.do))

    def _cached(self, query: Query, key: bytes, tcp: bool) -> Reply | None:
        """The cache's answer (the zone's, or a forwarded one for a name the zone passed on)."""
        assert self.cache is not None
        hit = self.cache.get(key, time.monotonic())
        if hit is None:
            return None
        result, ra, negative = hit
        self.metrics.cache_hits["denial" if negative else "success"] += 1
        if result.zone:  # the kubernetes plugin's answer; else a forwarded one
            return replace(self._rendered(query, result, tcp), plugin="cache")
        return Reply(wire.reply_for(query, result, tcp, ra=ra), result.rcode, query.qtype, "cache")

    def _cache_stores(self, query: Query, key: bytes, result: Result) -> bool:
        """Keep the zone's result in the cache if the cache takes it (True); else the table does."""
        assert self.cache is not None
        name = names.normalize(query.qname)
        if not self.cache.stores(name, result):
            return False
        self.metrics.cache_misses += 1
        self.cache.put(key, result, False, time.monotonic(), name)
        self.metrics.cache_size = self.cache.sizes()
        return True

    def _from_zone(self, query: Query, result: Result, tcp: bool, keep: bool = True) -> Reply:
        """The zone's answer: kept in the table, and served from it as the next query will be."""
        if not keep:
            return self._rendered(query, result, tcp)
        entry = self.table.store(query, result)
        self.metrics.table_entries = len(self.table)
        return Reply(entry_reply(entry, query, tcp), result.rcode, query.qtype, ZONE_PLUGIN)

    def _from_hosts(self, query: Query, result: Result, tcp: bool) -> Reply:
        if result.rcode == answers.SERVFAIL:  # hosts: a name it does not have and no fallthrough
            return _rcode_reply(query, answers.SERVFAIL, "hosts")
        if self.loadbalance:
            result = shuffled(result)
        return Reply(wire.reply_for(query, result, tcp), result.rcode, query.qtype, "hosts")

    def _rendered(self, query: Query, done: Result, tcp: bool) -> Reply:
        """A zone answer rendered as the table would, but not kept there: an ExternalName answer completed
        upstream, an answer to a rewritten question, one the cache keeps."""
        assert query.qname_wire is not None
        entry = make_entry(done, query.qname_wire.upper(), query.qtype, query.qclass)
        return Reply(entry_reply(entry, query, tcp), done.rcode, query.qtype, ZONE_PLUGIN)

    def _unforwarded(self, query: Query, qname: str, result: Result, tcp: bool) -> Reply:
        """No upstreams configured: an ExternalName cannot be chased, other names are not ours."""
        if result.chase is not None:
            return self._rendered(query, answers.complete_chase(result, None, self.settings, self.data.serial, qname),
                                tcp)
        # Inside a zone (a reverse name): CoreDNS has no next plugin -> SERVFAIL; outside: see unserved_rcode.
        return _rcode_reply(query, answers.SERVFAIL if result.zone else self.unserved_rcode)

    async def _forwarded(self, query: Query, qname: str, result: Result, tcp: bool) -> Reply:
        assert query.qname_wire is not None and self.forwarder is not None
        if result.chase is not None:
            upstream = await self.forwarder.lookup(result.chase.target, result.chase.qtype)
            return self._rendered(query, answers.complete_chase(result, upstream, self.settings, self.data.serial,
                                                              qname), tcp)
        do = bool(query.edns and query.edns.do)
        try:
            upstream_result, ra = await self.forwarder.resolve(query.qname_wire, query.qtype, query.qclass, do)
        except LimitExceeded:
            return _rcode_reply(query, answers.REFUSED, "forward")
        except (UpstreamError, TimeoutError):
            return _rcode_reply(query, answers.SERVFAIL, "forward")
        if self.loadbalance:
            upstream_result = shuffled(upstream_result)
        return Reply(wire.reply_for(query, upstream_result, tcp, ra=ra), upstream_result.rcode, query.qtype,
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


def shuffled(result: Result) -> Result:
    """The loadbalance plugin: the answer's address records in random order (CoreDNS rotates the
    A, AAAA and MX records among themselves and leaves the others where they are)."""
    answer = list(result.answer)
    spots = [i for i, rr in enumerate(answer) if rr.type in ("A", "AAAA", "MX")]
    if len(spots) < 2:
        return result
    moved = [answer[i] for i in spots]
    random.shuffle(moved)
    for i, rr in zip(spots, moved, strict=True):
        answer[i] = rr
    return replace(result, answer=tuple(answer))


def _rcode_reply(query: Query, rcode: int, plugin: str = "") -> Reply:
    """The question echoed with rcode and no records (CoreDNS's SetRcode)."""
    return Reply(wire.simple_reply(query, rcode), rcode, query.qtype, plugin)
