"""`svcnet token create` → `svcnet node join` on one `svcnet up` cluster (one node of its own): the
joined node gets its own identity through a CSR the controllers approve and sign, becomes Ready,
runs a pod the Service VIP reaches from the other node, and is confined as a node; bad and expired
tokens are refused with 401 and create nothing.

The joined node simulates another machine as the next node namespace on the cluster's LAN
(`--lan-of`); it shares no file with the cluster but the network plan."""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import KUBECTL, REPO, stop_process
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "curl")) or not shutil.which(KUBECTL),
    reason="needs root (network namespaces), ip, nsenter, curl and kubectl")

JOINED = "node-2"  # the next node of a 1-node cluster's LAN
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


class Joined:
    def __init__(self, cluster: SvcnetCluster, data_dir: Path, process: subprocess.Popen[bytes] | None, log: Path,
                 join_output: str) -> None:
        self.cluster, self.data_dir, self.process, self.log = cluster, data_dir, process, log
        self.join_output = join_output
        self.hash = ""

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfigs" / f"kubelet-{JOINED}.conf"

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(HOME=str(self.cluster.home), KUBECONFIG=str(self.kubeconfig))
        return subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=60)


def _sweep(data_dir: Path) -> None:
    """Processes of the joined node a failed stop left (by pid, found by their data dir)."""
    marker = str(data_dir).encode()
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and int(entry) != os.getpid() and marker in Path(f"/proc/{entry}/cmdline").read_bytes():
                os.kill(int(entry), signal.SIGKILL)


def _start_join(cluster: SvcnetCluster, node_dir: Path, log: Path, token: str, hash_: str) -> subprocess.Popen[bytes]:
    """`svcnet node join` in the background, returned once it says the node runs."""
    argv = [sys.executable, "-m", "svcnet", "node", "join", "--server", f"https://127.0.0.1:{cluster.port}",
            "--token", token, "--ca-cert-hash", hash_, "--data-dir", str(node_dir), "--lan-of", str(cluster.data_dir)]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                   start_new_session=True)
    wait_for(lambda: process.poll() is not None or b"joined; stop it" in log.read_bytes(), timeout=120,
             interval=0.2, what="svcnet node join to start the node")
    assert process.poll() is None, log.read_text()
    return process


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Joined]:
    base = tmp_path_factory.mktemp("node-join")
    with running_cluster(base, nodes=1) as cluster:
        created = cluster.svcnet("token", "create", "--data-dir", str(cluster.data_dir), check=True)
        token, command = created.stdout.splitlines()[:2]
        assert command.startswith("svcnet node join --server https://")
        node_dir = base / "joined"
        node = Joined(cluster, node_dir, None, base / "joined.log", created.stdout)
        node.hash = command.split("--ca-cert-hash ")[1]
        try:
            node.process = _start_join(cluster, node_dir, node.log, token, node.hash)
            yield node
        finally:
            if node.process is not None:
                stop_process(node.process, grace=60)
            _sweep(node_dir)


def test_the_joined_node_is_ready_with_its_csr_approved_and_issued(joined: Joined) -> None:
    c = joined.cluster

    def ready() -> bool:
        node = c.kubectl("get", "node", JOINED, "-o", "json", check=False)
        return node.returncode == 0 and any(cond["type"] == "Ready" and cond["status"] == "True"
                                            for cond in json.loads(node.stdout)["status"]["conditions"])
    wait_for(ready, timeout=60, interval=0.5, what=f"{JOINED} Ready")
    table = c.kubectl("get", "csr").stdout
    row = next(line for line in table.splitlines() if line.startswith("node-csr-"))
    assert "kubernetes.io/kube-apiserver-client-kubelet" in row
    assert "system:bootstrap:" in row
    assert row.split()[-1] == "Approved,Issued"
    key = joined.data_dir / "pki" / "kubelet-client.key"
    assert (key.stat().st_mode & 0o777, joined.kubeconfig.stat().st_mode & 0o777) == (0o600, 0o600)


def test_a_pod_on_the_joined_node_serves_through_the_service_vip_from_the_other_node(joined: Joined) -> None:
    c = joined.cluster
    c.kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: on-joined, labels: {{app: on-joined}}}}
spec:
  nodeName: {JOINED}
  containers:
  - {{name: web, image: k8s.gcr.io/serve_hostname, ports: [{{containerPort: 9376}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: on-joined}}
spec:
  selector: {{app: on-joined}}
  ports: [{{port: 80, targetPort: 9376}}]
""")
    c.wait_pod("on-joined", is_running_ready, timeout=60)
    vip = c.kubectl_json("get", "service", "on-joined")["spec"]["clusterIP"]

    def answer(node: str) -> str | None:
        out = c.in_namespace(c.node_namespace(node), "curl", "-s", "--max-time", "2", f"http://{vip}:80/")
        return out.stdout.strip() or None
    assert wait_for(lambda: answer("node-1"), timeout=30, interval=0.5, what="the VIP from node-1") == "on-joined"
    # and through the joined node's own proxy, which runs with the node's identity
    assert wait_for(lambda: answer(JOINED), timeout=30, interval=0.5, what=f"the VIP from {JOINED}") == "on-joined"
    proxy_log = (joined.data_dir / "nodes" / JOINED / "proxy.log").read_text()
    assert "forbidden" not in proxy_log.lower(), proxy_log[-2000:]


def test_the_joined_node_is_a_node_identity_confined_by_the_node_authorizer(joined: Joined) -> None:
    c = joined.cluster
    c.kubectl("create", "secret", "generic", "not-for-node-2", "--from-literal=k=v")
    whoami = joined.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == f"system:node:{JOINED}", whoami.stderr
    assert joined.kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "no"
    refused = joined.kubectl("get", "secret", "not-for-node-2")
    assert refused.returncode != 0
    assert f"no relationship found between node '{JOINED}' and this object" in refused.stderr
    other = joined.kubectl("get", "node", "node-1")
    assert other.returncode != 0
    assert f"node '{JOINED}' cannot read 'node-1', only its own Node object" in other.stderr


def _post_csr(port: int, token: str) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # only the status code matters here
    body = json.dumps({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                       "metadata": {"name": "intruder"}, "spec": {}}).encode()
    req = urllib.request.Request(f"https://127.0.0.1:{port}{CSRS}", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_bad_and_expired_tokens_are_refused_and_create_nothing(joined: Joined, tmp_path: Path) -> None:
    c = joined.cluster
    def bootstrap_csrs() -> list[str]:  # the running node's own serving CSR may come and go meanwhile
        return sorted(item["metadata"]["name"] for item in c.kubectl_json("get", "csr")["items"]
                      if item["spec"]["signerName"] != "kubernetes.io/kubelet-serving")
    before = bootstrap_csrs()
    expiring = c.svcnet("token", "create", "--ttl", "1s", "--data-dir", str(c.data_dir), check=True).stdout.split()[0]
    wait_for(lambda: _post_csr(c.port, expiring) == 401, timeout=30, interval=0.5, what="the token to expire")
    assert _post_csr(c.port, "abcdef.0123456789abcdef") == 401
    join = c.svcnet("node", "join", "--server", f"https://127.0.0.1:{c.port}", "--token", expiring,
                    "--discovery-token-unsafe-skip-ca-verification", "--name", "node-9",
                    "--data-dir", str(tmp_path / "refused"))
    assert join.returncode == 1
    assert f"no JWS signed token in the cluster-info ConfigMap for token ID '{expiring[:6]}'" in join.stderr
    assert bootstrap_csrs() == before
    assert not (tmp_path / "refused" / "kubeconfigs").exists()
    # a deleted token (kubeadm token delete) no longer authenticates
    used = joined.join_output.split()[0]
    assert _post_csr(c.port, used) != 401  # still valid: refused only as an invalid object
    deleted = c.svcnet("token", "delete", used[:6], "--data-dir", str(c.data_dir), check=True)
    assert deleted.stdout.strip() == f'bootstrap token "{used[:6]}" deleted'
    assert _post_csr(c.port, used) == 401
    assert used not in c.svcnet("token", "list", "--data-dir", str(c.data_dir), check=True).stdout
    # the token cleaner deletes the expired token's Secret
    wait_for(lambda: c.kubectl("get", "secret", "-n", "kube-system", f"bootstrap-token-{expiring[:6]}",
                               check=False).returncode != 0, timeout=30, interval=0.5, what="the token cleaner")


def test_a_restarted_node_keeps_its_identity_without_the_token(joined: Joined) -> None:
    """As kubelet with a bootstrapped kubeconfig: the (now deleted) token is not needed again, the
    node is the same node-2 and it is Ready again; no second client CSR is made (its serving CSR,
    never approved here, is asked for again, as kubelet's certificate manager does at a start)."""
    c = joined.cluster

    def client_csrs() -> int:
        return sum(item["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
                   for item in c.kubectl_json("get", "csr")["items"])
    csrs = client_csrs()
    assert joined.process is not None
    stop_process(joined.process, grace=60)
    joined.process = None
    deleted_token = joined.join_output.split()[0]
    restarted = dt.datetime.now(dt.UTC)
    joined.process = _start_join(c, joined.data_dir, joined.log, deleted_token, joined.hash)
    assert b"already holds a current identity for system:node:node-2" in joined.log.read_bytes()

    def renewed_by_the_new_agent() -> bool:
        lease = c.kubectl_json("get", "lease", "-n", "kube-node-lease", JOINED)
        return dt.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00")) >= restarted
    wait_for(renewed_by_the_new_agent, timeout=60, interval=0.5, what=f"{JOINED}'s Lease renewed after the restart")
    node = c.kubectl_json("get", "node", JOINED)
    assert any(cond["type"] == "Ready" and cond["status"] == "True" for cond in node["status"]["conditions"])
    assert client_csrs() == csrs


def test_kubectl_certificate_approve_issues_a_user_certificate(joined: Joined, tmp_path: Path) -> None:
    """Requests to kubernetes.io/kube-apiserver-client wait for a person: kubectl approves (a
    protobuf PUT on /approval), csrsigning issues, and the certificate authenticates as its CN."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from svcnet.apiserver.credentials import component_kubeconfig_text
    from svcnet.core import pki

    c = joined.cluster
    key = pki.new_key()
    request = (x509.CertificateSigningRequestBuilder().subject_name(pki.subject("jane", ("dev",)))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    c.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "jane"},
        "spec": {"request": base64.b64encode(request).decode(), "signerName": "kubernetes.io/kube-apiserver-client",
                 "usages": ["client auth"], "expirationSeconds": 3600}}))
    assert c.kubectl("get", "csr", "jane").stdout.split()[-1] == "Pending"
    c.kubectl("certificate", "approve", "jane")
    issued = wait_for(lambda: c.kubectl_json("get", "csr", "jane").get("status", {}).get("certificate"),
                      timeout=30, interval=0.3, what="jane's certificate")
    assert c.kubectl("get", "csr", "jane").stdout.split()[-1] == "Approved,Issued"
    cert_pem = base64.b64decode(issued)
    assert pki.identity(x509.load_pem_x509_certificate(cert_pem)) == ("jane", ("dev",))
    kubeconfig = tmp_path / "jane.conf"
    kubeconfig.write_text(component_kubeconfig_text(f"https://127.0.0.1:{c.port}", (c.data_dir / "pki" / "ca.crt")
                                                    .read_bytes(), "jane", cert_pem, pki.key_pem(key)))
    whoami = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o",
                             "jsonpath={.status.userInfo.username}"], capture_output=True, text=True, timeout=60)
    assert whoami.stdout == "jane", whoami.stderr
