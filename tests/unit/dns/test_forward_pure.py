"""The forwarder's pure parts: resolv.conf, upstream specs, cache TTLs, the metrics text."""
from __future__ import annotations

from svcnet.dns.answers import RR, Result
from svcnet.dns.daemon import _listen_address
from svcnet.dns.forward import ForwardCache, cache_ttl, parse_resolv_conf, parse_upstream
from svcnet.dns.metrics import Metrics, render


def test_resolv_conf_nameservers_in_order() -> None:
    text = "# generated\nsearch svc.cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\noptions ndots:5\n"
    assert parse_resolv_conf(text) == ["10.96.0.10", "fe80::1"]


def test_upstream_specs() -> None:
    assert parse_upstream("8.8.8.8") == ("8.8.8.8", 53)
    assert parse_upstream("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_upstream("[fd00::1]:5353") == ("fd00::1", 5353)
    assert parse_upstream("fd00::1") == ("fd00::1", 53)


def test_listen_addresses_split_as_upstreams_do_and_an_empty_host_is_every_address() -> None:
    assert _listen_address("127.0.0.1:5353", 53) == ("127.0.0.1", 5353)
    assert _listen_address("[::1]:53", 53) == ("::1", 53)
    assert _listen_address("::", 53) == ("::", 53)
    assert _listen_address(":9153", 53) == ("0.0.0.0", 9153)


def test_positive_ttl_is_the_minimum_capped() -> None:
    result = Result(answer=(RR("a.", 300, "A", "1.2.3.4"), RR("a.", 20, "A", "1.2.3.5")))
    assert cache_ttl(result, 30) == (20, False)
    assert cache_ttl(Result(answer=(RR("a.", 300, "A", "1.2.3.4"),)), 30) == (30, False)


def test_negative_ttl_comes_from_the_soa() -> None:
    soa = RR("org.", 3600, "SOA", "ns. admin. 1 2 3 4 15")
    assert cache_ttl(Result(rcode=3, authority=(soa,)), 30) == (15, True)
    assert cache_ttl(Result(rcode=2), 30) == (0, False)


def test_cache_ages_ttls_and_expires() -> None:
    cache = ForwardCache(max_ttl=30)
    cache.put(b"k", Result(answer=(RR("a.", 10, "A", "1.2.3.4"),)), True, now=100.0)
    hit = cache.get(b"k", now=104.5)
    assert hit is not None and hit[0].answer[0].ttl == 6 and hit[1] is True
    assert cache.get(b"k", now=111.0) is None


def test_metrics_render_coredns_names() -> None:
    metrics = Metrics("dns://:53")
    metrics.query("udp", "1", 1, 0, "kubernetes", 0.0001)
    text = render([metrics.snapshot(), metrics.snapshot()])
    assert 'coredns_dns_requests_total{server="dns://:53",zone=".",view="",proto="udp",family="1",type="A"} 2' in text
    assert 'coredns_dns_responses_total{server="dns://:53",zone=".",view="",rcode="NOERROR",plugin="kubernetes"} 2' in text
    assert "coredns_dns_request_duration_seconds_bucket" in text and "coredns_cache_hits_total" in text
