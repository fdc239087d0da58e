"""The Job controller's decisions on plain objects: pods to create, counting through the
tracking finalizer, back-off, the terminal conditions, suspend, Indexed jobs."""
from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from svcnet.core import job as core
from svcnet.core.job_labels import COMPLETION_INDEX, TRACKING_FINALIZER

NOW = dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.UTC)
STAMP = "2026-12-07T15:00:00Z"
_uids = itertools.count()


def make_job(**spec: Any) -> dict[str, Any]:
    base = {"completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
            "suspend": False, "podReplacementPolicy": "TerminatingOrFailed",
            "template": {"metadata": {"labels": {"job-name": "pi"}},
                         "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    base.update(spec)
    status = base.pop("status", {})
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"}, "spec": base, "status": status}


def make_pod(phase: str = "Running", *, finalizer: bool = True, index: int | None = None,
             finished: str = "2026-12-07T14:59:00Z", deleting: bool = False, restarts: int = 0) -> dict[str, Any]:
    uid = f"pod-{next(_uids)}"
    md: dict[str, Any] = {"name": f"pi-{uid}", "uid": uid, "namespace": "default",
                          "finalizers": [TRACKING_FINALIZER] if finalizer else []}
    if index is not None:
        md["annotations"] = {COMPLETION_INDEX: str(index)}
    if deleting:
        md["deletionTimestamp"] = STAMP
    state = {"terminated": {"finishedAt": finished}} if phase in ("Succeeded", "Failed") else {"running": {}}
    return {"metadata": md, "status": {"phase": phase, "containerStatuses": [
        {"name": "c", "restartCount": restarts, "state": state}]}}


def types(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions") or []}


def test_a_new_job_gets_one_pod_with_owner_finalizer_and_start_time() -> None:
    plan = core.plan_job(make_job(), [], now=NOW)
    (pod,) = plan.create
    assert pod["metadata"]["generateName"] == "pi-"
    assert pod["metadata"]["finalizers"] == [TRACKING_FINALIZER]
    assert pod["metadata"]["labels"] == {"job-name": "pi"}
    (ref,) = pod["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("Job", "pi", "job-uid", True)
    assert plan.status["startTime"] == STAMP
    assert plan.status["active"] == 1


def test_parallelism_is_capped_by_the_completions_left() -> None:
    job = make_job(completions=5, parallelism=3, status={"succeeded": 3, "startTime": STAMP})
    assert len(core.plan_job(job, [], now=NOW).create) == 2


def test_a_succeeded_pod_is_recorded_uncounted_then_counted_once_its_finalizer_is_gone() -> None:
    job = make_job(status={"startTime": STAMP})
    pod = make_pod("Succeeded")
    first = core.plan_job(job, [pod], now=NOW)
    assert first.status["uncountedTerminatedPods"] == {"succeeded": [pod["metadata"]["uid"]]}
    assert first.status["succeeded"] == 0
    assert first.remove_finalizer == [pod["metadata"]["name"]]
    assert "Complete" not in types(first.status)
    assert types(first.status) == {"SuccessCriteriaMet": "True"}

    job["status"] = first.status
    pod["metadata"]["finalizers"] = []
    second = core.plan_job(job, [pod], now=NOW)
    assert second.status["succeeded"] == 1
    assert second.status["uncountedTerminatedPods"] == {}
    assert types(second.status) == {"SuccessCriteriaMet": "True", "Complete": "True"}
    complete = next(c for c in second.status["conditions"] if c["type"] == "Complete")
    assert (complete["reason"], complete["message"]) == ("CompletionsReached",
                                                         "Reached expected number of succeeded pods")
    assert second.status["completionTime"] == STAMP
    assert second.status["active"] == 0
    assert not second.create


def test_failures_beyond_backoff_limit_fail_the_job_through_failure_target() -> None:
    job = make_job(backoffLimit=1, status={"startTime": STAMP, "failed": 1})
    failed = make_pod("Failed")
    first = core.plan_job(job, [failed], now=NOW)
    assert types(first.status) == {"FailureTarget": "True"}
    assert first.remove_finalizer == [failed["metadata"]["name"]]
    job["status"] = first.status
    failed["metadata"]["finalizers"] = []
    second = core.plan_job(job, [failed], now=NOW)
    assert second.status["failed"] == 2
    assert types(second.status) == {"FailureTarget": "True", "Failed": "True"}
    cond = next(c for c in second.status["conditions"] if c["type"] == "Failed")
    assert (cond["reason"], cond["message"]) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert "completionTime" not in second.status
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in second.events


def test_a_failure_delays_the_replacement_by_the_pod_backoff() -> None:
    job = make_job(status={"startTime": STAMP, "failed": 1})
    failed = make_pod("Failed", finalizer=False, finished="2026-12-07T14:59:55Z")
    plan = core.plan_job(job, [failed], now=NOW)
    assert plan.create == []
    assert plan.requeue_after == 5.0  # 10s back-off, 5s of it gone
    later = core.plan_job(job, [failed], now=NOW + dt.timedelta(seconds=5))
    assert len(later.create) == 1


def test_on_failure_restarts_count_against_the_backoff_limit() -> None:
    job = make_job(backoffLimit=2, status={"startTime": STAMP})
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    plan = core.plan_job(job, [make_pod("Running", restarts=2)], now=NOW)
    assert types(plan.status) == {"FailureTarget": "True"}
    assert len(plan.delete) == 1


def test_active_deadline_fails_the_job_and_deletes_its_pods() -> None:
    job = make_job(activeDeadlineSeconds=30, status={"startTime": "2026-12-07T14:59:00Z"})
    running = make_pod("Running")
    plan = core.plan_job(job, [running], now=NOW)
    assert plan.delete == [running["metadata"]["name"]]
    assert types(plan.status) == {"FailureTarget": "True"}
    target = plan.status["conditions"][0]
    assert target["reason"] == "DeadlineExceeded"


def test_deadline_not_reached_asks_to_look_again_then() -> None:
    job = make_job(activeDeadlineSeconds=90, status={"startTime": "2026-12-07T14:59:00Z"})
    plan = core.plan_job(job, [make_pod("Running")], now=NOW)
    assert plan.requeue_after == 30.0


def test_suspend_deletes_active_pods_and_clears_start_time_and_resume_restarts() -> None:
    job = make_job(suspend=True, status={"startTime": STAMP})
    running = make_pod("Running")
    plan = core.plan_job(job, [running], now=NOW)
    assert plan.delete == [running["metadata"]["name"]]
    assert "startTime" not in plan.status
    assert types(plan.status) == {"Suspended": "True"}
    job["status"] = plan.status
    job["spec"]["suspend"] = False
    resumed = core.plan_job(job, [], now=NOW + dt.timedelta(minutes=1))
    assert types(resumed.status) == {"Suspended": "False"}
    assert resumed.status["startTime"] == "2026-12-07T15:01:00Z"
    assert len(resumed.create) == 1


def test_indexed_job_creates_one_pod_per_missing_index_with_hostname_and_env() -> None:
    job = make_job(completionMode="Indexed", completions=3, parallelism=2,
                   status={"startTime": STAMP, "completedIndexes": "0"})
    plan = core.plan_job(job, [], now=NOW)
    assert [p["metadata"]["annotations"][COMPLETION_INDEX] for p in plan.create] == ["1", "2"]
    pod = plan.create[0]
    assert pod["metadata"]["labels"][COMPLETION_INDEX] == "1"
    assert pod["metadata"]["generateName"] == "pi-1-"
    assert pod["spec"]["hostname"] == "pi-1"
    env = pod["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "JOB_COMPLETION_INDEX"
    assert env[0]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{COMPLETION_INDEX}']"


def test_indexed_job_counts_completed_indexes() -> None:
    job = make_job(completionMode="Indexed", completions=4, parallelism=4, status={"startTime": STAMP})
    pods = [make_pod("Succeeded", index=i) for i in (0, 1, 2)] + [make_pod("Running", index=3)]
    plan = core.plan_job(job, pods, now=NOW)
    assert plan.status["completedIndexes"] == "0-2"
    assert plan.status["succeeded"] == 3
    assert plan.create == []


def test_work_queue_job_completes_when_one_pod_succeeded_and_none_runs() -> None:
    job = make_job(parallelism=2, status={"startTime": STAMP, "succeeded": 1})
    job["spec"].pop("completions")
    done = make_pod("Succeeded", finalizer=False)
    plan = core.plan_job(job, [done, make_pod("Running")], now=NOW)
    assert plan.create == [] and plan.delete == []  # no new pod once one succeeded
    assert "SuccessCriteriaMet" not in types(plan.status)
    finished = core.plan_job(job, [done], now=NOW)
    assert types(finished.status) == {"SuccessCriteriaMet": "True", "Complete": "True"}


def test_deleted_pod_counts_as_failed_with_terminating_or_failed() -> None:
    job = make_job(status={"startTime": STAMP})
    deleting = make_pod("Running", deleting=True)
    plan = core.plan_job(job, [deleting], now=NOW)
    assert plan.status["uncountedTerminatedPods"] == {"failed": [deleting["metadata"]["uid"]]}
    assert plan.create == [] and plan.requeue_after == 10.0  # replaced after the failure back-off


def test_with_replacement_policy_failed_a_terminating_pod_is_waited_for() -> None:
    job = make_job(podReplacementPolicy="Failed", status={"startTime": STAMP})
    plan = core.plan_job(job, [make_pod("Running", deleting=True)], now=NOW)
    assert plan.create == []
    assert plan.status["terminating"] == 1


def test_index_text_format() -> None:
    assert core.format_indexes([7, 1, 3, 4, 5]) == "1,3-5,7"
    assert core.format_indexes([1, 2]) == "1,2"
    assert core.parse_indexes("1,3-5,7") == {1, 3, 4, 5, 7}
    assert core.parse_indexes("0-9", completions=3) == {0, 1, 2}


def test_the_backoff_doubles_per_failure_up_to_ten_minutes() -> None:
    job = make_job(backoffLimit=20, status={"startTime": STAMP, "failed": 8})
    failed = [make_pod("Failed", finalizer=False, finished=f"2026-12-07T14:5{i}:00Z") for i in range(2)]
    assert core.plan_job(job, failed, now=dt.datetime(2026, 12, 7, 14, 51, tzinfo=dt.UTC)).requeue_after == 20.0
    many = [make_pod("Failed", finalizer=False, finished="2026-12-07T15:00:00Z") for _ in range(8)]
    assert core.plan_job(job, many, now=NOW).requeue_after == 600.0
