"""Deployments end to end: the real kubectl against `svcnet apiserver` + `svcnet controllers`.

A FakeKubelet plays the node: every pod turns Running and Ready as soon as it
exists, so rollouts progress as they would on a cluster with instant starts.
"""
from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from tests.integration.apiserver_harness import REPO, ApiServerProcess, kubectl_available
from tests.integration.kubelet_double import FakeKubelet, set_pod_status
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

SEED = REPO / "examples" / "hostnames.yaml"
SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
POD_NAME = re.compile(rf"^hostnames-({SAFE}{{1,10}})-{SAFE}{{5}}$")


def live_pods(server: ApiServerProcess) -> list[dict[str, Any]]:
    status, body = server.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dhostnames")
    assert status == 200, body
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def ready_count(pods: list[dict[str, Any]]) -> int:
    return sum(1 for p in pods
               if any(c.get("type") == "Ready" and c.get("status") == "True"
                      for c in (p.get("status") or {}).get("conditions") or []))


def deploy_columns(server: ApiServerProcess) -> list[str]:
    """NAME READY UP-TO-DATE AVAILABLE as `kubectl get deploy` prints them."""
    return server.kubectl("get", "deploy", "hostnames", "--no-headers").stdout.split()[:4]


def wait_columns(server: ApiServerProcess, ready: str, updated: str, available: str) -> None:
    wait_for(lambda: deploy_columns(server) == ["hostnames", ready, updated, available], timeout=30,
             what=f"kubectl get deploy to show {ready} {updated} {available}")


def rollout_status(server: ApiServerProcess) -> str:
    result = server.kubectl("rollout", "status", "deploy/hostnames", "--timeout=60s", timeout=90)
    return result.stdout


def image_of(server: ApiServerProcess) -> str:
    d = server.kubectl_json("get", "deploy", "hostnames")
    return d["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.fixture
def seeded(control_plane: ApiServerProcess):
    with FakeKubelet(control_plane) as kubelet:
        control_plane.kubectl("apply", "-f", str(SEED))
        wait_columns(control_plane, "3/3", "3", "3")
        yield control_plane, kubelet


def test_seed_deployment_makes_three_pods_named_like_the_seed(seeded) -> None:
    server, _ = seeded
    pods = live_pods(server)
    assert len(pods) == 3
    hashes = set()
    for pod in pods:
        match = POD_NAME.match(pod["metadata"]["name"])
        assert match, pod["metadata"]["name"]
        hashes.add(match.group(1))
        assert pod["metadata"]["labels"]["pod-template-hash"] == match.group(1)
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["controller"], ref["blockOwnerDeletion"]) == ("ReplicaSet", True, True)
        assert ref["name"] == f"hostnames-{match.group(1)}"
    assert len(hashes) == 1
    rs = server.kubectl_json("get", "rs", f"hostnames-{hashes.pop()}")
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert "successfully rolled out" in rollout_status(server)


def test_kubectl_scale_to_five_then_two_is_followed_by_pods(seeded) -> None:
    server, _ = seeded
    server.kubectl("scale", "deploy", "hostnames", "--replicas=5")
    wait_for(lambda: len(live_pods(server)) == 5, timeout=30, what="five pods")
    wait_columns(server, "5/5", "5", "5")
    server.kubectl("scale", "deploy", "hostnames", "--replicas=2")
    wait_for(lambda: len(live_pods(server)) == 2, timeout=30, what="two pods")
    wait_columns(server, "2/2", "2", "2")
    assert len(server.kubectl_json("get", "rs")["items"]) == 1


class ReadySampler:
    """Counts Ready pods every few milliseconds on a thread, remembering the lowest count seen."""

    def __init__(self, server: ApiServerProcess) -> None:
        self.server = server
        self.lowest: int | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReadySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                count = ready_count(live_pods(self.server))
            except Exception:
                continue
            self.samples += 1
            self.lowest = count if self.lowest is None else min(self.lowest, count)


def test_rolling_update_keeps_availability_and_undo_goes_back(seeded) -> None:
    server, _ = seeded
    first_hash = live_pods(server)[0]["metadata"]["labels"]["pod-template-hash"]
    # 3 replicas, maxSurge 25% (rounds up to 1), maxUnavailable 25% (rounds down to 0).
    with ReadySampler(server) as sampler:
        server.kubectl("set", "image", "deploy/hostnames", "hostnames=registry.k8s.io/serve_hostname")
        assert "successfully rolled out" in rollout_status(server)
    assert sampler.samples > 0
    assert sampler.lowest is not None and sampler.lowest >= 3, sampler.lowest
    wait_columns(server, "3/3", "3", "3")
    pods = live_pods(server)
    second_hash = pods[0]["metadata"]["labels"]["pod-template-hash"]
    assert second_hash != first_hash
    assert all(p["spec"]["containers"][0]["image"] == "registry.k8s.io/serve_hostname" for p in pods)
    history = server.kubectl("rollout", "history", "deploy/hostnames").stdout
    assert re.search(r"^1\s", history, re.M) and re.search(r"^2\s", history, re.M), history

    server.kubectl("rollout", "undo", "deploy/hostnames")
    assert "successfully rolled out" in rollout_status(server)
    assert image_of(server) == "k8s.gcr.io/serve_hostname"
    wait_for(lambda: {p["metadata"]["labels"]["pod-template-hash"] for p in live_pods(server)}
             == {first_hash} and len(live_pods(server)) == 3, timeout=30, what="pods of revision 1 again")
    wait_columns(server, "3/3", "3", "3")
    rs = server.kubectl_json("get", "rs", f"hostnames-{first_hash}")
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    d = server.kubectl_json("get", "deploy", "hostnames")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


class HoldingKubelet(FakeKubelet):
    """A FakeKubelet that leaves pods running a given image unready (their readiness probe fails)."""

    def __init__(self, server: ApiServerProcess, unready_image: str) -> None:
        super().__init__(server)
        self.unready_image = unready_image

    def sync_once(self) -> None:
        status, pods = self.server.request("GET", f"/api/v1/namespaces/{self.namespace}/pods")
        if status != 200:
            return
        for pod in pods["items"]:
            md, st = pod["metadata"], pod.get("status") or {}
            if md.get("deletionTimestamp"):
                self.server.request("DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{md['name']}",
                                    {"gracePeriodSeconds": 0})
                continue
            if st.get("phase") == "Running" and st.get("podIP"):
                continue
            ready = pod["spec"]["containers"][0]["image"] != self.unready_image
            ip = self.assigned.setdefault(md["name"], f"{self.ip_prefix}{next(self._ips)}")
            set_pod_status(self.server, self.namespace, md["name"], ip=ip, ready=ready)


def test_rollout_waits_for_new_pods_to_be_ready(control_plane: ApiServerProcess) -> None:
    """New pods that never turn Ready: one surge pod, no old pod removed, the rollout not done."""
    server = control_plane
    with HoldingKubelet(server, unready_image="registry.k8s.io/serve_hostname"):
        server.kubectl("apply", "-f", str(SEED))
        wait_columns(server, "3/3", "3", "3")
        old = {p["metadata"]["name"] for p in live_pods(server)}
        server.kubectl("set", "image", "deploy/hostnames", "hostnames=registry.k8s.io/serve_hostname")
        wait_for(lambda: len(live_pods(server)) == 4 and all(
            (p.get("status") or {}).get("phase") == "Running" for p in live_pods(server)),
            timeout=30, what="one surge pod, running but unready")
        wait_columns(server, "3/3", "1", "3")
        status = server.kubectl("rollout", "status", "deploy/hostnames", "--watch=false").stdout
        assert "1 out of 3 new replicas have been updated" in status, status
        assert {p["metadata"]["name"] for p in live_pods(server)} >= old
        d = server.kubectl_json("get", "deploy", "hostnames")
        assert d["status"]["unavailableReplicas"] == 1
