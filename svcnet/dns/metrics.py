"""CoreDNS-compatible Prometheus metrics, kept as plain counters on the hot path.

prometheus_client would cost a lock and a bucket search per query, and worker
processes would need its multiprocess mode; instead each worker counts in plain
dicts, hands a JSON snapshot to the parent about once a second, and the parent
sums the snapshots and renders the text exposition format. Names and labels
follow CoreDNS (metrics, cache, forward and kubernetes plugins).

The UDP hot path does not call query() per packet: it counts a batch's table
hits in one local dict keyed by TableEntry.stat ((qtype << 8) | rcode) and hands
that to count_hits() once per batch, where every query of the batch is observed with
the batch's duration (they were received together and answered together).
"""
from __future__ import annotations

import bisect
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# CoreDNS's request duration buckets: prometheus.ExponentialBuckets(0.00025, 2, 16).
DURATION_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
# coredns_kubernetes_dns_programming_duration_seconds buckets (CoreDNS: 0.001 .. ~1000 s).
PROGRAMMING_BUCKETS = tuple(0.001 * 2 ** i for i in range(20))
TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
              33: "SRV", 35: "NAPTR", 43: "DS", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 252: "AXFR",
              251: "IXFR", 255: "ANY", 13: "HINFO"}
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               16: "BADVERS"}


def type_name(qtype: int) -> str:
    return TYPE_NAMES.get(qtype, "other")


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        """count observations of value."""
        self.counts[bisect.bisect_left(self.buckets, value)] += count
        self.total += value * count


class Metrics:
    """One process's counters. Keys are label tuples; snapshot() makes them JSON."""

    def __init__(self, server: str = "dns://:53") -> None:
        self.server = server
        self.requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)  # proto, family, type
        self.responses: defaultdict[tuple[str, str], int] = defaultdict(int)  # rcode, plugin
        self.durations: dict[str, Histogram] = {}  # by type
        self.cache_hits: defaultdict[str, int] = defaultdict(int)  # success / denial
        self.cache_misses = 0
        self.cache_size: dict[str, int] = {"success": 0, "denial": 0}
        self.forward_requests: defaultdict[str, int] = defaultdict(int)
        self.forward_responses: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.forward_healthcheck_failures: defaultdict[str, int] = defaultdict(int)
        self.programming = Histogram(PROGRAMMING_BUCKETS)
        self.ready = False
        self.table_entries = 0

    def query(self, proto: str, family: str, qtype: int, rcode: int, plugin: str, seconds: float) -> None:
        name = TYPE_NAMES.get(qtype, "other")
        self.requests[(proto, family, name)] += 1
        self.responses[(RCODE_NAMES.get(rcode, str(rcode)), plugin)] += 1
        hist = self.durations.get(name)
        if hist is None:
            hist = self.durations[name] = Histogram(DURATION_BUCKETS)
        hist.observe(seconds)

    def count_hits(self, proto: str, family: str, stats: dict[int, int], seconds: float) -> None:
        """Table hits of one batch: stats maps (qtype << 8) | rcode to a count; each took seconds."""
        for stat, count in stats.items():
            name = TYPE_NAMES.get(stat >> 8, "other")
            self.requests[(proto, family, name)] += count
            rcode = stat & 0xFF
            self.responses[(RCODE_NAMES.get(rcode, str(rcode)), "kubernetes")] += count
            hist = self.durations.get(name)
            if hist is None:
                hist = self.durations[name] = Histogram(DURATION_BUCKETS)
            hist.observe(seconds, count)

    def snapshot(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "ready": self.ready,
            "requests": [[*k, v] for k, v in self.requests.items()],
            "responses": [[*k, v] for k, v in self.responses.items()],
            "durations": {k: [h.counts, h.total] for k, h in self.durations.items()},
            "cache_hits": dict(self.cache_hits),
            "cache_misses": self.cache_misses,
            "cache_size": dict(self.cache_size),
            "forward_requests": dict(self.forward_requests),
            "forward_responses": [[*k, v] for k, v in self.forward_responses.items()],
            "forward_healthcheck_failures": dict(self.forward_healthcheck_failures),
            "programming": [self.programming.counts, self.programming.total],
            "table_entries": self.table_entries,
        }

    def write_snapshot(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, path)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


def _histogram(lines: list[str], name: str, buckets: tuple[float, ...], counts: list[int], total: float,
               **labels: str) -> None:
    running = 0
    for bound, count in zip(buckets, counts, strict=False):
        running += count
        lines.append(f"{name}_bucket{_labels(**labels, le=repr(bound))} {running}")
    running += counts[-1]
    lines.append(f"{name}_bucket{_labels(**labels, le='+Inf')} {running}")
    lines.append(f"{name}_sum{_labels(**labels)} {total}")
    lines.append(f"{name}_count{_labels(**labels)} {running}")


@dataclass
class _Totals:
    """Every worker's snapshot summed: what one /metrics page shows."""

    server: str = "dns://:53"
    requests: defaultdict[tuple, int] = field(default_factory=lambda: defaultdict(int))
    responses: defaultdict[tuple, int] = field(default_factory=lambda: defaultdict(int))
    durations: dict[str, list] = field(default_factory=dict)  # type -> [bucket counts, total]
    hits: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    misses: int = 0
    sizes: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    fwd_req: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    fwd_resp: defaultdict[tuple, int] = field(default_factory=lambda: defaultdict(int))
    fwd_hc: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    prog_counts: list[int] = field(default_factory=lambda: [0] * (len(PROGRAMMING_BUCKETS) + 1))
    prog_total: float = 0.0
    entries: int = 0

    def add(self, s: dict[str, Any]) -> None:
        """One worker's snapshot."""
        for *k, v in s["requests"]:
            self.requests[tuple(k)] += v
        for *k, v in s["responses"]:
            self.responses[tuple(k)] += v
        for k, (counts, total) in s["durations"].items():
            acc = self.durations.setdefault(k, [[0] * len(counts), 0.0])
            acc[0] = [a + b for a, b in zip(acc[0], counts, strict=True)]
            acc[1] += total
        for k, v in s["cache_hits"].items():
            self.hits[k] += v
        self.misses += s["cache_misses"]
        for k, v in s["cache_size"].items():
            self.sizes[k] += v
        for k, v in s["forward_requests"].items():
            self.fwd_req[k] += v
        for *k, v in s["forward_responses"]:
            self.fwd_resp[tuple(k)] += v
        for k, v in s["forward_healthcheck_failures"].items():
            self.fwd_hc[k] += v
        self.prog_counts = [a + b for a, b in zip(self.prog_counts, s["programming"][0], strict=True)]
        self.prog_total += s["programming"][1]
        self.entries += s.get("table_entries", 0)


def render(snapshots: Iterable[dict[str, Any]]) -> str:
    """Sum the snapshots of every worker into Prometheus text format."""
    snaps = list(snapshots)
    totals = _Totals(server=snaps[0]["server"] if snaps else "dns://:53")
    for snap in snaps:
        totals.add(snap)
    lines = ["# HELP coredns_build_info A metric with a constant '1' value labeled by version.",
             "# TYPE coredns_build_info gauge",
             'coredns_build_info{goversion="python",revision="svcnet",version="svcnet-0.1"} 1']
    lines += _dns_lines(totals)
    lines += _cache_lines(totals)
    lines += _forward_lines(totals)
    lines += ["# HELP coredns_kubernetes_dns_programming_duration_seconds Histogram of the time (in seconds) "
              "it took to program a dns instance.",
              "# TYPE coredns_kubernetes_dns_programming_duration_seconds histogram"]
    _histogram(lines, "coredns_kubernetes_dns_programming_duration_seconds", PROGRAMMING_BUCKETS,
               totals.prog_counts, totals.prog_total, service_kind="headless_with_selector")
    lines += ["# HELP svcnet_dns_answer_table_entries Precomputed answers held, summed over workers.",
              "# TYPE svcnet_dns_answer_table_entries gauge", f"svcnet_dns_answer_table_entries {totals.entries}"]
    return "\n".join(lines) + "\n"


def _dns_lines(t: _Totals) -> list[str]:
    """The server's own families: requests, responses, request durations."""
    server = t.server
    lines = ["# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.",
             "# TYPE coredns_dns_requests_total counter"]
    for (proto, family, qtype), v in sorted(t.requests.items()):
        labels = _labels(server=server, zone=".", view="", proto=proto, family=family, type=qtype)
        lines.append(f"coredns_dns_requests_total{labels} {v}")
    lines += ["# HELP coredns_dns_responses_total Counter of response status codes.",
              "# TYPE coredns_dns_responses_total counter"]
    for (rcode, plugin), v in sorted(t.responses.items()):
        labels = _labels(server=server, zone=".", view="", rcode=rcode, plugin=plugin)
        lines.append(f"coredns_dns_responses_total{labels} {v}")
    lines += ["# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request "
              "took per zone.",
              "# TYPE coredns_dns_request_duration_seconds histogram"]
    for qtype, (counts, total) in sorted(t.durations.items()):
        _histogram(lines, "coredns_dns_request_duration_seconds", DURATION_BUCKETS, counts, total,
                   server=server, zone=".", view="", type=qtype)
    return lines


def _cache_lines(t: _Totals) -> list[str]:
    """The cache plugin's families (the forwarder's cache)."""
    server = t.server
    lines = ["# HELP coredns_cache_hits_total The count of cache hits.", "# TYPE coredns_cache_hits_total counter"]
    for kind in ("denial", "success"):
        lines.append(f"coredns_cache_hits_total{_labels(server=server, type=kind, view='', zones='.')} "
                     f"{t.hits[kind]}")
    lines += ["# HELP coredns_cache_misses_total The count of cache misses.",
              "# TYPE coredns_cache_misses_total counter",
              f"coredns_cache_misses_total{_labels(server=server, view='', zones='.')} {t.misses}"]
    lines += ["# HELP coredns_cache_entries The number of elements in the cache.",
              "# TYPE coredns_cache_entries gauge"]
    for kind in ("denial", "success"):
        lines.append(f"coredns_cache_entries{_labels(server=server, type=kind, view='', zones='.')} "
                     f"{t.sizes[kind]}")
    return lines


def _forward_lines(t: _Totals) -> list[str]:
    """The forward plugin's families, per upstream."""
    lines = ["# HELP coredns_forward_requests_total Counter of requests made per upstream.",
             "# TYPE coredns_forward_requests_total counter"]
    for to, v in sorted(t.fwd_req.items()):
        lines.append(f"coredns_forward_requests_total{_labels(to=to)} {v}")
    lines += ["# HELP coredns_forward_responses_total Counter of responses received per upstream.",
              "# TYPE coredns_forward_responses_total counter"]
    for (to, rcode), v in sorted(t.fwd_resp.items()):
        lines.append(f"coredns_forward_responses_total{_labels(rcode=rcode, to=to)} {v}")
    lines += ["# HELP coredns_forward_healthcheck_failures_total Counter of the number of failed healthchecks.",
              "# TYPE coredns_forward_healthcheck_failures_total counter"]
    for to, v in sorted(t.fwd_hc.items()):
        lines.append(f"coredns_forward_healthcheck_failures_total{_labels(to=to)} {v}")
    return lines


def read_snapshots(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(directory.glob("worker-*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a worker mid-write or gone: skip it this scrape
    return out


def now() -> float:
    return time.perf_counter()
