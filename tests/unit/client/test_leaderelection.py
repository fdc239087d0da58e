"""LeaderElected over one (fake) API: one instance runs its component; the other takes over
when the leader stops, and a leader cut off from the API stops acting at its renew deadline.

Short durations (a 2 s lease, 1 s renew deadline, 0.25 s retry period), waited on with deadlines.
"""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.resources import lookup
from svcnet.client.leaderelection import LeaderElected
from svcnet.client.rest import TransportError
from svcnet.core.leaderelection import ElectionConfig
from svcnet.testing.api import FakeApi
from tests.waiting import until

LEASES = lookup("coordination.k8s.io", "v1", "leases")


class Reachable:
    """One instance's path to the shared API: cut it and every call fails as a dead connection."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.down = False

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.api, name)

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise TransportError("connection refused")
            return await call(*args, **kwargs)

        return guarded


class Work:
    """The guarded component: records whether it runs."""

    def __init__(self) -> None:
        self.running = False
        self.starts = 0

    async def start(self) -> None:
        self.running = True
        self.starts += 1

    async def stop(self) -> None:
        self.running = False


Candidate = tuple[LeaderElected, Work, Reachable]  # the elector, the work it guards, its path to the API


def instance(api: FakeApi, name: str) -> Candidate:
    work, path = Work(), Reachable(api)
    config = ElectionConfig(f"host_{name}", lease_duration=2, renew_deadline=1, retry_period=0.25)
    return LeaderElected(lambda: path, "kube-controller-manager", config, work), work, path


async def holder(api: FakeApi) -> str:
    lease = await api.get(LEASES, "kube-system", "kube-controller-manager")
    return lease["spec"]["holderIdentity"]


@pytest.fixture
async def api():
    async with FakeApi() as fake:
        yield fake


@pytest.fixture
async def a_leads_b_stands_by(api: FakeApi):
    """Two instances for one lease: a started and leading, then b started; both stopped afterwards."""
    a, b = instance(api, "a"), instance(api, "b")
    await a[0].start()
    try:
        await until(lambda: a[1].running, what="a to lead")
        await b[0].start()
        yield a, b
    finally:
        await a[0].stop()
        await b[0].stop()


async def test_one_of_two_acts_and_a_clean_stop_hands_over_at_once(api: FakeApi,
                                                                    a_leads_b_stands_by: tuple[Candidate, Candidate]):
    (a, a_work, _), (b, b_work, _) = a_leads_b_stands_by
    await until(lambda: b.elector._observed is not None, what="b to see the lease")
    assert not b_work.running and await holder(api) == "host_a"
    await a.stop()  # gives the lease up
    assert not a_work.running
    await until(lambda: b_work.running, timeout=5, what="b to take over")
    lease = await api.get(LEASES, "kube-system", "kube-controller-manager")
    assert lease["spec"]["holderIdentity"] == "host_b" and lease["spec"]["leaseTransitions"] == 1


async def test_a_leader_cut_off_stops_acting_and_the_standby_takes_over_after_the_lease(
        api: FakeApi, a_leads_b_stands_by: tuple[Candidate, Candidate]):
    (a, a_work, a_path), (b, b_work, _) = a_leads_b_stands_by
    a_path.down = True  # a can neither renew nor release
    await until(lambda: not a_work.running, timeout=5, what="a to stop at its renew deadline")
    await until(lambda: b_work.running, timeout=10, what="b to take over once the lease expired")
    assert await holder(api) == "host_b"
    a_path.down = False  # a is back: it stays a standby while b renews
    await until(lambda: a.elector._observed is not None and
                a.elector._observed.get("holderIdentity") == "host_b", timeout=5, what="a to see b")
    assert not a_work.running and a_work.starts == 1
