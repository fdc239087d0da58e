"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Several instances of a component (controller managers, schedulers) each try, every retry
period, to write themselves into one Lease; the one named in it is the leader and renews it.
The others wait until the record has not changed for a whole lease duration *by their own
clock*, measured from when they last saw it change, and only then write themselves in (client-
go's tryAcquireOrRenew: clocks of different machines are never compared, only the time since
this instance observed the record). A leader that has not renewed within the renew deadline
stops acting, before any other instance may take over (renew deadline < lease duration).

This is the decision alone, given the time and the Lease as read; the adapter
(svcnet/client/leaderelection.py) does the reads, writes and waiting.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# kube-controller-manager's and kube-scheduler's defaults (component-base's
# LeaderElectionConfiguration: --leader-elect-lease-duration, -renew-deadline, -retry-period).
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
# wait.JitterUntil's factor for the acquire loop: a retry comes 1x to 2.2x the period after.
JITTER_FACTOR = 1.2


@dataclass(frozen=True)
class ElectionConfig:
    identity: str  # holderIdentity: `<hostname>_<uuid>` as kube-controller-manager's
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD

    def check(self) -> None:
        """client-go's NewLeaderElector checks, with its messages."""
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")
        for label, value in (("retryPeriod", self.retry_period), ("renewDeadline", self.renew_deadline)):
            if value <= 0:
                raise ValueError(f"{label} must be greater than zero")
        if self.lease_duration < 1 or self.lease_duration != int(self.lease_duration):
            # The Lease holds whole seconds (leaseDurationSeconds).
            raise ValueError("leaseDuration must be a whole number of seconds, at least 1")
        if not self.identity:
            raise ValueError("Lock identity is empty")


@dataclass(frozen=True)
class Write:
    """What to write: create the Lease (it did not exist) or update it at resource_version."""

    body: Obj
    create: bool
    resource_version: str = ""


def micro_time(moment: dt.datetime) -> str:
    """metav1.MicroTime as JSON: RFC 3339 with microseconds, UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spec(lease: Obj | None) -> Obj:
    return dict((lease or {}).get("spec") or {})


class Elector:
    """One instance's view of the election. `now` is a monotonic clock in seconds, `wall` the time
    written into the record (acquireTime, renewTime)."""

    def __init__(self, config: ElectionConfig) -> None:
        config.check()
        self.config = config
        self._observed: Obj | None = None  # the spec last read or written
        self._observed_at: float | None = None  # when (our clock) it was first seen as it is
        self._last_renew: float | None = None  # when our last write as leader succeeded

    # ------------------------------------------------------------------ decisions
    def attempt(self, now: float, wall: dt.datetime, lease: Obj | None,
                namespace: str, name: str) -> Write | None:
        """The write that would acquire or renew, or None when another holds a valid lease."""
        spec = _spec(lease)
        if lease is None:
            return Write(self._lease(namespace, name, self._record(wall, None)), create=True)
        if spec != self._observed:
            self._observed, self._observed_at = spec, now
        holder = spec.get("holderIdentity") or ""
        assert self._observed_at is not None
        if holder and holder != self.config.identity and \
                self._observed_at + float(spec.get("leaseDurationSeconds") or 0) > now:
            return None  # held by another and not expired by our clock
        body = dict(lease)
        body["spec"] = self._record(wall, spec)
        return Write(body, create=False, resource_version=str(lease.get("metadata", {}).get("resourceVersion", "")))

    def written(self, now: float, lease: Obj) -> None:
        """The write succeeded: we lead, renewed now."""
        self._observed, self._observed_at = _spec(lease), now
        self._last_renew = now

    def is_leader(self, now: float) -> bool:
        """True while our last renewal is within the renew deadline (afterwards we stop acting,
        whatever the Lease says: another instance may take over once the lease expires)."""
        return self._last_renew is not None and now - self._last_renew < self.config.renew_deadline

    def lost(self) -> None:
        self._last_renew = None

    def release(self, wall: dt.datetime, lease: Obj) -> Write | None:
        """Give the lease up on a clean stop, if still ours (client-go's ReleaseOnCancel): an empty
        holder and a one-second duration, so a standby takes over at its next try."""
        spec = _spec(lease)
        if spec.get("holderIdentity") != self.config.identity:
            return None
        body = dict(lease)
        body["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                        "acquireTime": micro_time(wall), "renewTime": micro_time(wall)}
        self._last_renew = None
        return Write(body, create=False, resource_version=str(lease.get("metadata", {}).get("resourceVersion", "")))

    # ------------------------------------------------------------------ helpers
    def _record(self, wall: dt.datetime, old: Obj | None) -> Obj:
        old = old or {}
        ours = old.get("holderIdentity") == self.config.identity
        record = {"holderIdentity": self.config.identity,
                  "leaseDurationSeconds": int(self.config.lease_duration),
                  "acquireTime": old.get("acquireTime") if ours and old.get("acquireTime") else micro_time(wall),
                  "renewTime": micro_time(wall),
                  "leaseTransitions": int(old.get("leaseTransitions") or 0)}
        if old and not ours:
            record["leaseTransitions"] += 1
        return record

    @staticmethod
    def _lease(namespace: str, name: str, spec: Obj) -> Obj:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
