"""The ReplicationController controller over FakeApi: the ReplicaSet controller with an RC's plain selector."""
from __future__ import annotations

from svcnet.api.resources import lookup
from svcnet.controllers.base import PODS
from svcnet.controllers.replicationcontroller import ReplicationControllerController
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import RunningController
from tests.waiting import until

RCS = lookup("", "v1", "replicationcontrollers")


def rc(replicas: int = 2, selector: dict | None = None) -> dict:
    spec: dict = {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def pods(api: FakeApi) -> list[dict]:
    return [p for p in api.objects(PODS) if not p["metadata"].get("deletionTimestamp")]


async def test_it_creates_its_replicas_adopts_a_matching_orphan_and_writes_status():
    api = FakeApi()
    orphan = await api.create(PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "namespace": "default",
                                                        "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    running = await RunningController(api, ReplicationControllerController).start()
    try:
        owner = await api.create(RCS, "default", rc(replicas=2, selector={"app": "web"}))
        await until(lambda: len(pods(api)) == 2, timeout=10, what="two pods")
        adopted = next(p for p in pods(api) if p["metadata"]["name"] == "stray")
        ref = adopted["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["uid"]) == ("ReplicationController", owner["metadata"]["uid"])
        assert orphan["metadata"]["uid"] == adopted["metadata"]["uid"]
        await until(lambda: (api.objects(RCS)[0].get("status") or {}).get("replicas") == 2, timeout=10,
                    what="status.replicas 2")
    finally:
        await running.stop()


def test_an_rc_without_a_selector_selects_nothing_not_every_pod():
    selector = ReplicationControllerController.selector_of({"spec": {}})
    assert not selector.matches({"app": "web"}) and not selector.matches({})
    assert ReplicationControllerController.selector_of({"spec": {"selector": {"app": "web"}}}).matches(
        {"app": "web", "tier": "x"})
