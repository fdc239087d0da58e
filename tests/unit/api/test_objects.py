"""The shared accessors read absent sections as empty and never modify the object."""
from __future__ import annotations

import copy

import pytest

from svcnet.api import objects

POD = {
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                 "labels": {"app": "web"}, "annotations": {"a": "b"}, "finalizers": ["f"],
                 "ownerReferences": [{"uid": "o0"}, {"uid": "o1", "controller": True}]},
    "spec": {"nodeName": "n1"},
    "status": {"conditions": [{"type": "PodScheduled", "status": "True"},
                              {"type": "Ready", "status": "True"}]},
}


def test_readers_of_a_full_object() -> None:
    before = copy.deepcopy(POD)
    assert objects.name_of(POD) == "web-1"
    assert objects.namespace_of(POD) == "shop"
    assert objects.uid_of(POD) == "u1"
    assert objects.resource_version(POD) == "7"
    assert objects.labels_of(POD) == {"app": "web"}
    assert objects.annotations_of(POD) == {"a": "b"}
    assert objects.finalizers_of(POD) == ["f"]
    assert objects.controller_ref(POD) == {"uid": "o1", "controller": True}
    assert objects.spec_of(POD) == {"nodeName": "n1"}
    assert objects.object_key(POD) == "shop/web-1"
    assert objects.is_pod_ready(POD)
    assert objects.condition_of(POD, "PodScheduled") == {"type": "PodScheduled", "status": "True"}
    assert POD == before


@pytest.mark.parametrize("obj", [None, {}, {"metadata": None, "spec": None, "status": None}])
def test_absent_sections_read_as_empty(obj: dict | None) -> None:
    assert objects.metadata_of(obj) == {} and objects.spec_of(obj) == {} and objects.status_of(obj) == {}
    assert objects.name_of(obj) == objects.namespace_of(obj) == objects.uid_of(obj) == ""
    assert objects.labels_of(obj) == {} and objects.owner_references_of(obj) == []
    assert objects.controller_ref(obj) is None
    assert not objects.is_being_deleted(obj) and not objects.is_pod_ready(obj)
    assert objects.slice_service_key(obj) is None


def test_object_key_of_a_cluster_scoped_object_is_its_name() -> None:
    assert objects.object_key({"metadata": {"name": "node-a"}}) == "node-a"


@pytest.mark.parametrize(("conditions", "ready"), [
    ([{"type": "Ready", "status": "False"}], False),
    ([{"type": "Ready", "status": "Unknown"}], False),
    ([{"type": "ContainersReady", "status": "True"}], False),
    ([{"type": "Ready", "status": "True"}], True),
])
def test_pod_is_ready_only_when_its_ready_condition_is_true(conditions: list, ready: bool) -> None:
    assert objects.is_pod_ready({"status": {"conditions": conditions}}) is ready


@pytest.mark.parametrize(("spec", "headless"), [
    ({"clusterIP": "None"}, True),
    ({"clusterIPs": ["None"]}, True),
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}, False),
    ({}, False),
])
def test_headless_services(spec: dict, headless: bool) -> None:
    assert objects.is_headless({"spec": spec}) is headless
    assert objects.is_headless_spec(spec) is headless


def test_slice_service_key_comes_from_the_service_name_label() -> None:
    slice_ = {"metadata": {"name": "web-abc", "namespace": "shop",
                           "labels": {objects.LABEL_SERVICE_NAME: "web"}}}
    assert objects.slice_service_key(slice_) == "shop/web"
    assert objects.slice_service_key({"metadata": {"name": "x", "labels": {}}}) is None


def test_condition_true_needs_the_condition_and_status_true() -> None:
    node = {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "MemoryPressure", "status": "False"}]}}
    assert objects.is_condition_true(node, "Ready")
    assert not objects.is_condition_true(node, "MemoryPressure")
    assert not objects.is_condition_true(node, "DiskPressure")
    assert not objects.is_condition_true(None, "Ready")


def test_being_deleted_is_a_set_deletion_timestamp() -> None:
    assert objects.is_being_deleted({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})


@pytest.mark.parametrize(("phase", "terminal"), [
    ("Succeeded", True), ("Failed", True), ("Running", False), ("Pending", False), ("Unknown", False), (None, False),
])
def test_a_pod_is_terminal_only_once_it_succeeded_or_failed(phase, terminal):
    pod = {"metadata": {"name": "p"}, "status": {"phase": phase} if phase else {}}
    assert objects.is_pod_terminal(pod) is terminal
