"""Cron schedules as a CronJob's spec.schedule writes them, parsed and stepped as robfig/cron v3's
ParseStandard does (the parser kube-apiserver validates with and the CronJob controller runs).

Five fields (minute hour day-of-month month day-of-week) with `*`, `?`, lists, ranges,
steps and month/day names; the descriptors @yearly @annually @monthly @weekly @daily
@midnight @hourly and `@every <duration>`; an optional `TZ=`/`CRON_TZ=` prefix. As in Vixie
cron, when both day fields are restricted a day matching either runs. Errors carry
robfig's wording, which kube-apiserver passes on in its validation messages.

The time zone database is read by the caller (`zone` takes a tzinfo), so this stays pure.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

STAR = "star"

_BOUNDS = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 6)}
_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                           "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# Go's time.ParseDuration units.
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SEARCH_YEARS = 5  # robfig gives up looking for a match five years out (e.g. "0 0 30 2 *")


class ScheduleError(ValueError):
    """A schedule robfig/cron would refuse; str() is its message."""


@dataclass(frozen=True)
class Field:
    values: frozenset[int]
    star: bool  # "*" or "?" (step 1): matters for the day-of-month/day-of-week rule


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; `zone` is the name from a TZ=/CRON_TZ= prefix ("" when none)."""

    minute: Field | None = None
    hour: Field | None = None
    dom: Field | None = None
    month: Field | None = None
    dow: Field | None = None
    every: float = 0.0  # @every: seconds between runs
    zone: str = ""

    def next_after(self, after: dt.datetime, tz: dt.tzinfo | None = None) -> dt.datetime | None:
        """The first run strictly after `after` (aware), evaluated in tz (UTC when None); None if never."""
        if self.every:
            # ConstantDelaySchedule: rounds to whole seconds and drops sub-second parts.
            return after.replace(microsecond=0) + dt.timedelta(seconds=self.every)
        assert self.minute and self.hour and self.dom and self.month and self.dow
        local = after.astimezone(tz or dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = local.year + _SEARCH_YEARS
        while local.year <= limit:
            if local.month not in self.month.values:
                local = _first_of_next_month(local)
                continue
            if not self._day_matches(local):
                local = (local + dt.timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if local.hour not in self.hour.values:
                local = (local + dt.timedelta(hours=1)).replace(minute=0)
                continue
            if local.minute not in self.minute.values:
                local = local + dt.timedelta(minutes=1)
                continue
            return _resolve(local, tz)
        return None

    def _day_matches(self, t: dt.datetime) -> bool:
        assert self.dom and self.dow
        dom_match = t.day in self.dom.values
        dow_match = (t.isoweekday() % 7) in self.dow.values
        if self.dom.star or self.dow.star:
            return dom_match and dow_match
        return dom_match or dow_match


def _first_of_next_month(t: dt.datetime) -> dt.datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0)


def _resolve(local: dt.datetime, tz: dt.tzinfo | None) -> dt.datetime:
    """Wall-clock time in tz as an aware UTC instant (naive arithmetic above, fold-free)."""
    if tz is None:
        return local.astimezone(dt.UTC)
    naive = local.replace(tzinfo=None)
    return naive.replace(tzinfo=tz).astimezone(dt.UTC)


def split_zone(spec: str) -> tuple[str, str]:
    """("Europe/Paris", "0 9 * * *") for "CRON_TZ=Europe/Paris 0 9 * * *"; ("", spec) without a prefix."""
    text = spec.strip()
    for prefix in ("TZ=", "CRON_TZ="):
        if text.startswith(prefix):
            zone, _, rest = text[len(prefix):].partition(" ")
            return zone, rest.strip()
    return "", text


def parse(spec: str) -> Schedule:
    """Parse a standard cron spec as cron.ParseStandard does; ScheduleError with robfig's message."""
    if not spec:
        raise ScheduleError("empty spec string")
    zone, text = split_zone(spec)
    if text.startswith("@"):
        return _descriptor(text, zone)
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minute, hour, dom, month, dow = (
        _field(expr, name) for expr, name in zip(fields, ("minute", "hour", "dom", "month", "dow"), strict=True))
    return Schedule(minute, hour, dom, month, dow, zone=zone)


def _descriptor(text: str, zone: str) -> Schedule:
    if text.startswith("@every "):
        return Schedule(every=_parse_duration(text[len("@every "):].strip()), zone=zone)
    expanded = _DESCRIPTORS.get(text)
    if expanded is None:
        raise ScheduleError(f"unrecognized descriptor: {text}")
    return _replace_zone(parse(expanded), zone)


def _replace_zone(schedule: Schedule, zone: str) -> Schedule:
    return Schedule(schedule.minute, schedule.hour, schedule.dom, schedule.month, schedule.dow, zone=zone)


def _parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the positive durations @every takes, rounded down to a second (min 1s)."""
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)", text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ScheduleError(f"failed to parse duration @every {text}: time: invalid duration \"{text}\"")
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    return float(max(1, int(seconds)))


def _field(expr: str, name: str) -> Field:
    values: set[int] = set()
    star = False
    for part in expr.split(","):
        part_values, part_star = _range(part, name)
        values |= part_values
        star = star or part_star
    return Field(frozenset(values), star)


def _range(expr: str, name: str) -> tuple[set[int], bool]:
    lo_bound, hi_bound = _BOUNDS[name]
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    star = False
    if low_and_high[0] in ("*", "?"):
        start, end, star = lo_bound, hi_bound, True
    else:
        start = _value(low_and_high[0], name)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _value(low_and_high[1], name)
        else:
            raise ScheduleError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if single and not star:
            end = hi_bound  # "N/step" means N through the maximum
        if step > 1:
            star = False
    else:
        raise ScheduleError(f"too many slashes: {expr}")
    _check_range(start, end, step, lo_bound, hi_bound, expr)
    return set(range(start, end + 1, step)), star


def _check_range(start: int, end: int, step: int, lo: int, hi: int, expr: str) -> None:
    if start < lo:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise ScheduleError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ScheduleError(f"step of range should be a positive number: {expr}")


def _value(text: str, name: str) -> int:
    names = _MONTHS if name == "month" else _DAYS if name == "dow" else {}
    named = names.get(text.lower())
    return named if named is not None else _int(text)


def _int(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ScheduleError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if value < 0:
        raise ScheduleError(f"negative number ({value}) not allowed: {text}")
    return value
