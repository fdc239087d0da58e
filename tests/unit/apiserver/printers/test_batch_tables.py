"""Tables of Jobs and CronJobs, as kubectl shows them: NAME STATUS COMPLETIONS DURATION AGE, and
NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE."""
from __future__ import annotations

import datetime as dt

import pytest

from svcnet.api.resources import lookup_kind
from svcnet.apiserver import printers as tables

NOW = dt.datetime(2026, 12, 7, 15, 0, 0, tzinfo=dt.UTC)


def _res(kind: str):
    found = lookup_kind("batch/v1", kind)
    assert found is not None
    return found


def _headers(kind: str, wide: bool) -> str:
    return " ".join(c["name"].upper() for c in tables.column_definitions(_res(kind)) if wide or c["priority"] == 0)


@pytest.mark.parametrize(("kind", "wide", "header"), [
    ("Job", False, "NAME STATUS COMPLETIONS DURATION AGE"),
    ("Job", True, "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR"),
    ("CronJob", False, "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE"),
    ("CronJob", True, "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE CONTAINERS IMAGES SELECTOR"),
])
def test_headers_are_kubectls(kind: str, wide: bool, header: str) -> None:
    assert _headers(kind, wide) == header


def job(conditions: list[dict] | None = None, **status: object) -> dict:
    return {"metadata": {"name": "pi", "creationTimestamp": "2026-12-07T14:58:00Z"},
            "spec": {"completions": 3, "parallelism": 1, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"conditions": conditions or [], **status}}


def test_a_running_job() -> None:
    cells = tables.row_cells(_res("Job"), job(succeeded=1, startTime="2026-12-07T14:58:30Z"), NOW)
    assert cells == ["pi", "Running", "1/3", "90s", "2m", "pi", "perl", "a=b"]


def test_a_complete_job_shows_its_run_time() -> None:
    done = job([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
               succeeded=3, startTime="2026-12-07T14:58:00Z", completionTime="2026-12-07T14:58:42Z")
    assert tables.row_cells(_res("Job"), done, NOW)[:4] == ["pi", "Complete", "3/3", "42s"]


@pytest.mark.parametrize(("conditions", "word"), [
    ([{"type": "Failed", "status": "True"}], "Failed"),
    ([{"type": "FailureTarget", "status": "True"}], "FailureTarget"),
    ([{"type": "Suspended", "status": "True"}], "Suspended"),
    ([{"type": "Suspended", "status": "False"}], "Running"),
])
def test_status_word(conditions: list[dict], word: str) -> None:
    assert tables.row_cells(_res("Job"), job(conditions), NOW)[1] == word


def test_completions_without_a_count() -> None:
    parallel = job()
    parallel["spec"] = {"parallelism": 2}
    assert tables.row_cells(_res("Job"), parallel, NOW)[2] == "0/1 of 2"


def test_a_cronjob_row() -> None:
    cj = {"metadata": {"name": "hello", "creationTimestamp": "2026-12-07T14:00:00Z"},
          "spec": {"schedule": "*/1 * * * *", "suspend": False,
                   "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
          "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2026-12-07T14:59:00Z"}}
    assert tables.row_cells(_res("CronJob"), cj, NOW) == [
        "hello", "*/1 * * * *", "<none>", "False", 1, "60s", "60m", "c", "busybox", "<none>"]
