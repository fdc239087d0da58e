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

Where svcnet differs from kubelet (pkg/kubelet/prober/worker.go, `run` and
`doProbe`): kubelet probes on a ticker of periodSeconds, so a readiness probe
that found nothing listening at its first tick leaves the pod unready for a
whole period (10 s by default) after the server is up. Here, until a readiness
or startup probe first succeeds, the runner also watches the pod's namespace
for a LISTEN socket on the probe's port (sock_diag, a few tens of microseconds
a look; 10 ms between looks, doubling to 250 ms, for at most 60 s) and probes
once more the moment one appears. That extra probe counts only if it succeeds:
its failure is dropped, so it never spends a startup probe's failureThreshold
budget, and the ticker keeps its own schedule (as a manual trigger does
upstream, `manualTriggerCh`). initialDelaySeconds holds for it too; exec probes,
probes of another host, and liveness probes (which start as Success) keep the
ticker alone.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from svcnet.kernel import KernelError
from svcnet.kernel.netns import socket_in_netns
from svcnet.kernel.process import ProcessId
from svcnet.kernel.sockdiag import ListeningPorts
from svcnet.runtime.sandbox import run_in_pod

log = logging.getLogger("svcnet.agent.probes")

KUBE_PROBE_USER_AGENT = "kube-probe/1.32"
# Watching for the server to listen (see the module docstring): the first look, the cap of the
# doubling wait between looks, and how long to look before leaving it to the ticker alone.
LISTEN_POLL_FIRST = 0.01
LISTEN_POLL_MAX = 0.25
LISTEN_WATCH_LIMIT = 60.0


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
class ListenWatch:
    """Looking for a LISTEN socket on a probe's port until its first success."""

    port: int
    next_at: float  # the next look
    interval: float  # the wait after a look that found nothing (doubles up to LISTEN_POLL_MAX)
    until: float  # no looks from then on: the ticker alone


def probe_port(spec: ProbeSpec, ports: Mapping[str, int], pod_ip: str) -> int | None:
    """The pod port a network probe dials (numeric or a named container port); None for exec, another host,
    or a port that does not resolve (the probe itself reports that)."""
    for key in ("httpGet", "tcpSocket", "grpc"):
        handler = spec.handler.get(key)
        if handler is None:
            continue
        host = handler.get("host") if isinstance(handler, Mapping) else None
        if host and host != pod_ip:
            return None
        try:
            return _resolve_port(handler.get("port") if isinstance(handler, Mapping) else None, ports)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class ContainerProbes:
    """The three probes of one container instance (pure: `due`, `record`, `verdict`; `listen_*` for the watch)."""

    specs: Mapping[ProbeKind, ProbeSpec]
    started_at: float
    states: Mapping[ProbeKind, ProbeState] = field(default_factory=dict)
    next_at: Mapping[ProbeKind, float] = field(default_factory=dict)
    listen: Mapping[ProbeKind, ListenWatch] = field(default_factory=dict)

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
        times += [w.next_at for kind, w in self.listen.items() if kind in self.active()]
        return min(times) if times else None

    def record(self, kind: ProbeKind, outcome: Result, now: float, *, extra: bool = False) -> ContainerProbes:
        """One probe's outcome. An `extra` probe (run because the port began to listen) counts only if it
        succeeded, and leaves the ticker's schedule as it was."""
        if extra and outcome is not Result.SUCCESS:
            return self
        states = {**self.states, kind: observe(self.states[kind], self.specs[kind], outcome)}
        next_at = dict(self.next_at) if extra else {**self.next_at, kind: now + self.specs[kind].period}
        if kind is ProbeKind.STARTUP and states[kind].result is Result.SUCCESS:
            # Readiness and liveness begin once started, each after its own initial delay from the start.
            for other in (ProbeKind.READINESS, ProbeKind.LIVENESS):
                if other in self.specs:
                    next_at[other] = max(now, self.started_at + self.specs[other].initial_delay)
        listen = self.listen if outcome is not Result.SUCCESS else \
            {k: w for k, w in self.listen.items() if k is not kind}  # after the first success: the ticker alone
        return replace(self, states=states, next_at=next_at, listen=listen)

    # ---- watching for the server to listen (readiness and startup, until their first success)

    def watch_listen(self, ports: Mapping[ProbeKind, int]) -> ContainerProbes:
        """Look for a LISTEN socket on these probes' ports from their initial delay on."""
        listen = dict(self.listen)
        for kind, port in ports.items():
            if kind in (ProbeKind.READINESS, ProbeKind.STARTUP) and kind in self.specs:
                begin = self.started_at + self.specs[kind].initial_delay
                listen[kind] = ListenWatch(port, begin, LISTEN_POLL_FIRST, begin + LISTEN_WATCH_LIMIT)
        return replace(self, listen=listen)

    def listen_due(self, now: float) -> list[tuple[ProbeKind, int]]:
        """(probe, port) whose look is due."""
        active = self.active()
        return [(kind, w.port) for kind, w in self.listen.items() if kind in active and w.next_at <= now]

    def listen_missed(self, kind: ProbeKind, now: float) -> ContainerProbes:
        """Nothing listens yet: look again after a wait twice as long (up to LISTEN_POLL_MAX)."""
        watch = self.listen[kind]
        later = replace(watch, next_at=now + watch.interval, interval=min(watch.interval * 2, LISTEN_POLL_MAX))
        return replace(self, listen={**self.listen, kind: later})

    def listen_expire(self, now: float) -> ContainerProbes:
        """Watches past LISTEN_WATCH_LIMIT end: the ticker alone from then on."""
        if all(now < w.until for w in self.listen.values()):
            return self
        return replace(self, listen={k: w for k, w in self.listen.items() if now < w.until})

    def listen_seen(self, kind: ProbeKind) -> ContainerProbes:
        """The port listens: no more looks for this probe (the one extra probe follows)."""
        return replace(self, listen={k: w for k, w in self.listen.items() if k is not kind})

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
    exec_command: Callable[[Sequence[str], float | None], Awaitable[int]] | None = None  # (argv, timeout) -> exit code
    listeners: ListeningPorts | None = None  # the pod namespace's LISTEN sockets (None: the ticker alone)
    name: str = ""  # namespace/pod/container, for the log


def exec_in_pod_runner(infra: ProcessId, env: Mapping[str, str] | None = None
                       ) -> Callable[[Sequence[str], float | None], Awaitable[int]]:
    """An exec-probe runner: the command runs in the pod's namespaces with the container's env."""

    async def run(argv: Sequence[str], timeout: float | None) -> int:
        code, _, _ = await run_in_pod(infra, argv, env=env, timeout=timeout)
        return code

    return run


def _resolve_port(port: Any, ports: Mapping[str, int]) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    if port in ports:
        return ports[port]
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
    port = _resolve_port(handler.get("port"), target.ports)
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
    port = _resolve_port(handler.get("port"), target.ports)
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

    The clock and sleep are injectable so tests can drive it without waiting. `on_failure(spec,
    message)` hears each counted failure (the agent's Unhealthy event); `extra_probes` counts the
    probes run because the port began to listen, by probe kind.
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
        self.on_failure: Callable[[ProbeSpec, str], None] | None = None
        self.last_messages: dict[ProbeKind, str] = {}
        self.extra_probes: dict[ProbeKind, int] = {}
        if target.listeners is not None:
            self.probes = self.probes.watch_listen({
                kind: port for kind, spec in self.probes.specs.items()
                if (port := probe_port(spec, target.ports, target.pod_ip)) is not None})

    @property
    def verdict(self) -> ProbeVerdict:
        return self.probes.verdict()

    async def run(self) -> ProbeVerdict:
        """Probe until a restart is due (returned) or no probe is left to run (returns the final verdict)."""
        try:
            return await self._run()
        finally:
            if self.target.listeners is not None:
                self.target.listeners.close()

    async def _run(self) -> ProbeVerdict:
        verdict = self.probes.verdict()
        self.on_change(verdict)
        while True:
            self.probes = self.probes.listen_expire(self.clock())
            wakeup = self.probes.next_wakeup()
            if wakeup is None or verdict.restart:
                return verdict
            now = self.clock()
            if wakeup > now:
                await self.sleep(wakeup - now)
                continue
            for kind in self.probes.due(now):
                await self._probe(kind, extra=False)
            due = self.probes.listen_due(self.clock())
            listening = self._listening() if due else frozenset()
            for kind, port in due:
                if listening is None:  # cannot look (the namespace is going away): the ticker alone
                    self.probes = self.probes.listen_seen(kind)
                elif port in listening:
                    self.probes = self.probes.listen_seen(kind)
                    self.extra_probes[kind] = self.extra_probes.get(kind, 0) + 1
                    log.info("%s %s: port %d listens: probing at once", self.target.name, kind.value, port)
                    await self._probe(kind, extra=True)
                else:
                    self.probes = self.probes.listen_missed(kind, self.clock())
            new = self.probes.verdict()
            if new != verdict:
                verdict = new
                self.on_change(verdict)

    async def _probe(self, kind: ProbeKind, *, extra: bool) -> None:
        spec = self.probes.specs[kind]
        outcome, message = await self.probe(spec, self.target)
        if extra and outcome is not Result.SUCCESS:
            return  # not counted, not reported: the ticker's next probe says what it says
        self.last_messages[kind] = message
        if outcome is Result.FAILURE and message and self.on_failure is not None:
            self.on_failure(spec, message)
        self.probes = self.probes.record(kind, outcome, self.clock(), extra=extra)

    def _listening(self) -> frozenset[int] | None:
        """The ports that listen in the pod's namespace; None if they cannot be read."""
        assert self.target.listeners is not None
        try:
            return self.target.listeners.listening_ports()
        except (OSError, KernelError) as error:
            log.info("%s: cannot read the pod's listening sockets (%s): probing on the period alone",
                     self.target.name, error)
            return None
