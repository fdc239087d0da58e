"""How a Deployment moves its ReplicaSets: rolling update, proportional scaling, Recreate.

Upstream's rolling.go, recreate.go and sync.go's scale: a rolling update grows
the new ReplicaSet within maxSurge, then shrinks old ones as far as
maxUnavailable allows, unhealthy pods first (plan_rolling_update); a change
of spec.replicas mid-rollout spreads over the active ReplicaSets in
proportion to their size (plan_proportional_scale); Recreate waits until no
old pod runs (old_pods_running).

Planners return ScaleSteps in the order upstream issues its writes; the
controller performs them and stops at the first failure, as upstream does.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svcnet.api.objects import is_pod_terminal, metadata_of
from svcnet.core.deployment.replicas import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    active,
    annotated_int,
    creation_order_key,
    is_rolling_update,
    max_surge,
    max_unavailable,
    replicas_of,
    rolling_params,
    scaled_replica_set,
    scaled_value,
    status_int,
    total_spec_replicas,
    total_status,
)

Obj = dict[str, Any]


# ------------------------------------------------------------- where it stands

def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    replicas = replicas_of(d)
    return (replicas_of(rs) == replicas and annotated_int(rs, DESIRED_REPLICAS) == replicas
            and status_int(rs, "availableReplicas") == replicas)


def is_scaling_event(d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> bool:
    """An active ReplicaSet was sized for another replica count than the Deployment's now."""
    replicas = replicas_of(d)
    for rs in active([*old_rss, new_rs]):
        desired = annotated_int(rs, DESIRED_REPLICAS)
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
    surge = scaled_value(rolling_params(d)[0], replicas, True)
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
    new_unavailable = replicas_of(new_rs) - status_int(new_rs, "availableReplicas")
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return RollingPlan((), new_rs=new_rs, old_rss=tuple(old_list))
    position = {metadata_of(rs).get("name"): i for i, rs in enumerate(old_list)}
    # cleanupUnhealthyReplicas: old pods that are not available go first.
    cleaned = 0
    for rs in sorted(active(old_list), key=creation_order_key):
        if cleaned >= max_scaled_down:
            break
        unhealthy = replicas_of(rs) - status_int(rs, "availableReplicas")
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
    annotated = annotated_int(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_int(d, "replicas")
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
            if not is_pod_terminal(pod):
                return True
    return False
