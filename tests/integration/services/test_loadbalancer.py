"""LoadBalancer Services on the wire: `kubectl expose --type=LoadBalancer` in a `svcnet up` cluster
gets an address from the pool that the client namespace reaches; the address moves when the
announcing node's agent stops; loadBalancerSourceRanges admits one source and drops another; a
deleted Service's address stops being answered and is handed out again; a dual-stack Service gets
an IPv6 address too, which the elected node answers Neighbor Solicitations for.

The package's 2-node iptables cluster (tests/integration/services/conftest.py) and one 2-replica
Deployment in the module's own namespace are shared by the tests, which run in order; the last test
uses the package's nftables cluster.
ARP is checked with a raw socket in the client namespace (svcnet.kernel.arp), as arping would.
"""
from __future__ import annotations

import ipaddress
import os
import select
import shutil
import signal
import textwrap
import time
from collections.abc import Iterator

import pytest

from svcnet.core import arp
from svcnet.core import loadbalancer as lb
from svcnet.kernel.arp import ArpSocket
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready
from tests.integration.services.conftest import module_namespace
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "kubectl", "curl")),
    reason="needs root (network namespaces), ip, kubectl and curl")

POOL = ipaddress.ip_network("192.168.0.240/28")  # svcnet up's default
POOL6 = ipaddress.ip_network("fd00:192:168:0:ffff:ffff:ffff:fff0/124")  # and its IPv6 one
CLIENT_IP = "192.168.0.200"
OTHER_SOURCE = "192.168.0.201"  # a second machine on the LAN, for loadBalancerSourceRanges


@pytest.fixture(scope="module")
def cluster(iptables_cluster: SvcnetCluster) -> Iterator[SvcnetCluster]:
    with module_namespace(iptables_cluster, "loadbalancer") as c:
        c.kubectl("create", "deployment", "hostnames", "--image=k8s.gcr.io/serve_hostname", "--replicas=2",
                  "--port=9376")
        wait_for(lambda: len([p for p in c.pods("app=hostnames") if is_running_ready(p)]) == 2,
                 timeout=60, interval=0.3, what="2 hostnames pods Running and ready")
        yield c


# ---- helpers

def pod_names(cluster: SvcnetCluster) -> set[str]:
    return {p["metadata"]["name"] for p in cluster.pods("app=hostnames")}


def curl(cluster: SvcnetCluster, ip: str, source: str | None = None) -> str | None:
    """The body curl gets from ip:80 in the client namespace (ip: an IPv6 one in brackets; None: no
    answer within 2 s)."""
    args = ["curl", "-s", "-g", "-m", "2", *(["--interface", source] if source else []), f"http://{ip}/"]
    result = cluster.in_namespace(cluster.client_namespace, *args)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def arp_answers(cluster: SvcnetCluster, ip: str, listen: float = 0.5) -> set[str]:
    """The MACs that answer an ARP request for ip sent from the client namespace."""
    sock = ArpSocket(cluster.client_namespace, "eth0")
    try:
        sock.send(arp.build(arp.BROADCAST, sock.mac, arp.ArpPacket(arp.ARP_REQUEST, sock.mac, CLIENT_IP,
                                                                   b"\0" * 6, ip)))
        answers: set[str] = set()
        deadline = time.monotonic() + listen
        while (left := deadline - time.monotonic()) > 0:
            select.select([sock.sock], [], [], left)
            for frame in sock.receive():
                packet = arp.parse(frame)
                if packet and packet.operation == arp.ARP_REPLY and packet.sender_ip == ip:
                    answers.add(arp.mac_text(packet.sender_mac))
        return answers
    finally:
        sock.close()


def node_macs(cluster: SvcnetCluster) -> dict[str, str]:
    """MAC of each node's LAN interface -> node name."""
    out = {}
    for node in ("node-1", "node-2"):
        mac = cluster.in_namespace(cluster.node_namespace(node), "cat", "/sys/class/net/eth0/address").stdout
        out[mac.strip()] = node
    return out


def external_ip(cluster: SvcnetCluster, service: str) -> str:
    """EXTERNAL-IP as `kubectl get svc` shows it, once it is no longer <pending>."""
    def shown() -> str | None:
        columns = cluster.kubectl("get", "svc", service, "--no-headers").stdout.split()
        return columns[3] if columns[3] != "<pending>" else None
    return wait_for(shown, timeout=30, interval=0.2, what=f"EXTERNAL-IP of {service}")


def reaches_all_pods(cluster: SvcnetCluster, ip: str) -> None:
    want = pod_names(cluster)
    seen: set[str] = set()

    def all_seen() -> bool:
        body = curl(cluster, ip)
        if body:
            seen.add(body)
        return seen >= want
    wait_for(all_seen, timeout=60, interval=0, what=f"curl {ip} from the client to reach {sorted(want)}")
    assert seen == want


# ---- the tests, in order

def test_expose_type_load_balancer_gets_an_address_from_the_pool_that_reaches_every_pod(
        cluster: SvcnetCluster) -> None:
    cluster.kubectl("expose", "deploy", "hostnames", "--type=LoadBalancer", "--port", "80", "--target-port", "9376")
    ip = external_ip(cluster, "hostnames")
    assert ipaddress.ip_address(ip) in POOL
    status = cluster.kubectl_json("get", "svc", "hostnames")["status"]
    assert status["loadBalancer"]["ingress"] == [{"ip": ip, "ipMode": "VIP"}]
    reaches_all_pods(cluster, ip)
    assert len(arp_answers(cluster, ip)) == 1  # one node announces it


def test_stopping_the_announcing_nodes_agent_moves_the_address_to_the_other_node(cluster: SvcnetCluster) -> None:
    ip = external_ip(cluster, "hostnames")
    macs = node_macs(cluster)
    announcer = macs[wait_for(lambda: next(iter(arp_answers(cluster, ip)), None), what=f"ARP answer for {ip}")]
    other = next(node for node in macs.values() if node != announcer)
    other_mac = next(mac for mac, node in macs.items() if node == other)
    pid = cluster.agent_pid(announcer)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the agent hangs: its speaker stops renewing its Lease and answering
    try:
        wait_for(lambda: arp_answers(cluster, ip) == {other_mac}, timeout=30, interval=0,
                 what=f"{other} to answer ARP for {ip}")
        # The gratuitous ARP repoints the client's cache (curl alone would not prove the move: the
        # stopped agent's node still forwards what reaches it, its proxy is running).
        wait_for(lambda: other_mac in cluster.in_namespace(cluster.client_namespace, "ip", "neigh", "show", ip).stdout,
                 timeout=30, what=f"the client's neighbour entry for {ip} to name {other}")
        wait_for(lambda: curl(cluster, ip), timeout=30, interval=0, what=f"curl {ip} after the failover")
        events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=hostnames").stdout
        assert f'announcing from node "{other}"' in events
    finally:
        os.kill(pid, signal.SIGCONT)


def test_load_balancer_source_ranges_admit_the_client_and_drop_another_source(cluster: SvcnetCluster) -> None:
    ip = external_ip(cluster, "hostnames")
    cluster.kubectl("patch", "svc", "hostnames", "-p",
                    f'{{"spec": {{"loadBalancerSourceRanges": ["{CLIENT_IP}/32"]}}}}')
    add = cluster.in_namespace(cluster.client_namespace, "ip", "addr", "add", f"{OTHER_SOURCE}/24", "dev", "eth0")
    assert add.returncode == 0, add.stderr
    try:
        wait_for(lambda: curl(cluster, ip, OTHER_SOURCE) is None and curl(cluster, ip, CLIENT_IP),
                 timeout=30, interval=0, what=f"{OTHER_SOURCE} dropped while {CLIENT_IP} is served")
        assert curl(cluster, ip, OTHER_SOURCE) is None
        assert curl(cluster, ip, CLIENT_IP) in pod_names(cluster)
    finally:
        cluster.in_namespace(cluster.client_namespace, "ip", "addr", "del", f"{OTHER_SOURCE}/24", "dev", "eth0")


def test_with_local_traffic_policy_only_a_node_with_an_endpoint_announces(cluster: SvcnetCluster) -> None:
    pod = cluster.pods("app=hostnames")[0]
    name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
    # An address the election would give to the other node were both eligible; asked for by
    # spec.loadBalancerIP, so the choice is the test's.
    ip = next(str(a) for a in list(POOL)[2:-1] if lb.elect_announcer(str(a), ["node-1", "node-2"]) != node)
    cluster.kubectl("label", "pod", name, "lb-local=yes")
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: local}}
        spec:
          type: LoadBalancer
          loadBalancerIP: {ip}
          externalTrafficPolicy: Local
          selector: {{app: hostnames, lb-local: "yes"}}
          ports: [{{port: 80, targetPort: 9376}}]
        """))
    try:
        assert external_ip(cluster, "local") == ip
        node_mac = next(mac for mac, owner in node_macs(cluster).items() if owner == node)
        wait_for(lambda: arp_answers(cluster, ip) == {node_mac}, timeout=30, interval=0,
                 what=f"{node}, the node with the endpoint, answering ARP for {ip}")
        assert wait_for(lambda: curl(cluster, ip), timeout=30, interval=0, what=f"curl {ip}") == name
    finally:
        cluster.kubectl("delete", "svc", "local", "--ignore-not-found")


def test_deleting_the_service_frees_its_address(cluster: SvcnetCluster) -> None:
    ip = external_ip(cluster, "hostnames")
    cluster.kubectl("delete", "svc", "hostnames")
    wait_for(lambda: arp_answers(cluster, ip) == set(), timeout=30, interval=0, what=f"nobody answering ARP for {ip}")
    # The freed address goes to the next Service; allocateLoadBalancerNodePorts: false gives it no nodePort.
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: again}
        spec:
          type: LoadBalancer
          allocateLoadBalancerNodePorts: false
          selector: {app: hostnames}
          ports: [{port: 80, targetPort: 9376}]
        """))
    assert external_ip(cluster, "again") == ip
    assert "nodePort" not in cluster.kubectl_json("get", "svc", "again")["spec"]["ports"][0]
    reaches_all_pods(cluster, ip)


def test_a_dual_stack_service_gets_an_ipv6_address_that_one_node_answers_ndp_for(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: dual}
        spec:
          type: LoadBalancer
          ipFamilyPolicy: RequireDualStack
          ipFamilies: [IPv4, IPv6]
          selector: {app: hostnames}
          ports: [{port: 80, targetPort: 9376}]
        """))
    try:
        def ingress() -> list | None:
            entries = cluster.kubectl_json("get", "svc", "dual")["status"].get("loadBalancer", {}).get("ingress")
            return entries if entries and len(entries) == 2 else None
        v4, v6 = wait_for(ingress, timeout=30, interval=0.2, what="an address of each family for dual")
        assert ipaddress.ip_address(v4["ip"]) in POOL and ipaddress.ip_address(v6["ip"]) in POOL6  # spec order
        assert v4["ipMode"] == v6["ipMode"] == "VIP"
        reaches_all_pods(cluster, f"[{v6['ip']}]")
        # The client learnt the address by Neighbor Solicitation; the elected node's speaker answered.
        elected = lb.elect_announcer(v4["ip"], ["node-1", "node-2"])
        elected_mac = next(mac for mac, node in node_macs(cluster).items() if node == elected)
        wait_for(lambda: elected_mac in cluster.in_namespace(cluster.client_namespace, "ip", "-6", "neigh", "show",
                                                             v6["ip"]).stdout,
                 timeout=30, what=f"the client's neighbour entry for {v6['ip']} to name {elected}")
    finally:
        cluster.kubectl("delete", "svc", "dual", "--ignore-not-found")


# ---- the same address in nftables mode (the speaker is the same; the proxy's rules are not)

@pytest.fixture
def nft_cluster(nftables_cluster: SvcnetCluster) -> Iterator[SvcnetCluster]:
    with module_namespace(nftables_cluster, "loadbalancer") as c:
        yield c


def test_in_nftables_mode_the_address_serves_every_pod_and_source_ranges_drop_other_sources(
        nft_cluster: SvcnetCluster) -> None:
    cluster = nft_cluster
    cluster.kubectl("create", "deployment", "hostnames", "--image=k8s.gcr.io/serve_hostname", "--replicas=2",
                    "--port=9376")
    cluster.kubectl("expose", "deploy", "hostnames", "--type=LoadBalancer", "--port", "80", "--target-port", "9376",
                    "--overrides", f'{{"spec": {{"loadBalancerSourceRanges": ["{CLIENT_IP}/32"]}}}}')
    wait_for(lambda: len([p for p in cluster.pods("app=hostnames") if is_running_ready(p)]) == 2,
             timeout=60, interval=0.3, what="2 hostnames pods Running and ready")
    ip = external_ip(cluster, "hostnames")
    reaches_all_pods(cluster, ip)
    add = cluster.in_namespace(cluster.client_namespace, "ip", "addr", "add", f"{OTHER_SOURCE}/24", "dev", "eth0")
    assert add.returncode == 0, add.stderr
    try:
        assert curl(cluster, ip, OTHER_SOURCE) is None
    finally:
        cluster.in_namespace(cluster.client_namespace, "ip", "addr", "del", f"{OTHER_SOURCE}/24", "dev", "eth0")
