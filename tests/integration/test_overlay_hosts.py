"""Nodes on several hosts joined by a VXLAN overlay: one `svcnet up --hosts 2 --nodes 3` cluster, live.

node-1 and node-3 sit on host 1 (192.168.0.0/24), node-2 on host 2 (192.168.1.0/24); a router joins the
two LANs and routes no pod CIDR. The seed's hostnames Deployment puts one pod on each node; a pod that
answers with the address it sees a request come from runs on node-2 behind a NodePort Service.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.cluster.topology import plan_topology
from tests.integration.apiserver_harness import REPO
from tests.integration.clientip import client_ip_pod_and_node_port
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "bridge", "iptables", "kubectl", "curl")),
    reason="needs root (network namespaces), ip, bridge, iptables, kubectl and curl")

PLAN = plan_topology("x", 3, hosts=2)
NODE_IP = {node.name: node.ipv4 for node in PLAN.nodes}  # node-1 192.168.0.106, node-2 192.168.1.107, node-3 .0.108
CLIENTIP_MANIFEST = client_ip_pod_and_node_port("node-2")


class Overlaid:
    """The cluster, with the hostnames pod of each node (name, IP, namespace) at hand."""

    def __init__(self, cluster: SvcnetCluster) -> None:
        self.c = cluster
        self.pods: dict[str, tuple[str, str, str]] = {}

    def node_ns(self, node: str) -> str:
        return self.c.node_namespace(node)

    def in_node(self, node: str, *command: str) -> str:
        result = self.c.in_namespace(self.node_ns(node), *command)
        assert result.returncode == 0, f"{command} in {node}: {result.stderr}"
        return result.stdout

    def get(self, from_node: str, url: str) -> str | None:
        """GET url from the hostnames pod on from_node (its network namespace); None when nothing answers."""
        result = self.c.in_namespace(self.pods[from_node][2], "curl", "-s", "--max-time", "2", url)
        return result.stdout.strip() if result.returncode == 0 else None

    def flannel_packets(self, node: str) -> tuple[int, int]:
        """(received, sent) packets of the node's flannel.1."""
        stats = json.loads(self.in_node(node, "ip", "-s", "-j", "link", "show", "flannel.1"))[0]["stats64"]
        return stats["rx"]["packets"], stats["tx"]["packets"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Overlaid]:
    with running_cluster(tmp_path_factory.mktemp("overlay"), nodes=3, up_args=("--hosts", "2")) as c:
        c.kubectl("apply", "-f", str(Path(REPO) / "examples" / "hostnames.yaml"))
        c.kubectl("apply", "-f", "-", input=CLIENTIP_MANIFEST)
        overlaid = Overlaid(c)

        def all_ready() -> list[dict[str, Any]] | None:
            pods = c.pods("app=hostnames") + c.pods("app=clientip")
            return pods if len(pods) == 4 and all(is_running_ready(p) for p in pods) else None
        pods = wait_for(all_ready, timeout=90, interval=0.5, what="hostnames and clientip pods ready")
        for pod in pods:
            if pod["metadata"]["labels"]["app"] == "hostnames":
                uid = pod["metadata"]["uid"].replace("-", "")[:10]
                overlaid.pods[pod["spec"]["nodeName"]] = (
                    pod["metadata"]["name"], pod["status"]["podIP"], f"svcnet-{c.cluster_id}-pod-{uid}")
        assert sorted(overlaid.pods) == ["node-1", "node-2", "node-3"], "hostnames spreads one pod per node"
        yield overlaid


def test_hosts_are_lans_joined_by_a_router_that_routes_no_pod_cidr(cluster: Overlaid) -> None:
    assert "via 192.168.0.1 dev eth0" in cluster.in_node("node-1", "ip", "route", "get", NODE_IP["node-2"])
    assert "via" not in cluster.in_node("node-1", "ip", "route", "get", NODE_IP["node-3"])  # same LAN
    router = cluster.c.in_namespace(f"svcnet-{cluster.c.cluster_id}-router", "ip", "route").stdout
    assert "10.244." not in router and "192.168.1.0/24 dev host-2" in router


def test_each_node_publishes_flannels_annotations(cluster: Overlaid) -> None:
    notes = cluster.c.kubectl_json("get", "node", "node-2")["metadata"]["annotations"]
    mac = json.loads(cluster.in_node("node-2", "ip", "-j", "link", "show", "flannel.1"))[0]["address"]
    assert json.loads(notes["flannel.alpha.coreos.com/backend-data"]) == {"VNI": 1, "VtepMAC": mac}
    assert (notes["flannel.alpha.coreos.com/backend-type"], notes["flannel.alpha.coreos.com/public-ip"]) == (
        "vxlan", "192.168.1.107")


def test_node_1_tunnels_to_host_2_and_routes_directly_on_its_own_host(cluster: Overlaid) -> None:
    routes = cluster.in_node("node-1", "ip", "route")
    assert re.search(r"10\.244\.2\.0/24 via 10\.244\.2\.0 dev flannel\.1 .*onlink", routes)
    assert "10.244.3.0/24 via 192.168.0.108 dev eth0" in routes  # DirectRouting: node-3 shares the LAN
    mac = json.loads(cluster.in_node("node-2", "ip", "-j", "link", "show", "flannel.1"))[0]["address"]
    assert f"{mac} dst 192.168.1.107 self permanent" in cluster.in_node("node-1", "bridge", "fdb", "show",
                                                                         "dev", "flannel.1")
    assert f"10.244.2.0 lladdr {mac} PERMANENT" in cluster.in_node("node-1", "ip", "neigh", "show", "dev", "flannel.1")
    pod_ns = cluster.pods["node-1"][2]
    assert cluster.c.in_namespace(pod_ns, "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1450"


def test_pods_on_different_hosts_talk_through_vxlan_and_only_through_it(cluster: Overlaid) -> None:
    name2, ip2, _ = cluster.pods["node-2"]
    name3, ip3, _ = cluster.pods["node-3"]
    rule = ["INPUT", "-p", "udp", "--dport", "8472", "-s", NODE_IP["node-1"], "-m", "comment", "--comment",
            "svcnet test: VXLAN from node-1"]
    cluster.in_node("node-2", "iptables", "-w", "-I", *rule)
    try:
        sent_before = cluster.flannel_packets("node-1")[1]
        wait_for(lambda: cluster.get("node-1", f"http://{ip2}:9376") == name2, timeout=30, interval=0.2,
                 what="the pod on node-2 from the pod on node-1")
        vxlan_in = cluster.in_node("node-2", "iptables", "-w", "-L", "INPUT", "-v", "-x", "-n")
        udp_packets = int(next(line for line in vxlan_in.splitlines() if "VXLAN from node-1" in line).split()[0])
    finally:
        cluster.in_node("node-2", "iptables", "-w", "-D", *rule)
    assert udp_packets >= 3, "the TCP exchange reached node-2 as UDP 8472 from node-1"
    assert cluster.flannel_packets("node-1")[1] >= sent_before + 3, "and left node-1 by flannel.1"

    agent = cluster.c.agent_pid("node-1")
    assert agent is not None
    os.kill(agent, signal.SIGSTOP)  # so it does not repair what we break before we look
    try:
        for entry in cluster.in_node("node-1", "bridge", "fdb", "show", "dev", "flannel.1").splitlines():
            mac, _, dst = entry.split()[:3]
            cluster.in_node("node-1", "bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", dst)
        assert cluster.get("node-1", f"http://{ip2}:9376") is None, "no FDB entry: no way to host 2"
        wait_for(lambda: cluster.get("node-1", f"http://{ip3}:9376") == name3, timeout=30, interval=0.2,
                 what="the pod on node-3 (same host: it does not need the overlay)")
    finally:
        os.kill(agent, signal.SIGCONT)
    wait_for(lambda: cluster.get("node-1", f"http://{ip2}:9376") == name2, timeout=60, interval=0.5,
             what="the agent to put the FDB entry back")


def test_the_seed_service_reaches_pods_on_both_hosts_from_both_hosts(cluster: Overlaid) -> None:
    vip = cluster.c.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]
    names = {name for name, _, _ in cluster.pods.values()}
    for node in ("node-1", "node-2"):
        seen: set[str | None] = set()

        def every_pod_answered(node: str = node, seen: set[str | None] = seen) -> bool:
            seen.add(cluster.get(node, f"http://{vip}"))
            return names <= seen
        wait_for(every_pod_answered, timeout=60, interval=0.05, what=f"every hostnames pod through {vip} from {node}")


def test_a_nodeport_on_host_1_reaches_a_pod_on_host_2_masqueraded(cluster: Overlaid) -> None:
    port = cluster.c.kubectl_json("get", "svc", "clientip")["spec"]["ports"][0]["nodePort"]
    sent_before = cluster.flannel_packets("node-1")[1]

    def answer() -> str | None:
        result = cluster.c.in_namespace(cluster.c.client_namespace, "curl", "-s", "--max-time", "5",
                                        f"http://{NODE_IP['node-1']}:{port}/")
        return result.stdout.strip() if result.returncode == 0 else None
    # kube-proxy's masquerade picks the address of the way out, flannel.1: node-1's overlay address
    # (flannel's .0/32), and the reply comes back through it to the client.
    assert wait_for(answer, timeout=30, interval=0.2, what="an answer through the NodePort") == "10.244.1.0"
    assert cluster.flannel_packets("node-1")[1] >= sent_before + 3


def test_cluster_dns_answers_pods_on_every_node(cluster: Overlaid) -> None:
    vip = cluster.c.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]
    for node, (name, _, _) in sorted(cluster.pods.items()):
        def answered(name: str = name) -> bool:
            result = cluster.c.exec(name, "nslookup", "hostnames.default.svc.cluster.local")
            return result.returncode == 0 and vip in result.stdout
        wait_for(answered, timeout=30, interval=0.2, what=f"the cluster DNS from the pod on {node}")


def test_a_deleted_node_takes_its_overlay_entries_with_it(cluster: Overlaid) -> None:
    """Last: node-3 stays deleted (its agent does not register it again, as kubelet)."""
    assert "10.244.3.0/24 via 10.244.3.0 dev flannel.1" in cluster.in_node("node-2", "ip", "route")
    cluster.c.kubectl("delete", "node", "node-3", "--wait=false")

    def gone() -> bool:
        routes = cluster.in_node("node-2", "ip", "route")
        fdb = cluster.in_node("node-2", "bridge", "fdb", "show", "dev", "flannel.1")
        neigh = cluster.in_node("node-2", "ip", "neigh", "show", "dev", "flannel.1")
        return "10.244.3.0" not in routes + neigh and NODE_IP["node-3"] not in fdb
    wait_for(gone, timeout=60, interval=0.3, what="node-2 to drop node-3's overlay entries")
    assert NODE_IP["node-1"] in cluster.in_node("node-2", "bridge", "fdb", "show", "dev", "flannel.1")
