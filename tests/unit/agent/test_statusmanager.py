"""Status writes coalesced per pod (kubelet's status manager) over FakeApi with a gate on status writes."""
from __future__ import annotations

import asyncio
from typing import Any

from svcnet.agent.kubelet import PODS
from svcnet.agent.statusmanager import StatusManager
from svcnet.api.objects import status_of
from svcnet.testing.api import Action, FakeApi


class SlowStatusApi(FakeApi):
    """Status writes wait at a gate the test opens: the API answers slower than the agent asks."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0

    async def update(self, resource: Any, namespace: str | None, body: dict[str, Any], **kwargs: Any) -> Any:
        if kwargs.get("subresource") == "status":
            self.waiting += 1
            await self.gate.wait()
        return await super().update(resource, namespace, body, **kwargs)


def status(step: int) -> dict[str, Any]:
    return {"phase": "Pending", "message": f"step {step}"}


def status_writes(api: FakeApi, name: str) -> list[Action]:
    return [a for a in api.actions if a == Action("update", "pods", "default", name, "status")]


async def make_pod(api: FakeApi, name: str) -> dict[str, Any]:
    return await api.create(PODS, "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                              "spec": {"containers": [{"name": "app", "image": "busybox"}]}})


def manager(api: FakeApi) -> tuple[StatusManager, dict[str, Any], list[tuple[str, float]]]:
    written: dict[str, Any] = {}
    requeued: list[tuple[str, float]] = []
    return (StatusManager(api, PODS, lambda uid, pod: written.__setitem__(uid, pod),
                          lambda key, delay: requeued.append((key, delay))), written, requeued)


async def test_a_burst_of_status_changes_for_one_pod_is_fewer_writes_and_the_last_one_wins() -> None:
    api = SlowStatusApi()
    pod = await make_pod(api, "busy")
    statuses, written, _ = manager(api)
    for step in range(10):
        statuses.set(pod, status(step))
        await asyncio.sleep(0)  # the writer starts its first write, which waits for the API
    assert api.waiting == 1  # one write in flight for the pod, never two
    api.gate.set()
    await statuses.idle()
    stored = await api.get(PODS, "default", "busy")
    assert status_of(stored)["message"] == "step 9"
    assert len(status_writes(api, "busy")) == 2  # the first one, then only the latest of the other nine
    assert statuses.writes == 2
    assert status_of(written[pod["metadata"]["uid"]])["message"] == "step 9"


async def test_writes_of_different_pods_do_not_wait_for_each_other() -> None:
    api = SlowStatusApi()
    pods = [await make_pod(api, f"p{i}") for i in range(3)]
    statuses, _, _ = manager(api)
    for pod in pods:
        statuses.set(pod, status(1))
    await asyncio.sleep(0)
    assert api.waiting == 3
    api.gate.set()
    await statuses.idle()
    assert all(len(status_writes(api, f"p{i}")) == 1 for i in range(3))


async def test_a_status_the_pod_shows_or_that_is_being_written_is_not_written_again() -> None:
    api = SlowStatusApi()
    pod = await make_pod(api, "same")
    statuses, _, _ = manager(api)
    statuses.set(pod, status_of(pod))
    assert statuses.wanted(pod["metadata"]["uid"]) is None
    statuses.set(pod, status(1))
    await asyncio.sleep(0)
    statuses.set(pod, status(1))  # the sync ran again before the API answered
    api.gate.set()
    await statuses.idle()
    assert len(status_writes(api, "same")) == 1


async def test_a_pod_replaced_under_the_same_name_keeps_its_status_and_the_key_is_synced_again() -> None:
    api = SlowStatusApi()
    old = await make_pod(api, "reborn")
    statuses, written, requeued = manager(api)
    statuses.set(old, status(1))
    await asyncio.sleep(0)
    await api.delete(PODS, "default", "reborn", grace_period_seconds=0)
    new = await make_pod(api, "reborn")
    api.gate.set()
    await statuses.idle()
    assert status_of(await api.get(PODS, "default", "reborn")) == status_of(new)  # the uid did not match
    assert requeued == [("default/reborn", 0.05)]
    assert written == {old["metadata"]["uid"]: None}  # the agent reads the pod again before its next write
