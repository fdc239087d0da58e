"""preStop hooks as kubelet runs them: bounded by the grace period, which they use up (2 s stays for SIGTERM)."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from svcnet.agent.lifecycle import MINIMUM_GRACE_SECONDS, post_start_handler, run_handler, run_pre_stop
from svcnet.agent.probes import ProbeTarget


class Clock:
    """Monotonic time that the fake exec command advances, so elapsed seconds are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def target_running(exit_code: int, clock: Clock, seconds: float = 0.0, ran: list[Any] | None = None) -> ProbeTarget:
    async def exec_command(argv: Sequence[str], timeout: float) -> int:
        if ran is not None:
            ran.append((list(argv), timeout))
        clock.now += seconds
        return exit_code

    return ProbeTarget(netns="/nonexistent", pod_ip="10.244.1.5", exec_command=exec_command, name="default/web/app")


def container(pre_stop: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": "app", "lifecycle": {"preStop": pre_stop}} if pre_stop else {"name": "app"}


async def test_exec_hook_runs_with_the_grace_period_as_timeout_and_its_time_comes_off_the_grace() -> None:
    clock, ran = Clock(), []
    outcome = await run_pre_stop(container({"exec": {"command": ["sleep", "5"]}}), target_running(0, clock, 5.4, ran),
                                 30, clock)
    assert ran == [(["sleep", "5"], 30)]
    assert (outcome.grace_left, outcome.error, outcome.timed_out) == (25, "", False)  # whole seconds, as kubelet


async def test_sigterm_gets_at_least_two_seconds_after_a_long_hook() -> None:
    clock = Clock()
    outcome = await run_pre_stop(container({"exec": {"command": ["true"]}}), target_running(0, clock, 29.0), 30, clock)
    assert outcome.grace_left == MINIMUM_GRACE_SECONDS == 2


async def test_a_failing_exec_hook_says_why_and_still_leaves_the_grace() -> None:
    clock = Clock()
    outcome = await run_pre_stop(container({"exec": {"command": ["false"]}}), target_running(1, clock), 10, clock)
    assert "exited with 1" in outcome.error and "default/web/app" in outcome.error
    assert outcome.grace_left == 10


async def test_a_hook_longer_than_the_grace_period_is_cut_off_at_its_end() -> None:
    outcome = await run_pre_stop(container({"sleep": {"seconds": 60}}), target_running(0, Clock()), 0.05)
    assert outcome.timed_out and outcome.error == ""
    assert outcome.grace_left == MINIMUM_GRACE_SECONDS


async def test_sleep_hook_waits_its_seconds() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await run_pre_stop(container({"sleep": {"seconds": 1}}), target_running(0, Clock()), 30)
    assert loop.time() - started >= 1
    assert outcome.grace_left == 29 and not outcome.timed_out


async def test_no_hook_or_no_grace_runs_nothing() -> None:
    ran: list[Any] = []
    clock = Clock()
    assert (await run_pre_stop(container(None), target_running(0, clock, ran=ran), 30, clock)).grace_left == 30
    hook = container({"exec": {"command": ["sleep", "5"]}})
    assert (await run_pre_stop(hook, target_running(0, clock, ran=ran), 0, clock)).grace_left == MINIMUM_GRACE_SECONDS
    assert ran == []


async def test_http_hook_that_cannot_connect_fails_and_tcp_socket_is_no_hook() -> None:
    failed = await run_handler({"httpGet": {"path": "/quit", "port": 8080}}, target_running(0, Clock()), 5)
    assert failed.startswith("Http lifecycle hook (/quit)")
    assert (await run_handler({"tcpSocket": {"port": 80}}, target_running(0, Clock()), 5)).startswith(
        "Cannot run handler: invalid handler")


async def test_a_post_start_hook_runs_without_a_time_limit() -> None:
    ran: list[Any] = []
    app = {"name": "app", "lifecycle": {"postStart": {"exec": {"command": ["touch", "/ready"]}}}}
    handler = post_start_handler(app)
    assert handler is not None and post_start_handler({"name": "app"}) is None
    assert await run_handler(handler, target_running(0, Clock(), ran=ran), None) == ""
    assert ran == [(["touch", "/ready"], None)]
