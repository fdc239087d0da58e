"""The scheduler's decisions, on plain objects: filters, their messages, spreading."""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from svcnet.core import scheduling as core


def node(name: str, *, labels: dict | None = None, ready: str | None = "True", taints: list | None = None,
         unschedulable: bool = False, pods: str = "110", cpu: str = "2", memory: str = "8Gi") -> dict:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec,
            "status": {"conditions": conditions,
                       "allocatable": {"pods": pods, "cpu": cpu, "memory": memory}}}


def pod(name: str = "p", *, owner: str | None = "rs-1", labels: dict | None = None, node_name: str = "",
        selector: dict | None = None, affinity: list | None = None, tolerations: list | None = None,
        requests: dict | None = None, host_port: int | None = None, **spec_extra: Any) -> dict:
    container: dict[str, Any] = {"name": "c", "image": "x"}
    if requests:
        container["resources"] = {"requests": requests}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    spec: dict[str, Any] = {"containers": [container], "schedulerName": "default-scheduler", **spec_extra}
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = selector
    if affinity is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": affinity}}}
    if tolerations:
        spec["tolerations"] = tolerations
    md: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels or {"app": "web"}}
    if owner:
        md["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": {"phase": "Pending"}}


# ------------------------------------------------------------ which pods

@pytest.mark.parametrize(("change", "needs"), [
    ({}, True),
    ({"spec": {"nodeName": "n1"}}, False),
    ({"spec": {"schedulerName": "other-scheduler"}}, False),
    ({"spec": {"schedulingGates": [{"name": "wait"}]}}, False),
    ({"metadata": {"deletionTimestamp": "2026-11-27T08:00:00Z"}}, False),
    ({"status": {"phase": "Failed"}}, False),
])
def test_needs_scheduling(change: dict, needs: bool) -> None:
    p = pod()
    for section, fields in change.items():
        p[section].update(fields)
    assert core.needs_scheduling(p) is needs


# ------------------------------------------------------------ tolerations

@pytest.mark.parametrize(("toleration", "taint", "tolerated"), [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),  # any effect
    ({"key": "k", "value": "other"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"operator": "Exists"}, {"key": "anything", "effect": "NoSchedule"}, True),  # tolerates all
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "j", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
])
def test_tolerates(toleration: dict, taint: dict, tolerated: bool) -> None:
    assert core.tolerates(toleration, taint) is tolerated


# ---------------------------------------------------------- node affinity

def expr(key: str, operator: str, *values: str) -> dict:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


AFFINITY_CASES = [
    ("In matches", [expr("zone", "In", "a", "b")], True),
    ("In misses", [expr("zone", "In", "c")], False),
    ("NotIn", [expr("zone", "NotIn", "c")], True),
    ("NotIn on a missing label matches", [expr("missing", "NotIn", "c")], True),
    ("Exists", [expr("zone", "Exists")], True),
    ("DoesNotExist", [expr("zone", "DoesNotExist")], False),
    ("Gt", [expr("cores", "Gt", "7")], True),
    ("Gt equal is not greater", [expr("cores", "Gt", "8")], False),
    ("Lt", [expr("cores", "Lt", "9")], True),
    ("Gt on a non-integer label", [expr("zone", "Gt", "1")], False),
    ("terms are ORed", [expr("zone", "In", "c"), expr("zone", "In", "a")], True),
    ("expressions in a term are ANDed",
     [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                            {"key": "cores", "operator": "Lt", "values": ["2"]}]}], False),
    ("matchFields on the name", [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                   "values": ["n1"]}]}], True),
    ("an empty term matches nothing", [{}], False),
]


@pytest.mark.parametrize(("terms", "matches"), [c[1:] for c in AFFINITY_CASES],
                         ids=[c[0] for c in AFFINITY_CASES])
def test_required_node_affinity(terms: list, matches: bool) -> None:
    n = node("n1", labels={"zone": "a", "cores": "8"})
    assert core.matches_node_affinity(pod(affinity=terms), n) is matches


def test_node_selector_needs_every_label() -> None:
    n = node("n1", labels={"disk": "ssd", "zone": "a"})
    assert core.matches_node_affinity(pod(selector={"disk": "ssd"}), n)
    assert not core.matches_node_affinity(pod(selector={"disk": "ssd", "zone": "b"}), n)


# ---------------------------------------------------------------- filters

FILTER_CASES = [
    ("a ready node fits", pod(), node("n1"), None),
    ("cordoned", pod(), node("n1", unschedulable=True), ("node(s) were unschedulable",)),
    ("cordoned but tolerated", pod(tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                                 "operator": "Exists", "effect": "NoSchedule"}]),
     node("n1", unschedulable=True), None),
    ("NoSchedule taint", pod(), node("n1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
     ("node(s) had untolerated taint {dedicated: db}",)),
    ("NoExecute taint", pod(), node("n1", taints=[{"key": "k", "effect": "NoExecute"}]),
     ("node(s) had untolerated taint {k: }",)),
    ("PreferNoSchedule is only a preference", pod(),
     node("n1", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), None),
    ("not ready reads as the not-ready taint", pod(), node("n1", ready="False"),
     ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }",)),
    ("no Ready condition reads as unreachable", pod(), node("n1", ready=None),
     ("node(s) had untolerated taint {node.kubernetes.io/unreachable: }",)),
    ("a pod tolerating not-ready may go there",
     pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]),
     node("n1", ready="False"), None),
    ("selector mismatch", pod(selector={"disk": "ssd"}), node("n1"),
     ("node(s) didn't match Pod's node affinity/selector",)),
    ("unschedulable is reported before the selector", pod(selector={"disk": "ssd"}),
     node("n1", unschedulable=True), ("node(s) were unschedulable",)),
    ("full node", pod(), node("n1", pods="0"), ("Too many pods",)),
    ("cpu and memory both short", pod(requests={"cpu": "3", "memory": "9Gi"}), node("n1"),
     ("Insufficient cpu", "Insufficient memory")),
    ("requests that fit", pod(requests={"cpu": "1500m", "memory": "1Gi"}), node("n1"), None),
]


@pytest.mark.parametrize(("p", "n", "reasons"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES])
def test_filter_node(p: dict, n: dict, reasons: tuple | None) -> None:
    verdict = core.filter_node(p, n, core.NodeUsage())
    assert (verdict.reasons if verdict else None) == reasons


def test_resources_in_use_on_the_node_count() -> None:
    n = node("n1", cpu="2")
    running = core.NodeUsage.of([pod("a", requests={"cpu": "1500m"}, node_name="n1")])
    verdict = core.filter_node(pod(requests={"cpu": "600m"}), n, running)
    assert verdict is not None and verdict.reasons == ("Insufficient cpu",)
    assert core.filter_node(pod(requests={"cpu": "500m"}), n, running) is None


def test_host_port_conflict() -> None:
    n = node("n1")
    running = core.NodeUsage.of([pod("a", host_port=8080, node_name="n1")])
    verdict = core.filter_node(pod(host_port=8080), n, running)
    assert verdict is not None and verdict.reasons == (core.REASON_PORTS,)
    assert core.filter_node(pod(host_port=8081), n, running) is None


@pytest.mark.parametrize(("text", "value"), [
    ("2", Fraction(2)), ("100m", Fraction(1, 10)), ("1.5", Fraction(3, 2)), ("1Gi", Fraction(2**30)),
    ("8Gi", Fraction(8 * 2**30)), ("500M", Fraction(5 * 10**8)), ("1e3", Fraction(1000)), (3, Fraction(3)),
    ("bogus", Fraction(0)),
])
def test_parse_quantity(text: Any, value: Fraction) -> None:
    assert core.parse_quantity(text) == value


# --------------------------------------------------------------- decision

def test_pods_of_one_group_spread_across_nodes() -> None:
    nodes = [node("n1"), node("n2")]
    placed: dict[str, list[dict]] = {"n1": [], "n2": []}
    for i in range(4):
        p = pod(f"web-{i}")
        decision = core.schedule(p, nodes, {n: core.NodeUsage.of(pods) for n, pods in placed.items()})
        assert decision.node is not None
        placed[decision.node].append({**p, "spec": {**p["spec"], "nodeName": decision.node}})
    assert {name: len(pods) for name, pods in placed.items()} == {"n1": 2, "n2": 2}


def test_spreading_counts_the_pods_own_group_before_the_total() -> None:
    nodes = [node("n1"), node("n2")]
    busy_with_others = [pod(f"o{i}", owner="other", node_name="n1") for i in range(3)]
    own_group = [pod("mine", node_name="n2")]
    decision = core.schedule(pod("new"), nodes, {"n1": core.NodeUsage.of(busy_with_others),
                                                 "n2": core.NodeUsage.of(own_group)})
    assert decision.node == "n1"


def test_pods_without_an_owner_spread_by_their_labels() -> None:
    nodes = [node("n1"), node("n2")]
    decision = core.schedule(pod("x", owner=None), nodes,
                             {"n1": core.NodeUsage.of([pod("y", owner=None, node_name="n1")]),
                              "n2": core.NodeUsage.of([pod("z", owner=None, labels={"app": "db"},
                                                           node_name="n2")])})
    assert decision.node == "n2"


def test_spreading_counts_a_group_per_namespace() -> None:
    nodes = [node("n1"), node("n2")]
    elsewhere = pod("other-ns", node_name="n1")
    elsewhere["metadata"]["namespace"] = "prod"
    decision = core.schedule(pod("new"), nodes, {"n1": core.NodeUsage.of([elsewhere]),
                                                 "n2": core.NodeUsage.of([pod("mine", node_name="n2")])})
    assert decision.node == "n1"


def test_ties_go_to_the_first_node_by_name() -> None:
    assert core.schedule(pod(), [node("n2"), node("n1")], {}).node == "n1"


def test_no_nodes_at_all() -> None:
    assert core.schedule(pod(), [], {}) == core.Decision(None, "no nodes available to schedule pods")


@pytest.mark.parametrize(("p", "nodes", "message"), [
    (pod(selector={"disk": "ssd"}), [node("n1"), node("n2", unschedulable=True)],
     "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
     "1 node(s) were unschedulable. preemption: 0/2 nodes are available: "
     "2 Preemption is not helpful for scheduling."),
    (pod(selector={"disk": "ssd"}), [node("n1"), node("n2")],
     "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
     "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."),
    (pod(requests={"cpu": "4"}), [node("n1"), node("n2", ready="False")],
     "0/2 nodes are available: 1 Insufficient cpu, "
     "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: 0/2 nodes are "
     "available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."),
    (pod(selector={"disk": "ssd"}, preemptionPolicy="Never"), [node("n1")],
     "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
     "preemption: not eligible due to preemptionPolicy=Never."),
])
def test_fit_error_message_is_upstreams(p: dict, nodes: list, message: str) -> None:
    decision = core.schedule(p, nodes, {})
    assert decision.node is None
    assert decision.message == message


def test_scheduling_view_ignores_heartbeats() -> None:
    before = node("n1")
    after = node("n1")
    after["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-11-27T09:00:00Z"
    assert core.scheduling_view(before) == core.scheduling_view(after)
    assert core.scheduling_view(before) != core.scheduling_view(node("n1", labels={"disk": "ssd"}))


# -------------------------------------------------------------- occupancy

def test_occupancy_adds_up_what_its_pods_take_and_takes_off_exactly_that() -> None:
    occupancy = core.Occupancy()
    a = pod("a", requests={"cpu": "500m"}, host_port=8080)
    b = pod("b", requests={"cpu": "250m", "memory": "1Gi"})
    c = pod("c", owner="other")
    occupancy.place("default/a", "n1", a)
    occupancy.place("default/b", "n1", b)
    occupancy.place("default/c", "n2", c)
    assert occupancy.by_node == {"n1": core.NodeUsage.of([a, b]), "n2": core.NodeUsage.of([c])}
    assert occupancy.by_node["n1"].requested == {"cpu": Fraction(3, 4), "memory": Fraction(2**30)}

    # Placed again (the cache now shows it bound elsewhere, changed): moved, counted once.
    moved = pod("a", requests={"cpu": "1"}, host_port=9090)
    occupancy.place("default/a", "n2", moved)
    assert occupancy.node_of("default/a") == "n2"
    assert occupancy.by_node == {"n1": core.NodeUsage.of([b]), "n2": core.NodeUsage.of([c, moved])}

    for key in ("default/a", "default/b", "default/c", "default/never-placed"):
        occupancy.remove(key)
    assert occupancy.by_node == {} and len(occupancy) == 0


def test_a_decision_reads_the_occupancy_it_is_given() -> None:
    occupancy = core.Occupancy()
    nodes = [node("n1", pods="2"), node("n2", pods="2")]
    for i in range(4):
        decision = core.schedule(pod(f"web-{i}"), nodes, occupancy.by_node)
        assert decision.node is not None
        occupancy.place(f"default/web-{i}", decision.node, pod(f"web-{i}"))
    assert {n: u.pods for n, u in occupancy.by_node.items()} == {"n1": 2, "n2": 2}
    full = core.schedule(pod("web-4"), nodes, occupancy.by_node)
    assert full.node is None and "2 Too many pods" in full.message
