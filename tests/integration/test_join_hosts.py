"""`svcnet node join --host 2` onto one `svcnet up --hosts 2 --nodes 2` cluster (node-1 on host 1, node-2
on host 2): the joined node-3 is the next node on host 2's LAN (192.168.1.108), runs the VXLAN overlay
with flannel's ServiceAccount token, gets its kubelet serving certificate through a kubelet-serving CSR
an admin approves (so `kubectl logs` and `kubectl exec` reach its pods), and `svcnet down` of the
cluster ends its processes (the last test).

The seed's hostnames Deployment (3 replicas, one per node) gives a pod on each node.
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

from svcnet.core import pki
from svcnet.kernel import process
from tests.integration.apiserver_harness import KUBECTL, REPO, stop_process
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.integration.test_node_join import _sweep
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "bridge", "nsenter", "curl")) or not shutil.which(KUBECTL),
    reason="needs root (network namespaces), ip, bridge, nsenter, curl and kubectl")

JOINED, JOINED_IP = "node-3", "192.168.1.108"  # the next node index, placed on host 2's LAN


class JoinedOnHost2:
    def __init__(self, cluster: SvcnetCluster, data_dir: Path, log: Path) -> None:
        self.c, self.data_dir, self.log = cluster, data_dir, log
        self.process: subprocess.Popen[bytes] | None = None
        self.pods: dict[str, tuple[str, str]] = {}  # node -> (pod name, pod IP)

    def in_node(self, node: str, *command: str) -> str:
        result = self.c.in_namespace(self.c.node_namespace(node), *command)
        assert result.returncode == 0, f"{command} in {node}: {result.stderr}"
        return result.stdout

    def curl(self, node: str, url: str) -> str | None:
        result = self.c.in_namespace(self.c.node_namespace(node), "curl", "-s", "--max-time", "2", url)
        return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def _join(c: SvcnetCluster, base: Path, node: JoinedOnHost2) -> subprocess.Popen[bytes]:
    created = c.svcnet("token", "create", "--data-dir", str(c.data_dir), check=True)
    token, command = created.stdout.splitlines()[:2]
    flannel_token = base / "flannel.token"
    flannel_token.write_text(c.kubectl("create", "token", "-n", "kube-flannel", "flannel").stdout)
    argv = [sys.executable, "-m", "svcnet", "node", "join", "--server", f"https://127.0.0.1:{c.port}",
            "--token", token, "--ca-cert-hash", command.split("--ca-cert-hash ")[1], "--data-dir", str(node.data_dir),
            "--lan-of", str(c.data_dir), "--host", "2", "--overlay-token-file", str(flannel_token)]
    with open(node.log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
    wait_for(lambda: proc.poll() is not None or b"joined; stop it" in node.log.read_bytes(), timeout=120,
             interval=0.2, what="svcnet node join to start the node")
    assert proc.poll() is None, node.log.read_text()
    return proc


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JoinedOnHost2]:
    base = tmp_path_factory.mktemp("join-hosts")
    with running_cluster(base, nodes=2, up_args=("--hosts", "2")) as c:
        node = JoinedOnHost2(c, base / "joined", base / "joined.log")
        try:
            node.process = _join(c, base, node)

            def ready() -> bool:
                got = c.kubectl("get", "node", JOINED, "-o", "json", check=False)
                return got.returncode == 0 and any(x["type"] == "Ready" and x["status"] == "True"
                                                   for x in json.loads(got.stdout)["status"]["conditions"])
            wait_for(ready, timeout=60, interval=0.5, what=f"{JOINED} Ready")
            c.kubectl("apply", "-f", str(Path(REPO) / "examples" / "hostnames.yaml"))

            def all_ready() -> list[dict[str, Any]] | None:
                pods = c.pods("app=hostnames")
                return pods if len(pods) == 3 and all(is_running_ready(p) for p in pods) else None
            for pod in wait_for(all_ready, timeout=90, interval=0.5, what="hostnames pods ready"):
                node.pods[pod["spec"]["nodeName"]] = (pod["metadata"]["name"], pod["status"]["podIP"])
            assert sorted(node.pods) == ["node-1", "node-2", JOINED], "hostnames spreads one pod per node"
            yield node
        finally:
            if node.process is not None:
                stop_process(node.process, grace=60)
            _sweep(node.data_dir)


def test_the_node_joins_host_2s_lan_as_the_next_node(joined: JoinedOnHost2) -> None:
    addresses = joined.c.kubectl_json("get", "node", JOINED)["status"]["addresses"]
    assert {"type": "InternalIP", "address": JOINED_IP} in addresses
    assert "via 192.168.1.1 dev eth0" in joined.in_node(JOINED, "ip", "route", "get", "192.168.0.106")
    assert "via" not in joined.in_node(JOINED, "ip", "route", "get", "192.168.1.107")  # node-2: same LAN
    flannel = joined.data_dir / "kubeconfigs" / "flannel.conf"
    assert flannel.stat().st_mode & 0o777 == 0o600


def test_its_pods_reach_host_1_only_through_vxlan(joined: JoinedOnHost2) -> None:
    mac = json.loads(joined.in_node(JOINED, "ip", "-j", "link", "show", "flannel.1"))[0]["address"]
    notes = joined.c.kubectl_json("get", "node", JOINED)["metadata"]["annotations"]
    assert notes["flannel.alpha.coreos.com/public-ip"] == JOINED_IP  # written with flannel's ServiceAccount

    def node_1_has_entries() -> bool:
        routes = joined.in_node("node-1", "ip", "route")
        fdb = joined.in_node("node-1", "bridge", "fdb", "show", "dev", "flannel.1")
        return (re.search(r"10\.244\.3\.0/24 via 10\.244\.3\.0 dev flannel\.1 .*onlink", routes) is not None
                and f"{mac} dst {JOINED_IP} self permanent" in fdb)
    wait_for(node_1_has_entries, timeout=30, interval=0.3, what="node-1's route and FDB entry for the joined node")
    assert f"10.244.3.0/24 via {JOINED_IP} dev eth0" in joined.in_node("node-2", "ip", "route")  # same host: direct
    name1, ip1 = joined.pods["node-1"]
    before = joined.in_node(JOINED, "ip", "-s", "-j", "link", "show", "flannel.1")
    sent_before = json.loads(before)[0]["stats64"]["tx"]["packets"]
    pod_ns = f"svcnet-{joined.c.cluster_id}-pod-"  # the joined node's hostnames pod's namespace
    uid = joined.c.kubectl_json("get", "pod", joined.pods[JOINED][0])["metadata"]["uid"].replace("-", "")[:10]

    def from_joined_pod() -> str | None:
        result = joined.c.in_namespace(pod_ns + uid, "curl", "-s", "--max-time", "2", f"http://{ip1}:9376")
        return result.stdout.strip() or None
    assert wait_for(from_joined_pod, timeout=30, interval=0.3, what="node-1's pod from the joined node's") == name1
    after = json.loads(joined.in_node(JOINED, "ip", "-s", "-j", "link", "show", "flannel.1"))[0]
    assert after["stats64"]["tx"]["packets"] >= sent_before + 3, "it left the joined node by flannel.1"

    agent = joined.c.agent_pid("node-1")
    assert agent is not None
    os.kill(agent, signal.SIGSTOP)  # so that it does not put back what is removed before we look
    try:
        joined.in_node("node-1", "bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", JOINED_IP)
        assert from_joined_pod() is None, "without node-1's FDB entry its replies have no way to host 2"
    finally:
        os.kill(agent, signal.SIGCONT)
    assert wait_for(from_joined_pod, timeout=60, interval=0.5, what="node-1's agent to repair the entry") == name1


def test_the_seed_service_vip_reaches_the_joined_nodes_pod_from_host_1(joined: JoinedOnHost2) -> None:
    vip = joined.c.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]
    wanted = joined.pods[JOINED][0]
    wait_for(lambda: joined.curl("node-1", f"http://{vip}") == wanted, timeout=60, interval=0.05,
             what=f"the joined node's pod through {vip} from node-1")


def test_a_nodeport_on_the_joined_node_reaches_a_pod_on_host_1(joined: JoinedOnHost2) -> None:
    joined.c.kubectl("expose", "deployment", "hostnames", "--name", "hostnames-np", "--type", "NodePort",
                     "--port", "80", "--target-port", "9376")
    port = joined.c.kubectl_json("get", "svc", "hostnames-np")["spec"]["ports"][0]["nodePort"]
    wanted = joined.pods["node-1"][0]

    def from_client() -> str | None:
        result = joined.c.in_namespace(joined.c.client_namespace, "curl", "-s", "--max-time", "2",
                                       f"http://{JOINED_IP}:{port}/")
        return result.stdout.strip() if result.returncode == 0 else None
    wait_for(lambda: from_client() == wanted, timeout=60, interval=0.05,
             what="node-1's pod through the joined node's NodePort")


def test_logs_and_exec_reach_its_pod_once_its_serving_csr_is_approved(joined: JoinedOnHost2) -> None:
    c = joined.c

    def pending() -> str | None:
        for item in c.kubectl_json("get", "csr")["items"]:
            if (item["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
                    and item["spec"]["username"] == f"system:node:{JOINED}"):
                return str(item["metadata"]["name"])
        return None
    name = wait_for(pending, timeout=30, interval=0.3, what="the joined node's kubelet-serving CSR")
    pod = joined.pods[JOINED][0]
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


def test_svcnet_down_ends_the_joined_nodes_processes(joined: JoinedOnHost2) -> None:
    """Last: the cluster goes with the joined node still running."""
    assert joined.process is not None
    agent = process.read_pid(joined.data_dir / "nodes" / JOINED / "agent.pid")
    proxy = process.read_pid(joined.data_dir / "nodes" / JOINED / "proxy.pid")
    assert agent and proxy
    joined.c.svcnet("down", "--data-dir", str(joined.c.data_dir), check=True, timeout=120)
    assert f"stopped the joined node(s) {JOINED}" in (joined.c.data_dir / "svcnet.log").read_text()
    assert joined.process.wait(timeout=5) == 0, "the join ended as on Ctrl-C"
    for pid in (agent, proxy):
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} of the joined node still runs"
    assert f"removed {joined.c.node_namespace(JOINED)}" in joined.log.read_text()
