"""A Corefile's server blocks as query handlers: the plugin chain per block, and routing between blocks.

No sockets and no files here: svcnet.dns.plugins turns the Corefile into a
CorefileConfig, the daemon reads the files it names, and this module builds,
per listening port, a `Router` that the DNS server (svcnet.dns.server) uses
exactly as it uses a single Resolver.

- `Router.route` picks the server block for a query as CoreDNS's server does:
  the block whose zone is the longest match of the question name (stub domains
  `example.com:53 { forward . 10.0.0.10 }` beat `.:53`); no matching zone: REFUSED.
- Within a block the chain runs in plugin.cfg order, whatever order the Corefile
  lists the plugins in: rewrite (`Block.handle`), then hosts, kubernetes, loop
  and forward (svcnet.dns.resolver.Resolver with a HostsTable, the block's
  Settings and a Forwarder carrying forward's and cache's options), with
  loadbalance shuffling forwarded and hosts answers.
- All blocks of a port share one AnswerTable (the fast path). That is safe
  because a name always routes to the same block and each block answers it
  the same way every time: only the kubernetes plugin's answers are stored,
  never hosts answers and never answers to rewritten questions.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import dns.flags
import dns.message
import dns.name
import dns.rrset

from svcnet.dns import answers, names, wire
from svcnet.dns.answers import RR, Result, Settings
from svcnet.dns.forward import ForwardCache, Forwarder, ForwardOptions
from svcnet.dns.metrics import Metrics
from svcnet.dns.plugins import CacheConfig, HostsConfig, RewriteRule, ServerConfig, parse_hosts, rewrite_name
from svcnet.dns.resolver import Reply, Resolver, parse_or_reply, table_reply
from svcnet.dns.table import AnswerTable, fast_response
from svcnet.dns.wire import Query
from svcnet.dns.zone import ZoneData

A, PTR, AAAA = 1, 12, 28


# -------------------------------------------------------------------- hosts

class HostsTable:
    """The hosts plugin: a hosts file's entries and the Corefile's inline ones (plugin/hosts)."""

    def __init__(self, config: HostsConfig, file_text: str) -> None:
        self.config = config
        self.v4: dict[str, list[str]] = {}
        self.v6: dict[str, list[str]] = {}
        self.by_address: dict[str, list[str]] = {}
        for address, hostnames in [*parse_hosts(file_text), *config.inline]:
            family = self.v4 if ipaddress.ip_address(address).version == 4 else self.v6
            for hostname in hostnames:
                if address not in family.setdefault(hostname, []):
                    family[hostname].append(address)
                if config.reverse and hostname not in self.by_address.setdefault(address, []):
                    self.by_address[address].append(hostname)

    def answer(self, qname: str, qtype: int) -> Result | None:
        """Its answer; None passes the query on. A name it lacks, without fallthrough, is SERVFAIL
        (hosts.go: there is no SOA to make an NXDOMAIN with)."""
        name = names.normalize(qname)
        ttl = self.config.ttl
        if names.match_zone(name, self.config.zones) is None and qtype != PTR:
            return None
        records: list[RR] = []
        if qtype == PTR:
            address = names.address_from_reverse(name)
            hostnames = self.by_address.get(address, []) if address else []
            if not hostnames:
                return None  # hosts.go: an unknown address always goes on, fallthrough or not
            records = [RR(name, ttl, "PTR", h) for h in hostnames]
        elif qtype in (A, AAAA):
            family = self.v4 if qtype == A else self.v6
            records = [RR(name, ttl, "A" if qtype == A else "AAAA", ip) for ip in family.get(name, ())]
        if not records and name not in self.v4 and name not in self.v6:
            if self.config.fallthrough is not None and names.match_zone(name, self.config.fallthrough):
                return None
            return Result(rcode=answers.SERVFAIL, authoritative=False)
        return Result(answer=tuple(records))


# ------------------------------------------------------------------ rewrite

def rewritten_question(rules: tuple[RewriteRule, ...], qname: str) -> tuple[str, tuple[RewriteRule, ...]] | None:
    """(new name, the rules that applied) or None; `stop` rules end the walk (plugin/rewrite)."""
    name = names.normalize(qname)
    applied: list[RewriteRule] = []
    for rule in rules:
        new = rewrite_name(rule, name)
        if new is None:
            continue
        name = new
        applied.append(rule)
        if rule.stop:
            break
    return (name, tuple(applied)) if applied else None


def restore_reply(data: bytes, original: Query, applied: tuple[RewriteRule, ...], tcp: bool) -> bytes:
    """The reply to a rewritten question, put back to the question the client asked (always, as
    CoreDNS's ResponseReverter) with answer owners rewritten back where a rule says `answer`."""
    message = dns.message.from_wire(data, ignore_trailing=True)
    assert original.qname_wire is not None
    question = dns.name.from_wire(original.qname_wire, 0)[0]
    message.question = [dns.rrset.RRset(question, original.qclass, original.qtype)]
    reverse = [rule.answer for rule in reversed(applied) if rule.answer is not None]
    if reverse:
        restored = []
        for rrset in message.answer:
            owner = rrset.name.to_text().lower()
            for rule in reverse:
                owner = rewrite_name(rule, owner) or owner
            new = dns.rrset.RRset(dns.name.from_text(owner), rrset.rdclass, rrset.rdtype)
            new.update(rrset)
            new.ttl = rrset.ttl
            restored.append(new)
        message.answer = restored
    out = message.to_wire()
    if len(out) > wire.size_limit(original.edns, tcp):  # the original name is longer: records no longer fit
        message.flags |= dns.flags.TC
        message.answer, message.authority, message.additional = [], [], []
        out = message.to_wire()
    return out


# -------------------------------------------------------------------- blocks

@dataclass
class Block:
    """One server block: its zones, the rewrite rules in front, and the Resolver for the rest."""

    config: ServerConfig
    resolver: Resolver
    forwarder: Forwarder | None

    def reload_hosts(self, changed: set[str], read: Callable[[str], str]) -> bool:
        """A new HostsTable when this block's hosts file is among changed; True when it was."""
        hosts = self.config.hosts
        if hosts is None or hosts.path not in changed:
            return False
        self.resolver.hosts = HostsTable(hosts, read(hosts.path))
        return True

    def handle(self, query: Query, tcp: bool) -> Reply | Awaitable[Reply]:
        rewrite = rewritten_question(self.config.rewrites, query.qname) if query.qname_wire else None
        if rewrite is None:
            return self.resolver.answer_query(query, tcp)
        new_name, applied = rewrite
        asked = replace(query, qname=new_name, qname_wire=names.to_wire(new_name))
        reply = self.resolver.answer_query(asked, tcp, keep=False)
        if isinstance(reply, Reply):
            return _restored(reply, query, applied, tcp)
        return _restored_later(reply, query, applied, tcp)


def _restored(reply: Reply, query: Query, applied: tuple[RewriteRule, ...], tcp: bool) -> Reply:
    if reply.data is None:
        return reply
    return replace(reply, data=restore_reply(reply.data, query, applied, tcp))


async def _restored_later(pending: Awaitable[Reply], query: Query, applied: tuple[RewriteRule, ...],
                          tcp: bool) -> Reply:
    return _restored(await pending, query, applied, tcp)


def block_settings(config: ServerConfig, local_ips: tuple[str, ...]) -> Settings:
    """The kubernetes plugin's Settings; a block without it answers no zone (everything goes on)."""
    k = config.kubernetes
    if k is None:
        return Settings(zones=(), reverse_zones=(), fallthrough=(), local_ips=local_ips)
    return Settings(zones=k.zones, reverse_zones=k.reverse_zones, ttl=k.ttl, pods=k.pods, local_ips=local_ips,
                    fallthrough=k.fallthrough or (), endpoint_pod_names=k.endpoint_pod_names,
                    ignore_empty_service=k.ignore_empty_service)


def block_cache(config: CacheConfig | None, data: ZoneData | None = None,
                guarded: tuple[str, ...] = ()) -> ForwardCache:
    """The block's cache plugin, in front of its kubernetes and forward answers. Entries for names in
    guarded (the kubernetes plugin's zones) are served only while data has not changed since."""
    if config is None:
        return ForwardCache(capacity=0)  # no cache plugin: every question goes upstream
    generation = (lambda: data.generation) if data is not None else None
    return ForwardCache(max_ttl=config.success_ttl, capacity=config.success_capacity, min_ttl=config.success_min_ttl,
                 denial_max_ttl=config.denial_ttl, denial_capacity=config.denial_capacity,
                 denial_min_ttl=config.denial_min_ttl, serve_stale=config.serve_stale, zones=config.zones,
                 skip_success=config.disable_success, skip_denial=config.disable_denial, guarded=guarded,
                 generation=generation)


def block_forwarder(config: ServerConfig, metrics: Metrics, own: tuple[str, int],
                    cache: ForwardCache | None = None) -> Forwarder | None:
    f = config.forward
    if f is None:
        return None
    options = ForwardOptions(policy=f.policy, max_concurrent=f.max_concurrent, max_fails=f.max_fails,
                             expire=f.expire, from_zone=f.from_zone, excepted=f.excepted, loop_check=config.loop,
                             stale_verify=config.cache.stale_verify if config.cache else False)
    # health_check 0 turns checks off in CoreDNS; an interval of a day is the same without a special case.
    interval = f.health_check if f.health_check > 0 else 86400.0
    return Forwarder(f.to, metrics, own_addresses=[own], health_interval=interval, options=options,
                     cache=cache if cache is not None else block_cache(config.cache))


# -------------------------------------------------------------------- router

class Router:
    """Every server block on one port; used by svcnet.dns.server as a Resolver is."""

    def __init__(self, blocks: list[Block], table: AnswerTable, metrics: Metrics, data: ZoneData) -> None:
        self.blocks = blocks
        self.table = table
        self.metrics = metrics
        self.data = data
        self.log_queries = any(b.config.log for b in blocks)
        self.by_zone = {zone: block for block in blocks for zone in block.config.zones}

    def route(self, qname: str) -> Block | None:
        zone = names.match_zone(names.normalize(qname) if qname else ".", tuple(self.by_zone))
        return None if zone is None else self.by_zone[zone]

    def zone_changed(self, tags: set[str] | None = None) -> None:
        self.blocks[0].resolver.zone_changed(tags)

    def respond(self, data: bytes, tcp: bool) -> Reply | Awaitable[Reply]:
        hit = fast_response(self.table, data, tcp)
        if hit is not None:
            return table_reply(hit)
        return self.respond_slow(data, tcp)

    def respond_slow(self, data: bytes, tcp: bool) -> Reply | Awaitable[Reply]:
        query = parse_or_reply(data, self.table.bufsize)
        if isinstance(query, Reply):
            return query
        block = self.route(query.qname)
        if block is None:  # core/dnsserver: no server block for the name
            return Reply(wire.simple_reply(query, answers.REFUSED), answers.REFUSED, query.qtype, "")
        return block.handle(query, tcp)

    def account(self, reply: Reply, proto: str, family: str, started: float, peer: object, size: int) -> None:
        self.blocks[0].resolver.account(reply, proto, family, started, peer, size)

    async def start(self) -> None:
        for block in self.blocks:
            if block.forwarder is not None:
                await block.forwarder.start()

    async def stop(self) -> None:
        for block in self.blocks:
            if block.forwarder is not None:
                await block.forwarder.stop()


def build_router(servers: list[ServerConfig], data: ZoneData, metrics: Metrics, *, local_ips: tuple[str, ...],
                 own: tuple[str, int], hosts_text: Callable[[str], str]) -> Router:
    """The Router for the server blocks of one port. hosts_text(path) is a hosts file's text ("" if
    it cannot be read: CoreDNS then only warns)."""
    bufsize = next((s.bufsize for s in servers if s.bufsize), wire.BUFSIZE_DEFAULT)
    table = AnswerTable(bufsize=bufsize)
    log_queries = any(s.log for s in servers)  # one query log per port: the server answers, not the block
    blocks = []
    for config in servers:
        settings = block_settings(config, local_ips)
        cache = block_cache(config.cache, data, settings.zones + settings.reverse_zones)
        forwarder = block_forwarder(config, metrics, own, cache)
        hosts = HostsTable(config.hosts, hosts_text(config.hosts.path)) if config.hosts else None
        resolver = Resolver(settings, data, forwarder, metrics, log_queries=log_queries, table=table, hosts=hosts,
                            loadbalance=config.loadbalance, unserved_rcode=answers.SERVFAIL,
                            cache=cache if config.cache is not None and settings.zones else None)
        blocks.append(Block(config, resolver, forwarder))
    return Router(blocks, table, metrics, data)
