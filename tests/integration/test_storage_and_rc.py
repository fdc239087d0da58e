"""PersistentVolume binding and ReplicationControllers through the real kubectl, with
`svcnet controllers` running (the binder, the protection controllers, the RC controller).

No pods mount the claims here and no node runs anything: binding is the controller's
work alone, as on a cluster with static provisioning.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

VOLUMES = """\
apiVersion: v1
kind: PersistentVolume
metadata:
  name: small
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/svcnet-small}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: big
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce, ReadOnlyMany]
  hostPath: {path: /tmp/svcnet-big}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: nfs-many
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteMany]
  nfs: {server: 192.168.0.50, path: /exports/data}
"""

CLAIM = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
spec:
  accessModes: [{mode}]
  resources:
    requests: {{storage: {size}}}
{extra}"""


def claim(name: str, size: str, mode: str = "ReadWriteOnce", extra: str = "") -> str:
    return CLAIM.format(name=name, size=size, mode=mode, extra=extra)


def columns(server: ApiServerProcess, *args: str) -> list[str]:
    return server.kubectl("get", *args, "--no-headers").stdout.split()


def get(server: ApiServerProcess, *args: str) -> dict[str, Any] | None:
    result = server.kubectl("get", *args, "-o", "json", check=False)
    return None if result.returncode else json.loads(result.stdout)


def test_a_claim_binds_to_the_smallest_volume_that_fits_and_releases_it_when_deleted(control_plane) -> None:
    server = control_plane
    server.kubectl("apply", "-f", "-", input=VOLUMES)
    wait_for(lambda: all((get(server, "pv", n) or {}).get("status", {}).get("phase") == "Available"
                         for n in ("small", "big", "nfs-many")), timeout=30, what="three Available volumes")
    pv = get(server, "pv", "small")
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"

    # 2Gi does not fit "small"; "big" (5Gi) is the smallest that does ("nfs-many" lacks RWO).
    server.kubectl("apply", "-f", "-", input=claim("data", "2Gi"))
    wait_for(lambda: columns(server, "pvc", "data")[:5] == ["data", "Bound", "big", "5Gi", "RWO,ROX"],
             timeout=30, what="kubectl get pvc to show data bound to big")
    assert columns(server, "pv", "big")[:6] == ["big", "5Gi", "RWO,ROX", "Retain", "Bound", "default/data"]
    pvc = get(server, "pvc", "data")
    assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert pvc["status"]["capacity"] == {"storage": "5Gi"}
    assert get(server, "pv", "big")["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]

    # A ReadWriteMany claim takes the NFS volume.
    server.kubectl("apply", "-f", "-", input=claim("shared", "1Gi", "ReadWriteMany"))
    wait_for(lambda: columns(server, "pvc", "shared")[:3] == ["shared", "Bound", "nfs-many"], timeout=30,
             what="the RWX claim bound to the NFS volume")

    # Deleting the claim (no pod uses it) completes; with Retain the volume is Released.
    server.kubectl("delete", "pvc", "data", "--timeout=60s", timeout=90)
    assert get(server, "pvc", "data") is None
    wait_for(lambda: (get(server, "pv", "big") or {}).get("status", {}).get("phase") == "Released",
             timeout=30, what="big to be Released")
    # A Released volume is not bound again.
    server.kubectl("apply", "-f", "-", input=claim("again", "2Gi"))
    wait_for(lambda: any(e.get("reason") == "FailedBinding" for e in events_of(server, "again")), timeout=30,
             what="a FailedBinding event for the claim no volume fits")
    assert columns(server, "pvc", "again")[:2] == ["again", "Pending"]
    # An unbound volume goes at once; a Bound one stays (pv-protection) until its claim is gone.
    server.kubectl("delete", "pv", "small", "--timeout=60s", timeout=90)
    assert get(server, "pv", "small") is None
    server.kubectl("delete", "pv", "nfs-many", "--wait=false")
    doomed = get(server, "pv", "nfs-many")
    assert doomed["metadata"]["deletionTimestamp"] and doomed["status"]["phase"] == "Bound"
    assert columns(server, "pv", "nfs-many")[4] == "Terminating"
    server.kubectl("delete", "pvc", "shared", "--timeout=60s", timeout=90)
    wait_for(lambda: get(server, "pv", "nfs-many") is None, timeout=30,
             what="the volume to go once its claim released it")


def test_a_claim_with_a_class_no_volume_has_stays_pending_as_upstream_without_a_provisioner(control_plane) -> None:
    server = control_plane
    server.kubectl("apply", "-f", "-", input=VOLUMES)
    server.kubectl("apply", "-f", "-", input=claim("fast", "1Gi", extra="  storageClassName: fast\n"))
    wait_for(lambda: any(e.get("reason") == "ProvisioningFailed"
                         and e.get("message") == 'storageclass.storage.k8s.io "fast" not found'
                         for e in events_of(server, "fast")), timeout=30, what="ProvisioningFailed")
    assert columns(server, "pvc", "fast")[:2] == ["fast", "Pending"]


def events_of(server: ApiServerProcess, name: str) -> list[dict[str, Any]]:
    status, body = server.request(
        "GET", f"/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{name}")
    assert status == 200, body
    return body["items"]


RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
"""


def rc_pods(server: ApiServerProcess) -> list[dict[str, Any]]:
    status, body = server.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
    assert status == 200, body
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def test_a_replication_controller_keeps_its_replicas_and_scales_with_kubectl(control_plane) -> None:
    server = control_plane
    server.kubectl("apply", "-f", "-", input=RC)
    rc = get(server, "rc", "web")
    # Defaulted from the template's labels, as SetDefaults_ReplicationController does.
    assert rc["spec"]["selector"] == {"app": "web"}
    assert rc["metadata"]["labels"] == {"app": "web"}
    wait_for(lambda: len(rc_pods(server)) == 2, timeout=30, what="two pods")
    ref = rc_pods(server)[0]["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("ReplicationController", "web", True)
    wait_for(lambda: columns(server, "rc", "web")[:3] == ["web", "2", "2"], timeout=30,
             what="kubectl get rc to count two pods")

    assert "scaled" in server.kubectl("scale", "rc", "web", "--replicas=3").stdout
    wait_for(lambda: len(rc_pods(server)) == 3, timeout=30, what="three pods")
    wait_for(lambda: columns(server, "rc", "web")[:3] == ["web", "3", "3"], timeout=30,
             what="kubectl get rc to count three pods")
    server.kubectl("scale", "rc", "web", "--replicas=1")
    wait_for(lambda: len(rc_pods(server)) == 1, timeout=30, what="one pod")
    assert get(server, "rc", "web")["status"]["observedGeneration"] == 3


def test_a_claim_a_pod_mounts_stays_until_the_pod_is_gone(control_plane) -> None:
    server = control_plane
    server.kubectl("apply", "-f", "-", input=claim("inuse", "1Gi"))
    server.kubectl("apply", "-f", "-", input="""\
apiVersion: v1
kind: Pod
metadata:
  name: user
spec:
  containers:
  - name: c
    image: busybox
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: inuse}
""")
    server.kubectl("delete", "pvc", "inuse", "--wait=false")
    doomed = get(server, "pvc", "inuse")
    assert doomed is not None and doomed["metadata"]["deletionTimestamp"]
    assert doomed["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert columns(server, "pvc", "inuse")[1] == "Terminating"
    server.kubectl("delete", "pod", "user", "--timeout=60s", timeout=90)
    wait_for(lambda: get(server, "pvc", "inuse") is None, timeout=30,
             what="the claim to go once no pod mounts it")
