"""`kubectl exec` (kubectl 1.32, WebSocket v5.channel.k8s.io) against a real cluster: root, real namespaces.

One cluster and one pod are shared by the module; each test runs one command the way a user would.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


def test_discovery_lists_the_kubelet_subresources_and_no_unserved_one(cluster: SvcnetCluster) -> None:
    """What `kubectl get --raw /api/v1` shows a real kube-apiserver 1.32 to list for them."""
    resources = json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    entries = {e["name"]: e for e in resources}
    for name, kind in (("exec", "PodExecOptions"), ("attach", "PodAttachOptions"),
                       ("portforward", "PodPortForwardOptions")):
        assert entries[f"pods/{name}"] == {"name": f"pods/{name}", "singularName": "", "namespaced": True,
                                           "kind": kind, "verbs": ["create", "get"]}
    assert entries["nodes/proxy"]["verbs"] == ["create", "delete", "get", "patch", "update"]
    assert "pods/eviction" not in entries


def test_openapi_describes_exec_as_connect_get_and_post(cluster: SvcnetCluster) -> None:
    doc = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3/api/v1").stdout)
    item = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert {item["get"]["x-kubernetes-action"], item["post"]["x-kubernetes-action"]} == {"connect"}
    assert {"command", "container", "stdin", "stdout", "stderr", "tty"} <= {p["name"] for p in item["parameters"]}


# ---------------------------------------------------------------- through the kubelet API

def _first_line(cluster: SvcnetCluster, *args: str) -> str:
    """The first line a long-running kubectl command prints; it is ended after it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env.update(HOME=str(cluster.home), KUBECONFIG=str(cluster.data_dir / "kubeconfig"))
    command = subprocess.Popen([KUBECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert command.stdout is not None and command.stderr is not None
        line = command.stdout.readline()  # blocks until the first relayed line (or kubectl's exit)
        assert line, command.stderr.read()
        return line
    finally:
        command.terminate()
        command.wait(timeout=30)


@pytest.fixture(scope="module")
def ticker(cluster: SvcnetCluster) -> Iterator[str]:
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: ticker}
        spec:
          containers:
          - {name: main, image: busybox, command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done']}
        """))
    wait_for(lambda: is_running_ready(cluster.pod("ticker")), timeout=60, interval=0.3, what="ticker Running")
    yield "ticker"
    cluster.kubectl("delete", "pod", "ticker", "--grace-period=0", "--wait=false", check=False)


def test_attach_shows_what_the_container_writes_from_then_on(cluster: SvcnetCluster, ticker: str) -> None:
    assert _first_line(cluster, "attach", ticker).startswith("tick ")


def test_logs_tail_and_follow_come_through_the_kubelet(cluster: SvcnetCluster, ticker: str) -> None:
    tail = cluster.kubectl("logs", ticker, "--tail", "2").stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith("tick ") for line in tail)
    first = int(tail[-1].split()[1])
    followed = _first_line(cluster, "logs", "-f", "--tail", "1", ticker)
    assert followed.startswith("tick ") and int(followed.split()[1]) >= first


def test_node_proxy_reaches_the_nodes_kubelet(cluster: SvcnetCluster) -> None:
    node = cluster.pod(POD)["spec"]["nodeName"]
    assert cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/healthz").stdout == "ok"
    pods = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/pods").stdout)
    assert POD in {p["metadata"]["name"] for p in pods["items"]}
    endpoint = cluster.kubectl_json("get", "node", node)["status"]["daemonEndpoints"]["kubeletEndpoint"]
    assert endpoint == {"Port": 10250}


def _kubelet_get(cluster: SvcnetCluster, node_ip: str, path: str, token: str = "") -> tuple[int, str]:
    """GET https://node_ip:10250/path from the cluster's client machine (its LAN), as a curl would."""
    script = textwrap.dedent(f"""\
        import ssl, sys, urllib.request, urllib.error
        ctx = ssl.create_default_context(cafile={str(cluster.data_dir / "pki" / "ca.crt")!r})
        req = urllib.request.Request("https://{node_ip}:10250{path}")
        if {token!r}:
            req.add_header("Authorization", "Bearer " + {token!r})
        try:
            r = urllib.request.urlopen(req, context=ctx, timeout=30)
            print(r.status); sys.stdout.write(r.read().decode())
        except urllib.error.HTTPError as e:
            print(e.code); sys.stdout.write(e.read().decode())
        """)
    result = cluster.in_namespace(cluster.client_namespace, sys.executable, "-c", script, timeout=60)
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.partition("\n")
    return int(status), body


def test_the_kubelet_api_refuses_anonymous_and_unauthorized_callers(cluster: SvcnetCluster) -> None:
    node = cluster.pod(POD)["spec"]["nodeName"]
    node_ip = next(a["address"] for a in cluster.kubectl_json("get", "node", node)["status"]["addresses"]
                   if a["type"] == "InternalIP")
    assert _kubelet_get(cluster, node_ip, "/healthz") == (401, "Unauthorized")
    token = cluster.kubectl("create", "token", "default").stdout.strip()
    assert _kubelet_get(cluster, node_ip, f"/containerLogs/default/{POD}/main", token) == (
        403, "Forbidden (user=system:serviceaccount:default:default, verb=get, resource=nodes, subresource=proxy)")


def test_the_kubelets_run_answers_a_commands_output(cluster: SvcnetCluster) -> None:
    node = cluster.pod(POD)["spec"]["nodeName"]
    result = cluster.kubectl("create", "--raw", f"/api/v1/nodes/{node}/proxy/run/default/{POD}/main?cmd=hostname",
                             "-f", "-", input="")
    assert result.stdout == f"{POD}\n"


def test_exec_in_a_container_that_has_exited_says_so_as_kubectl_does(cluster: SvcnetCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: done}
        spec:
          restartPolicy: Never
          containers:
          - {name: main, image: busybox, command: [sleep, "3600"]}
          - {name: quick, image: busybox, command: ["true"]}
        """))

    def quick_exited(pod: dict) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return any(s["name"] == "quick" and "terminated" in (s.get("state") or {}) for s in statuses)

    try:
        cluster.wait_pod("done", quick_exited, what="container quick exited")
        result = cluster.kubectl("exec", "done", "-c", "quick", "--", "true", check=False)
        assert result.returncode != 0
        assert 'unable to upgrade connection: container not found ("quick")' in result.stderr
    finally:
        cluster.kubectl("delete", "pod", "done", "--wait=false", check=False)


# ---- volumes and the service-account token (issue 15, item 3), in the same cluster

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
READER = "volume-reader"
LIST_PODS = (f'curl -s -o /dev/null -w "%{{http_code}}" --cacert {SA_DIR}/ca.crt '
             f'-H "Authorization: Bearer $(cat {SA_DIR}/token)" '
             "https://kubernetes.default.svc/api/v1/namespaces/default/pods")


def host_mounts() -> list[str]:
    """The host's mount table without nsfs mounts (pod network namespaces come and go with other pods)."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.partition(" - ")[2].split(" ", 1)[0] != "nsfs"]


def mounts_of_ours(lines: list[str], data_dir: object) -> list[str]:
    """Mounts at the paths the volume pods use or under the cluster's data dir (the machine is shared:
    other mounts may come and go meanwhile)."""
    roots = (str(data_dir), "/etc", "/run", "/var/run")
    return [line for line in lines if line.split(" ")[4].startswith(roots)]


@pytest.fixture(scope="module")
def host_before(cluster: SvcnetCluster) -> dict[str, object]:
    """The host's mounts and /etc before any volume pod, and the default ServiceAccount in place (the
    admission plugin mounts a token only for a ServiceAccount that exists)."""
    wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
             timeout=60, interval=0.3, what="the default ServiceAccount")
    return {"mounts": host_mounts(), "etc": sorted(os.listdir("/etc"))}


@pytest.fixture(scope="module")
def reader(cluster: SvcnetCluster, host_before: dict[str, object]) -> str:
    cluster.kubectl("create", "configmap", "app-config", "--from-literal=color=blue")
    cluster.kubectl("create", "secret", "generic", "app-secret", "--from-literal=password=hunter2")
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {READER}}}
        spec:
          containers:
          - name: main
            image: busybox
            command: [sleep, "3600"]
            env:
            - {{name: COLOR, valueFrom: {{configMapKeyRef: {{name: app-config, key: color}}}}}}
            - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: app-secret, key: password}}}}}}
            volumeMounts:
            - {{name: config, mountPath: /etc/config}}
          volumes:
          - {{name: config, configMap: {{name: app-config}}}}
        """))
    wait_for(lambda: is_running_ready(cluster.pod(READER)), timeout=60, interval=0.3, what=f"{READER} Running")
    return READER


def test_env_and_a_configmap_volume_show_the_values_and_an_edit_reaches_only_the_file(
        cluster: SvcnetCluster, reader: str) -> None:
    shown = cluster.kubectl("exec", reader, "--", "sh", "-c", 'echo "$COLOR $PASSWORD"; cat /etc/config/color')
    assert shown.stdout == "blue hunter2\nblue", shown.stderr
    cluster.kubectl("patch", "configmap", "app-config", "-p", '{"data":{"color":"green"}}')
    # kubelet promises an edit within its sync period and cache TTL (a minute); the wait allows for a loaded machine.
    wait_for(lambda: cluster.kubectl("exec", reader, "--", "cat", "/etc/config/color").stdout == "green",
             timeout=90, interval=1.0, what="the edited ConfigMap in the volume")
    env = cluster.kubectl("exec", reader, "--", "sh", "-c", 'echo "$COLOR"')
    assert env.stdout == "blue\n", env.stderr
    assert not os.path.lexists("/etc/config")  # the mountPath exists only in the pod


def test_the_default_service_account_token_is_refused_then_allowed_after_a_rolebinding(
        cluster: SvcnetCluster, reader: str) -> None:
    listed = cluster.kubectl("exec", reader, "--", "sh", "-c", f"cat {SA_DIR}/namespace; echo; {LIST_PODS}")
    assert listed.stdout == "default\n403"
    cluster.kubectl("create", "rolebinding", "default-view", "--clusterrole=view",
                    "--serviceaccount=default:default")
    wait_for(lambda: cluster.kubectl("exec", reader, "--", "sh", "-c", LIST_PODS).stdout == "200",
             timeout=30, interval=0.5, what="200 after the RoleBinding")


def test_the_official_python_client_works_in_cluster(cluster: SvcnetCluster, reader: str) -> None:
    cluster.kubectl("create", "rolebinding", "default-view-python", "--clusterrole=view",
                    "--serviceaccount=default:default")
    script = ("from kubernetes import client, config; config.load_incluster_config(); "
              "print(sorted(p.metadata.name for p in client.CoreV1Api().list_namespaced_pod('default').items))")
    # sys.executable is the project venv's python: the pod's processes see the node's files.
    result = cluster.kubectl("exec", reader, "--", sys.executable, "-c", script, check=False)
    assert result.returncode == 0, result.stderr
    assert f"'{reader}'" in result.stdout


def test_automount_false_means_no_token_in_the_pod(cluster: SvcnetCluster, host_before: dict[str, object]) -> None:
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: no-token}
        spec:
          automountServiceAccountToken: false
          containers:
          - {name: main, image: busybox, command: [sleep, "3600"]}
        """))
    wait_for(lambda: is_running_ready(cluster.pod("no-token")), timeout=60, interval=0.3, what="no-token Running")
    assert "volumes" not in cluster.pod("no-token")["spec"]
    assert cluster.kubectl("exec", "no-token", "--", "ls", SA_DIR, check=False).returncode != 0


def test_the_host_is_unchanged_after_the_volume_pods_go(cluster: SvcnetCluster, reader: str,
                                                        host_before: dict[str, object]) -> None:
    cluster.kubectl("delete", "pod", reader, "no-token", "--ignore-not-found", "--wait=true", timeout=120)
    before = host_before["mounts"]
    assert isinstance(before, list)
    assert mounts_of_ours(host_mounts(), cluster.data_dir) == mounts_of_ours(before, cluster.data_dir)
    assert sorted(os.listdir("/etc")) == host_before["etc"]
    assert not os.path.lexists("/run/secrets")
    leftovers = list((cluster.data_dir).rglob(f"*_{READER}_*"))
    assert leftovers == []
