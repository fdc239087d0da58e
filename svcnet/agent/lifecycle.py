"""Container lifecycle hooks: postStart, run as a container starts, and preStop, run before it is stopped.

postStart (kubelet's startContainer, step 4): once the container's process runs, its hook runs,
with no time limit of its own; the container is not started (its status says ContainerCreating,
it is not Ready) until the hook returns. A hook that fails is a FailedPostStartHook warning, and
the container is killed as killContainer kills it (its preStop hook, then SIGTERM), then restarted
per the pod's restartPolicy. The hook races the container's own start: an httpGet hook to a server
that is not listening yet fails, as upstream.

What kubelet's killContainer does (pkg/kubelet/kuberuntime/kuberuntime_container.go): when the
container has a preStop hook and the grace period is not zero, the hook runs first (exec in
the container, an HTTP GET to the pod, or a sleep), bounded by the grace period; the time it
took is taken off the grace period; SIGTERM follows, with at least 2 s before SIGKILL. A hook
that fails is a FailedPreStopHook warning and the container is stopped all the same.

This is what lets an app keep serving while the proxies drop a terminating pod from their
rules: a `preStop: {sleep: {seconds: N}}` (or `exec: [sleep, N]`) holds SIGTERM back while
the EndpointSlice says terminating and kube-proxy resyncs.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.agent.probes import ProbeTarget, http_get

# kubelet's minimumGracePeriodInSeconds: SIGTERM always gets this long before SIGKILL.
MINIMUM_GRACE_SECONDS = 2.0
FAILED_PRE_STOP_HOOK = "FailedPreStopHook"
FAILED_POST_START_HOOK = "FailedPostStartHook"


def pre_stop_handler(container: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return ((container.get("lifecycle") or {}).get("preStop")) or None


def post_start_handler(container: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return ((container.get("lifecycle") or {}).get("postStart")) or None


async def run_handler(handler: Mapping[str, Any], target: ProbeTarget, timeout: float | None) -> str:
    """Run one lifecycle handler; "" when it succeeded, else why it failed (the log's wording).

    timeout None: no limit (a postStart hook's). tcpSocket is no handler kubelet runs (the API
    keeps the field for compatibility only), so a hook with it fails."""
    if handler.get("exec") is not None:
        argv = list((handler["exec"] or {}).get("command") or ())
        if target.exec_command is None:
            return "Cannot run handler: exec needs a command runner"
        code = await target.exec_command(argv, timeout)
        return "" if code == 0 else f"Exec lifecycle hook ({argv}) for Container {target.name!r} failed - " \
                                    f"error: command {argv!r} exited with {code}"
    if handler.get("httpGet") is not None:
        # Only a request that cannot be made fails the hook: kubelet reads the body and ignores the code.
        try:
            await asyncio.wait_for(http_get(handler["httpGet"], target), timeout)
        except (OSError, ValueError, TimeoutError) as error:
            return f"Http lifecycle hook ({handler['httpGet'].get('path', '')}) for Container {target.name!r} " \
                   f"failed - error: {error}"
        return ""
    if handler.get("sleep") is not None:
        await asyncio.sleep(max(0, int((handler["sleep"] or {}).get("seconds") or 0)))
        return ""
    return f"Cannot run handler: invalid handler: {', '.join(handler) or 'none'}"


@dataclass(frozen=True)
class PreStopOutcome:
    grace_left: float  # what SIGTERM gets before SIGKILL
    error: str = ""  # why the hook failed ("" if it did not, or did not run)
    timed_out: bool = False  # the grace period ended before the hook did


async def run_pre_stop(container: Mapping[str, Any], target: ProbeTarget, grace: float,
                       clock: Callable[[], float] = time.monotonic) -> PreStopOutcome:
    """The container's preStop hook (if any), bounded by the grace period; the grace left for SIGTERM."""
    handler = pre_stop_handler(container)
    if handler is None or grace <= 0:
        return PreStopOutcome(max(grace, MINIMUM_GRACE_SECONDS))
    started = clock()
    error, timed_out = "", False
    try:
        error = await asyncio.wait_for(run_handler(handler, target, grace), grace)
    except TimeoutError:
        timed_out = True
    # kubelet takes whole seconds off, as it measures them.
    elapsed = int(clock() - started)
    return PreStopOutcome(max(grace - elapsed, MINIMUM_GRACE_SECONDS), error, timed_out)
