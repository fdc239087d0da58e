"""A Deployment's status: replica counts and the Available, Progressing and ReplicaFailure conditions.

Computed with upstream's reasons and messages (syncRolloutStatus and
util/deployment_util.go): Available once enough replicas are available;
Progressing while ReplicaSets move, complete once the new one is fully
available, timed out past progressDeadlineSeconds, and Unknown while paused.
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from svcnet.api import meta
from svcnet.api.objects import metadata_of, spec_of, status_of
from svcnet.core.deployment.replicas import (
    has_progress_deadline,
    max_unavailable,
    replicas_of,
    total_spec_replicas,
    total_status,
)
from svcnet.core.replicaset import REPLICA_FAILURE

Obj = dict[str, Any]

# Condition types and reasons, as upstream spells them.
AVAILABLE = "Available"
PROGRESSING = "Progressing"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"


# ----------------------------------------------------------------- conditions

def new_condition(cond_type: str, status: str, reason: str, message: str, now: dt.datetime) -> Obj:
    stamp = meta.rfc3339(now)
    return {"type": cond_type, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def get_condition(status: Mapping[str, Any], cond_type: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """SetDeploymentCondition: same status and reason changes nothing; same status keeps its transition time."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] \
            and current.get("reason") == cond["reason"]:
        return
    cond = dict(cond)
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"].append(cond)


def remove_condition(status: Obj, cond_type: str) -> None:
    if "conditions" in status:
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != cond_type]


def calculate_status(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None,
                     now: dt.datetime) -> Obj:
    available = total_status(all_rss, "availableReplicas")
    unavailable = max(0, total_spec_replicas(all_rss) - available)
    old = status_of(d)
    status: Obj = {
        "observedGeneration": int(metadata_of(d).get("generation") or 0),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": total_status([new_rs], "replicas"),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
        "conditions": [dict(c) for c in old.get("conditions") or []],
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= replicas_of(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def deployment_complete(d: Obj, status: Mapping[str, Any]) -> bool:
    replicas = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(metadata_of(d).get("generation") or 0))


def deployment_progressing(d: Obj, status: Mapping[str, Any]) -> bool:
    old = status_of(d)

    def get(s: Mapping[str, Any], key: str) -> int:
        return int(s.get(key) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(status, "replicas") - get(status, "updatedReplicas")
    return (get(status, "updatedReplicas") > get(old, "updatedReplicas") or new_old < old_old
            or get(status, "readyReplicas") > get(old, "readyReplicas")
            or get(status, "availableReplicas") > get(old, "availableReplicas"))


def _deadline_from(cond: Mapping[str, Any], d: Obj) -> dt.datetime | None:
    stamp = cond.get("lastUpdateTime")
    if not stamp:
        return None
    try:
        since = meta.parse_time(str(stamp))
    except ValueError:
        return None
    return since + dt.timedelta(seconds=int(spec_of(d).get("progressDeadlineSeconds") or 0))


def deployment_timed_out(d: Obj, status: Mapping[str, Any], now: dt.datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    deadline = _deadline_from(cond, d)
    return deadline is not None and deadline < now


def replica_failure_condition(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """The first ReplicaFailure of the new ReplicaSet, else of an old one, as a Deployment condition."""
    for rs in [new_rs, *old_rss]:
        if rs is None:
            continue
        for cond in status_of(rs).get("conditions") or []:
            if cond.get("type") == REPLICA_FAILURE:
                return {"type": REPLICA_FAILURE, "status": cond.get("status"),
                        "lastUpdateTime": cond.get("lastTransitionTime"),
                        "lastTransitionTime": cond.get("lastTransitionTime"),
                        "reason": cond.get("reason"), "message": cond.get("message")}
    return None


def rollout_status(d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj], now: dt.datetime) -> Obj:
    """syncRolloutStatus's new status: counts, Available, Progressing, ReplicaFailure."""
    all_rss = [*old_rss, new_rs]
    status = calculate_status(d, all_rss, new_rs, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(status_of(d), PROGRESSING)
    complete_before = (status["replicas"] == status["updatedReplicas"] and current is not None
                       and current.get("reason") == NEW_RS_AVAILABLE_REASON)
    name = metadata_of(new_rs).get("name", "") if new_rs is not None else ""
    if has_progress_deadline(d) and not complete_before:
        if deployment_complete(d, status):
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON,
                                                f'ReplicaSet "{name}" has successfully progressed.', now))
        elif deployment_progressing(d, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED_REASON,
                                 f'ReplicaSet "{name}" is progressing.', now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT_REASON,
                                                f'ReplicaSet "{name}" has timed out progressing.', now))
    failure = replica_failure_condition(new_rs, old_rss)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def stuck_requeue_after(d: Obj, new_status: Mapping[str, Any], now: dt.datetime) -> float | None:
    """When to look again to notice a missed progress deadline (requeueStuckDeployment)."""
    current = get_condition(status_of(d), PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, new_status) or current.get("reason") == TIMED_OUT_REASON:
        return None
    deadline = _deadline_from(current, d)
    if deadline is None:
        return None
    after = (deadline - now).total_seconds()
    return 1.0 if after < 1.0 else after + 1.0


def paused_condition_update(d: Obj, now: dt.datetime) -> Obj | None:
    """The status with a DeploymentPaused/DeploymentResumed condition, or None if nothing changes."""
    if not has_progress_deadline(d):
        return None
    status = copy.deepcopy(status_of(d))
    cond = get_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT_REASON:
        return None  # a reported lack of progress is not overwritten
    paused_cond = cond is not None and cond.get("reason") == PAUSED_REASON
    paused = bool(spec_of(d).get("paused"))
    if paused and not paused_cond:
        set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED_REASON,
                                            "Deployment is paused", now))
        return status
    if not paused and paused_cond:
        set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED_REASON,
                                            "Deployment is resumed", now))
        return status
    return None


def status_changed(d: Obj, new_status: Mapping[str, Any]) -> bool:
    return _normalized(status_of(d)) != _normalized(new_status)


def _normalized(status: Mapping[str, Any]) -> Obj:
    # Zero counts and empty lists are omitted on the wire; compare as if present.
    out = {k: v for k, v in status.items() if v not in (0, None, [])}
    return out
