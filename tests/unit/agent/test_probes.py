from __future__ import annotations

from typing import Any

import pytest

from svcnet.agent.probes import (
    ContainerProbes,
    ProbeKind,
    ProbeRunner,
    ProbeSpec,
    ProbeState,
    ProbeTarget,
    ProbeVerdict,
    Result,
    observe,
)

S, F = Result.SUCCESS, Result.FAILURE


class Done(Exception):
    """Raised from a callback to end an endless runner in a test."""


def spec(kind: ProbeKind, success: int = 1, failure: int = 3) -> ProbeSpec:
    return ProbeSpec(kind, {"tcpSocket": {"port": 80}}, success_threshold=success, failure_threshold=failure)


@pytest.mark.parametrize("kind, success, failure, outcomes, published", [
    (ProbeKind.READINESS, 1, 3, [], F),  # not ready until a probe passes
    (ProbeKind.READINESS, 1, 3, [S], S),
    (ProbeKind.READINESS, 2, 3, [S], F),
    (ProbeKind.READINESS, 2, 3, [S, F, S], F),  # successes must be consecutive
    (ProbeKind.READINESS, 2, 3, [S, S], S),
    (ProbeKind.READINESS, 1, 3, [S, F, F], S),
    (ProbeKind.READINESS, 1, 3, [S, F, F, F], F),
    (ProbeKind.LIVENESS, 1, 3, [], S),  # live until proven otherwise
    (ProbeKind.LIVENESS, 1, 2, [F, S, F], S),
    (ProbeKind.LIVENESS, 1, 2, [F, F], F),
    (ProbeKind.STARTUP, 1, 3, [], Result.UNKNOWN),
])
def test_published_result_moves_only_at_thresholds(kind: ProbeKind, success: int, failure: int,
                                                  outcomes: list[Result], published: Result) -> None:
    state, the_spec = ProbeState.initial(kind), spec(kind, success, failure)
    for outcome in outcomes:
        state = observe(state, the_spec, outcome)
    assert state.result is published


def test_liveness_failure_is_held_until_the_container_restarts() -> None:
    the_spec = spec(ProbeKind.LIVENESS, failure=1)
    state = observe(ProbeState.initial(ProbeKind.LIVENESS), the_spec, F)
    assert state.on_hold and observe(state, the_spec, S).result is F


CONTAINER: dict[str, Any] = {
    "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1, "failureThreshold": 2},
    "readinessProbe": {"httpGet": {"port": 80}, "initialDelaySeconds": 5, "periodSeconds": 2},
    "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10},
}


def test_defaults_come_from_the_api() -> None:
    the_spec = ProbeSpec.from_container({"readinessProbe": {"tcpSocket": {"port": 1}}}, ProbeKind.READINESS)
    assert the_spec and (the_spec.period, the_spec.timeout, the_spec.success_threshold,
                         the_spec.failure_threshold, the_spec.initial_delay) == (10, 1, 1, 3, 0)


def test_readiness_and_liveness_wait_for_startup_then_their_initial_delay() -> None:
    probes = ContainerProbes.for_container(CONTAINER, started_at=100)
    assert probes.due(100) == [ProbeKind.STARTUP]
    probes = probes.record(ProbeKind.STARTUP, F, 100)
    assert probes.verdict() == ProbeVerdict(started=False, ready=False, restart=False)
    probes = probes.record(ProbeKind.STARTUP, S, 101)
    assert probes.active() == [ProbeKind.READINESS, ProbeKind.LIVENESS]
    assert probes.due(101) == [ProbeKind.LIVENESS] and probes.next_at[ProbeKind.READINESS] == 105
    probes = probes.record(ProbeKind.READINESS, S, 105)
    assert probes.verdict() == ProbeVerdict(started=True, ready=True, restart=False)


def test_startup_failure_asks_for_a_restart() -> None:
    probes = ContainerProbes.for_container(CONTAINER, started_at=0)
    probes = probes.record(ProbeKind.STARTUP, F, 0).record(ProbeKind.STARTUP, F, 1)
    assert probes.verdict() == ProbeVerdict(False, False, True, "Startup probe failed")
    assert probes.next_wakeup() is None


async def test_runner_flips_ready_when_the_probe_passes_on_a_fake_clock() -> None:
    container = {"readinessProbe": {"httpGet": {"port": 80}, "initialDelaySeconds": 3, "periodSeconds": 2,
                                    "successThreshold": 2}}
    clock = [0.0]
    answers = iter([F, S, S])
    probed_at: list[float] = []
    verdicts: list[ProbeVerdict] = []

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    async def probe(_spec: ProbeSpec, _target: ProbeTarget) -> tuple[Result, str]:
        probed_at.append(clock[0])
        try:
            return next(answers), ""
        except StopIteration:
            raise AssertionError("probed more than needed") from None

    runner = ProbeRunner(container, 0.0, ProbeTarget(netns="/nonexistent"), verdicts.append,
                         clock=lambda: clock[0], sleep=sleep, probe=probe)

    def stop_when_ready(verdict: ProbeVerdict) -> None:
        verdicts.append(verdict)
        if verdict.ready:
            raise Done

    runner.on_change = stop_when_ready
    with pytest.raises(Done):
        await runner.run()
    assert probed_at == [3, 5, 7]
    assert [v.ready for v in verdicts] == [False, True]


async def test_runner_returns_a_restart_verdict_on_liveness_failure() -> None:
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    async def failing(_spec: ProbeSpec, _target: ProbeTarget) -> tuple[Result, str]:
        return F, "connection refused"

    runner = ProbeRunner({"livenessProbe": {"tcpSocket": {"port": 1}, "failureThreshold": 2}}, 0.0,
                         ProbeTarget(netns="/nonexistent"), lambda _v: None, clock=lambda: clock[0], sleep=sleep,
                         probe=failing)
    verdict = await runner.run()
    assert verdict.restart and verdict.reason == "Liveness probe failed" and clock[0] == 10
