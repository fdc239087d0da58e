"""The StatefulSet controller over FakeApi and real informers: ordered pods, identity, events, status."""
from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from svcnet.controllers.base import EVENTS, PODS, STATEFULSETS, InformerFactory
from svcnet.controllers.statefulset import StatefulSetController
from svcnet.core import statefulset as core
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import caches_caught_up

NOW = "2026-11-27T08:00:00Z"


def statefulset(name: str = "web", replicas: int = 3, policy: str = "OrderedReady") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": name}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}}}


class Harness:
    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.informers = InformerFactory(api)
        self.controller = StatefulSetController(api, self.informers)

    async def start(self) -> None:
        self.controller.setup()
        self.informers.start()
        await self.informers.wait_synced()

    async def settle(self) -> None:
        """Let the informers' caches catch up with what the fake API holds."""
        await caches_caught_up(self.api, list((self.controller.sets, self.controller.pods)))

    async def converge(self, rounds: int = 50) -> None:
        """Run the queued reconciles (no workers), letting the caches catch up between them."""
        queue = self.controller.queue
        for _ in range(rounds):
            await self.settle()
            if not len(queue):
                return
            key = await queue.get()
            try:
                await self.controller.reconcile(key)
            finally:
                queue.done(key)
        raise AssertionError("did not converge")

    async def mark(self, name: str, *, ready: bool = True, phase: str = "Running") -> None:
        pod = await self.api.get(PODS, "default", name)
        pod["status"] = {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": NOW}]}
        await self.api.update_status(PODS, "default", pod)

    def pod_names(self) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.api.objects(PODS))

    def events(self) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in self.api.objects(EVENTS)]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with FakeApi() as api:
        h = Harness(api)
        await h.start()
        yield h
        # Stopping with watch events still queued can hang on Python 3.11: FakeApi.watch's
        # asyncio.wait_for(queue.get()) swallows the cancellation when an item is ready.
        await h.settle()
        h.controller.shutdown()
        await h.informers.stop()


async def test_pods_are_created_one_at_a_time_each_after_the_previous_is_ready(harness: Harness) -> None:
    await harness.api.create(STATEFULSETS, "default", statefulset())
    await harness.converge()
    assert harness.pod_names() == ["web-0"]
    await harness.mark("web-0", ready=False)
    await harness.converge()
    assert harness.pod_names() == ["web-0"]
    await harness.mark("web-0")
    await harness.converge()
    assert harness.pod_names() == ["web-0", "web-1"]
    await harness.mark("web-1")
    await harness.converge()
    await harness.mark("web-2")
    await harness.converge()
    assert harness.pod_names() == ["web-0", "web-1", "web-2"]
    sts = await harness.api.get(STATEFULSETS, "default", "web")
    status = sts["status"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (3, 3, 3)
    assert status["currentRevision"] == status["updateRevision"] == core.revision_name(sts)
    assert status["observedGeneration"] == sts["metadata"]["generation"]


async def test_pods_carry_hostname_subdomain_labels_and_owner(harness: Harness) -> None:
    created = await harness.api.create(STATEFULSETS, "default", statefulset())
    await harness.converge()
    pod = await harness.api.get(PODS, "default", "web-0")
    assert pod["spec"]["hostname"] == "web-0"
    assert pod["spec"]["subdomain"] == "web"
    labels = pod["metadata"]["labels"]
    assert labels["app"] == "web"
    assert labels[core.POD_NAME_LABEL] == "web-0"
    assert labels[core.POD_INDEX_LABEL] == "0"
    assert labels[core.REVISION_LABEL] == core.revision_name(created)
    (owner,) = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("StatefulSet", created["metadata"]["uid"], True)


async def test_create_and_delete_are_recorded_as_upstreams_events(harness: Harness) -> None:
    await harness.api.create(STATEFULSETS, "default", statefulset(replicas=1))
    await harness.converge()
    await harness.mark("web-0")
    sts = await harness.api.get(STATEFULSETS, "default", "web")
    sts["spec"]["replicas"] = 0
    await harness.api.update(STATEFULSETS, "default", sts)
    await harness.converge()
    assert harness.pod_names() == []
    assert harness.events() == [
        ("Normal", "SuccessfulCreate", "create Pod web-0 in StatefulSet web successful"),
        ("Normal", "SuccessfulDelete", "delete Pod web-0 in StatefulSet web successful"),
    ]
    (event, _) = harness.api.objects(EVENTS)
    assert event["involvedObject"]["kind"] == "StatefulSet"


async def test_scale_down_removes_the_highest_ordinal_first(harness: Harness) -> None:
    # OrderedReady from the start: podManagementPolicy cannot change once the set exists.
    await harness.api.create(STATEFULSETS, "default", statefulset())
    for name in ("web-0", "web-1", "web-2"):
        await harness.converge()
        await harness.mark(name)
    await harness.converge()
    assert harness.pod_names() == ["web-0", "web-1", "web-2"]
    sts = await harness.api.get(STATEFULSETS, "default", "web")
    sts["spec"]["replicas"] = 1
    await harness.api.update(STATEFULSETS, "default", sts)
    await harness.converge()
    deletes = [a.name for a in harness.api.actions if a.verb == "delete" and a.plural == "pods"]
    assert deletes == ["web-2", "web-1"]
    assert harness.pod_names() == ["web-0"]


async def test_deleted_pod_comes_back_with_the_same_name(harness: Harness) -> None:
    await harness.api.create(STATEFULSETS, "default", statefulset(replicas=2, policy="Parallel"))
    await harness.converge()
    before = await harness.api.get(PODS, "default", "web-1")
    await harness.api.delete(PODS, "default", "web-1")
    await harness.converge()
    after = await harness.api.get(PODS, "default", "web-1")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["hostname"] == "web-1"


async def test_failed_pod_is_replaced(harness: Harness) -> None:
    await harness.api.create(STATEFULSETS, "default", statefulset(replicas=1))
    await harness.converge()
    first = await harness.api.get(PODS, "default", "web-0")
    await harness.mark("web-0", ready=False, phase="Failed")
    await harness.converge()
    again = await harness.api.get(PODS, "default", "web-0")
    assert again["metadata"]["uid"] != first["metadata"]["uid"]


async def test_orphan_pod_with_a_member_name_is_adopted_and_relabelled(harness: Harness) -> None:
    sts = statefulset(replicas=1)
    orphan = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
              "spec": copy.deepcopy(sts["spec"]["template"]["spec"]),
              "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    await harness.api.create_with_status(PODS, "default", orphan)
    created = await harness.api.create(STATEFULSETS, "default", sts)
    await harness.converge()
    pod = await harness.api.get(PODS, "default", "web-0")
    assert [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [created["metadata"]["uid"]]
    assert pod["metadata"]["labels"][core.POD_NAME_LABEL] == "web-0"


async def test_rolling_update_replaces_pods_from_the_top_and_completes(harness: Harness) -> None:
    await harness.api.create(STATEFULSETS, "default", statefulset(replicas=2, policy="Parallel"))
    await harness.converge()
    for name in ("web-0", "web-1"):
        await harness.mark(name)
    await harness.converge()
    sts = await harness.api.get(STATEFULSETS, "default", "web")
    old_revision = sts["status"]["currentRevision"]
    sts["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
    await harness.api.update(STATEFULSETS, "default", sts)
    await harness.converge()
    assert [a.name for a in harness.api.actions if a.verb == "delete"] == ["web-1"]
    await harness.mark("web-1")
    await harness.converge()
    await harness.mark("web-0")
    await harness.converge()
    assert [a.name for a in harness.api.actions if a.verb == "delete"] == ["web-1", "web-0"]
    final = await harness.api.get(STATEFULSETS, "default", "web")
    assert final["status"]["currentRevision"] == final["status"]["updateRevision"] != old_revision
    assert final["status"]["updatedReplicas"] == 2
    images = {p["spec"]["containers"][0]["image"] for p in harness.api.objects(PODS)}
    assert images == {"v2"}


async def test_a_restarted_controller_converges_from_what_exists(harness: Harness) -> None:
    await harness.api.create(STATEFULSETS, "default", statefulset(replicas=2))
    await harness.converge()
    await harness.mark("web-0")
    # A fresh controller that never saw the events: level-based, it picks up where things stand.
    fresh = Harness(harness.api)
    await fresh.start()
    try:
        await fresh.converge()
        assert harness.pod_names() == ["web-0", "web-1"]
    finally:
        fresh.controller.shutdown()
        await fresh.informers.stop()
