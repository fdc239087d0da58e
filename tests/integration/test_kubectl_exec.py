"""`kubectl exec` (kubectl 1.32, WebSocket v5.channel.k8s.io) against a real cluster: root, real namespaces.

One cluster and one pod are shared by the module; each test runs one command the way a user would.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator

import pytest

from tests.integration.apiserver_harness import KUBECTL
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready, running_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "script", "setsid")),
    reason="needs root (network namespaces), ip, nsenter, kubectl, script and setsid")

POD = "exec-target"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        c.kubectl("apply", "-f", "-", input=textwrap.dedent(f"""\
            apiVersion: v1
            kind: Pod
            metadata: {{name: {POD}}}
            spec:
              containers:
              - {{name: main, image: busybox, command: [sleep, "3600"]}}
            """))
        wait_for(lambda: is_running_ready(c.pod(POD)), timeout=60, interval=0.3, what=f"{POD} Running")
        yield c


def test_exec_prints_the_commands_stdout(cluster: SvcnetCluster) -> None:
    result = cluster.kubectl("exec", POD, "--", "hostname")
    assert result.stdout == f"{POD}\n"


def test_exec_exits_with_the_commands_exit_code(cluster: SvcnetCluster) -> None:
    result = cluster.kubectl("exec", POD, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (result.returncode, result.stdout) == (3, "out\n")
    assert "err\n" in result.stderr
    assert "command terminated with exit code 3" in result.stderr


def test_exec_with_stdin_passes_input_through_and_ends_at_eof(cluster: SvcnetCluster) -> None:
    result = cluster.kubectl("exec", "-i", POD, "--", "cat", input="hi\n")
    assert result.stdout == "hi\n"


def test_exec_sees_the_pods_resolv_conf(cluster: SvcnetCluster) -> None:
    result = cluster.kubectl("exec", POD, "--", "cat", "/etc/resolv.conf")
    assert "nameserver 10.96.0.10" in result.stdout


def test_exec_in_an_unknown_container_is_refused(cluster: SvcnetCluster) -> None:
    result = cluster.kubectl("exec", POD, "-c", "nope", "--", "true", check=False)
    assert result.returncode != 0
    assert "container nope is not valid" in result.stderr


def test_exec_with_a_tty_runs_on_a_terminal_and_keeps_the_exit_code(cluster: SvcnetCluster) -> None:
    """kubectl only asks for a TTY when its own stdin is one: `script` gives it a pseudo-terminal."""
    kubectl = f"KUBECONFIG={cluster.data_dir / 'kubeconfig'} {KUBECTL} exec -ti {POD} -- sh -c 'tty; exit 4'"
    result = subprocess.run(["script", "-qec", kubectl, "/dev/null"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60, env={**os.environ, "HOME": str(cluster.home)})
    assert "/dev/pts/" in result.stdout
    assert "not a tty" not in result.stdout
    assert result.returncode == 4


def test_discovery_lists_pods_exec_and_no_unserved_subresource(cluster: SvcnetCluster) -> None:
    """What `kubectl get --raw /api/v1` shows a real kube-apiserver 1.32 to list for exec."""
    resources = json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    entries = {e["name"]: e for e in resources}
    assert entries["pods/exec"] == {"name": "pods/exec", "singularName": "", "namespaced": True,
                                    "kind": "PodExecOptions", "verbs": ["create", "get"]}
    assert not {"pods/attach", "pods/portforward", "pods/eviction"} & set(entries)


def test_openapi_describes_exec_as_connect_get_and_post(cluster: SvcnetCluster) -> None:
    doc = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3/api/v1").stdout)
    item = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert {item["get"]["x-kubernetes-action"], item["post"]["x-kubernetes-action"]} == {"connect"}
    assert {"command", "container", "stdin", "stdout", "stderr", "tty"} <= {p["name"] for p in item["parameters"]}
