"""The proxy in real node namespaces: kube-proxy's rules, ClusterIP and NodePort traffic, updates, repair, cleanup.

Runs as root only (CI does). Tests run in file order on one module cluster;
the last one stops the proxies and cleans up.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from svcnet.proxy.iptables import names
from svcnet.proxy.model import EndpointInfo, ServicePortName
from tests.integration.apiserver_harness import REPO
from tests.integration.netns.conftest import ping
from tests.integration.proxy.conftest import (
    CLUSTER_IP,
    NODE_PORT,
    SERVER_PORT,
    ProxyCluster,
    fetch,
    names_reached,
    requires_iptables,
    requires_root,
    start_proxy,
    wait_synced,
)
from tests.waiting import wait_for

pytestmark = [requires_root, requires_iptables]

SVC_NAME = ServicePortName("default", "hostnames", "default", "TCP")
SVC_CHAIN = names.cluster_policy_chain(SVC_NAME)
WEB = {"web-a", "web-b", "web-c"}


def sep_chain(ip: str) -> str:
    return names.endpoint_chain(SVC_NAME, EndpointInfo(ip, SERVER_PORT))


def test_nat_table_has_kube_proxys_structure(proxy_cluster: ProxyCluster) -> None:
    assert SVC_CHAIN == "KUBE-SVC-ODX2UBAZM7RQWOIU"  # the seed's name
    nat = proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nvL")
    prerouting = nat.split("Chain PREROUTING", 1)[1].split("\n\n", 1)[0]
    assert "KUBE-SERVICES" in prerouting and "kubernetes service portals" in prerouting
    services = proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nvL", "KUBE-SERVICES")
    assert re.search(rf"{SVC_CHAIN}\s.*{re.escape(CLUSTER_IP)}\s.*default/hostnames:default cluster IP.*dpt:80",
                     services)
    svc = proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nvL", SVC_CHAIN).splitlines()[2:]
    ips = sorted((p.ip for p in proxy_cluster.pods.values() if p.name in WEB), key=lambda ip: f"{ip}:{SERVER_PORT}")
    assert "KUBE-MARK-MASQ" in svc[0] and "!10.244.0.0/16" in svc[0]
    # The kernel keeps the probability as a 31-bit fraction: 1/3 reads back as 0.33333333349 (the seed,
    # from an older kube-proxy that wrote 0.33332999982, shows the same structure).
    assert [line.split()[2] for line in svc[1:]] == [sep_chain(ip) for ip in ips]
    assert "statistic mode random probability 0.33333333349" in svc[1]
    assert "statistic mode random probability 0.50000000000" in svc[2]
    assert "statistic" not in svc[3]
    for ip in ips:
        sep = proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nvL", sep_chain(ip))
        assert f"to:{ip}:{SERVER_PORT}" in sep and re.search(rf"KUBE-MARK-MASQ\s.*{re.escape(ip)}\s", sep)
    post = proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nvL", "KUBE-POSTROUTING")
    assert "mark match ! 0x4000/0x4000" in post and "MASQUERADE" in post
    mark = proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nvL", "KUBE-MARK-MASQ")
    assert "MARK or 0x4000" in mark


def test_cluster_ip_from_a_pod_reaches_every_backend(proxy_cluster: ProxyCluster) -> None:
    client = proxy_cluster.pods["client"]
    seen = names_reached(client.netns, CLUSTER_IP, 80, WEB)
    assert set(seen) == WEB, seen


@pytest.mark.parametrize("node", [1, 2])
def test_cluster_ip_from_a_node_reaches_every_backend(proxy_cluster: ProxyCluster, node: int) -> None:
    seen = names_reached(proxy_cluster.node(node).namespace, CLUSTER_IP, 80, WEB)
    assert set(seen) == WEB, seen


def test_a_pod_reaches_itself_through_its_service(proxy_cluster: ProxyCluster) -> None:
    pod = proxy_cluster.pods["web-a"]
    seen = names_reached(pod.netns, CLUSTER_IP, 80, {"web-a"})
    assert "web-a" in seen, seen  # hairpin: SNATed by the SEP chain's masquerade rule


def test_the_cluster_ip_answers_no_ping(proxy_cluster: ProxyCluster) -> None:
    assert not ping(proxy_cluster.pods["client"].netns, CLUSTER_IP, timeout=1.0)
    assert ping(proxy_cluster.pods["client"].netns, proxy_cluster.pods["web-a"].ip)  # the network works


def test_nodeport_on_node_2_is_served_by_node_1_with_the_reply_through_node_2(
        proxy_cluster: ProxyCluster) -> None:
    node2 = proxy_cluster.node(2)
    reply = ""
    for _ in range(20):
        reply = fetch(proxy_cluster.plan.client.namespace, node2.ipv4, NODE_PORT)
        if reply:
            break
    name, peer = reply.split()
    assert name in WEB  # every backend lives on node-1
    assert peer == node2.ipv4  # SNAT: the pod answered node-2, which answered the client
    flows = proxy_cluster.in_node(2, "conntrack", "-L", "-p", "tcp", "--orig-port-dst", str(NODE_PORT))
    assert f"dst={node2.ipv4}" in flows and "src=" + proxy_cluster.plan.client.ipv4 in flows


def test_removing_an_endpoint_updates_the_rules_with_a_partial_sync(proxy_cluster: ProxyCluster) -> None:
    web_a, web_b, web_c = (proxy_cluster.pods[n] for n in ("web-a", "web-b", "web-c"))
    proxy = proxy_cluster.proxies["node-1"]

    def nat() -> str:
        return proxy_cluster.in_node(1, "iptables-save", "-t", "nat")

    partials: list[str] = []
    for _ in range(3):  # a periodic full resync (every 3 s here) may pick the change up first: try again
        restores_before = len(proxy.restore_inputs())
        proxy_cluster.replace_slice_endpoints("hostnames-abcde", [web_b, web_c])
        wait_for(lambda: sep_chain(web_a.ip) not in nat(), timeout=10, what="the removed endpoint's chain to go")
        partials = [text for text in proxy.restore_inputs()[restores_before:]
                    if f"-X {sep_chain(web_a.ip)}" in text and ":KUBE-SERVICES" not in text]
        if partials:
            break
        proxy_cluster.replace_slice_endpoints("hostnames-abcde", [web_a, web_b, web_c])
        wait_for(lambda: sep_chain(web_a.ip) in nat(), timeout=10, what="the endpoint's chain to come back")
    assert partials, "no partial sync removed the endpoint"
    declared = {line[1:].split()[0] for line in partials[0].splitlines() if line.startswith(":")}
    # Only the changed Service's chains: not KUBE-SERVICES (unchanged), not the NodePort Service's.
    assert declared == {SVC_CHAIN, sep_chain(web_a.ip), sep_chain(web_b.ip), sep_chain(web_c.ip)}
    seen = names_reached(proxy_cluster.pods["client"].netns, CLUSTER_IP, 80, {"web-b", "web-c"})
    assert set(seen) == {"web-b", "web-c"}, seen
    proxy_cluster.replace_slice_endpoints("hostnames-abcde", [web_a, web_b, web_c])
    wait_for(lambda: sep_chain(web_a.ip) in nat(), timeout=10, what="the endpoint's chain to come back")


def test_rules_deleted_by_hand_are_repaired_by_the_periodic_resync(proxy_cluster: ProxyCluster) -> None:
    proxy = proxy_cluster.proxies["node-1"]
    periodic_before = proxy.log().count("(full, periodic)")
    proxy_cluster.in_node(1, "iptables", "-t", "nat", "-F", "KUBE-SERVICES")
    proxy_cluster.in_node(1, "iptables", "-t", "nat", "-F", SVC_CHAIN)
    wait_for(lambda: proxy.log().count("(full, periodic)") > periodic_before
             and CLUSTER_IP in proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nL", "KUBE-SERVICES")
             and "statistic" in proxy_cluster.in_node(1, "iptables", "-t", "nat", "-nL", SVC_CHAIN),
             timeout=20, what="the periodic full resync")
    assert set(names_reached(proxy_cluster.node(1).namespace, CLUSTER_IP, 80, WEB)) == WEB


def test_services_keep_working_while_the_proxy_restarts(proxy_cluster: ProxyCluster) -> None:
    client = proxy_cluster.pods["client"]
    proxy = proxy_cluster.proxies["node-2"]
    proxy.stop()
    # Rules stay while the proxy is down: Services keep working.
    assert fetch(client.netns, CLUSTER_IP, 80)
    restarted = start_proxy(proxy_cluster, 2, proxy.log_path.parent)
    wait_synced(restarted, count=proxy.syncs() + 1)
    assert set(names_reached(client.netns, CLUSTER_IP, 80, WEB)) == WEB


def test_cleanup_leaves_no_kube_chain(proxy_cluster: ProxyCluster) -> None:
    for index in (1, 2):
        node = proxy_cluster.node(index)
        proxy_cluster.proxies[node.name].stop()
        result = subprocess.run([sys.executable, "-m", "svcnet.proxy.daemon", "cleanup", "--netns", node.namespace],
                                capture_output=True, text=True, cwd=REPO, timeout=60)
        assert result.returncode == 0, result.stderr
        for save in ("iptables-save", "ip6tables-save"):
            assert "KUBE-" not in proxy_cluster.in_node(index, save)
    assert fetch(proxy_cluster.pods["client"].netns, CLUSTER_IP, 80, timeout=1.0) == ""
