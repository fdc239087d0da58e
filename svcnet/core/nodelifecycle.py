"""Node health from heartbeats, as kube-controller-manager's node lifecycle controller decides it.

A node's agent renews a Lease in kube-node-lease (and posts status). When
neither has been heard of for the grace period (upstream's
node-monitor-grace-period, 40 s), the node's Ready condition becomes Unknown
("Kubelet stopped posting node status.") and it gets the unreachable taints,
so the scheduler stops placing pods there; when the agent is back, the taints
go and its own status write sets Ready again.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

GRACE_PERIOD = dt.timedelta(seconds=40)
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"


@dataclass(frozen=True)
class NodeHealthDecision:
    status_patch: Obj | None  # a strategic-free merge of status.conditions, or None
    taints: list[Obj] | None  # the node's new spec.taints, or None when unchanged
    recheck_after: float | None  # seconds until the heartbeat would go stale


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    text = value.rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _ready_condition(node: Obj) -> Obj | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def last_heartbeat(node: Obj, lease: Obj | None) -> dt.datetime | None:
    """The latest of the Lease's renewTime, the Ready condition's lastHeartbeatTime and the
    node's creation (a node just registered gets the whole grace period, as upstream)."""
    times = [_parse(((lease or {}).get("spec") or {}).get("renewTime")),
             _parse((_ready_condition(node) or {}).get("lastHeartbeatTime")),
             _parse((node.get("metadata") or {}).get("creationTimestamp"))]
    seen = [t for t in times if t is not None]
    return max(seen) if seen else None


def decide(node: Obj, lease: Obj | None, now: dt.datetime,
           grace: dt.timedelta = GRACE_PERIOD) -> NodeHealthDecision:
    heard = last_heartbeat(node, lease)
    ready = _ready_condition(node)
    taints = list((node.get("spec") or {}).get("taints") or [])
    has_unreachable = any(t.get("key") == UNREACHABLE_TAINT for t in taints)
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if heard is None or now - heard > grace:
        patch = None
        if ready is None or ready.get("status") != "Unknown":
            conditions = [c for c in (node.get("status") or {}).get("conditions") or []
                          if c.get("type") != "Ready"]
            conditions.append({
                "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": (ready or {}).get("lastHeartbeatTime"),
                "lastTransitionTime": stamp})
            patch = {"status": {"conditions": conditions}}
        new_taints = None
        if not has_unreachable:
            new_taints = [t for t in taints if t.get("key") != NOT_READY_TAINT] + [
                {"key": UNREACHABLE_TAINT, "effect": "NoSchedule", "timeAdded": stamp},
                {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": stamp}]
        return NodeHealthDecision(patch, new_taints, None)
    new_taints = None
    if has_unreachable:
        new_taints = [t for t in taints if t.get("key") != UNREACHABLE_TAINT]
    remaining = (heard + grace - now).total_seconds()
    return NodeHealthDecision(None, new_taints, max(remaining, 0.0) + 0.5)
