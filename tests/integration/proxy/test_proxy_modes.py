"""kube-proxy's two modes in real node namespaces: nftables mode serves Services, and switching leaves no trace.

Starting in one mode removes what the other left (kube-proxy's platformCleanup);
`cleanup` removes both. Tests run in file order on one module cluster: node-2's
proxy goes iptables -> nftables -> iptables, while the client pod on node-2 keeps
reaching the Service's three backends on node-1 through whatever mode runs.
"""
from __future__ import annotations

import subprocess
import sys
import time

from svcnet.proxy.model import EndpointInfo, ServicePortName
from svcnet.proxy.nftables import names as nft_names
from tests.integration.apiserver_harness import REPO
from tests.integration.proxy.conftest import (
    CLUSTER_IP,
    NODE_PORT,
    SERVER_PORT,
    ProxyCluster,
    ProxyProcess,
    fetch,
    names_reached,
    requires_iptables,
    requires_root,
    set_ready,
    start_proxy,
    wait_synced,
)
from tests.waiting import wait_for

pytestmark = [requires_root, requires_iptables]

WEB = {"web-a", "web-b", "web-c"}
SVC_CHAIN = nft_names.cluster_policy_chain(ServicePortName("default", "hostnames", "default", "TCP"))


def switch(cluster: ProxyCluster, index: int, mode: str) -> ProxyProcess:
    node = cluster.node(index)
    old = cluster.proxies[node.name]
    old.stop()
    proxy = start_proxy(cluster, index, old.log_path.parent, mode=mode)
    wait_synced(proxy, count=old.syncs() + 1)
    return proxy


def kube_chains(cluster: ProxyCluster, index: int) -> list[str]:
    return [line for save in ("iptables-save", "ip6tables-save")
            for line in cluster.in_node(index, save).splitlines() if "KUBE-" in line]


def nft_tables(cluster: ProxyCluster, index: int) -> str:
    return cluster.in_node(index, "nft", "list", "tables")


def test_nftables_mode_replaces_iptables_mode_and_serves_the_service(proxy_cluster: ProxyCluster) -> None:
    assert kube_chains(proxy_cluster, 2), "node-2 starts in iptables mode"
    switch(proxy_cluster, 2, "nftables")
    assert kube_chains(proxy_cluster, 2) == []
    assert "table ip kube-proxy" in nft_tables(proxy_cluster, 2)
    assert "numgen random mod 3 vmap" in proxy_cluster.in_node(2, "nft", "list", "chain", "ip", "kube-proxy",
                                                                SVC_CHAIN)
    client = proxy_cluster.pods["client"]
    assert set(names_reached(client.netns, CLUSTER_IP, 80, WEB)) == WEB


def test_nftables_mode_serves_the_node_port_with_snat(proxy_cluster: ProxyCluster) -> None:
    # From node-1's namespace to node-2's NodePort: node-2 DNATs to a node-1 pod and masquerades, so the
    # pod sees node-2's address and the reply goes back through node-2.
    reply = fetch(proxy_cluster.node(1).namespace, proxy_cluster.node(2).ipv4, NODE_PORT)
    name, _, peer = reply.partition(" ")
    assert name in WEB and peer == proxy_cluster.node(2).ipv4


def test_nftables_mode_follows_an_endpoint_change(proxy_cluster: ProxyCluster) -> None:
    pods = proxy_cluster.pods
    proxy_cluster.replace_slice_endpoints("hostnames-abcde", [pods["web-a"]])
    wait_for(lambda: "numgen random mod 1 vmap" in proxy_cluster.in_node(
        2, "nft", "list", "chain", "ip", "kube-proxy", SVC_CHAIN), timeout=10, what="one endpoint left")
    assert set(names_reached(pods["client"].netns, CLUSTER_IP, 80, {"web-a"}, attempts=20)) == {"web-a"}
    proxy_cluster.replace_slice_endpoints("hostnames-abcde", [pods["web-a"], pods["web-b"], pods["web-c"]])
    wait_for(lambda: "numgen random mod 3 vmap" in proxy_cluster.in_node(
        2, "nft", "list", "chain", "ip", "kube-proxy", SVC_CHAIN), timeout=10, what="three endpoints again")
    assert set(names_reached(pods["client"].netns, CLUSTER_IP, 80, WEB)) == WEB


def test_a_pod_turning_unready_leaves_the_nftables_service_chain_within_a_second(
        proxy_cluster: ProxyCluster) -> None:
    web_a = proxy_cluster.pods["web-a"]
    chain = nft_names.endpoint_chain(ServicePortName("default", "hostnames", "default", "TCP"),
                                     EndpointInfo(web_a.ip, SERVER_PORT))

    def served_by_web_a() -> bool:
        return chain in proxy_cluster.in_node(2, "nft", "list", "chain", "ip", "kube-proxy", SVC_CHAIN)

    wait_for(served_by_web_a, timeout=20, what="node-2 to use web-a")
    try:
        written = time.monotonic()
        set_ready(proxy_cluster, web_a, False)
        wait_for(lambda: not served_by_web_a(), timeout=max(0.0, 1.0 - (time.monotonic() - written)),
                 interval=0.02, what="web-a's endpoint chain to leave the service chain within a second of the write")
        assert "numgen random mod 2 vmap" in proxy_cluster.in_node(2, "nft", "list", "chain", "ip", "kube-proxy",
                                                                    SVC_CHAIN)
    finally:
        set_ready(proxy_cluster, web_a, True)
        wait_for(served_by_web_a, timeout=20, what="web-a back in node-2's rules")


def test_back_to_iptables_mode_removes_the_nftables_tables(proxy_cluster: ProxyCluster) -> None:
    switch(proxy_cluster, 2, "iptables")
    assert "kube-proxy" not in nft_tables(proxy_cluster, 2)
    assert any("KUBE-SERVICES" in line for line in kube_chains(proxy_cluster, 2))
    assert set(names_reached(proxy_cluster.pods["client"].netns, CLUSTER_IP, 80, WEB)) == WEB


def test_cleanup_removes_both_modes(proxy_cluster: ProxyCluster) -> None:
    switch(proxy_cluster, 1, "nftables")  # node-1 in nftables mode, node-2 in iptables mode
    for index in (1, 2):
        node = proxy_cluster.node(index)
        proxy_cluster.proxies[node.name].stop()
        result = subprocess.run([sys.executable, "-m", "svcnet.proxy.daemon", "cleanup", "--netns", node.namespace],
                                capture_output=True, text=True, cwd=REPO, timeout=60)
        assert result.returncode == 0, result.stderr
        assert kube_chains(proxy_cluster, index) == []
        assert "kube-proxy" not in nft_tables(proxy_cluster, index)
    assert fetch(proxy_cluster.pods["client"].netns, CLUSTER_IP, 80, timeout=1.0) == ""

