"""svcnet.core.endpoints: which pods count, slice planning, Endpoints subsets, trigger times."""
from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from svcnet.core import endpoints as core

Obj = dict[str, Any]
T0 = "2026-01-01T00:00:00Z"


def service(name: str = "hostnames", *, selector: dict[str, str] | None = None, ports: list[Obj] | None = None,
            cluster_ip: str = "10.96.0.5", families: list[str] | None = None, **spec: Any) -> Obj:
    body: Obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": T0},
        "spec": {"selector": {"app": name} if selector is None else selector, "clusterIP": cluster_ip,
                 "ipFamilies": families or ["IPv4"],
                 "ports": [{"name": "default", "port": 80, "targetPort": 9376, "protocol": "TCP"}]
                 if ports is None else ports, **spec},
    }
    return body


def pod(name: str, ip: str | None = "10.244.1.8", *, ready: bool = True, labels: dict[str, str] | None = None,
        phase: str = "Running", ports: list[Obj] | None = None, node: str | None = "node-1",
        deleting: bool = False, ips: list[str] | None = None, ready_since: str = T0, **spec: Any) -> Obj:
    status: Obj = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_since}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": i} for i in (ips or [ip])]
    md: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {"app": "hostnames"}}
    if deleting:
        md["deletionTimestamp"] = T0
    body_spec: Obj = {"containers": [{"name": "c", "ports": ports or [{"containerPort": 9376, "protocol": "TCP"}]}],
                      **spec}
    if node:
        body_spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": body_spec, "status": status}


NODES = {"node-1": {"metadata": {"name": "node-1", "labels": {core.LABEL_ZONE: "zone-a"}}}}


def named(slice_: Obj, name: str, rv: str = "1") -> Obj:
    """A planned slice as the API server would store it."""
    stored = copy.deepcopy(slice_)
    stored["metadata"].pop("generateName", None)
    stored["metadata"].update(name=name, resourceVersion=rv)
    return stored


def ips(slice_: Obj) -> list[str]:
    return [a for e in slice_["endpoints"] for a in e["addresses"]]


# --------------------------------------------------------------- which pods count

@pytest.mark.parametrize("the_pod, include_terminating, counts", [
    (pod("a"), False, True),
    (pod("a", ip=None), True, False),
    (pod("a", phase="Succeeded"), True, False),
    (pod("a", phase="Failed"), True, False),
    (pod("a", ready=False), False, True),
    (pod("a", deleting=True), False, False),
    (pod("a", deleting=True), True, True),
])
def test_should_pod_be_in_endpoints(the_pod: Obj, include_terminating: bool, counts: bool) -> None:
    assert core.should_pod_be_in_endpoints(the_pod, include_terminating) is counts


@pytest.mark.parametrize("the_pod, publish, conditions", [
    (pod("a"), False, {"ready": True, "serving": True, "terminating": False}),
    (pod("a", ready=False), False, {"ready": False, "serving": False, "terminating": False}),
    (pod("a", deleting=True), False, {"ready": False, "serving": True, "terminating": True}),
    (pod("a", ready=False, deleting=True), False, {"ready": False, "serving": False, "terminating": True}),
    (pod("a", ready=False), True, {"ready": True, "serving": False, "terminating": False}),
    (pod("a", deleting=True), True, {"ready": True, "serving": True, "terminating": True}),
])
def test_slice_endpoint_conditions(the_pod: Obj, publish: bool, conditions: Obj) -> None:
    svc = service(publishNotReadyAddresses=publish)
    assert core.slice_endpoint(the_pod, None, svc, "IPv4")["conditions"] == conditions


def test_slice_endpoint_fields() -> None:
    endpoint = core.slice_endpoint(pod("a", hostname="a", subdomain="hostnames"), NODES["node-1"],
                                   service(), "IPv4")
    assert endpoint == {
        "addresses": ["10.244.1.8"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "hostname": "a",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
        "nodeName": "node-1", "zone": "zone-a",
    }


@pytest.mark.parametrize("spec, has_hostname", [
    ({"hostname": "a", "subdomain": "hostnames"}, True),
    ({"hostname": "a", "subdomain": "other"}, False),
    ({"subdomain": "hostnames"}, False),
    ({"hostname": "a"}, False),
])
def test_hostname_only_when_subdomain_names_the_service(spec: Obj, has_hostname: bool) -> None:
    endpoint = core.slice_endpoint(pod("a", **spec), None, service(), "IPv4")
    assert ("hostname" in endpoint) is has_hostname


@pytest.mark.parametrize("target, container_ports, expected", [
    (9376, [], 9376),
    ("http", [{"name": "http", "containerPort": 8080, "protocol": "TCP"}], 8080),
    ("http", [{"name": "http", "containerPort": 8080}], 8080),
    ("http", [{"name": "http", "containerPort": 8080, "protocol": "UDP"}], None),
    ("http", [{"name": "metrics", "containerPort": 9090}], None),
])
def test_find_port(target: Any, container_ports: list[Obj], expected: int | None) -> None:
    the_pod = pod("a", ports=container_ports or [{"containerPort": 1}])
    assert core.find_port(the_pod, {"port": 80, "targetPort": target, "protocol": "TCP"}) == expected


def test_find_port_looks_in_sidecars_only() -> None:
    the_pod = pod("a", initContainers=[
        {"name": "init", "ports": [{"name": "http", "containerPort": 1}]},
        {"name": "sidecar", "restartPolicy": "Always", "ports": [{"name": "http", "containerPort": 2}]}])
    assert core.find_port(the_pod, {"port": 80, "targetPort": "http", "protocol": "TCP"}) == 2


@pytest.mark.parametrize("spec, expected", [
    ({"ipFamilies": ["IPv4"]}, ("IPv4",)),
    ({"ipFamilies": ["IPv6", "IPv4"]}, ("IPv6", "IPv4")),
    ({"ipFamilies": [], "clusterIP": "fd00:10:96::5"}, ("IPv6",)),
    ({"ipFamilies": [], "clusterIP": "None"}, ("IPv4", "IPv6")),
])
def test_address_types(spec: Obj, expected: tuple[str, ...]) -> None:
    svc = service()
    svc["spec"].update(spec)
    assert core.address_types(svc) == expected


@pytest.mark.parametrize("svc, manages", [
    (service(), True),
    (service(selector={}), False),
    (service(type="ExternalName"), False),
])
def test_manages_endpoints(svc: Obj, manages: bool) -> None:
    assert core.manages_endpoints(svc) is manages


def test_label_index_candidates_come_from_the_smallest_bucket() -> None:
    index = core.LabelIndex()
    for i in range(5):
        index.put(f"default/p{i}", pod(f"p{i}", labels={"tier": "web", "app": f"a{i % 2}"}))
    assert index.candidates("default", {"tier": "web", "app": "a1"}) == {"default/p1", "default/p3"}
    assert index.candidates("default", {"tier": "web", "app": "nope"}) == set()
    assert index.candidates("other", {"tier": "web"}) == set()
    index.remove("default/p1")
    assert index.candidates("default", {"app": "a1"}) == {"default/p3"}


@pytest.mark.parametrize("old, new, expected", [
    (pod("a"), pod("a", ready=False), (True, False)),
    (pod("a"), pod("a", deleting=True), (True, False)),
    (pod("a"), pod("a", ip="10.244.1.9"), (True, False)),
    (pod("a"), pod("a", labels={"app": "other"}), (False, True)),
    (pod("a"), pod("a", hostname="x"), (False, True)),
    (pod("a"), pod("a", ready_since="2026-01-01T00:00:05Z"), (False, False)),
])
def test_pod_endpoints_changed(old: Obj, new: Obj, expected: tuple[bool, bool]) -> None:
    assert core.pod_endpoints_changed(old, new) == expected


# ------------------------------------------------------------------ slice planning

def test_new_service_gets_one_slice_with_every_pod() -> None:
    pods = [pod("a", "10.244.1.8"), pod("b", "10.244.1.9"), pod("c", "10.244.1.10", ready=False)]
    plan = core.plan_endpoint_slices(service(), pods, NODES, [])
    assert (len(plan.to_create), plan.to_update, plan.to_delete) == (1, (), ())
    (slice_,) = plan.to_create
    assert slice_["metadata"]["generateName"] == "hostnames-"
    assert slice_["metadata"]["labels"] == {core.LABEL_SERVICE_NAME: "hostnames",
                                            core.LABEL_MANAGED_BY: core.CONTROLLER_NAME}
    assert slice_["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Service", "name": "hostnames", "uid": "uid-hostnames",
         "controller": True, "blockOwnerDeletion": True}]
    assert slice_["addressType"] == "IPv4"
    assert slice_["ports"] == [{"name": "default", "port": 9376, "protocol": "TCP"}]
    assert ips(slice_) == ["10.244.1.8", "10.244.1.9", "10.244.1.10"]


@pytest.mark.parametrize("excluded", [
    pod("x", ip=None),
    pod("x", "10.244.1.20", phase="Succeeded"),
    pod("x", "10.244.1.20", phase="Failed"),
])
def test_pods_without_ip_or_terminal_get_no_endpoint(excluded: Obj) -> None:
    plan = core.plan_endpoint_slices(service(), [pod("a"), excluded], NODES, [])
    assert ips(plan.to_create[0]) == ["10.244.1.8"]


def test_readiness_flip_updates_the_slice_in_place() -> None:
    first = core.plan_endpoint_slices(service(), [pod("a"), pod("b", "10.244.1.9")], NODES, [])
    existing = named(first.to_create[0], "hostnames-abcde", rv="7")
    plan = core.plan_endpoint_slices(service(), [pod("a"), pod("b", "10.244.1.9", ready=False)], NODES,
                                     [existing])
    assert (plan.to_create, plan.to_delete) == ((), ())
    (updated,) = plan.to_update
    assert updated["metadata"]["name"] == "hostnames-abcde"
    assert updated["metadata"]["resourceVersion"] == "7"  # a conditional update
    assert [e["conditions"]["ready"] for e in updated["endpoints"]] == [True, False]


def test_nothing_changed_plans_no_write() -> None:
    pods = [pod("a"), pod("b", "10.244.1.9")]
    first = core.plan_endpoint_slices(service(), pods, NODES, [])
    plan = core.plan_endpoint_slices(service(), pods, NODES, [named(first.to_create[0], "s1")])
    assert plan.empty


def test_existing_slices_are_not_modified() -> None:
    first = core.plan_endpoint_slices(service(), [pod("a")], NODES, [])
    existing = named(first.to_create[0], "s1")
    snapshot = copy.deepcopy(existing)
    core.plan_endpoint_slices(service(), [pod("a", ready=False), pod("b", "10.244.1.9")], NODES, [existing])
    assert existing == snapshot


def test_at_most_100_endpoints_per_slice() -> None:
    pods = [pod(f"p{i:03d}", f"10.244.{i // 200}.{i % 200 + 1}") for i in range(250)]
    plan = core.plan_endpoint_slices(service(), pods, NODES, [])
    assert sorted(len(s["endpoints"]) for s in plan.to_create) == [50, 100, 100]


def test_new_endpoints_fill_slices_already_being_updated_first() -> None:
    pods = [pod(f"p{i:03d}", f"10.244.1.{i + 1}") for i in range(100)]
    full = named(core.plan_endpoint_slices(service(), pods, NODES, []).to_create[0], "full")
    other_pods = [pod(f"q{i:03d}", f"10.244.2.{i + 1}") for i in range(10)]
    partial = named(core.plan_endpoint_slices(service(), other_pods, NODES, []).to_create[0], "partial")
    # p000 goes away from "full", a new pod arrives: it takes the freed place, one write only.
    wanted = pods[1:] + other_pods + [pod("new", "10.244.3.1")]
    plan = core.plan_endpoint_slices(service(), wanted, NODES, [full, partial])
    assert plan.to_create == () and plan.to_delete == ()
    (updated,) = plan.to_update
    assert updated["metadata"]["name"] == "full"
    assert "10.244.3.1" in ips(updated) and "10.244.1.1" not in ips(updated)


def test_new_endpoints_go_to_the_unchanged_slice_closest_to_full() -> None:
    a = named(core.plan_endpoint_slices(service(), [pod(f"a{i}", f"10.244.1.{i + 1}") for i in range(90)],
                                        NODES, []).to_create[0], "a")
    b = named(core.plan_endpoint_slices(service(), [pod(f"b{i}", f"10.244.2.{i + 1}") for i in range(10)],
                                        NODES, []).to_create[0], "b")
    existing_pods = [pod(f"a{i}", f"10.244.1.{i + 1}") for i in range(90)] + \
        [pod(f"b{i}", f"10.244.2.{i + 1}") for i in range(10)]
    plan = core.plan_endpoint_slices(service(), existing_pods + [pod("n", "10.244.3.1")], NODES, [a, b])
    (updated,) = plan.to_update
    assert updated["metadata"]["name"] == "a"


def test_pods_naming_a_port_differently_get_separate_slices() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}])
    pods = [pod("a", "10.244.1.8", ports=[{"name": "http", "containerPort": 8080}]),
            pod("b", "10.244.1.9", ports=[{"name": "http", "containerPort": 8081}]),
            pod("c", "10.244.1.10", ports=[{"name": "http", "containerPort": 8080}])]
    plan = core.plan_endpoint_slices(svc, pods, NODES, [])
    got = sorted((s["ports"][0]["port"], ips(s)) for s in plan.to_create)
    assert got == [(8080, ["10.244.1.8", "10.244.1.10"]), (8081, ["10.244.1.9"])]


def test_pod_without_the_named_port_gets_a_portless_slice() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}])
    plan = core.plan_endpoint_slices(svc, [pod("a", ports=[{"name": "other", "containerPort": 1}])], NODES, [])
    assert plan.to_create[0]["ports"] == [] and ips(plan.to_create[0]) == ["10.244.1.8"]


def test_dual_stack_service_gets_one_slice_per_family() -> None:
    svc = service(families=["IPv4", "IPv6"])
    plan = core.plan_endpoint_slices(svc, [pod("a", ips=["10.244.1.8", "fd00:10:244:1::8"])], NODES, [])
    assert sorted((s["addressType"], ips(s)) for s in plan.to_create) == \
        [("IPv4", ["10.244.1.8"]), ("IPv6", ["fd00:10:244:1::8"])]


def test_service_without_endpoints_gets_a_placeholder_once() -> None:
    plan = core.plan_endpoint_slices(service(), [], NODES, [])
    (placeholder,) = plan.to_create
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    again = core.plan_endpoint_slices(service(), [], NODES, [named(placeholder, "p")])
    assert again.empty


def test_last_endpoint_leaving_reuses_the_slice_as_placeholder() -> None:
    existing = named(core.plan_endpoint_slices(service(), [pod("a")], NODES, []).to_create[0], "s1")
    plan = core.plan_endpoint_slices(service(), [], NODES, [existing])
    assert plan.to_create == () and plan.to_delete == ()
    (updated,) = plan.to_update
    assert updated["metadata"]["name"] == "s1" and updated["endpoints"] == [] and updated["ports"] == []


def test_slices_of_an_older_service_with_the_same_name_are_replaced() -> None:
    old = named(core.plan_endpoint_slices(service(), [pod("a")], NODES, []).to_create[0], "old")
    old["metadata"]["ownerReferences"][0]["uid"] = "uid-of-a-deleted-service"
    plan = core.plan_endpoint_slices(service(), [pod("a")], NODES, [old])
    assert len(plan.to_create) == 1 and [s["metadata"]["name"] for s in plan.to_delete] == ["old"]


def test_slice_of_a_family_the_service_dropped_is_deleted() -> None:
    v6 = named(core.plan_endpoint_slices(service(families=["IPv6"]), [pod("a", "fd00::8")], NODES, [])
               .to_create[0], "v6")
    plan = core.plan_endpoint_slices(service(), [pod("a")], NODES, [v6])
    assert [s["metadata"]["name"] for s in plan.to_delete] == ["v6"]


def test_service_labels_are_copied_to_slices_except_reserved_ones() -> None:
    svc = service()
    svc["metadata"]["labels"] = {"team": "x", core.LABEL_SERVICE_NAME: "spoof"}
    existing = named(core.plan_endpoint_slices(service(), [pod("a")], NODES, []).to_create[0], "s1")
    (updated,) = core.plan_endpoint_slices(svc, [pod("a")], NODES, [existing]).to_update
    assert updated["metadata"]["labels"] == {"team": "x", core.LABEL_SERVICE_NAME: "hostnames",
                                             core.LABEL_MANAGED_BY: core.CONTROLLER_NAME}


def test_headless_service_slices_carry_the_headless_label() -> None:
    plan = core.plan_endpoint_slices(service(cluster_ip="None"), [pod("a")], NODES, [])
    assert plan.to_create[0]["metadata"]["labels"][core.LABEL_HEADLESS] == ""


def test_pod_on_an_unknown_node_waits_unless_not_ready_addresses_are_published() -> None:
    plan = core.plan_endpoint_slices(service(), [pod("a", node="ghost")], NODES, [])
    assert plan.skipped_pods == ("a",) and plan.to_create[0]["endpoints"] == []
    published = core.plan_endpoint_slices(service(publishNotReadyAddresses=True), [pod("a", node="ghost")],
                                          NODES, [])
    assert published.skipped_pods == () and ips(published.to_create[0]) == ["10.244.1.8"]


def test_dying_service_gets_no_new_slices() -> None:
    svc = service()
    svc["metadata"]["deletionTimestamp"] = T0
    assert core.plan_endpoint_slices(svc, [pod("a")], NODES, []).to_create == ()


def test_written_slices_carry_the_trigger_time() -> None:
    when = dt.datetime(2026, 1, 1, 0, 0, 5, 250000, tzinfo=dt.UTC)
    plan = core.plan_endpoint_slices(service(), [pod("a")], NODES, [], trigger_time=when)
    assert plan.to_create[0]["metadata"]["annotations"] == {core.ANNOTATION_TRIGGER_TIME: "2026-01-01T00:00:05.25Z"}


# ---------------------------------------------------------------------- Endpoints

def test_subsets_sort_addresses_by_ip_string_and_split_not_ready() -> None:
    pods = [pod("a", "10.244.1.8"), pod("b", "10.244.1.9", ready=False), pod("c", "10.244.1.10")]
    (subset,) = core.desired_subsets(service(), pods)
    assert [a["ip"] for a in subset["addresses"]] == ["10.244.1.10", "10.244.1.8"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.1.9"]
    assert subset["ports"] == [{"name": "default", "port": 9376, "protocol": "TCP"}]
    assert subset["addresses"][0] == {"ip": "10.244.1.10", "nodeName": "node-1", "targetRef": {
        "kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}}


@pytest.mark.parametrize("the_pod, publish, where", [
    (pod("a", deleting=True), False, None),
    (pod("a", deleting=True), True, "addresses"),
    (pod("a", ready=False), True, "addresses"),
    (pod("a", ready=False), False, "notReadyAddresses"),
    (pod("a", ip=None), True, None),
])
def test_subsets_membership(the_pod: Obj, publish: bool, where: str | None) -> None:
    subsets = core.desired_subsets(service(publishNotReadyAddresses=publish), [the_pod])
    if where is None:
        assert subsets == []
    else:
        assert [a["ip"] for a in subsets[0][where]] == ["10.244.1.8"]


def test_subsets_group_addresses_by_port_set() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                         {"name": "admin", "port": 81, "targetPort": 9000, "protocol": "TCP"}])
    pods = [pod("a", "10.244.1.8", ports=[{"name": "http", "containerPort": 8080}]),
            pod("b", "10.244.1.9", ports=[{"name": "http", "containerPort": 8081}])]
    subsets = core.desired_subsets(svc, pods)
    got = sorted(([a["ip"] for a in s["addresses"]], [p["port"] for p in s["ports"]]) for s in subsets)
    assert got == [(["10.244.1.8"], [8080]), (["10.244.1.8", "10.244.1.9"], [9000]), (["10.244.1.9"], [8081])]


def test_headless_service_without_ports_keeps_addresses() -> None:
    (subset,) = core.desired_subsets(service(cluster_ip="None", ports=[]), [pod("a")])
    assert "ports" not in subset and subset["addresses"][0]["ip"] == "10.244.1.8"


def test_endpoints_update_creates_then_skips_when_equal() -> None:
    svc = service()
    svc["metadata"]["labels"] = {"team": "x"}
    subsets = core.desired_subsets(svc, [pod("a")])
    created = core.endpoints_update(svc, None, subsets, None)
    assert created["metadata"] == {"name": "hostnames", "namespace": "default", "labels": {"team": "x"}}
    stored = copy.deepcopy(created)
    stored["metadata"]["resourceVersion"] = "3"
    stored["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = "99"  # ignored
    assert core.endpoints_update(svc, stored, subsets, None) is None


def test_endpoints_of_headless_service_carry_the_headless_label() -> None:
    created = core.endpoints_update(service(cluster_ip="None"), None, [], None)
    assert created["metadata"]["labels"] == {core.LABEL_HEADLESS: ""}


def test_endpoints_over_capacity_are_truncated_and_annotated() -> None:
    pods = [pod(f"p{i:04d}", f"10.{i // 250}.{i % 250}.1", ready=i % 2 == 0) for i in range(1500)]
    subsets = core.desired_subsets(service(), pods)
    new = core.endpoints_update(service(), None, subsets, None)
    (subset,) = new["subsets"]
    assert len(subset["addresses"]) == 750 and len(subset["notReadyAddresses"]) == 250
    assert new["metadata"]["annotations"] == {core.ANNOTATION_OVER_CAPACITY: "truncated"}


def test_truncation_prefers_ready_addresses() -> None:
    subsets = [{"addresses": [{"ip": f"10.0.{i // 250}.{i % 250}"} for i in range(1200)],
                "notReadyAddresses": [{"ip": "10.9.9.9"}]}]
    assert core.truncate_subsets(subsets)
    assert len(subsets[0]["addresses"]) == 1000 and "notReadyAddresses" not in subsets[0]


def test_back_under_capacity_removes_the_annotation() -> None:
    current = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {
        "name": "hostnames", "namespace": "default", "resourceVersion": "5",
        "annotations": {core.ANNOTATION_OVER_CAPACITY: "truncated"}}}
    subsets = core.desired_subsets(service(), [pod("a")])
    new = core.endpoints_update(service(), current, subsets, None)
    assert "annotations" not in new["metadata"]


# --------------------------------------------------------------------- trigger time

def test_trigger_time_is_service_creation_first_then_changed_pod_transitions() -> None:
    svc = service()
    first, state = core.next_trigger_time(None, svc, [pod("a")])
    assert first == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    unchanged, state = core.next_trigger_time(state, svc, [pod("a")])
    assert unchanged is None
    later, state = core.next_trigger_time(state, svc, [pod("a", ready=False, ready_since="2026-01-01T00:01:00Z"),
                                                       pod("b", ready_since="2026-01-01T00:02:00Z")])
    assert later == dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("when, text", [
    (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "2026-01-01T00:00:00Z"),
    (dt.datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=dt.UTC), "2026-01-01T00:00:00.123Z"),
])
def test_format_trigger_time_is_rfc3339_nano(when: dt.datetime, text: str) -> None:
    assert core.format_trigger_time(when) == text
