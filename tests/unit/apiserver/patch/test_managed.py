"""Server-side apply and managedFields: ownership, pruning, conflicts and force, in the FieldsV1
shape and message wording kube-apiserver uses."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from svcnet.api.errors import ApiError
from svcnet.apiserver.patch import (
    BEFORE_FIRST_APPLY,
    decode_managed_fields,
    field_manager_for,
    last_applied_configuration,
    record_update,
    server_side_apply,
)
from svcnet.apiserver.patch.managed import LAST_APPLIED
from tests.unit.apiserver.patch import DEPLOYMENT, POD, RESOLVER

T1, T2, T3 = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"
EMPTY_LEAF: dict[str, Any] = {}


def config(replicas: int | None = 1, labels: dict[str, str] | None = None,
           containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    """An applied Deployment configuration, as `kubectl apply --server-side` sends it."""
    body: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "web", "namespace": "default"}, "spec": dict(spec)}
    if labels is not None:
        body["metadata"]["labels"] = labels
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    if containers is not None:
        body["spec"]["template"] = {"spec": {"containers": containers}}
    return body


def apply(live: dict[str, Any] | None, body: dict[str, Any], manager: str = "kubectl", force: bool = False,
          now: str = T1) -> dict[str, Any]:
    return server_side_apply(live, body, manager, force, RESOLVER, DEPLOYMENT, now)


def update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str = T2,
           subresource: str = "") -> dict[str, Any]:
    """A non-apply write: the new object carrying the managedFields record_update computes."""
    result = copy.deepcopy(new)
    result["metadata"]["managedFields"] = record_update(old, new, manager, RESOLVER, DEPLOYMENT, now,
                                                        subresource=subresource)
    return result


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def fields_of(obj: dict[str, Any], manager: str, operation: str = "Apply") -> dict[str, Any]:
    return entries(obj)[(manager, operation)]["fieldsV1"]


def test_apply_creates_the_object_with_an_apply_entry() -> None:
    body = config(labels={"app": "web"}, containers=[
        {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}], "args": ["-v"]}])
    result = apply(None, body)
    assert result["spec"] == body["spec"]
    assert result["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {
                    ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                }}}},
            },
        },
    }]


def test_reapplying_the_same_configuration_keeps_object_and_time() -> None:
    first = apply(None, config(labels={"app": "web"}))
    again = apply(first, config(labels={"app": "web"}), now=T2)
    assert again == first


def test_apply_dropping_a_field_it_owned_removes_it() -> None:
    first = apply(None, config(labels={"app": "web", "tier": "front"}))
    second = apply(first, config(labels={"app": "web"}), now=T2)
    assert second["metadata"]["labels"] == {"app": "web"}
    assert fields_of(second, "kubectl")["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert entries(second)[("kubectl", "Apply")]["time"] == T2


def test_apply_dropping_every_label_drops_the_emptied_map() -> None:
    first = apply(None, config(labels={"app": "web"}))
    assert "labels" not in apply(first, config(), now=T2)["metadata"]


def test_apply_dropping_a_field_another_applier_also_owns_keeps_it() -> None:
    first = apply(None, config(labels={"app": "web"}), manager="a")
    shared = apply(first, config(labels={"app": "web"}), manager="b", now=T2)
    dropped = apply(shared, config(labels={}), manager="a", now=T3)
    assert dropped["metadata"]["labels"] == {"app": "web"}
    assert fields_of(dropped, "b")["f:metadata"] == {"f:labels": {"f:app": {}}}


def test_applying_the_live_value_of_another_managers_field_shares_it_without_conflict() -> None:
    created = update(None, config(replicas=1), "kubectl-client-side-apply", now=T1)
    applied = apply(created, config(replicas=1), now=T2)
    assert fields_of(applied, "kubectl")["f:spec"] == {"f:replicas": {}}
    assert fields_of(applied, "kubectl-client-side-apply", "Update")["f:spec"] == {"f:replicas": {}}


def test_applying_a_different_value_of_another_managers_field_conflicts() -> None:
    created = update(None, config(replicas=1), "kubectl-client-side-apply", now=T1)
    with pytest.raises(ApiError) as err:
        apply(created, config(replicas=2), now=T2)
    status = err.value.status()
    assert status["code"] == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                                 "using apps/v1: .spec.replicas")
    assert status["details"] == {"causes": [{
        "reason": "FieldManagerConflict", "field": ".spec.replicas",
        "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}]}


def test_forced_apply_takes_the_field_from_the_other_manager() -> None:
    created = update(None, config(replicas=1, labels={"app": "web"}), "kubectl-client-side-apply", now=T1)
    forced = apply(created, config(replicas=2), force=True, now=T2)
    assert forced["spec"]["replicas"] == 2
    assert fields_of(forced, "kubectl")["f:spec"] == {"f:replicas": {}}
    assert fields_of(forced, "kubectl-client-side-apply", "Update") == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}


def test_several_conflicts_are_listed_by_manager() -> None:
    body = config(replicas=1, labels={"app": "web"}, containers=[{"name": "web", "image": "nginx:1"}])
    created = update(None, body, "kubectl-client-side-apply", now=T1)
    scaled = update(created, {**created, "spec": {**created["spec"], "replicas": 5}}, "kubectl-scale", now=T2)
    with pytest.raises(ApiError) as err:
        apply(scaled, config(replicas=2, containers=[{"name": "web", "image": "nginx:2"}]), now=T3)
    assert err.value.message == (
        "Apply failed with 2 conflicts: "
        'conflicts with "kubectl-client-side-apply" using apps/v1:\n'
        '- .spec.template.spec.containers[name="web"].image\n'
        'conflicts with "kubectl-scale" using apps/v1:\n'
        "- .spec.replicas")
    assert [c.field for c in err.value.causes] == [
        '.spec.template.spec.containers[name="web"].image', ".spec.replicas"]


def test_conflict_with_another_applier_names_it_without_version() -> None:
    first = apply(None, config(replicas=1), manager="helm")
    with pytest.raises(ApiError) as err:
        apply(first, config(replicas=3), manager="argo", now=T2)
    assert err.value.message == 'Apply failed with 1 conflict: conflict with "helm": .spec.replicas'


def test_associative_list_items_are_owned_per_key() -> None:
    a = apply(None, config(replicas=None, containers=[{"name": "a", "image": "x"}]), manager="one")
    both = apply(a, config(replicas=None, containers=[{"name": "b", "image": "y"}]), manager="two", now=T2)
    assert [c["name"] for c in both["spec"]["template"]["spec"]["containers"]] == ["a", "b"]
    only_b = apply(both, config(replicas=None, containers=[]), manager="one", now=T3)
    assert only_b["spec"]["template"]["spec"]["containers"] == [{"name": "b", "image": "y"}]
    assert [e["manager"] for e in only_b["metadata"]["managedFields"]] == ["two"]


def test_dropped_list_item_stays_while_another_manager_owns_part_of_it() -> None:
    a = apply(None, config(replicas=None, containers=[{"name": "side", "image": "x", "args": ["a"]}]), manager="one")
    live = a["spec"]["template"]["spec"]["containers"][0]
    edited = update(a, _with_container(a, {**live, "image": "y"}), "kubectl-edit", now=T2)
    pruned = apply(edited, config(replicas=None, containers=[]), manager="one", now=T3)
    assert pruned["spec"]["template"]["spec"]["containers"] == [{"name": "side", "image": "y"}]


def _with_container(obj: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["spec"]["template"]["spec"]["containers"] = [item]
    return out


def test_apply_merges_into_live_list_items_keeping_unowned_fields() -> None:
    created = update(None, config(containers=[
        {"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent",
         "ports": [{"containerPort": 80, "protocol": "TCP"}]}]), "kubectl-create", now=T1)
    applied = apply(created, config(containers=[
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}, {"containerPort": 443}]}]), now=T2)
    assert applied["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent",
         "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"template": {"spec": {"tolerations": [{"key": "a"}]}}},
                 {"f:template": {"f:spec": {"f:tolerations": {}}}}, id="atomic-list-is-one-field"),
    pytest.param({"selector": {"matchLabels": {"app": "web"}}},
                 {"f:selector": {}}, id="atomic-map-is-one-field"),
    pytest.param({"template": {"metadata": {"finalizers": ["b", "a"]}}},
                 {"f:template": {"f:metadata": {"f:finalizers": {'v:"a"': {}, 'v:"b"': {}}}}}, id="set-items"),
    pytest.param({"template": {"spec": {"containers": [{"name": "w", "resources": {}}]}}},
                 {"f:template": {"f:spec": {"f:containers": {'k:{"name":"w"}': {".": {}, "f:name": {}}}}}},
                 id="empty-struct-owns-nothing"),
])
def test_applied_field_set_shapes(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    result = apply(None, config(replicas=None, **spec))
    assert fields_of(result, "kubectl")["f:spec"] == expected


def test_atomic_list_is_replaced_not_merged() -> None:
    first = update(None, config(template={"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}), "create", now=T1)
    applied = apply(first, config(template={"spec": {"tolerations": [{"key": "c"}]}}), force=True, now=T2)
    assert applied["spec"]["template"]["spec"]["tolerations"] == [{"key": "c"}]


def test_apply_does_not_own_status_of_the_main_resource() -> None:
    body = {**config(), "status": {"replicas": 3}}
    assert "f:status" not in fields_of(apply(None, body), "kubectl")


def test_apply_to_an_untracked_object_charges_its_fields_to_before_first_apply() -> None:
    live = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "uid": "u1"},
            "spec": {"replicas": 1, "minReadySeconds": 5}}
    applied = apply(live, config(replicas=1), now=T2)
    assert fields_of(applied, BEFORE_FIRST_APPLY, "Update") == {"f:spec": {"f:minReadySeconds": {}, "f:replicas": {}}}
    with pytest.raises(ApiError) as err:
        apply(live, config(replicas=4), now=T2)
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "before-first-apply" '
                                 "using apps/v1: .spec.replicas")


def test_apply_rejects_managed_fields_in_the_configuration() -> None:
    body = config()
    body["metadata"]["managedFields"] = []
    with pytest.raises(ApiError) as err:
        apply(None, body)
    assert (err.value.code, err.value.message) == (400, "metadata.managedFields must be nil")


def test_apply_requires_a_field_manager() -> None:
    with pytest.raises(ApiError) as err:
        apply(None, config(), manager="")
    assert err.value.code == 422
    assert err.value.message == ('PatchOptions.meta.k8s.io "" is invalid: '
                                 "fieldManager: Required value: is required for apply requests")


def test_create_by_update_marks_maps_that_appeared_but_not_structs() -> None:
    body = config(labels={"app": "web"}, containers=[{"name": "web", "image": "nginx", "resources": {}}],
                  strategy={"rollingUpdate": {"maxSurge": 1}}, selector={"matchLabels": {"app": "web"}})
    managed = record_update(None, body, "kubectl-client-side-apply", RESOLVER, DEPLOYMENT, T1)
    assert managed == [{
        "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}},
                "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {
                    ".": {}, "f:image": {}, "f:name": {}, "f:resources": {}}}}},
            },
        },
    }]


def test_update_takes_changed_fields_from_the_applier() -> None:
    applied = apply(None, config(replicas=1, labels={"app": "web"}))
    scaled = update(applied, {**applied, "spec": {"replicas": 3}}, "kubectl-scale", now=T2)
    assert fields_of(scaled, "kubectl") == {"f:metadata": {"f:labels": {"f:app": {}}}}
    assert fields_of(scaled, "kubectl-scale", "Update") == {"f:spec": {"f:replicas": {}}}
    reapplied = apply(scaled, config(replicas=1, labels={"app": "web"}), now=T3, force=True)
    assert reapplied["spec"]["replicas"] == 1
    assert ("kubectl-scale", "Update") not in entries(reapplied)


def test_update_that_removes_a_field_removes_it_from_every_owner() -> None:
    applied = apply(None, config(labels={"app": "web", "tier": "x"}))
    relabeled = copy.deepcopy(applied)
    relabeled["metadata"]["labels"] = {"app": "web"}
    after = update(applied, relabeled, "kubectl-label", now=T2)
    assert fields_of(after, "kubectl")["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert ("kubectl-label", "Update") not in entries(after)


def test_updates_by_the_same_manager_accumulate_and_restamp_time() -> None:
    created = update(None, config(replicas=1), "kubectl-edit", now=T1)
    edited = copy.deepcopy(created)
    edited["metadata"]["labels"] = {"a": "b"}
    after = update(created, edited, "kubectl-edit", now=T3)
    entry = entries(after)[("kubectl-edit", "Update")]
    assert entry["time"] == T3
    assert entry["fieldsV1"] == {"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:replicas": {}}}


def test_update_that_changes_nothing_leaves_managed_fields_as_they_were() -> None:
    created = update(None, config(replicas=1), "kubectl-create", now=T1)
    assert record_update(created, copy.deepcopy(created), "kubectl-edit", RESOLVER, DEPLOYMENT, T2) == \
        created["metadata"]["managedFields"]


def test_update_of_an_object_without_managed_fields_stays_untracked() -> None:
    old = config(replicas=1)
    assert record_update(old, config(replicas=2), "kubectl-edit", RESOLVER, DEPLOYMENT, T2) == []


def test_status_subresource_update_owns_only_status() -> None:
    created = update(None, config(replicas=1), "kubectl-create", now=T1)
    with_status = {**created, "status": {"replicas": 1, "readyReplicas": 1}}
    after = update(created, with_status, "deployment-controller", now=T2, subresource="status")
    entry = entries(after)[("deployment-controller", "Update")]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}


def test_managed_fields_are_ordered_applies_first_then_by_time() -> None:
    created = update(None, config(replicas=1), "zz-create", now=T1)
    applied = apply(created, config(replicas=1, labels={"a": "b"}), manager="aa-apply", now=T3)
    labeled = copy.deepcopy(applied)
    labeled["metadata"]["labels"]["c"] = "d"
    after = update(applied, labeled, "mm-label", now=T2)
    assert [(e["manager"], e["operation"]) for e in after["metadata"]["managedFields"]] == [
        ("aa-apply", "Apply"), ("zz-create", "Update"), ("mm-label", "Update")]


def test_apply_to_a_pod_keys_ports_with_defaulted_protocol() -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 53, "protocol": "UDP"},
                                                            {"containerPort": 53}]}]}}
    result = server_side_apply(None, body, "kubectl", False, RESOLVER, POD, T1)
    ports = result["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"c"}']["f:ports"]
    assert set(ports) == {'k:{"containerPort":53,"protocol":"UDP"}', 'k:{"containerPort":53,"protocol":"TCP"}'}


def test_decode_skips_malformed_entries() -> None:
    obj = {"metadata": {"managedFields": [
        {"manager": "ok", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "bad", "operation": "Apply", "fieldsV1": {"x:nope": {}}},
        {"operation": "Update", "fieldsV1": {}}, "junk"]}}
    assert [k.manager for k in decode_managed_fields(obj)] == ["ok"]


@pytest.mark.parametrize(("field_manager", "user_agent", "expected"), [
    ("kubectl-client-side-apply", "kubectl/v1.32.0 (linux/amd64) kubernetes/abc", "kubectl-client-side-apply"),
    (None, "kubectl/v1.32.0 (linux/amd64) kubernetes/abc", "kubectl"),
    ("", "kube-controller-manager/v1.32.0 (linux/amd64)", "kube-controller-manager"),
    (None, None, ""),
    (None, "x" * 200, "x" * 128),
    (None, "bad\x00agent/1", "badagent"),
])
def test_field_manager_defaults_from_the_user_agent(field_manager: str | None, user_agent: str | None,
                                                    expected: str) -> None:
    assert field_manager_for(field_manager, user_agent) == expected


def client_side_applied(body: dict[str, Any]) -> dict[str, Any]:
    """An object as `kubectl apply` (client-side) creates it: annotated, owned by its Update."""
    created = copy.deepcopy(body)
    created["metadata"]["annotations"] = {LAST_APPLIED: last_applied_configuration(body)}
    return update(None, created, "kubectl-client-side-apply", now=T1)


def test_kubectl_server_side_apply_takes_over_client_side_applied_fields() -> None:
    live = client_side_applied(config(replicas=1))
    applied = apply(live, config(replicas=2), now=T2)
    assert applied["spec"]["replicas"] == 2
    assert fields_of(applied, "kubectl")["f:spec"] == {"f:replicas": {}}
    assert json.loads(applied["metadata"]["annotations"][LAST_APPLIED]) == config(replicas=2)


def test_kubectl_takeover_still_conflicts_on_fields_changed_since_client_side_apply() -> None:
    live = client_side_applied(config(replicas=1))
    scaled = update(live, {**live, "spec": {"replicas": 5}}, "kubectl-scale", now=T2)
    with pytest.raises(ApiError) as err:
        apply(scaled, config(replicas=2), now=T3)
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-scale" '
                                 "using apps/v1: .spec.replicas")


def test_other_appliers_do_not_take_over_client_side_applied_fields() -> None:
    live = client_side_applied(config(replicas=1))
    with pytest.raises(ApiError):
        apply(live, config(replicas=2), manager="helm", now=T2)


def test_last_applied_annotation_is_written_like_go_json() -> None:
    body = config(labels={"b": "<&>", "a": "x"})
    body["metadata"]["annotations"] = {LAST_APPLIED: "old", "keep": "me"}
    text = last_applied_configuration(body)
    assert text.endswith("}\n")
    assert '"labels":{"a":"x","b":"\\u003c\\u0026\\u003e"}' in text
    assert json.loads(text)["metadata"]["annotations"] == {"keep": "me"}


def test_apply_keeps_repeated_live_list_items_the_config_leaves_alone() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}]
    created = update(None, config(containers=[{"name": "web", "env": env}]), "kubectl-create", now=T1)
    applied = apply(created, config(containers=[{"name": "web", "env": [{"name": "C", "value": "4"}]}]), now=T2)
    assert applied["spec"]["template"]["spec"]["containers"][0]["env"] == [*env, {"name": "C", "value": "4"}]
