"""Readiness, liveness and startup probes: a pure state machine per probe, and an async runner.

The state machine is kubelet's prober worker: a probe's published result starts
at Failure (readiness), Success (liveness) or Unknown (startup); it changes only
after successThreshold consecutive successes or failureThreshold consecutive
failures; a liveness or startup failure is held until the container restarts;
readiness and liveness wait for the startup probe to succeed.

Where probes connect from: kubelet dials the pod IP from the node. Here the
runner opens its sockets inside the pod's network namespace (a short-lived thread
setns()es there, creates the socket, and the socket keeps that namespace) and
dials the pod IP (or the probe's host) from there. The pod network therefore
need not be routed from wherever the agent runs; a server listening only on the
pod IP is reached the same. exec probes run the command in the pod's namespaces.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from svcnet.kernel.netns import socket_in_netns
from svcnet.kernel.process import ProcessId
from svcnet.runtime.sandbox import run_in_pod

KUBE_PROBE_USER_AGENT = "kube-probe/1.32"


class ProbeKind(Enum):
    READINESS = "readinessProbe"
    LIVENESS = "livenessProbe"
    STARTUP = "startupProbe"


class Result(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


INITIAL_RESULT = {ProbeKind.READINESS: Result.FAILURE, ProbeKind.LIVENESS: Result.SUCCESS,
                  ProbeKind.STARTUP: Result.UNKNOWN}


@dataclass(frozen=True)
class ProbeSpec:
    """A probe with the API's defaults filled in."""

    kind: ProbeKind
    handler: Mapping[str, Any]  # {"httpGet": ...} | {"tcpSocket": ...} | {"exec": ...} | {"grpc": ...}
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @staticmethod
    def from_container(container: Mapping[str, Any], kind: ProbeKind) -> ProbeSpec | None:
        probe = container.get(kind.value)
        if not probe:
            return None
        handler = {key: probe[key] for key in ("httpGet", "tcpSocket", "exec", "grpc") if key in probe}
        return ProbeSpec(kind, handler, float(probe.get("initialDelaySeconds") or 0),
                         float(probe.get("periodSeconds") or 10), float(probe.get("timeoutSeconds") or 1),
                         int(probe.get("successThreshold") or 1), int(probe.get("failureThreshold") or 3))


@dataclass(frozen=True)
class ProbeState:
    result: Result  # the published result
    last: Result | None = None  # the latest raw outcome
    run: int = 0  # how many times in a row `last` came
    on_hold: bool = False  # a liveness/startup failure was published: no more probing this instance

    @staticmethod
    def initial(kind: ProbeKind) -> ProbeState:
        return ProbeState(INITIAL_RESULT[kind])


def observe(state: ProbeState, spec: ProbeSpec, outcome: Result) -> ProbeState:
    """Feed one probe outcome; the published result moves only when a threshold is met."""
    if state.on_hold:
        return state
    run = state.run + 1 if state.last == outcome else 1
    state = replace(state, last=outcome, run=run)
    if (outcome is Result.FAILURE and run < spec.failure_threshold) or (
            outcome is Result.SUCCESS and run < spec.success_threshold):
        return state
    state = replace(state, result=outcome)
    if outcome is Result.FAILURE and spec.kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
        # The container will be restarted; the counters start over with the next instance.
        state = replace(state, run=0, on_hold=True)
    return state


@dataclass(frozen=True)
class ProbeVerdict:
    """What the probes say of a running container."""

    started: bool  # startup probe passed (or none)
    ready: bool  # started and readiness passing (or no readiness probe)
    restart: bool  # liveness or startup failed: kill and restart the container
    reason: str = ""


@dataclass(frozen=True)
class ContainerProbes:
    """The three probes of one container instance (pure: `due`, `record`, `verdict`)."""

    specs: Mapping[ProbeKind, ProbeSpec]
    started_at: float
    states: Mapping[ProbeKind, ProbeState] = field(default_factory=dict)
    next_at: Mapping[ProbeKind, float] = field(default_factory=dict)

    @staticmethod
    def for_container(container: Mapping[str, Any], started_at: float) -> ContainerProbes:
        specs = {kind: spec for kind in ProbeKind if (spec := ProbeSpec.from_container(container, kind))}
        return ContainerProbes(specs, started_at, {kind: ProbeState.initial(kind) for kind in specs},
                               {kind: started_at + spec.initial_delay for kind, spec in specs.items()})

    def _started(self) -> bool:
        startup = self.states.get(ProbeKind.STARTUP)
        return startup is None or startup.result is Result.SUCCESS

    def active(self) -> list[ProbeKind]:
        """Probes that still run: startup until it passes; readiness and liveness after it."""
        kinds = []
        for kind in self.specs:
            state = self.states[kind]
            if state.on_hold:
                continue
            if kind is ProbeKind.STARTUP:
                if state.result is not Result.SUCCESS:
                    kinds.append(kind)
            elif self._started():
                kinds.append(kind)
        return kinds

    def due(self, now: float) -> list[ProbeKind]:
        return [kind for kind in self.active() if self.next_at[kind] <= now]

    def next_wakeup(self) -> float | None:
        times = [self.next_at[kind] for kind in self.active()]
        return min(times) if times else None

    def record(self, kind: ProbeKind, outcome: Result, now: float) -> ContainerProbes:
        states = {**self.states, kind: observe(self.states[kind], self.specs[kind], outcome)}
        next_at = {**self.next_at, kind: now + self.specs[kind].period}
        if kind is ProbeKind.STARTUP and states[kind].result is Result.SUCCESS:
            # Readiness and liveness begin once started, each after its own initial delay from the start.
            for other in (ProbeKind.READINESS, ProbeKind.LIVENESS):
                if other in self.specs:
                    next_at[other] = max(now, self.started_at + self.specs[other].initial_delay)
        return replace(self, states=states, next_at=next_at)

    def verdict(self) -> ProbeVerdict:
        started = self._started()
        readiness = self.states.get(ProbeKind.READINESS)
        ready = started and (readiness is None or readiness.result is Result.SUCCESS)
        for kind, reason in ((ProbeKind.STARTUP, "Startup probe failed"), (ProbeKind.LIVENESS, "Liveness probe failed")):
            state = self.states.get(kind)
            if state is not None and state.result is Result.FAILURE:
                return ProbeVerdict(started, False, True, reason)
        return ProbeVerdict(started, ready, False)


# ---- running probes ----

@dataclass(frozen=True)
class ProbeTarget:
    """Where a container's probes go."""

    netns: str  # a network namespace path: /proc/<infra pid>/ns/net or /run/netns/...
    pod_ip: str = ""
    ports: Mapping[str, int] = field(default_factory=dict)  # named container ports
    exec_command: Callable[[Sequence[str], float], Awaitable[int]] | None = None  # (argv, timeout) -> exit code


def exec_in_pod_runner(infra: ProcessId, env: Mapping[str, str] | None = None
                       ) -> Callable[[Sequence[str], float], Awaitable[int]]:
    """An exec-probe runner: the command runs in the pod's namespaces with the container's env."""

    async def run(argv: Sequence[str], timeout: float) -> int:
        code, _, _ = await run_in_pod(infra, argv, env=env, timeout=timeout)
        return code

    return run


def _resolve_port(port: Any, target: ProbeTarget) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    if port in target.ports:
        return target.ports[port]
    raise ValueError(f"port {port!r} is not a number or a named container port")


async def _connect(host: str, port: int, target: ProbeTarget) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket_in_netns(target.netns, family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def http_get(handler: Mapping[str, Any], target: ProbeTarget) -> tuple[Result, str]:
    """kubelet's HTTP probe: 200-399 is success (redirects are not followed: 3xx counts as success)."""
    host = handler.get("host") or target.pod_ip or "127.0.0.1"
    port = _resolve_port(handler.get("port"), target)
    path = handler.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    headers = {"Host": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
               "User-Agent": KUBE_PROBE_USER_AGENT, "Accept": "*/*"}
    for header in handler.get("httpHeaders") or ():
        headers[header.get("name", "")] = header.get("value", "")
    headers["Connection"] = "close"
    sock = await _connect(host, port, target)
    context = None
    if (handler.get("scheme") or "HTTP").upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # as kubelet: probes do not verify certificates
    reader, writer = await asyncio.open_connection(sock=sock, ssl=context,
                                                   server_hostname=host if context else None)
    try:
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(request.encode())
        await writer.drain()
        status_line = (await reader.readline()).decode(errors="replace").split()
    finally:
        writer.close()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return Result.FAILURE, "HTTP probe failed: malformed response"
    code = int(status_line[1])
    if 200 <= code < 400:
        return Result.SUCCESS, ""
    return Result.FAILURE, f"HTTP probe failed with statuscode: {code}"


async def tcp_socket(handler: Mapping[str, Any], target: ProbeTarget) -> tuple[Result, str]:
    host = handler.get("host") or target.pod_ip or "127.0.0.1"
    port = _resolve_port(handler.get("port"), target)
    try:
        sock = await _connect(host, port, target)
    except OSError as error:
        return Result.FAILURE, f"dial tcp {host}:{port}: connect: {error.strerror or error}"
    sock.close()
    return Result.SUCCESS, ""


async def run_probe(spec: ProbeSpec, target: ProbeTarget) -> tuple[Result, str]:
    """One probe attempt, bounded by timeoutSeconds; (outcome, message for the event)."""
    handler = spec.handler
    try:
        if "httpGet" in handler:
            return await asyncio.wait_for(http_get(handler["httpGet"], target), spec.timeout)
        if "tcpSocket" in handler:
            return await asyncio.wait_for(tcp_socket(handler["tcpSocket"], target), spec.timeout)
        if "exec" in handler:
            if target.exec_command is None:
                return Result.UNKNOWN, "exec probes need a command runner"
            argv = list((handler["exec"] or {}).get("command") or ())
            code = await target.exec_command(argv, spec.timeout)
            return (Result.SUCCESS, "") if code == 0 else (Result.FAILURE, f"command {argv!r} exited with {code}")
        return Result.UNKNOWN, f"unsupported probe handler: {', '.join(handler) or 'none'}"
    except TimeoutError:
        return Result.FAILURE, f"probe timed out after {spec.timeout:g}s"
    except (OSError, ValueError) as error:
        return Result.FAILURE, str(error)


class ProbeRunner:
    """Runs one container instance's probes until cancelled, reporting each verdict change.

    The clock and sleep are injectable so tests can drive it without waiting.
    """

    def __init__(self, container: Mapping[str, Any], started_at: float, target: ProbeTarget,
                 on_change: Callable[[ProbeVerdict], None], *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 probe: Callable[[ProbeSpec, ProbeTarget], Awaitable[tuple[Result, str]]] = run_probe) -> None:
        self.probes = ContainerProbes.for_container(container, started_at)
        self.target = target
        self.on_change = on_change
        self.clock = clock
        self.sleep = sleep
        self.probe = probe
        self.last_messages: dict[ProbeKind, str] = {}

    @property
    def verdict(self) -> ProbeVerdict:
        return self.probes.verdict()

    async def run(self) -> ProbeVerdict:
        """Probe until a restart is due (returned) or no probe is left to run (returns the final verdict)."""
        verdict = self.probes.verdict()
        self.on_change(verdict)
        while True:
            wakeup = self.probes.next_wakeup()
            if wakeup is None or verdict.restart:
                return verdict
            now = self.clock()
            if wakeup > now:
                await self.sleep(wakeup - now)
                continue
            for kind in self.probes.due(now):
                outcome, message = await self.probe(self.probes.specs[kind], self.target)
                self.last_messages[kind] = message
                self.probes = self.probes.record(kind, outcome, self.clock())
            new = self.probes.verdict()
            if new != verdict:
                verdict = new
                self.on_change(verdict)
