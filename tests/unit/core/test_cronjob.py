"""The CronJob controller's decisions on plain objects: which schedule time to run, job
names, missed starts, concurrency policies, active list and history limits."""
from __future__ import annotations

import datetime as dt
from typing import Any

from svcnet.core import cronjob as core
from svcnet.core.cronjob_schedule import parse
from svcnet.core.job_labels import CRONJOB_SCHEDULED_TIMESTAMP

CREATED = "2026-12-07T15:00:30Z"
NOW = dt.datetime(2026, 12, 7, 15, 5, 10, tzinfo=dt.UTC)


def make_cj(schedule: str = "* * * * *", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    base = {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"app": "x"}},
                            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                           "containers": [{"name": "c", "image": "busybox"}]}}}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "namespace": "default", "uid": "cj-uid", "creationTimestamp": CREATED},
            "spec": base, "status": status or {}}


def make_job(name: str, uid: str, condition: str | None = None, start: str = "2026-12-07T15:00:00Z",
             completion: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": start}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True"}]
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "7",
                         "ownerReferences": [{"kind": "CronJob", "uid": "cj-uid", "controller": True}]},
            "status": status}


def plan(cj: dict[str, Any], jobs: list[dict[str, Any]] | None = None, now: dt.datetime = NOW) -> core.CronJobPlan:
    return core.plan_cronjob(cj, jobs or [], now=now, schedule=parse(cj["spec"]["schedule"]))


def test_the_most_recent_missed_time_gets_a_job_named_by_its_minute() -> None:
    p = plan(make_cj())
    assert p.create is not None
    scheduled = dt.datetime(2026, 12, 7, 15, 5, tzinfo=dt.UTC)
    assert p.create["metadata"]["name"] == f"hello-{int(scheduled.timestamp()) // 60}"
    assert p.create["metadata"]["annotations"] == {CRONJOB_SCHEDULED_TIMESTAMP: "2026-12-07T15:05:00Z"}
    assert p.create["metadata"]["labels"] == {"app": "x"}
    (ref,) = p.create["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("CronJob", "cj-uid", True)
    assert p.status["lastScheduleTime"] == "2026-12-07T15:05:00Z"
    assert p.requeue_after is not None and abs(p.requeue_after - 50.1) < 1e-6


def test_nothing_before_the_first_schedule_time() -> None:
    p = plan(make_cj("@hourly"))
    assert p.create is None
    assert p.requeue_after is not None and abs(p.requeue_after - (54 * 60 + 50 + 0.1)) < 1e-6


def test_a_time_already_run_is_not_run_again() -> None:
    cj = make_cj(status={"lastScheduleTime": "2026-12-07T15:05:00Z"})
    assert plan(cj).create is None


def test_a_start_older_than_the_starting_deadline_is_missed() -> None:
    cj = make_cj("0 * * * *", startingDeadlineSeconds=30,
                 status={"lastScheduleTime": "2026-12-07T14:00:00Z"})
    p = plan(cj, now=dt.datetime(2026, 12, 7, 15, 1, tzinfo=dt.UTC))
    assert p.create is None
    # the deadline window starts at 15:00:30: 15:00 is outside it, nothing in it ran
    assert not any(e[1] == "MissSchedule" for e in p.events)
    late = plan(make_cj("0 * * * *", startingDeadlineSeconds=90,
                        status={"lastScheduleTime": "2026-12-07T14:00:00Z"}),
                now=dt.datetime(2026, 12, 7, 15, 1, tzinfo=dt.UTC))
    assert late.create is not None  # 15:00 is 60s late, within 90s


def test_forbid_skips_while_a_job_runs_and_replace_deletes_it() -> None:
    running = make_job("hello-1", "j1")
    active = {"active": [core.object_reference(running)]}
    forbid = plan(make_cj(concurrencyPolicy="Forbid", status=dict(active)), [running])
    assert forbid.create is None
    assert ("Normal", "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid") in forbid.events
    replace = plan(make_cj(concurrencyPolicy="Replace", status=dict(active)), [running])
    assert replace.delete == ["hello-1"]
    assert replace.create is not None
    allow = plan(make_cj(status=dict(active)), [running])
    assert allow.delete == [] and allow.create is not None


def test_finished_jobs_leave_active_and_success_time_is_recorded() -> None:
    done = make_job("hello-1", "j1", "Complete", completion="2026-12-07T15:02:00Z")
    cj = make_cj(status={"active": [core.object_reference(done)], "lastScheduleTime": "2026-12-07T15:05:00Z"})
    first = plan(cj, [done])
    assert "active" not in first.status
    assert ("Normal", "SawCompletedJob", "Saw completed job: hello-1, condition: Complete") in first.events
    cj["status"] = first.status
    second = plan(cj, [done])
    assert second.status["lastSuccessfulTime"] == "2026-12-07T15:02:00Z"


def test_a_vanished_active_job_is_dropped() -> None:
    gone = make_job("hello-1", "j1")
    cj = make_cj(status={"active": [core.object_reference(gone)], "lastScheduleTime": "2026-12-07T15:05:00Z"})
    p = plan(cj, [])
    assert "active" not in p.status
    assert ("Normal", "MissingJob", "Active job went missing: hello-1") in p.events


def test_history_limits_delete_the_oldest_finished_jobs() -> None:
    jobs = [make_job(f"hello-{i}", f"s{i}", "Complete", start=f"2026-12-07T15:0{i}:00Z") for i in range(5)]
    jobs += [make_job(f"hello-f{i}", f"f{i}", "Failed", start=f"2026-12-07T15:0{i}:00Z") for i in range(2)]
    cj = make_cj(status={"lastScheduleTime": "2026-12-07T15:05:00Z"})
    p = plan(cj, jobs)
    assert sorted(p.delete) == ["hello-0", "hello-1", "hello-f0"]


def test_suspended_cronjob_creates_nothing() -> None:
    p = plan(make_cj(suspend=True))
    assert p.create is None and p.requeue_after is None


def test_scheduled_timestamp_is_written_in_the_cronjob_time_zone() -> None:
    import zoneinfo
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    job = core.job_from_template(make_cj(), dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC), paris)
    assert job["metadata"]["annotations"][CRONJOB_SCHEDULED_TIMESTAMP] == "2026-12-07T09:00:00+01:00"
