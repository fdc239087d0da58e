"""svcnet.core.endpoints.hints: PreferClose and Auto topology hints, as upstream 1.32's reconciler sets them."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.core import endpoints as core
from svcnet.core.endpoints import hints

Obj = dict[str, Any]


def service(*, distribution: str | None = None, mode: str | None = None, legacy_annotation: str | None = None) -> Obj:
    annotations = {}
    if mode is not None:
        annotations[hints.ANNOTATION_TOPOLOGY_MODE] = mode
    if legacy_annotation is not None:
        annotations[hints.ANNOTATION_TOPOLOGY_AWARE_HINTS] = legacy_annotation
    spec: Obj = {"selector": {"app": "web"}, "clusterIP": "10.96.0.5", "ipFamilies": ["IPv4"],
                 "ports": [{"name": "http", "port": 80, "targetPort": 9376, "protocol": "TCP"}]}
    if distribution:
        spec["trafficDistribution"] = distribution
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "annotations": annotations},
            "spec": spec}


def pod(name: str, ip: str, node: str, ready: bool = True) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"containerPort": 9376}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def node(name: str, zone: str | None, cpu: str = "2", ready: bool = True, **labels: str) -> Obj:
    node_labels = dict(labels)
    if zone is not None:
        node_labels[core.LABEL_ZONE] = zone
    return {"metadata": {"name": name, "labels": node_labels},
            "status": {"allocatable": {"cpu": cpu},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


NODES = {"node-1": node("node-1", "a"), "node-2": node("node-2", "b")}


def zone_hints(plan: core.SlicePlan) -> dict[str, list[str] | None]:
    """address -> the zones it is hinted for (None: no hints field)."""
    out: dict[str, list[str] | None] = {}
    for slice_ in plan.to_create + plan.to_update:
        for endpoint in slice_["endpoints"]:
            found = endpoint.get("hints")
            out[endpoint["addresses"][0]] = None if found is None else [z["name"] for z in found["forZones"]]
    return out


def stored(plan: core.SlicePlan) -> list[Obj]:
    """The plan's slices as the API server would keep them."""
    out = []
    for i, slice_ in enumerate(plan.to_create + plan.to_update):
        copied = copy.deepcopy(slice_)
        copied["metadata"].pop("generateName", None)
        copied["metadata"].setdefault("name", f"web-{i}")
        copied["metadata"]["resourceVersion"] = "1"
        out.append(copied)
    return out


PODS = [pod("a1", "10.244.1.2", "node-1"), pod("a2", "10.244.1.3", "node-1"),
        pod("b1", "10.244.2.2", "node-2"), pod("b2", "10.244.2.3", "node-2")]


# ---------------------------------------------------------------- PreferClose

def test_prefer_close_hints_each_ready_endpoint_for_its_own_zone() -> None:
    plan = core.plan_endpoint_slices(service(distribution="PreferClose"), PODS, NODES, [])
    assert zone_hints(plan) == {"10.244.1.2": ["a"], "10.244.1.3": ["a"], "10.244.2.2": ["b"], "10.244.2.3": ["b"]}
    assert plan.events == ()


def test_prefer_close_leaves_not_ready_and_zoneless_endpoints_without_hints() -> None:
    pods = [pod("a1", "10.244.1.2", "node-1", ready=False), pod("c1", "10.244.3.2", "node-3")]
    nodes = {**NODES, "node-3": node("node-3", None)}
    plan = core.plan_endpoint_slices(service(distribution="PreferClose"), pods, nodes, [])
    assert zone_hints(plan) == {"10.244.1.2": None, "10.244.3.2": None}


def test_switching_prefer_close_on_rewrites_an_unchanged_slice_and_off_removes_the_hints() -> None:
    plain = stored(core.plan_endpoint_slices(service(), PODS, NODES, []))
    assert core.plan_endpoint_slices(service(), PODS, NODES, plain).empty
    on = core.plan_endpoint_slices(service(distribution="PreferClose"), PODS, NODES, plain)
    assert [s["metadata"]["name"] for s in on.to_update] == ["web-0"]
    assert set(map(tuple, filter(None, zone_hints(on).values()))) == {("a",), ("b",)}
    hinted = stored(on)
    assert core.plan_endpoint_slices(service(distribution="PreferClose"), PODS, NODES, hinted).empty
    off = core.plan_endpoint_slices(service(), PODS, NODES, hinted)
    assert set(zone_hints(off).values()) == {None}


def test_prefer_close_fixes_a_hint_that_names_another_zone() -> None:
    hinted = stored(core.plan_endpoint_slices(service(distribution="PreferClose"), PODS, NODES, []))
    hinted[0]["endpoints"][0]["hints"] = {"forZones": [{"name": "elsewhere"}]}
    plan = core.plan_endpoint_slices(service(distribution="PreferClose"), PODS, NODES, hinted)
    assert zone_hints(plan)[hinted[0]["endpoints"][0]["addresses"][0]] != ["elsewhere"]
    assert hinted[0]["endpoints"][0]["hints"] == {"forZones": [{"name": "elsewhere"}]}  # the cached copy untouched


# ---------------------------------------------------------------- Auto

@pytest.mark.parametrize("annotations", [{"mode": "Auto"}, {"mode": "auto"}, {"legacy_annotation": "Auto"}])
def test_auto_annotation_is_recognised_in_both_spellings(annotations: dict[str, str]) -> None:
    assert hints.hints_enabled(service(**annotations))


def test_topology_mode_annotation_wins_over_the_deprecated_one() -> None:
    assert not hints.hints_enabled(service(mode="Disabled", legacy_annotation="Auto"))


def test_auto_with_enough_endpoints_hints_each_zone_and_says_so_once() -> None:
    cache = core.TopologyCache()
    cache.set_nodes(NODES.values())
    plan = core.plan_endpoint_slices(service(mode="Auto"), PODS, NODES, [], topology=cache)
    assert zone_hints(plan) == {"10.244.1.2": ["a"], "10.244.1.3": ["a"], "10.244.2.2": ["b"], "10.244.2.3": ["b"]}
    assert plan.events == (core.HintEvent("Normal", "TopologyAwareHintsEnabled",
                                          "Topology Aware Hints has been enabled, addressType: IPv4"),)
    again = core.plan_endpoint_slices(service(mode="Auto"), PODS, NODES, stored(plan), topology=cache)
    assert again.empty and again.events == ()


def test_auto_wins_over_prefer_close() -> None:
    cache = core.TopologyCache()
    cache.set_nodes(NODES.values())
    plan = core.plan_endpoint_slices(service(mode="Auto", distribution="PreferClose"), PODS[:3], NODES, [],
                                     topology=cache)
    assert set(zone_hints(plan).values()) == {None}  # 3 endpoints over 2 equal zones: Auto gives up


def test_auto_moves_endpoints_to_a_zone_with_more_cpu() -> None:
    """Zone b has 3 times zone a's CPU but only a quarter of the endpoints: a gives two of its three."""
    nodes = {"node-1": node("node-1", "a", cpu="1"), "node-2": node("node-2", "b", cpu="3")}
    pods = [pod("a1", "10.244.1.2", "node-1"), pod("a2", "10.244.1.3", "node-1"),
            pod("a3", "10.244.1.4", "node-1"), pod("b1", "10.244.2.2", "node-2")]
    cache = core.TopologyCache()
    cache.set_nodes(nodes.values())
    plan = core.plan_endpoint_slices(service(mode="Auto"), pods, nodes, [], topology=cache)
    by_zone: dict[str, int] = {}
    for zones in zone_hints(plan).values():
        assert zones is not None and len(zones) == 1
        by_zone[zones[0]] = by_zone.get(zones[0], 0) + 1
    assert by_zone == {"a": 1, "b": 3}


@pytest.mark.parametrize("nodes, pods, message", [
    # One zone: upstream's SetNodes keeps no shares at all, so it reads as missing information.
    ({"node-1": node("node-1", "a"), "node-2": node("node-2", "a")}, PODS,
     "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes"),
    ({"node-1": node("node-1", "a"), "node-2": node("node-2", None)}, PODS,
     "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes"),
    (NODES, PODS[:1], "Insufficient number of endpoints (1 endpoints, 2 zones)"),
    (NODES, PODS[:3], "Unable to allocate minimum required endpoints to each zone without exceeding overload "
                      "threshold (3 endpoints, 2 zones)"),
])
def test_auto_without_a_safe_allocation_removes_hints_with_a_warning(nodes: dict[str, Obj], pods: list[Obj],
                                                                     message: str) -> None:
    cache = core.TopologyCache()
    cache.set_nodes(nodes.values())
    plan = core.plan_endpoint_slices(service(mode="Auto"), pods, nodes, [], topology=cache)
    assert set(zone_hints(plan).values()) == {None}
    assert plan.events == (core.HintEvent("Warning", "TopologyAwareHintsDisabled", f"{message}, addressType: IPv4"),)


def test_nodes_in_one_zone_are_insufficient_and_not_ready_or_control_plane_nodes_do_not_count() -> None:
    assert hints.zone_cpu_ratios([node("n1", "a"), node("n2", "a")]) is None
    assert hints.zone_cpu_ratios([node("n1", "a"), node("n2", None, ready=False), node("n3", "b", cpu="6"),
                                  node("cp", None, **{"node-role.kubernetes.io/control-plane": ""})]) == {
        "a": 0.25, "b": 0.75}
    assert hints.allocations({"a": 1.0}, 3) == hints.NODES_READY_IN_ONE_ZONE_ONLY


def test_removing_the_annotation_removes_hints_and_warns() -> None:
    cache = core.TopologyCache()
    cache.set_nodes(NODES.values())
    hinted = stored(core.plan_endpoint_slices(service(mode="Auto"), PODS, NODES, [], topology=cache))
    plan = core.plan_endpoint_slices(service(), PODS, NODES, hinted, topology=cache)
    assert set(zone_hints(plan).values()) == {None}
    assert plan.events == (core.HintEvent("Warning", "TopologyAwareHintsDisabled",
                                          "Topology Aware Hints has been disabled, addressType: IPv4"),)
    assert not cache.has_populated_hints("default/web")


def test_a_zone_losing_its_nodes_makes_the_service_overloaded() -> None:
    cache = core.TopologyCache()
    cache.set_nodes(NODES.values())
    core.plan_endpoint_slices(service(mode="Auto"), PODS, NODES, [], topology=cache)
    assert cache.overloaded_services() == []
    cache.set_nodes([NODES["node-1"], node("node-2", "b", ready=False)])
    assert cache.overloaded_services() == ["default/web"]


def test_node_topology_changes_are_readiness_zone_and_cpu_not_heartbeats() -> None:
    before = node("n1", "a")
    heartbeat = copy.deepcopy(before)
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "later"
    assert not core.node_topology_changed(before, heartbeat)
    assert core.node_topology_changed(before, node("n1", "b"))
    assert core.node_topology_changed(before, node("n1", "a", ready=False))
    assert core.node_topology_changed(before, node("n1", "a", cpu="4"))
