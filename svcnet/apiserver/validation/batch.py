"""batch/v1 Job and CronJob validation (pkg/apis/batch/validation, Kubernetes 1.32).

Covered: the generated selector and its template labels, counts and deadlines,
completion modes, restartPolicy Never/OnFailure, podReplacementPolicy, the
immutable parts of a Job's spec; the CronJob's schedule (robfig/cron's messages),
timeZone, concurrencyPolicy, history limits and its job template. Not covered:
podFailurePolicy and successPolicy rules beyond their shape (svcnet's Job controller
does not act on them; upstream's detailed rule checks are a gap).
"""
from __future__ import annotations

import re
import zoneinfo
from typing import Any

from svcnet.api.errors import ApiError, Cause
from svcnet.api.selectors import label_selector_from_object
from svcnet.core import cronjob_schedule
from svcnet.core.job_labels import CONTROLLER_UID, JOB_NAME, LEGACY_CONTROLLER_UID, LEGACY_JOB_NAME

from .fields import (
    GoLiteral,
    Obj,
    as_dict,
    as_str,
    go_label_selector,
    go_string_map,
    immutable,
    int_field,
    invalid,
    nonnegative,
    not_supported,
    required,
    semantic_equal,
)
from .meta import validate_annotations, validate_label_selector, validate_labels
from .pods import validate_pod_template

MAX_PARALLELISM_FOR_INDEXED = 100_000
MAX_COMPLETIONS_FOR_INDEXED = 100_000
# A CronJob's Jobs are named <cronjob>-<11 digits>, and must stay DNS-1035-label sized.
MAX_CRONJOB_NAME = 52
_TZ_PART = re.compile(r"^[A-Za-z\.\-_0-9+]{1,14}$")


def _has_label(template_meta: Obj, key: str, expected: str, path: str) -> list[Cause]:
    """ValidateHasLabel: the template carries key=expected."""
    labels = as_dict(template_meta.get("labels"))
    if key not in labels:
        return [required(f"{path}.labels[{key}]", expected)]
    if labels[key] != expected:
        return [invalid(f"{path}.labels[{key}]", GoLiteral(go_string_map(labels)), f"must be '{expected}'")]
    return []


def _validate_generated_selector(job: Obj, require_prefixed: bool) -> list[Cause]:
    spec = as_dict(job.get("spec"))
    if spec.get("manualSelector") is True or spec.get("selector") is None:
        return []
    md = as_dict(job.get("metadata"))
    uid, name = as_str(md.get("uid")), as_str(md.get("name"))
    errs: list[Cause] = [] if uid else [required("metadata.uid")]
    template_meta = as_dict(as_dict(spec.get("template")).get("metadata"))
    path = "spec.template.metadata"
    expected = {LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name}
    errs += _has_label(template_meta, LEGACY_CONTROLLER_UID, uid, path)
    errs += _has_label(template_meta, LEGACY_JOB_NAME, name, path)
    if require_prefixed:
        errs += _has_label(template_meta, CONTROLLER_UID, uid, path)
        errs += _has_label(template_meta, JOB_NAME, name, path)
        expected |= {CONTROLLER_UID: uid, JOB_NAME: name}
    try:
        matcher = label_selector_from_object(as_dict(spec.get("selector")))
    except ApiError:
        return errs
    if not matcher.matches(expected):
        errs.append(invalid("spec.selector", go_label_selector(as_dict(spec.get("selector"))),
                            "`selector` not auto-generated"))
    return errs


def _validate_job_spec(spec: Obj, path: str) -> list[Cause]:
    """validateJobSpec: what a Job and a CronJob's job template share."""
    errs: list[Cause] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished"):
        errs.extend(nonnegative(int_field(spec, key, f"{path}.{key}", errs), f"{path}.{key}"))
    errs.extend(_validate_completion_mode(spec, path))
    errs.extend(validate_pod_template(spec.get("template"), f"{path}.template"))
    restart = as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy")
    if spec.get("podFailurePolicy") is not None and restart != "Never":
        errs.append(invalid(f"{path}.template.spec.restartPolicy", as_str(restart),
                            'only "Never" is supported when podFailurePolicy is specified'))
    elif restart not in ("OnFailure", "Never"):
        errs.append(not_supported(f"{path}.template.spec.restartPolicy", as_str(restart), ("OnFailure", "Never")))
    errs.extend(_validate_replacement_policy(spec, path))
    return errs


def _validate_completion_mode(spec: Obj, path: str) -> list[Cause]:
    mode = spec.get("completionMode")
    errs: list[Cause] = []
    if mode == "Indexed":
        if spec.get("completions") is None:
            errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
        elif isinstance(spec["completions"], int) and spec["completions"] > MAX_COMPLETIONS_FOR_INDEXED:
            errs.append(invalid(f"{path}.completions", spec["completions"],
                                f"must be less than or equal to {MAX_COMPLETIONS_FOR_INDEXED} "
                                "when completion mode is Indexed"))
        parallelism = spec.get("parallelism")
        if isinstance(parallelism, int) and parallelism > MAX_PARALLELISM_FOR_INDEXED:
            errs.append(invalid(f"{path}.parallelism", parallelism,
                                f"must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED} "
                                "when completion mode is Indexed"))
    elif mode is not None and mode != "NonIndexed":
        errs.append(not_supported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed")))
    if spec.get("backoffLimitPerIndex") is not None and mode != "Indexed":
        errs.append(invalid(f"{path}.backoffLimitPerIndex", spec["backoffLimitPerIndex"],
                            "requires indexed completion mode"))
    return errs


def _validate_replacement_policy(spec: Obj, path: str) -> list[Cause]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    allowed = ("Failed",) if spec.get("podFailurePolicy") is not None else ("Failed", "TerminatingOrFailed")
    if policy not in allowed:
        return [not_supported(f"{path}.podReplacementPolicy", policy, allowed)]
    return []


def _validate_selector_and_labels(spec: Obj) -> list[Cause]:
    """ValidateJobSpec: a selector is required, valid, and matches the template's labels."""
    selector = spec.get("selector")
    if selector is None:
        return [required("spec.selector")]
    errs = validate_label_selector(selector, "spec.selector")
    try:
        matcher = label_selector_from_object(as_dict(selector))
    except ApiError:
        return errs
    labels = as_dict(as_dict(spec.get("template")).get("metadata")).get("labels")
    if not matcher.matches(as_dict(labels)):
        errs.append(invalid("spec.template.metadata.labels", GoLiteral(go_string_map(labels)),
                            "`selector` does not match template `labels`"))
    return errs


def _had_prefixed_labels(old: Obj | None) -> bool:
    if old is None:
        return True
    labels = as_dict(as_dict(as_dict(as_dict(old.get("spec")).get("template")).get("metadata")).get("labels"))
    return JOB_NAME in labels and CONTROLLER_UID in labels


def validate_job(job: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(job.get("spec"))
    errs = _validate_generated_selector(job, _had_prefixed_labels(old))
    errs.extend(_validate_job_spec(spec, "spec"))
    errs.extend(_validate_selector_and_labels(spec))
    if old is not None:
        errs.extend(_validate_job_spec_update(spec, as_dict(old.get("spec")), as_dict(old.get("status"))))
    errs.extend(_validate_job_status(as_dict(job.get("status"))))
    return errs


_IMMUTABLE_JOB_FIELDS = ("selector", "completionMode", "podFailurePolicy", "successPolicy",
                         "backoffLimitPerIndex", "managedBy")
# A suspended Job that never started may change where its pods run (AllowMutableSchedulingDirectives).
_SCHEDULING_FIELDS = ("nodeAffinity", "nodeSelector", "tolerations", "schedulingGates")


def _validate_job_spec_update(spec: Obj, old_spec: Obj, old_status: Obj) -> list[Cause]:
    errs: list[Cause] = []
    if not semantic_equal(spec.get("completions"), old_spec.get("completions")) and not _elastic_indexed(spec, old_spec):
        errs.append(immutable("spec.completions", spec.get("completions")))
    for key in _IMMUTABLE_JOB_FIELDS:
        if not semantic_equal(spec.get(key), old_spec.get(key)):
            errs.append(immutable(f"spec.{key}", _go_field(spec.get(key))))
    new_template, old_template = as_dict(spec.get("template")), as_dict(old_spec.get("template"))
    if old_spec.get("suspend") is True and old_status.get("startTime") is None:
        new_template, old_template = _without_scheduling(new_template), _without_scheduling(old_template)
    if not semantic_equal(new_template, old_template):
        errs.append(immutable("spec.template", GoLiteral("core.PodTemplateSpec{...}")))
    return errs


def _go_field(value: Any) -> Any:
    return GoLiteral("{...}") if isinstance(value, (dict, list)) else value


def _elastic_indexed(spec: Obj, old_spec: Obj) -> bool:
    """ElasticIndexedJob: an Indexed job may change completions together with parallelism, kept equal."""
    return (spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
            and old_spec.get("completions") == old_spec.get("parallelism"))


def _without_scheduling(template: Obj) -> Obj:
    pod_spec = {k: v for k, v in as_dict(template.get("spec")).items() if k not in _SCHEDULING_FIELDS}
    if "affinity" in pod_spec:
        pod_spec["affinity"] = {k: v for k, v in as_dict(pod_spec["affinity"]).items() if k != "nodeAffinity"}
    meta = {k: v for k, v in as_dict(template.get("metadata")).items() if k not in ("labels", "annotations")}
    return {**template, "metadata": meta, "spec": pod_spec}


def _validate_job_status(status: Obj) -> list[Cause]:
    errs: list[Cause] = []
    for key in ("active", "succeeded", "failed", "ready", "terminating"):
        errs.extend(nonnegative(status.get(key), f"status.{key}"))
    return errs


# ------------------------------------------------------------------ CronJob

def validate_cron_job(cron_job: Obj, old: Obj | None) -> list[Cause]:
    md = as_dict(cron_job.get("metadata"))
    errs: list[Cause] = []
    name = as_str(md.get("name"))
    if old is None and len(name) > MAX_CRONJOB_NAME:
        errs.append(invalid("metadata.name", name, f"must be no more than {MAX_CRONJOB_NAME} characters"))
    spec = as_dict(cron_job.get("spec"))
    old_schedule = as_str(as_dict(as_dict(old).get("spec")).get("schedule")) if old is not None else ""
    errs.extend(_validate_schedule(spec, allow_tz_in_schedule="TZ" in old_schedule))
    errs.extend(_validate_time_zone(spec.get("timeZone")))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs.extend(nonnegative(int_field(spec, key, f"spec.{key}", errs), f"spec.{key}"))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        errs.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        errs.append(not_supported("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace")))
    errs.extend(_validate_job_template(as_dict(spec.get("jobTemplate"))))
    return errs


def _validate_schedule(spec: Obj, allow_tz_in_schedule: bool) -> list[Cause]:
    schedule = as_str(spec.get("schedule"))
    if not schedule:
        return [required("spec.schedule")]
    errs: list[Cause] = []
    if "TZ" in schedule:
        if spec.get("timeZone") is not None:
            errs.append(invalid("spec.schedule", schedule, "cannot use both timeZone field and TZ or CRON_TZ in "
                                "schedule"))
        elif not allow_tz_in_schedule:
            errs.append(invalid("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field "
                                "instead"))
    try:
        parsed = cronjob_schedule.parse(schedule)
    except cronjob_schedule.ScheduleError as exc:
        errs.append(invalid("spec.schedule", schedule, str(exc)))
        return errs
    if parsed.zone:
        try:
            load_zone(parsed.zone)
        except ValueError:
            errs.append(invalid("spec.schedule", schedule,
                                f"provided bad location {parsed.zone}: unknown time zone {parsed.zone}"))
    return errs


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """time.LoadLocation for an IANA name; ValueError("unknown time zone X") when the database lacks it."""
    if name in ("", "Local") or name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"unknown time zone {name}")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name}") from None


def _validate_time_zone(tz: Any) -> list[Cause]:
    if tz is None:
        return []
    path = "spec.timeZone"
    name = as_str(tz)
    if not name:
        return [invalid(path, name, "timeZone must be nil or non-empty string")]
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.match(part):
            return [invalid(path, name, f"unknown time zone {name}")]
    if name.lower() == "local":
        return [invalid(path, name, "timeZone must be an explicit time zone as defined in "
                                    "https://www.iana.org/time-zones")]
    try:
        load_zone(name)
    except ValueError as exc:
        return [invalid(path, name, str(exc))]
    return []


def _validate_job_template(template: Obj) -> list[Cause]:
    path = "spec.jobTemplate"
    meta = as_dict(template.get("metadata"))
    errs = validate_labels(meta.get("labels"), f"{path}.metadata.labels")
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.metadata.annotations"))
    spec = as_dict(template.get("spec"))
    errs.extend(_validate_job_spec(spec, f"{path}.spec"))
    if spec.get("selector") is not None:
        errs.append(invalid(f"{path}.spec.selector", go_label_selector(as_dict(spec["selector"])),
                            "`selector` will be auto-generated"))
    if spec.get("manualSelector") is True:
        errs.append(not_supported(f"{path}.spec.manualSelector", GoLiteral("true"), ("nil", "false")))
    return errs
