"""kube-proxy's /metrics and /healthz as plain objects: what is counted, and the text each answers.

Pure: callers pass the times in, and the HTTP adapter in svcnet.proxy.daemon only
serves what `ProxyMetrics.render()` and `ProxyHealth.healthz()/livez()` return.
Names, types, help texts, buckets and labels are kube-proxy v1.32's in iptables
mode (pkg/proxy/metrics), the nfacct counters' included (read when scraped, through
a callable the daemon gives: svcnet.kernel.nfacct.read_packets); numbers are written the way Prometheus' Go client
writes them (shortest form, exponent from 1e+06 on), and the health answers are
pkg/proxy/healthcheck's: the same status codes and JSON fields, times in Go's
`time.Time.String()` form.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from svcnet.api.objects import is_being_deleted, spec_of
from svcnet.proxy.iptables.render import NFACCT_INVALID_DROPPED, NFACCT_LOCALHOST_NODEPORTS

SYNC_DURATION = "kubeproxy_sync_proxy_rules_duration_seconds"
FULL_SYNC_DURATION = "kubeproxy_sync_full_proxy_rules_duration_seconds"
PARTIAL_SYNC_DURATION = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
PROGRAMMING_DURATION = "kubeproxy_network_programming_duration_seconds"
LAST_SYNC_TIMESTAMP = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
LAST_QUEUED_TIMESTAMP = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"
IPTABLES_TOTAL = "kubeproxy_sync_proxy_rules_iptables_total"
IPTABLES_LAST = "kubeproxy_sync_proxy_rules_iptables_last"
RESTORE_FAILURES = "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"
PARTIAL_RESTORE_FAILURES = "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total"
ENDPOINT_CHANGES_PENDING = "kubeproxy_sync_proxy_rules_endpoint_changes_pending"
ENDPOINT_CHANGES_TOTAL = "kubeproxy_sync_proxy_rules_endpoint_changes_total"
SERVICE_CHANGES_PENDING = "kubeproxy_sync_proxy_rules_service_changes_pending"
SERVICE_CHANGES_TOTAL = "kubeproxy_sync_proxy_rules_service_changes_total"
HEALTHZ_TOTAL = "kubeproxy_proxy_healthz_total"
LIVEZ_TOTAL = "kubeproxy_proxy_livez_total"
CT_STATE_INVALID_DROPPED = "kubeproxy_iptables_ct_state_invalid_dropped_packets_total"
LOCALHOST_NODEPORTS_ACCEPTED = "kubeproxy_iptables_localhost_nodeports_accepted_packets_total"

# iptables mode's nfacct counters and the metric each is served as (upstream's custom collectors:
# read at scrape time; a counter that cannot be read is left out of the answer).
NFACCT_METRICS: tuple[tuple[str, str, str], ...] = (
    (NFACCT_INVALID_DROPPED, CT_STATE_INVALID_DROPPED,
     "packets dropped by iptables to work around conntrack problems"),
    (NFACCT_LOCALHOST_NODEPORTS, LOCALHOST_NODEPORTS_ACCEPTED,
     "Number of packets accepted on nodeports of loopback interface"),
)

# Sync durations: 15 exponential buckets from 1 ms (1 ms .. 16.384 s).
SYNC_BUCKETS: tuple[float, ...] = tuple(0.001 * 2 ** i for i in range(15))
# Network programming: 0, then 0.25 s and 0.5 s, each second to 59 s, every 5 s to 115 s, every 30 s to 300 s.
# (Upstream's bucket-merging helper starts from a 0 bucket, so le="0" is part of the series.)
PROGRAMMING_BUCKETS: tuple[float, ...] = (
    0.0, 0.25, 0.5, *map(float, range(1, 60)), *map(float, range(60, 120, 5)), *map(float, range(120, 301, 30)))

# The annotation the EndpointSlice controller sets; the network programming latency starts there.
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"

# Node eligibility (/healthz only): a Node being deleted or tainted by the cluster autoscaler is not.
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# --- number and time formats -------------------------------------------------------------------------------------

def format_value(value: float) -> str:
    """A sample value as the Prometheus Go client writes it: the shortest digits that read back the same,
    in exponent form when the exponent is below -4 or at least 6 (1e+06, 1.7e+09)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(float(value))).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len(digit_tuple) - len(digits)
    point = len(digits) + exponent  # where the decimal point goes, counted from the first digit
    lead = point - 1  # the first digit's power of ten
    minus = "-" if sign else ""
    if lead < -4 or lead >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if lead < 0 else '+'}{abs(lead):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{minus}{digits}{'0' * (point - len(digits))}"
    return f"{minus}{digits[:point]}.{digits[point:]}"


@dataclass(frozen=True)
class Stamp:
    """A moment as Go's time.Now() holds it: wall clock (ns since the epoch) and a monotonic reading
    (seconds since the process started), so it prints as kube-proxy's /healthz does."""

    wall_ns: int
    monotonic: float | None = None

    def go_string(self, tz: dt.tzinfo | None = None) -> str:
        """Go's time.Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST m=+1.000000001"."""
        seconds, nanos = divmod(self.wall_ns, 1_000_000_000)
        when = dt.datetime.fromtimestamp(seconds, tz=tz or dt.UTC)
        if tz is None:
            when = when.astimezone()  # the process's local zone, as Go's time.Local
        text = when.strftime("%Y-%m-%d %H:%M:%S")
        if nanos:
            text += "." + f"{nanos:09d}".rstrip("0")
        zone = when.strftime("%z")
        text += f" {zone} {when.tzname() or zone}"
        if self.monotonic is not None:
            whole, frac = divmod(round(abs(self.monotonic) * 1e9), 1_000_000_000)
            text += f" m={'-' if self.monotonic < 0 else '+'}{whole}.{frac:09d}"
        return text


GO_ZERO_TIME = "0001-01-01 00:00:00 +0000 UTC"  # what Go prints for a time never set


def parse_rfc3339(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- metrics -----------------------------------------------------------------------------------------------------

@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += value
        self.count += 1

    def samples(self, name: str) -> list[str]:
        lines = []
        cumulative = 0
        counts = self.counts or [0] * len(self.buckets)
        for bound, n in zip(self.buckets, counts, strict=True):
            cumulative += n
            lines.append(f'{name}_bucket{{le="{format_value(bound)}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {format_value(self.total)}")
        lines.append(f"{name}_count {self.count}")
        return lines


@dataclass(frozen=True)
class SyncOutcome:
    """What the metrics need from one sync (svcnet.proxy.syncer.SyncResult, trimmed to plain values)."""

    ok: bool
    full: bool
    seconds: float
    filter_rules: int = 0  # in the filter table after the sync (the first IP family's)
    nat_rules_written: int = 0
    nat_rules_total: int = 0
    trigger_times: tuple[str, ...] = ()  # last-change-trigger-time annotations of the synced slices


def outcome_of(result: Any) -> SyncOutcome:
    """A SyncOutcome from a syncer SyncResult (duck-typed, so this module stays free of the syncer)."""
    primary = result.families[0] if result.families else None
    return SyncOutcome(
        ok=result.ok, full=result.full, seconds=result.seconds,
        filter_rules=primary.filter_rules if primary else 0,
        nat_rules_written=primary.nat_rules if primary else 0,
        nat_rules_total=primary.nat_rules_total if primary else 0,
        trigger_times=tuple(t for stamps in result.trigger_times.values() for t in stamps))


@dataclass
class ProxyMetrics:
    """kube-proxy's metrics for one proxy. `started_at` (wall seconds) is when the change tracking began:
    trigger times older than that are not this process's work and are not counted, as upstream does."""

    started_at: float = 0.0
    sync: Histogram = field(default_factory=lambda: Histogram(SYNC_BUCKETS))
    full_sync: Histogram = field(default_factory=lambda: Histogram(SYNC_BUCKETS))
    partial_sync: Histogram = field(default_factory=lambda: Histogram(SYNC_BUCKETS))
    programming: Histogram = field(default_factory=lambda: Histogram(PROGRAMMING_BUCKETS))
    last_sync_timestamp: float = 0.0
    last_queued_timestamp: float = 0.0
    restore_failures: int = 0
    partial_restore_failures: int = 0
    rules_total: dict[str, int] = field(default_factory=dict)  # by table
    rules_last: dict[str, int] = field(default_factory=dict)  # by table: written by the last sync
    service_changes_total: int = 0
    endpoint_changes_total: int = 0
    pending_services: set[str] = field(default_factory=set)
    endpoint_changes_pending: int = 0
    healthz_answers: dict[str, int] = field(default_factory=dict)  # by HTTP status code
    livez_answers: dict[str, int] = field(default_factory=dict)
    # iptables mode with nfacct: reads the counters' packets now (counter name -> packets; absent when unread).
    nfacct_packets: Callable[[], Mapping[str, int]] | None = None

    # --- what happened -----------------------------------------------------------------------------------------

    def service_changed(self, key: str) -> None:
        self.service_changes_total += 1
        self.pending_services.add(key)

    def endpoints_changed(self) -> None:
        self.endpoint_changes_total += 1
        self.endpoint_changes_pending += 1

    def queued(self, wall_now: float) -> None:
        self.last_queued_timestamp = wall_now

    def changes_taken(self) -> None:
        """A sync took every pending change."""
        self.pending_services.clear()
        self.endpoint_changes_pending = 0

    def record(self, outcome: SyncOutcome, wall_now: float) -> None:
        # Every sync's duration counts, failed ones included, filed as the kind of sync it tried.
        self.sync.observe(outcome.seconds)
        (self.full_sync if outcome.full else self.partial_sync).observe(outcome.seconds)
        if not outcome.ok:
            self.restore_failures += 1
            if not outcome.full:
                self.partial_restore_failures += 1
            return
        self.last_sync_timestamp = wall_now
        self.rules_total = {"filter": outcome.filter_rules, "nat": outcome.nat_rules_total}
        self.rules_last = {"filter": outcome.filter_rules, "nat": outcome.nat_rules_written}
        for stamp in outcome.trigger_times:
            when = parse_rfc3339(stamp)
            if when is not None and when > self.started_at:
                self.programming.observe(wall_now - when)

    def answered(self, endpoint: str, status: int) -> None:
        answers = self.healthz_answers if endpoint == "healthz" else self.livez_answers
        answers[str(status)] = answers.get(str(status), 0) + 1

    # --- the /metrics text -------------------------------------------------------------------------------------

    def render(self) -> str:
        """The Prometheus text format, families in name order as the Go registry writes them."""
        families: list[tuple[str, str, str, list[str]]] = [
            (SYNC_DURATION, "histogram", "SyncProxyRules latency in seconds", self.sync.samples(SYNC_DURATION)),
            (FULL_SYNC_DURATION, "histogram", "SyncProxyRules latency in seconds for full resyncs",
             self.full_sync.samples(FULL_SYNC_DURATION)),
            (PARTIAL_SYNC_DURATION, "histogram", "SyncProxyRules latency in seconds for partial resyncs",
             self.partial_sync.samples(PARTIAL_SYNC_DURATION)),
            (PROGRAMMING_DURATION, "histogram", "In Cluster Network Programming Latency in seconds",
             self.programming.samples(PROGRAMMING_DURATION)),
            _single(LAST_SYNC_TIMESTAMP, "gauge", "The last time proxy rules were successfully synced",
                    self.last_sync_timestamp),
            _single(LAST_QUEUED_TIMESTAMP, "gauge", "The last time a sync of proxy rules was queued",
                    self.last_queued_timestamp),
            _single(RESTORE_FAILURES, "counter", "Cumulative proxy iptables restore failures",
                    self.restore_failures),
            _single(PARTIAL_RESTORE_FAILURES, "counter", "Cumulative proxy iptables partial restore failures",
                    self.partial_restore_failures),
            _single(SERVICE_CHANGES_TOTAL, "counter", "Cumulative proxy rules Service changes",
                    self.service_changes_total),
            _single(SERVICE_CHANGES_PENDING, "gauge", "Pending proxy rules Service changes",
                    len(self.pending_services)),
            _single(ENDPOINT_CHANGES_TOTAL, "counter", "Cumulative proxy rules Endpoint changes",
                    self.endpoint_changes_total),
            _single(ENDPOINT_CHANGES_PENDING, "gauge", "Pending proxy rules Endpoint changes",
                    self.endpoint_changes_pending),
            _labelled(IPTABLES_TOTAL, "gauge", "Total number of iptables rules owned by kube-proxy", "table",
                      self.rules_total),
            _labelled(IPTABLES_LAST, "gauge", "Number of iptables rules written by kube-proxy in last sync",
                      "table", self.rules_last),
            _labelled(HEALTHZ_TOTAL, "counter", "Cumulative proxy healthz HTTP status", "code",
                      self.healthz_answers),
            _labelled(LIVEZ_TOTAL, "counter", "Cumulative proxy livez HTTP status", "code", self.livez_answers),
            *self._nfacct_families(),
        ]
        lines: list[str] = []
        for name, kind, help_text, samples in sorted(families):
            if samples:  # a labelled family with no series yet is not written at all
                lines += [f"# HELP {name} [ALPHA] {help_text}", f"# TYPE {name} {kind}", *samples]
        return "\n".join(lines) + "\n"


    def _nfacct_families(self) -> list[tuple[str, str, str, list[str]]]:
        packets = self.nfacct_packets() if self.nfacct_packets is not None else {}
        return [(metric, "counter", help_text, [f"{metric} {format_value(packets[counter])}"] if counter in packets
                 else []) for counter, metric, help_text in NFACCT_METRICS]


def _single(name: str, kind: str, help_text: str, value: float) -> tuple[str, str, str, list[str]]:
    return name, kind, help_text, [f"{name} {format_value(value)}"]


def _labelled(name: str, kind: str, help_text: str, label: str,
              values: Mapping[str, float]) -> tuple[str, str, str, list[str]]:
    return name, kind, help_text, [f'{name}{{{label}="{key}"}} {format_value(values[key])}'
                                   for key in sorted(values)]


def parse_samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value from Prometheus text (for tests and `svcnet` tooling reading /metrics)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


# --- health ------------------------------------------------------------------------------------------------------

def node_eligible(node: Mapping[str, Any] | None) -> bool:
    """A Node being deleted, or tainted for deletion by the cluster autoscaler, fails /healthz (so load
    balancers drain it); any other Node, or none seen yet, is eligible."""
    if not node:
        return True
    if is_being_deleted(node):
        return False
    taints: Iterable[Mapping[str, Any]] = spec_of(node).get("taints") or ()
    return not any(t.get("key") == TO_BE_DELETED_TAINT for t in taints)


@dataclass(frozen=True)
class HealthAnswer:
    status: int
    body: str
    content_type: str = "application/json"


@dataclass
class ProxyHealth:
    """kube-proxy's proxy health: healthy unless a queued change has waited `timeout` seconds (two sync
    periods) without a successful sync. Queue times are on a monotonic clock; `updated` keeps a Stamp."""

    timeout: float
    last_updated: Stamp | None = None
    oldest_queued: float | None = None  # the oldest change no successful sync has covered yet
    queued_since_checkout: float | None = None  # the oldest change the running sync did not take
    node_eligible: bool = True

    def queued(self, now: float) -> None:
        if self.oldest_queued is None:
            self.oldest_queued = now
        if self.queued_since_checkout is None:
            self.queued_since_checkout = now

    def checked_out(self) -> None:
        """A sync starts and takes every change queued so far."""
        self.queued_since_checkout = None

    def updated(self, stamp: Stamp) -> None:
        """The rules are current (a sync succeeded, or the sync loop just started)."""
        self.last_updated = stamp
        self.oldest_queued = self.queued_since_checkout  # changes that arrived during the sync still wait

    def healthy(self, now: float) -> bool:
        return self.oldest_queued is None or now - self.oldest_queued < self.timeout

    def healthz(self, now: float, stamp: Stamp) -> HealthAnswer:
        healthy = self.healthy(now) and self.node_eligible
        last = stamp if healthy else self.last_updated  # upstream reports "now" while healthy
        current = stamp.go_string()
        body = (f'{{"lastUpdated": {_go_quote(last)},"currentTime": {json.dumps(current)}, '
                f'"nodeEligible": {"true" if self.node_eligible else "false"}}}')
        return HealthAnswer(200 if healthy else 503, body)

    def livez(self, now: float, stamp: Stamp) -> HealthAnswer:
        healthy = self.healthy(now)
        last = stamp if healthy else self.last_updated
        body = f'{{"lastUpdated": {_go_quote(last)},"currentTime": {json.dumps(stamp.go_string())}}}'
        return HealthAnswer(200 if healthy else 503, body)


def _go_quote(stamp: Stamp | None) -> str:
    return json.dumps(stamp.go_string() if stamp is not None else GO_ZERO_TIME)


_PROCESS_START = time.monotonic()


def stamp_now() -> Stamp:
    return Stamp(time.time_ns(), time.monotonic() - _PROCESS_START)
