"""FakeApi behaves like the API server where controllers can tell."""
from __future__ import annotations

import contextlib

import pytest

from svcnet.api.errors import ApiError
from svcnet.client.fake import Action, FakeApi
from svcnet.client.rest import TransportError
from tests.unit.client.helpers import DEPLOYMENTS, PODS, SERVICES, pod


async def test_create_stamps_metadata_and_duplicate_is_409():
    api = FakeApi()
    created = await api.create(PODS, "default", pod("a"))
    md = created["metadata"]
    assert md["resourceVersion"] == "1" and md["uid"] and md["creationTimestamp"]
    with pytest.raises(ApiError) as info:
        await api.create(PODS, "default", pod("a"))
    assert (info.value.code, info.value.reason) == (409, "AlreadyExists")


async def test_get_missing_is_404():
    with pytest.raises(ApiError) as info:
        await FakeApi().get(PODS, "default", "nope")
    assert info.value.code == 404


async def test_generate_name_makes_a_name():
    created = await FakeApi().create(PODS, "default", {"metadata": {"generateName": "web-"}})
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
    svc = await api.create(SERVICES, "default", {"metadata": {"name": "s"}, "spec": {"ports": []}})
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    svc["spec"]["type"] = "NodePort"
    after_update = await api.update(SERVICES, "default", svc)
    assert "status" not in after_update and after_update["spec"]["type"] == "NodePort"
    svc = dict(after_update, status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
               spec={"type": "ClusterIP"})
    after_status = await api.update_status(SERVICES, "default", svc)
    assert after_status["status"]["loadBalancer"]["ingress"] == [{"ip": "1.2.3.4"}]
    assert after_status["spec"]["type"] == "NodePort"


async def test_generation_bumps_on_spec_change_only():
    api = FakeApi()
    dep = await api.create(DEPLOYMENTS, "default", {"metadata": {"name": "d"}, "spec": {"replicas": 1}})
    assert dep["metadata"]["generation"] == 1
    dep = await api.patch(DEPLOYMENTS, "default", "d", {"metadata": {"labels": {"a": "b"}}})
    assert dep["metadata"]["generation"] == 1
    dep = await api.patch(DEPLOYMENTS, "default", "d", {"spec": {"replicas": 3}})
    assert dep["metadata"]["generation"] == 2


async def test_update_that_changes_nothing_keeps_the_resource_version():
    api = FakeApi()
    created = await api.create(PODS, "default", pod("a"))
    assert (await api.update(PODS, "default", created))["metadata"]["resourceVersion"] == "1"


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
    assert patched["spec"]["containers"] == [{"name": "c", "image": "other"}]


async def test_apply_creates_then_updates():
    api = FakeApi()
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
            "spec": {"selector": {"app": "web"}}}
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
    await api.create(PODS, "default", pod("a"))
    await api.create(PODS, "default", pod("b"))
    api.close_watches()
    events = []
    stream = api.watch(PODS, resource_version="1")
    api_watch = contextlib.aclosing(stream)
    async with api_watch as it:
        async for event_type, obj in it:
            events.append((event_type, obj["metadata"]["name"]))
            api.close_watches()
    assert events == [("ADDED", "b")]
    api.compact()
    with pytest.raises(ApiError) as info:
        async for _ in api.watch(PODS, resource_version="1"):
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
