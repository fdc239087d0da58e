"""The new kinds through the registry's write paths: the storage-protection finalizers and phases a
create sets, a DaemonSet's template generation, status kept apart from the main resource."""
from __future__ import annotations

import copy

from svcnet.api.resources import lookup
from svcnet.testing.api import FakeApi

PVS = lookup("", "v1", "persistentvolumes")
PVCS = lookup("", "v1", "persistentvolumeclaims")
DAEMONSETS = lookup("apps", "v1", "daemonsets")
INGRESSES = lookup("networking.k8s.io", "v1", "ingresses")
GENERATION = "deprecated.daemonset.template.generation"


async def test_a_new_volume_and_claim_get_their_protection_finalizer_and_start_pending():
    api = FakeApi()
    pv = await api.create(PVS, None, {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "v"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/v"}},
        "status": {"phase": "Bound"}})
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert pv["status"]["phase"] == "Pending" and pv["status"]["lastPhaseTransitionTime"]
    pvc = await api.create(PVCS, "default", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "default",
                                                                            "finalizers": ["example.com/keep"]},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc["metadata"]["finalizers"] == ["example.com/keep", "kubernetes.io/pvc-protection"]
    assert pvc["status"] == {"phase": "Pending"}
    assert pvc["spec"]["volumeMode"] == "Filesystem"


async def test_a_daemon_sets_template_generation_moves_with_its_template_only():
    api = FakeApi()
    ds = await api.create(DAEMONSETS, "default", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "a"}},
                 "template": {"metadata": {"labels": {"app": "a"}},
                              "spec": {"containers": [{"name": "a", "image": "busybox:1"}]}}}})
    assert ds["metadata"]["annotations"][GENERATION] == "1" and ds["metadata"]["generation"] == 1
    relabelled = copy.deepcopy(ds)
    relabelled["metadata"]["labels"] = {"team": "x"}
    relabelled = await api.update(DAEMONSETS, "default", relabelled)
    assert relabelled["metadata"]["annotations"][GENERATION] == "1"
    changed = copy.deepcopy(relabelled)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    del changed["metadata"]["annotations"]  # a client that never saw it keeps it all the same
    changed = await api.update(DAEMONSETS, "default", changed)
    assert changed["metadata"]["annotations"][GENERATION] == "2" and changed["metadata"]["generation"] == 2
    changed["status"] = {"currentNumberScheduled": 1, "numberMisscheduled": 0, "desiredNumberScheduled": 1,
                         "numberReady": 1}
    after_status = await api.update_status(DAEMONSETS, "default", changed)
    assert after_status["metadata"]["annotations"][GENERATION] == "2"
    assert after_status["status"]["numberReady"] == 1


async def test_an_ingress_create_resets_status_to_an_empty_load_balancer():
    api = FakeApi()
    ing = await api.create(INGRESSES, "default", {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "default"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
    assert ing["status"] == {"loadBalancer": {}}
    assert ing["metadata"]["generation"] == 1
