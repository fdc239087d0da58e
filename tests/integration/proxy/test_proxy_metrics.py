"""The proxy's metrics and health servers, where kube-proxy has them: inside each node.

`ip netns exec <node> curl 127.0.0.1:10249/metrics` as a user would run `curl
localhost:10249/metrics` on a kube-proxy node; /healthz on every address of the
node at 10256, for load balancers. Runs as root only, on the module cluster of
conftest.py (its own, since fixtures are module-scoped).
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time

from svcnet.kernel.netns import run_command_in_netns
from svcnet.proxy.metrics import TRIGGER_TIME_ANNOTATION, parse_samples
from tests.integration.proxy.conftest import (
    ProxyCluster,
    _endpoint,
    requires_iptables,
    requires_root,
)
from tests.waiting import wait_for

pytestmark = [requires_root, requires_iptables]

SLICE = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/hostnames-abcde"
METRIC_NAMES = (
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "kubeproxy_sync_full_proxy_rules_duration_seconds",
    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
    "kubeproxy_network_programming_duration_seconds",
    "kubeproxy_sync_proxy_rules_iptables_total",
    "kubeproxy_sync_proxy_rules_iptables_last",
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
    "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
    "kubeproxy_sync_proxy_rules_service_changes_total",
    "kubeproxy_sync_proxy_rules_endpoint_changes_total",
)


def curl(ns: str, url: str) -> tuple[int, str, str]:
    """(HTTP status, content type, body) of a GET from inside `ns`; status 0 when it could not connect."""
    result = run_command_in_netns(ns, ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code} %{content_type}",
                                       url])
    if result.returncode != 0:
        return 0, "", result.stderr.decode()
    body, _, trailer = result.stdout.decode().rpartition("\n")
    status, _, content_type = trailer.partition(" ")
    return int(status), content_type, body


def metrics(cluster: ProxyCluster, index: int) -> dict[str, float]:
    status, _, body = curl(cluster.node(index).namespace, "http://127.0.0.1:10249/metrics")
    assert status == 200, body
    return parse_samples(body)


def test_metrics_are_served_on_the_nodes_loopback_with_kube_proxys_names(proxy_cluster: ProxyCluster) -> None:
    for index in (1, 2):
        wait_for(lambda index=index: metrics(proxy_cluster, index).get(
            "kubeproxy_sync_proxy_rules_duration_seconds_count", 0) > 0, timeout=20, what=f"node-{index}'s sync")
        status, content_type, body = curl(proxy_cluster.node(index).namespace, "http://127.0.0.1:10249/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        for name in METRIC_NAMES:
            assert f"# TYPE {name} " in body, name
        samples = parse_samples(body)
        assert samples["kubeproxy_sync_proxy_rules_duration_seconds_count"] > 0
        assert samples["kubeproxy_sync_full_proxy_rules_duration_seconds_count"] > 0  # the first sync is full
        assert samples['kubeproxy_sync_proxy_rules_iptables_total{table="nat"}'] > 0
        assert samples["kubeproxy_sync_proxy_rules_iptables_restore_failures_total"] == 0


def test_a_sync_after_a_change_moves_the_last_timestamp_and_measures_network_programming(
        proxy_cluster: ProxyCluster) -> None:
    web = [proxy_cluster.pods[n] for n in ("web-a", "web-b", "web-c")]
    before = {i: metrics(proxy_cluster, i) for i in (1, 2)}
    reference = time.time()  # wall clock, as the metric's
    status, current = proxy_cluster.api.request("GET", SLICE)
    assert status == 200, current
    # The EndpointSlice controller stamps when the change that led to the slice happened.
    current["metadata"].setdefault("annotations", {})[TRIGGER_TIME_ANNOTATION] = (
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    current["endpoints"] = [_endpoint(p) for p in web[:2]]
    status, obj = proxy_cluster.api.request("PUT", SLICE, current)
    assert status == 200, obj
    try:
        def programmed(index: int) -> bool:
            samples = metrics(proxy_cluster, index)
            return samples["kubeproxy_network_programming_duration_seconds_count"] > \
                before[index]["kubeproxy_network_programming_duration_seconds_count"]

        for index in (1, 2):
            wait_for(lambda index=index: programmed(index), timeout=20, what=f"node-{index} to sync the change")
            samples = metrics(proxy_cluster, index)
            last = samples["kubeproxy_sync_proxy_rules_last_timestamp_seconds"]
            assert reference <= last <= time.time()
            assert samples["kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"] >= reference
            assert samples["kubeproxy_sync_proxy_rules_duration_seconds_count"] > \
                before[index]["kubeproxy_sync_proxy_rules_duration_seconds_count"]
            assert samples["kubeproxy_sync_proxy_rules_endpoint_changes_total"] > \
                before[index]["kubeproxy_sync_proxy_rules_endpoint_changes_total"]
            assert samples["kubeproxy_network_programming_duration_seconds_sum"] >= \
                before[index]["kubeproxy_network_programming_duration_seconds_sum"]
    finally:
        proxy_cluster.replace_slice_endpoints("hostnames-abcde", web)


def test_healthz_answers_200_with_kube_proxys_json_fields(proxy_cluster: ProxyCluster) -> None:
    for index in (1, 2):
        node = proxy_cluster.node(index)
        status, content_type, body = curl(node.namespace, "http://127.0.0.1:10256/healthz")
        assert (status, content_type) == (200, "application/json"), body
        answer = json.loads(body)
        assert set(answer) == {"lastUpdated", "currentTime", "nodeEligible"}
        assert answer["nodeEligible"] is True
        # Go's time.Time.String(); while healthy, lastUpdated is "now", as upstream reports it.
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+ m=\+\d+\.\d{9}",
                            answer["currentTime"]), answer
        assert answer["lastUpdated"] == answer["currentTime"]
        status, _, body = curl(node.namespace, "http://127.0.0.1:10256/livez")
        assert status == 200 and set(json.loads(body)) == {"lastUpdated", "currentTime"}
        status, _, body = curl(node.namespace, "http://127.0.0.1:10249/healthz")
        assert (status, body) == (200, "ok")  # the metrics server's own check, as kube-proxy's


def test_health_listens_on_every_node_address_and_metrics_only_on_loopback(proxy_cluster: ProxyCluster) -> None:
    outside = proxy_cluster.plan.client.namespace  # a machine on the cluster LAN
    node = proxy_cluster.node(1)
    status, _, body = curl(outside, f"http://{node.ipv4}:10256/healthz")
    assert status == 200 and json.loads(body)["nodeEligible"] is True
    assert curl(outside, f"http://{node.ipv4}:10249/metrics")[0] == 0  # refused: loopback only
    # The listening sockets are the node's own (in its namespace), held by that node's proxy process.
    listening = proxy_cluster.in_node(1, "ss", "-Hltnp")
    pid = proxy_cluster.proxies[node.name].proc.pid
    for address in ("127.0.0.1:10249", "0.0.0.0:10256"):
        line = next((ln for ln in listening.splitlines() if f" {address} " in ln), "")
        assert f"pid={pid}," in line, listening


def test_nfacct_counters_count_localhost_nodeport_packets_and_are_served(proxy_cluster: ProxyCluster) -> None:
    from tests.integration.proxy.conftest import NODE_PORT, fetch

    node = proxy_cluster.node(1).namespace
    wait_for(lambda: "kubeproxy_iptables_localhost_nodeports_accepted_packets_total" in metrics(proxy_cluster, 1),
             timeout=20, what="the nfacct metrics")
    # (iptables-save writes two spaces after --nfacct-name: libxt_nfacct's own; words are compared.)
    saved = " ".join(proxy_cluster.in_node(1, "iptables-save").split())
    assert "--ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP" in saved
    assert "-m nfacct --nfacct-name localhost_nps_accepted_pkts" in saved
    before = metrics(proxy_cluster, 1)["kubeproxy_iptables_localhost_nodeports_accepted_packets_total"]
    fetch(node, "127.0.0.1", NODE_PORT)  # the connection's first packet passes the counting rule
    wait_for(lambda: metrics(proxy_cluster, 1)["kubeproxy_iptables_localhost_nodeports_accepted_packets_total"]
             > before, timeout=20, what="the localhost NodePort packet to be counted")
    assert "kubeproxy_iptables_ct_state_invalid_dropped_packets_total" in metrics(proxy_cluster, 1)
