"""FakeApi is the API server's registry behind ApiClient's methods, with test controls."""
from __future__ import annotations

import contextlib
import datetime as dt

import pytest

from svcnet.api import errors
from svcnet.api.errors import ApiError
from svcnet.client.rest import TransportError
from svcnet.testing.api import Action, FakeApi
from tests.unit.client.helpers import DEPLOYMENTS, NAMESPACES, PODS, SERVICES, pod


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}}


def deployment(name: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}}}


async def test_create_stamps_metadata_and_duplicate_is_409():
    api = FakeApi()
    before = int(api.resource_version)  # the system namespaces came first, as on the server
    created = await api.create(PODS, "default", pod("a"))
    md = created["metadata"]
    assert md["resourceVersion"] == str(before + 1) and md["uid"] and md["creationTimestamp"]
    with pytest.raises(ApiError) as info:
        await api.create(PODS, "default", pod("a"))
    assert (info.value.code, info.value.reason) == (409, "AlreadyExists")


async def test_get_missing_is_404():
    with pytest.raises(ApiError) as info:
        await FakeApi().get(PODS, "default", "nope")
    assert info.value.code == 404


async def test_generate_name_makes_a_name():
    body = pod("")
    body["metadata"] = {"generateName": "web-"}
    created = await FakeApi().create(PODS, "default", body)
    assert created["metadata"]["name"].startswith("web-") and len(created["metadata"]["name"]) == 9


async def test_stale_update_is_a_409_conflict():
    api = FakeApi()
    first = await api.create(PODS, "default", pod("a"))
    await api.patch(PODS, "default", "a", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiError) as info:
        await api.update(PODS, "default", first)
    assert (info.value.code, info.value.reason) == (409, "Conflict")


async def test_main_update_keeps_status_and_update_status_changes_only_status():
    api = FakeApi()
    svc = await api.create(SERVICES, "default", service("s"))
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    svc["spec"]["type"] = "NodePort"
    after_update = await api.update(SERVICES, "default", svc)
    # The status the create reset stays; the one sent with the main resource is ignored.
    assert after_update["status"] == {"loadBalancer": {}} and after_update["spec"]["type"] == "NodePort"
    svc = dict(after_update, status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
               spec={"type": "ClusterIP"})
    after_status = await api.update_status(SERVICES, "default", svc)
    assert after_status["status"]["loadBalancer"]["ingress"] == [{"ip": "1.2.3.4"}]
    assert after_status["spec"]["type"] == "NodePort"


async def test_generation_bumps_on_spec_change_only():
    api = FakeApi()
    dep = await api.create(DEPLOYMENTS, "default", deployment("d"))
    assert dep["metadata"]["generation"] == 1
    dep = await api.patch(DEPLOYMENTS, "default", "d", {"metadata": {"labels": {"a": "b"}}})
    assert dep["metadata"]["generation"] == 1
    dep = await api.patch(DEPLOYMENTS, "default", "d", {"spec": {"replicas": 3}})
    assert dep["metadata"]["generation"] == 2


async def test_update_that_changes_nothing_keeps_the_resource_version():
    api = FakeApi()
    created = await api.create(PODS, "default", pod("a"))
    unchanged = await api.update(PODS, "default", created)
    assert unchanged["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


@pytest.mark.parametrize("patch_type, body", [
    ("merge", {"metadata": {"labels": {"tier": "web"}}}),
    ("json", [{"op": "add", "path": "/metadata/labels/tier", "value": "web"}]),
    ("strategic", {"metadata": {"labels": {"tier": "web"}}}),
])
async def test_patch_types(patch_type, body):
    api = FakeApi()
    await api.create(PODS, "default", pod("a", labels={"app": "x"}))
    patched = await api.patch(PODS, "default", "a", body, patch_type=patch_type)
    assert patched["metadata"]["labels"] == {"app": "x", "tier": "web"}


async def test_strategic_patch_merges_containers_by_name():
    api = FakeApi()
    await api.create(PODS, "default", pod("a"))
    patched = await api.patch(PODS, "default", "a",
                              {"spec": {"containers": [{"name": "c", "image": "other"}]}},
                              patch_type="strategic")
    # One container, its image replaced (the server defaulted the rest of its fields at create).
    assert [(c["name"], c["image"]) for c in patched["spec"]["containers"]] == [("c", "other")]


async def test_apply_creates_then_updates():
    api = FakeApi()
    body = service("s")
    created = await api.patch(SERVICES, "default", "s", body, patch_type="apply", field_manager="t")
    assert created["spec"]["selector"] == {"app": "web"}
    body["spec"]["selector"] = {"app": "api"}
    updated = await api.patch(SERVICES, "default", "s", body, patch_type="apply", field_manager="t")
    assert updated["spec"]["selector"] == {"app": "api"}


async def test_delete_with_finalizers_marks_then_removal_of_last_finalizer_deletes():
    api = FakeApi()
    body = pod("a")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await api.create(PODS, "default", body)
    marked = await api.delete(PODS, "default", "a")
    assert marked["metadata"]["deletionTimestamp"]
    await api.patch(PODS, "default", "a", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiError) as info:
        await api.get(PODS, "default", "a")
    assert info.value.code == 404


async def test_delete_precondition_mismatch_is_409():
    api = FakeApi()
    await api.create(PODS, "default", pod("a"))
    with pytest.raises(ApiError) as info:
        await api.delete(PODS, "default", "a", preconditions={"uid": "other"})
    assert info.value.code == 409


async def test_list_selectors_and_paging():
    api = FakeApi()
    await api.create(NAMESPACES, None, {"metadata": {"name": "other"}})
    for i in range(5):
        await api.create(PODS, "default", pod(f"p{i}", labels={"i": str(i % 2)}))
    await api.create(PODS, "other", pod("q", namespace="other", labels={"i": "0"}))
    everything = await api.list(PODS)
    assert len(everything["items"]) == 6
    odd = await api.list(PODS, "default", label_selector="i=1")
    assert [o["metadata"]["name"] for o in odd["items"]] == ["p1", "p3"]
    first = await api.list(PODS, "default", limit=2)
    rest = await api.list(PODS, "default", limit=10, continue_=first["metadata"]["continue"])
    assert [o["metadata"]["name"] for o in first["items"] + rest["items"]] == [f"p{i}" for i in range(5)]
    with pytest.raises(ApiError) as info:
        await api.list(PODS, field_selector="spec.bogus=1")
    assert info.value.code == 400


async def test_watch_replays_history_from_a_resource_version_and_410_when_compacted():
    api = FakeApi()
    a = await api.create(PODS, "default", pod("a"))
    await api.create(PODS, "default", pod("b"))
    api.close_watches()
    events = []
    stream = api.watch(PODS, resource_version=a["metadata"]["resourceVersion"])
    api_watch = contextlib.aclosing(stream)
    async with api_watch as it:
        async for event_type, obj in it:
            events.append((event_type, obj["metadata"]["name"]))
            api.close_watches()
    assert events == [("ADDED", "b")]
    api.compact()
    with pytest.raises(ApiError) as info:
        async for _ in api.watch(PODS, resource_version=a["metadata"]["resourceVersion"]):
            pass
    assert info.value.code == 410


async def test_outage_fails_calls_with_transport_error():
    api = FakeApi()
    api.outage = True
    with pytest.raises(TransportError):
        await api.list(PODS)


async def test_actions_record_writes():
    api = FakeApi()
    await api.create(PODS, "default", pod("a"))
    await api.delete(PODS, "default", "a")
    assert api.actions == [Action("create", "pods", "default", "a"), Action("delete", "pods", "default", "a")]


# ------------------------------------------------- what the registry brings along

async def test_writes_are_validated_defaulted_and_admitted_as_on_the_server():
    api = FakeApi()
    invalid = pod("a")
    del invalid["spec"]["containers"][0]["image"]
    with pytest.raises(ApiError) as info:
        await api.create(PODS, "default", invalid)
    assert (info.value.code, info.value.reason) == (422, "Invalid")
    created = await api.create(PODS, "default", pod("a"))
    assert created["spec"]["restartPolicy"] == "Always"  # defaulted
    svc = await api.create(SERVICES, "default", service("s"))
    assert svc["spec"]["clusterIP"].startswith("10.") and svc["spec"]["ipFamilies"] == ["IPv4"]
    taken = service("t")
    taken["spec"]["clusterIP"] = svc["spec"]["clusterIP"]
    with pytest.raises(ApiError) as info:
        await api.create(SERVICES, "default", taken)
    assert info.value.code == 422 and "already allocated" in info.value.message


async def test_objects_need_an_existing_namespace():
    api = FakeApi()
    with pytest.raises(ApiError) as info:
        await api.create(PODS, "elsewhere", pod("a", namespace="elsewhere"))
    assert info.value.code == 404


async def test_immutable_metadata_and_deletion_marks_stay_as_stored():
    api = FakeApi()
    created = await api.create(PODS, "default", pod("a"))
    created["metadata"].update(uid="other", creationTimestamp="2000-01-01T00:00:00Z",
                               deletionTimestamp="2000-01-01T00:00:00Z", labels={"x": "1"})
    updated = await api.update(PODS, "default", created)
    md = updated["metadata"]
    assert md["labels"] == {"x": "1"} and "deletionTimestamp" not in md
    assert (await api.get(PODS, "default", "a"))["metadata"]["uid"] != "other"


async def test_clock_stamps_what_the_registry_sets_and_bound_pods_delete_gracefully():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    api = FakeApi(clock=lambda: now)
    created = await api.create(PODS, "default", pod("a", node="n1"))
    assert created["metadata"]["creationTimestamp"] == "2026-01-01T00:00:00Z"
    marked = await api.delete(PODS, "default", "a")  # bound to a node: its agent finishes the delete
    assert (marked["metadata"]["deletionTimestamp"], marked["metadata"]["deletionGracePeriodSeconds"]) == \
        ("2026-01-01T00:00:30Z", 30)
    await api.delete(PODS, "default", "a", grace_period_seconds=0)
    assert api.objects(PODS) == []


async def test_create_with_status_writes_the_status_the_create_resets():
    api = FakeApi()
    body = pod("a")
    body["status"] = {"phase": "Running", "podIP": "10.244.1.5"}
    assert (await api.create(PODS, "default", body))["status"] == {"phase": "Pending"}
    body["metadata"]["name"] = "b"
    stored = await api.create_with_status(PODS, "default", body)
    assert stored["status"] == {"phase": "Running", "podIP": "10.244.1.5"}


async def test_injected_failures_fire_after_the_writes_let_through():
    api = FakeApi()
    refused = errors.forbidden("pods", "", "exceeded quota", "")
    failure = api.fail("create", PODS, refused, after=1, times=1)
    await api.create(PODS, "default", pod("a"))
    with pytest.raises(ApiError) as info:
        await api.create(PODS, "default", pod("b"))
    assert info.value is refused
    await api.create(PODS, "default", pod("c"))
    await api.patch(PODS, "default", "c", {"metadata": {"labels": {"x": "1"}}})  # other verbs pass
    assert (failure.attempts, failure.fired) == (3, 1)
    assert [o["metadata"]["name"] for o in api.objects(PODS)] == ["a", "c"]


async def test_pod_binding_is_served_once():
    api = FakeApi()
    await api.create(PODS, "default", pod("a"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a"},
               "target": {"kind": "Node", "name": "n1"}}
    await api.request("POST", "/api/v1/namespaces/default/pods/a/binding", body=binding)
    assert (await api.get(PODS, "default", "a"))["spec"]["nodeName"] == "n1"
    assert api.actions[-1] == Action("create", "pods", "default", "a", "binding")
    with pytest.raises(ApiError) as info:
        await api.request("POST", "/api/v1/namespaces/default/pods/a/binding", body=binding)
    assert info.value.code == 409
