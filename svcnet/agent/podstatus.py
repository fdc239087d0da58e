"""A pod's status as kubelet computes it (pure): phase, conditions, container statuses, IPs.

The agent observes each container (the runtime's latest and previous instance,
why it waits, what its probes say) and `pod_status` turns that into the
status object kubelet writes through pods/status:

- phase by kubelet's getPhase (init containers first, then the app
  containers' running/waiting/stopped counts and restartPolicy);
- conditions PodReadyToStartContainers, Initialized, Ready, ContainersReady
  and PodScheduled, in kubelet's order, each keeping its lastTransitionTime
  while its status stays the same;
- container statuses: state (waiting/running/terminated), lastState (the
  instance before), restartCount (the instance number), ready and started;
  app containers sorted by name and init containers in spec order, as
  kubelet sorts them;
- podIP/podIPs, hostIP/hostIPs and startTime (kept once set).

Times are unix seconds in, RFC 3339 (seconds) out.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svcnet.api.objects import spec_of, status_of
from svcnet.runtime.containers import ContainerStatus, RunState

Obj = dict[str, Any]

RUNTIME_SCHEME = "svcnet"  # containerID is "<runtime>://<id>", as containerd://... upstream
CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def rfc3339(unix_seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(unix_seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str = ""
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    container_id: str = ""

    def to_api(self) -> Obj:
        out: Obj = {"exitCode": self.exit_code}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        out["startedAt"] = rfc3339(self.started_at) if self.started_at is not None else None
        out["finishedAt"] = rfc3339(self.finished_at) if self.finished_at is not None else None
        if self.container_id:
            out["containerID"] = self.container_id
        return out


@dataclass(frozen=True)
class ContainerObservation:
    """One container as the agent sees it. Exactly one of running/terminated/waiting describes `state`."""

    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    restart_count: int = 0
    running_since: float | None = None
    terminated: Terminated | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    last_terminated: Terminated | None = None
    ready: bool = False
    started: bool = False

    @property
    def is_running(self) -> bool:
        return self.running_since is not None

    @property
    def is_waiting(self) -> bool:
        return self.running_since is None and self.terminated is None

    def to_api(self) -> Obj:
        if self.running_since is not None:
            state: Obj = {"running": {"startedAt": rfc3339(self.running_since)}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated.to_api()}
        else:
            waiting: Obj = {"reason": self.waiting_reason}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            state = {"waiting": waiting}
        out: Obj = {
            "name": self.name,
            "state": state,
            "lastState": {"terminated": self.last_terminated.to_api()} if self.last_terminated else {},
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.started,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def container_id(pod_uid: str, name: str, instance: int) -> str:
    """A stable id per container instance, shaped like containerd's (64 hex digits)."""
    digest = hashlib.sha256(f"{pod_uid}/{name}/{instance}".encode()).hexdigest()
    return f"{RUNTIME_SCHEME}://{digest}"


def _terminated_of(status: ContainerStatus, pod_uid: str) -> Terminated:
    return Terminated(status.exit_code if status.exit_code is not None else 0, status.reason, status.message,
                      status.started_at, status.finished_at, container_id(pod_uid, status.name, status.restart_count))


def observe_container(name: str, image: str, pod_uid: str, *, latest: ContainerStatus | None,
                      previous: ContainerStatus | None, image_id: str = "", waiting_reason: str = "",
                      waiting_message: str = "", ready: bool = False, started: bool = False,
                      default_waiting: str = "ContainerCreating") -> ContainerObservation:
    """A container's observation from the runtime's instances and the agent's reasons.

    A reason to wait (CrashLoopBackOff, ErrImagePull, ...) wins over an exited
    instance, which then becomes lastState, as kubelet's reasonCache does.
    """
    if latest is None:
        return ContainerObservation(name, image, image_id, waiting_reason=waiting_reason or default_waiting,
                                    waiting_message=waiting_message)
    cid = container_id(pod_uid, name, latest.restart_count)
    last = _terminated_of(previous, pod_uid) if previous is not None else None
    if latest.state is RunState.RUNNING:
        return ContainerObservation(name, image, image_id, cid, latest.restart_count,
                                    running_since=latest.started_at or 0.0, last_terminated=last,
                                    ready=ready, started=started)
    terminated = _terminated_of(latest, pod_uid)
    if waiting_reason:
        return ContainerObservation(name, image, image_id, cid, latest.restart_count,
                                    waiting_reason=waiting_reason, waiting_message=waiting_message,
                                    last_terminated=terminated)
    return ContainerObservation(name, image, image_id, cid, latest.restart_count, terminated=terminated,
                                last_terminated=last)


@dataclass(frozen=True)
class PodObservation:
    """Everything the agent knows of a pod at one moment."""

    init_containers: tuple[ContainerObservation, ...] = ()
    containers: tuple[ContainerObservation, ...] = ()
    pod_ips: tuple[str, ...] = ()
    host_ips: tuple[str, ...] = ()
    sandbox_ready: bool = False
    init_failed: bool = False  # an init container failed under restartPolicy Never
    terminal: bool = False  # the agent will not run this pod's containers again


def restart_policy(pod: Mapping[str, Any]) -> str:
    """spec.restartPolicy, Always when unset."""
    return str(spec_of(pod).get("restartPolicy") or "Always")


def pod_phase(pod: Mapping[str, Any], observed: PodObservation) -> str:
    """kubelet's getPhase."""
    policy = restart_policy(pod)
    pending_init = failed_init = 0
    for init in observed.init_containers:
        if init.is_running:
            pending_init += 1
        elif init.terminated is not None:
            if init.terminated.exit_code != 0:
                failed_init += 1
        elif init.last_terminated is not None and init.last_terminated.exit_code != 0:
            failed_init += 1
        else:
            pending_init += 1
    if failed_init and policy == "Never":
        return "Failed"
    unknown = running = waiting = stopped = succeeded = 0
    for container in observed.containers:
        if container.is_running:
            running += 1
        elif container.terminated is not None:
            stopped += 1
            if container.terminated.exit_code == 0:
                succeeded += 1
        elif container.last_terminated is not None:
            stopped += 1  # waiting to restart after an exit
        else:
            waiting += 1
    if not observed.containers:
        unknown += 1
    app_started = any(not c.is_waiting or c.last_terminated for c in observed.containers)
    if (pending_init or failed_init) and not app_started:
        return "Pending"
    if waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if observed.terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _names_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def _conditions(pod: Mapping[str, Any], observed: PodObservation, phase: str) -> list[tuple[str, bool, str, str]]:
    """(type, status, reason, message) in kubelet's order."""
    conditions: list[tuple[str, bool, str, str]] = [("PodReadyToStartContainers", observed.sandbox_ready, "", "")]

    incomplete = [c.name for c in observed.init_containers
                  if not (c.terminated is not None and c.terminated.exit_code == 0)]
    app_started = any(not c.is_waiting or c.last_terminated for c in observed.containers)
    if not incomplete or app_started:
        conditions.append(("Initialized", True, "", ""))
    else:
        conditions.append(("Initialized", False, "ContainersNotInitialized",
                           f"containers with incomplete status: {_names_list(incomplete)}"))

    if phase == "Succeeded":
        containers_ready = (False, "PodCompleted", "")
    else:
        unready = [c.name for c in observed.containers if not c.ready]
        if not observed.containers:
            containers_ready = (False, "ContainersNotReady", "")
        elif unready:
            containers_ready = (False, "ContainersNotReady", f"containers with unready status: {_names_list(unready)}")
        else:
            containers_ready = (True, "", "")
    gates_ok, gate_message = _readiness_gates(pod)
    if containers_ready[0] and not gates_ok:
        ready = (False, "ReadinessGatesNotReady", gate_message)
    else:
        ready = containers_ready
    conditions.append(("Ready", *ready))
    conditions.append(("ContainersReady", *containers_ready))
    conditions.append(("PodScheduled", True, "", ""))
    return conditions


def _readiness_gates(pod: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether every spec.readinessGates condition is True (as the API shows it), and kubelet's message if not."""
    gates = spec_of(pod).get("readinessGates") or []
    current = {c.get("type"): c.get("status") for c in status_of(pod).get("conditions") or []}
    missing = [g.get("conditionType", "") for g in gates if g.get("conditionType") not in current]
    if missing:
        return False, f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist."
    failing = [g.get("conditionType", "") for g in gates if current.get(g.get("conditionType")) != "True"]
    if failing:
        return False, f"the status of pod readiness gate \"{failing[0]}\" is not \"True\", but False"
    return True, ""


def pod_status(pod: Mapping[str, Any], observed: PodObservation, now: float) -> Obj:
    """The status kubelet would write for the pod; conditions kubelet does not own are kept."""
    old = status_of(pod)
    old_conditions = {c.get("type"): c for c in old.get("conditions") or []}
    phase = pod_phase(pod, observed)
    conditions = []
    for kind, ok, reason, message in _conditions(pod, observed, phase):
        status = "True" if ok else "False"
        previous = old_conditions.get(kind)
        since = previous.get("lastTransitionTime") if previous and previous.get("status") == status else None
        condition: Obj = {"type": kind, "status": status, "lastProbeTime": None,
                          "lastTransitionTime": since or rfc3339(now)}
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        conditions.append(condition)
    owned = set(CONDITION_ORDER)
    conditions += [c for kind, c in old_conditions.items() if kind not in owned]

    status: Obj = {"phase": phase, "conditions": conditions}
    if observed.host_ips:
        status["hostIP"] = observed.host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in observed.host_ips]
    if observed.pod_ips:
        status["podIP"] = observed.pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in observed.pod_ips]
    status["startTime"] = old.get("startTime") or rfc3339(now)
    if observed.init_containers:
        status["initContainerStatuses"] = [c.to_api() for c in observed.init_containers]
    status["containerStatuses"] = [c.to_api() for c in sorted(observed.containers, key=lambda c: c.name)]
    for key in ("qosClass", "nominatedNodeName"):
        if key in old:
            status[key] = old[key]
    return status


def status_differs(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether a write is needed: kubelet's status manager skips writes that change nothing."""
    return dict(current or {}) != dict(wanted)
