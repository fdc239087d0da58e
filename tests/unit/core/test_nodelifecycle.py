"""Node health from heartbeats: stale nodes become Ready=Unknown and unreachable-tainted."""
from __future__ import annotations

import datetime as dt

from svcnet.core.nodelifecycle import UNREACHABLE_TAINT, decide

NOW = dt.datetime(2026, 11, 27, 9, 0, 0, tzinfo=dt.UTC)


def node(heartbeat: str | None, *, ready: str = "True", taints: list | None = None) -> dict:
    cond = {"type": "Ready", "status": ready}
    if heartbeat:
        cond["lastHeartbeatTime"] = heartbeat
    return {"metadata": {"name": "node-1"}, "spec": {"taints": taints or []},
            "status": {"conditions": [cond]}}


def lease(renew: str) -> dict:
    return {"spec": {"renewTime": renew, "leaseDurationSeconds": 40}}


def test_a_fresh_lease_keeps_the_node_and_says_when_to_look_again():
    d = decide(node("2026-11-27T08:58:00Z"), lease("2026-11-27T08:59:50.000000Z"), NOW)
    assert d.status_patch is None and d.taints is None
    assert 29 < d.recheck_after < 32


def test_a_stale_heartbeat_makes_ready_unknown_and_taints_the_node():
    d = decide(node("2026-11-27T08:58:00Z"), lease("2026-11-27T08:59:00.000000Z"), NOW)
    [ready] = d.status_patch["status"]["conditions"]
    assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    assert {(t["key"], t["effect"]) for t in d.taints} == {
        (UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")}


def test_an_already_unknown_tainted_node_needs_no_write():
    taints = [{"key": UNREACHABLE_TAINT, "effect": "NoSchedule"},
              {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}]
    d = decide(node("2026-11-27T08:50:00Z", ready="Unknown", taints=taints), None, NOW)
    assert d.status_patch is None and d.taints is None


def test_a_node_heard_from_again_loses_the_unreachable_taints():
    taints = [{"key": UNREACHABLE_TAINT, "effect": "NoSchedule"}, {"key": "dedicated", "effect": "NoSchedule"}]
    d = decide(node("2026-11-27T08:59:59Z", taints=taints), None, NOW)
    assert d.taints == [{"key": "dedicated", "effect": "NoSchedule"}]


def test_a_node_just_registered_gets_the_grace_period_before_any_heartbeat():
    fresh = {"metadata": {"name": "node-1", "creationTimestamp": "2026-11-27T08:59:55Z"},
             "spec": {}, "status": {}}
    d = decide(fresh, None, NOW)
    assert d.status_patch is None and d.taints is None
