"""prune_unknown: the fields the strict check reports are the fields pruning removes."""
from __future__ import annotations

import copy

from svcnet.api.resources import lookup
from svcnet.apiserver import decoding

from .test_decoding import deployment

DEPLOYMENTS = lookup("apps", "v1", "deployments")
SERVICES = lookup("", "v1", "services")


def test_prunes_exactly_what_the_strict_check_reports_and_leaves_the_rest_alone() -> None:
    obj = deployment({"name": "c", "image": "i", "bar": 1,
                      "ports": [{"containerPort": 80, "hostIPx": "typo"}]}, foo={"deep": [1]})
    obj["metadata"]["labels"] = {"foo": "label keys are data"}
    reported = decoding.unknown_fields(DEPLOYMENTS, obj)
    expected = copy.deepcopy(obj)
    del expected["spec"]["foo"]
    container = expected["spec"]["template"]["spec"]["containers"][0]
    del container["bar"]
    del container["ports"][0]["hostIPx"]

    pruned = decoding.prune_unknown(DEPLOYMENTS, obj)

    assert sorted(pruned) == sorted(reported) == sorted([
        "spec.foo", "spec.template.spec.containers[0].bar",
        "spec.template.spec.containers[0].ports[0].hostIPx"])
    assert obj == expected
    assert decoding.findings(DEPLOYMENTS, obj) == []


def test_free_form_values_and_values_of_the_wrong_type_are_left_to_the_check() -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"annotations": {"a": "b"}},
           "spec": {"ports": "not a list", "selector": {"x": "y"}}}
    before = copy.deepcopy(obj)
    assert decoding.prune_unknown(SERVICES, obj) == []
    assert obj == before


def test_status_subresource_bodies_prune_against_the_kind() -> None:
    body = {"status": {"loadBalancer": {}, "on_create": True}}
    assert decoding.prune_unknown(SERVICES, body, subresource="status") == ["status.on_create"]
    assert body == {"status": {"loadBalancer": {}}}


def test_managed_fields_lose_the_pruned_fields_and_the_sets_left_empty() -> None:
    fields_v1 = {
        "f:metadata": {"f:labels": {".": {}, "f:bogusLabelIsData": {}}},
        "f:spec": {
            "f:bogusField": {},
            "f:extra": {"f:deep": {}},
            "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:weird": {}}},
        },
        "f:unknownTop": {},
    }
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "x", "managedFields": [
               {"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields_v1},
               {"manager": "only-bogus", "operation": "Update", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:bogusField": {}}}}]},
           "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}

    decoding.prune_unknown(SERVICES, obj)

    entries = obj["metadata"]["managedFields"]
    assert [e["manager"] for e in entries] == ["m"]  # the manager that owned only bogusField is gone
    assert entries[0]["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:bogusLabelIsData": {}}},
        "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}}},
    }
