"""A Deployment's rolling update and its terminating pods, on the wire of a live two-node cluster.

Issue 16's acceptance point: a rolling update of hostnames (a new serve_hostname tag) under a
continuous curl from a pod loses no request. What makes that hold is the chain upstream relies on:
the Deployment surges one new pod and retires an old one only once the new one is Ready; the
retired pod's EndpointSlice endpoint turns ready=false/serving=true/terminating=true, so the
proxies stop sending it new connections; and its preStop hook keeps it serving until they have.
When every endpoint is terminating, the proxies fall back to the serving ones (upstream's
ProxyTerminatingEndpoints) rather than rejecting.

The package's iptables cluster, in a namespace of the module's own; a curl loop runs in the client pod
for the whole module and logs one line per request ("ok <pod>" or "fail <curl's error>").
"""
from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.agent.network import pod_namespace
from tests.integration.cluster_fixture import SvcnetCluster, is_running_ready
from tests.integration.services.conftest import module_namespace
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl")),
    reason="needs root (network namespaces), ip, nsenter, kubectl and curl")

OLD_IMAGE = "registry.k8s.io/serve_hostname:v1.4"
NEW_IMAGE = "registry.k8s.io/serve_hostname:v1.5"
CLIENT = "curl-loop"


def deployment(name: str, replicas: int, pre_stop_seconds: int, grace: int) -> str:
    """A hostnames-like Deployment: readiness on the HTTP port, a preStop sleep before SIGTERM."""
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {name}}}}}
          strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              terminationGracePeriodSeconds: {grace}
              containers:
              - name: hostnames
                image: {OLD_IMAGE}
                ports: [{{containerPort: 9376}}]
                readinessProbe: {{httpGet: {{path: /, port: 9376}}, periodSeconds: 1}}
                lifecycle: {{preStop: {{sleep: {{seconds: {pre_stop_seconds}}}}}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}}}
        spec:
          selector: {{app: {name}}}
          ports: [{{port: 80, targetPort: 9376}}]
        """)


def curl_loop_pod(cluster_ip: str) -> str:
    # A new connection per request (curl exits), so each one goes through the proxy's current rules.
    loop = (f'while true; do if out=$(curl -sS -m 5 http://{cluster_ip}/ 2>&1); then echo "ok $out"; '
            f'else echo "fail $out"; fi; done')
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {CLIENT}}}
        spec:
          terminationGracePeriodSeconds: 0
          containers:
          - {{name: main, image: busybox, command: [sh, -c, {loop!r}]}}
        """)


@pytest.fixture(scope="module")
def cluster(iptables_cluster: SvcnetCluster) -> Iterator[SvcnetCluster]:
    with module_namespace(iptables_cluster, "rolling-update") as c:
        # hostnames: old pods linger in preStop for 20 s after the rollout retires them (it does not wait).
        c.kubectl("apply", "-f", "-", input=deployment("hostnames", 3, pre_stop_seconds=20, grace=30))
        # drain: its pods must still be terminating while the fallback test looks at them.
        c.kubectl("apply", "-f", "-", input=deployment("drain", 2, pre_stop_seconds=120, grace=150))
        for name in ("hostnames", "drain"):
            c.kubectl("rollout", "status", f"deploy/{name}", "--timeout=120s", timeout=150)
        cluster_ip = c.kubectl_json("get", "service", "hostnames")["spec"]["clusterIP"]
        c.kubectl("apply", "-f", "-", input=curl_loop_pod(cluster_ip))
        wait_for(lambda: is_running_ready(c.pod(CLIENT)), timeout=60, interval=0.3, what=f"{CLIENT} Running")
        yield c


def loop_lines(cluster: SvcnetCluster) -> list[str]:
    """The curl loop's complete lines so far."""
    out = cluster.kubectl("logs", CLIENT).stdout
    return out.splitlines() if out.endswith("\n") else out.splitlines()[:-1]


def pod_names(cluster: SvcnetCluster, selector: str, *, template_hash: str | None = None) -> set[str]:
    pods = cluster.pods(selector)
    return {p["metadata"]["name"] for p in pods
            if template_hash is None or p["metadata"]["labels"].get("pod-template-hash") == template_hash}


def new_replica_set_hash(cluster: SvcnetCluster, name: str) -> str:
    sets = cluster.kubectl_json("get", "replicasets", "-l", f"app={name}")["items"]
    images = {rs["metadata"]["labels"]["pod-template-hash"]: rs["spec"]["template"]["spec"]["containers"][0]["image"]
              for rs in sets}
    return next(h for h, image in images.items() if image == NEW_IMAGE)


def test_rolling_update_under_continuous_curl_loses_no_request(cluster: SvcnetCluster) -> None:
    wait_for(lambda: sum(line.startswith("ok ") for line in loop_lines(cluster)) >= 5, timeout=60, interval=0.5,
             what="the curl loop answering")
    old_pods = pod_names(cluster, "app=hostnames")
    start = len(loop_lines(cluster))

    cluster.kubectl("set", "image", "deploy/hostnames", f"hostnames={NEW_IMAGE}")
    rollout = cluster.kubectl("rollout", "status", "deploy/hostnames", "--timeout=120s", timeout=150)
    assert 'deployment "hostnames" successfully rolled out' in rollout.stdout
    new_hash = new_replica_set_hash(cluster, "hostnames")
    new_pods = pod_names(cluster, "app=hostnames", template_hash=new_hash)
    assert len(new_pods) == 3 and not new_pods & old_pods

    def served_by_new_pods_only() -> list[str] | None:
        lines = loop_lines(cluster)[start:]
        recent = [line.removeprefix("ok ") for line in lines if line.startswith("ok ")][-15:]
        return lines if len(recent) == 15 and set(recent) <= new_pods else None

    lines = wait_for(served_by_new_pods_only, timeout=60, interval=0.5, what="answers from the new pods only")
    failures = [line for line in lines if not line.startswith("ok ")]
    assert failures == [], f"{len(failures)} of {len(lines)} requests failed during the rollout: {failures[:5]}"
    answered = {line.removeprefix("ok ") for line in lines}
    assert answered & old_pods, "the loop never reached an old pod: it did not run across the rollout"


def endpoint_conditions(cluster: SvcnetCluster, service: str) -> dict[str, dict[str, Any]]:
    """Each endpoint's conditions, by its pod's name, over the Service's EndpointSlices."""
    slices = cluster.kubectl_json("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]
    return {e["targetRef"]["name"]: e["conditions"] for s in slices for e in s.get("endpoints") or []}


def test_when_every_endpoint_is_terminating_the_service_answers_from_the_serving_ones(
        cluster: SvcnetCluster) -> None:
    pods = pod_names(cluster, "app=drain")
    assert len(pods) == 2
    cluster_ip = cluster.kubectl_json("get", "service", "drain")["spec"]["clusterIP"]
    cluster.kubectl("scale", "deploy/drain", "--replicas=0")

    def all_terminating() -> dict[str, dict[str, Any]] | None:
        conditions = endpoint_conditions(cluster, "drain")
        return conditions if set(conditions) == pods and all(
            c == {"ready": False, "serving": True, "terminating": True} for c in conditions.values()) else None

    wait_for(all_terminating, timeout=60, interval=0.3, what="drain's endpoints ready=false serving=true terminating")
    for pod in pods:
        assert cluster.pod(pod)["metadata"].get("deletionTimestamp")

    # The proxies fall back to the serving terminating endpoints: every answer names one of them.
    answers = [cluster.kubectl("exec", CLIENT, "--", "curl", "-sS", "-m", "5", f"http://{cluster_ip}/").stdout
               for _ in range(6)]
    assert set(answers) <= pods and answers


def test_force_deleting_a_pod_in_its_pre_stop_hook_ends_the_hook(cluster: SvcnetCluster) -> None:
    """`kubectl delete --force --grace-period=0` on a pod in a long hook: the agent stops it without waiting."""
    terminating = [p for p in cluster.pods("app=drain") if p["metadata"].get("deletionTimestamp")]
    if not terminating:  # the fallback test above leaves drain's pods in their 120 s hook
        cluster.kubectl("scale", "deploy/drain", "--replicas=0")
        terminating = wait_for(lambda: cluster.pods("app=drain"), timeout=30, what="drain's pods terminating")
    pod = terminating[0]
    netns = pod_namespace(cluster.cluster_id, pod["metadata"]["uid"])
    assert netns in cluster.namespaces()  # still in its hook, network and all
    cluster.kubectl("delete", "pod", pod["metadata"]["name"], "--force", "--grace-period=0")
    # The hook had ~2 minutes left: the agent cut it, SIGTERM'd with 2 s, and removed the pod's network.
    wait_for(lambda: netns not in cluster.namespaces(), timeout=60, interval=0.3, what=f"{netns} removed")


def test_a_second_shorter_delete_cuts_a_pods_pre_stop_hook(cluster: SvcnetCluster) -> None:
    """`kubectl delete --grace-period=3` on a pod already terminating in its 120 s hook: the API server
    shortens its grace period and the agent ends the hook, SIGTERMs it and removes it."""
    terminating = [p for p in cluster.pods("app=drain") if p["metadata"].get("deletionTimestamp")]
    if not terminating:
        cluster.kubectl("scale", "deploy/drain", "--replicas=0")
        terminating = wait_for(lambda: cluster.pods("app=drain"), timeout=30, what="drain's pods terminating")
    pod = terminating[-1]
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 150
    netns = pod_namespace(cluster.cluster_id, pod["metadata"]["uid"])
    assert netns in cluster.namespaces()  # still in its hook
    cluster.kubectl("delete", "pod", pod["metadata"]["name"], "--grace-period=3", "--wait=false")
    # The hook had well over a minute left.
    wait_for(lambda: netns not in cluster.namespaces(), timeout=60, interval=0.3, what=f"{netns} removed")
