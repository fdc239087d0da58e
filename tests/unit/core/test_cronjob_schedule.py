"""Cron schedules as robfig/cron's ParseStandard reads them: next times and error messages."""
from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from svcnet.core.cronjob_schedule import ScheduleError, parse

T0 = dt.datetime(2026, 12, 7, 15, 7, 30, tzinfo=dt.UTC)  # a Monday


def nexts(spec: str, start: dt.datetime = T0, n: int = 3, tz: dt.tzinfo | None = None) -> list[str]:
    schedule, out, t = parse(spec), [], start
    for _ in range(n):
        t = schedule.next_after(t, tz)
        out.append(t.strftime("%Y-%m-%d %H:%M:%S"))
    return out


@pytest.mark.parametrize(("spec", "expected"), [
    ("* * * * *", ["2026-12-07 15:08:00", "2026-12-07 15:09:00", "2026-12-07 15:10:00"]),
    ("*/15 * * * *", ["2026-12-07 15:15:00", "2026-12-07 15:30:00", "2026-12-07 15:45:00"]),
    ("5 4 * * *", ["2026-12-08 04:05:00", "2026-12-09 04:05:00", "2026-12-10 04:05:00"]),
    ("@hourly", ["2026-12-07 16:00:00", "2026-12-07 17:00:00", "2026-12-07 18:00:00"]),
    ("@daily", ["2026-12-08 00:00:00", "2026-12-09 00:00:00", "2026-12-10 00:00:00"]),
    ("@weekly", ["2026-12-13 00:00:00", "2026-12-20 00:00:00", "2026-12-27 00:00:00"]),
    ("@monthly", ["2027-01-01 00:00:00", "2027-02-01 00:00:00", "2027-03-01 00:00:00"]),
    ("@yearly", ["2027-01-01 00:00:00", "2028-01-01 00:00:00", "2029-01-01 00:00:00"]),
    ("0 9 * * mon-fri", ["2026-12-08 09:00:00", "2026-12-09 09:00:00", "2026-12-10 09:00:00"]),
    ("0 0 1 jan,jul *", ["2027-01-01 00:00:00", "2027-07-01 00:00:00", "2028-01-01 00:00:00"]),
    ("30 10-12/2 * * *", ["2026-12-08 10:30:00", "2026-12-08 12:30:00", "2026-12-09 10:30:00"]),
    ("0 0 29 2 *", ["2028-02-29 00:00:00", "2032-02-29 00:00:00", "2036-02-29 00:00:00"]),
    ("@every 90s", ["2026-12-07 15:09:00", "2026-12-07 15:10:30", "2026-12-07 15:12:00"]),
])
def test_next_times(spec: str, expected: list[str]) -> None:
    assert nexts(spec) == expected


def test_both_day_fields_restricted_means_either_day() -> None:
    # the 13th, or any Friday (Vixie cron): Fri 11th, Sun 13th, Fri 18th
    assert nexts("0 0 13 * 5", start=dt.datetime(2026, 12, 10, tzinfo=dt.UTC)) == [
        "2026-12-11 00:00:00", "2026-12-13 00:00:00", "2026-12-18 00:00:00"]


def test_a_step_on_a_day_field_is_not_a_star() -> None:
    # "*/2" day-of-month is restricted: with Monday also restricted, either matches
    got = nexts("0 0 */10 * 1", start=dt.datetime(2026, 12, 1, 1, tzinfo=dt.UTC), n=4)
    assert got == ["2026-12-07 00:00:00", "2026-12-11 00:00:00", "2026-12-14 00:00:00", "2026-12-21 00:00:00"]


def test_time_zone_runs_on_local_wall_clock() -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    assert nexts("0 9 * * *", n=1, tz=paris) == ["2026-12-08 08:00:00"]  # 09:00 CET is 08:00 UTC
    assert parse("CRON_TZ=Europe/Paris 0 9 * * *").zone == "Europe/Paris"
    assert parse("TZ=UTC @hourly").zone == "UTC"


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/2/3 * * * *", "too many slashes: */2/3"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
])
def test_errors_carry_robfigs_wording(spec: str, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse(spec)
    assert str(info.value) == message
