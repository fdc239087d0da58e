"""The ReplicaSet controller over FakeApi and real informers: creates, deletes, claims, status, events."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from svcnet.api import errors
from svcnet.apiserver.defaults import apply_defaults
from svcnet.client.events import MAX_QUEUED_EVENTS
from svcnet.controllers.base import EVENTS, PODS, REPLICASETS, Controller, InformerFactory
from svcnet.controllers.deployment import DeploymentController
from svcnet.controllers.replicaset import ManageReplicasError, ReplicaSetController
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import caches_caught_up

READY_SINCE = "2026-01-01T00:00:00Z"


def replica_set(name: str = "web-abc", replicas: int = 3, labels: dict[str, str] | None = None) -> dict:
    labels = labels or {"app": "web"}
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": name, "namespace": "default"},
          "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                   "template": {"metadata": {"labels": dict(labels)},
                                "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}}}
    apply_defaults("ReplicaSet", rs)
    return rs


def bare_pod(name: str, labels: dict[str, str], owner: dict | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels}
    if owner is not None:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner["kind"],
                                  "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                  "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}


class Harness:
    """Both controllers over one FakeApi; converge() plays workers (and kubelet, if asked)."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.informers = InformerFactory(api)
        self.replicasets = ReplicaSetController(api, self.informers)
        self.deployments = DeploymentController(api, self.informers)
        self.controllers: list[Controller] = [self.replicasets, self.deployments]
        self.kubelet = False  # mark every new pod Running and Ready between rounds
        self.unready: set[str] = set()  # pod names the kubelet leaves unready
        self.lowest_ready: int | None = None  # fewest ready pods seen between rounds

    async def start(self) -> None:
        for controller in self.controllers:
            controller.setup()
        self.informers.start()
        await self.informers.wait_synced()

    async def stop(self) -> None:
        # Deliver in-flight watch events first: cancelling an informer while FakeApi.watch's
        # wait_for is handing it an event can lose the cancellation on Python 3.11.
        await self.settle()
        for controller in self.controllers:
            controller.shutdown()
        for controller in self.controllers:
            await controller.background.flush()  # type: ignore[attr-defined]
        await self.informers.stop()

    async def settle(self) -> None:
        """Let every informer cache catch up with what the fake API holds."""
        await caches_caught_up(self.api, [self.replicasets.replicasets, self.replicasets.pods,
                                          self.deployments.deployments])

    async def play_kubelet(self) -> None:
        for pod in self.api.objects(PODS):
            if pod.get("status", {}).get("phase") == "Running":
                continue
            ready = pod["metadata"]["name"] not in self.unready
            pod["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": READY_SINCE}]}
            await self.api.update_status(PODS, "default", pod)

    def ready_pods(self) -> int:
        return sum(1 for p in self.api.objects(PODS)
                   if any(c["type"] == "Ready" and c["status"] == "True"
                          for c in p.get("status", {}).get("conditions", [])))

    async def converge(self, rounds: int = 200) -> None:
        """Run queued reconciles one at a time, settling the caches (and kubelet) in between."""
        for _ in range(rounds):
            if self.kubelet:
                await self.play_kubelet()
            await self.settle()
            ready = self.ready_pods()
            self.lowest_ready = ready if self.lowest_ready is None else min(self.lowest_ready, ready)
            busy = [c for c in self.controllers if len(c.queue)]
            if not busy:
                if self.kubelet and any(p.get("status", {}).get("phase") != "Running"
                                        for p in self.api.objects(PODS)):
                    continue
                return
            for controller in busy:
                key = await controller.queue.get()
                try:
                    await controller.reconcile(key)
                finally:
                    controller.queue.done(key)
        raise AssertionError("did not converge")

    def pods(self) -> list[dict]:
        return self.api.objects(PODS)

    async def events(self) -> list[tuple[str, str, str]]:
        for controller in self.controllers:
            await controller.background.flush()  # type: ignore[attr-defined]
        return [(e["type"], e["reason"], e["message"]) for e in self.api.objects(EVENTS)]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with FakeApi() as api:
        h = Harness(api)
        await h.start()
        yield h
        await h.stop()


async def test_missing_pods_are_created_from_the_template_with_owner_and_generate_name(
        harness: Harness) -> None:
    rs = await harness.api.create(REPLICASETS, "default", replica_set())
    await harness.converge()
    pods = harness.pods()
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith("web-abc-") and len(pod["metadata"]["name"]) == 13
        assert pod["metadata"]["generateName"] == "web-abc-"
        assert pod["metadata"]["labels"] == {"app": "web"}
        assert pod["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
            "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    events = await harness.events()
    assert sorted(events) == sorted(("Normal", "SuccessfulCreate", f"Created pod: {p['metadata']['name']}")
                                    for p in pods)
    status = (await harness.api.get(REPLICASETS, "default", "web-abc"))["status"]
    assert status == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 0,
                      "availableReplicas": 0, "observedGeneration": 1}


async def test_a_sync_before_the_cache_sees_its_creates_does_not_create_again(harness: Harness) -> None:
    await harness.api.create(REPLICASETS, "default", replica_set())
    await harness.settle()
    await harness.informers.stop()  # freeze the caches: the creates stay unseen
    await harness.replicasets.reconcile("default/web-abc")
    await harness.replicasets.reconcile("default/web-abc")
    assert len(harness.pods()) == 3
    assert harness.replicasets.expectations.pending("default/web-abc") == (3, 0)
    harness.informers.start()
    await harness.settle()
    assert harness.replicasets.expectations.satisfied("default/web-abc", 0)


async def test_ready_pods_are_counted_in_status(harness: Harness) -> None:
    await harness.api.create(REPLICASETS, "default", replica_set())
    harness.kubelet = True
    harness.unready = set()
    await harness.converge()
    status = (await harness.api.get(REPLICASETS, "default", "web-abc"))["status"]
    assert (status["readyReplicas"], status["availableReplicas"]) == (3, 3)


async def test_surplus_pods_are_deleted_unready_first(harness: Harness) -> None:
    await harness.api.create(REPLICASETS, "default", replica_set(replicas=3))
    harness.kubelet = True
    await harness.converge()
    unready = harness.pods()[1]
    unready["status"]["conditions"][0]["status"] = "False"
    await harness.api.update_status(PODS, "default", unready)
    rs = await harness.api.get(REPLICASETS, "default", "web-abc")
    rs["spec"]["replicas"] = 2
    await harness.api.update(REPLICASETS, "default", rs)
    await harness.converge()
    names = {p["metadata"]["name"] for p in harness.pods()}
    assert len(names) == 2 and unready["metadata"]["name"] not in names
    assert ("Normal", "SuccessfulDelete", f"Deleted pod: {unready['metadata']['name']}") in await harness.events()


async def test_matching_orphans_are_adopted_and_relabeled_pods_released(harness: Harness) -> None:
    rs = await harness.api.create(REPLICASETS, "default", replica_set(replicas=2))
    await harness.api.create(PODS, "default", bare_pod("orphan", {"app": "web"}))
    await harness.api.create(PODS, "default", bare_pod("stranger", {"app": "other"}))
    await harness.converge()
    pods = {p["metadata"]["name"]: p for p in harness.pods()}
    assert len(pods) == 3
    assert pods["orphan"]["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    assert "ownerReferences" not in pods["stranger"]["metadata"]
    # A pod relabeled out of the selector is let go, and replaced.
    pods["orphan"]["metadata"]["labels"] = {"app": "elsewhere"}
    await harness.api.update(PODS, "default", pods["orphan"])
    await harness.converge()
    released = await harness.api.get(PODS, "default", "orphan")
    assert not released["metadata"].get("ownerReferences")
    owned = [p for p in harness.pods() if p["metadata"].get("ownerReferences")]
    assert len(owned) == 2


async def test_pods_of_another_controller_are_left_alone(harness: Harness) -> None:
    other = {"kind": "StatefulSet", "metadata": {"name": "db", "uid": "sts-uid"}}
    await harness.api.create(PODS, "default", bare_pod("theirs", {"app": "web"}, owner=other))
    await harness.api.create(REPLICASETS, "default", replica_set(replicas=1))
    await harness.converge()
    theirs = await harness.api.get(PODS, "default", "theirs")
    assert theirs["metadata"]["ownerReferences"][0]["uid"] == "sts-uid"
    assert len(harness.pods()) == 2


async def test_a_failing_create_stops_the_slow_start_and_sets_replica_failure() -> None:
    async with FakeApi() as api:
        # Pod creates after the first are refused, as a ResourceQuota would refuse them.
        quota = api.fail("create", PODS, errors.forbidden(
            "pods", "", 'pods "web-abc-x" is forbidden: exceeded quota', ""), after=1)
        h = Harness(api)
        await h.start()
        try:
            await api.create(REPLICASETS, "default", replica_set(replicas=10))
            await h.settle()
            with pytest.raises(ManageReplicasError):
                await h.replicasets.reconcile("default/web-abc")
            assert quota.attempts == 3  # batch of 1 succeeded, batch of 2 failed, no batch of 4
            assert len(h.pods()) == 1
            # Only the one create that worked is still awaited (or already seen).
            assert h.replicasets.expectations.pending("default/web-abc")[0] <= 1
            status = (await api.get(REPLICASETS, "default", "web-abc"))["status"]
            (cond,) = status["conditions"]
            assert (cond["type"], cond["reason"]) == ("ReplicaFailure", "FailedCreate")
            assert "exceeded quota" in cond["message"]
            assert ("Warning", "FailedCreate",
                    'Error creating: pods "web-abc-x" is forbidden: exceeded quota') in await h.events()
        finally:
            await h.stop()


async def test_a_deleted_replica_set_forgets_its_expectations(harness: Harness) -> None:
    await harness.api.create(REPLICASETS, "default", replica_set())
    await harness.settle()
    harness.replicasets.expectations.expect_creations("default/web-abc", 5, 0)
    await harness.api.delete(REPLICASETS, "default", "web-abc")
    await harness.settle()
    assert harness.replicasets.expectations.pending("default/web-abc") == (0, 0)


class InFlightFakeApi(FakeApi):
    """Creates of one resource yield to the loop while in flight; each run of overlapping ones is a group."""

    def __init__(self, watched: Any = PODS) -> None:
        super().__init__()
        self.watched = watched
        self.in_flight = 0
        self.peak = 0
        self.groups: list[int] = []  # the most creates in flight at once, per run of overlapping ones

    async def create(self, resource: Any, namespace: str | None, body: dict, **kw: Any) -> dict:
        if resource is not self.watched:
            return await super().create(resource, namespace, body, **kw)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0)  # a create on the wire: the others of its batch go out meanwhile
            return await super().create(resource, namespace, body, **kw)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.groups.append(self.peak)
                self.peak = 0


async def test_slow_start_batches_go_out_together_one_batch_after_another() -> None:
    async with InFlightFakeApi() as api:
        h = Harness(api)
        await h.start()
        try:
            await api.create(REPLICASETS, "default", replica_set(replicas=15))
            await h.settle()
            await h.replicasets.reconcile("default/web-abc")
            # Every create of a batch was in flight at once, and no batch overlapped the next.
            assert api.groups == [1, 2, 4, 8]
            assert len(h.pods()) == 15
        finally:
            await h.stop()


async def test_events_are_written_one_at_a_time_in_order_and_a_full_queue_drops() -> None:
    async with InFlightFakeApi(EVENTS) as api:
        h = Harness(api)
        await h.start()
        try:
            background = h.replicasets.background
            owners = [{"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": f"p{i}", "namespace": "default", "uid": f"uid-{i}"}}
                      for i in range(MAX_QUEUED_EVENTS + 5)]
            for owner in owners:  # one event each: the per-object spam filter lets every one through
                background.emit(owner, "Normal", "Tested", owner["metadata"]["name"])
            assert background.dropped == 5  # the queue holds MAX_QUEUED_EVENTS; the rest are dropped
            await background.flush()
            assert set(api.groups) == {1}  # never two event writes at once
            written = sorted(api.objects(EVENTS), key=lambda e: int(e["metadata"]["resourceVersion"]))
            assert [e["message"] for e in written] == [f"p{i}" for i in range(MAX_QUEUED_EVENTS)]
        finally:
            await h.stop()
