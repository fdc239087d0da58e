"""What a Deployment needs, decided from plain objects (kube-controller-manager's deployment controller).

Pure functions over Deployment and ReplicaSet dicts, following upstream's
pkg/controller/deployment (sync.go, rolling.go, recreate.go, progress.go and
util/deployment_util.go):

- the new ReplicaSet is the one whose template equals the Deployment's
  ignoring `pod-template-hash`; it is named `<deployment>-<hash>`;
- revisions live in the `deployment.kubernetes.io/revision` annotation;
- a rolling update plans ReplicaSet scales within maxSurge/maxUnavailable
  (`plan_rolling_update`), a scaling event mid-rollout spreads the change
  proportionally (`plan_proportional_scale`);
- status and the Available/Progressing conditions are computed with
  upstream's reasons and messages (`rollout_status`).

Planners return ScaleSteps in the order upstream issues its writes; the
controller performs them and stops at the first failure, as upstream does.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svcnet.api import meta
from svcnet.api.objects import annotations_of, metadata_of, name_of, spec_of, status_of
from svcnet.core.replicaset import controller_ref_to

Obj = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Annotations a Deployment does not pass on to its ReplicaSets (and kubectl rollout undo keeps).
ANNOTATIONS_NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                    MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000  # kube-controller-manager's default cap on revision-history
MAX_INT32 = 2**31 - 1

# Condition types and reasons, as upstream spells them.
AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
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

# kube's rand.String alphabet: no vowels, no look-alike digits.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


# ------------------------------------------------------------------------ hash

def fnv32a(data: bytes, seed: int = _FNV32_OFFSET) -> int:
    h = seed
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(text: str) -> str:
    """apimachinery's rand.SafeEncodeString: each character mapped into the safe alphabet."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def compute_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The pod-template-hash: FNV-32a of the template, plus collisionCount, safe-encoded.

    Upstream hashes a spew dump of the Go struct, which JSON cannot reproduce;
    svcnet hashes the template's canonical JSON instead, so values differ from a
    real cluster's while keeping their shape and stability.
    """
    canonical = json.dumps(_without_nulls(dict(template)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = fnv32a(canonical.encode())
    if collision_count is not None:
        # Upstream writes the uint32 little-endian into an 8-byte buffer: four zero bytes follow.
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0", h)
    return safe_encode_string(str(h))


# ----------------------------------------------------------- spec arithmetic

def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of total rounded up or down."""
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {value!r}") from None
        scaled = percent * total
        return -(-scaled // 100) if round_up else scaled // 100
    if isinstance(value, str):
        raise ValueError("invalid value for IntOrString: invalid type: string is not a percentage")
    raise ValueError(f"invalid value for IntOrString: {value!r}")


def replicas_of(obj: Obj) -> int:
    value = spec_of(obj).get("replicas")
    return 1 if value is None else int(value)


def is_rolling_update(d: Obj) -> bool:
    strategy = spec_of(d).get("strategy") or {}
    return (strategy.get("type") or "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """(surge, unavailable) for desired replicas: surge rounds up, unavailable down; never both 0."""
    surge = scaled_value(0 if max_surge is None else max_surge, desired, True)
    unavailable = scaled_value(0 if max_unavailable is None else max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # otherwise a rollout could never make progress
    return surge, unavailable


def _rolling_params(d: Obj) -> tuple[Any, Any]:
    rolling = (spec_of(d).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(*_rolling_params(d), replicas_of(d))[0]


def max_unavailable(d: Obj) -> int:
    replicas = replicas_of(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    return min(resolve_fenceposts(*_rolling_params(d), replicas)[1], replicas)


def has_progress_deadline(d: Obj) -> bool:
    deadline = spec_of(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    limit = spec_of(d).get("revisionHistoryLimit")
    return limit is not None and int(limit) != MAX_INT32


# ----------------------------------------------------------- replica set sets


def _annotations(obj: Obj) -> dict[str, str]:
    return dict(annotations_of(obj))


def _status_int(obj: Obj | None, key: str) -> int:
    if obj is None:
        return 0
    return int(status_of(obj).get(key) or 0)


def creation_order_key(rs: Obj) -> tuple[str, str]:
    """ReplicaSetsByCreationTimestamp: older first, name breaks ties (RFC 3339 sorts as text)."""
    return (str(metadata_of(rs).get("creationTimestamp") or ""), name_of(rs))


def revision(rs: Obj) -> int | None:
    """The revision annotation as an int; None when missing or not a number."""
    value = _annotations(rs).get(REVISION)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def max_revision(rss: Iterable[Obj]) -> int:
    return max((r for r in (revision(rs) for rs in rss) if r is not None), default=0)


def _without_nulls(value: Any) -> Any:
    """JSON nulls mean "unset" to the Go API types (a template's `creationTimestamp: null`)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _without_hash(template: Mapping[str, Any]) -> Obj:
    copied = _without_nulls(dict(template))
    labels = metadata_of(copied).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            copied["metadata"].pop("labels")
    return copied


def equal_ignore_hash(t1: Mapping[str, Any], t2: Mapping[str, Any]) -> bool:
    return _without_hash(t1) == _without_hash(t2)


def find_new_replica_set(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (ignoring the hash label)."""
    template = spec_of(d).get("template") or {}
    for rs in sorted(rss, key=creation_order_key):
        if equal_ignore_hash(spec_of(rs).get("template") or {}, template):
            return rs
    return None


def find_old_replica_sets(d: Obj, rss: Sequence[Obj]) -> list[Obj]:
    new_rs = find_new_replica_set(d, rss)
    new_uid = metadata_of(new_rs).get("uid") if new_rs else None
    return [rs for rs in rss if new_rs is None or metadata_of(rs).get("uid") != new_uid]


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas_of(rs) > 0]


def total_spec_replicas(rss: Iterable[Obj | None]) -> int:
    return sum(replicas_of(rs) for rs in rss if rs is not None)


def total_status(rss: Iterable[Obj | None], key: str) -> int:
    return sum(_status_int(rs, key) for rs in rss if rs is not None)


def _with_hash_label(labels: Mapping[str, str] | None, pod_hash: str) -> dict[str, str]:
    out = dict(labels or {})
    out[POD_TEMPLATE_HASH] = pod_hash
    return out


def replica_set_for(d: Obj, pod_hash: str, replicas: int, new_revision: str) -> Obj:
    """The new ReplicaSet for d: `<name>-<hash>`, the hash in its selector, labels and template."""
    spec = spec_of(d)
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = _with_hash_label(template["metadata"].get("labels"), pod_hash)
    selector = copy.deepcopy(spec.get("selector") or {})
    selector["matchLabels"] = _with_hash_label(selector.get("matchLabels"), pod_hash)
    rs: Obj = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{metadata_of(d)['name']}-{pod_hash}", "namespace": metadata_of(d).get("namespace"),
                     "labels": dict(template["metadata"]["labels"]),
                     "ownerReferences": [controller_ref_to(d)]},
        "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }
    annotations = new_replica_set_annotations(d, rs, new_revision, exists=False)
    if annotations:
        rs["metadata"]["annotations"] = annotations
    return rs


def new_replica_set_annotations(d: Obj, rs: Obj, new_revision: str, exists: bool,
                                history_limit: int = MAX_REVISION_HISTORY_CHARS) -> dict[str, str]:
    """The annotations rs should carry as d's new ReplicaSet (SetNewReplicaSetAnnotations)."""
    annotations = _annotations(rs)
    for key, value in _annotations(d).items():
        if key not in ANNOTATIONS_NOT_COPIED:
            annotations[key] = value
    old_text = annotations.get(REVISION)
    try:
        old_revision = int(old_text) if old_text is not None else 0
    except ValueError:
        return annotations  # upstream leaves an unparsable revision alone
    if old_revision < int(new_revision):
        annotations[REVISION] = new_revision
        if old_text is not None:
            # Rolling back to this ReplicaSet: remember the revisions it had.
            history = annotations.get(REVISION_HISTORY, "")
            if not history:
                annotations[REVISION_HISTORY] = old_text
            else:
                revisions = history.split(",")
                total = len(history) + len(old_text) + 1
                start = 0
                while total > history_limit and start < len(revisions):
                    total -= len(revisions[start]) + 1
                    start += 1
                if total <= history_limit:
                    annotations[REVISION_HISTORY] = ",".join([*revisions[start:], old_text])
    if not exists:
        annotations.update(replicas_annotations(d))
    return annotations


def replicas_annotations(d: Obj) -> dict[str, str]:
    replicas = replicas_of(d)
    return {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + max_surge(d))}


def scaled_replica_set(rs: Obj, replicas: int, d: Obj) -> Obj:
    """rs with spec.replicas and the desired/max-replicas annotations as scaling to replicas sets them."""
    out = copy.deepcopy(rs)
    out.setdefault("spec", {})["replicas"] = replicas
    md = out.setdefault("metadata", {})
    md["annotations"] = {**(md.get("annotations") or {}), **replicas_annotations(d)}
    return out


def _annotated_int(rs: Obj, key: str) -> int | None:
    value = _annotations(rs).get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    replicas = replicas_of(d)
    return (replicas_of(rs) == replicas and _annotated_int(rs, DESIRED_REPLICAS) == replicas
            and _status_int(rs, "availableReplicas") == replicas)


def is_scaling_event(d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> bool:
    """An active ReplicaSet was sized for another replica count than the Deployment's now."""
    replicas = replicas_of(d)
    for rs in active([*old_rss, new_rs]):
        desired = _annotated_int(rs, DESIRED_REPLICAS)
        if desired is not None and desired != replicas:
            return True
    return False


# ---------------------------------------------------------------------- plans

@dataclass(frozen=True)
class ScaleStep:
    """Set a ReplicaSet's spec.replicas (and desired/max-replicas annotations)."""

    name: str
    replicas: int
    operation: str  # "up" or "down" (the ScalingReplicaSet event wording); "" if only annotations


class _Working:
    """Copies of the ReplicaSets that a plan scales, so later decisions see earlier ones."""

    def __init__(self, d: Obj) -> None:
        self.d = d
        self.steps: list[ScaleStep] = []

    def scale(self, rs: Obj, replicas: int, operation: str | None = None) -> Obj:
        old = replicas_of(rs)
        if operation is None:
            operation = "up" if old < replicas else "down"
        self.steps.append(ScaleStep(metadata_of(rs)["name"], replicas, operation if old != replicas else ""))
        return scaled_replica_set(rs, replicas, self.d)


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now (NewRSNewReplicas)."""
    replicas = replicas_of(d)
    if not is_rolling_update(d):
        return replicas
    surge = scaled_value(_rolling_params(d)[0], replicas, True)
    current = total_spec_replicas(all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return replicas_of(new_rs)
    room = min(max_total - current, replicas - replicas_of(new_rs))
    return replicas_of(new_rs) + room


@dataclass(frozen=True)
class RollingPlan:
    steps: tuple[ScaleStep, ...]
    scaled_up: bool = False
    scaled_down: bool = False
    new_rs: Obj | None = None
    old_rss: tuple[Obj, ...] = ()

    @property
    def idle(self) -> bool:
        return not (self.scaled_up or self.scaled_down)


def plan_rolling_update(d: Obj, new_rs: Obj, old_rss: Sequence[Obj]) -> RollingPlan:
    """One rolloutRolling pass: grow the new ReplicaSet within surge, else shrink old ones."""
    work = _Working(d)
    replicas = replicas_of(d)
    # reconcileNewReplicaSet
    if replicas_of(new_rs) != replicas:
        if replicas_of(new_rs) > replicas:
            target = replicas
        else:
            target = new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        if target != replicas_of(new_rs):
            scaled = work.scale(new_rs, target)
            return RollingPlan(tuple(work.steps), scaled_up=True, new_rs=scaled, old_rss=tuple(old_rss))
    # reconcileOldReplicaSets
    old_list = list(old_rss)
    old_count = total_spec_replicas(old_list)
    if old_count == 0:
        return RollingPlan((), new_rs=new_rs, old_rss=tuple(old_list))
    all_count = total_spec_replicas([*old_list, new_rs])
    min_available = replicas - max_unavailable(d)
    new_unavailable = replicas_of(new_rs) - _status_int(new_rs, "availableReplicas")
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return RollingPlan((), new_rs=new_rs, old_rss=tuple(old_list))
    position = {metadata_of(rs).get("name"): i for i, rs in enumerate(old_list)}
    # cleanupUnhealthyReplicas: old pods that are not available go first.
    cleaned = 0
    for rs in sorted(active(old_list), key=creation_order_key):
        if cleaned >= max_scaled_down:
            break
        unhealthy = replicas_of(rs) - _status_int(rs, "availableReplicas")
        if unhealthy <= 0:
            continue
        count = min(max_scaled_down - cleaned, unhealthy)
        old_list[position[metadata_of(rs).get("name")]] = work.scale(rs, replicas_of(rs) - count)
        cleaned += count
    # scaleDownOldReplicaSetsForRollingUpdate: then only as far as availability allows.
    available = total_status([*old_list, new_rs], "availableReplicas")
    if available > min_available:
        to_remove = available - min_available
        removed = 0
        for rs in sorted(active(old_list), key=creation_order_key):
            if removed >= to_remove:
                break
            count = min(replicas_of(rs), to_remove - removed)
            old_list[position[metadata_of(rs).get("name")]] = work.scale(rs, replicas_of(rs) - count)
            removed += count
    return RollingPlan(tuple(work.steps), scaled_down=bool(work.steps), new_rs=new_rs,
                       old_rss=tuple(old_list))


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=creation_order_key, reverse=True)
    running = active([*newest_first, new_rs])
    if not running:
        return new_rs if new_rs is not None else newest_first[0]
    if len(running) == 1:
        return running[0]
    return None


def _replica_set_fraction(rs: Obj, d: Obj) -> int:
    replicas = replicas_of(d)
    if replicas == 0:
        return -replicas_of(rs)
    deployment_max = replicas + max_surge(d)
    annotated = _annotated_int(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = _status_int(d, "replicas")
    if annotated == 0:
        return 0
    new_size = replicas_of(rs) * deployment_max / annotated
    return _round_half_away(new_size) - replicas_of(rs)


def _round_half_away(x: float) -> int:
    """Go's math.Round (Python's round() rounds half to even)."""
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def plan_proportional_scale(d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> list[ScaleStep]:
    """dc.scale: resize for a replica count change, proportionally across active ReplicaSets mid-rollout."""
    work = _Working(d)
    replicas = replicas_of(d)
    target = find_active_or_latest(new_rs, old_rss)
    if target is not None:
        if replicas_of(target) != replicas:
            work.scale(target, replicas)
        return work.steps
    if is_saturated(d, new_rs):
        for rs in active(old_rss):
            work.scale(rs, 0)
        return work.steps
    if not is_rolling_update(d):
        return work.steps
    running = active([*old_rss, new_rs])
    current = total_spec_replicas(running)
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - current
    operation = ""
    if to_add > 0:
        # Larger first; among equals, newer first when growing.
        running.sort(key=creation_order_key, reverse=True)
        running.sort(key=replicas_of, reverse=True)
        operation = "up"
    elif to_add < 0:
        # Larger first; among equals, older first when shrinking.
        running.sort(key=creation_order_key)
        running.sort(key=replicas_of, reverse=True)
        operation = "down"
    sizes: dict[str, int] = {}
    added = 0
    for rs in running:
        name = metadata_of(rs)["name"]
        if to_add != 0:
            share = _proportion(rs, d, to_add, added)
            sizes[name] = replicas_of(rs) + share
            added += share
        else:
            sizes[name] = replicas_of(rs)
    for i, rs in enumerate(running):
        name = metadata_of(rs)["name"]
        if i == 0 and to_add != 0:
            sizes[name] = max(0, sizes[name] + to_add - added)  # leftovers go to the largest
        # Upstream writes every active ReplicaSet here, if only to refresh its annotations.
        work.scale(rs, sizes[name], operation)
    return work.steps


def replica_sets_to_clean_up(d: Obj, old_rss: Sequence[Obj]) -> list[Obj]:
    """Old, empty ReplicaSets beyond revisionHistoryLimit, oldest revision first."""
    if not has_revision_history_limit(d):
        return []
    cleanable = [rs for rs in old_rss if not metadata_of(rs).get("deletionTimestamp")]
    surplus = len(cleanable) - int(spec_of(d)["revisionHistoryLimit"])
    if surplus <= 0:
        return []
    cleanable.sort(key=lambda rs: (revision(rs) or 0, *creation_order_key(rs)))
    doomed = []
    for rs in cleanable[:surplus]:
        if (_status_int(rs, "replicas") != 0 or replicas_of(rs) != 0
                or int(metadata_of(rs).get("generation") or 0) > _status_int(rs, "observedGeneration")):
            continue
        doomed.append(rs)
    return doomed


def old_pods_running(new_rs: Obj | None, old_rss: Sequence[Obj],
                     pods_by_owner_uid: Mapping[str, Sequence[Obj]]) -> bool:
    """Recreate waits until no old pod is running (or could still be)."""
    if total_status(old_rss, "replicas") > 0:
        return True
    new_uid = metadata_of(new_rs).get("uid") if new_rs is not None else None
    for uid, pods in pods_by_owner_uid.items():
        if uid == new_uid:
            continue
        for pod in pods:
            if status_of(pod).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


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
