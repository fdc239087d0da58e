"""The chain a Corefile builds, without sockets: routing between server blocks, hosts, rewrite, the
forwarder's policy, max_concurrent, except and cache options, loadbalance."""
from __future__ import annotations

import asyncio
import random
import time

import dns.flags
import dns.message
import pytest

from svcnet.dns.answers import RR, Result
from svcnet.dns.chain import Router, build_router
from svcnet.dns.forward import ForwardCache, Forwarder, ForwardOptions, wire_name
from svcnet.dns.metrics import Metrics
from svcnet.dns.plugins import load
from svcnet.dns.resolver import LimitExceeded, Reply, shuffled
from svcnet.dns.zone import ZoneData, zone_from_objects
from tests.unit.dns.helpers import cluster_objects

KUBE = """    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
"""


class Recorder:
    """Stands in for a block's upstreams: answers every name with its own address, and remembers."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(self, qname_wire: bytes, qtype: int, qclass: int, do: bool) -> tuple[Result, bool]:
        name = dns.name.from_wire(qname_wire, 0)[0].to_text()
        self.asked.append(name)
        return Result(answer=(RR(name, 30, "A", self.address),), authoritative=False), True


@pytest.fixture(scope="module")
def data() -> ZoneData:
    return zone_from_objects(cluster_objects(), serial=1_700_000_000)


def router(text: str, data: ZoneData, hosts_file: str = "") -> tuple[Router, dict[str, Recorder]]:
    """The Router for a Corefile whose forwarders are Recorders named after each block's first zone."""
    config = load(text, read_file=lambda _: "nameserver 192.0.2.53\n")
    built = build_router(list(config.servers), data, Metrics(), local_ips=("10.244.0.5",), own=("127.0.0.1", 53),
                         hosts_text=lambda _: hosts_file)
    recorders = {}
    for block in built.blocks:
        if block.forwarder is not None:
            recorder = Recorder(f"192.0.2.{len(recorders) + 1}")
            block.forwarder.resolve = recorder.resolve  # type: ignore[method-assign]
            recorders[block.config.zones[0]] = recorder
    return built, recorders


def ask(r: Router, name: str, qtype: str = "A") -> dns.message.Message:
    reply = r.respond(dns.message.make_query(name, qtype).to_wire(), False)
    if not isinstance(reply, Reply):
        reply = asyncio.run(reply)  # type: ignore[arg-type]
    assert reply.data is not None
    return dns.message.from_wire(reply.data)


def answers_of(message: dns.message.Message) -> list[str]:
    return [line for rrset in message.answer for line in rrset.to_text().splitlines()]


# ------------------------------------------------------------------ routing

def test_queries_go_to_the_most_specific_zones_block(data: ZoneData) -> None:
    r, up = router(".:53 {\n" + KUBE + "    forward . 10.0.0.1\n}\n"
                   "example.com:53 {\n    forward . 10.0.0.10\n}\n"
                   "dev.example.com:53 {\n    forward . 10.0.0.20\n}\n", data)
    assert answers_of(ask(r, "www.example.com.")) == ["www.example.com. 30 IN A 192.0.2.2"]
    assert answers_of(ask(r, "api.dev.example.com.")) == ["api.dev.example.com. 30 IN A 192.0.2.3"]
    assert answers_of(ask(r, "example.org.")) == ["example.org. 30 IN A 192.0.2.1"]
    assert up["example.com."].asked == ["www.example.com."] and up["."].asked == ["example.org."]
    # The stub block has no kubernetes plugin, the root block answers the cluster zone.
    assert answers_of(ask(r, "kubernetes.default.svc.cluster.local.")) == [
        "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]


def test_a_name_no_block_serves_is_refused(data: ZoneData) -> None:
    r, _ = router("example.com:53 {\n    forward . 10.0.0.10\n}\n", data)
    assert ask(r, "example.org.").rcode() == dns.rcode.REFUSED
    assert ask(r, "a.example.com.").rcode() == dns.rcode.NOERROR


def test_forward_from_and_except_leave_other_names_to_no_one(data: ZoneData) -> None:
    """A name the block has but no plugin answers: SERVFAIL (CoreDNS: no next plugin found)."""
    r, up = router(".:53 {\n    forward example.com 10.0.0.10 {\n       except internal.example.com\n    }\n}\n",
                   data)
    assert ask(r, "www.example.com.").rcode() == dns.rcode.NOERROR
    assert ask(r, "db.internal.example.com.").rcode() == dns.rcode.SERVFAIL
    assert ask(r, "example.org.").rcode() == dns.rcode.SERVFAIL
    assert up["."].asked == ["www.example.com."]


# -------------------------------------------------------------------- hosts

HOSTS = ".:53 {\n    hosts {\n       10.1.2.3 printer.lan\n       fd00::3 printer.lan\n       %s\n    }\n" + KUBE + \
        "    forward . 10.0.0.1\n}\n"


def test_hosts_answers_inline_entries_and_the_file_and_ptr(data: ZoneData) -> None:
    r, _ = router(HOSTS % "fallthrough", data, hosts_file="# the machine's\n192.168.1.7 nas.home nas\n")
    got = ask(r, "printer.lan.")
    assert answers_of(got) == ["printer.lan. 3600 IN A 10.1.2.3"] and got.flags & dns.flags.AA
    assert answers_of(ask(r, "printer.lan.", "AAAA")) == ["printer.lan. 3600 IN AAAA fd00::3"]
    assert answers_of(ask(r, "nas.home.")) == ["nas.home. 3600 IN A 192.168.1.7"]
    assert answers_of(ask(r, "3.2.1.10.in-addr.arpa.", "PTR")) == ["3.2.1.10.in-addr.arpa. 3600 IN PTR printer.lan."]
    mx = ask(r, "printer.lan.", "MX")
    assert mx.rcode() == dns.rcode.NOERROR and not mx.answer  # the name exists: NODATA, no fallthrough


def test_hosts_falls_through_to_the_cluster_and_upstreams(data: ZoneData) -> None:
    r, up = router(HOSTS % "fallthrough", data)
    assert answers_of(ask(r, "kubernetes.default.svc.cluster.local.")) == [
        "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]
    assert answers_of(ask(r, "example.org.")) == ["example.org. 30 IN A 192.0.2.1"]
    assert up["."].asked == ["example.org."]


def test_hosts_without_fallthrough_is_servfail_for_names_it_lacks(data: ZoneData) -> None:
    """hosts.go: no SOA to build an NXDOMAIN with, so SERVFAIL; the cluster zone is never reached."""
    r, up = router(HOSTS % "ttl 60", data)
    assert answers_of(ask(r, "printer.lan.")) == ["printer.lan. 60 IN A 10.1.2.3"]
    assert ask(r, "example.org.").rcode() == dns.rcode.SERVFAIL
    assert ask(r, "kubernetes.default.svc.cluster.local.").rcode() == dns.rcode.SERVFAIL
    assert up["."].asked == []


# ------------------------------------------------------------------ rewrite

def test_rewrite_name_answers_the_new_name_under_the_question_asked(data: ZoneData) -> None:
    r, _ = router(".:53 {\n    rewrite name api.corp.example kubernetes.default.svc.cluster.local\n" + KUBE + "}\n",
                  data)
    got = ask(r, "api.corp.example.")
    assert got.question[0].name.to_text() == "api.corp.example."
    # No `answer` rule: the records keep the rewritten owner, as CoreDNS sends them.
    assert answers_of(got) == ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]
    again = ask(r, "api.corp.example.")  # never kept in the table under either name
    assert answers_of(again) == answers_of(got)


def test_rewrite_answer_auto_puts_the_owner_back(data: ZoneData) -> None:
    r, _ = router(".:53 {\n    rewrite name suffix .corp. .default.svc.cluster.local. answer auto\n" + KUBE + "}\n",
                  data)
    got = ask(r, "kubernetes.corp.")
    assert got.question[0].name.to_text() == "kubernetes.corp."
    assert answers_of(got) == ["kubernetes.corp. 5 IN A 10.96.0.1"]


def test_rewrite_applies_to_forwarded_names_too(data: ZoneData) -> None:
    r, up = router(".:53 {\n    rewrite name regex (.*)\\.old\\.example {1}.new.example answer name "
                   "(.*)\\.new\\.example {1}.old.example\n    forward . 10.0.0.1\n}\n", data)
    assert answers_of(ask(r, "www.old.example.")) == ["www.old.example. 30 IN A 192.0.2.1"]
    assert up["."].asked == ["www.new.example."]


# ---------------------------------------------------------------- forwarder

def forwarder(policy: str) -> Forwarder:
    return Forwarder([("10.0.0.1", 53), ("10.0.0.2", 53), ("10.0.0.3", 53)], options=ForwardOptions(policy=policy))


def test_policy_sequential_tries_in_order_round_robin_rotates() -> None:
    seq = forwarder("sequential")
    assert [u.address for u in seq._candidates()] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    rr = forwarder("round_robin")
    firsts = [rr._candidates()[0].address for _ in range(4)]
    assert firsts == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
    seq.upstreams[0].fails = 5  # down: tried last
    assert [u.address for u in seq._candidates()] == ["10.0.0.2", "10.0.0.3"]


def test_policy_random_tries_every_upstream_in_some_order() -> None:
    random.seed(7)
    orders = {tuple(u.address for u in forwarder("random")._candidates()) for _ in range(30)}
    assert len(orders) > 1 and all(sorted(order) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] for order in orders)


def test_max_concurrent_refuses_queries_over_the_limit() -> None:
    async def scenario() -> tuple[list, int]:
        fwd = Forwarder([("10.0.0.1", 53)], options=ForwardOptions(max_concurrent=2), cache=ForwardCache(capacity=0))
        release = asyncio.Event()

        async def slow(*_: object) -> tuple[Result, bool]:
            await release.wait()
            return Result(), True
        fwd._ask = slow  # type: ignore[method-assign]
        tasks = [asyncio.create_task(fwd.resolve(bytes([1, 97 + i, 0]), 1, 1, False)) for i in range(3)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results, fwd._concurrent
    results, left = asyncio.run(scenario())
    assert [type(r) for r in results].count(LimitExceeded) == 1 and left == 0


def test_cache_bounds_success_and_denial_ttls_and_capacities() -> None:
    cache = ForwardCache(max_ttl=100, min_ttl=10, capacity=2, denial_max_ttl=20, denial_capacity=1)
    cache.put(b"short", Result(answer=(RR("a.", 1, "A", "1.2.3.4"),)), True, now=0.0)
    cache.put(b"long", Result(answer=(RR("b.", 900, "A", "1.2.3.4"),)), True, now=0.0)
    soa = RR("x.", 300, "SOA", "ns. host. 1 2 3 4 300")
    cache.put(b"nx", Result(rcode=3, authority=(soa,)), True, now=0.0)
    assert cache.entries[b"short"].ttl == 10 and cache.entries[b"long"].ttl == 100 and cache.entries[b"nx"].ttl == 20
    cache.put(b"nx2", Result(rcode=3, authority=(soa,)), True, now=1.0)  # denial full: the older one goes
    cache.put(b"third", Result(answer=(RR("c.", 50, "A", "1.2.3.4"),)), True, now=1.0)
    assert set(cache.entries) == {b"long", b"nx2", b"third"}
    assert cache.sizes() == {"success": 2, "denial": 1}
    assert ForwardCache(capacity=0).put(b"k", Result(answer=(RR("a.", 9, "A", "1.2.3.4"),)), True, 0.0) is None


def test_cache_zones_and_disable_leave_names_out() -> None:
    cache = ForwardCache(zones=("example.",), skip_success=("nocache.example.",), skip_denial=("example.",))
    answer = Result(answer=(RR("a.", 10, "A", "1.2.3.4"),))
    denial = Result(rcode=3, authority=(RR("x.", 300, "SOA", "ns. host. 1 2 3 4 300"),))
    cache.put(b"in", answer, True, 0.0, "a.example.")
    cache.put(b"out", answer, True, 0.0, "a.other.")
    cache.put(b"off", answer, True, 0.0, "a.nocache.example.")
    cache.put(b"nx", denial, True, 0.0, "b.example.")
    assert set(cache.entries) == {b"in"}


def test_forwarded_names_are_cached_under_their_name() -> None:
    assert wire_name(b"\x03www\x07Example\x00") == "www.example."
    assert wire_name(b"\x00") == "."


def test_serve_stale_keeps_an_expired_answer_for_its_duration() -> None:
    cache = ForwardCache(max_ttl=30, serve_stale=60)
    cache.put(b"k", Result(answer=(RR("a.", 10, "A", "1.2.3.4"),)), True, now=0.0)
    assert cache.get(b"k", now=15.0) is None
    stale = cache.get_stale(b"k", now=15.0)
    assert stale is not None and stale[0].answer[0].ttl == 0
    assert cache.get_stale(b"k", now=71.0) is None


def test_serve_stale_answers_when_the_upstream_fails() -> None:
    async def scenario() -> Result:
        fwd = Forwarder([("10.0.0.1", 53)], options=ForwardOptions(stale_verify=True),
                        cache=ForwardCache(max_ttl=30, serve_stale=3600))
        fwd.cache.put(b"\x01a\x00" + bytes([0, 1, 0, 1, 0]), Result(answer=(RR("a.", 1, "A", "1.2.3.4"),)), True,
                      now=time.monotonic() - 5)  # expired 4 s ago

        async def down(*_: object) -> tuple[Result, bool]:
            raise TimeoutError
        fwd._ask = down  # type: ignore[method-assign]
        result, _ = await fwd.resolve(b"\x01a\x00", 1, 1, False)
        return result
    assert asyncio.run(scenario()).answer == (RR("a.", 0, "A", "1.2.3.4"),)


def test_loadbalance_shuffles_address_records_only() -> None:
    random.seed(3)
    result = Result(answer=(RR("x.", 5, "CNAME", "y."),) + tuple(RR("y.", 5, "A", f"10.0.0.{i}") for i in range(8)))
    orders = {shuffled(result).answer for _ in range(20)}
    assert len(orders) > 1
    assert all(order[0].type == "CNAME" and sorted(order[1:], key=str) == sorted(result.answer[1:], key=str)
               for order in orders)
