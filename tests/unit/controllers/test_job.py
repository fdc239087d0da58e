"""The Job, CronJob and TTL-after-finished controllers over FakeApi and real informers."""
from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from svcnet.controllers.base import EVENTS, PODS, Controller, InformerFactory
from svcnet.controllers.cronjob import CRONJOBS, CronJobController
from svcnet.controllers.job import JOBS, JobController
from svcnet.controllers.ttl_after_finished import TTLAfterFinishedController
from svcnet.core.job_labels import TRACKING_FINALIZER
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import caches_caught_up

POD_SPEC = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}


class Clock:
    """A settable clock that ticks a microsecond per reading (event names come from the time)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 7, 15, 0, 30, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(microseconds=1)
        return self.now


def job(name: str = "pi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"spec": dict(POD_SPEC)}, **spec}}


class Harness:
    def __init__(self, api: FakeApi, clock: Clock) -> None:
        self.api = api
        self.clock = clock
        self.informers = InformerFactory(api)
        self.controllers: list[Controller] = [
            JobController(api, self.informers, clock=clock, backoff_base=0.0),
            CronJobController(api, self.informers, clock=clock),
            TTLAfterFinishedController(api, self.informers, clock=clock)]

    async def start(self) -> None:
        for c in self.controllers:
            c.setup()
        self.informers.start()
        await self.informers.wait_synced()

    async def settle(self) -> None:
        await caches_caught_up(self.api, [self.informers.informer(r) for r in (JOBS, PODS, CRONJOBS)])

    async def converge(self, rounds: int = 100) -> None:
        for _ in range(rounds):
            await self.settle()
            busy = [c for c in self.controllers if len(c.queue)]
            if not busy:
                return
            for c in busy:
                key = await c.queue.get()
                try:
                    await c.reconcile(key)
                finally:
                    c.queue.done(key)
        raise AssertionError("did not converge")

    async def finish_pods(self, phase: str) -> list[str]:
        """Play kubelet: every running pod of the namespace ends in this phase."""
        done = []
        for pod in self.api.objects(PODS):
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            pod["status"] = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": 0, "state": {
                "terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                               "finishedAt": "2026-12-07T15:00:00Z"}}}]}
            await self.api.update_status(PODS, "default", pod)
            done.append(pod["metadata"]["name"])
        return done

    def events(self) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.api.objects(EVENTS)]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with FakeApi() as api:
        h = Harness(api, Clock())
        api.clock = h.clock  # creationTimestamps on the same clock as the controllers
        await h.start()
        yield h
        await h.settle()
        for c in h.controllers:
            c.shutdown()
        await h.informers.stop()


async def test_a_job_runs_its_pods_to_completion(harness: Harness) -> None:
    await harness.api.create(JOBS, "default", job(completions=2, parallelism=1))
    await harness.converge()
    (pod,) = harness.api.objects(PODS)
    assert pod["metadata"]["finalizers"] == [TRACKING_FINALIZER]
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
    await harness.finish_pods("Succeeded")
    await harness.converge()
    assert len(harness.api.objects(PODS)) == 2
    await harness.finish_pods("Succeeded")
    await harness.converge()
    got = await harness.api.get(JOBS, "default", "pi")
    status = got["status"]
    assert (status["succeeded"], status["active"], status["failed"]) == (2, 0, 0)
    assert {c["type"] for c in status["conditions"]} == {"SuccessCriteriaMet", "Complete"}
    assert status["completionTime"]
    assert all(not p["metadata"].get("finalizers") for p in harness.api.objects(PODS))
    created = [m for r, m in harness.events() if r == "SuccessfulCreate"]
    assert len(created) == 2 and created[0].startswith("Created pod: pi-"), harness.events()
    assert ("Completed", "Job completed") in harness.events()


async def test_backoff_limit_fails_the_job(harness: Harness) -> None:
    await harness.api.create(JOBS, "default", job(backoffLimit=1))
    for _ in range(2):
        await harness.converge()
        assert await harness.finish_pods("Failed")
    await harness.converge()
    status = (await harness.api.get(JOBS, "default", "pi"))["status"]
    assert status["failed"] == 2
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert len(harness.api.objects(PODS)) == 2  # no third attempt


async def test_a_finished_job_with_ttl_is_deleted_after_it(harness: Harness) -> None:
    await harness.api.create(JOBS, "default", job(ttlSecondsAfterFinished=100))
    await harness.converge()
    await harness.finish_pods("Succeeded")
    await harness.converge()
    assert await harness.api.get(JOBS, "default", "pi")
    harness.clock.now += dt.timedelta(seconds=200)
    harness.controllers[2].queue.add("default/pi")
    await harness.converge()
    # deleted in the foreground: the garbage collector (not running here) removes the pods first
    (deleting,) = harness.api.objects(JOBS)
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["finalizers"] == ["foregroundDeletion"]


async def test_a_cronjob_creates_a_job_at_its_schedule_time(harness: Harness) -> None:
    await harness.api.create(CRONJOBS, "default", {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": dict(POD_SPEC)}}}}})
    await harness.converge()
    assert not harness.api.objects(JOBS)  # created at 15:00:30: the first run is at 15:01
    harness.clock.now = dt.datetime(2026, 12, 7, 15, 1, 5, tzinfo=dt.UTC)
    harness.controllers[1].queue.add("default/hello")
    await harness.converge()
    (created,) = harness.api.objects(JOBS)
    minutes = int(dt.datetime(2026, 12, 7, 15, 1, tzinfo=dt.UTC).timestamp()) // 60
    assert created["metadata"]["name"] == f"hello-{minutes}"
    cj = await harness.api.get(CRONJOBS, "default", "hello")
    assert cj["status"]["lastScheduleTime"] == "2026-12-07T15:01:00Z"
    assert [a["name"] for a in cj["status"]["active"]] == [created["metadata"]["name"]]
    assert ("SuccessfulCreate", f"Created job hello-{minutes}") in harness.events()
    await harness.finish_pods("Succeeded")
    await harness.converge()
    cj = await harness.api.get(CRONJOBS, "default", "hello")
    assert "active" not in cj["status"]
    assert cj["status"]["lastSuccessfulTime"]


async def test_pods_left_without_their_job_lose_the_tracking_finalizer(harness: Harness) -> None:
    await harness.api.create(JOBS, "default", job(completions=2, parallelism=2))
    await harness.converge()
    first, second = harness.api.objects(PODS)
    # orphaned (what the garbage collector does for a delete with propagationPolicy Orphan) ...
    await harness.api.patch(PODS, "default", first["metadata"]["name"], {"metadata": {"ownerReferences": None}})
    # ... or its Job gone altogether
    await harness.api.delete(JOBS, "default", "pi", propagation_policy="Background")
    await harness.converge()
    for pod in harness.api.objects(PODS):
        assert TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []), pod["metadata"]["name"]
