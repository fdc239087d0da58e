"""kube-proxy's metrics and health answers, as plain objects: names, buckets, number and time formats."""
from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from svcnet.proxy import metrics as m
from svcnet.proxy.metrics import (
    GO_ZERO_TIME,
    PROGRAMMING_BUCKETS,
    SYNC_BUCKETS,
    Histogram,
    ProxyHealth,
    ProxyMetrics,
    Stamp,
    SyncOutcome,
    format_value,
    node_eligible,
    parse_samples,
)

# --- number and time formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (1, "1"), (2.0, "2"), (-3.5, "-3.5"), (0.001, "0.001"), (16.384, "16.384"),
    (123456, "123456"), (1e6, "1e+06"), (1234567, "1.234567e+06"), (1718000000.25, "1.71800000025e+09"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (0.1 + 0.2, "0.30000000000000004"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
])
def test_values_are_written_as_the_prometheus_go_client_writes_them(value, text):
    assert format_value(value) == text


def test_a_stamp_prints_as_go_time_string():
    stamp = Stamp(1_700_000_000_123_456_789, 12.5)
    assert stamp.go_string(dt.UTC) == "2023-11-14 22:13:20.123456789 +0000 UTC m=+12.500000000"
    assert Stamp(1_700_000_000_120_000_000).go_string(dt.UTC) == "2023-11-14 22:13:20.12 +0000 UTC"
    assert Stamp(1_700_000_000_000_000_000).go_string(dt.UTC) == "2023-11-14 22:13:20 +0000 UTC"


# --- buckets and histograms --------------------------------------------------------------------------------------

def bucket_bounds(text: str, name: str) -> list[str]:
    return [line.split('le="')[1].split('"')[0] for line in text.splitlines()
            if line.startswith(f"{name}_bucket")]


def test_sync_duration_buckets_are_fifteen_doublings_from_one_millisecond():
    text = ProxyMetrics().render()
    assert bucket_bounds(text, m.SYNC_DURATION) == [
        "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512", "1.024",
        "2.048", "4.096", "8.192", "16.384", "+Inf"]
    assert len(SYNC_BUCKETS) == 15


def test_network_programming_buckets_start_at_zero_as_upstreams_merged_buckets_do():
    bounds = bucket_bounds(ProxyMetrics().render(), m.PROGRAMMING_DURATION)
    expected = ["0", "0.25", "0.5", *map(str, range(1, 60)), *map(str, range(60, 120, 5)),
                *map(str, range(120, 301, 30)), "+Inf"]
    assert bounds == expected
    assert len(PROGRAMMING_BUCKETS) == 81


def test_histogram_buckets_are_cumulative():
    h = Histogram((0.002, 0.004, 1.0))
    for value in (0.003, 0.003, 20.0):
        h.observe(value)
    assert h.samples("x") == ['x_bucket{le="0.002"} 0', 'x_bucket{le="0.004"} 2', 'x_bucket{le="1"} 2',
                              'x_bucket{le="+Inf"} 3', "x_sum 20.006", "x_count 3"]


# --- recording syncs ---------------------------------------------------------------------------------------------

def test_a_successful_full_sync_sets_durations_timestamp_and_rule_counts():
    metrics = ProxyMetrics(started_at=1000.0)
    metrics.record(SyncOutcome(ok=True, full=True, seconds=0.05, filter_rules=7, nat_rules_written=40,
                               nat_rules_total=40), wall_now=1010.0)
    metrics.record(SyncOutcome(ok=True, full=False, seconds=0.01, filter_rules=7, nat_rules_written=5,
                               nat_rules_total=38), wall_now=1020.0)
    samples = parse_samples(metrics.render())
    assert samples[f"{m.SYNC_DURATION}_count"] == 2
    assert samples[f"{m.FULL_SYNC_DURATION}_count"] == 1
    assert samples[f"{m.PARTIAL_SYNC_DURATION}_count"] == 1
    assert samples[m.LAST_SYNC_TIMESTAMP] == 1020.0
    assert samples[f'{m.IPTABLES_TOTAL}{{table="nat"}}'] == 38
    assert samples[f'{m.IPTABLES_LAST}{{table="nat"}}'] == 5
    assert samples[f'{m.IPTABLES_TOTAL}{{table="filter"}}'] == 7
    assert samples[m.RESTORE_FAILURES] == 0


def test_a_failed_partial_sync_counts_its_duration_and_both_failure_counters_but_not_the_timestamp():
    metrics = ProxyMetrics()
    metrics.record(SyncOutcome(ok=True, full=True, seconds=0.02), wall_now=50.0)
    metrics.record(SyncOutcome(ok=False, full=False, seconds=0.01), wall_now=60.0)
    metrics.record(SyncOutcome(ok=False, full=True, seconds=0.03), wall_now=70.0)
    samples = parse_samples(metrics.render())
    assert samples[f"{m.SYNC_DURATION}_count"] == 3
    assert samples[f"{m.PARTIAL_SYNC_DURATION}_count"] == 1
    assert samples[m.RESTORE_FAILURES] == 2
    assert samples[m.PARTIAL_RESTORE_FAILURES] == 1
    assert samples[m.LAST_SYNC_TIMESTAMP] == 50.0


def test_network_programming_latency_counts_only_changes_made_after_the_proxy_started():
    started = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC).timestamp()
    metrics = ProxyMetrics(started_at=started)
    outcome = SyncOutcome(ok=True, full=False, seconds=0.01, trigger_times=(
        "2024-05-01T11:59:00Z",  # before this proxy started: someone else's work
        "2024-05-01T12:00:10.500000Z", "not a time"))
    metrics.record(outcome, wall_now=started + 11.0)
    samples = parse_samples(metrics.render())
    assert samples[f"{m.PROGRAMMING_DURATION}_count"] == 1
    assert samples[f"{m.PROGRAMMING_DURATION}_sum"] == pytest.approx(0.5)
    assert samples[f'{m.PROGRAMMING_DURATION}_bucket{{le="0.5"}}'] == 1
    assert samples[f'{m.PROGRAMMING_DURATION}_bucket{{le="0.25"}}'] == 0


def test_change_counters_and_pending_gauges_follow_events_and_syncs():
    metrics = ProxyMetrics()
    metrics.service_changed("default/a")
    metrics.service_changed("default/a")
    metrics.service_changed("default/b")
    metrics.endpoints_changed()
    metrics.queued(123.0)
    samples = parse_samples(metrics.render())
    assert (samples[m.SERVICE_CHANGES_TOTAL], samples[m.SERVICE_CHANGES_PENDING]) == (3, 2)
    assert (samples[m.ENDPOINT_CHANGES_TOTAL], samples[m.ENDPOINT_CHANGES_PENDING]) == (1, 1)
    assert samples[m.LAST_QUEUED_TIMESTAMP] == 123.0
    metrics.changes_taken()
    samples = parse_samples(metrics.render())
    assert (samples[m.SERVICE_CHANGES_PENDING], samples[m.ENDPOINT_CHANGES_PENDING]) == (0, 0)
    assert samples[m.SERVICE_CHANGES_TOTAL] == 3


def test_families_are_written_in_name_order_with_alpha_help_and_labelled_ones_only_once_set():
    metrics = ProxyMetrics()
    text = metrics.render()
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)
    assert m.IPTABLES_TOTAL not in names and m.HEALTHZ_TOTAL not in names
    assert f"# HELP {m.SYNC_DURATION} [ALPHA] SyncProxyRules latency in seconds" in text
    assert f"# TYPE {m.LAST_SYNC_TIMESTAMP} gauge" in text
    assert f"# TYPE {m.RESTORE_FAILURES} counter" in text
    metrics.answered("healthz", 200)
    metrics.answered("healthz", 503)
    metrics.answered("livez", 200)
    samples = parse_samples(metrics.render())
    assert samples[f'{m.HEALTHZ_TOTAL}{{code="200"}}'] == 1 and samples[f'{m.HEALTHZ_TOTAL}{{code="503"}}'] == 1
    assert samples[f'{m.LIVEZ_TOTAL}{{code="200"}}'] == 1


# --- health ------------------------------------------------------------------------------------------------------

NOW = Stamp(1_700_000_100_000_000_000, 100.0)
EARLIER = Stamp(1_700_000_000_000_000_000, 0.0)


def body(answer: m.HealthAnswer) -> dict:
    return json.loads(answer.body)


def test_health_is_ok_while_starting_up_and_reports_now_as_last_updated():
    health = ProxyHealth(timeout=60)
    answer = health.healthz(100.0, NOW)
    assert answer.status == 200 and answer.content_type == "application/json"
    assert body(answer) == {"lastUpdated": NOW.go_string(), "currentTime": NOW.go_string(), "nodeEligible": True}
    assert answer.body.startswith('{"lastUpdated": "') and '","currentTime": "' in answer.body
    assert set(body(health.livez(100.0, NOW))) == {"lastUpdated", "currentTime"}


@pytest.mark.parametrize(("queued_at", "status"), [(50.0, 200), (40.1, 200), (40.0, 503), (10.0, 503)])
def test_a_change_queued_for_the_timeout_without_a_sync_makes_health_fail(queued_at, status):
    health = ProxyHealth(timeout=60)
    health.updated(EARLIER)
    health.queued(queued_at)
    assert health.healthz(100.0, NOW).status == status
    assert health.livez(100.0, NOW).status == status
    if status == 503:
        assert body(health.healthz(100.0, NOW))["lastUpdated"] == EARLIER.go_string()


def test_a_successful_sync_clears_what_it_took_but_not_what_arrived_during_it():
    health = ProxyHealth(timeout=60)
    health.queued(10.0)
    health.checked_out()
    health.queued(20.0)  # arrived while the sync ran
    health.updated(EARLIER)
    assert health.healthz(79.0, NOW).status == 200
    assert health.healthz(80.0, NOW).status == 503
    health.checked_out()
    health.updated(NOW)
    assert health.healthz(1000.0, NOW).status == 200


def test_a_node_that_is_going_fails_healthz_but_not_livez():
    health = ProxyHealth(timeout=60)
    health.updated(EARLIER)
    health.node_eligible = False
    answer = health.healthz(100.0, NOW)
    assert answer.status == 503
    assert body(answer) == {"lastUpdated": EARLIER.go_string(), "currentTime": NOW.go_string(),
                            "nodeEligible": False}
    assert health.livez(100.0, NOW).status == 200


def test_never_updated_and_unhealthy_reports_gos_zero_time():
    health = ProxyHealth(timeout=60, node_eligible=False)
    assert body(health.healthz(100.0, NOW))["lastUpdated"] == GO_ZERO_TIME


@pytest.mark.parametrize(("node", "eligible"), [
    (None, True),
    ({"metadata": {"name": "n"}}, True),
    ({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "other", "effect": "NoSchedule"}]}}, True),
    ({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler",
                                                       "effect": "NoSchedule"}]}}, False),
    ({"metadata": {"name": "n", "deletionTimestamp": "2024-05-01T12:00:00Z"}}, False),
])
def test_node_eligibility(node, eligible):
    assert node_eligible(node) is eligible


# --- nfacct counters (iptables mode) -------------------------------------------------------------------------------

def test_nfacct_counters_are_read_when_scraped_as_upstreams_counters():
    reads = []
    counts = {"ct_state_invalid_dropped_pkts": 3}

    def read() -> dict[str, int]:
        reads.append(1)
        return dict(counts)

    metrics = ProxyMetrics(nfacct_packets=read)
    text = metrics.render()
    assert ("# HELP kubeproxy_iptables_ct_state_invalid_dropped_packets_total [ALPHA] packets dropped by iptables "
            "to work around conntrack problems\n# TYPE kubeproxy_iptables_ct_state_invalid_dropped_packets_total "
            "counter\nkubeproxy_iptables_ct_state_invalid_dropped_packets_total 3\n") in text
    # A counter that cannot be read is not answered at all (upstream's collector sends nothing then).
    assert "kubeproxy_iptables_localhost_nodeports_accepted_packets_total" not in text
    counts.update({"ct_state_invalid_dropped_pkts": 5, "localhost_nps_accepted_pkts": 2})
    samples = parse_samples(metrics.render())
    assert samples["kubeproxy_iptables_ct_state_invalid_dropped_packets_total"] == 5
    assert samples["kubeproxy_iptables_localhost_nodeports_accepted_packets_total"] == 2
    assert len(reads) == 2
    assert ("# HELP kubeproxy_iptables_localhost_nodeports_accepted_packets_total [ALPHA] Number of packets "
            "accepted on nodeports of loopback interface") in metrics.render()


def test_without_nfacct_there_are_no_nfacct_metrics():
    assert "nodeports_accepted" not in ProxyMetrics().render()
    assert "ct_state_invalid" not in ProxyMetrics().render()
