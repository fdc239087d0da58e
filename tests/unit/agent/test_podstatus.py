"""Pod status as kubelet computes it: phase, conditions, container statuses (tables)."""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.agent.podstatus import (
    ContainerObservation,
    PodObservation,
    Terminated,
    observe_container,
    pod_phase,
    pod_status,
    rfc3339,
)
from svcnet.runtime.containers import ContainerStatus, RunState

NOW = 1_800_000_000.0
T0 = rfc3339(NOW)


def pod(restart_policy: str = "Always", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"restartPolicy": restart_policy, "containers": [{"name": "app"}], **spec},
            "status": status or {}}


def running(name: str = "app", ready: bool = True, restarts: int = 0) -> ContainerObservation:
    return ContainerObservation(name, "img", running_since=NOW - 5, ready=ready, started=True, restart_count=restarts)


def exited(name: str = "app", code: int = 0) -> ContainerObservation:
    return ContainerObservation(name, "img", terminated=Terminated(code, "Completed" if code == 0 else "Error"))


def backing_off(name: str = "app", code: int = 1) -> ContainerObservation:
    return ContainerObservation(name, "img", waiting_reason="CrashLoopBackOff", last_terminated=Terminated(code),
                                restart_count=2)


def waiting(name: str = "app", reason: str = "ContainerCreating") -> ContainerObservation:
    return ContainerObservation(name, "img", waiting_reason=reason)


@pytest.mark.parametrize(("policy", "inits", "apps", "phase"), [
    ("Always", (), (waiting(),), "Pending"),
    ("Always", (), (running(),), "Running"),
    ("Always", (), (running(ready=False),), "Running"),
    ("Always", (), (backing_off(),), "Running"),  # a crash-looping container keeps the pod Running
    ("Always", (), (exited(code=0),), "Running"),  # about to be restarted
    ("Never", (), (exited(code=0),), "Succeeded"),
    ("Never", (), (exited(code=2),), "Failed"),
    ("Never", (), (exited("a", 0), exited("b", 1)), "Failed"),
    ("OnFailure", (), (exited(code=0),), "Succeeded"),
    ("OnFailure", (), (backing_off(),), "Running"),
    ("Always", (), (running("a"), waiting("b")), "Pending"),
    ("Always", (running("init"),), (waiting("app", "PodInitializing"),), "Pending"),
    ("Always", (exited("init", 0),), (running(),), "Running"),
    ("Always", (backing_off("init"),), (waiting("app", "PodInitializing"),), "Pending"),
    ("Never", (exited("init", 1),), (waiting("app", "PodInitializing"),), "Failed"),
    ("Always", (), (), "Pending"),
])
def test_phase_follows_kubelets_get_phase(policy, inits, apps, phase) -> None:
    observed = PodObservation(init_containers=tuple(inits), containers=tuple(apps), sandbox_ready=True)
    assert pod_phase(pod(policy), observed) == phase


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", "")) for c in status["conditions"]}


@pytest.mark.parametrize(("inits", "apps", "expected"), [
    ((), (running(),), {"PodReadyToStartContainers": ("True", "", ""), "Initialized": ("True", "", ""),
                        "Ready": ("True", "", ""), "ContainersReady": ("True", "", ""),
                        "PodScheduled": ("True", "", "")}),
    ((), (running(ready=False),), {
        "Ready": ("False", "ContainersNotReady", "containers with unready status: [app]"),
        "ContainersReady": ("False", "ContainersNotReady", "containers with unready status: [app]")}),
    ((running("setup"),), (waiting("app", "PodInitializing"),), {
        "Initialized": ("False", "ContainersNotInitialized", "containers with incomplete status: [setup]")}),
    ((exited("setup", 0),), (running(),), {"Initialized": ("True", "", "")}),
    ((), (running("a"), running("b", ready=False)), {
        "Ready": ("False", "ContainersNotReady", "containers with unready status: [b]")}),
])
def test_conditions_say_why_a_pod_is_not_ready(inits, apps, expected) -> None:
    status = pod_status(pod(), PodObservation(tuple(inits), tuple(apps), ("10.244.1.8",), ("192.168.0.106",),
                                              sandbox_ready=True), NOW)
    got = conditions(status)
    for kind, want in expected.items():
        assert got[kind] == want, kind


def test_conditions_come_in_kubelets_order_and_keep_their_transition_time_while_unchanged() -> None:
    observed = PodObservation((), (running(),), ("10.244.1.8",), ("192.168.0.106",), sandbox_ready=True)
    first = pod_status(pod(), observed, NOW - 100)
    again = pod_status(pod(status=first), observed, NOW)
    assert [c["type"] for c in again["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert again == first  # nothing changed, so nothing to write
    unready = PodObservation((), (running(ready=False),), ("10.244.1.8",), ("192.168.0.106",), sandbox_ready=True)
    changed = {c["type"]: c for c in pod_status(pod(status=first), unready, NOW)["conditions"]}
    assert changed["Ready"]["lastTransitionTime"] == T0
    assert changed["Initialized"]["lastTransitionTime"] == rfc3339(NOW - 100)


def test_status_has_pod_and_host_ips_start_time_and_foreign_conditions_kept() -> None:
    old = {"conditions": [{"type": "example.com/gate", "status": "True"}], "startTime": "2026-01-01T00:00:00Z",
           "qosClass": "BestEffort"}
    status = pod_status(pod(status=old), PodObservation(
        (), (running(),), ("10.244.1.8", "fd00:10:244:1::8"), ("192.168.0.106",), sandbox_ready=True), NOW)
    assert status["podIP"] == "10.244.1.8"
    assert status["podIPs"] == [{"ip": "10.244.1.8"}, {"ip": "fd00:10:244:1::8"}]
    assert (status["hostIP"], status["hostIPs"]) == ("192.168.0.106", [{"ip": "192.168.0.106"}])
    assert status["startTime"] == "2026-01-01T00:00:00Z"
    assert status["qosClass"] == "BestEffort"
    assert {"type": "example.com/gate", "status": "True"} in status["conditions"]


def test_readiness_gate_not_true_keeps_the_pod_unready_though_containers_are_ready() -> None:
    spec_pod = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    status = pod_status(spec_pod, PodObservation((), (running(),), sandbox_ready=True), NOW)
    got = conditions(status)
    assert got["ContainersReady"][0] == "True"
    assert got["Ready"][:2] == ("False", "ReadinessGatesNotReady")


def test_container_statuses_are_sorted_by_name_and_show_last_state() -> None:
    status = pod_status(pod(), PodObservation((), (running("zeta"), backing_off("alpha")), sandbox_ready=True), NOW)
    names = [c["name"] for c in status["containerStatuses"]]
    assert names == ["alpha", "zeta"]
    alpha = status["containerStatuses"][0]
    assert alpha["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert alpha["lastState"]["terminated"]["exitCode"] == 1
    assert alpha["restartCount"] == 2


def instance(n: int, state: RunState, code: int | None = None) -> ContainerStatus:
    return ContainerStatus("app", n, state, started_at=NOW - 10, finished_at=NOW - 5 if code is not None else None,
                           exit_code=code, reason="Error" if code else "")


@pytest.mark.parametrize(("latest", "previous", "reason", "state", "last"), [
    (None, None, "", {"waiting": {"reason": "ContainerCreating"}}, {}),
    (None, None, "ErrImagePull", {"waiting": {"reason": "ErrImagePull", "message": "why"}}, {}),
    (instance(0, RunState.RUNNING), None, "", {"running": {"startedAt": rfc3339(NOW - 10)}}, {}),
    (instance(1, RunState.RUNNING), instance(0, RunState.EXITED, 137), "",
     {"running": {"startedAt": rfc3339(NOW - 10)}}, {"exitCode": 137}),
    (instance(1, RunState.EXITED, 1), None, "CrashLoopBackOff",
     {"waiting": {"reason": "CrashLoopBackOff", "message": "why"}}, {"exitCode": 1}),
    (instance(0, RunState.EXITED, 2), None, "", "terminated", {}),
])
def test_observe_container_turns_runtime_instances_into_kubelets_states(latest, previous, reason, state,
                                                                        last) -> None:
    observed = observe_container("app", "img", "u1", latest=latest, previous=previous, waiting_reason=reason,
                                 waiting_message="why" if reason else "").to_api()
    if state == "terminated":
        assert observed["state"]["terminated"]["exitCode"] == 2
    else:
        assert observed["state"] == state
    for key, value in last.items():
        assert observed["lastState"]["terminated"][key] == value
    if not last:
        assert observed["lastState"] == {}
    assert observed["restartCount"] == (latest.restart_count if latest else 0)
