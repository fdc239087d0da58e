"""The DaemonSet controller's decisions (svcnet.core.daemonset), as pkg/controller/daemon makes them."""
from __future__ import annotations

import datetime as dt

from svcnet.core import daemonset as core

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
EARLIER = "2026-12-07T11:00:00Z"


def daemon_set(image: str = "busybox", *, node_selector: dict | None = None, tolerations: list | None = None,
               rolling: dict | None = None, strategy: str = "RollingUpdate", generation: int = 1) -> dict:
    spec = {"containers": [{"name": "c", "image": image}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    update: dict = {"type": strategy}
    if strategy == "RollingUpdate":
        update["rollingUpdate"] = rolling or {"maxUnavailable": 1, "maxSurge": 0}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": generation,
                         "annotations": {core.TEMPLATE_GENERATION_ANNOTATION: str(generation)}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": update,
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}},
            "status": {}}


def node(name: str, *, labels: dict | None = None, taints: list | None = None, ready: str = "True") -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def pod_of(ds: dict, node_name: str, name: str, *, ready: bool = True, phase: str = "Running",
           created: str = EARLIER) -> dict:
    pod = core.pod_for_node(ds, node_name, core.current_hash(ds))
    pod["metadata"].update(name=name, namespace="default", uid=f"uid-{name}", creationTimestamp=created)
    pod["spec"]["nodeName"] = node_name
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": EARLIER}]}
    return pod


def test_a_new_pod_names_its_node_by_affinity_and_carries_the_revision_labels():
    ds = daemon_set()
    pod = core.pod_for_node(ds, "node-a", "abc")
    assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}]}
    assert pod["metadata"]["labels"] == {"app": "agent", "pod-template-generation": "1",
                                         "controller-revision-hash": "abc"}
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert "nodeName" not in pod["spec"]  # the scheduler binds it
    assert core.target_node(pod) == "node-a"


def test_daemon_pods_get_upstreams_tolerations_and_host_network_ones_tolerate_network_unavailable():
    spec = {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 30}]}
    core.add_daemon_tolerations(spec)
    keys = [(t["key"], t["effect"]) for t in spec["tolerations"]]
    assert keys == list(core.DAEMON_TOLERATIONS)  # the user's not-ready toleration was replaced
    assert all("tolerationSeconds" not in t for t in spec["tolerations"])
    host = {"hostNetwork": True}
    core.add_daemon_tolerations(host)
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in [
        (t["key"], t["effect"]) for t in host["tolerations"]]


def test_node_fit_follows_selector_and_taints():
    ds = daemon_set(node_selector={"role": "edge"})
    sample = core.template_pod(ds)
    assert core.node_fit(sample, node("a", labels={"role": "edge"})) == core.Fit(True, True)
    assert core.node_fit(sample, node("b")) == core.Fit(False, False)
    edge = {"role": "edge"}
    # An untolerated NoSchedule taint: no new pod, but one already there keeps running.
    assert core.node_fit(sample, node("c", labels=edge, taints=[{"key": "k", "effect": "NoSchedule"}])) == \
        core.Fit(False, True)
    # NoExecute: it has to go.
    assert core.node_fit(sample, node("d", labels=edge, taints=[{"key": "k", "effect": "NoExecute"}])) == \
        core.Fit(False, False)
    # Cordoned nodes still run daemon pods (the unschedulable toleration).
    cordoned = node("e", labels=edge, taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    assert core.node_fit(sample, cordoned).should_run


def test_a_node_without_a_pod_gets_one_and_a_node_that_should_not_run_it_loses_it():
    ds = daemon_set(node_selector={"role": "edge"})
    nodes = [node("a", labels={"role": "edge"}), node("b", labels={"role": "edge"}), node("c")]
    pods = [pod_of(ds, "b", "agent-b"), pod_of(ds, "c", "agent-c")]
    plan = core.plan_daemon_set(ds, nodes, pods, NOW)
    assert plan.create_on == ["a"]
    assert [p["metadata"]["name"] for p in plan.delete] == ["agent-c"]


def test_failed_pods_are_replaced_and_of_two_running_pods_the_oldest_stays():
    ds = daemon_set()
    nodes = [node("a"), node("b")]
    pods = [pod_of(ds, "a", "failed", phase="Failed"),
            pod_of(ds, "b", "old", created="2026-12-07T10:00:00Z"), pod_of(ds, "b", "young")]
    plan = core.plan_daemon_set(ds, nodes, pods, NOW)
    assert sorted(p["metadata"]["name"] for p in plan.delete) == ["failed", "young"]


def test_a_rolling_update_deletes_at_most_max_unavailable_old_pods():
    old = daemon_set("busybox:1")
    nodes = [node(n) for n in "abcd"]
    pods = [pod_of(old, n, f"old-{n}") for n in "abcd"]
    new = daemon_set("busybox:2", rolling={"maxUnavailable": 2, "maxSurge": 0}, generation=2)
    plan = core.plan_daemon_set(new, nodes, pods, NOW)
    assert plan.create_on == [] and len(plan.delete) == 2
    # With one node already down (its pod gone, replacement not yet ready) only one more goes.
    pods = [pod_of(old, n, f"old-{n}") for n in "abc"] + [pod_of(new, "d", "new-d", ready=False)]
    plan = core.plan_daemon_set(new, nodes, pods, NOW)
    assert len(plan.delete) == 1
    # An old pod that is not available is replaced regardless of the budget.
    pods = [pod_of(old, "a", "old-a", ready=False)] + [pod_of(new, n, f"new-{n}", ready=False) for n in "bcd"]
    plan = core.plan_daemon_set(new, nodes, pods, NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["old-a"]


def test_on_delete_leaves_old_pods_alone():
    old = daemon_set("busybox:1")
    new = daemon_set("busybox:2", strategy="OnDelete", generation=2)
    plan = core.plan_daemon_set(new, [node("a")], [pod_of(old, "a", "old-a")], NOW)
    assert plan.create_on == [] and plan.delete == []


def test_surge_starts_the_new_pod_beside_the_old_and_then_deletes_the_old():
    old = daemon_set("busybox:1")
    new = daemon_set("busybox:2", rolling={"maxUnavailable": 0, "maxSurge": 1}, generation=2)
    nodes = [node("a"), node("b")]
    pods = [pod_of(old, "a", "old-a"), pod_of(old, "b", "old-b")]
    plan = core.plan_daemon_set(new, nodes, pods, NOW)
    assert plan.create_on == ["a"] and plan.delete == []
    pods.append(pod_of(new, "a", "new-a"))
    plan = core.plan_daemon_set(new, nodes, pods, NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["old-a"]


def test_status_counts_nodes_as_update_daemon_set_status_does():
    ds = daemon_set("busybox:2", generation=2)
    old = daemon_set("busybox:1")
    nodes = [node("a"), node("b"), node("c", taints=[{"key": "k", "effect": "NoSchedule"}]), node("d")]
    pods = [pod_of(ds, "a", "new-a"), pod_of(old, "b", "old-b", ready=False), pod_of(ds, "c", "misplaced")]
    status = core.daemon_set_status(ds, nodes, pods, NOW)
    assert status == {"desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberReady": 1,
                      "numberAvailable": 1, "updatedNumberScheduled": 1, "numberMisscheduled": 1,
                      "numberUnavailable": 2, "observedGeneration": 2}
    nothing_yet = core.daemon_set_status(ds, [], [], NOW)
    # The four required counts are written even when zero; the omitempty ones are not.
    assert nothing_yet == {"desiredNumberScheduled": 0, "currentNumberScheduled": 0, "numberReady": 0,
                           "numberMisscheduled": 0, "observedGeneration": 2}
    assert not core.status_is_current({**ds, "status": {**status, "numberUnavailable": 0}}, status)
    assert core.status_is_current({**ds, "status": status}, dict(status))


def test_percentages_round_up_and_zero_budgets_fall_back_to_one_unavailable():
    assert core.scaled_value("25%", 10) == 3
    assert core.update_budget(daemon_set(rolling={"maxUnavailable": 0, "maxSurge": 0}), 5) == (0, 1)
