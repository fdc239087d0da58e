"""The StatefulSet decisions, on plain objects: identity, revisions, ordering, updates, status."""
from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from svcnet.core import statefulset as core

NOW = dt.datetime(2026, 11, 27, 8, 0, 0, tzinfo=dt.UTC)
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}


def make_sts(replicas: int = 3, *, policy: str = "OrderedReady", strategy: dict | None = None,
             start: int | None = None, image: str = "serve_hostname", status: dict | None = None,
             min_ready: int = 0, name: str = "web") -> dict[str, Any]:
    template = copy.deepcopy(TEMPLATE)
    template["spec"]["containers"][0]["image"] = image
    spec: dict[str, Any] = {
        "replicas": replicas, "serviceName": "web", "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": "web"}}, "template": template,
        "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
    }
    if start is not None:
        spec["ordinals"] = {"start": start}
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": "default", "uid": "sts-uid", "generation": 4},
            "spec": spec, "status": status or {}}


def make_pod(sts: dict, ordinal: int, *, state: str = "ready", revision: str | None = None,
             ready_since: dt.datetime | None = None) -> dict[str, Any]:
    """state: ready | running (not ready) | pending | unborn-phase | failed | succeeded | terminating."""
    pod = core.new_pod(sts, ordinal, sts["spec"]["template"], revision or core.revision_name(sts))
    pod["metadata"]["uid"] = f"pod-{ordinal}"
    phase = {"ready": "Running", "running": "Running", "pending": "Pending", "failed": "Failed",
             "succeeded": "Succeeded", "terminating": "Running", "unborn-phase": ""}[state]
    ready = state in ("ready", "terminating")
    pod["status"] = {"phase": phase, "conditions": [{
        "type": "Ready", "status": "True" if ready else "False",
        "lastTransitionTime": (ready_since or NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}]}
    if state == "terminating":
        pod["metadata"]["deletionTimestamp"] = "2026-11-27T08:00:30Z"
    return pod


def actions(plan: core.StatefulSetPlan) -> list[tuple[str, str]]:
    return [(a.kind, a.name) for a in plan.actions]


# ------------------------------------------------------------------ identity

@pytest.mark.parametrize(("name", "expected"), [
    ("web-0", ("web", 0)),
    ("web-12", ("web", 12)),
    ("my-db-3", ("my-db", 3)),
    ("web", ("", -1)),
    ("web-", ("", -1)),
    ("web-x1", ("", -1)),
    ("web-99999999999", ("web", -1)),  # beyond int32, as upstream's ParseInt(.., 32)
])
def test_parent_and_ordinal_parses_the_name_suffix(name: str, expected: tuple[str, int]) -> None:
    assert core.parent_and_ordinal(name) == expected


def test_new_pod_carries_the_stable_identity_and_revision() -> None:
    sts = make_sts()
    pod = core.new_pod(sts, 1, sts["spec"]["template"], "web-abc")
    md, spec = pod["metadata"], pod["spec"]
    assert md["name"] == "web-1"
    assert md["generateName"] == "web-"
    assert md["namespace"] == "default"
    assert md["labels"] == {"app": "web", core.POD_NAME_LABEL: "web-1", core.POD_INDEX_LABEL: "1",
                            core.REVISION_LABEL: "web-abc"}
    assert md["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                      "uid": "sts-uid", "controller": True, "blockOwnerDeletion": True}]
    assert spec["hostname"] == "web-1"
    assert spec["subdomain"] == "web"
    assert spec["containers"] == sts["spec"]["template"]["spec"]["containers"]
    assert sts["spec"]["template"]["metadata"]["labels"] == {"app": "web"}  # the template is not mutated


def test_revision_name_is_the_set_name_and_a_safe_hash_of_the_template() -> None:
    sts = make_sts()
    name = core.revision_name(sts)
    prefix, _, digest = name.rpartition("-")
    assert prefix == "web"
    assert digest and set(digest) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert core.revision_name(make_sts(replicas=7)) == name  # replicas are not part of a revision
    assert core.revision_name(make_sts(image="other")) != name
    assert core.revision_name(make_sts(status={"collisionCount": 1})) != name


def test_template_from_pod_drops_what_the_controller_and_scheduler_added() -> None:
    sts = make_sts()
    pod = make_pod(sts, 2)
    pod["spec"]["nodeName"] = "node-1"
    assert core.template_from_pod(pod) == {"metadata": {"labels": {"app": "web"}},
                                           "spec": sts["spec"]["template"]["spec"]}


# ------------------------------------------------------------- ordered scale

ORDERED_CASES = [
    ("no pods: only the first ordinal", "OrderedReady", {}, [("create", "web-0")]),
    ("first pod pending: wait", "OrderedReady", {0: "pending"}, []),
    ("first pod running but unready: wait", "OrderedReady", {0: "running"}, []),
    ("first pod has no phase yet: wait", "OrderedReady", {0: "unborn-phase"}, []),
    ("first pod ready: the second", "OrderedReady", {0: "ready"}, [("create", "web-1")]),
    ("second unready: wait", "OrderedReady", {0: "ready", 1: "running"}, []),
    ("two ready: the third", "OrderedReady", {0: "ready", 1: "ready"}, [("create", "web-2")]),
    ("a gap is filled before anything else", "OrderedReady", {0: "ready", 2: "ready"},
     [("create", "web-1")]),
    ("terminating pod blocks", "OrderedReady", {0: "terminating"}, []),
    ("all ready: nothing to do", "OrderedReady", {0: "ready", 1: "ready", 2: "ready"}, []),
    ("parallel: everything at once", "Parallel", {},
     [("create", "web-0"), ("create", "web-1"), ("create", "web-2")]),
    ("parallel: does not wait for unready pods", "Parallel", {0: "pending"},
     [("create", "web-1"), ("create", "web-2")]),
]


@pytest.mark.parametrize(("policy", "states", "expected"), [c[1:] for c in ORDERED_CASES],
                         ids=[c[0] for c in ORDERED_CASES])
def test_scale_up_order(policy: str, states: dict[int, str], expected: list) -> None:
    sts = make_sts(policy=policy)
    pods = [make_pod(sts, o, state=s) for o, s in states.items()]
    assert actions(core.plan_stateful_set(sts, pods, now=NOW)) == expected


def test_created_pods_are_built_from_the_template_at_the_update_revision() -> None:
    sts = make_sts()
    (action,) = core.plan_stateful_set(sts, [], now=NOW).actions
    assert action.pod == core.new_pod(sts, 0, sts["spec"]["template"], core.revision_name(sts))


def test_start_ordinal_shifts_the_range_and_condemns_pods_below_it() -> None:
    sts = make_sts(replicas=2, start=5)
    assert actions(core.plan_stateful_set(sts, [], now=NOW)) == [("create", "web-5")]
    pods = [make_pod(sts, 0), make_pod(sts, 5), make_pod(sts, 6)]
    assert actions(core.plan_stateful_set(sts, pods, now=NOW)) == [("delete", "web-0")]


SCALE_DOWN_CASES = [
    ("highest ordinal first, one at a time", "OrderedReady", {0: "ready", 1: "ready", 2: "ready"},
     [("delete", "web-2")]),
    ("a remaining pod unready blocks", "OrderedReady", {0: "running", 1: "ready", 2: "ready"}, []),
    ("a terminating condemned pod blocks", "OrderedReady", {0: "ready", 1: "ready", 2: "terminating"}, []),
    ("the first unhealthy pod may go", "OrderedReady", {0: "ready", 1: "ready", 2: "running"},
     [("delete", "web-2")]),
    ("an unhealthy pod that is not the first blocks", "OrderedReady",
     {0: "ready", 1: "running", 2: "running"}, []),
    ("parallel: all condemned at once", "Parallel", {0: "ready", 1: "running", 2: "ready"},
     [("delete", "web-2"), ("delete", "web-1")]),
]


@pytest.mark.parametrize(("policy", "states", "expected"), [c[1:] for c in SCALE_DOWN_CASES],
                         ids=[c[0] for c in SCALE_DOWN_CASES])
def test_scale_down_to_one(policy: str, states: dict[int, str], expected: list) -> None:
    sts = make_sts(replicas=1, policy=policy)
    pods = [make_pod(sts, o, state=s) for o, s in states.items()]
    assert actions(core.plan_stateful_set(sts, pods, now=NOW)) == expected


@pytest.mark.parametrize("state", ["failed", "succeeded"])
def test_finished_pod_is_deleted_to_be_recreated_under_the_same_name(state: str) -> None:
    sts = make_sts()
    pods = [make_pod(sts, 0), make_pod(sts, 1, state=state), make_pod(sts, 2)]
    plan = core.plan_stateful_set(sts, pods, now=NOW)
    assert actions(plan) == [("delete", "web-1")]
    assert actions(core.plan_stateful_set(sts, [pods[0], pods[2]], now=NOW)) == [("create", "web-1")]


def test_pod_missing_its_identity_labels_is_relabelled() -> None:
    sts = make_sts(replicas=1)
    pod = make_pod(sts, 0)
    del pod["metadata"]["labels"][core.POD_INDEX_LABEL]
    (action,) = core.plan_stateful_set(sts, [pod], now=NOW).actions
    assert (action.kind, action.name) == ("relabel", "web-0")
    assert action.pod == {core.POD_NAME_LABEL: "web-0", core.POD_INDEX_LABEL: "0"}


def test_set_being_deleted_only_reports_status() -> None:
    sts = make_sts()
    sts["metadata"]["deletionTimestamp"] = "2026-11-27T08:00:00Z"
    plan = core.plan_stateful_set(sts, [make_pod(sts, 0)], now=NOW)
    assert plan.actions == ()
    assert plan.status["replicas"] == 1


# ------------------------------------------------------------------ updates

def old_pods(old: dict, states: dict[int, str]) -> list[dict]:
    return [make_pod(old, o, state=s) for o, s in states.items()]


def rolled(partition: int = 0, max_unavailable: Any = None, strategy: str = "RollingUpdate",
           **kw: Any) -> tuple[dict, dict]:
    old = make_sts(**kw)
    rolling: dict[str, Any] = {"partition": partition}
    if max_unavailable is not None:
        rolling["maxUnavailable"] = max_unavailable
    update = {"type": strategy, "rollingUpdate": rolling} if strategy == "RollingUpdate" else {"type": strategy}
    new = make_sts(image="v2", strategy=update,
                   status={"currentRevision": core.revision_name(old)}, **kw)
    return old, new


def test_rolling_update_replaces_the_highest_ordinal_first() -> None:
    old, new = rolled()
    pods = old_pods(old, {0: "ready", 1: "ready", 2: "ready"})
    plan = core.plan_stateful_set(new, pods, now=NOW)
    assert actions(plan) == [("delete", "web-2")]
    assert plan.status["currentReplicas"] == 2  # upstream counts the deleted pod out at once


def test_rolling_update_recreates_at_the_update_revision_and_waits_for_it() -> None:
    old, new = rolled()
    pods = old_pods(old, {0: "ready", 1: "ready"})
    (create,) = core.plan_stateful_set(new, pods, now=NOW).actions
    assert create.kind == "create" and create.name == "web-2"
    assert create.pod is not None
    assert create.pod["metadata"]["labels"][core.REVISION_LABEL] == core.revision_name(new)
    assert create.pod["spec"]["containers"][0]["image"] == "v2"
    pods.append(make_pod(new, 2, state="running"))
    assert actions(core.plan_stateful_set(new, pods, now=NOW)) == []
    pods[2] = make_pod(new, 2)
    assert actions(core.plan_stateful_set(new, pods, now=NOW)) == [("delete", "web-1")]


def test_partition_keeps_lower_ordinals_at_the_current_revision() -> None:
    old, new = rolled(partition=2)
    pods = [*old_pods(old, {0: "ready", 1: "ready"}), make_pod(new, 2)]
    plan = core.plan_stateful_set(new, pods, now=NOW)
    assert actions(plan) == []
    assert plan.status["currentRevision"] == core.revision_name(old)
    assert plan.status["updatedReplicas"] == 1


def test_missing_pod_below_the_partition_is_recreated_from_the_current_template() -> None:
    old, new = rolled(partition=2)
    pods = [make_pod(old, 0), make_pod(new, 2)]
    plan = core.plan_stateful_set(new, pods, now=NOW,
                                  current_template=core.template_from_pod(pods[0]))
    (create,) = plan.actions
    assert create.name == "web-1"
    assert create.pod is not None
    assert create.pod["metadata"]["labels"][core.REVISION_LABEL] == core.revision_name(old)
    assert create.pod["spec"]["containers"][0]["image"] == "serve_hostname"


def test_on_delete_never_replaces_pods_itself() -> None:
    old, new = rolled(strategy="OnDelete")
    pods = old_pods(old, {0: "ready", 1: "ready", 2: "ready"})
    plan = core.plan_stateful_set(new, pods, now=NOW)
    assert actions(plan) == []
    assert plan.status["currentRevision"] == core.revision_name(old)


def test_max_unavailable_replaces_several_pods_at_once() -> None:
    old, new = rolled(max_unavailable=2)
    pods = old_pods(old, {0: "ready", 1: "ready", 2: "ready"})
    assert actions(core.plan_stateful_set(new, pods, now=NOW)) == [("delete", "web-2"), ("delete", "web-1")]


def test_max_unavailable_counts_pods_already_down() -> None:
    # Parallel: under OrderedReady the unready pod would block everything before the update step.
    old, new = rolled(max_unavailable=2, policy="Parallel")
    pods = [*old_pods(old, {0: "ready", 1: "ready"}), make_pod(new, 2, state="running")]
    assert actions(core.plan_stateful_set(new, pods, now=NOW)) == [("delete", "web-1")]


# ------------------------------------------------------------------- status

def test_status_counts_pods_and_completes_the_rollout() -> None:
    old, new = rolled()
    mixed = [make_pod(old, 0), make_pod(new, 1, state="running"), make_pod(new, 2)]
    status = core.plan_stateful_set(new, mixed, now=NOW).status
    assert status == {"observedGeneration": 4, "replicas": 3, "readyReplicas": 2, "currentReplicas": 1,
                      "updatedReplicas": 2, "availableReplicas": 2,
                      "currentRevision": core.revision_name(old), "updateRevision": core.revision_name(new),
                      "collisionCount": 0}
    done = [make_pod(new, 0), make_pod(new, 1), make_pod(new, 2)]
    status = core.plan_stateful_set(new, done, now=NOW).status
    assert status["currentRevision"] == status["updateRevision"] == core.revision_name(new)
    assert status["currentReplicas"] == 3


def test_min_ready_seconds_holds_the_next_pod_and_asks_to_look_again() -> None:
    sts = make_sts(min_ready=30)
    pods = [make_pod(sts, 0, ready_since=NOW - dt.timedelta(seconds=10))]
    plan = core.plan_stateful_set(sts, pods, now=NOW)
    assert actions(plan) == []
    assert plan.status["readyReplicas"] == 1 and plan.status["availableReplicas"] == 0
    assert plan.requeue_after == pytest.approx(20)
    later = core.plan_stateful_set(sts, pods, now=NOW + dt.timedelta(seconds=21))
    assert actions(later) == [("create", "web-1")]


@pytest.mark.parametrize(("status", "differs"), [
    ({}, True),
    ({"replicas": 0, "readyReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0, "availableReplicas": 0,
      "observedGeneration": 4, "collisionCount": 0}, False),
    ({"observedGeneration": 3}, True),
])
def test_status_differs_only_when_a_field_changes(status: dict, differs: bool) -> None:
    sts = make_sts()
    sts["status"] = {**status}
    plan = core.plan_stateful_set(sts, [], now=NOW)
    wanted = {k: v for k, v in plan.status.items() if k not in ("currentRevision", "updateRevision")}
    sts["status"].update(currentRevision=plan.status["currentRevision"],
                         updateRevision=plan.status["updateRevision"])
    assert core.status_differs(sts, wanted) is differs


# -------------------------------------------------------------------- claim

def test_claim_pods_adopts_orphans_and_releases_pods_the_selector_left() -> None:
    sts = make_sts()
    owned = make_pod(sts, 0)
    relabelled = make_pod(sts, 1)
    relabelled["metadata"]["labels"]["app"] = "other"
    orphan = make_pod(sts, 2)
    orphan["metadata"]["ownerReferences"] = []
    foreign = make_pod(sts, 3)
    foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    stranger = make_pod(make_sts(name="db"), 0)
    stranger["metadata"]["ownerReferences"] = []
    claim = core.claim_pods(sts, [owned, relabelled, orphan, foreign, stranger],
                            lambda labels: labels.get("app") == "web")
    assert [p["metadata"]["name"] for p in claim.owned] == ["web-0"]
    assert [p["metadata"]["name"] for p in claim.release] == ["web-1"]
    assert [p["metadata"]["name"] for p in claim.adopt] == ["web-2"]
