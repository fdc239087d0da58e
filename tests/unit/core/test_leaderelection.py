"""The leader election's decisions, given a clock and the Lease as read (client-go's semantics)."""
from __future__ import annotations

import datetime as dt

import pytest

from svcnet.core.leaderelection import ElectionConfig, Elector, Write

WALL = dt.datetime(2026, 12, 7, 20, 0, 0, 123456, tzinfo=dt.UTC)
NS, NAME = "kube-system", "kube-controller-manager"


class Store:
    """The Lease as an API server keeps it: writes name the resourceVersion they read."""

    def __init__(self) -> None:
        self.lease: dict | None = None
        self.version = 0

    def apply(self, write: Write) -> dict:
        assert write.create == (self.lease is None)
        if not write.create:
            assert write.resource_version == str(self.version), "a stale write must not land"
        self.version += 1
        self.lease = {**write.body, "metadata": {**write.body["metadata"], "resourceVersion": str(self.version)}}
        return self.lease


def elector(name: str, **kw) -> Elector:
    return Elector(ElectionConfig(name, **kw))


def tick(candidate: Elector, store: Store, now: float, wall: dt.datetime = WALL) -> bool:
    """One try of candidate at `now`; True when it wrote itself in."""
    write = candidate.attempt(now, wall, store.lease, NS, NAME)
    if write is None:
        return False
    candidate.written(now, store.apply(write))
    return True


def test_the_first_candidate_creates_the_lease_with_upstreams_fields():
    store, a = Store(), elector("host_a")
    assert tick(a, store, 0.0)
    spec = store.lease["spec"]
    assert spec == {"holderIdentity": "host_a", "leaseDurationSeconds": 15,
                    "acquireTime": "2026-12-07T20:00:00.123456Z", "renewTime": "2026-12-07T20:00:00.123456Z",
                    "leaseTransitions": 0}
    assert store.lease["metadata"] == {"name": NAME, "namespace": NS, "resourceVersion": "1"}
    assert a.is_leader(0.0)


def test_a_standby_waits_a_whole_lease_duration_from_when_it_saw_the_record_change():
    store, a, b = Store(), elector("host_a"), elector("host_b")
    tick(a, store, 0.0)
    assert not tick(b, store, 100.0)  # first sight at 100 (its own clock): the lease runs from there
    assert not tick(b, store, 114.9)
    assert tick(b, store, 115.1)
    assert store.lease["spec"]["holderIdentity"] == "host_b"
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_renewals_keep_the_standby_out_and_the_acquire_time():
    store, a, b = Store(), elector("host_a"), elector("host_b")
    tick(a, store, 0.0)
    for now in (0.0, 10.0, 20.0, 30.0):  # each renewal changes renewTime, which b sees
        tick(a, store, now, WALL + dt.timedelta(seconds=now))
        assert not tick(b, store, now + 1)
    spec = store.lease["spec"]
    assert spec["acquireTime"] == "2026-12-07T20:00:00.123456Z"
    assert spec["renewTime"] == "2026-12-07T20:00:30.123456Z"
    assert spec["leaseTransitions"] == 0


def test_a_leader_that_cannot_renew_stops_acting_at_the_renew_deadline_before_the_lease_ends():
    store, a = Store(), elector("host_a")
    tick(a, store, 0.0)
    assert a.is_leader(9.9)
    assert not a.is_leader(10.0)  # renew deadline 10 s < lease duration 15 s


def test_only_one_of_two_racing_candidates_lands_its_write():
    store, a, b = Store(), elector("host_a"), elector("host_b")
    tick(a, store, 0.0)
    old = dict(store.lease)
    # Both saw the same expired record; b writes first, a's write names the old resourceVersion.
    assert tick(b, store, 16.0) is False  # b saw it first at 16
    b_write = b.attempt(32.0, WALL, old, NS, NAME)
    a_write = a.attempt(32.0, WALL, old, NS, NAME)
    assert a_write is not None and b_write is not None
    store.apply(b_write)
    with pytest.raises(AssertionError, match="stale write"):
        store.apply(a_write)


def test_release_hands_over_at_the_standbys_next_try():
    store, a, b = Store(), elector("host_a"), elector("host_b")
    tick(a, store, 0.0)
    assert not tick(b, store, 1.0)
    release = a.release(WALL, store.lease)
    assert release is not None
    store.apply(release)
    assert store.lease["spec"]["holderIdentity"] == "" and store.lease["spec"]["leaseDurationSeconds"] == 1
    assert not a.is_leader(1.0)
    assert tick(b, store, 3.0)
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_release_leaves_a_lease_another_holds_alone():
    store, a, b = Store(), elector("host_a"), elector("host_b")
    tick(b, store, 0.0)
    assert a.release(WALL, store.lease) is None


@pytest.mark.parametrize(("kw", "message"), [
    ({"lease_duration": 10, "renew_deadline": 10}, "leaseDuration must be greater than renewDeadline"),
    ({"renew_deadline": 2, "retry_period": 2}, "renewDeadline must be greater than retryPeriod*JitterFactor"),
    ({"lease_duration": 2.5, "renew_deadline": 2, "retry_period": 1}, "whole number of seconds"),
])
def test_bad_durations_are_refused_with_client_gos_words(kw, message):
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        elector("x", **kw)
