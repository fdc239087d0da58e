"""How many replicas: a Deployment's spec arithmetic and the sizes of its ReplicaSets.

maxSurge and maxUnavailable are an int or a percentage of spec.replicas
(surge rounds up, unavailable down, never both 0). A ReplicaSet records the
Deployment size it was scaled for in the desired-replicas and max-replicas
annotations, which later tell a scaling event from a rollout. Counting helpers
take None for "no new ReplicaSet yet", as upstream's do.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from svcnet.api.objects import annotations_of, metadata_of, name_of, spec_of, status_of

Obj = dict[str, Any]

DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
MAX_INT32 = 2**31 - 1


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


def rolling_params(d: Obj) -> tuple[Any, Any]:
    """(maxSurge, maxUnavailable) as written, each defaulting to 25%."""
    rolling = (spec_of(d).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(*rolling_params(d), replicas_of(d))[0]


def max_unavailable(d: Obj) -> int:
    replicas = replicas_of(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    return min(resolve_fenceposts(*rolling_params(d), replicas)[1], replicas)


def has_progress_deadline(d: Obj) -> bool:
    deadline = spec_of(d).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    limit = spec_of(d).get("revisionHistoryLimit")
    return limit is not None and int(limit) != MAX_INT32


# ------------------------------------------------------- replica set counts

def status_int(obj: Obj | None, key: str) -> int:
    """A status count, 0 when absent (or when there is no object)."""
    if obj is None:
        return 0
    return int(status_of(obj).get(key) or 0)


def annotated_int(obj: Obj, key: str) -> int | None:
    """An annotation read as an int; None when missing or not a number."""
    value = annotations_of(obj).get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def creation_order_key(rs: Obj) -> tuple[str, str]:
    """ReplicaSetsByCreationTimestamp: older first, name breaks ties (RFC 3339 sorts as text)."""
    return (str(metadata_of(rs).get("creationTimestamp") or ""), name_of(rs))


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas_of(rs) > 0]


def total_spec_replicas(rss: Iterable[Obj | None]) -> int:
    return sum(replicas_of(rs) for rs in rss if rs is not None)


def total_status(rss: Iterable[Obj | None], key: str) -> int:
    return sum(status_int(rs, key) for rs in rss if rs is not None)


# --------------------------------------------------------- scaling a replica set

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
