"""What a Job's pods and status should be: kube-controller-manager's job controller (pkg/controller/job), pure.

`plan_job(job, pods, now=...)` looks at a Job and the pods it owns and returns
the writes to make now, in upstream's order:

- Pods are tracked with the `batch.kubernetes.io/job-tracking` finalizer: a pod
  that finished is first recorded in status.uncountedTerminatedPods, then its
  finalizer is removed, and only then is it moved into status.succeeded/failed.
  A crash between the steps neither loses nor double-counts a pod.
- A pod counts as failed when its phase is Failed, or when it is being deleted
  before it succeeded and podReplacementPolicy is TerminatingOrFailed.
- Up to spec.parallelism pods run at once, never more than the completions left
  (NonIndexed), or one per index not yet succeeded (Indexed: pods carry their
  completion index as annotation and label, and hostname `<job>-<index>`).
- After a failure, new pods wait 10s, doubled per failure since the last
  success, at most 10 minutes (the pod failure back-off).
- The job fails once failures exceed spec.backoffLimit (with restartPolicy
  OnFailure, container restarts count), or when it ran longer than
  activeDeadlineSeconds: FailureTarget first, remaining pods deleted, then
  Failed once no pod is left to account for. It succeeds when enough pods (or
  every index) succeeded: SuccessCriteriaMet, then Complete with completionTime.
- spec.suspend deletes the active pods, clears startTime and sets the Suspended
  condition; resuming restarts the clock.
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import meta
from svcnet.api.objects import (
    annotations_of,
    finalizers_of,
    is_being_deleted,
    is_pod_ready,
    metadata_of,
    name_of,
    new_controller_ref,
    spec_of,
    status_of,
    uid_of,
)
from svcnet.core.job_labels import COMPLETION_INDEX, TRACKING_FINALIZER

Obj = dict[str, Any]

POD_FAILURE_BACKOFF = 10.0  # seconds: DefaultJobPodFailureBackOff
MAX_POD_FAILURE_BACKOFF = 600.0  # MaxJobPodFailureBackOff (10 minutes)
MAX_INDEXED_HOSTNAME = 63

# Condition types, reasons and messages as upstream's job controller writes them.
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
JOB_SUSPENDED = ("JobSuspended", "Job suspended")
JOB_RESUMED = ("JobResumed", "Job resumed")


# ----------------------------------------------------------------- pod states

def is_indexed(job: Obj) -> bool:
    return spec_of(job).get("completionMode") == "Indexed"


def completion_index(pod: Obj) -> int | None:
    """The pod's completion index from its annotation (or label), None when missing or bad."""
    value = annotations_of(pod).get(COMPLETION_INDEX) or (metadata_of(pod).get("labels") or {}).get(COMPLETION_INDEX)
    try:
        index = int(str(value))
    except ValueError:
        return None
    return index if index >= 0 and str(index) == str(value) else None


def _phase(pod: Obj) -> str:
    return str(status_of(pod).get("phase") or "")


def only_replace_failed(job: Obj) -> bool:
    return spec_of(job).get("podReplacementPolicy") == "Failed"


def pod_failed(job: Obj, pod: Obj) -> bool:
    """isPodFailed: phase Failed, or deleted before it succeeded (unless only Failed pods are replaced)."""
    if _phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return is_being_deleted(pod) and _phase(pod) != "Succeeded"


def pod_succeeded(pod: Obj) -> bool:
    return _phase(pod) == "Succeeded"


def pod_finished(job: Obj, pod: Obj) -> bool:
    return pod_succeeded(pod) or pod_failed(job, pod)


def pod_terminating(job: Obj, pod: Obj) -> bool:
    """Being deleted and not yet counted as finished (only with podReplacementPolicy Failed)."""
    return is_being_deleted(pod) and not pod_finished(job, pod)


def pod_active(job: Obj, pod: Obj) -> bool:
    return not pod_finished(job, pod) and not is_being_deleted(pod)


def _finish_time(pod: Obj) -> dt.datetime | None:
    """When the pod's last container ended (what the back-off counts from)."""
    times = []
    for cs in status_of(pod).get("containerStatuses") or []:
        terminated = ((cs or {}).get("state") or {}).get("terminated") or {}
        parsed = meta.parse_time_or_none(terminated.get("finishedAt"))
        if parsed is not None:
            times.append(parsed)
    if times:
        return max(times)
    return meta.parse_time_or_none(metadata_of(pod).get("deletionTimestamp"))


def _restarts(pod: Obj) -> int:
    statuses = [*(status_of(pod).get("initContainerStatuses") or []), *(status_of(pod).get("containerStatuses") or [])]
    return sum(int((cs or {}).get("restartCount") or 0) for cs in statuses)


# ----------------------------------------------------------- index sets as text

def parse_indexes(text: str | None, completions: int | None = None) -> set[int]:
    """"1,3-5,7" -> {1, 3, 4, 5, 7}; intervals beyond completions are dropped, bad parts ignored."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            continue
        if completions is not None:
            hi = min(hi, completions - 1)
        out.update(range(lo, hi + 1))
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """Sorted, with runs of three or more as first-last (upstream's completedIndexes format)."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}-{ordered[j]}")
        else:
            parts.extend(str(n) for n in ordered[i:j + 1])
        i = j + 1
    return ",".join(parts)


# ------------------------------------------------------------------- new pods

def new_pod(job: Obj, index: int | None) -> Obj:
    """A pod from the job's template, owned by the job and carrying the tracking finalizer."""
    template = copy.deepcopy(spec_of(job).get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    pod_spec = template.get("spec") or {}
    name = name_of(job)
    generate = f"{name}-"
    if index is not None:
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        generate = f"{name}-{index}-"
        hostname = f"{name}-{index}"
        if not pod_spec.get("hostname") and len(hostname) <= MAX_INDEXED_HOSTNAME:
            pod_spec["hostname"] = hostname
        _add_completion_index_env(pod_spec)
    md: Obj = {"generateName": generate, "namespace": metadata_of(job).get("namespace"),
               "labels": labels, "ownerReferences": [new_controller_ref(job, "batch/v1", "Job")],
               "finalizers": [*(tmeta.get("finalizers") or []), TRACKING_FINALIZER]}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": pod_spec}


def _add_completion_index_env(pod_spec: Obj) -> None:
    """JOB_COMPLETION_INDEX from the index annotation, in every container that lacks it."""
    ref = {"name": "JOB_COMPLETION_INDEX",
           "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or []:
            env = container.setdefault("env", [])
            if not any((e or {}).get("name") == "JOB_COMPLETION_INDEX" for e in env):
                env.append(copy.deepcopy(ref))


# ----------------------------------------------------------------------- plan

@dataclass
class JobPlan:
    """What one sync writes: pods to create (with their index), delete, un-finalize, then status."""

    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    remove_finalizer: list[str] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None


def condition(job: Obj, ctype: str) -> Obj | None:
    for c in status_of(job).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def condition_true(job: Obj, ctype: str) -> bool:
    c = condition(job, ctype)
    return c is not None and c.get("status") == "True"


def is_finished(job: Obj) -> bool:
    return condition_true(job, COMPLETE) or condition_true(job, FAILED)


def finish_time(job: Obj) -> dt.datetime | None:
    """When the Complete or Failed condition became True (what ttlSecondsAfterFinished counts from)."""
    for ctype in (COMPLETE, FAILED):
        c = condition(job, ctype)
        if c is not None and c.get("status") == "True":
            return meta.parse_time_or_none(c.get("lastTransitionTime"))
    return None


def _set_condition(status: Obj, ctype: str, value: str, reason_message: tuple[str, str], now: str) -> bool:
    """Add or update a condition; True when it changed (a same-status condition is left as it is)."""
    reason, message = reason_message
    conditions = status.setdefault("conditions", [])
    for c in conditions:
        if c.get("type") == ctype:
            if c.get("status") == value:
                return False
            c.update(status=value, reason=reason, message=message, lastProbeTime=now, lastTransitionTime=now)
            return True
    conditions.append({"type": ctype, "status": value, "lastProbeTime": now, "lastTransitionTime": now,
                       "reason": reason, "message": message})
    return True


@dataclass
class _Sync:
    """The state of one sync pass, shared by the steps below."""

    job: Obj
    pods: list[Obj]
    now: dt.datetime
    status: Obj
    plan: JobPlan
    uncounted_succeeded: list[str]
    uncounted_failed: list[str]

    @property
    def stamp(self) -> str:
        return meta.rfc3339(self.now)

    def active(self) -> list[Obj]:
        return [p for p in self.pods if pod_active(self.job, p)]


def plan_job(job: Obj, pods: Iterable[Obj], *, now: dt.datetime, backoff_base: float = POD_FAILURE_BACKOFF) -> JobPlan:
    """The writes that move this Job towards its spec, given the pods it owns."""
    status = copy.deepcopy(status_of(job))
    uncounted = status.get("uncountedTerminatedPods") or {}
    s = _Sync(job, list(pods), now, status, JobPlan(),
              list(uncounted.get("succeeded") or []), list(uncounted.get("failed") or []))
    if is_finished(job):
        _track_terminated(s)
        return _finish(s)
    if status.get("startTime") is None and not spec_of(job).get("suspend"):
        status["startTime"] = s.stamp
    _track_terminated(s)
    target = _terminal_target(s)
    if target is not None:
        _wind_down(s, target)
    elif spec_of(job).get("suspend"):
        _suspend(s)
    else:
        _resume(s)
        _manage(s, backoff_base)
    return _finish(s)


def _uncounted_left(s: _Sync) -> bool:
    return bool(s.uncounted_succeeded or s.uncounted_failed)


def _track_terminated(s: _Sync) -> None:
    """Count pods whose finalizer is gone; record newly finished pods and ask for their finalizer's removal."""
    tracked = {uid_of(p) for p in s.pods if TRACKING_FINALIZER in finalizers_of(p)}
    for bucket, key in ((s.uncounted_succeeded, "succeeded"), (s.uncounted_failed, "failed")):
        done = [uid for uid in bucket if uid not in tracked]
        s.status[key] = int(s.status.get(key) or 0) + (0 if key == "succeeded" and is_indexed(s.job) else len(done))
        bucket[:] = [uid for uid in bucket if uid in tracked]
    if is_indexed(s.job):
        _count_indexes(s)
    for pod in s.pods:
        if TRACKING_FINALIZER not in finalizers_of(pod):
            continue
        uid = uid_of(pod)
        if pod_succeeded(pod) and uid not in s.uncounted_succeeded:
            s.uncounted_succeeded.append(uid)
        elif pod_failed(s.job, pod) and not pod_succeeded(pod) and uid not in s.uncounted_failed:
            s.uncounted_failed.append(uid)
        if uid in s.uncounted_succeeded or uid in s.uncounted_failed or is_finished(s.job):
            s.plan.remove_finalizer.append(name_of(pod))


def _count_indexes(s: _Sync) -> None:
    """Indexed: succeeded is the number of completed indexes, from pods that succeeded."""
    completions = spec_of(s.job).get("completions")
    done = parse_indexes(s.status.get("completedIndexes"), completions)
    for pod in s.pods:
        index = completion_index(pod)
        if pod_succeeded(pod) and index is not None and (completions is None or index < completions):
            done.add(index)
    s.status["completedIndexes"] = format_indexes(done)
    s.status["succeeded"] = len(done)


def _failures(s: _Sync) -> int:
    return int(s.status.get("failed") or 0) + len(s.uncounted_failed)


def _succeeded(s: _Sync) -> int:
    if is_indexed(s.job):
        return int(s.status.get("succeeded") or 0)
    return int(s.status.get("succeeded") or 0) + len(s.uncounted_succeeded)


def _terminal_target(s: _Sync) -> tuple[str, tuple[str, str]] | None:
    """(condition type, (reason, message)) the job is heading to, or None while it still runs."""
    if condition_true(s.job, FAILURE_TARGET):
        c = condition(s.job, FAILURE_TARGET) or {}
        return FAILED, (str(c.get("reason") or ""), str(c.get("message") or ""))
    if condition_true(s.job, SUCCESS_CRITERIA_MET):
        return COMPLETE, COMPLETIONS_REACHED
    if _failures(s) > _backoff_limit(s.job) or _past_backoff_limit_on_failure(s):
        return FAILED, BACKOFF_LIMIT_EXCEEDED
    if _past_deadline(s):
        return FAILED, DEADLINE_EXCEEDED
    if _completed(s):
        return COMPLETE, COMPLETIONS_REACHED
    return None


def _backoff_limit(job: Obj) -> int:
    limit = spec_of(job).get("backoffLimit")
    return 6 if limit is None else int(limit)


def _past_backoff_limit_on_failure(s: _Sync) -> bool:
    """With restartPolicy OnFailure the kubelet restarts containers in place: those restarts count."""
    template_spec = (spec_of(s.job).get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(_restarts(p) for p in s.active())
    limit = _backoff_limit(s.job)
    return restarts > 0 if limit == 0 else restarts >= limit


def _past_deadline(s: _Sync) -> bool:
    deadline = spec_of(s.job).get("activeDeadlineSeconds")
    start = meta.parse_time_or_none(s.status.get("startTime"))
    if deadline is None or start is None or spec_of(s.job).get("suspend"):
        return False
    return (s.now - start).total_seconds() >= int(deadline)


def _seconds_to_deadline(s: _Sync) -> float | None:
    deadline = spec_of(s.job).get("activeDeadlineSeconds")
    start = meta.parse_time_or_none(s.status.get("startTime"))
    if deadline is None or start is None:
        return None
    return max(0.0, int(deadline) - (s.now - start).total_seconds())


def _completed(s: _Sync) -> bool:
    completions = spec_of(s.job).get("completions")
    if completions is None:
        # Work-queue jobs: done once any pod succeeded and none is left running.
        return _succeeded(s) > 0 and not s.active()
    return _succeeded(s) >= int(completions)


def _wind_down(s: _Sync, target: tuple[str, tuple[str, str]]) -> None:
    """Interim condition, active pods deleted, and the terminal condition once nothing is left to count."""
    ctype, reason_message = target
    interim = SUCCESS_CRITERIA_MET if ctype == COMPLETE else FAILURE_TARGET
    _set_condition(s.status, interim, "True", reason_message, s.stamp)
    for pod in s.active():
        s.plan.delete.append(name_of(pod))
        if TRACKING_FINALIZER in finalizers_of(pod):
            if ctype == FAILED:
                s.uncounted_failed.append(uid_of(pod))
            s.plan.remove_finalizer.append(name_of(pod))
    remaining = [p for p in s.pods if TRACKING_FINALIZER in finalizers_of(p) and name_of(p) not in s.plan.delete
                 and not pod_finished(s.job, p)]
    if remaining or _uncounted_left(s) or s.plan.remove_finalizer:
        return  # the next sync, after the finalizers are gone, records the end
    _set_condition(s.status, ctype, "True", reason_message, s.stamp)
    if ctype == COMPLETE:
        s.status["completionTime"] = s.stamp
        s.plan.events.append(("Normal", "Completed", "Job completed"))
    else:
        s.plan.events.append(("Warning", reason_message[0], reason_message[1]))


def _suspend(s: _Sync) -> None:
    if _set_condition(s.status, SUSPENDED, "True", JOB_SUSPENDED, s.stamp):
        s.plan.events.append(("Normal", "Suspended", "Job suspended"))
    for pod in s.active():
        s.plan.delete.append(name_of(pod))
    s.status.pop("startTime", None)


def _resume(s: _Sync) -> None:
    if condition_true(s.job, SUSPENDED):
        _set_condition(s.status, SUSPENDED, "False", JOB_RESUMED, s.stamp)
        s.status["startTime"] = s.stamp
        s.plan.events.append(("Normal", "Resumed", "Job resumed"))
    left = _seconds_to_deadline(s)
    if left is not None:
        s.plan.requeue_after = left


def _backoff_wait(s: _Sync, base: float) -> float:
    """Seconds before the next pod may be created: 10s doubled per failure since the last success."""
    finished = sorted(((t, pod_succeeded(p)) for p in s.pods if pod_finished(s.job, p)
                       and (t := _finish_time(p)) is not None), key=lambda item: item[0])
    failures, last = 0, None
    for when, ok in finished:
        failures, last = (0, None) if ok else (failures + 1, when)
    if not failures or last is None:
        return 0.0
    delay = min(base * 2 ** (failures - 1), MAX_POD_FAILURE_BACKOFF)
    return max(0.0, delay - (s.now - last).total_seconds())


def _manage(s: _Sync, backoff_base: float) -> None:
    """Create pods up to parallelism (and the work left), or delete the excess."""
    spec = spec_of(s.job)
    parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
    active = s.active()
    if is_indexed(s.job):
        wanted = _missing_indexes(s, active)
        want_active = min(parallelism, len(wanted) + len(active))
    else:
        wanted = []
        want_active = _want_active(s, parallelism, len(active))
    if len(active) > want_active:
        # Delete the youngest/least ready first: pending before running, unready before ready.
        victims = sorted(active, key=lambda p: (_phase(p) != "Pending", is_pod_ready(p)))[:len(active) - want_active]
        s.plan.delete.extend(name_of(p) for p in victims)
        return
    missing = want_active - len(active)
    if only_replace_failed(s.job):
        # podReplacementPolicy Failed: a pod still terminating holds its place until it has failed.
        missing -= sum(1 for p in s.pods if pod_terminating(s.job, p))
    if missing <= 0:
        return
    wait = _backoff_wait(s, backoff_base)
    if wait > 0:
        s.plan.requeue_after = min(wait, s.plan.requeue_after or wait)
        return
    if is_indexed(s.job):
        s.plan.create.extend(new_pod(s.job, index) for index in wanted[:missing])
    else:
        s.plan.create.extend(new_pod(s.job, None) for _ in range(missing))


def _want_active(s: _Sync, parallelism: int, active: int) -> int:
    completions = spec_of(s.job).get("completions")
    if completions is None:
        return active if _succeeded(s) > 0 else parallelism
    return max(0, min(parallelism, int(completions) - _succeeded(s)))


def _missing_indexes(s: _Sync, active: list[Obj]) -> list[int]:
    completions = int(spec_of(s.job).get("completions") or 0)
    done = parse_indexes(s.status.get("completedIndexes"), completions)
    running = {completion_index(p) for p in active}
    return [i for i in range(completions) if i not in done and i not in running]


def _finish(s: _Sync) -> JobPlan:
    """The status every path records: counts of pods, uncounted uids, ready."""
    job = s.job
    active = [p for p in s.active() if name_of(p) not in s.plan.delete]
    s.status["active"] = len(active) + len(s.plan.create)
    s.status["ready"] = sum(1 for p in active if is_pod_ready(p))
    s.status["terminating"] = sum(1 for p in s.pods if pod_terminating(job, p))
    s.status.setdefault("failed", 0)
    s.status.setdefault("succeeded", 0)
    if is_finished(job) or any(c.get("type") in (COMPLETE, FAILED) and c.get("status") == "True"
                               for c in s.status.get("conditions") or []):
        s.status["active"] = 0
        s.status["ready"] = 0
    if is_finished(job) and not _uncounted_left(s):
        s.status["uncountedTerminatedPods"] = {}
    else:
        uncounted: Obj = {}
        if s.uncounted_succeeded:
            uncounted["succeeded"] = sorted(set(s.uncounted_succeeded))
        if s.uncounted_failed:
            uncounted["failed"] = sorted(set(s.uncounted_failed))
        s.status["uncountedTerminatedPods"] = uncounted
    s.plan.remove_finalizer = sorted(set(s.plan.remove_finalizer))
    s.plan.delete = sorted(set(s.plan.delete))
    s.plan.status = s.status
    return s.plan


def status_differs(job: Obj, status: Obj) -> bool:
    return status_of(job) != status
