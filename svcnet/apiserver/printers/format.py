"""Cell formatting shared by every printer: durations (duration.HumanDuration and
translateTimestampSince), labels, selectors, and small readers that never raise."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Cell = str | int

# ---------------------------------------------------------------------------
# Time: duration.HumanDuration and translateTimestampSince
# ---------------------------------------------------------------------------

_MICROS_PER_SECOND = 1_000_000


def human_duration(delta: dt.timedelta) -> str:
    """Two or three significant figures of a duration: "4m29s", "16m", "3h5m", "2d3h", "3y12d".

    Up to one second in the future still reads "0s" (clock skew between
    machines); further in the future is "<invalid>".
    """
    micros = delta // dt.timedelta(microseconds=1)
    # Go converts to whole seconds by truncating toward zero, not flooring.
    seconds = -((-micros) // _MICROS_PER_SECOND) if micros < 0 else micros // _MICROS_PER_SECOND
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An RFC 3339 Time or MicroTime, or None for missing, unparsable or Go's zero time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if parsed.year <= 1:  # 0001-01-01T00:00:00Z is Go's zero time: "never"
        return None
    return parsed


class _Deferred:
    """The `now` a printer is given when its cells are kept for later: cells that read the clock
    become Since cells, rendered with the real time when a response is built (printers/rows.py)."""

    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED: Any = _Deferred()


@dataclass(frozen=True, slots=True)
class Since:
    """A cell that reads the clock: prefix, how long ago `when` was (HumanDuration), suffix."""

    when: dt.datetime
    prefix: str = ""
    suffix: str = ""

    def at(self, now: dt.datetime) -> str:
        return f"{self.prefix}{human_duration(aware(now) - self.when)}{self.suffix}"


def since(when: dt.datetime, now: dt.datetime, prefix: str = "", suffix: str = "") -> Any:
    """The cell for how long ago `when` was: the text at `now`, or a Since when now is DEFERRED.

    Every cell that depends on the clock goes through here, so a kept row (printers/rows.py)
    holds everything else as computed once and only these are redone per response.
    """
    cell = Since(when, prefix, suffix)
    return cell if now is DEFERRED else cell.at(now)


def translate_timestamp_since(value: Any, now: dt.datetime) -> str:
    """How long ago a timestamp was, or "<unknown>" when it is unset."""
    when = parse_timestamp(value)
    if when is None:
        return "<unknown>"
    return since(when, now)


def aware(now: dt.datetime) -> dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------
# Small formatters shared by several kinds
# ---------------------------------------------------------------------------


def get_path(obj: Any, *path: str, default: Any = None) -> Any:
    """obj[path0][path1]..., tolerating missing keys and nulls anywhere."""
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def list_at(obj: Any, *path: str) -> list[Any]:
    """The list at obj[path0][path1]..., or [] (get_path's walk inlined: a 10,000-pod Table calls it 70,000 times)."""
    for key in path:
        if not isinstance(obj, dict):
            return []
        obj = obj.get(key)
    return obj if isinstance(obj, list) else []


def as_int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: sorted k=v pairs, or "<none>"."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


class BadSelector(ValueError):
    """A label selector that LabelSelectorAsSelector would reject."""


def label_selector_string(selector: Any) -> str:
    """LabelSelectorAsSelector(...).String(): requirements sorted by key; "" selects all or nothing."""
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = []
    match_labels = selector.get("matchLabels") or {}
    for key, value in match_labels.items():
        requirements.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key = str(expr.get("key", ""))
        operator = expr.get("operator")
        values = sorted(str(v) for v in expr.get("values") or [])
        if operator in ("In", "NotIn"):
            if not values:
                raise BadSelector(f"{operator} needs values")
            word = "in" if operator == "In" else "notin"
            requirements.append((key, f"{key} {word} ({','.join(values)})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            raise BadSelector(f"{operator!r} is not a valid label selector operator")
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: the selector string, "<none>" when empty, "<error>" when invalid."""
    try:
        text = label_selector_string(selector)
    except BadSelector:
        return "<error>"
    return text or "<none>"


def join_host_port(host: str, port: Any) -> str:
    """net.JoinHostPort: IPv6 literals get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def container_cells(containers: list[Any]) -> tuple[str, str]:
    """The CONTAINERS and IMAGES cells: every template container on one line."""
    names = ",".join(str(get_path(c, "name", default="")) for c in containers)
    images = ",".join(str(get_path(c, "image", default="")) for c in containers)
    return names, images


def template_containers(obj: Obj) -> list[Any]:
    return list_at(obj, "spec", "template", "spec", "containers")


def desired_replicas(obj: Obj) -> int:
    # apps/v1 defaulting sets spec.replicas to 1 when it is left out.
    return as_int(get_path(obj, "spec", "replicas"), 1)


def age_cell(obj: Obj, now: dt.datetime) -> str:
    return translate_timestamp_since(get_path(obj, "metadata", "creationTimestamp"), now)


def name_cell(obj: Obj) -> str:
    return str(get_path(obj, "metadata", "name", default=""))


def more_than_three(items: list[str], total: int) -> str:
    """The "a,b,c + N more..." shape shared by the endpoint printers."""
    shown = ",".join(items)
    return f"{shown} + {total - 3} more..." if total > 3 else shown


