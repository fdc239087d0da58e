"""The last-change-trigger-time annotation on EndpointSlices and Endpoints.

It says when the change that led to this write happened (a pod turning Ready,
the Service being created), so latency from cause to published endpoints can
be measured. Upstream's TriggerTimeTracker remembers what the previous sync
saw; here that memory is a TriggerState the controller keeps per Service.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import meta
from svcnet.api.objects import condition_of, metadata_of

Obj = dict[str, Any]

ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def format_trigger_time(when: dt.datetime) -> str:
    """Go's RFC3339Nano in UTC: fractional seconds only when there are any, trailing zeros trimmed."""
    when = when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"



def _pod_trigger_time(pod: Mapping[str, Any]) -> dt.datetime | None:
    return meta.parse_time_or_none((condition_of(pod, "Ready") or {}).get("lastTransitionTime"))


@dataclass(frozen=True)
class TriggerState:
    """What a Service's last sync saw: its trigger time and each pod's Ready transition time."""

    service_time: dt.datetime | None
    pod_times: Mapping[str, dt.datetime] = field(default_factory=dict)


def next_trigger_time(previous: TriggerState | None, service: Mapping[str, Any],
                      pods: Iterable[Mapping[str, Any]]) -> tuple[dt.datetime | None, TriggerState]:
    """Upstream's TriggerTimeTracker: (the time to publish, or None to clear it; the new state).

    A Service seen for the first time publishes its creationTimestamp; later,
    the earliest trigger time (pod Ready transitions, Service creation) that
    moved since the previous sync, if any did.
    """
    earliest_changed: dt.datetime | None = None
    pod_times: dict[str, dt.datetime] = {}
    old_pod_times = previous.pod_times if previous else {}
    for pod in pods:
        when = _pod_trigger_time(pod)
        if when is None:
            continue
        name = str(metadata_of(pod).get("name"))
        pod_times[name] = when
        before = old_pod_times.get(name)
        if before is None or when > before:
            earliest_changed = when if earliest_changed is None else min(earliest_changed, when)
    service_time = meta.parse_time_or_none(metadata_of(service).get("creationTimestamp"))
    old_service_time = previous.service_time if previous else None
    if service_time is not None and (old_service_time is None or service_time > old_service_time):
        earliest_changed = service_time if earliest_changed is None else min(earliest_changed, service_time)
    state = TriggerState(service_time, pod_times)
    if previous is None:
        return service_time, state
    return earliest_changed, state


def with_trigger_time(obj: Obj, trigger_time: dt.datetime | None) -> None:
    """Set (or, for None, clear) the annotation on obj in place."""
    annotations = meta_annotations(obj)
    if trigger_time is not None:
        annotations[ANNOTATION_TRIGGER_TIME] = format_trigger_time(trigger_time)
    else:
        annotations.pop(ANNOTATION_TRIGGER_TIME, None)
    if not annotations:
        obj["metadata"].pop("annotations", None)


def meta_annotations(obj: Obj) -> dict[str, str]:
    """obj's own annotations dict, made if missing, for writing into."""
    md = meta.metadata(obj)
    annotations = md.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
        md["annotations"] = annotations
    return annotations
