"""The registry's verbs over the in-memory store: metadata, concurrency, status, deletion."""
from __future__ import annotations

import datetime as dt

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.storage.memory import MemoryStore

NOW = dt.datetime(2026, 11, 27, 8, 0, 0, tzinfo=dt.UTC)
SERVICES = lookup("", "v1", "services")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
PODS = lookup("", "v1", "pods")
NAMESPACES = lookup("", "v1", "namespaces")


@pytest.fixture
def registry() -> Registry:
    reg = Registry(MemoryStore(), clock=lambda: NOW)
    reg.ensure_system_namespaces()
    return reg


def service(name: str = "hostnames", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "hostnames"}, "ports": [{"port": 80}], **spec}}


def deployment(replicas: int = 3) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hostnames"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "hostnames"}},
                     "template": {"metadata": {"labels": {"app": "hostnames"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def test_create_stamps_uid_timestamp_namespace_and_resource_version(registry):
    obj = registry.create(SERVICES, "default", service(), WriteOptions())
    md = obj["metadata"]
    assert md["namespace"] == "default"
    assert md["creationTimestamp"] == "2026-11-27T08:00:00Z"
    assert len(md["uid"]) == 36
    assert int(md["resourceVersion"]) == registry.store.current_revision()
    assert obj["status"] == {"loadBalancer": {}}


def test_create_with_generate_name_picks_a_suffix(registry):
    obj = service(name="")
    obj["metadata"] = {"generateName": "web-"}
    created = registry.create(SERVICES, "default", obj, WriteOptions())
    assert created["metadata"]["name"].startswith("web-")
    assert len(created["metadata"]["name"]) == len("web-") + 5


def test_create_twice_is_already_exists(registry):
    registry.create(SERVICES, "default", service(), WriteOptions())
    with pytest.raises(ApiError) as err:
        registry.create(SERVICES, "default", service(), WriteOptions())
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"
    assert err.value.message == 'services "hostnames" already exists'


def test_create_in_a_missing_namespace_is_not_found(registry):
    with pytest.raises(ApiError) as err:
        registry.create(SERVICES, "nowhere", service(), WriteOptions())
    assert err.value.code == 404 and 'namespaces "nowhere" not found' in err.value.message


def test_namespace_in_body_must_match_the_path(registry):
    obj = service()
    obj["metadata"]["namespace"] = "kube-system"
    with pytest.raises(ApiError) as err:
        registry.create(SERVICES, "default", obj, WriteOptions())
    assert err.value.code == 400


def test_update_with_a_stale_resource_version_is_a_conflict(registry):
    created = registry.create(SERVICES, "default", service(), WriteOptions())
    stale = created["metadata"]["resourceVersion"]
    created["metadata"]["labels"] = {"a": "b"}
    registry.update(SERVICES, "default", "hostnames", created, WriteOptions())
    created["metadata"]["resourceVersion"] = stale
    created["metadata"]["labels"] = {"a": "c"}
    with pytest.raises(ApiError) as err:
        registry.update(SERVICES, "default", "hostnames", created, WriteOptions())
    assert err.value.code == 409 and err.value.reason == "Conflict"


def test_update_that_changes_nothing_keeps_the_resource_version(registry):
    created = registry.create(SERVICES, "default", service(), WriteOptions())
    same, _ = registry.update(SERVICES, "default", "hostnames", dict(created), WriteOptions())
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_main_resource_writes_keep_status_and_status_writes_keep_spec(registry):
    registry.create(DEPLOYMENTS, "default", deployment(), WriteOptions())
    current = registry.get(DEPLOYMENTS, "default", "hostnames")
    current["status"] = {"replicas": 3}
    current["metadata"].pop("resourceVersion")
    after, _ = registry.update(DEPLOYMENTS, "default", "hostnames", current, WriteOptions())
    assert after["status"] == {}

    current = registry.get(DEPLOYMENTS, "default", "hostnames")
    current["status"] = {"replicas": 3}
    current["spec"]["replicas"] = 9
    after, _ = registry.update(DEPLOYMENTS, "default", "hostnames", current, WriteOptions(),
                               subresource="status")
    assert after["status"] == {"replicas": 3}
    assert after["spec"]["replicas"] == 3


def test_generation_counts_spec_changes_only(registry):
    created = registry.create(DEPLOYMENTS, "default", deployment(), WriteOptions())
    assert created["metadata"]["generation"] == 1
    created["metadata"]["labels"] = {"x": "y"}
    after, _ = registry.update(DEPLOYMENTS, "default", "hostnames", created, WriteOptions())
    assert after["metadata"]["generation"] == 1
    after["spec"]["replicas"] = 5
    after, _ = registry.update(DEPLOYMENTS, "default", "hostnames", after, WriteOptions())
    assert after["metadata"]["generation"] == 2


def test_a_spec_that_differs_only_by_defaults_is_no_new_generation():
    registry = build_registry(MemoryStore())  # with defaulting, as the server runs it
    registry.ensure_system_namespaces()
    created = registry.create(DEPLOYMENTS, "default", deployment(), WriteOptions())
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"  # filled in by defaulting
    sent = {**deployment(), "metadata": {"name": "hostnames", "resourceVersion": created["metadata"]["resourceVersion"]}}
    assert "strategy" not in sent["spec"]  # what an apply that stopped owning it leaves
    after, _ = registry.update(DEPLOYMENTS, "default", "hostnames", sent, WriteOptions())
    assert after["metadata"]["generation"] == 1
    assert after["spec"] == created["spec"]


def test_delete_without_finalizers_removes_at_once(registry):
    registry.create(SERVICES, "default", service(), WriteOptions())
    _, gone = registry.delete(SERVICES, "default", "hostnames", DeleteOptions())
    assert gone
    with pytest.raises(ApiError) as err:
        registry.get(SERVICES, "default", "hostnames")
    assert err.value.code == 404


def test_foreground_delete_marks_and_waits_for_the_finalizer(registry):
    registry.create(DEPLOYMENTS, "default", deployment(), WriteOptions())
    obj, gone = registry.delete(DEPLOYMENTS, "default", "hostnames", DeleteOptions("Foreground"))
    assert not gone
    assert obj["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert obj["metadata"]["deletionTimestamp"] == "2026-11-27T08:00:00Z"
    # The garbage collector removes the finalizer when dependents are gone: then it is deleted.
    obj["metadata"]["finalizers"] = []
    registry.update(DEPLOYMENTS, "default", "hostnames", obj, WriteOptions())
    with pytest.raises(ApiError):
        registry.get(DEPLOYMENTS, "default", "hostnames")


def test_finalizers_cannot_be_added_while_deleting(registry):
    obj = deployment()
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    registry.create(DEPLOYMENTS, "default", obj, WriteOptions())
    obj, _ = registry.delete(DEPLOYMENTS, "default", "hostnames", DeleteOptions())
    obj["metadata"]["finalizers"].append("example.com/another")
    with pytest.raises(ApiError) as err:
        registry.update(DEPLOYMENTS, "default", "hostnames", obj, WriteOptions())
    assert err.value.code == 403


def test_delete_preconditions(registry):
    created = registry.create(SERVICES, "default", service(), WriteOptions())
    with pytest.raises(ApiError) as err:
        registry.delete(SERVICES, "default", "hostnames", DeleteOptions(precondition_uid="other"))
    assert err.value.code == 409
    _, gone = registry.delete(SERVICES, "default", "hostnames",
                              DeleteOptions(precondition_uid=created["metadata"]["uid"]))
    assert gone


def test_bound_pods_are_deleted_gracefully_unbound_at_once(registry):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    registry.create(PODS, "default", pod, WriteOptions())
    _, gone = registry.delete(PODS, "default", "p", DeleteOptions())
    assert gone
    pod["spec"]["nodeName"] = "node-1"
    registry.create(PODS, "default", pod, WriteOptions())
    obj, gone = registry.delete(PODS, "default", "p", DeleteOptions())
    assert not gone
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 30
    _, gone = registry.delete(PODS, "default", "p", DeleteOptions(grace_period_seconds=0))
    assert gone


def test_namespace_deletion_empties_then_removes_it(registry):
    registry.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "scratch"}}, WriteOptions())
    registry.create(SERVICES, "scratch", service(), WriteOptions())
    ns, _ = registry.delete(NAMESPACES, None, "scratch", DeleteOptions())
    assert ns["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as err:
        registry.create(SERVICES, "scratch", service("another"), WriteOptions())
    assert err.value.code == 403
    assert registry.finalize_namespace("scratch") is False  # contents deleted this pass
    assert registry.finalize_namespace("scratch") is True
    with pytest.raises(ApiError):
        registry.get(NAMESPACES, None, "scratch")


def test_system_namespaces_cannot_be_deleted(registry):
    with pytest.raises(ApiError) as err:
        registry.delete(NAMESPACES, None, "default", DeleteOptions())
    assert err.value.code == 403


def test_patch_apply_retries_on_conflict_and_honours_an_explicit_resource_version(registry):
    registry.create(SERVICES, "default", service(), WriteOptions())
    calls = []

    def racing_mutation(current):
        calls.append(1)
        if len(calls) == 1:  # someone else writes between our read and our write
            other = registry.get(SERVICES, "default", "hostnames")
            other["metadata"]["labels"] = {"other": "writer"}
            registry.update(SERVICES, "default", "hostnames", other, WriteOptions())
        current["metadata"].setdefault("annotations", {})["mine"] = "yes"
        return current

    obj, _ = registry.patch_apply(SERVICES, "default", "hostnames", racing_mutation, WriteOptions())
    assert len(calls) == 2
    assert obj["metadata"]["labels"] == {"other": "writer"}
    assert obj["metadata"]["annotations"] == {"mine": "yes"}

    def stale(current):
        current["metadata"]["resourceVersion"] = "1"
        return current

    with pytest.raises(ApiError) as err:
        registry.patch_apply(SERVICES, "default", "hostnames", stale, WriteOptions())
    assert err.value.code == 409


def test_binding_sets_the_node_once_and_marks_the_pod_scheduled(registry):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    registry.create(PODS, "default", pod, WriteOptions())
    bound = registry.bind_pod("default", "p", {"target": {"kind": "Node", "name": "node-1"}})
    assert bound["spec"]["nodeName"] == "node-1"
    assert {"type": "PodScheduled", "status": "True"}.items() <= bound["status"]["conditions"][0].items()
    with pytest.raises(ApiError) as err:
        registry.bind_pod("default", "p", {"target": {"kind": "Node", "name": "node-2"}})
    assert err.value.code == 409 and "already assigned" in err.value.message
    with pytest.raises(ApiError) as err:
        registry.bind_pod("default", "p", {"target": {}})
    assert err.value.code == 422


def test_a_graceful_pod_deletion_waits_for_its_node_even_without_finalizers(registry):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}]}}
    registry.create(PODS, "default", pod, WriteOptions())
    obj, gone = registry.delete(PODS, "default", "p", DeleteOptions("Foreground"))
    assert not gone and obj["metadata"]["finalizers"] == ["foregroundDeletion"]
    obj["metadata"]["finalizers"] = []
    after, _ = registry.update(PODS, "default", "p", obj, WriteOptions())
    assert after["metadata"]["deletionTimestamp"]  # still there: the node's agent finishes it
    _, gone = registry.delete(PODS, "default", "p", DeleteOptions(grace_period_seconds=0))
    assert gone
