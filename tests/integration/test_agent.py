"""The node agent in a real cluster (root, real namespaces, real kubectl): `svcnet up --nodes 2`.

One cluster is shared by the module (the seed's hostnames Deployment plus
pods each test makes for itself); the last test brings it down (`down` leaves
nothing). The prerequisites' test (fail fast) starts an `up` of its own.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.kernel.process import ProcessId, is_alive
from tests.integration.apiserver_harness import REPO, free_port
from tests.integration.cluster_fixture import (
    SvcnetCluster,
    is_running_ready,
    restart_count,
    running_cluster,
    waiting_reason,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl")),
    reason="needs root (network namespaces), ip, nsenter, kubectl and curl")

POD_CIDRS = {"node-1": "10.244.1.0/24", "node-2": "10.244.2.0/24"}
NODE_IPS = {"node-1": "192.168.0.106", "node-2": "192.168.0.107"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        c.kubectl("apply", "-f", str(REPO / "examples" / "hostnames.yaml"))

        def three_ready() -> bool:
            pods = c.pods("app=hostnames")
            return len(pods) == 3 and all(is_running_ready(p) for p in pods)

        wait_for(three_ready, timeout=90, interval=0.3, what="three hostnames pods Running and Ready")
        yield c


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory the test's pods write into (pods see the host's filesystem)."""
    tmp_path.chmod(0o777)
    return tmp_path


def hostnames(cluster: SvcnetCluster) -> list[dict[str, Any]]:
    return sorted(cluster.pods("app=hostnames"), key=lambda p: p["metadata"]["name"])


def on_node(cluster: SvcnetCluster, node: str) -> list[dict[str, Any]]:
    return [p for p in hostnames(cluster) if p["spec"]["nodeName"] == node]


def apply(cluster: SvcnetCluster, manifest: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=textwrap.dedent(manifest))


def delete_pod(cluster: SvcnetCluster, name: str) -> None:
    cluster.kubectl("delete", "pod", name, "--wait=true", "--timeout=60s", check=False)


# ---- the seed's Deployment


def test_hostnames_pods_run_ready_with_ips_from_their_nodes_pod_cidrs_on_both_nodes(cluster: SvcnetCluster) -> None:
    pods = hostnames(cluster)
    assert len(pods) == 3
    for pod in pods:
        node = pod["spec"]["nodeName"]
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_CIDRS[node])
        assert pod["status"]["hostIP"] == NODE_IPS[node]
    assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2"}
    table = cluster.kubectl("get", "pods", "-l", "app=hostnames", "-o", "wide").stdout.splitlines()
    for row in table[1:]:
        name, ready, status, restarts = row.split()[:4]
        assert (ready, status, restarts) == ("1/1", "Running", "0"), row


def test_pod_answers_curl_from_a_pod_on_the_other_node_and_from_a_node_with_its_name(cluster: SvcnetCluster) -> None:
    source = on_node(cluster, "node-1")[0]["metadata"]["name"]
    for target in hostnames(cluster):
        name, ip = target["metadata"]["name"], target["status"]["podIP"]
        from_pod = cluster.exec(source, "curl", "-s", "-m", "5", f"http://{ip}:9376/")
        assert (from_pod.returncode, from_pod.stdout) == (0, name), from_pod.stderr
        from_node = cluster.in_namespace(cluster.node_namespace("node-2"), "curl", "-s", "-m", "5",
                                         f"http://{ip}:9376/")
        assert from_node.stdout == name, from_node.stderr


def test_exec_runs_in_the_pod_hostname_and_resolv_conf_as_kubelet_writes_them(cluster: SvcnetCluster) -> None:
    pod = hostnames(cluster)[0]["metadata"]["name"]
    assert cluster.exec(pod, "hostname").stdout == f"{pod}\n"
    resolv = cluster.exec(pod, "cat", "/etc/resolv.conf").stdout
    assert resolv.startswith("search default.svc.cluster.local svc.cluster.local cluster.local")
    assert "nameserver 10.96.0.10\n" in resolv and resolv.endswith("options ndots:5\n")
    passed = cluster.exec(pod, "sh", "-c", "cat; exit 7", input="through stdin\n")
    assert (passed.returncode, passed.stdout) == (7, "through stdin\n")


def test_env_comes_from_config_maps_secrets_and_the_services(cluster: SvcnetCluster) -> None:
    cluster.kubectl("create", "configmap", "app-config", "--from-literal=color=blue", "--from-literal=size=10")
    cluster.kubectl("create", "secret", "generic", "app-secret", "--from-literal=password=s3cr3t")
    apply(cluster, """
        apiVersion: v1
        kind: Pod
        metadata: {name: envs}
        spec:
          containers:
          - name: app
            image: k8s.gcr.io/serve_hostname
            envFrom: [{prefix: CFG_, configMapRef: {name: app-config}}]
            env:
            - {name: COLOR, valueFrom: {configMapKeyRef: {name: app-config, key: color}}}
            - {name: PASSWORD, valueFrom: {secretKeyRef: {name: app-secret, key: password}}}
            - {name: MISSING, valueFrom: {configMapKeyRef: {name: app-config, key: nope, optional: true}}}
            - {name: LATER, valueFrom: {configMapKeyRef: {name: later-config, key: value}}}
    """)
    try:
        # A ConfigMap that does not exist yet holds the container back, saying why, until it is created.
        pod = cluster.wait_pod("envs", lambda p: waiting_reason(p) == "CreateContainerConfigError")
        assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"] == \
            'configmap "later-config" not found'
        cluster.kubectl("create", "configmap", "later-config", "--from-literal=value=now")
        cluster.wait_pod("envs", is_running_ready, timeout=60)
        env = dict(line.split("=", 1) for line in cluster.exec("envs", "env").stdout.splitlines() if "=" in line)
        assert (env["COLOR"], env["PASSWORD"], env["LATER"]) == ("blue", "s3cr3t", "now")
        assert (env["CFG_color"], env["CFG_size"]) == ("blue", "10")
        assert "MISSING" not in env
        assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("10.96.0.1", "443")
    finally:
        delete_pod(cluster, "envs")
        cluster.kubectl("delete", "configmap", "app-config", "later-config", check=False)
        cluster.kubectl("delete", "secret", "app-secret", check=False)


def test_kubectl_logs_shows_the_container_output(cluster: SvcnetCluster) -> None:
    pod = hostnames(cluster)[0]["metadata"]["name"]
    full = cluster.kubectl("logs", pod).stdout
    assert "Serving on port 9376." in full.splitlines()[0]
    stamped = cluster.kubectl("logs", pod, "--timestamps", "--tail", "1").stdout
    stamp, _, line = stamped.partition(" ")
    assert stamp.endswith("Z") and len(stamped.splitlines()) == 1
    assert line in full


def test_external_client_reaches_node_ips_but_not_pods(cluster: SvcnetCluster) -> None:
    def connect(ip: str, port: int) -> str:
        probe = textwrap.dedent(f"""
            import socket
            s = socket.socket(); s.settimeout(3)
            try:
                s.connect(({ip!r}, {port})); print("connected")
            except ConnectionRefusedError:
                print("refused")
            except OSError as e:
                print("unreachable", e)
        """)
        return cluster.in_namespace(cluster.client_namespace, "python3", "-c", probe).stdout.strip()

    for ip in NODE_IPS.values():
        assert connect(ip, free_port()) == "refused"  # a reply came back: the node is reachable
    assert connect(hostnames(cluster)[0]["status"]["podIP"], 9376).startswith("unreachable")


# ---- probes and restarts


def test_readiness_probe_keeps_a_running_pod_out_of_endpoints_until_it_passes(cluster: SvcnetCluster,
                                                                             scratch: Path) -> None:
    flag = scratch / "ready"
    apply(cluster, f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: gated}}
        spec:
          selector: {{app: gated}}
          ports: [{{port: 80, targetPort: 9376}}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: gated, labels: {{app: gated}}}}
        spec:
          containers:
          - name: app
            image: k8s.gcr.io/serve_hostname
            readinessProbe: {{exec: {{command: [test, -f, "{flag}"]}}, periodSeconds: 1}}
    """)
    try:
        pod = cluster.wait_pod("gated", lambda p: (p.get("status") or {}).get("phase") == "Running"
                               and p["status"].get("podIP"))
        row = cluster.kubectl("get", "pod", "gated").stdout.splitlines()[1].split()
        assert row[1:3] == ["0/1", "Running"]
        endpoints = cluster.kubectl_json("get", "endpoints", "gated")
        ready_ips = [a["ip"] for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []]
        assert pod["status"]["podIP"] not in ready_ips
        flag.touch()

        def joined() -> bool:
            ep = cluster.kubectl_json("get", "endpoints", "gated")
            return pod["status"]["podIP"] in [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]

        wait_for(joined, timeout=30, interval=0.2, what="gated pod in the endpoints")
        assert cluster.kubectl("get", "pod", "gated").stdout.splitlines()[1].split()[1] == "1/1"
    finally:
        cluster.kubectl("delete", "service", "gated", check=False)
        delete_pod(cluster, "gated")


def test_readiness_probe_runs_when_the_server_listens_not_a_period_later(cluster: SvcnetCluster,
                                                                       scratch: Path) -> None:
    """The server listens only once the test says so, after the first tick found nothing; the period is
    300 s, so within the minute waited only the probe its listening socket triggered can make it Ready."""
    flag = scratch / "listen"
    server = json.dumps(textwrap.dedent(f"""\
        import os, socket, time
        while not os.path.exists({str(flag)!r}):
            time.sleep(0.05)
        s = socket.socket()
        s.bind(("0.0.0.0", 8080))
        s.listen()
        while True:
            s.accept()[0].close()
    """))
    apply(cluster, f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: listener}}
        spec:
          containers:
          - name: app
            image: busybox
            command: [python3, -c, {server}]
            ports: [{{name: probe, containerPort: 8080}}]
            readinessProbe: {{tcpSocket: {{port: probe}}, periodSeconds: 300}}
    """)
    try:
        def first_tick_failed() -> bool:
            events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=listener")
            return any(e["message"].startswith("Readiness probe failed") for e in events["items"])

        wait_for(first_tick_failed, timeout=60, interval=0.3, what="the first readiness probe failing")
        assert not is_running_ready(cluster.pod("listener"))
        flag.touch()
        cluster.wait_pod("listener", is_running_ready, timeout=60, what="Ready once the port listens")
        assert "default/listener/app readinessProbe: port 8080 listens: probing at once" in cluster.logs()
    finally:
        delete_pod(cluster, "listener")


def test_liveness_failure_restarts_the_container_and_restarts_count_up(cluster: SvcnetCluster, scratch: Path) -> None:
    apply(cluster, f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: sick}}
        spec:
          containers:
          - name: app
            image: busybox
            command: [sleep, "3600"]
            livenessProbe: {{exec: {{command: [test, -f, "{scratch}/alive"]}}, periodSeconds: 1, failureThreshold: 1}}
    """)
    try:
        pod = cluster.wait_pod("sick", lambda p: restart_count(p) >= 1, what="a liveness restart")
        assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] in (137, 143)
    finally:
        delete_pod(cluster, "sick")


def test_container_exiting_non_zero_under_always_shows_crash_loop_back_off(cluster: SvcnetCluster) -> None:
    apply(cluster, """
        apiVersion: v1
        kind: Pod
        metadata: {name: crasher}
        spec:
          containers:
          - {name: app, image: busybox, command: [sh, -c, "echo about to fail; exit 3"]}
    """)
    try:
        pod = cluster.wait_pod("crasher", lambda p: waiting_reason(p) == "CrashLoopBackOff", what="CrashLoopBackOff")
        status = pod["status"]["containerStatuses"][0]
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert "back-off 10s restarting failed container=app pod=crasher_default" in status["state"]["waiting"]["message"]
        assert cluster.kubectl("get", "pod", "crasher").stdout.splitlines()[1].split()[2] == "CrashLoopBackOff"
        assert "about to fail" in cluster.kubectl("logs", "crasher", "--previous").stdout
        assert cluster.kubectl("logs", "-f", "crasher").stdout == "about to fail\n"  # ends: the log is closed
    finally:
        delete_pod(cluster, "crasher")


def test_unknown_image_waits_with_err_image_pull_and_says_why(cluster: SvcnetCluster) -> None:
    apply(cluster, """
        apiVersion: v1
        kind: Pod
        metadata: {name: noimage}
        spec:
          containers:
          - {name: app, image: example.com/no/such-image:1.0}
    """)
    try:
        pod = cluster.wait_pod("noimage", lambda p: waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"))
        events = cluster.kubectl_json("get", "events", "--field-selector", "involvedObject.name=noimage")["items"]
        messages = [e["message"] for e in events]
        assert any(m.startswith('Failed to pull image "example.com/no/such-image:1.0"') and "not found" in m
                   for m in messages), messages
        waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["message"]
        assert pod["status"]["phase"] == "Pending"
    finally:
        delete_pod(cluster, "noimage")


# ---- deletion and restarts of the agent


def runtime_state(cluster: SvcnetCluster, pod: dict[str, Any], container: str = "app") -> tuple[Any, Any]:
    """(infra process, container process) from the node's runtime files."""
    md = pod["metadata"]
    directory = cluster.data_dir / "nodes" / pod["spec"]["nodeName"] / "pods" / \
        f"{md['namespace']}_{md['name']}_{md['uid']}"
    infra = ProcessId.from_json(json.loads((directory / "_sandbox" / "state.json").read_text())["infra"])
    instance = pod["status"]["containerStatuses"][0]["restartCount"]
    state = json.loads((directory / container / f"{instance}.state.json").read_text())
    return infra, ProcessId.from_json(state["process"])


def test_deleting_a_pod_sends_sigterm_first_and_leaves_no_namespace_veth_or_process(cluster: SvcnetCluster,
                                                                                  scratch: Path) -> None:
    marker = scratch / "got-sigterm"
    apply(cluster, f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: graceful}}
        spec:
          terminationGracePeriodSeconds: 20
          containers:
          - name: app
            image: busybox
            command: [sh, -c, 'trap "echo term > {marker}; exit 0" TERM; while true; do sleep 0.1; done']
    """)
    pod = cluster.wait_pod("graceful", is_running_ready)
    infra, process = runtime_state(cluster, pod)
    short = pod["metadata"]["uid"].replace("-", "")[:10]
    node_ns = cluster.node_namespace(pod["spec"]["nodeName"])
    assert f"svcnet-{cluster.cluster_id}-pod-{short}" in cluster.namespaces()

    cluster.kubectl("delete", "pod", "graceful", "--wait=true", "--timeout=60s")
    assert marker.read_text() == "term\n"
    assert f"svcnet-{cluster.cluster_id}-pod-{short}" not in cluster.namespaces()
    links = cluster.in_namespace(node_ns, "ip", "-o", "link").stdout
    assert f"veth{short}" not in links
    assert not is_alive(infra) and not is_alive(process)


def test_killed_agent_pods_keep_answering_and_the_restarted_agent_adopts_them(cluster: SvcnetCluster) -> None:
    pod = on_node(cluster, "node-1")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    _, process = runtime_state(cluster, pod, "hostnames")
    old_pid = cluster.agent_pid("node-1")
    assert old_pid
    os.kill(old_pid, signal.SIGKILL)
    answer = cluster.in_namespace(cluster.node_namespace("node-2"), "curl", "-s", "-m", "5", f"http://{ip}:9376/")
    assert answer.stdout == name

    wait_for(lambda: cluster.agent_pid("node-1") not in (None, old_pid), timeout=30, interval=0.2,
             what="the agent for node-1 restarted")
    # A pod created after the restart runs only once the new agent works its queue (adoptions first).
    apply(cluster, """
        apiVersion: v1
        kind: Pod
        metadata: {name: after-restart}
        spec:
          nodeName: node-1
          containers:
          - {name: app, image: k8s.gcr.io/serve_hostname}
    """)
    try:
        cluster.wait_pod("after-restart", is_running_ready)
        again = cluster.pod(name)
        assert restart_count(again) == 0 and is_running_ready(again)
        assert is_alive(process)
        assert runtime_state(cluster, again, "hostnames")[1] == process
    finally:
        delete_pod(cluster, "after-restart")


# ---- clusters of their own


def test_up_fails_fast_with_a_clear_message_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        c = SvcnetCluster(tmp_path / "data", port, tmp_path, "unused")
        result = c.svcnet("up", "--nodes", "1", "--data-dir", str(c.data_dir), "--port", str(port), timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not (c.data_dir / "cluster.json").exists()


def test_post_start_hook_runs_before_the_container_is_ready_and_a_failing_one_restarts_it(
        cluster: SvcnetCluster, scratch: Path) -> None:
    marker = scratch / "post-start"
    loop = 'trap "exit 0" TERM; while true; do sleep 0.1; done'
    apply(cluster, f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: hooked}}
        spec:
          terminationGracePeriodSeconds: 2
          containers:
          - name: app
            image: busybox
            command: [sh, -c, '{loop}']
            lifecycle:
              postStart: {{exec: {{command: [sh, -c, 'sleep 1; echo hooked > {marker}']}}}}
          - name: bad
            image: busybox
            command: [sh, -c, '{loop}']
            lifecycle:
              postStart: {{httpGet: {{path: /, port: 9}}}}
    """)
    try:
        def app_ready(pod: dict[str, Any]) -> bool:
            return any(s["name"] == "app" and s.get("ready") for s in pod["status"].get("containerStatuses") or [])

        cluster.wait_pod("hooked", app_ready, what="hooked's app container ready")
        assert marker.read_text() == "hooked\n"  # the hook had finished before the container counted as started

        def failed_hook_events() -> list[dict[str, Any]]:
            return [e for e in cluster.kubectl_json("get", "events")["items"]
                    if e["involvedObject"]["name"] == "hooked" and e["reason"] in ("FailedPostStartHook", "Killing")]

        events = wait_for(lambda: len(failed_hook_events()) >= 2 and failed_hook_events(), timeout=60,
                          what="FailedPostStartHook and Killing events")
        assert {(e["type"], e["reason"], e["message"]) for e in events} >= {
            ("Warning", "FailedPostStartHook", "PostStartHook failed"), ("Normal", "Killing", "FailedPostStartHook")}
        cluster.wait_pod("hooked", lambda p: restart_count(p) >= 1, what="bad restarted")
    finally:
        delete_pod(cluster, "hooked")


def test_down_leaves_no_namespace_process_or_lease(cluster: SvcnetCluster) -> None:
    """Last: the module's cluster goes down here (its own up and down cost more than all of this)."""
    c = cluster
    apply(c, """
        apiVersion: v1
        kind: Pod
        metadata: {name: lonely}
        spec:
          containers:
          - {name: app, image: k8s.gcr.io/serve_hostname}
    """)
    pod = c.wait_pod("lonely", is_running_ready)
    infra, process = runtime_state(c, pod)
    assert c.namespaces()
    down = c.down()
    assert down.returncode == 0, down.stderr
    assert c.namespaces() == []
    assert c.processes() == []
    assert not is_alive(infra) and not is_alive(process)
    assert not list(c.data_dir.glob("nodes/*/ipam/*.json"))
