"""What is garbage: the decisions of the garbage collector and the pod garbage collector, pure.

Owner-dependent garbage collection (kube-controller-manager's
garbagecollector) works on ownerReferences. For one dependent, each owner is
classified as present, absent (404, or a different uid under that name),
deleting its dependents (deletionTimestamp plus the foregroundDeletion
finalizer), or unresolvable; from that:

- any present owner keeps the dependent; references to absent owners and to
  owners waiting on their dependents are dropped from it (patch), so the
  latter are not blocked by an object that will not go;
- no present owner, some owner waiting in foreground, and dependents of its
  own: delete it in foreground too, so the wait propagates down the chain;
- otherwise delete it, in background (or as a finalizer already on it says).

An owner deleting its dependents keeps its finalizer while any dependent
still points at it with blockOwnerDeletion; an owner with the orphan
finalizer first has its reference removed from every dependent.

The pod garbage collector (podgc) force-deletes pods bound to a node that no
longer exists, pods terminating before they were ever scheduled, and the
oldest terminated pods beyond a threshold.

Everything here takes and returns plain objects; the controllers in
svcnet.controllers.gc read the informer caches, ask these functions, and
write the answers through the API.
"""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from svcnet.api.meta import rfc3339
from svcnet.api.objects import (
    finalizers_of,
    is_being_deleted,
    is_pod_terminal,
    metadata_of,
    owner_references_of,
    spec_of,
    status_of,
    uid_of,
)

Obj = dict[str, Any]

FOREGROUND_FINALIZER = "foregroundDeletion"  # metav1.FinalizerDeleteDependents
ORPHAN_FINALIZER = "orphan"  # metav1.FinalizerOrphanDependents

BACKGROUND = "Background"
FOREGROUND = "Foreground"
ORPHAN = "Orphan"


# ------------------------------------------------------------- object facts

@dataclass(frozen=True)
class OwnerLink:
    """One ownerReference of a dependent."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False

    @property
    def group(self) -> str:
        """The API group ("" for core): "apps/v1" -> "apps", "v1" -> ""."""
        group, sep, _ = self.api_version.rpartition("/")
        return group if sep else ""




def owner_links(obj: Obj) -> tuple[OwnerLink, ...]:
    return tuple(
        OwnerLink(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("name") or ""),
                  str(ref.get("uid") or ""), bool(ref.get("controller")),
                  bool(ref.get("blockOwnerDeletion")))
        for ref in owner_references_of(obj))


def owner_uids(obj: Obj) -> list[str]:
    """The uids obj names as owners (the informer index the collector finds dependents by)."""
    return [link.uid for link in owner_links(obj) if link.uid]



def has_finalizer(obj: Obj, finalizer: str) -> bool:
    return finalizer in finalizers_of(obj)


def is_deleting_dependents(obj: Obj) -> bool:
    """Deleted in foreground: it waits for its blocking dependents to be gone."""
    return is_being_deleted(obj) and has_finalizer(obj, FOREGROUND_FINALIZER)


def is_orphaning(obj: Obj) -> bool:
    """Deleted with propagationPolicy Orphan: its dependents must be let go first."""
    return is_being_deleted(obj) and has_finalizer(obj, ORPHAN_FINALIZER)


def dependents_of(owner: Obj, candidates: Iterable[Obj]) -> list[Obj]:
    """The candidates that name owner (by uid) as an owner and can legally belong to it.

    A namespaced owner only owns objects of its own namespace: a reference
    from another namespace points at an owner that does not exist there.
    """
    uid = uid_of(owner)
    namespace = metadata_of(owner).get("namespace")
    return [obj for obj in candidates
            if uid and uid in owner_uids(obj) and (not namespace or metadata_of(obj).get("namespace") == namespace)]


def blocking_dependents(owner: Obj, dependents: Iterable[Obj]) -> list[Obj]:
    """Dependents whose reference to owner has blockOwnerDeletion: a foreground delete waits for them."""
    uid = uid_of(owner)
    return [dep for dep in dependents
            if any(link.uid == uid and link.block_owner_deletion for link in owner_links(dep))]


# ------------------------------------------------------------ owner states

class OwnerState(enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"  # no such object, or another object (another uid) under that name
    DELETING_DEPENDENTS = "deletingDependents"  # being deleted in foreground
    UNRESOLVABLE = "unresolvable"  # a kind not served, or a namespaced owner of a cluster-scoped object


def owner_state(link: OwnerLink, found: Obj | None) -> OwnerState:
    """Classify the object found under the reference's name (None: not found)."""
    if found is None or uid_of(found) != link.uid:
        return OwnerState.ABSENT
    if is_deleting_dependents(found):
        return OwnerState.DELETING_DEPENDENTS
    return OwnerState.PRESENT


# -------------------------------------------------------------- decisions

@dataclass(frozen=True)
class DependentDecision:
    """What to do with one dependent.

    keep: nothing. remove_owner_refs: patch away the references to
    remove_uids. delete: delete it with propagation; unblock_first: first
    clear blockOwnerDeletion on its own references (upstream's guard against
    two objects waiting on each other in foreground).
    """

    action: Literal["keep", "remove_owner_refs", "delete"]
    remove_uids: tuple[str, ...] = ()
    propagation: str | None = None
    unblock_first: bool = False


KEEP = DependentDecision("keep")


def decide_dependent(obj: Obj, states: Mapping[str, OwnerState],
                     dependents: Sequence[Obj]) -> DependentDecision:
    """The collector's verdict on obj, given the state of each owner (by uid) and obj's own dependents."""
    links = owner_links(obj)
    if not links or is_being_deleted(obj):
        return KEEP  # not a dependent, or already on its one-way trip to deletion
    by_state: dict[OwnerState, list[str]] = {state: [] for state in OwnerState}
    for link in links:
        by_state[states.get(link.uid, OwnerState.UNRESOLVABLE)].append(link.uid)
    if by_state[OwnerState.UNRESOLVABLE]:
        # Upstream stops at a reference it cannot look up; never delete on a guess.
        return KEEP
    dangling = by_state[OwnerState.ABSENT]
    waiting = by_state[OwnerState.DELETING_DEPENDENTS]
    if by_state[OwnerState.PRESENT]:
        stale = tuple(dict.fromkeys(dangling + waiting))
        return DependentDecision("remove_owner_refs", remove_uids=stale) if stale else KEEP
    if waiting and dependents:
        cycle_risk = (any(is_deleting_dependents(dep) for dep in dependents)
                      and any(link.block_owner_deletion for link in links))
        return DependentDecision("delete", propagation=FOREGROUND, unblock_first=cycle_risk)
    if has_finalizer(obj, ORPHAN_FINALIZER):
        policy = ORPHAN  # honour a policy already asked for on the object
    elif has_finalizer(obj, FOREGROUND_FINALIZER):
        policy = FOREGROUND
    else:
        policy = BACKGROUND
    return DependentDecision("delete", propagation=policy)


@dataclass(frozen=True)
class ForegroundDecision:
    """For an owner deleting its dependents: drop the finalizer now, or nudge the dependents it waits on."""

    remove_finalizer: bool
    waiting_on: tuple[Obj, ...] = ()


def decide_foreground_owner(owner: Obj, dependents: Sequence[Obj]) -> ForegroundDecision:
    blocking = blocking_dependents(owner, dependents)
    if not blocking:
        return ForegroundDecision(remove_finalizer=True)
    # Dependents already deleting their own dependents make progress on their own.
    return ForegroundDecision(False, tuple(dep for dep in blocking if not is_deleting_dependents(dep)))


# ----------------------------------------------------------------- patches
# JSON merge patches that name the resourceVersion they were computed from:
# lists are replaced whole by a merge patch, so a concurrent change must fail
# (409) rather than be overwritten.

def remove_owner_refs_patch(obj: Obj, uids: Iterable[str]) -> Obj:
    drop = set(uids)
    kept = [ref for ref in metadata_of(obj).get("ownerReferences") or [] if ref.get("uid") not in drop]
    return {"metadata": {"resourceVersion": metadata_of(obj).get("resourceVersion"),
                         "ownerReferences": kept or None}}


def unblock_owner_refs_patch(obj: Obj) -> Obj:
    refs = [{**ref, "blockOwnerDeletion": False} if ref.get("blockOwnerDeletion") else ref
            for ref in owner_references_of(obj)]
    return {"metadata": {"resourceVersion": metadata_of(obj).get("resourceVersion"), "ownerReferences": refs}}


def remove_finalizer_patch(obj: Obj, finalizer: str) -> Obj:
    kept = [f for f in metadata_of(obj).get("finalizers") or [] if f != finalizer]
    return {"metadata": {"resourceVersion": metadata_of(obj).get("resourceVersion"), "finalizers": kept or None}}


# ====================================================== pod garbage collection

DEFAULT_TERMINATED_POD_THRESHOLD = 12500  # kube-controller-manager --terminated-pod-gc-threshold




def node_of(pod: Obj) -> str:
    return str(spec_of(pod).get("nodeName") or "")


def _is_evicted(pod: Obj) -> bool:
    return status_of(pod).get("phase") == "Failed" and status_of(pod).get("reason") == "Evicted"


def _created(pod: Obj) -> str:
    # RFC 3339 UTC timestamps of one format sort as strings do.
    return str(metadata_of(pod).get("creationTimestamp") or "")


def terminated_pods_over_threshold(pods: Iterable[Obj], threshold: int) -> list[Obj]:
    """The terminated pods beyond threshold: evicted ones first, then the oldest (name breaks ties).

    A threshold of 0 or less turns this rule off, as upstream's does.
    """
    if threshold <= 0:
        return []
    terminated = [p for p in pods if is_pod_terminal(p)]
    excess = len(terminated) - threshold
    if excess <= 0:
        return []
    terminated.sort(key=lambda p: (not _is_evicted(p), _created(p), metadata_of(p).get("name") or ""))
    return terminated[:excess]


def unscheduled_terminating_pods(pods: Iterable[Obj]) -> list[Obj]:
    """Pods deleted before any node took them: no kubelet will ever finish them."""
    return [p for p in pods if is_being_deleted(p) and not node_of(p)]


@dataclass(frozen=True)
class Quarantine:
    """Nodes that pods are bound to but the node cache lacks, with when each was first missed.

    A missing node is only checked against the API server (a live GET) once
    it has been missing for the quarantine period, so a node the cache has
    not caught up with yet costs nothing and deletes nothing.
    """

    missing_since: Mapping[str, dt.datetime]
    due: frozenset[str]  # missing for the whole quarantine: ask the API server now
    next_check: float | None  # seconds until the next node comes due, if any


def quarantine(pods: Iterable[Obj], known_nodes: Iterable[str], missing_since: Mapping[str, dt.datetime],
               now: dt.datetime, period: float) -> Quarantine:
    known = set(known_nodes)
    missing = {node for pod in pods if (node := node_of(pod)) and node not in known}
    since = {node: missing_since.get(node, now) for node in sorted(missing)}
    due = frozenset(node for node, t in since.items() if (now - t).total_seconds() >= period)
    waits = [period - (now - t).total_seconds() for node, t in since.items() if node not in due]
    return Quarantine(since, due, min(waits) if waits else None)


def pods_on_nodes(pods: Iterable[Obj], nodes: Iterable[str]) -> list[Obj]:
    wanted = set(nodes)
    return [p for p in pods if node_of(p) in wanted]


def failed_status_patch(pod: Obj, condition: Obj | None = None) -> Obj | None:
    """Mark a pod Failed before force-deleting it (None when it already finished).

    Without a kubelet nobody else would move it out of Running; a merge patch
    replaces the conditions list whole, so the one sent is complete.
    """
    if is_pod_terminal(pod):
        return None
    status: Obj = {"phase": "Failed"}
    if condition is not None:
        conditions = [c for c in status_of(pod).get("conditions") or [] if c.get("type") != condition["type"]]
        status["conditions"] = [*conditions, condition]
    return {"metadata": {"resourceVersion": metadata_of(pod).get("resourceVersion")}, "status": status}


def disruption_condition(now: dt.datetime, message: str) -> Obj:
    """The DisruptionTarget condition upstream's pod GC puts on pods of a vanished node."""
    return {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
            "message": message, "lastTransitionTime": rfc3339(now)}
