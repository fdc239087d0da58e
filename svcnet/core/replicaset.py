"""What a ReplicaSet needs, decided from plain objects (kube-controller-manager's replicaset controller).

Everything here is pure: the controller reads its informer caches, asks these
functions what to do, and writes the difference. The rules follow upstream
(pkg/controller/replicaset and pkg/controller/controller_utils.go):

- ownership: a controller owns the objects whose controller ownerReference
  names its uid; it adopts matching orphans and releases owned objects that
  stop matching its selector (`claim`);
- creation in slow-start batches 1, 2, 4, ... and at most BURST_REPLICAS per
  sync, remembered in `Expectations` so a sync does not create again before
  the informer has seen its own creates;
- surplus pods deleted in upstream's order (`rank_for_deletion`);
- status counts (`replica_set_status`).
"""
from __future__ import annotations

import copy
import datetime as dt
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import meta
from svcnet.api.objects import (
    annotations_of,
    condition_of,
    controller_ref,
    is_pod_ready,
    is_pod_terminal,
    labels_of,
    metadata_of,
    new_controller_ref,
    spec_of,
    status_of,
    uid_of,
)
from svcnet.api.selectors import LabelSelector, selector_from_set

Obj = dict[str, Any]

BURST_REPLICAS = 500  # kube-controller-manager's per-sync cap on creates or deletes
SLOW_START_INITIAL_BATCH_SIZE = 1
EXPECTATIONS_TIMEOUT = 300.0  # seconds; after this a controller stops waiting for its own writes
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
REPLICA_FAILURE = "ReplicaFailure"

# Upstream's podPhaseToOrdinal: a phase missing from it (Succeeded, Failed, "") counts as Pending.
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


# ------------------------------------------------------------------ pod predicates

def is_pod_active(pod: Obj) -> bool:
    """Not finished and not being deleted (controller.IsPodActive)."""
    return not is_pod_terminal(pod) and not metadata_of(pod).get("deletionTimestamp")



def pod_ready_since(pod: Obj) -> dt.datetime | None:
    """When the pod last became Ready (None when not ready or unknown)."""
    cond = condition_of(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return meta.parse_time_or_none(cond.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready for at least min_ready_seconds (podutil.IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = pod_ready_since(pod)
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) < now


# ------------------------------------------------------------------- ownership

def controller_ref_to(owner: Obj) -> Obj:
    """metav1.NewControllerRef: the ownerReference a controller puts on what it creates."""
    return new_controller_ref(owner, owner.get("apiVersion", ""), owner.get("kind", ""))


@dataclass(frozen=True)
class Claim:
    """ControllerRefManager's verdict over candidate objects."""

    owned: tuple[Obj, ...] = ()    # ours and matching: keep
    adopt: tuple[Obj, ...] = ()    # orphans that match: patch our controller ref in, then they are ours
    release: tuple[Obj, ...] = ()  # ours but no longer matching: patch our ref out


def claim(owner: Obj, selector: LabelSelector, candidates: Iterable[Obj]) -> Claim:
    """Sort candidates as upstream's ClaimObject does (objects owned by others are ignored)."""
    owner_md = metadata_of(owner)
    owner_uid = owner_md.get("uid")
    owner_deleting = bool(owner_md.get("deletionTimestamp"))
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for obj in candidates:
        md = metadata_of(obj)
        matches = selector.matches(md.get("labels") or {})
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches:
                owned.append(obj)
            elif not owner_deleting:
                release.append(obj)
            continue
        if owner_deleting or not matches or md.get("deletionTimestamp"):
            continue
        if owner_md.get("namespace") and owner_md.get("namespace") != md.get("namespace"):
            continue
        adopt.append(obj)
    return Claim(tuple(owned), tuple(adopt), tuple(release))


def adopt_patch(owner: Obj, obj: Obj) -> Obj:
    """The strategic merge patch upstream sends to adopt obj (its uid guards against a recreated object)."""
    return {"metadata": {"ownerReferences": [controller_ref_to(owner)],
                         "uid": metadata_of(obj).get("uid")}}


def release_patch(owner: Obj, obj: Obj) -> Obj:
    return {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner["metadata"]["uid"]}],
                         "uid": metadata_of(obj).get("uid")}}


# -------------------------------------------------------------------- creation

def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH_SIZE) -> list[int]:
    """Batch sizes 1, 2, 4, ... summing to count: a failing create stops a flood early."""
    sizes: list[int] = []
    remaining = count
    size = min(remaining, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


def pod_from_template(owner: Obj, template: Mapping[str, Any]) -> Obj:
    """The pod a controller creates from its template (controller.GetPodFromTemplate)."""
    template_md = metadata_of(template)
    md: Obj = {"generateName": f"{owner['metadata']['name']}-",
               "ownerReferences": [controller_ref_to(owner)]}
    for key in ("labels", "annotations"):
        if template_md.get(key):
            md[key] = dict(template_md[key])
    if template_md.get("finalizers"):
        md["finalizers"] = list(template_md["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": copy.deepcopy(spec_of(template))}


# -------------------------------------------------------------------- deletion

def _deletion_cost(pod: Obj) -> int:
    value = annotations_of(pod).get(POD_DELETION_COST)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _max_restarts(pod: Obj) -> int:
    return max((int(c.get("restartCount") or 0)
                for c in status_of(pod).get("containerStatuses") or []), default=0)


def _log_rank(t: dt.datetime, now: dt.datetime) -> int:
    # Upstream compares log2 of the age in nanoseconds, so pods of a similar age tie.
    age_ns = (now - t).total_seconds() * 1e9
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _newer_first(t1: dt.datetime | None, t2: dt.datetime | None, now: dt.datetime,
                 uid1: str, uid2: str) -> int:
    """-1 when the first pod should go first: unknown time, then newer (logarithmic buckets, uid ties)."""
    if t1 is None or t2 is None:
        return -1 if t1 is None else 1
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    if diff == 0:
        return -1 if uid1 < uid2 else (1 if uid1 > uid2 else 0)
    return -1 if diff < 0 else 1


def rank_for_deletion(pods: Sequence[Obj], related_pods: Iterable[Obj], now: dt.datetime) -> list[Obj]:
    """Pods in the order upstream prefers to delete them (ActivePodsWithRanks), first to go first.

    related_pods are the pods of every ReplicaSet sharing this one's owner; a pod
    whose node hosts more of them ("doubled up") goes before a lonely one.
    """
    on_node: dict[str, int] = {}
    for pod in related_pods:
        if is_pod_active(pod):
            node = spec_of(pod).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1

    def node(p: Obj) -> str:
        return spec_of(p).get("nodeName") or ""

    def uid(p: Obj) -> str:
        return uid_of(p)

    def compare(a: Obj, b: Obj) -> int:
        na, nb = node(a), node(b)
        if na != nb and (not na or not nb):  # 1. unassigned first
            return -1 if not na else 1
        pa = _PHASE_ORDINAL.get(status_of(a).get("phase") or "", 0)
        pb = _PHASE_ORDINAL.get(status_of(b).get("phase") or "", 0)
        if pa != pb:  # 2. Pending < Unknown < Running
            return -1 if pa < pb else 1
        ra, rb = is_pod_ready(a), is_pod_ready(b)
        if ra != rb:  # 3. not ready first
            return -1 if not ra else 1
        ca, cb = _deletion_cost(a), _deletion_cost(b)
        if ca != cb:  # 4. lower pod-deletion-cost first
            return -1 if ca < cb else 1
        ka, kb = on_node.get(na, 0), on_node.get(nb, 0)
        if ka != kb:  # 5. doubled up first
            return -1 if ka > kb else 1
        if ra and rb:  # 6. ready for less time first
            ta, tb = pod_ready_since(a), pod_ready_since(b)
            if ta != tb:
                order = _newer_first(ta, tb, now, uid(a), uid(b))
                if order:
                    return order
        xa, xb = _max_restarts(a), _max_restarts(b)
        if xa != xb:  # 7. more restarts first
            return -1 if xa > xb else 1
        ta = meta.parse_time_or_none(metadata_of(a).get("creationTimestamp"))
        tb = meta.parse_time_or_none(metadata_of(b).get("creationTimestamp"))
        if ta != tb:  # 8. newer first
            return _newer_first(ta, tb, now, uid(a), uid(b))
        return 0

    return sorted(pods, key=functools.cmp_to_key(compare))


def pods_to_delete(pods: Sequence[Obj], related_pods: Iterable[Obj], count: int,
                   now: dt.datetime) -> list[Obj]:
    if count >= len(pods):
        return list(pods)
    return rank_for_deletion(pods, related_pods, now)[:count]


# ---------------------------------------------------------------------- status

@dataclass(frozen=True)
class ManageError:
    """Why the last create/delete round failed: becomes the ReplicaFailure condition."""

    reason: str  # FailedCreate or FailedDelete
    message: str


def replica_set_status(rs: Obj, pods: Sequence[Obj], failure: ManageError | None,
                       now: dt.datetime) -> Obj:
    """The status upstream's calculateStatus gives rs for its claimed, active pods."""
    spec = spec_of(rs)
    old = status_of(rs)
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = labels_of(spec.get("template"))
    fully_labeled = selector_from_set(template_labels)
    ready = [p for p in pods if is_pod_ready(p)]
    conditions = [dict(c) for c in old.get("conditions") or []]
    has_failure = any(c.get("type") == REPLICA_FAILURE for c in conditions)
    if failure is not None and not has_failure:
        conditions.append({"type": REPLICA_FAILURE, "status": "True",
                           "lastTransitionTime": meta.rfc3339(now),
                           "reason": failure.reason, "message": failure.message})
    elif failure is None and has_failure:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods
                                    if fully_labeled.matches(metadata_of(p).get("labels"))),
        "readyReplicas": len(ready),
        "availableReplicas": sum(1 for p in ready if is_pod_available(p, min_ready, now)),
        "observedGeneration": int(metadata_of(rs).get("generation") or 0),
    }
    if conditions:
        status["conditions"] = conditions
    return status


def status_is_current(rs: Obj, new_status: Obj) -> bool:
    """True when writing new_status would change nothing (upstream's steady-state check)."""
    old = status_of(rs)
    counts = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
    return (all(int(old.get(k) or 0) == int(new_status.get(k) or 0) for k in counts)
            and int(old.get("observedGeneration") or 0) == int(new_status.get("observedGeneration") or 0)
            and (old.get("conditions") or []) == (new_status.get("conditions") or []))


def failure_reason(pod_count: int, replicas: int) -> str:
    return "FailedCreate" if pod_count < replicas else "FailedDelete"


# ---------------------------------------------------------------- expectations

@dataclass
class _Expectation:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    """What a controller has asked the API for and not yet seen in its cache.

    Upstream's UIDTrackingControllerExpectations: creates are counted, deletes
    tracked by pod key; a sync that would act on a stale cache waits until they
    are all observed, or EXPECTATIONS_TIMEOUT passes. `now` is any monotonic clock.
    """

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.timeout = timeout
        self._by_key: dict[str, _Expectation] = {}

    def satisfied(self, key: str, now: float) -> bool:
        exp = self._by_key.get(key)
        if exp is None:
            return True
        return (exp.adds <= 0 and not exp.deletes) or now - exp.since > self.timeout

    def expect_creations(self, key: str, count: int, now: float) -> None:
        self._by_key[key] = _Expectation(adds=count, since=now)

    def expect_deletions(self, key: str, pod_keys: Iterable[str], now: float) -> None:
        self._by_key[key] = _Expectation(deletes=set(pod_keys), since=now)

    def creation_observed(self, key: str, count: int = 1) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds -= count

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """(creates, deletes) still expected, for tests and logs."""
        exp = self._by_key.get(key)
        return (max(exp.adds, 0), len(exp.deletes)) if exp else (0, 0)


# ------------------------------------------------------------------ event spam

# client-go keeps its spam filter's buckets in an LRU of this size (tools/record/events_cache.go).
MAX_EVENT_BUDGETS = 4096


class EventBudget:
    """client-go's EventSourceObjectSpamFilter: a token bucket per object (burst 25, one per 5 min).

    Without it, scaling to 1,000 replicas would write 1,000 SuccessfulCreate
    Events, doubling the API writes; upstream drops the excess the same way.
    The buckets are an LRU of MAX_EVENT_BUDGETS, as upstream's: the scheduler
    has one per pod it placed, and memory must not grow with every pod ever seen.
    """

    def __init__(self, burst: int = 25, refill_seconds: float = 300.0,
                 max_objects: int = MAX_EVENT_BUDGETS) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_objects = max_objects
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time), oldest use first

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        if len(self._buckets) >= self.max_objects:
            del self._buckets[next(iter(self._buckets))]  # the least recently used
        tokens = min(float(self.burst), tokens + (now - last) / self.refill_seconds)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True
