from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from svcnet.agent.probes import (
    LISTEN_POLL_MAX,
    LISTEN_WATCH_LIMIT,
    ContainerProbes,
    ProbeKind,
    ProbeRunner,
    ProbeSpec,
    ProbeState,
    ProbeTarget,
    ProbeVerdict,
    Result,
    observe,
    probe_port,
)
from svcnet.testing.sockdiag import FakeListeningPorts

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


# ---- the first probe as soon as the server listens (sock_diag watch; a fake listener and a fake clock)


class Server:
    """A container's server on a fake clock: listens on `port` from `listen_at`; its probes succeed
    from `healthy_at` (default: as soon as it listens)."""

    def __init__(self, port: int, listen_at: float, healthy_at: float | None = None) -> None:
        self.clock = [0.0]
        self.port, self.listen_at = port, listen_at
        self.healthy_at = listen_at if healthy_at is None else healthy_at
        self.listeners = FakeListeningPorts()
        self.probed: list[tuple[float, Result]] = []

    async def sleep(self, seconds: float) -> None:
        self.clock[0] += seconds
        if self.clock[0] >= self.listen_at:
            self.listeners.listen(self.port)

    async def probe(self, spec: ProbeSpec, _target: ProbeTarget) -> tuple[Result, str]:
        now = self.clock[0]
        outcome = S if now >= self.listen_at and now >= self.healthy_at else F
        self.probed.append((now, outcome))
        return outcome, "" if outcome is S else "connection refused"

    def runner(self, container: dict[str, Any], until: Callable[[ProbeVerdict], bool] | None = None,
               stop_at: float = 100.0, ports: dict[str, int] | None = None) -> ProbeRunner:
        async def sleep(seconds: float) -> None:
            await self.sleep(seconds)
            if self.clock[0] > stop_at:
                raise Done

        def on_change(verdict: ProbeVerdict) -> None:
            if until is not None and until(verdict):
                raise Done

        target = ProbeTarget(netns="/nonexistent", pod_ip="10.244.1.5", ports=ports or {}, listeners=self.listeners)
        return ProbeRunner(container, 0.0, target, on_change, clock=lambda: self.clock[0], sleep=sleep,
                           probe=self.probe)


async def run_until_done(runner: ProbeRunner) -> ProbeVerdict:
    try:
        return await runner.run()
    except Done:
        return runner.verdict


async def test_readiness_is_probed_when_the_port_listens_not_a_period_later() -> None:
    server = Server(port=8080, listen_at=2.0)
    runner = server.runner({"readinessProbe": {"tcpSocket": {"port": 8080}}}, until=lambda v: v.ready)
    verdict = await run_until_done(runner)
    assert verdict.ready
    (first_at, first), (second_at, second) = server.probed
    assert (first_at, first, second) == (0.0, F, S)  # the tick at start found nothing; the extra probe passed
    assert 2.0 <= second_at <= 2.0 + LISTEN_POLL_MAX < 10.0  # the port was looked at until it listened
    assert runner.extra_probes == {ProbeKind.READINESS: 1}
    assert runner.probes.next_at[ProbeKind.READINESS] == 10.0  # the ticker kept its schedule
    assert server.listeners.closed


async def test_a_named_port_is_watched_and_http_probes_too() -> None:
    server = Server(port=9376, listen_at=1.0)
    runner = server.runner({"readinessProbe": {"httpGet": {"port": "serve"}}}, until=lambda v: v.ready,
                           ports={"serve": 9376})
    assert (await run_until_done(runner)).ready
    assert runner.extra_probes == {ProbeKind.READINESS: 1} and server.probed[-1][0] < 10.0


async def test_an_extra_probe_that_fails_is_not_counted_and_spends_no_startup_budget() -> None:
    # Listening from t=1 but unhealthy until t=15: the ticks at 0 and 10 fail (2 of 3), the one at 20 passes.
    server = Server(port=8080, listen_at=1.0, healthy_at=15.0)
    runner = server.runner({"startupProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 3}},
                           until=lambda v: v.started or v.restart)
    verdict = await run_until_done(runner)
    assert verdict.started and not verdict.restart
    assert [at for at, _ in server.probed if at == int(at)] == [0.0, 10.0, 20.0]  # the ticker, unmoved
    assert len(server.probed) == 4 and runner.extra_probes == {ProbeKind.STARTUP: 1}
    assert 1.0 <= server.probed[1][0] < 10.0 and server.probed[1][1] is F  # the extra one, not counted


async def test_startup_then_readiness_each_probed_when_the_port_listens() -> None:
    server = Server(port=8080, listen_at=3.0)
    container = {"startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10},
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10}}
    verdict = await run_until_done(server.runner(container, until=lambda v: v.ready))
    assert verdict.started and verdict.ready and server.probed[-1][0] < 10.0


async def test_initial_delay_holds_for_the_watch_too() -> None:
    server = Server(port=8080, listen_at=1.0)
    runner = server.runner({"readinessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5}},
                           until=lambda v: v.ready)
    assert (await run_until_done(runner)).ready
    assert server.probed == [(5.0, S)]  # nothing before the delay; then the tick found it listening
    assert server.listeners.checks == 0 and runner.extra_probes == {}


async def test_after_the_first_success_the_ticker_alone_probes() -> None:
    server = Server(port=8080, listen_at=0.0)
    runner = server.runner({"readinessProbe": {"tcpSocket": {"port": 8080}}}, stop_at=35.0)
    await run_until_done(runner)
    assert [at for at, _ in server.probed] == [0.0, 10.0, 20.0, 30.0]
    assert server.listeners.checks == 0 and runner.extra_probes == {}


async def test_exec_and_liveness_probes_keep_the_ticker_alone() -> None:
    server = Server(port=8080, listen_at=2.0)
    runner = server.runner({"readinessProbe": {"exec": {"command": ["true"]}},
                            "livenessProbe": {"tcpSocket": {"port": 8080}}}, stop_at=15.0)
    await run_until_done(runner)
    assert server.listeners.checks == 0 and runner.extra_probes == {}


async def test_a_port_that_never_listens_is_watched_for_a_bounded_time() -> None:
    server = Server(port=8080, listen_at=1e9)
    runner = server.runner({"readinessProbe": {"tcpSocket": {"port": 8080}}}, stop_at=LISTEN_WATCH_LIMIT + 30)
    await run_until_done(runner)
    looks = server.listeners.checks
    assert 0 < looks <= LISTEN_WATCH_LIMIT / LISTEN_POLL_MAX + 20  # the wait between looks grew to its cap
    assert [at for at, _ in server.probed][-3:] == [70.0, 80.0, 90.0] and runner.probes.listen == {}


async def test_unreadable_listening_sockets_leave_the_ticker_alone() -> None:
    server = Server(port=8080, listen_at=2.0)
    server.listeners.close()  # the namespace went away: every look fails
    runner = server.runner({"readinessProbe": {"tcpSocket": {"port": 8080}}}, until=lambda v: v.ready)
    assert (await run_until_done(runner)).ready
    assert [at for at, _ in server.probed] == [0.0, 10.0] and runner.extra_probes == {}


@pytest.mark.parametrize("handler, ports, port", [
    ({"tcpSocket": {"port": 80}}, {}, 80),
    ({"httpGet": {"port": "8080", "path": "/healthz"}}, {}, 8080),
    ({"httpGet": {"port": "web"}}, {"web": 9376}, 9376),
    ({"grpc": {"port": 50051}}, {}, 50051),
    ({"httpGet": {"port": "nope"}}, {}, None),  # the probe itself says why it fails
    ({"httpGet": {"port": 80, "host": "192.0.2.1"}}, {}, None),  # another host: its sockets are not the pod's
    ({"httpGet": {"port": 80, "host": "10.244.1.5"}}, {}, 80),
    ({"exec": {"command": ["true"]}}, {}, None),
])
def test_the_port_a_probe_dials(handler: dict[str, Any], ports: dict[str, int], port: int | None) -> None:
    assert probe_port(ProbeSpec(ProbeKind.READINESS, handler), ports, "10.244.1.5") == port
