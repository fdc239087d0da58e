"""The EndpointSlice mirroring decisions (svcnet.core.endpoints.mirroring) with plain objects.

Cases follow upstream's reconciler_test.go and utils_test.go in
pkg/controller/endpointslicemirroring: what is mirrored, how, and which writes bring
existing mirrored slices to the desired state.
"""
from __future__ import annotations

import copy
from typing import Any

from svcnet.core.endpoints import mirroring as m

Obj = dict[str, Any]


def endpoints(*subsets: Obj, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None, name: str = "ext") -> Obj:
    md: Obj = {"name": name, "namespace": "ns", "uid": "uid-ep", "resourceVersion": "5"}
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": md, "subsets": list(subsets)}


def subset(ips: list[str], ports: list[tuple[str, int, str]] | None = None, not_ready: list[str] | None = None) -> Obj:
    out: Obj = {"addresses": [{"ip": ip} for ip in ips]}
    if not_ready:
        out["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    if ports is not None:
        out["ports"] = [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]
    return out


HTTP = [("http", 80, "TCP")]


def existing(slice_: Obj, name: str, rv: str = "7") -> Obj:
    out = copy.deepcopy(slice_)
    out["metadata"].pop("generateName", None)
    out["metadata"].update(name=name, resourceVersion=rv)
    return out


def addresses(slice_: Obj) -> list[tuple[str, bool]]:
    return [(e["addresses"][0], e["conditions"]["ready"]) for e in slice_["endpoints"]]


# ---------------------------------------------------------------- what is mirrored

def test_endpoints_with_the_skip_mirror_label_or_a_leader_lock_are_not_mirrored():
    assert m.should_mirror(endpoints(subset(["10.0.0.1"], HTTP)))
    assert not m.should_mirror(endpoints(labels={m.LABEL_SKIP_MIRROR: "true"}))
    assert m.should_mirror(endpoints(labels={m.LABEL_SKIP_MIRROR: "false"}))
    assert not m.should_mirror(endpoints(annotations={"control-plane.alpha.kubernetes.io/leader": "{}"}))
    assert not m.should_mirror(None)


def test_only_existing_services_without_a_selector_are_mirrored():
    assert m.mirrors_for_service({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 80}]}})
    assert not m.mirrors_for_service({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}})
    assert not m.mirrors_for_service(None)


# ------------------------------------------------------------------ slice contents

def test_a_new_endpoints_object_becomes_one_slice_labelled_and_owned_as_upstream():
    ep = endpoints(subset(["10.0.0.1", "10.0.0.2"], HTTP, not_ready=["10.0.0.3"]),
                   labels={"team": "a"}, annotations={"note": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                                      "endpoints.kubernetes.io/last-change-trigger-time": "t"})
    plan = m.plan_mirrored_slices(ep, [])
    assert (len(plan.to_create), plan.to_update, plan.to_delete) == (1, (), ())
    created = plan.to_create[0]
    assert created["metadata"]["generateName"] == "ext-"
    assert created["metadata"]["labels"] == {"team": "a", "kubernetes.io/service-name": "ext",
                                             "endpointslice.kubernetes.io/managed-by":
                                                 "endpointslicemirroring-controller.k8s.io"}
    assert created["metadata"]["annotations"] == {"note": "x"}
    assert created["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Endpoints", "name": "ext",
                                                       "uid": "uid-ep", "controller": True,
                                                       "blockOwnerDeletion": True}]
    assert created["addressType"] == "IPv4"
    assert created["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert addresses(created) == [("10.0.0.1", True), ("10.0.0.2", True), ("10.0.0.3", False)]


def test_hostname_node_and_target_ref_are_carried_and_ips_normalised():
    ref = {"kind": "Pod", "namespace": "ns", "name": "p"}
    ep = endpoints({"addresses": [{"ip": "fd00:0:0::0001", "hostname": "h", "nodeName": "node-1", "targetRef": ref}],
                    "ports": [{"port": 53, "protocol": "UDP"}]})
    created = m.plan_mirrored_slices(ep, []).to_create[0]
    assert created["addressType"] == "IPv6"
    assert created["endpoints"] == [{"addresses": ["fd00::1"], "conditions": {"ready": True}, "hostname": "h",
                                     "nodeName": "node-1", "targetRef": ref}]
    assert created["ports"] == [{"name": "", "port": 53, "protocol": "UDP"}]


def test_each_address_type_and_port_set_gets_its_own_slice_and_equal_port_sets_share_one():
    ep = endpoints(subset(["10.0.0.1", "fd00::1"], HTTP), subset(["10.0.0.2"], [("dns", 53, "UDP")]),
                   subset(["10.0.0.3"], HTTP))
    created = m.plan_mirrored_slices(ep, []).to_create
    groups = sorted((s["addressType"], s["ports"][0]["port"], [a for a, _ in addresses(s)]) for s in created)
    assert groups == [("IPv4", 53, ["10.0.0.2"]), ("IPv4", 80, ["10.0.0.1", "10.0.0.3"]), ("IPv6", 80, ["fd00::1"])]


def test_an_address_both_ready_and_not_ready_is_one_endpoint_the_later_wins():
    ep = endpoints(subset(["10.0.0.1"], HTTP, not_ready=["10.0.0.1"]))
    assert addresses(m.plan_mirrored_slices(ep, []).to_create[0]) == [("10.0.0.1", False)]


def test_invalid_ips_are_skipped_and_counted():
    ep = endpoints(subset(["10.0.0.1", "not-an-ip", "10.0.0.256"], HTTP))
    plan = m.plan_mirrored_slices(ep, [])
    assert addresses(plan.to_create[0]) == [("10.0.0.1", True)]
    assert (plan.invalid_addresses, plan.skipped_addresses) == (2, 2)


def test_at_most_the_limit_of_addresses_per_subset_is_mirrored_ready_ones_first():
    ep = endpoints(subset([f"10.0.0.{i}" for i in range(1, 4)], HTTP, not_ready=["10.0.1.1", "10.0.1.2"]))
    plan = m.plan_mirrored_slices(ep, [], max_per_subset=4)
    assert addresses(plan.to_create[0]) == [("10.0.0.1", True), ("10.0.0.2", True), ("10.0.0.3", True),
                                            ("10.0.1.1", False)]
    assert (plan.invalid_addresses, plan.skipped_addresses) == (0, 1)


def test_the_default_limit_is_upstreams_1000_addresses_per_subset():
    ips = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(1, 1002)]
    plan = m.plan_mirrored_slices(endpoints(subset(ips, HTTP)), [])
    assert len(plan.to_create[0]["endpoints"]) == 1000
    assert plan.skipped_addresses == 1


# --------------------------------------------------------------------- the plan

def test_an_up_to_date_slice_is_not_written():
    ep = endpoints(subset(["10.0.0.1"], HTTP), labels={"team": "a"})
    current = existing(m.plan_mirrored_slices(ep, []).to_create[0], "ext-abc")
    assert m.plan_mirrored_slices(ep, [current]).empty


def test_a_changed_address_list_updates_the_existing_slice_in_place():
    current = existing(m.plan_mirrored_slices(endpoints(subset(["10.0.0.1"], HTTP)), []).to_create[0], "ext-abc")
    plan = m.plan_mirrored_slices(endpoints(subset(["10.0.0.1", "10.0.0.2"], HTTP)), [current])
    assert (plan.to_create, plan.to_delete) == ((), ())
    [updated] = plan.to_update
    assert (updated["metadata"]["name"], updated["metadata"]["resourceVersion"]) == ("ext-abc", "7")
    assert addresses(updated) == [("10.0.0.1", True), ("10.0.0.2", True)]


def test_a_readiness_change_or_a_new_label_updates_the_slice():
    current = existing(m.plan_mirrored_slices(endpoints(subset(["10.0.0.1"], HTTP)), []).to_create[0], "ext-abc")
    assert len(m.plan_mirrored_slices(endpoints(subset([], HTTP, not_ready=["10.0.0.1"])), [current]).to_update) == 1
    relabelled = endpoints(subset(["10.0.0.1"], HTTP), labels={"team": "b"})
    [updated] = m.plan_mirrored_slices(relabelled, [current]).to_update
    assert updated["metadata"]["labels"]["team"] == "b"


def test_extra_slices_of_a_port_set_are_deleted_and_the_first_kept():
    ep = endpoints(subset(["10.0.0.1"], HTTP))
    first = existing(m.plan_mirrored_slices(ep, []).to_create[0], "ext-a")
    second = existing(first, "ext-b")
    plan = m.plan_mirrored_slices(ep, [second, first])
    assert (plan.to_create, plan.to_update) == ((), ())
    assert [s["metadata"]["name"] for s in plan.to_delete] == ["ext-b"]


def test_a_slice_whose_port_set_went_away_is_reused_for_the_new_one():
    old = existing(m.plan_mirrored_slices(endpoints(subset(["10.0.0.1"], HTTP)), []).to_create[0], "ext-a")
    plan = m.plan_mirrored_slices(endpoints(subset(["10.0.0.1"], [("https", 443, "TCP")])), [old])
    assert (plan.to_create, plan.to_delete) == ((), ())
    [reused] = plan.to_update
    assert reused["metadata"]["name"] == "ext-a" and "generateName" not in reused["metadata"]
    assert reused["ports"] == [{"name": "https", "port": 443, "protocol": "TCP"}]


def test_endpoints_without_addresses_delete_every_mirrored_slice():
    old = existing(m.plan_mirrored_slices(endpoints(subset(["10.0.0.1"], HTTP)), []).to_create[0], "ext-a")
    for emptied in (endpoints(), endpoints(subset([], HTTP))):
        plan = m.plan_mirrored_slices(emptied, [old])
        assert (plan.to_create, plan.to_update) == ((), ())
        assert [s["metadata"]["name"] for s in plan.to_delete] == ["ext-a"]
