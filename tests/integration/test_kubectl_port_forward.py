"""`kubectl port-forward` through the API server's proxy to the kubelet's /portForward (a real cluster)."""
from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import KUBECTL, REPO, free_port
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.waiting import wait_for

# The kubelet's port-forward protocols are svcnet.agent.portforward's (merged from another branch)
pytest.importorskip("svcnet.agent.portforward")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl")),
    reason="needs root (network namespaces), ip, nsenter and kubectl")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        c.kubectl("apply", "-f", str(Path(REPO) / "examples" / "hostnames.yaml"))
        wait_for(lambda: (pods := c.pods("app=hostnames")) and all(is_running_ready(p) for p in pods),
                 timeout=90, interval=0.3, what="hostnames Running")
        yield c


def _get(port: int) -> str | None:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode().strip()
    except OSError:
        return None


@pytest.mark.parametrize(("target", "websockets"), [
    ("pod", "true"), ("svc/hostnames", "true"), ("deploy/hostnames", "true"),
    ("pod", "false"),  # kubectl's SPDY/3.1 upgrade, spliced by the API server as the WebSocket tunnel is
])
def test_port_forward_reaches_a_hostnames_pod(cluster: SvcnetCluster, target: str, websockets: str) -> None:
    pods = [p["metadata"]["name"] for p in cluster.pods("app=hostnames")]
    resource = f"pod/{pods[0]}" if target == "pod" else target
    remote = "80" if target.startswith("svc/") else "9376"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env.update(HOME=str(cluster.home), KUBECONFIG=str(cluster.data_dir / "kubeconfig"),
               KUBECTL_PORT_FORWARD_WEBSOCKETS=websockets)
    forward = subprocess.Popen([KUBECTL, "port-forward", resource, f"{port}:{remote}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        answer = wait_for(lambda: _get(port), timeout=60, interval=0.3, what=f"an answer through {resource}")
        assert answer in pods if target != "pod" else answer == pods[0]
        assert _get(port) in pods  # a second connection over the same session
    finally:
        forward.terminate()
        out, err = forward.communicate(timeout=30)
    # kubectl resolves a Service's port to its pods' target port before it forwards
    assert f"Forwarding from 127.0.0.1:{port} -> 9376" in out, err
