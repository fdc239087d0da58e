"""Nodes on several hosts joined by a VXLAN overlay: one `svcnet up --hosts 2 --nodes 3` cluster, live,
and a fourth node joined onto host 2 with `svcnet node join --host 2`.

node-1 and node-3 sit on host 1 (192.168.0.0/24), node-2 on host 2 (192.168.1.0/24); a router joins the
two LANs and routes no pod CIDR. The seed's hostnames Deployment puts one pod on each node; a pod that
answers with the address it sees a request come from runs on node-2 behind a NodePort Service.

The joined node-4 is the next node, on host 2's LAN (192.168.1.109): it runs the VXLAN overlay with
flannel's ServiceAccount token, gets its kubelet serving certificate through a kubelet-serving CSR an
admin approves (so `kubectl logs` and `kubectl exec` reach its pods), and `svcnet down` of the cluster
ends its processes. hostnames is scaled to 4 once it is Ready, so it has a pod too.

One cluster for the module (bringing up and joining cost more than all the checks): the tests that
change it run last, in file order (node-3 deleted, then the whole cluster down).
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from svcnet.cluster.topology import plan_topology
from svcnet.core import pki
from svcnet.kernel import process
from tests.integration.apiserver_harness import KUBECTL, REPO, stop_process
from tests.integration.clientip import client_ip_pod_and_node_port
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.integration.test_node_join import _sweep
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "bridge", "iptables", "nsenter", "curl"))
    or not shutil.which(KUBECTL),
    reason="needs root (network namespaces), ip, bridge, iptables, nsenter, curl and kubectl")

PLAN = plan_topology("x", 3, hosts=2)
NODE_IP = {node.name: node.ipv4 for node in PLAN.nodes}  # node-1 192.168.0.106, node-2 192.168.1.107, node-3 .0.108
CLIENTIP_MANIFEST = client_ip_pod_and_node_port("node-2")
JOINED, JOINED_IP = "node-4", "192.168.1.109"  # the next node index, placed on host 2's LAN
UP_NODES = ("node-1", "node-2", "node-3")


class Overlaid:
    """The cluster, with the hostnames pod of each node (name, IP, namespace) at hand."""

    def __init__(self, cluster: SvcnetCluster, joined_dir: Path, joined_log: Path) -> None:
        self.c = cluster
        self.pods: dict[str, tuple[str, str, str]] = {}  # node -> hostnames pod (name, IP, namespace), all 4
        self.joined_dir, self.joined_log = joined_dir, joined_log
        self.joined: subprocess.Popen[bytes] | None = None  # `svcnet node join`

    def node_ns(self, node: str) -> str:
        return self.c.node_namespace(node)

    def in_node(self, node: str, *command: str) -> str:
        result = self.c.in_namespace(self.node_ns(node), *command)
        assert result.returncode == 0, f"{command} in {node}: {result.stderr}"
        return result.stdout

    def curl(self, node: str, url: str) -> str | None:
        """GET url from the node's own namespace; None when nothing (or nothing but empty) answers."""
        result = self.c.in_namespace(self.node_ns(node), "curl", "-s", "--max-time", "2", url)
        return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None

    def get(self, from_node: str, url: str) -> str | None:
        """GET url from the hostnames pod on from_node (its network namespace); None when nothing answers."""
        result = self.c.in_namespace(self.pods[from_node][2], "curl", "-s", "--max-time", "2", url)
        return result.stdout.strip() if result.returncode == 0 else None

    def flannel_packets(self, node: str) -> tuple[int, int]:
        """(received, sent) packets of the node's flannel.1."""
        stats = json.loads(self.in_node(node, "ip", "-s", "-j", "link", "show", "flannel.1"))[0]["stats64"]
        return stats["rx"]["packets"], stats["tx"]["packets"]


def _join(c: SvcnetCluster, base: Path, cluster: Overlaid) -> subprocess.Popen[bytes]:
    created = c.svcnet("token", "create", "--data-dir", str(c.data_dir), check=True)
    token, command = created.stdout.splitlines()[:2]
    flannel_token = base / "flannel.token"
    flannel_token.write_text(c.kubectl("create", "token", "-n", "kube-flannel", "flannel").stdout)
    argv = [sys.executable, "-m", "svcnet", "node", "join", "--server", f"https://127.0.0.1:{c.port}",
            "--token", token, "--ca-cert-hash", command.split("--ca-cert-hash ")[1],
            "--data-dir", str(cluster.joined_dir), "--lan-of", str(c.data_dir), "--host", "2",
            "--overlay-token-file", str(flannel_token)]
    with open(cluster.joined_log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
    wait_for(lambda: proc.poll() is not None or b"joined; stop it" in cluster.joined_log.read_bytes(),
             timeout=120, interval=0.2, what="svcnet node join to start the node")
    assert proc.poll() is None, cluster.joined_log.read_text()
    return proc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Overlaid]:
    base = tmp_path_factory.mktemp("overlay")
    with running_cluster(base, nodes=3, up_args=("--hosts", "2")) as c:
        overlaid = Overlaid(c, base / "joined", base / "joined.log")
        try:
            c.kubectl("apply", "-f", str(Path(REPO) / "examples" / "hostnames.yaml"))
            c.kubectl("apply", "-f", "-", input=CLIENTIP_MANIFEST)
            overlaid.joined = _join(c, base, overlaid)

            def joined_ready() -> bool:
                got = c.kubectl("get", "node", JOINED, "-o", "json", check=False)
                return got.returncode == 0 and any(x["type"] == "Ready" and x["status"] == "True"
                                                   for x in json.loads(got.stdout)["status"]["conditions"])
            wait_for(joined_ready, timeout=60, interval=0.5, what=f"{JOINED} Ready")
            c.kubectl("scale", "deployment", "hostnames", "--replicas", "4")  # the 4th spreads onto node-4

            def all_ready() -> list[dict[str, Any]] | None:
                pods = c.pods("app=hostnames") + c.pods("app=clientip")
                return pods if len(pods) == 5 and all(is_running_ready(p) for p in pods) else None
            pods = wait_for(all_ready, timeout=90, interval=0.5, what="hostnames and clientip pods ready")
            for pod in pods:
                if pod["metadata"]["labels"]["app"] == "hostnames":
                    uid = pod["metadata"]["uid"].replace("-", "")[:10]
                    overlaid.pods[pod["spec"]["nodeName"]] = (
                        pod["metadata"]["name"], pod["status"]["podIP"], f"svcnet-{c.cluster_id}-pod-{uid}")
            assert sorted(overlaid.pods) == [*UP_NODES, JOINED], "hostnames spreads one pod per node"
            yield overlaid
        finally:
            if overlaid.joined is not None:
                stop_process(overlaid.joined, grace=60)
            _sweep(overlaid.joined_dir)


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
    for node in UP_NODES:  # the joined node's pod: exec there needs its serving certificate (below)
        name = cluster.pods[node][0]
        def answered(name: str = name) -> bool:
            result = cluster.c.exec(name, "nslookup", "hostnames.default.svc.cluster.local")
            return result.returncode == 0 and vip in result.stdout
        wait_for(answered, timeout=30, interval=0.2, what=f"the cluster DNS from the pod on {node}")


def test_the_node_joins_host_2s_lan_as_the_next_node(cluster: Overlaid) -> None:
    addresses = cluster.c.kubectl_json("get", "node", JOINED)["status"]["addresses"]
    assert {"type": "InternalIP", "address": JOINED_IP} in addresses
    assert "via 192.168.1.1 dev eth0" in cluster.in_node(JOINED, "ip", "route", "get", "192.168.0.106")
    assert "via" not in cluster.in_node(JOINED, "ip", "route", "get", "192.168.1.107")  # node-2: same LAN
    flannel = cluster.joined_dir / "kubeconfigs" / "flannel.conf"
    assert flannel.stat().st_mode & 0o777 == 0o600


def test_its_pods_reach_host_1_only_through_vxlan(cluster: Overlaid) -> None:
    mac = json.loads(cluster.in_node(JOINED, "ip", "-j", "link", "show", "flannel.1"))[0]["address"]
    notes = cluster.c.kubectl_json("get", "node", JOINED)["metadata"]["annotations"]
    assert notes["flannel.alpha.coreos.com/public-ip"] == JOINED_IP  # written with flannel's ServiceAccount

    def node_1_has_entries() -> bool:
        routes = cluster.in_node("node-1", "ip", "route")
        fdb = cluster.in_node("node-1", "bridge", "fdb", "show", "dev", "flannel.1")
        return (re.search(r"10\.244\.4\.0/24 via 10\.244\.4\.0 dev flannel\.1 .*onlink", routes) is not None
                and f"{mac} dst {JOINED_IP} self permanent" in fdb)
    wait_for(node_1_has_entries, timeout=30, interval=0.3, what="node-1's route and FDB entry for the joined node")
    assert f"10.244.4.0/24 via {JOINED_IP} dev eth0" in cluster.in_node("node-2", "ip", "route")  # same host: direct
    name1, ip1, _ = cluster.pods["node-1"]
    before = cluster.in_node(JOINED, "ip", "-s", "-j", "link", "show", "flannel.1")
    sent_before = json.loads(before)[0]["stats64"]["tx"]["packets"]
    pod_ns = cluster.pods[JOINED][2]  # the joined node's hostnames pod's namespace

    def from_joined_pod() -> str | None:
        result = cluster.c.in_namespace(pod_ns, "curl", "-s", "--max-time", "2", f"http://{ip1}:9376")
        return result.stdout.strip() or None
    assert wait_for(from_joined_pod, timeout=30, interval=0.3, what="node-1's pod from the joined node's") == name1
    after = json.loads(cluster.in_node(JOINED, "ip", "-s", "-j", "link", "show", "flannel.1"))[0]
    assert after["stats64"]["tx"]["packets"] >= sent_before + 3, "it left the joined node by flannel.1"

    agent = cluster.c.agent_pid("node-1")
    assert agent is not None
    os.kill(agent, signal.SIGSTOP)  # so that it does not put back what is removed before we look
    try:
        cluster.in_node("node-1", "bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", JOINED_IP)
        assert from_joined_pod() is None, "without node-1's FDB entry its replies have no way to host 2"
    finally:
        os.kill(agent, signal.SIGCONT)
    assert wait_for(from_joined_pod, timeout=60, interval=0.5, what="node-1's agent to repair the entry") == name1


def test_the_seed_service_vip_reaches_the_joined_nodes_pod_from_host_1(cluster: Overlaid) -> None:
    vip = cluster.c.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]
    wanted = cluster.pods[JOINED][0]
    wait_for(lambda: cluster.curl("node-1", f"http://{vip}") == wanted, timeout=60, interval=0.05,
             what=f"the joined node's pod through {vip} from node-1")


def test_a_nodeport_on_the_joined_node_reaches_a_pod_on_host_1(cluster: Overlaid) -> None:
    cluster.c.kubectl("expose", "deployment", "hostnames", "--name", "hostnames-np", "--type", "NodePort",
                      "--port", "80", "--target-port", "9376")
    port = cluster.c.kubectl_json("get", "svc", "hostnames-np")["spec"]["ports"][0]["nodePort"]
    wanted = cluster.pods["node-1"][0]

    def from_client() -> str | None:
        result = cluster.c.in_namespace(cluster.c.client_namespace, "curl", "-s", "--max-time", "2",
                                        f"http://{JOINED_IP}:{port}/")
        return result.stdout.strip() if result.returncode == 0 else None
    wait_for(lambda: from_client() == wanted, timeout=60, interval=0.05,
             what="node-1's pod through the joined node's NodePort")


def test_logs_and_exec_reach_its_pod_once_its_serving_csr_is_approved(cluster: Overlaid) -> None:
    c = cluster.c

    def pending() -> str | None:
        for item in c.kubectl_json("get", "csr")["items"]:
            if (item["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
                    and item["spec"]["username"] == f"system:node:{JOINED}"):
                return str(item["metadata"]["name"])
        return None
    name = wait_for(pending, timeout=30, interval=0.3, what="the joined node's kubelet-serving CSR")
    pod = cluster.pods[JOINED][0]
    refused = c.kubectl("logs", pod, check=False)
    assert refused.returncode != 0 and f"{JOINED_IP}:10250" in refused.stderr, \
        "no kubelet API on the node before its serving certificate is issued"
    request = c.kubectl_json("get", "csr", name)
    assert not (request.get("status") or {}).get("certificate"), "serving CSRs are not approved by themselves"
    c.kubectl("certificate", "approve", name)
    issued = wait_for(lambda: (c.kubectl_json("get", "csr", name).get("status") or {}).get("certificate"),
                      timeout=30, interval=0.3, what="the serving certificate issued")
    cert = x509.load_pem_x509_certificate(base64.b64decode(issued))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert JOINED_IP in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert pki.identity(cert) == (f"system:node:{JOINED}", ("system:nodes",))

    def logs() -> str | None:
        result = c.kubectl("logs", pod, check=False)
        return result.stdout if result.returncode == 0 else None
    wait_for(logs, timeout=30, interval=0.5, what="kubectl logs of the joined node's pod")
    assert c.kubectl("exec", pod, "--", "hostname").stdout.strip() == pod


def test_a_deleted_node_takes_its_overlay_entries_with_it(cluster: Overlaid) -> None:
    """Next to last: node-3 stays deleted (its agent does not register it again, as kubelet)."""
    assert "10.244.3.0/24 via 10.244.3.0 dev flannel.1" in cluster.in_node("node-2", "ip", "route")
    cluster.c.kubectl("delete", "node", "node-3", "--wait=false")

    def gone() -> bool:
        routes = cluster.in_node("node-2", "ip", "route")
        fdb = cluster.in_node("node-2", "bridge", "fdb", "show", "dev", "flannel.1")
        neigh = cluster.in_node("node-2", "ip", "neigh", "show", "dev", "flannel.1")
        return "10.244.3.0" not in routes + neigh and NODE_IP["node-3"] not in fdb
    wait_for(gone, timeout=60, interval=0.3, what="node-2 to drop node-3's overlay entries")
    assert NODE_IP["node-1"] in cluster.in_node("node-2", "bridge", "fdb", "show", "dev", "flannel.1")


def test_svcnet_down_ends_the_joined_nodes_processes(cluster: Overlaid) -> None:
    """Last: the cluster goes with the joined node still running."""
    assert cluster.joined is not None
    agent = process.read_pid(cluster.joined_dir / "nodes" / JOINED / "agent.pid")
    proxy = process.read_pid(cluster.joined_dir / "nodes" / JOINED / "proxy.pid")
    assert agent and proxy
    cluster.c.svcnet("down", "--data-dir", str(cluster.c.data_dir), check=True, timeout=120)
    assert f"stopped the joined node(s) {JOINED}" in (cluster.c.data_dir / "svcnet.log").read_text()
    assert cluster.joined.wait(timeout=5) == 0, "the join ended as on Ctrl-C"
    for pid in (agent, proxy):
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} of the joined node still runs"
    assert f"removed {cluster.c.node_namespace(JOINED)}" in cluster.joined_log.read_text()
