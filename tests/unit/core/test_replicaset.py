"""ReplicaSet decisions over plain dicts: claiming, batches, deletion order, status, expectations."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from svcnet.api.selectors import label_selector_from_object
from svcnet.core import replicaset as core

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rs(name: str = "web-abc", uid: str = "rs-uid", replicas: int = 3, min_ready: int = 0,
       generation: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "uid": uid, "generation": generation},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"},
                                               "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "img"}]}}}}


def pod(name: str, *, labels: dict[str, str] | None = None, owner: str | None = None,
        node: str = "", phase: str = "Running", ready: bool | None = True, ready_for: float = 3600,
        age: float = 7200, restarts: int = 0, cost: int | None = None, uid: str | None = None,
        deleting: bool = False) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                          "labels": {"app": "web"} if labels is None else labels,
                          "creationTimestamp": stamp(age)}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x",
                                  "uid": owner, "controller": True}]
    if cost is not None:
        md["annotations"] = {core.POD_DELETION_COST: str(cost)}
    if deleting:
        md["deletionTimestamp"] = stamp(0)
    status: dict[str, Any] = {"phase": phase,
                              "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": stamp(ready_for)}]
    return {"metadata": md, "spec": {"nodeName": node} if node else {}, "status": status}


SELECTOR = label_selector_from_object({"matchLabels": {"app": "web"}})


# ------------------------------------------------------------------ predicates

@pytest.mark.parametrize("phase, deleting, active", [
    ("Running", False, True), ("Pending", False, True), ("", False, True),
    ("Succeeded", False, False), ("Failed", False, False), ("Running", True, False),
])
def test_pod_is_active_unless_finished_or_deleting(phase: str, deleting: bool, active: bool) -> None:
    assert core.is_pod_active(pod("p", phase=phase, deleting=deleting)) is active


@pytest.mark.parametrize("ready, ready_for, min_ready, available", [
    (True, 100, 0, True), (True, 100, 50, True), (True, 10, 50, False),
    (False, 100, 0, False), (None, 100, 0, False),
])
def test_pod_is_available_after_ready_for_min_ready_seconds(ready: bool | None, ready_for: float,
                                                             min_ready: int, available: bool) -> None:
    assert core.is_pod_available(pod("p", ready=ready, ready_for=ready_for), min_ready, NOW) is available


# ------------------------------------------------------------------- ownership

def test_claim_keeps_owned_adopts_matching_orphans_and_releases_non_matching() -> None:
    owner = rs()
    mine = pod("mine", owner="rs-uid")
    mine_relabeled = pod("relabeled", owner="rs-uid", labels={"app": "other"})
    orphan = pod("orphan")
    orphan_other = pod("stranger", labels={"app": "other"})
    someone_elses = pod("theirs", owner="other-uid")
    deleting_orphan = pod("dying", deleting=True)
    verdict = core.claim(owner, SELECTOR, [mine, mine_relabeled, orphan, orphan_other, someone_elses,
                                           deleting_orphan])
    assert [p["metadata"]["name"] for p in verdict.owned] == ["mine"]
    assert [p["metadata"]["name"] for p in verdict.adopt] == ["orphan"]
    assert [p["metadata"]["name"] for p in verdict.release] == ["relabeled"]


def test_owner_being_deleted_neither_adopts_nor_releases() -> None:
    owner = rs()
    owner["metadata"]["deletionTimestamp"] = stamp(0)
    verdict = core.claim(owner, SELECTOR, [pod("orphan"), pod("relabeled", owner="rs-uid", labels={})])
    assert verdict == core.Claim()


def test_adopt_and_release_patches_name_the_controller_and_guard_the_uid() -> None:
    owner, target = rs(), pod("p")
    adopt = core.adopt_patch(owner, target)
    assert adopt == {"metadata": {"ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs-uid",
        "controller": True, "blockOwnerDeletion": True}], "uid": "uid-p"}}
    assert core.release_patch(owner, target) == {
        "metadata": {"ownerReferences": [{"$patch": "delete", "uid": "rs-uid"}], "uid": "uid-p"}}


# -------------------------------------------------------------------- creation

@pytest.mark.parametrize("count, batches", [
    (0, []), (1, [1]), (3, [1, 2]), (7, [1, 2, 4]), (10, [1, 2, 4, 3]),
    (500, [1, 2, 4, 8, 16, 32, 64, 128, 245]),
])
def test_slow_start_batches_double_from_one(count: int, batches: list[int]) -> None:
    assert core.slow_start_batches(count) == batches


def test_pod_from_template_uses_generate_name_owner_and_template_metadata() -> None:
    body = core.pod_from_template(rs(), rs()["spec"]["template"])
    assert body["metadata"]["generateName"] == "web-abc-"
    assert "name" not in body["metadata"]
    assert body["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert body["metadata"]["annotations"] == {"a": "b"}
    assert body["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs-uid",
        "controller": True, "blockOwnerDeletion": True}]
    assert body["spec"] == {"containers": [{"name": "c", "image": "img"}]}


# -------------------------------------------------------------------- deletion

@pytest.mark.parametrize("first, second, why", [
    (pod("a", node=""), pod("b", node="n1"), "unscheduled before scheduled"),
    (pod("a", node="n1", phase="Pending"), pod("b", node="n1", phase="Unknown"), "pending before unknown"),
    (pod("a", node="n1", phase="Unknown"), pod("b", node="n1", phase="Running"), "unknown before running"),
    (pod("a", node="n1", ready=False), pod("b", node="n2", ready=True), "not ready before ready"),
    (pod("a", node="n1", cost=-5), pod("b", node="n2", cost=10), "lower deletion cost first"),
    (pod("a", node="n1", ready_for=10), pod("b", node="n2", ready_for=100000), "ready for less time first"),
    (pod("a", node="n1", restarts=4), pod("b", node="n2", restarts=1), "more restarts first"),
    (pod("a", node="n1", age=10), pod("b", node="n2", age=100000), "newer first"),
])
def test_deletion_rank_orders_pods_as_upstream(first: dict, second: dict, why: str) -> None:
    for order in ([first, second], [second, first]):
        ranked = core.rank_for_deletion(order, order, NOW)
        assert [p["metadata"]["name"] for p in ranked] == ["a", "b"], why


def test_pods_doubled_up_on_a_node_go_before_lonely_ones() -> None:
    lonely = pod("lonely", node="n1")
    crowded = pod("crowded", node="n2")
    sibling = pod("sibling", node="n2", owner="other-rs")
    ranked = core.rank_for_deletion([lonely, crowded], [lonely, crowded, sibling], NOW)
    assert [p["metadata"]["name"] for p in ranked] == ["crowded", "lonely"]


def test_pods_of_a_similar_age_tie_and_are_ordered_by_uid() -> None:
    a = pod("a", node="n1", age=1000, ready_for=1000, uid="b-uid")
    b = pod("b", node="n2", age=1001, ready_for=1001, uid="a-uid")
    ranked = core.rank_for_deletion([a, b], [], NOW)
    assert [p["metadata"]["name"] for p in ranked] == ["b", "a"]


def test_pods_to_delete_takes_the_first_ranked() -> None:
    pods = [pod("old", node="n1"), pod("unready", node="n1", ready=False), pod("pending", phase="Pending")]
    assert [p["metadata"]["name"] for p in core.pods_to_delete(pods, pods, 2, NOW)] == ["pending", "unready"]
    assert len(core.pods_to_delete(pods, pods, 5, NOW)) == 3


# ---------------------------------------------------------------------- status

def test_status_counts_replicas_labels_ready_and_available() -> None:
    owner = rs(min_ready=60, generation=4)
    pods = [pod("a", labels={"app": "web", "tier": "front"}, ready_for=3600),
            pod("b", labels={"app": "web"}, ready_for=10),
            pod("c", labels={"app": "web", "tier": "front"}, ready=False)]
    assert core.replica_set_status(owner, pods, None, NOW) == {
        "replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1,
        "observedGeneration": 4}


def test_a_failed_create_sets_replica_failure_and_success_clears_it() -> None:
    owner = rs()
    failed = core.replica_set_status(owner, [], core.ManageError("FailedCreate", "quota"), NOW)
    assert failed["conditions"] == [{"type": "ReplicaFailure", "status": "True",
                                     "lastTransitionTime": "2026-01-01T12:00:00Z",
                                     "reason": "FailedCreate", "message": "quota"}]
    owner["status"] = failed
    assert "conditions" not in core.replica_set_status(owner, [], None, NOW)


def test_status_is_current_only_when_every_count_and_generation_match() -> None:
    owner = rs()
    status = core.replica_set_status(owner, [pod("a")], None, NOW)
    assert not core.status_is_current(owner, status)
    owner["status"] = status
    assert core.status_is_current(owner, status)
    owner["metadata"]["generation"] = 2
    assert not core.status_is_current(owner, core.replica_set_status(owner, [pod("a")], None, NOW))


# ---------------------------------------------------------------- expectations

def test_expectations_wait_for_every_create_to_be_observed() -> None:
    exp = core.Expectations()
    assert exp.satisfied("ns/rs", 0)
    exp.expect_creations("ns/rs", 2, 0)
    assert not exp.satisfied("ns/rs", 1)
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs", 1)
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs", 1)


def test_expectations_track_deletions_by_pod_key_and_expire() -> None:
    exp = core.Expectations(timeout=300)
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"], 0)
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")
    assert exp.pending("ns/rs") == (0, 1)
    assert not exp.satisfied("ns/rs", 299)
    assert exp.satisfied("ns/rs", 301)
    exp.forget("ns/rs")
    assert exp.pending("ns/rs") == (0, 0)


def test_event_budget_allows_a_burst_then_one_per_refill() -> None:
    budget = core.EventBudget(burst=3, refill_seconds=10)
    assert [budget.allow("rs", 0) for _ in range(4)] == [True, True, True, False]
    assert not budget.allow("rs", 5)
    assert budget.allow("rs", 15)
    assert budget.allow("other", 15)


def test_event_budget_keeps_the_most_recently_used_objects_only() -> None:
    budget = core.EventBudget(burst=1, refill_seconds=1000, max_objects=3)
    for key in ("a", "b", "c"):
        assert budget.allow(key, 0)
    assert not budget.allow("a", 0)  # spent; and now the most recently used
    assert budget.allow("d", 0)  # evicts "b", the least recently used
    assert len(budget) == 3
    assert not budget.allow("a", 0) and not budget.allow("c", 0)  # remembered: still spent
    assert budget.allow("b", 0)  # forgotten: a fresh burst, as upstream's LRU
