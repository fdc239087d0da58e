"""Garbage collection with the real kubectl: cascading deletes (background, orphan, foreground),
shared ownership, and the pod GC force-deleting pods of a node that is gone.

The owner chains are built by hand (a Deployment, a ReplicaSet owned by it,
pods owned by the ReplicaSet) so these tests need no Deployment or ReplicaSet
controller. The first test runs with every controller (control_plane), where
the ReplicaSet controller may add or remove pods of the hand-made ReplicaSet
on its way: it only asserts that nothing is left. The others run beside the
collectors alone (gc_plane), since they assert on exactly the pods they made.
Pods bound to a node are deleted gracefully; FakeKubelet finishes them where a
test needs them gone.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.controllers import CONTROLLERS
from tests.integration.apiserver_harness import REPO, ApiServerProcess, kubectl_available
from tests.integration.kubelet_double import FakeKubelet, register_node
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not on PATH")]

Obj = dict[str, Any]
NS = "default"
TEMPLATE = {"metadata": {"labels": {"app": "hostnames"}},
            "spec": {"containers": [{"name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
                                     "ports": [{"containerPort": 9376}]}]}}


# -------------------------------------------------------------------- helpers

def create(server: ApiServerProcess, obj: Obj) -> Obj:
    return json.loads(server.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(obj)).stdout)


def owner_ref(owner: Obj, controller: bool = True) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def make_deployment(server: ApiServerProcess, name: str, replicas: int) -> Obj:
    return create(server, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "paused": True, "selector": {"matchLabels": {"app": "hostnames"}},
                 "template": TEMPLATE}})


def make_replicaset(server: ApiServerProcess, name: str, replicas: int, owner: Obj | None = None) -> Obj:
    rs: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": name, "labels": {"app": "hostnames"}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "hostnames"}},
                        "template": TEMPLATE}}
    if owner is not None:
        rs["metadata"]["ownerReferences"] = [owner_ref(owner)]
    return create(server, rs)


def make_pod(server: ApiServerProcess, name: str, *owners: Obj, node: str = "") -> Obj:
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "hostnames"},
                             # one controller at most, as the API requires
                             "ownerReferences": [owner_ref(o, i == 0) for i, o in enumerate(owners)]},
                "spec": {**TEMPLATE["spec"]}}
    if node:
        pod["spec"]["nodeName"] = node
    return create(server, pod)


def get(server: ApiServerProcess, resource: str, name: str) -> Obj | None:
    result = server.kubectl("get", resource, name, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    return json.loads(result.stdout)


def names(server: ApiServerProcess, resource: str) -> list[str]:
    return [o["metadata"]["name"] for o in server.kubectl_json("get", resource)["items"]]


def owner_uids(obj: Obj | None) -> list[str]:
    assert obj is not None
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]


# ------------------------------------------------------------------ fixtures

# Until "podgc" is in svcnet.controllers.CONTROLLERS, the pod GC runs in a process of its own.
_PODGC_ALONE = """
import asyncio, logging, sys
from pathlib import Path
from svcnet.client.config import unix_socket_config
from svcnet.client.rest import ApiClient
from svcnet.controllers.base import ControllerManager
from svcnet.controllers.gc import PodGarbageCollector
from svcnet.kernel import process
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
config = unix_socket_config(Path(sys.argv[1]) / "apiserver.sock")
manager = ControllerManager(lambda: ApiClient(config, component="podgc"), [PodGarbageCollector])
sys.exit(asyncio.run(process.run([manager])))
"""


@pytest.fixture
def gc_plane(apiserver: ApiServerProcess) -> Iterator[ApiServerProcess]:
    """The API server with the two collectors and no other controller writing what the tests build."""
    data_dir = str(apiserver.data_dir)
    commands = [["-m", "svcnet", "controllers", "--data-dir", data_dir, "--controllers",
                 "garbagecollector,podgc" if "podgc" in CONTROLLERS else "garbagecollector"]]
    if "podgc" not in CONTROLLERS:
        commands.append(["-c", _PODGC_ALONE, data_dir])
    procs = []
    for i, command in enumerate(commands):
        with open(apiserver.data_dir.parent / f"collectors-{i}.log", "ab") as log:
            procs.append(subprocess.Popen([sys.executable, *command], stdout=log, stderr=log,
                                          stdin=subprocess.DEVNULL, cwd=REPO))
    try:
        yield apiserver
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


# ------------------------------------------------------------------ cascades

def test_deleting_a_deployment_leaves_no_replicaset_or_pod_behind(control_plane):
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.101")
    deploy = make_deployment(control_plane, "hostnames", 3)
    rs = make_replicaset(control_plane, "hostnames-5d8f6b7c9", 3, deploy)
    for i in range(3):
        make_pod(control_plane, f"hostnames-5d8f6b7c9-{i}", rs, node="node-1")

    with FakeKubelet(control_plane):  # finishes the graceful deletes of the bound pods
        result = control_plane.kubectl("delete", "deploy", "hostnames")
        assert 'deployment.apps "hostnames" deleted' in result.stdout
        wait_for(lambda: not names(control_plane, "rs") and not names(control_plane, "pods"),
                 timeout=30, what="the ReplicaSet and its pods to be collected")


def test_orphan_cascade_keeps_the_pods_without_their_owner_reference(gc_plane):
    rs = make_replicaset(gc_plane, "web", 2)
    for name in ("web-a", "web-b"):
        make_pod(gc_plane, name, rs)

    result = gc_plane.kubectl("delete", "rs", "web", "--cascade=orphan")
    assert 'replicaset.apps "web" deleted' in result.stdout  # kubectl waited for the orphan finalizer
    assert get(gc_plane, "rs", "web") is None
    for name in ("web-a", "web-b"):
        pod = get(gc_plane, "pod", name)
        assert pod is not None and owner_uids(pod) == []


def test_foreground_cascade_keeps_the_replicaset_until_its_pods_are_gone(gc_plane):
    register_node(gc_plane, "node-1", "10.244.1.0/24", "192.168.0.101")
    rs = make_replicaset(gc_plane, "web", 2)
    for name in ("web-a", "web-b"):
        make_pod(gc_plane, name, rs, node="node-1")  # bound: deleted gracefully, no kubelet yet

    gc_plane.kubectl("delete", "rs", "web", "--cascade=foreground", "--wait=false")
    wait_for(lambda: all((get(gc_plane, "pod", n) or {"metadata": {"deletionTimestamp": "gone"}})
                         ["metadata"].get("deletionTimestamp") for n in ("web-a", "web-b")),
             timeout=30, what="the pods to be deleted by the collector")
    held = get(gc_plane, "rs", "web")
    assert held is not None
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]

    with FakeKubelet(gc_plane):  # now the pods finish terminating
        wait_for(lambda: get(gc_plane, "rs", "web") is None, timeout=30,
                 what="the ReplicaSet to go once its pods are gone")
    assert names(gc_plane, "pods") == []


def test_a_pod_with_two_owners_survives_the_deletion_of_one(gc_plane):
    first = make_replicaset(gc_plane, "first", 1)
    second = make_replicaset(gc_plane, "second", 1)
    make_pod(gc_plane, "shared", first, second)

    gc_plane.kubectl("delete", "rs", "first")
    wait_for(lambda: owner_uids(get(gc_plane, "pod", "shared")) == [second["metadata"]["uid"]],
             timeout=30, what="the dead ownerReference to be removed")
    assert names(gc_plane, "rs") == ["second"]


# -------------------------------------------------------------------- pod GC

def test_pods_bound_to_a_node_that_does_not_exist_are_force_deleted(gc_plane):
    register_node(gc_plane, "node-1", "10.244.1.0/24", "192.168.0.101")
    make_pod(gc_plane, "lost", node="ghost")
    make_pod(gc_plane, "fine", node="node-1")

    wait_for(lambda: get(gc_plane, "pod", "lost") is None, timeout=30,
             what="the pod of the missing node to be force-deleted")
    assert names(gc_plane, "pods") == ["fine"]


def test_pods_of_a_deleted_node_are_force_deleted(gc_plane):
    register_node(gc_plane, "node-2", "10.244.2.0/24", "192.168.0.102")
    make_pod(gc_plane, "on-node-2", node="node-2")
    gc_plane.kubectl("delete", "node", "node-2")
    wait_for(lambda: get(gc_plane, "pod", "on-node-2") is None, timeout=30,
             what="the pod of the deleted node to be force-deleted")
