"""Deployment decisions over plain dicts: hashing, fenceposts, revisions, rollout plans, status."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from svcnet.core import deployment as core

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "img:1"}]}}


def deployment(replicas: int = 3, surge: Any = "25%", unavailable: Any = "25%", generation: int = 1,
               strategy: str = "RollingUpdate", image: str = "img:1", **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": strategy}, "revisionHistoryLimit": 2, "progressDeadlineSeconds": 600,
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": image}]}}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": generation,
                         "annotations": {}},
            "spec": spec, "status": dict(status)}


def rs(name: str, replicas: int, available: int | None = None, *, image: str = "img:1",
       revision: int | None = None, created: str = "2026-01-01T00:00:00Z", max_replicas: int | None = None,
       desired: int | None = None, status_replicas: int | None = None) -> dict[str, Any]:
    annotations = {}
    if revision is not None:
        annotations[core.REVISION] = str(revision)
    if max_replicas is not None:
        annotations[core.MAX_REPLICAS] = str(max_replicas)
    if desired is not None:
        annotations[core.DESIRED_REPLICAS] = str(desired)
    available = replicas if available is None else available
    return {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created,
                         "annotations": annotations, "generation": 1},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "readyReplicas": available, "availableReplicas": available,
                       "observedGeneration": 1}}


# ------------------------------------------------------------------------ hash

def test_compute_hash_is_stable_shaped_like_upstream_and_changes_with_the_template() -> None:
    h = core.compute_hash(TEMPLATE)
    assert h == core.compute_hash({"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]})
    assert 1 <= len(h) <= 10 and set(h) <= set("456789bcdf")
    other = {**TEMPLATE, "spec": {"containers": [{"name": "web", "image": "img:2"}]}}
    assert core.compute_hash(other) != h


def test_compute_hash_ignores_nulls_and_mixes_in_the_collision_count() -> None:
    with_null = {"metadata": {"labels": {"app": "web"}, "creationTimestamp": None}, "spec": TEMPLATE["spec"]}
    assert core.compute_hash(with_null) == core.compute_hash(TEMPLATE)
    assert core.compute_hash(TEMPLATE, 0) != core.compute_hash(TEMPLATE)
    assert core.compute_hash(TEMPLATE, 1) != core.compute_hash(TEMPLATE, 0)


# ---------------------------------------------------------------- fenceposts

@pytest.mark.parametrize("value, total, round_up, expected", [
    (2, 10, True, 2), ("25%", 3, True, 1), ("25%", 3, False, 0), ("50%", 5, True, 3),
    ("50%", 5, False, 2), ("100%", 4, False, 4), ("0%", 7, True, 0),
])
def test_scaled_value_rounds_percentages_as_asked(value: Any, total: int, round_up: bool,
                                                   expected: int) -> None:
    assert core.scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize("value", ["10", "x%", None, 1.5])
def test_scaled_value_rejects_what_is_neither_int_nor_percent(value: Any) -> None:
    with pytest.raises(ValueError):
        core.scaled_value(value, 10, True)


@pytest.mark.parametrize("surge, unavailable, desired, expected", [
    ("25%", "25%", 3, (1, 0)), ("25%", "25%", 4, (1, 1)), (0, 0, 3, (0, 1)), ("0%", "0%", 3, (0, 1)),
    (2, "50%", 5, (2, 2)),
])
def test_fenceposts_round_surge_up_unavailable_down_and_never_both_zero(
        surge: Any, unavailable: Any, desired: int, expected: tuple[int, int]) -> None:
    assert core.resolve_fenceposts(surge, unavailable, desired) == expected


def test_max_unavailable_is_capped_at_replicas_and_zero_for_recreate() -> None:
    assert core.max_unavailable(deployment(replicas=2, unavailable=5)) == 2
    assert core.max_unavailable(deployment(replicas=0)) == 0
    assert core.max_unavailable(deployment(strategy="Recreate")) == 0
    assert core.max_surge(deployment(strategy="Recreate")) == 0


# ---------------------------------------------------------------- replica sets

def test_new_replica_set_is_the_oldest_with_the_same_template_ignoring_the_hash() -> None:
    d = deployment()
    older_same = rs("a", 1, created="2026-01-01T00:00:00Z")
    newer_same = rs("b", 1, created="2026-01-02T00:00:00Z")
    different = rs("c", 1, image="img:0")
    assert core.find_new_replica_set(d, [newer_same, different, older_same]) is older_same
    assert core.find_old_replica_sets(d, [newer_same, different, older_same]) == [newer_same, different]
    assert core.find_new_replica_set(d, [different]) is None


def test_replica_set_for_names_labels_and_selects_by_hash() -> None:
    d = deployment(replicas=3)
    d["metadata"]["annotations"] = {"team": "a", core.LAST_APPLIED: "{}", core.REVISION: "4"}
    body = core.replica_set_for(d, "7c89f997cf", 1, "5")
    assert body["metadata"]["name"] == "web-7c89f997cf"
    assert body["metadata"]["labels"] == {"app": "web", "pod-template-hash": "7c89f997cf"}
    assert body["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": "7c89f997cf"}}
    assert body["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "7c89f997cf"
    assert body["spec"]["replicas"] == 1
    assert body["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    assert body["metadata"]["annotations"] == {"team": "a", core.REVISION: "5",
                                               core.DESIRED_REPLICAS: "3", core.MAX_REPLICAS: "4"}
    assert "pod-template-hash" not in d["spec"]["template"]["metadata"]["labels"]


def test_rolling_back_to_a_replica_set_records_its_old_revisions() -> None:
    d = deployment()
    target = rs("a", 0, revision=1)
    first = core.new_replica_set_annotations(d, target, "3", exists=True)
    assert (first[core.REVISION], first[core.REVISION_HISTORY]) == ("3", "1")
    target["metadata"]["annotations"] = first
    second = core.new_replica_set_annotations(d, target, "5", exists=True)
    assert (second[core.REVISION], second[core.REVISION_HISTORY]) == ("5", "1,3")
    assert core.new_replica_set_annotations(d, target, "2", exists=True)[core.REVISION] == "3"


def test_revision_history_drops_the_oldest_beyond_the_character_limit() -> None:
    target = rs("a", 0, revision=40)
    target["metadata"]["annotations"][core.REVISION_HISTORY] = "10,20,30"
    out = core.new_replica_set_annotations(deployment(), target, "50", exists=True, history_limit=9)
    assert out[core.REVISION_HISTORY] == "20,30,40"


# ------------------------------------------------------------------- rolling

@pytest.mark.parametrize("new, old, expected", [
    # Surge one new pod while every old one stays.
    (rs("new", 0, 0), [rs("old", 3, 3)], [core.ScaleStep("new", 1, "up")]),
    # The new pod is not available yet: nothing may go.
    (rs("new", 1, 0), [rs("old", 3, 3)], []),
    # It is: one old pod may go (3 must stay available).
    (rs("new", 1, 1), [rs("old", 3, 3)], [core.ScaleStep("old", 2, "down")]),
    # Room again under the surge: grow the new one.
    (rs("new", 1, 1), [rs("old", 2, 2)], [core.ScaleStep("new", 2, "up")]),
    # Unavailable old pods are cleaned up first, even below availability.
    (rs("new", 1, 0), [rs("old", 3, 1)], []),
    (rs("new", 1, 1), [rs("old", 3, 1)], [core.ScaleStep("old", 2, "down")]),
    # Done.
    (rs("new", 3, 3), [rs("old", 0, 0)], []),
])
def test_rolling_update_plans_within_surge_and_availability(new: dict, old: list[dict],
                                                            expected: list[core.ScaleStep]) -> None:
    plan = core.plan_rolling_update(deployment(replicas=3), new, old)
    assert list(plan.steps) == expected


def test_rolling_update_with_max_unavailable_scales_old_down_at_once() -> None:
    d = deployment(replicas=4, surge=0, unavailable=2)
    plan = core.plan_rolling_update(d, rs("new", 0, 0), [rs("old", 4, 4)])
    assert list(plan.steps) == [core.ScaleStep("old", 2, "down")]
    assert plan.scaled_down and not plan.scaled_up


def test_rolling_update_shrinks_an_oversized_new_replica_set() -> None:
    plan = core.plan_rolling_update(deployment(replicas=2), rs("new", 5, 5), [])
    assert list(plan.steps) == [core.ScaleStep("new", 2, "down")]


def test_scaled_replica_set_sets_replicas_and_annotations() -> None:
    body = core.scaled_replica_set(rs("a", 1), 4, deployment(replicas=4))
    assert body["spec"]["replicas"] == 4
    assert body["metadata"]["annotations"][core.DESIRED_REPLICAS] == "4"
    assert body["metadata"]["annotations"][core.MAX_REPLICAS] == "5"


# ------------------------------------------------------------------- scaling

def test_scaling_event_is_an_active_replica_set_sized_for_another_count() -> None:
    d = deployment(replicas=5)
    assert core.is_scaling_event(d, rs("new", 3, desired=3), [])
    assert not core.is_scaling_event(d, rs("new", 5, desired=5), [rs("old", 0, desired=3)])
    assert not core.is_scaling_event(d, rs("new", 3), [])


def test_scale_without_rollout_resizes_the_only_active_replica_set() -> None:
    steps = core.plan_proportional_scale(deployment(replicas=5), rs("new", 3), [rs("old", 0)])
    assert steps == [core.ScaleStep("new", 5, "up")]


def test_scale_mid_rollout_is_proportional_with_leftovers_to_the_largest() -> None:
    d = deployment(replicas=20, surge=3, unavailable=1)
    old = rs("old", 8, max_replicas=13, created="2026-01-01T00:00:00Z")
    new = rs("new", 5, max_replicas=13, created="2026-01-02T00:00:00Z")
    steps = core.plan_proportional_scale(d, new, [old])
    assert steps == [core.ScaleStep("old", 14, "up"), core.ScaleStep("new", 9, "up")]


def test_scale_down_mid_rollout_never_goes_below_zero() -> None:
    d = deployment(replicas=0, surge=1, unavailable=0)
    steps = core.plan_proportional_scale(d, rs("new", 1, max_replicas=4), [rs("old", 3, max_replicas=4)])
    assert {(s.name, s.replicas) for s in steps} == {("old", 0), ("new", 0)}


def test_saturated_new_replica_set_scales_old_ones_to_zero() -> None:
    d = deployment(replicas=3)
    steps = core.plan_proportional_scale(d, rs("new", 3, 3, desired=3), [rs("old", 2)])
    assert steps == [core.ScaleStep("old", 0, "down")]


# ------------------------------------------------------------------- cleanup

def test_cleanup_deletes_the_oldest_empty_revisions_beyond_the_limit() -> None:
    d = deployment()  # revisionHistoryLimit 2
    olds = [rs("r1", 0, revision=1), rs("r2", 0, revision=2), rs("r3", 1, revision=3),
            rs("r4", 0, revision=4)]
    assert [r["metadata"]["name"] for r in core.replica_sets_to_clean_up(d, olds)] == ["r1", "r2"]
    olds[0]["status"]["replicas"] = 1  # a pod still running: kept
    assert [r["metadata"]["name"] for r in core.replica_sets_to_clean_up(d, olds)] == ["r2"]


def test_recreate_waits_while_old_pods_run() -> None:
    new = rs("new", 0)
    assert core.old_pods_running(new, [rs("old", 0, status_replicas=1)], {})
    running = {"uid-old": [{"status": {"phase": "Running"}}]}
    assert core.old_pods_running(new, [rs("old", 0, status_replicas=0)], running)
    finished = {"uid-old": [{"status": {"phase": "Succeeded"}}], "uid-new": [{"status": {}}]}
    assert not core.old_pods_running(new, [rs("old", 0, status_replicas=0)], finished)


# -------------------------------------------------------------------- status

def test_complete_rollout_reports_available_and_new_replica_set_available() -> None:
    d = deployment(replicas=3, generation=2)
    status = core.rollout_status(d, rs("web-abc", 3, 3), [rs("old", 0, 0)], NOW)
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                    "availableReplicas", "unavailableReplicas")} == {
        "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3, "unavailableReplicas": 0}
    conditions = {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}
    assert conditions == {
        "Available": ("True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
        "Progressing": ("True", "NewReplicaSetAvailable",
                        'ReplicaSet "web-abc" has successfully progressed.')}


def test_progress_mid_rollout_is_replica_set_updated_and_unavailable_counted() -> None:
    d = deployment(replicas=3)
    d["status"] = {"replicas": 3, "updatedReplicas": 0, "availableReplicas": 3, "readyReplicas": 3}
    status = core.rollout_status(d, rs("web-new", 1, 0), [rs("old", 3, 3)], NOW)
    assert status["unavailableReplicas"] == 1
    progressing = core.get_condition(status, "Progressing")
    assert (progressing["reason"], progressing["message"]) == ("ReplicaSetUpdated",
                                                               'ReplicaSet "web-new" is progressing.')


def test_below_minimum_availability_is_reported() -> None:
    d = deployment(replicas=4, unavailable=1)
    status = core.rollout_status(d, rs("new", 4, 2), [], NOW)
    available = core.get_condition(status, "Available")
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")


def test_no_progress_past_the_deadline_times_out() -> None:
    d = deployment(replicas=3)
    long_ago = "2026-01-01T11:00:00Z"
    d["status"] = {"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "readyReplicas": 3,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                                   "message": "x", "lastUpdateTime": long_ago,
                                   "lastTransitionTime": long_ago}]}
    status = core.rollout_status(d, rs("new", 1, 0), [rs("old", 3, 3)], NOW)
    progressing = core.get_condition(status, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "False", "ProgressDeadlineExceeded", 'ReplicaSet "new" has timed out progressing.')


def test_a_stuck_rollout_is_looked_at_again_when_its_deadline_passes() -> None:
    d = deployment(replicas=3)
    d["status"] = {"conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                                   "lastUpdateTime": "2026-01-01T11:55:00Z"}]}
    assert core.stuck_requeue_after(d, {"replicas": 4}, NOW) == 301.0


def test_setting_a_condition_with_the_same_status_keeps_its_transition_time() -> None:
    status: dict[str, Any] = {}
    core.set_condition(status, core.new_condition("Progressing", "True", "A", "a", NOW))
    later = NOW + dt.timedelta(minutes=5)
    core.set_condition(status, core.new_condition("Progressing", "True", "B", "b", later))
    (cond,) = status["conditions"]
    assert (cond["reason"], cond["lastTransitionTime"], cond["lastUpdateTime"]) == (
        "B", "2026-01-01T12:00:00Z", "2026-01-01T12:05:00Z")


def test_pausing_and_resuming_set_an_unknown_progressing_condition() -> None:
    d = deployment()
    d["spec"]["paused"] = True
    paused = core.paused_condition_update(d, NOW)
    assert core.get_condition(paused, "Progressing")["reason"] == "DeploymentPaused"
    d["status"] = paused
    assert core.paused_condition_update(d, NOW) is None
    d["spec"]["paused"] = False
    resumed = core.paused_condition_update(d, NOW)
    cond = core.get_condition(resumed, "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", "DeploymentResumed",
                                                                 "Deployment is resumed")


def test_replica_failure_of_a_replica_set_surfaces_on_the_deployment() -> None:
    new = rs("new", 3, 0)
    new["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                    "message": "quota", "lastTransitionTime": "2026-01-01T11:00:00Z"}]
    status = core.rollout_status(deployment(), new, [], NOW)
    failure = core.get_condition(status, "ReplicaFailure")
    assert (failure["reason"], failure["message"]) == ("FailedCreate", "quota")
