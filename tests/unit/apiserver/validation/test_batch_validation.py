"""Job and CronJob validation: pkg/apis/batch/validation's rules and wording, and the
API server's defaults and generated selector as a create stores them."""
from __future__ import annotations

import copy

import pytest

from svcnet.apiserver.defaults import apply_defaults
from svcnet.apiserver.validation import validate
from svcnet.core.job_labels import generate_selector

POD_SPEC = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}


def messages(kind: str, obj: dict, old: dict | None = None) -> list[str]:
    return [f"{c.field}: {c.message}" for c in validate(kind, obj, old)]


def new_job(**spec: object) -> dict:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
           "spec": {"template": {"spec": copy.deepcopy(POD_SPEC)}, **spec}}
    generate_selector(job, "u1")
    apply_defaults("Job", job)
    return job


def new_cron_job(schedule: str = "*/1 * * * *", **spec: object) -> dict:
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello", "namespace": "default"},
          "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": copy.deepcopy(POD_SPEC)}}}, **spec}}
    apply_defaults("CronJob", cj)
    return cj


def test_job_defaults_and_generated_selector() -> None:
    job = new_job()
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"], spec["manualSelector"]) == ("NonIndexed", False, False)
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "job-name": "pi", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u1", "batch.kubernetes.io/controller-uid": "u1"}
    assert messages("Job", job) == []


def test_parallelism_alone_leaves_completions_unset() -> None:
    job = new_job(parallelism=3)
    assert "completions" not in job["spec"] and job["spec"]["parallelism"] == 3


def test_pod_failure_policy_makes_replacement_failed_only() -> None:
    job = new_job(podFailurePolicy={"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]})
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


@pytest.mark.parametrize(("change", "expected"), [
    ({"parallelism": -1}, ["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]),
    ({"backoffLimit": -2}, ["spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0"]),
    ({"completionMode": "Sometimes"},
     ['spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"']),
    ({"podReplacementPolicy": "Never"},
     ['spec.podReplacementPolicy: Unsupported value: "Never": supported values: "Failed", "TerminatingOrFailed"']),
])
def test_job_spec_errors(change: dict, expected: list[str]) -> None:
    assert messages("Job", new_job(**change)) == expected


def test_indexed_needs_completions() -> None:
    job = new_job(completionMode="Indexed", parallelism=2)
    assert messages("Job", job) == ["spec.completions: Required value: when completion mode is Indexed"]


def test_restart_policy_must_be_never_or_on_failure() -> None:
    job = new_job()
    job["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert messages("Job", job) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"']


def test_a_selector_not_matching_the_generated_labels_is_refused() -> None:
    job = new_job(selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}})
    assert "spec.selector: Invalid value: " in messages("Job", job)[0]
    assert any("`selector` not auto-generated" in m for m in messages("Job", job))


def test_manual_selector_needs_a_matching_template() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
           "spec": {"manualSelector": True, "selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "y"}}, "spec": copy.deepcopy(POD_SPEC)}}}
    apply_defaults("Job", job)
    assert messages("Job", job) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"y"}: '
        "`selector` does not match template `labels`"]


def test_job_template_and_completions_are_immutable() -> None:
    old = new_job()
    new = new_job(completions=2)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "perl"
    got = messages("Job", new, old)
    assert any(m.startswith("spec.completions: Invalid value: 2: field is immutable") for m in got)
    assert any(m.startswith("spec.template: Invalid value:") and m.endswith("field is immutable") for m in got)


def test_cronjob_defaults() -> None:
    spec = new_cron_job()["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"]) == ("Allow", False)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert messages("CronJob", new_cron_job()) == []


@pytest.mark.parametrize(("schedule", "expected"), [
    ("@hourly", []),
    ("0 */2 * * mon", []),
    ("61 * * * *", ['spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']),
    ("* * *", ['spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]']),
    ("CRON_TZ=UTC * * * * *", ['spec.schedule: Invalid value: "CRON_TZ=UTC * * * * *": cannot use TZ or CRON_TZ '
                               "in schedule, use timeZone field instead"]),
])
def test_cronjob_schedules(schedule: str, expected: list[str]) -> None:
    assert messages("CronJob", new_cron_job(schedule)) == expected


def test_cronjob_time_zone_and_policy() -> None:
    assert messages("CronJob", new_cron_job(timeZone="Europe/Paris")) == []
    assert messages("CronJob", new_cron_job(timeZone="Mars/Olympus")) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']
    assert messages("CronJob", new_cron_job(concurrencyPolicy="Sometimes")) == [
        'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"']


def test_cronjob_name_and_job_template_rules() -> None:
    long = new_cron_job()
    long["metadata"]["name"] = "a" * 53
    assert messages("CronJob", long) == [
        f'metadata.name: Invalid value: "{"a" * 53}": must be no more than 52 characters']
    selected = new_cron_job()
    selected["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    assert any("`selector` will be auto-generated" in m for m in messages("CronJob", selected))
