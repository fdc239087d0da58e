"""What a CronJob should do now: kube-controller-manager's CronJob controller (pkg/controller/cronjob, v2), pure.

`plan_cronjob(cj, jobs, now=..., tz=...)` looks at a CronJob and the Jobs it owns and returns:

- status.active reconciled with the Jobs (finished ones leave it, missing ones are dropped),
  lastSuccessfulTime from the latest Job that completed;
- the Job to create for the most recent schedule time that has passed and was not yet
  run — named `<cronjob>-<scheduled time in minutes since the epoch>` and annotated with
  the scheduled time — unless the CronJob is suspended, the time is older than
  startingDeadlineSeconds, or concurrencyPolicy Forbid finds a Job still active
  (Replace deletes the active ones first);
- finished Jobs beyond successfulJobsHistoryLimit/failedJobsHistoryLimit, oldest first;
- when to look again: just after the next schedule time.
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import meta
from svcnet.api.objects import (
    metadata_of,
    name_of,
    namespace_of,
    new_controller_ref,
    resource_version,
    spec_of,
    status_of,
    uid_of,
)
from svcnet.core import job as jobcore
from svcnet.core.cronjob_schedule import Schedule
from svcnet.core.job_labels import CRONJOB_SCHEDULED_TIMESTAMP

Obj = dict[str, Any]

NEXT_SYNC_SLACK = 0.1  # seconds after the schedule time, as upstream's nextScheduleTimeDuration adds
TOO_MANY_MISSED = 100


@dataclass
class CronJobPlan:
    create: Obj | None = None
    delete: list[str] = field(default_factory=list)  # Jobs, deleted with background propagation
    status: Obj = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


def job_name(cj: Obj, scheduled: dt.datetime) -> str:
    """getJobName: the CronJob's name and the scheduled time in minutes since the epoch."""
    return f"{name_of(cj)}-{int(scheduled.timestamp()) // 60}"


def object_reference(job: Obj) -> Obj:
    """The ObjectReference status.active holds (ref.GetReference of the Job)."""
    return {"kind": "Job", "namespace": namespace_of(job), "name": name_of(job), "uid": uid_of(job),
            "apiVersion": "batch/v1", "resourceVersion": resource_version(job)}


def job_from_template(cj: Obj, scheduled: dt.datetime, tz: dt.tzinfo | None = None) -> Obj:
    """getJobFromTemplate2: the job template's metadata and spec, owned by the CronJob."""
    template = copy.deepcopy(spec_of(cj).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[CRONJOB_SCHEDULED_TIMESTAMP] = _rfc3339_in(scheduled, tz)
    md: Obj = {"name": job_name(cj, scheduled), "namespace": namespace_of(cj),
               "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
               "ownerReferences": [new_controller_ref(cj, "batch/v1", "CronJob")]}
    if not md["labels"]:
        del md["labels"]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": md, "spec": template.get("spec") or {}}


def _rfc3339_in(when: dt.datetime, tz: dt.tzinfo | None) -> str:
    local = when.astimezone(tz or dt.UTC)
    if local.utcoffset() == dt.timedelta(0):
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    return local.isoformat(timespec="seconds")


# ---------------------------------------------------------------- schedule times

def most_recent_schedule(cj: Obj, now: dt.datetime, schedule: Schedule,
                         tz: dt.tzinfo | None) -> tuple[dt.datetime | None, int]:
    """(the latest schedule time in (earliest, now], how many were missed), None when none passed.

    earliest is lastScheduleTime, else the creation time, moved up to now - startingDeadlineSeconds.
    """
    status, spec = status_of(cj), spec_of(cj)
    earliest = (meta.parse_time_or_none(status.get("lastScheduleTime"))
                or meta.parse_time_or_none(metadata_of(cj).get("creationTimestamp")) or now)
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - dt.timedelta(seconds=int(deadline)))
    latest, missed = None, 0
    t = schedule.next_after(earliest, tz)
    while t is not None and t <= now:
        latest, missed = t, missed + 1
        if missed > 10_000:  # a schedule missed for ages: upstream estimates; the latest suffices here
            t = _skip_to_near(schedule, t, now, tz)
            continue
        t = schedule.next_after(t, tz)
    return latest, missed


def _skip_to_near(schedule: Schedule, t: dt.datetime, now: dt.datetime, tz: dt.tzinfo | None) -> dt.datetime | None:
    """Jump close to now (a day back), then step: the count stays above the warning threshold."""
    return schedule.next_after(max(t, now - dt.timedelta(days=1)), tz)


def next_schedule_delay(cj: Obj, now: dt.datetime, schedule: Schedule, tz: dt.tzinfo | None) -> float | None:
    """Seconds until just after the next schedule time (None when the schedule never runs again)."""
    latest, _ = most_recent_schedule(cj, now, schedule, tz)
    nxt = schedule.next_after(latest or now, tz)
    if nxt is None:
        return None
    while nxt <= now:
        nxt = schedule.next_after(nxt, tz)
        if nxt is None:
            return None
    return (nxt - now).total_seconds() + NEXT_SYNC_SLACK


# ----------------------------------------------------------------------- plan

def _in_active(cj_status: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in cj_status.get("active") or [])


def _job_succeeded(job: Obj) -> bool:
    return jobcore.condition_true(job, jobcore.COMPLETE)


def reconcile_active(cj: Obj, jobs: list[Obj], status: Obj, plan: CronJobPlan) -> None:
    """Finished Jobs leave status.active, vanished ones too; lastSuccessfulTime follows completions."""
    existing = {uid_of(j) for j in jobs}
    for job in jobs:
        found = _in_active(status, uid_of(job))
        if not found and not jobcore.is_finished(job):
            plan.events.append(("Warning", "UnexpectedJob",
                                f"Saw a job that the controller did not create or forgot: {name_of(job)}"))
        elif found and jobcore.is_finished(job):
            ctype = jobcore.COMPLETE if _job_succeeded(job) else jobcore.FAILED
            status["active"] = [r for r in status.get("active") or [] if r.get("uid") != uid_of(job)]
            plan.events.append(("Normal", "SawCompletedJob", f"Saw completed job: {name_of(job)}, condition: {ctype}"))
        elif _job_succeeded(job):
            done = meta.parse_time_or_none(status_of(job).get("completionTime"))
            last = meta.parse_time_or_none(status.get("lastSuccessfulTime"))
            if done is not None and (last is None or done > last):
                status["lastSuccessfulTime"] = meta.rfc3339(done)
    for ref in list(status.get("active") or []):
        if ref.get("uid") not in existing:
            status["active"] = [r for r in status["active"] if r.get("uid") != ref.get("uid")]
            plan.events.append(("Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"))
    if not status.get("active"):
        status.pop("active", None)


def plan_cronjob(cj: Obj, jobs: Iterable[Obj], *, now: dt.datetime, schedule: Schedule,
                 tz: dt.tzinfo | None = None) -> CronJobPlan:
    """The writes for one sync of a CronJob whose schedule (and time zone) parsed."""
    jobs = list(jobs)
    plan = CronJobPlan()
    status = copy.deepcopy(status_of(cj))
    reconcile_active(cj, jobs, status, plan)
    plan.status = status
    if metadata_of(cj).get("deletionTimestamp"):
        return plan
    _schedule_next(cj, jobs, now, schedule, tz, plan)
    _cleanup_history(cj, jobs, plan)
    return plan


def _schedule_next(cj: Obj, jobs: list[Obj], now: dt.datetime, schedule: Schedule,
                   tz: dt.tzinfo | None, plan: CronJobPlan) -> None:
    spec, status = spec_of(cj), plan.status
    if spec.get("suspend"):
        return
    plan.requeue_after = next_schedule_delay(cj, now, schedule, tz)
    scheduled, missed = most_recent_schedule(cj, now, schedule, tz)
    if scheduled is None:
        return
    if missed > TOO_MANY_MISSED:
        plan.events.append(("Warning", "TooManyMissedTimes",
                            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                            "or check clock skew"))
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and scheduled + dt.timedelta(seconds=int(deadline)) < now:
        plan.events.append(("Warning", "MissSchedule",
                            f"Missed scheduled time to start a job: {meta.rfc3339(scheduled)}"))
        return
    name = job_name(cj, scheduled)
    last = meta.parse_time_or_none(status.get("lastScheduleTime"))
    if any(ref.get("name") == name for ref in status.get("active") or []) or last == scheduled:
        return
    policy = spec.get("concurrencyPolicy") or "Allow"
    active = status.get("active") or []
    if policy == "Forbid" and active:
        plan.events.append(("Normal", "JobAlreadyActive", "Not starting job because prior execution is running "
                            "and concurrency policy is Forbid"))
        return
    if policy == "Replace":
        for ref in active:
            plan.delete.append(str(ref.get("name")))
        status.pop("active", None)
    plan.create = job_from_template(cj, scheduled, tz)
    status["lastScheduleTime"] = meta.rfc3339(scheduled)


def record_created(plan: CronJobPlan, job: Obj) -> None:
    """After the create: the Job joins status.active (the name is final only then)."""
    plan.status.setdefault("active", []).append(object_reference(job))


def _cleanup_history(cj: Obj, jobs: list[Obj], plan: CronJobPlan) -> None:
    """Finished Jobs beyond the history limits go, oldest (by start time) first."""
    spec = spec_of(cj)
    for limit_key, finished in (("successfulJobsHistoryLimit", _job_succeeded),
                                ("failedJobsHistoryLimit", lambda j: jobcore.condition_true(j, jobcore.FAILED))):
        limit = spec.get(limit_key)
        if limit is None:
            continue
        done = [j for j in jobs if finished(j) and name_of(j) not in plan.delete]
        done.sort(key=_start_key)
        for job in done[:max(0, len(done) - int(limit))]:
            plan.delete.append(name_of(job))
            plan.events.append(("Normal", "SuccessfulDelete", f"Deleted job {name_of(job)}"))


def _start_key(job: Obj) -> tuple[int, str, str]:
    """byJobStartTime: jobs without a start time sort first, then by start time, then by name."""
    start = status_of(job).get("startTime")
    return (0 if start is None else 1, str(start or ""), name_of(job))


def owned_jobs(cj: Obj, jobs: Iterable[Obj]) -> list[Obj]:
    """The Jobs whose controller reference is this CronJob."""
    uid = uid_of(cj)
    out = []
    for job in jobs:
        for ref in metadata_of(job).get("ownerReferences") or []:
            if ref.get("controller") and ref.get("uid") == uid:
                out.append(job)
    return out

