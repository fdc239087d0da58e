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

from svcnet.api.meta import parse_time_or_none
from svcnet.api.objects import condition_of, metadata_of, spec_of, status_of

Obj = dict[str, Any]

GRACE_PERIOD = dt.timedelta(seconds=40)
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"


@dataclass(frozen=True)
class NodeHealthDecision:
    status_patch: Obj | None  # a strategic-free merge of status.conditions, or None
    taints: list[Obj] | None  # the node's new spec.taints, or None when unchanged
    recheck_after: float | None  # seconds until the heartbeat would go stale


def last_heartbeat(node: Obj, lease: Obj | None) -> dt.datetime | None:
    """The latest of the Lease's renewTime, the Ready condition's lastHeartbeatTime and the
    node's creation (a node just registered gets the whole grace period, as upstream)."""
    times = [parse_time_or_none(spec_of(lease).get("renewTime")),
             parse_time_or_none((condition_of(node, "Ready") or {}).get("lastHeartbeatTime")),
             parse_time_or_none(metadata_of(node).get("creationTimestamp"))]
    seen = [t for t in times if t is not None]
    return max(seen) if seen else None


def decide(node: Obj, lease: Obj | None, now: dt.datetime,
           grace: dt.timedelta = GRACE_PERIOD) -> NodeHealthDecision:
    heard = last_heartbeat(node, lease)
    ready = condition_of(node, "Ready")
    taints = list(spec_of(node).get("taints") or [])
    has_unreachable = any(t.get("key") == UNREACHABLE_TAINT for t in taints)
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if heard is None or now - heard > grace:
        patch = None
        if ready is None or ready.get("status") != "Unknown":
            conditions = [c for c in status_of(node).get("conditions") or []
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
