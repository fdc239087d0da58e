"""Service routing features on the wire: session affinity, internalTrafficPolicy, zones, named ports.

The package's `svcnet up --nodes 2 --zones a,b` cluster (node-1 in zone a, node-2 in zone b,
kube-proxy in iptables mode; tests/integration/services/conftest.py), and three serve_hostname pods that
all carry app=topo and name their container port "web":

    srv-1a  node-1  web=9376   side=one
    srv-1b  node-1  web=9377   side=one     (the same named port, another number)
    srv-2   node-2  web=9376

The pods are also the clients: `svcnet exec` runs curl inside them. Before a
test counts answers it waits for the node's rules to hold every endpoint the
feature could have used, so "all answers from one pod" can only mean the
feature, never a half-programmed Service.
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.proxy.iptables import names
from svcnet.proxy.model import ServicePortName
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready
from tests.integration.services.conftest import manifest_in_default
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl", "iptables-save")),
    reason="needs root (network namespaces), ip, nsenter, kubectl, curl and iptables-save")

AFFINITY_SECONDS = 5
PODS = {"srv-1a": ("node-1", 9376, "one"), "srv-1b": ("node-1", 9377, "one"), "srv-2": ("node-2", 9376, "")}
NODE_1_PODS = {"srv-1a", "srv-1b"}


def _pod(name: str, node: str, port: int, side: str) -> str:
    labels = f"{{app: topo, side: {side}}}" if side else "{app: topo}"
    args = f'args: ["-port={port}"]' if port != 9376 else "args: []"
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, labels: {labels}}}
        spec:
          nodeSelector: {{kubernetes.io/hostname: {node}}}
          containers:
          - name: serve
            image: registry.k8s.io/serve_hostname
            {args}
            ports: [{{name: web, containerPort: {port}}}]
        """)


def _service(name: str, selector: str, extra: str = "", ports: str = "[{name: http, port: 80, targetPort: web}]",
             annotations: str = "{}") -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, annotations: {annotations}}}
        spec:
          selector: {selector}
          ports: {ports}
        """) + "".join(f"  {line}\n" for line in extra.splitlines())


MANIFEST = "---\n".join([
    *(_pod(name, *spec) for name, spec in PODS.items()),
    _service("named", "{app: topo}", ports="[{name: http, port: 80, targetPort: web}, "
                                           "{name: http-alt, port: 8080, targetPort: web}]"),
    _service("sticky", "{app: topo}", f"sessionAffinity: ClientIP\nsessionAffinityConfig: "
                                      f"{{clientIP: {{timeoutSeconds: {AFFINITY_SECONDS}}}}}"),
    _service("local-all", "{app: topo}", "internalTrafficPolicy: Local"),
    _service("local-one", "{side: one}", "internalTrafficPolicy: Local"),
    _service("close", "{app: topo}", "trafficDistribution: PreferClose"),
    _service("auto", "{app: topo}", annotations="{service.kubernetes.io/topology-mode: Auto}"),
])


@pytest.fixture(scope="module")
def cluster(iptables_cluster: SvcnetCluster) -> Iterator[SvcnetCluster]:
    # In `default`: the chain names and comments the tests look for name the Services' namespace.
    with manifest_in_default(iptables_cluster, MANIFEST) as c:
        for name in PODS:
            c.wait_pod(name, is_running_ready, timeout=90, what=f"{name} Running and ready")
        yield c


# ---- helpers

def pod_ip(cluster: SvcnetCluster, name: str) -> str:
    return str(cluster.pod(name)["status"]["podIP"])


def endpoint_of(cluster: SvcnetCluster, name: str) -> str:
    return f"{pod_ip(cluster, name)}:{PODS[name][1]}"


def cluster_ip(cluster: SvcnetCluster, service: str) -> str:
    return str(cluster.kubectl_json("get", "svc", service)["spec"]["clusterIP"])


def curl_many(cluster: SvcnetCluster, pod: str, url: str, count: int) -> list[str]:
    """count curls from inside pod, one line each: the hostname that answered, or "" for no answer."""
    script = f"for i in $(seq {count}); do curl -s --max-time 2 {url}; echo; done"
    result = cluster.exec(pod, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[:count]


def chain_jumps(cluster: SvcnetCluster, node: str, chain: str) -> list[str]:
    """The KUBE-SEP chains `chain` jumps to in node's nat table (affinity rules included)."""
    out = cluster.in_namespace(cluster.node_namespace(node), "iptables-save", "-t", "nat").stdout
    return re.findall(rf"^-A {chain} .*-j (KUBE-SEP-\w+)$", out, re.M)


def sep(service: str, endpoint: str, port: str = "http") -> str:
    return names.endpoint_chain(ServicePortName("default", service, port, "TCP"), endpoint)


def svc_chain(service: str, port: str = "http") -> str:
    return names.cluster_policy_chain(ServicePortName("default", service, port, "TCP"))


def wait_for_seps(cluster: SvcnetCluster, node: str, chain: str, expected: set[str]) -> None:
    wait_for(lambda: set(chain_jumps(cluster, node, chain)) == expected, timeout=30, interval=0.2,
             what=f"{chain} on {node} to jump to exactly {sorted(expected)}")


def recent_entries(cluster: SvcnetCluster, node: str, table: str) -> dict[str, int]:
    """xt_recent's list `table` in node's namespace: source address -> how many timestamps it holds."""
    out = cluster.in_namespace(cluster.node_namespace(node), "cat", f"/proc/net/xt_recent/{table}").stdout
    entries = {}
    for line in out.splitlines():
        match = re.match(r"src=(\S+) ttl: \d+ last_seen: \d+ oldest_pkt: \d+ (.*)$", line)
        if match:
            entries[match.group(1)] = len(match.group(2).split(","))
    return entries


# ---- named targetPort and several ports

def test_a_named_target_port_reaches_pods_that_number_it_differently_on_every_service_port(
        cluster: SvcnetCluster) -> None:
    slices = cluster.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=named")["items"]
    numbers = {tuple(sorted((p["name"], p["port"]) for p in s["ports"])): {e["targetRef"]["name"]
                                                                            for e in s["endpoints"]}
               for s in slices}
    # One slice per port set: the pods that number "web" 9377 cannot share a slice with the 9376 ones.
    assert numbers == {(("http", 9376), ("http-alt", 9376)): {"srv-1a", "srv-2"},
                       (("http", 9377), ("http-alt", 9377)): {"srv-1b"}}
    ip = cluster_ip(cluster, "named")
    for port in (80, 8080):
        seen: set[str] = set()

        def reached_all(url: str = f"{ip}:{port}", seen: set[str] = seen) -> bool:
            seen.update(curl_many(cluster, "srv-2", url, 10))
            return set(PODS) <= seen
        wait_for(reached_all, timeout=30, interval=0.2, what=f"curls to {ip}:{port} to reach every pod")
        assert seen - {""} == set(PODS)


# ---- sessionAffinity: ClientIP

def test_session_affinity_keeps_each_client_on_one_pod(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster, "sticky")
    all_seps = {sep("sticky", endpoint_of(cluster, name)) for name in PODS}
    for client, node in (("srv-2", "node-2"), ("srv-1a", "node-1")):  # a second client on another node
        wait_for_seps(cluster, node, svc_chain("sticky"), all_seps)
        answers = collections.Counter(curl_many(cluster, client, f"{ip}:80", 50))
        assert len(answers) == 1 and "" not in answers, answers
        (chosen,) = answers
        # The choice is remembered for the client's address in the chosen endpoint's recent list only.
        client_ip = pod_ip(cluster, client)
        holding = {name for name in PODS if client_ip in recent_entries(cluster, node, sep("sticky",
                                                                                           endpoint_of(cluster, name)))}
        assert holding == {chosen}


def test_session_affinity_is_forgotten_after_its_timeout(cluster: SvcnetCluster) -> None:
    """Within timeoutSeconds a connection goes back through the remembered endpoint (its entry gains a
    timestamp); after it, the stale entry is reaped and the next connection is balanced anew: the client
    is then remembered by exactly one endpoint, with a single timestamp."""
    ip = cluster_ip(cluster, "sticky")
    client_ip = pod_ip(cluster, "srv-2")
    tables = {name: sep("sticky", endpoint_of(cluster, name)) for name in PODS}
    wait_for_seps(cluster, "node-2", svc_chain("sticky"), set(tables.values()))

    def stamps() -> dict[str, int]:
        return {name: n for name, table in tables.items()
                if (n := recent_entries(cluster, "node-2", table).get(client_ip))}

    assert curl_many(cluster, "srv-2", f"{ip}:80", 2)[1] != ""
    (remembered, count), = stamps().items()
    assert count >= 2  # two connections within the timeout: the same entry, two timestamps
    time.sleep(AFFINITY_SECONDS + 1)  # the timeout is what is under test: nothing to poll before it passes
    (answer,) = curl_many(cluster, "srv-2", f"{ip}:80", 1)
    after = stamps()
    assert list(after.values()) == [1], after
    assert answer in after


# ---- internalTrafficPolicy: Local

def test_internal_traffic_policy_local_only_uses_the_clients_nodes_pods(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster, "local-all")
    local = names.local_policy_chain(ServicePortName("default", "local-all", "http", "TCP"))
    wait_for_seps(cluster, "node-1", local, {sep("local-all", endpoint_of(cluster, n)) for n in NODE_1_PODS})
    wait_for_seps(cluster, "node-2", local, {sep("local-all", endpoint_of(cluster, "srv-2"))})
    from_node_1 = set(curl_many(cluster, "srv-1a", f"{ip}:80", 20))
    assert from_node_1 == NODE_1_PODS  # both of them, and never srv-2
    assert set(curl_many(cluster, "srv-2", f"{ip}:80", 10)) == {"srv-2"}


def test_internal_traffic_policy_local_without_local_pods_drops(cluster: SvcnetCluster) -> None:
    ip = cluster_ip(cluster, "local-one")
    drop = re.compile(rf'^-A KUBE-SERVICES -d {re.escape(ip)}/32 .*"default/local-one:http has no local endpoints".* -j DROP$',
                      re.M)
    wait_for(lambda: drop.search(cluster.in_namespace(cluster.node_namespace("node-2"), "iptables-save", "-t",
                                                      "filter").stdout),
             timeout=30, interval=0.2, what="node-2's DROP rule for local-one")
    result = cluster.exec("srv-2", "curl", "-s", "--max-time", "2", f"{ip}:80")
    assert (result.returncode, result.stdout) == (28, "")  # 28: timed out (dropped), not refused
    local = names.local_policy_chain(ServicePortName("default", "local-one", "http", "TCP"))
    wait_for_seps(cluster, "node-1", local, {sep("local-one", endpoint_of(cluster, n)) for n in NODE_1_PODS})
    assert set(curl_many(cluster, "srv-1a", f"{ip}:80", 10)) <= NODE_1_PODS


# ---- zones: trafficDistribution PreferClose and the Auto annotation

def test_nodes_carry_the_zones_svcnet_up_was_given(cluster: SvcnetCluster) -> None:
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    assert {n["metadata"]["name"]: n["metadata"]["labels"].get("topology.kubernetes.io/zone") for n in nodes} == {
        "node-1": "a", "node-2": "b"}


def test_prefer_close_hints_each_endpoint_for_its_zone_and_traffic_stays_in_the_zone(cluster: SvcnetCluster) -> None:
    def hints() -> dict[str, Any]:
        slices = cluster.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=close")["items"]
        return {e["targetRef"]["name"]: (e.get("zone"), e.get("hints")) for s in slices for e in s["endpoints"]}
    wait_for(lambda: len(hints()) == 3, timeout=30, interval=0.2, what="close's three endpoints")
    assert hints() == {"srv-1a": ("a", {"forZones": [{"name": "a"}]}), "srv-1b": ("a", {"forZones": [{"name": "a"}]}),
                       "srv-2": ("b", {"forZones": [{"name": "b"}]})}
    ip = cluster_ip(cluster, "close")
    wait_for_seps(cluster, "node-1", svc_chain("close"), {sep("close", endpoint_of(cluster, n)) for n in NODE_1_PODS})
    wait_for_seps(cluster, "node-2", svc_chain("close"), {sep("close", endpoint_of(cluster, "srv-2"))})
    assert set(curl_many(cluster, "srv-1a", f"{ip}:80", 20)) == NODE_1_PODS
    assert set(curl_many(cluster, "srv-2", f"{ip}:80", 10)) == {"srv-2"}


def test_auto_topology_mode_with_too_few_endpoints_gives_no_hints_and_says_why(cluster: SvcnetCluster) -> None:
    """Three endpoints over two zones of equal CPU: each zone needs two to stay under the 20% overload limit.
    (An earlier sync, before the pods were ready, may have said there were too few endpoints.)"""
    expected = ("Unable to allocate minimum required endpoints to each zone without exceeding overload "
                "threshold (3 endpoints, 2 zones), addressType: IPv4")

    def warnings() -> list[str]:
        events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=auto")["items"]
        return [e["message"] for e in events if (e["type"], e["reason"]) == ("Warning", "TopologyAwareHintsDisabled")]
    wait_for(lambda: expected in warnings(), timeout=30, interval=0.3, what=f"the event {expected!r}")
    slices = cluster.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=auto")["items"]
    assert [e.get("hints") for s in slices for e in s["endpoints"]] == [None, None, None]
