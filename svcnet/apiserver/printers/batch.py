"""Printers of batch/v1 kinds, as kube-apiserver's printJob and printCronJob: a Job shows NAME,
STATUS, COMPLETIONS, DURATION, AGE; a CronJob NAME, SCHEDULE, TIMEZONE, SUSPEND, ACTIVE,
LAST SCHEDULE, AGE; both add CONTAINERS, IMAGES and SELECTOR with -o wide."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, NAME, Column, Printer, wide
from .format import (
    BadSelector,
    Cell,
    Obj,
    age_cell,
    as_int,
    container_cells,
    format_label_selector,
    get_path,
    human_duration,
    label_selector_string,
    list_at,
    name_cell,
    parse_timestamp,
    since,
    translate_timestamp_since,
)

G = "batch"

# The status word, in printJob's order of precedence: the first True condition wins.
_STATUS_BY_CONDITION = (("Complete", "Complete"), ("Failed", "Failed"), ("", "Terminating"),
                        ("Suspended", "Suspended"), ("FailureTarget", "FailureTarget"),
                        ("SuccessCriteriaMet", "SuccessCriteriaMet"))


def _condition_true(job: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in list_at(job, "status", "conditions") if isinstance(c, dict))


def job_status_word(job: Obj) -> str:
    for ctype, word in _STATUS_BY_CONDITION:
        if (ctype == "" and get_path(job, "metadata", "deletionTimestamp")) or (ctype and _condition_true(job, ctype)):
            return word
    return "Running"


def _completions(job: Obj) -> str:
    succeeded = as_int(get_path(job, "status", "succeeded"))
    completions = get_path(job, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{as_int(completions)}"
    parallelism = as_int(get_path(job, "spec", "parallelism"))
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _duration(job: Obj, now: dt.datetime) -> Cell:
    start = parse_timestamp(get_path(job, "status", "startTime"))
    if start is None:
        return ""
    done = parse_timestamp(get_path(job, "status", "completionTime"))
    if done is None:
        return since(start, now)
    return human_duration(done - start)


def _selector(selector: object) -> str:
    try:
        return label_selector_string(selector)
    except BadSelector:
        return "<invalid>"


def _job_cells(job: Obj, now: dt.datetime) -> list[Cell]:
    names, images = container_cells(list_at(job, "spec", "template", "spec", "containers"))
    return [name_cell(job), job_status_word(job), _completions(job), _duration(job, now), age_cell(job, now),
            names, images, _selector(get_path(job, "spec", "selector"))]


def _cron_job_cells(cron_job: Obj, now: dt.datetime) -> list[Cell]:
    spec = get_path(cron_job, "spec", default={})
    suspend = spec.get("suspend")
    last = get_path(cron_job, "status", "lastScheduleTime")
    names, images = container_cells(list_at(cron_job, "spec", "jobTemplate", "spec", "template", "spec",
                                            "containers"))
    selector = get_path(cron_job, "spec", "jobTemplate", "spec", "selector")
    return [name_cell(cron_job), str(spec.get("schedule") or ""),
            "<none>" if spec.get("timeZone") is None else str(spec["timeZone"]),
            "<unset>" if suspend is None else ("True" if suspend else "False"),
            len(list_at(cron_job, "status", "active")),
            translate_timestamp_since(last, now) if last else "<none>",
            age_cell(cron_job, now), names, images,
            "<none>" if selector is None else format_label_selector(selector)]


_WIDE = (wide("Containers", "Names of each container in the template."),
         wide("Images", "Images referenced by each container in the template."))

BATCH_PRINTERS: dict[tuple[str, str], Printer] = {
    (G, "Job"): Printer((
        NAME,
        Column("Status", "string", "Status of the job."),
        Column("Completions", "string", "The number of pods which reached phase Succeeded."),
        Column("Duration", "string", "Time required to complete the job."),
        AGE,
        *_WIDE,
        wide("Selector", "A label query over pods that should match the pod count."),
    ), _job_cells),
    (G, "CronJob"): Printer((
        NAME,
        Column("Schedule", "string", "The schedule in Cron format."),
        Column("Timezone", "string", "The time zone name for the given schedule."),
        Column("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions."),
        Column("Active", "integer", "A list of pointers to currently running jobs."),
        Column("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
        AGE,
        *_WIDE,
        wide("Selector", "A label query over pods that should match the pod count."),
    ), _cron_job_cells),
}
