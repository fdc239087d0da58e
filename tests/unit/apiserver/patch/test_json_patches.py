"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) with kube-apiserver's error answers."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.errors import ApiError
from svcnet.apiserver.patch import json_merge_patch, json_patch

BASE: dict[str, Any] = {
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
    "spec": {"replicas": 1, "ports": [{"port": 80}], "selector": {"app": "web"}},
}


@pytest.mark.parametrize(("patch", "expected"), [
    pytest.param({"spec": {"replicas": 3}},
                 {**BASE, "spec": {**BASE["spec"], "replicas": 3}}, id="sets-a-field"),
    pytest.param({"metadata": {"labels": {"tier": None}}},
                 {**BASE, "metadata": {"name": "web", "labels": {"app": "web"}}}, id="null-deletes-a-key"),
    pytest.param({"spec": {"ports": [{"port": 8080}]}},
                 {**BASE, "spec": {**BASE["spec"], "ports": [{"port": 8080}]}}, id="lists-are-replaced"),
    pytest.param({"spec": {"extra": {"a": 1, "b": None}}},
                 {**BASE, "spec": {**BASE["spec"], "extra": {"a": 1}}}, id="nulls-in-new-objects-are-pruned"),
    pytest.param({"spec": {"selector": "all"}},
                 {**BASE, "spec": {**BASE["spec"], "selector": "all"}}, id="object-replaced-by-scalar"),
    pytest.param({"status": None}, BASE, id="deleting-a-missing-key-is-a-no-op"),
    pytest.param({"spec": {"list": [None, {"x": None}]}},
                 {**BASE, "spec": {**BASE["spec"], "list": [None, {}]}},
                 id="new-array-keeps-null-elements-and-prunes-inside-them"),
])
def test_json_merge_patch_follows_rfc7386(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert json_merge_patch(BASE, patch) == expected


def test_json_merge_patch_leaves_its_inputs_alone() -> None:
    original = copy.deepcopy(BASE)
    patch = {"metadata": {"labels": {"app": None}}}
    json_merge_patch(original, patch)
    assert original == BASE
    assert patch == {"metadata": {"labels": {"app": None}}}


@pytest.mark.parametrize(("patch", "code"), [
    pytest.param([{"a": 1}], 422, id="array-is-not-an-object"),
    pytest.param("text", 400, id="scalar-is-not-a-patch"),
    pytest.param(None, 400, id="null-is-not-a-patch"),
])
def test_json_merge_patch_rejects_non_objects(patch: Any, code: int) -> None:
    with pytest.raises(ApiError) as err:
        json_merge_patch(BASE, patch)
    assert err.value.code == code


@pytest.mark.parametrize(("ops", "expected"), [
    pytest.param([{"op": "replace", "path": "/spec/replicas", "value": 3}],
                 {**BASE, "spec": {**BASE["spec"], "replicas": 3}}, id="replace"),
    pytest.param([{"op": "add", "path": "/spec/ports/-", "value": {"port": 443}}],
                 {**BASE, "spec": {**BASE["spec"], "ports": [{"port": 80}, {"port": 443}]}}, id="add-to-list-end"),
    pytest.param([{"op": "remove", "path": "/metadata/labels/tier"}],
                 {**BASE, "metadata": {"name": "web", "labels": {"app": "web"}}}, id="remove"),
    pytest.param([{"op": "test", "path": "/spec/replicas", "value": 1},
                  {"op": "replace", "path": "/spec/replicas", "value": 2}],
                 {**BASE, "spec": {**BASE["spec"], "replicas": 2}}, id="passing-test-then-replace"),
    pytest.param([{"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"}],
                 {**BASE, "metadata": {"name": "web", "labels": {"app": "web", "layer": "front"}}}, id="move"),
])
def test_json_patch_applies_operations_in_order(ops: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert json_patch(BASE, ops) == expected


@pytest.mark.parametrize("ops", [
    pytest.param([{"op": "replace", "path": "/spec/missing", "value": 1}], id="replace-missing-key"),
    pytest.param([{"op": "remove", "path": "/spec/ports/5"}], id="remove-out-of-range"),
    pytest.param([{"op": "add", "path": "/nope/deeper", "value": 1}], id="add-under-missing-parent"),
    pytest.param([{"op": "test", "path": "/spec/replicas", "value": 2}], id="failed-test"),
    pytest.param([{"op": "frobnicate", "path": "/spec"}], id="unknown-op"),
    pytest.param([{"path": "/spec"}], id="missing-op"),
    pytest.param([{"op": "replace", "path": "", "value": [1]}], id="result-is-not-an-object"),
])
def test_json_patch_that_does_not_apply_is_422_with_upstream_message(ops: list[Any]) -> None:
    with pytest.raises(ApiError) as err:
        json_patch(BASE, ops)
    status = err.value.status()
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == "the server rejected our request due to an error in our request"


def test_json_patch_that_is_not_a_list_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as err:
        json_patch(BASE, {"op": "add"})
    assert err.value.code == 400
    assert err.value.message == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"


def test_json_patch_with_too_many_operations_is_rejected() -> None:
    ops = [{"op": "test", "path": "/spec/replicas", "value": 1}] * 10001
    with pytest.raises(ApiError) as err:
        json_patch(BASE, ops)
    assert err.value.code == 413
    assert err.value.message.endswith("is 10000, got 10001")


def test_json_patch_leaves_the_original_alone() -> None:
    original = copy.deepcopy(BASE)
    json_patch(original, [{"op": "remove", "path": "/spec"}])
    assert original == BASE
