"""Restart decisions and CrashLoopBackOff, as kubelet makes them (pure, times are plain floats).

kubelet's back-off (client-go flowcontrol.Backoff keyed per container): the first
exit restarts at once and records a 10 s back-off; each later exit waits the
recorded back-off from the container's finish time, then doubles it, up to
5 min. A container that stayed up more than twice the maximum (10 min) since the
last restart starts over at 10 s. computePodActions' ordering: init containers
one at a time, in order, each to success; then every app container.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from svcnet.runtime.containers import ContainerView, RunState


@dataclass(frozen=True)
class BackOffPolicy:
    initial: float = 10.0
    maximum: float = 300.0


@dataclass(frozen=True)
class BackOffEntry:
    backoff: float  # the wait before the next restart
    last_update: float  # when this entry last moved (a restart was let through)


def _expired(finished_at: float, entry: BackOffEntry, policy: BackOffPolicy) -> bool:
    return finished_at - entry.last_update > 2 * policy.maximum


def backoff_remaining(entry: BackOffEntry | None, finished_at: float, now: float, policy: BackOffPolicy) -> float:
    """Seconds until a container that finished at finished_at may restart (0: now)."""
    if entry is None or _expired(finished_at, entry, policy):
        return 0.0
    return max(0.0, finished_at + entry.backoff - now)


def next_backoff(entry: BackOffEntry | None, finished_at: float, now: float, policy: BackOffPolicy) -> BackOffEntry:
    """The entry after letting a restart through at now."""
    if entry is None or _expired(finished_at, entry, policy):
        return BackOffEntry(policy.initial, now)
    return BackOffEntry(min(entry.backoff * 2, policy.maximum), now)


def should_restart(restart_policy: str, exit_code: int | None) -> bool:
    """ShouldContainerBeRestarted for an exited app container."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True  # Always (the default)


def go_duration(seconds: float) -> str:
    """A duration as Go prints it (10s, 1m20s, 5m0s), for kubelet-worded messages."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:g}s" if seconds != whole else f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}s"


def crash_loop_message(backoff: float, container: str, pod_name: str, namespace: str, uid: str) -> str:
    return f"back-off {go_duration(backoff)} restarting failed container={container} pod={pod_name}_{namespace}({uid})"


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str
    retry_at: float


@dataclass(frozen=True)
class PodActions:
    start: tuple[str, ...] = ()  # containers to start now, in this order
    waiting: Mapping[str, Waiting] = field(default_factory=dict)  # held in back-off
    backoffs: Mapping[str, BackOffEntry] = field(default_factory=dict)  # the whole updated table
    init_failed: bool = False  # an init container failed for good: the pod fails
    initialized: bool = False  # every init container succeeded (or an app container already ran)


@dataclass(frozen=True)
class PodIdentity:
    name: str
    namespace: str
    uid: str


def compute_pod_actions(pod: PodIdentity, restart_policy: str, init_containers: Sequence[str],
                        containers: Sequence[str], views: Mapping[str, ContainerView],
                        backoffs: Mapping[str, BackOffEntry], now: float,
                        policy: BackOffPolicy = BackOffPolicy()) -> PodActions:
    """Which containers to start now, and which wait out a back-off."""
    table = dict(backoffs)
    waiting: dict[str, Waiting] = {}
    start: list[str] = []

    def restart_or_wait(name: str, view: ContainerView) -> None:
        finished = view.finished_at if view.finished_at is not None else now
        remaining = backoff_remaining(table.get(name), finished, now, policy)
        if remaining > 0:
            entry = table[name]
            waiting[name] = Waiting("CrashLoopBackOff",
                                    crash_loop_message(entry.backoff, name, pod.name, pod.namespace, pod.uid),
                                    finished + entry.backoff)
        else:
            table[name] = next_backoff(table.get(name), finished, now, policy)
            start.append(name)

    app_started = any(views.get(name, ContainerView()).state is not RunState.NONE for name in containers)
    if not app_started:
        for name in init_containers:
            view = views.get(name, ContainerView())
            if view.state is RunState.EXITED and view.exit_code == 0:
                continue
            if view.state is RunState.NONE:
                start.append(name)
            elif view.state is RunState.EXITED:
                # A failed init container is retried unless the pod never restarts anything.
                if restart_policy == "Never":
                    return PodActions(backoffs=table, init_failed=True)
                restart_or_wait(name, view)
            return PodActions(tuple(start), waiting, table)

    for name in containers:
        view = views.get(name, ContainerView())
        if view.state is RunState.NONE:
            start.append(name)
        elif view.state is RunState.EXITED and should_restart(restart_policy, view.exit_code):
            restart_or_wait(name, view)
    return PodActions(tuple(start), waiting, table, initialized=True)
