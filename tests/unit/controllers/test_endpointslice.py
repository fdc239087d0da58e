"""EndpointSliceController over FakeApi: events map to Services, writes are minimal, restarts converge."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from svcnet.controllers.base import ENDPOINTSLICES, EVENTS, NODES, PODS, SERVICES
from svcnet.controllers.endpointslice import EndpointSliceController, RecentWrites
from svcnet.core import endpoints as core
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.waiting import until

Obj = dict[str, Any]
T0 = "2026-01-01T00:00:00Z"


def service(name: str = "web", selector: dict[str, str] | None = None, **spec: Any) -> Obj:
    # The clusterIP is left to the API server's allocator (a fixed one could be taken twice).
    body_spec: Obj = {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}], **spec}
    if spec.get("type") == "ExternalName":
        body_spec.setdefault("externalName", "db.example.com")
    if selector is None:
        body_spec["selector"] = {"app": name}
    elif selector:
        body_spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": body_spec}


def pod(name: str, ip: str, *, app: str = "web", ready: bool = True, node: str = "node-1") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "serve_hostname",
                                                      "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": T0}]}}


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {core.LABEL_ZONE: "z1"}}}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        await fake.create(NODES, None, NODE)
        yield fake


@pytest.fixture
async def running(api: FakeApi) -> AsyncIterator[Callable[[], Any]]:
    async with controller_starter(api, EndpointSliceController) as start:
        yield start


def slices_of(api: FakeApi, name: str = "web") -> list[Obj]:
    return [s for s in api.objects(ENDPOINTSLICES)
            if s["metadata"]["labels"].get(core.LABEL_SERVICE_NAME) == name]


def ready_by_ip(api: FakeApi, name: str = "web") -> dict[str, bool]:
    return {e["addresses"][0]: e["conditions"]["ready"] for s in slices_of(api, name) for e in s["endpoints"]}


def slice_writes(api: FakeApi) -> list[str]:
    return [a.verb for a in api.actions if a.plural == "endpointslices"]


async def test_service_with_ready_pods_gets_a_slice(api, running) -> None:
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    await api.create_with_status(PODS, "default", pod("b", "10.244.1.9"))
    await api.create(SERVICES, "default", service())
    await running()
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": True, "10.244.1.9": True})
    (slice_,) = slices_of(api)
    assert slice_["metadata"]["name"].startswith("web-")
    assert {e["zone"] for e in slice_["endpoints"]} == {"z1"}
    assert core.ANNOTATION_TRIGGER_TIME in slice_["metadata"]["annotations"]


async def test_readiness_flip_is_one_update_of_the_same_slice(api, running) -> None:
    await api.create(SERVICES, "default", service())
    created = await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    r = await running()
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": True})
    await r.settled()
    (before,) = slices_of(api)
    writes = len(slice_writes(api))
    created["status"]["conditions"][0]["status"] = "False"
    await api.update_status(PODS, "default", created)
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": False})
    await r.settled()
    (after,) = slices_of(api)
    assert after["metadata"]["name"] == before["metadata"]["name"]
    assert slice_writes(api)[writes:] == ["update"]


async def test_pod_relabelled_out_of_the_selector_leaves_the_slice(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    b = await api.create_with_status(PODS, "default", pod("b", "10.244.1.9"))
    await running()
    await until(lambda: len(ready_by_ip(api)) == 2)
    b["metadata"]["labels"] = {"app": "other"}
    await api.update(PODS, "default", b)
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": True})


async def test_pod_deleted_leaves_the_slice(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    await api.create_with_status(PODS, "default", pod("b", "10.244.1.9"))
    await running()
    await until(lambda: len(ready_by_ip(api)) == 2)
    await api.delete(PODS, "default", "b")  # graceful: b's node has yet to stop it
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": True, "10.244.1.9": False})
    await api.delete(PODS, "default", "b", grace_period_seconds=0)  # its kubelet finishing the delete
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": True})


async def test_pods_of_other_services_do_not_enqueue_this_one(api, running) -> None:
    await api.create(SERVICES, "default", service("web"))
    await api.create(SERVICES, "default", service("db"))
    r = await running()
    await until(lambda: slices_of(api, "web") and slices_of(api, "db"))
    await r.settled()
    added: list[str] = []
    original_add = r.controller.queue.add
    r.controller.queue.add = lambda key: (added.append(key), original_add(key))  # type: ignore[method-assign]
    await api.create_with_status(PODS, "default", pod("d", "10.244.1.20", app="db"))
    await until(lambda: ready_by_ip(api, "db") == {"10.244.1.20": True})
    assert set(added) == {"default/db"}


async def test_service_deleted_removes_its_slices(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    await running()
    await until(lambda: slices_of(api))
    await api.delete(SERVICES, "default", "web")
    await until(lambda: not slices_of(api))


async def test_slice_deleted_by_someone_else_is_recreated(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    await running()
    await until(lambda: slices_of(api))
    (slice_,) = slices_of(api)
    await api.delete(ENDPOINTSLICES, "default", slice_["metadata"]["name"])
    await until(lambda: [s for s in slices_of(api) if s["metadata"]["name"] != slice_["metadata"]["name"]])
    assert ready_by_ip(api) == {"10.244.1.8": True}


async def test_back_to_back_syncs_do_not_duplicate_slices(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    r = await running()
    await r.settled()
    # Sync again before the informer can have seen the slice just written.
    await r.controller.informers.informer(ENDPOINTSLICES).stop()
    await api.create_with_status(PODS, "default", pod("b", "10.244.1.9"))
    await until(lambda: r.controller.index.pods_for(r.controller.services.get("default", "web")) and
                len(r.controller.index.pods_for(r.controller.services.get("default", "web"))) == 2)
    await r.controller.reconcile("default/web")
    await r.controller.reconcile("default/web")
    assert len(slices_of(api)) == 1
    assert ready_by_ip(api) == {"10.244.1.8": True, "10.244.1.9": True}


async def test_nothing_changed_means_no_write(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    r = await running()
    await until(lambda: slices_of(api))
    await r.settled()
    writes = len(slice_writes(api))
    await r.controller.reconcile("default/web")
    assert len(slice_writes(api)) == writes


@pytest.mark.parametrize("svc", [service("plain", selector={}), service("ext", type="ExternalName")])
async def test_selectorless_and_external_name_services_get_no_slices(api, running, svc: Obj) -> None:
    await api.create(SERVICES, "default", svc)
    await api.create(SERVICES, "default", service("barrier"))
    r = await running()
    await until(lambda: slices_of(api, "barrier"))
    await r.settled()
    assert slices_of(api, svc["metadata"]["name"]) == []


async def test_restart_converges_on_changes_made_while_down(api, running) -> None:
    await api.create(SERVICES, "default", service())
    a = await api.create_with_status(PODS, "default", pod("a", "10.244.1.8"))
    first = await running()
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": True})
    await first.stop()
    a["status"]["conditions"][0]["status"] = "False"
    await api.update_status(PODS, "default", a)
    await api.create_with_status(PODS, "default", pod("b", "10.244.1.9"))
    await running()
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": False, "10.244.1.9": True})
    assert len(slices_of(api)) == 1


async def test_pod_waits_for_its_node_then_joins(api, running) -> None:
    await api.create(SERVICES, "default", service())
    await api.create_with_status(PODS, "default", pod("a", "10.244.1.8", node="node-2"))
    r = await running()
    await until(lambda: slices_of(api))
    assert ready_by_ip(api) == {}
    assert "default/web" in r.controller.node_waits.keys()
    await api.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"}})
    await until(lambda: ready_by_ip(api) == {"10.244.1.8": True})


def zoned_node(name: str, zone: str, ready: bool = True) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {core.LABEL_ZONE: zone}},
            "status": {"allocatable": {"cpu": "2"},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def hints_by_ip(api: FakeApi, name: str = "web") -> dict[str, Any]:
    return {e["addresses"][0]: e.get("hints") for s in slices_of(api, name) for e in s["endpoints"]}


async def test_auto_hints_follow_the_nodes_and_are_announced(api, running) -> None:
    """Two zones of equal CPU, two endpoints each: every endpoint hinted for its zone, one Normal event;
    zone z2's node going NotReady leaves one zone, so the Service is synced again and loses its hints."""
    await api.update_status(NODES, None, zoned_node("node-1", "z1"))  # the fixture's node-1 is in z1
    await api.create_with_status(NODES, None, zoned_node("node-2", "z2"))
    for name, ip, node in (("a1", "10.244.1.8", "node-1"), ("a2", "10.244.1.9", "node-1"),
                           ("b1", "10.244.2.8", "node-2"), ("b2", "10.244.2.9", "node-2")):
        await api.create_with_status(PODS, "default", pod(name, ip, node=node))
    svc = service()
    svc["metadata"]["annotations"] = {"service.kubernetes.io/topology-mode": "Auto"}
    await api.create(SERVICES, "default", svc)
    await running()
    z1, z2 = {"forZones": [{"name": "z1"}]}, {"forZones": [{"name": "z2"}]}
    await until(lambda: hints_by_ip(api) == {"10.244.1.8": z1, "10.244.1.9": z1, "10.244.2.8": z2, "10.244.2.9": z2})
    await until(lambda: [(e["type"], e["reason"]) for e in api.objects(EVENTS)] == [
        ("Normal", "TopologyAwareHintsEnabled")])
    await api.update_status(NODES, None, zoned_node("node-2", "z2", ready=False))
    await until(lambda: set(map(str, hints_by_ip(api).values())) == {"None"})
    await until(lambda: ("Warning", "TopologyAwareHintsDisabled", "Insufficient Node information: allocatable CPU "
                         "or zone not specified on one or more nodes, addressType: IPv4")
                in [(e["type"], e["reason"], e["message"]) for e in api.objects(EVENTS)])


def test_recent_writes_overlay_newer_writes_and_hide_deletes() -> None:
    recent = RecentWrites()
    cached_v1 = {"metadata": {"name": "s1", "uid": "u1", "resourceVersion": "1"}, "endpoints": []}
    written_v2 = {"metadata": {"name": "s1", "uid": "u1", "resourceVersion": "2"}, "endpoints": ["x"]}
    created = {"metadata": {"name": "s2", "uid": "u2", "resourceVersion": "3"}}
    recent.wrote("svc", written_v2)
    recent.wrote("svc", created)
    assert recent.view("svc", [cached_v1]) == [written_v2, created]
    assert recent.observe("svc", written_v2)  # the echo of our own update
    assert recent.view("svc", [written_v2, created]) == [written_v2, created]
    assert len(recent) == 0  # the cache caught up: nothing kept
    recent.deleted("svc", created)
    assert recent.view("svc", [written_v2, created]) == [written_v2]
    assert recent.observe("svc", created, gone=True)
    assert len(recent) == 0
