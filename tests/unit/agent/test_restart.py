from __future__ import annotations

import pytest

from svcnet.agent.restart import (
    BackOffEntry,
    BackOffPolicy,
    PodIdentity,
    backoff_remaining,
    compute_pod_actions,
    go_duration,
    next_backoff,
    should_restart,
)
from svcnet.runtime.containers import ContainerView, RunState

POLICY = BackOffPolicy()
POD = PodIdentity("web-0", "default", "u-1")
RUNNING = ContainerView(RunState.RUNNING)


def exited(code: int, at: float) -> ContainerView:
    return ContainerView(RunState.EXITED, code, at)


@pytest.mark.parametrize("policy, code, restart", [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 1, False), ("Never", 0, False),
])
def test_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_crash_loop_waits_10s_then_doubles_to_5_minutes() -> None:
    """Each crash right after its restart: the waits kubelet imposes, in order."""
    entry, now, waits = None, 0.0, []
    for _ in range(8):
        finished = now + 1  # runs one second, then exits
        wait = backoff_remaining(entry, finished, finished, POLICY)
        waits.append(wait)
        now = finished + wait
        entry = next_backoff(entry, finished, now, POLICY)
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_resets_after_running_twice_the_maximum() -> None:
    entry = BackOffEntry(backoff=160, last_update=1000)
    assert backoff_remaining(entry, 1000 + 601, 1000 + 601, POLICY) == 0
    assert next_backoff(entry, 1000 + 601, 1000 + 601, POLICY) == BackOffEntry(10, 1601)
    assert backoff_remaining(entry, 1000 + 599, 1000 + 599, POLICY) == 160


@pytest.mark.parametrize("seconds, text", [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (0.5, "0.5s"), (3700, "1h1m40s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_init_containers_start_one_at_a_time_in_order() -> None:
    actions = compute_pod_actions(POD, "Always", ["i1", "i2"], ["app"], {}, {}, now=0)
    assert actions.start == ("i1",) and not actions.initialized
    actions = compute_pod_actions(POD, "Always", ["i1", "i2"], ["app"], {"i1": RUNNING}, {}, now=1)
    assert actions.start == ()
    actions = compute_pod_actions(POD, "Always", ["i1", "i2"], ["app"], {"i1": exited(0, 2)}, {}, now=3)
    assert actions.start == ("i2",)
    actions = compute_pod_actions(POD, "Always", ["i1", "i2"], ["app", "side"],
                                  {"i1": exited(0, 2), "i2": exited(0, 4)}, {}, now=5)
    assert actions.start == ("app", "side") and actions.initialized


def test_failed_init_container_is_retried_with_backoff_unless_never() -> None:
    views = {"i1": exited(1, 10)}
    first = compute_pod_actions(POD, "Always", ["i1"], ["app"], views, {}, now=10)
    assert first.start == ("i1",)
    second = compute_pod_actions(POD, "OnFailure", ["i1"], ["app"], {"i1": exited(1, 11)}, first.backoffs, now=11)
    assert second.start == () and second.waiting["i1"].reason == "CrashLoopBackOff"
    assert compute_pod_actions(POD, "Never", ["i1"], ["app"], views, {}, now=10).init_failed


def test_app_containers_skip_init_once_any_ran() -> None:
    actions = compute_pod_actions(POD, "Always", ["i1"], ["app"], {"app": RUNNING}, {}, now=0)
    assert actions.start == () and actions.initialized


def test_crash_loop_message_and_retry_time() -> None:
    table = {"app": BackOffEntry(20, 100)}
    actions = compute_pod_actions(POD, "Always", [], ["app"], {"app": exited(1, 105)}, table, now=110)
    waiting = actions.waiting["app"]
    assert waiting.message == "back-off 20s restarting failed container=app pod=web-0_default(u-1)"
    assert waiting.retry_at == 125
    later = compute_pod_actions(POD, "Always", [], ["app"], {"app": exited(1, 105)}, table, now=125)
    assert later.start == ("app",) and later.backoffs["app"] == BackOffEntry(40, 125)


def test_completed_container_under_on_failure_stays_down() -> None:
    actions = compute_pod_actions(POD, "OnFailure", [], ["job"], {"job": exited(0, 5)}, {}, now=6)
    assert actions.start == () and actions.waiting == {}
