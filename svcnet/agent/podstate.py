"""What the agent remembers of a pod between syncs, and what it reads off a pod's spec.

All of a `PodState` can be lost (an agent restart): the runtime's files and the
IP leases are the truth, and a new agent rebuilds the rest on its first sync.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.agent.probes import ProbeVerdict
from svcnet.agent.restart import BackOffEntry
from svcnet.api.objects import metadata_of, resource_version, spec_of, uid_of
from svcnet.runtime import images

Obj = dict[str, Any]
DEFAULT_GRACE_SECONDS = 30


@dataclass
class ImagePullFailure:
    reason: str
    message: str
    failed_at: float
    entry: BackOffEntry


@dataclass
class ProbeWatch:
    instance: int
    task: asyncio.Task[Any]
    verdict: ProbeVerdict


@dataclass
class PodState:
    """What the agent remembers of a pod between syncs (all of it can be lost: the files are the truth)."""

    uid: str
    backoffs: dict[str, BackOffEntry] = field(default_factory=dict)
    image_failures: dict[str, ImagePullFailure] = field(default_factory=dict)
    config_errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    probes: dict[str, ProbeWatch] = field(default_factory=dict)
    exit_watchers: dict[str, tuple[int, asyncio.Task[Any]]] = field(default_factory=dict)
    sandbox_error: str = ""
    pod_ips: tuple[str, ...] = ()
    last_written: Obj | None = None  # the pod as our last status write returned it
    # What the last sync decided that a status written between syncs (a probe's verdict) must repeat:
    waiting: dict[str, Any] = field(default_factory=dict)  # containers waiting on a back-off, by name
    init_failed: bool = False
    # While its containers are being killed: the grace period in force, and set when the API cut it
    # (a shorter deletionGracePeriodSeconds, or the pod force-deleted): kubelet's shortened kill.
    kill_grace: float | None = None
    grace_cut: asyncio.Event = field(default_factory=asyncio.Event)
    # The container whose postStart hook runs: the sync waits on it, and the status shows the
    # container as it was before this start (kubelet's pod worker is blocked in startContainer);
    # the pod's deletion ends the hook.
    post_start_container: str = ""
    post_start_abort: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel_tasks(self) -> None:
        for watch in self.probes.values():
            watch.task.cancel()
        for _, task in self.exit_watchers.values():
            task.cancel()
        self.probes.clear()
        self.exit_watchers.clear()


def containers_of(pod: Mapping[str, Any], field_name: str) -> list[Obj]:
    return list(spec_of(pod).get(field_name) or [])


def newer(a: Obj | None, b: Obj) -> Obj:
    """Of two copies of one pod, the one with the higher resourceVersion (the informer may lag our writes)."""
    if a is None or uid_of(a) != uid_of(b):
        return b
    try:
        return a if int(resource_version(a)) > int(resource_version(b)) else b
    except ValueError:
        return b


def grace_seconds(pod: Mapping[str, Any]) -> float:
    for value in (metadata_of(pod).get("deletionGracePeriodSeconds"),
                  spec_of(pod).get("terminationGracePeriodSeconds")):
        if value is not None:
            return max(0.0, float(value))
    return float(DEFAULT_GRACE_SECONDS)


def named_ports(container: Mapping[str, Any]) -> dict[str, int]:
    return {p["name"]: int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")}


def image_id(image: str) -> str:
    """What imageID shows: the normalised reference (there is no digest without a registry)."""
    try:
        return str(images.parse_image_reference(image))
    except images.ImageError:
        return ""
