"""A create's managedFields entry, worked out once per object layout (managed._created), is the
entry the general comparison (managed._recorded) gives for that object, whatever its values."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.resources import lookup
from svcnet.apiserver import openapi
from svcnet.apiserver.handlers import schema_resolver
from svcnet.apiserver.patch import managed, record_update
from tests.unit.apiserver.patch import DEPLOYMENT, POD, RESOLVER

NOW = "2024-01-01T00:00:00Z"


def deployment(name: str, replicas: Any = 2, image: str = "nginx", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", **meta},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": image,
                                                           "ports": [{"containerPort": 80}]}]}}}}


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x", "n": name}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["sleep", name]}], **spec}}


CASES = [
    (DEPLOYMENT, deployment("a")),
    (DEPLOYMENT, deployment("b", replicas=None)),  # null where the zero object has nothing
    (DEPLOYMENT, deployment("c", labels={"tier": "web"}, annotations={"note": "1"})),
    (DEPLOYMENT, {**deployment("d"), "status": {"replicas": 3}}),  # status: reset for the main resource
    (DEPLOYMENT, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "e"}, "spec": {}}),
    (DEPLOYMENT, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "f"},
                  "spec": {"template": {"spec": {"containers": None}}}}),  # a required field set to null
    (DEPLOYMENT, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "g"},
                  "spec": {"strategy": {}, "paused": False}}),  # an empty struct, a false bool
    (DEPLOYMENT, {"kind": "Deployment", "metadata": {"name": "h"}, "spec": {"replicas": "3"}}),  # wrong type
    (POD, pod("p", nodeSelector={"disk": "ssd"}, restartPolicy="Always")),
    (POD, pod("q", securityContext={}, tolerations=[{"key": "k", "operator": "Exists"}])),
    (POD, {**pod("r"), "metadata": {"name": "r", "managedFields": "not a list"}}),  # unreadable: untracked
]


def recorded(obj: dict[str, Any], root: str, manager: str = "m", now: str = NOW) -> list[dict[str, Any]]:
    return managed._recorded(None, obj, {}, manager, RESOLVER, root, now, "")


@pytest.mark.parametrize(("root", "obj"), CASES, ids=[obj["metadata"]["name"] for _, obj in CASES])
def test_a_created_objects_entry_is_the_general_comparisons(root: str, obj: dict[str, Any]) -> None:
    want = recorded(copy.deepcopy(obj), root)  # [] when the object owns nothing (e, f)
    first = record_update(None, copy.deepcopy(obj), "m", RESOLVER, root, NOW)  # worked out
    again = record_update(None, copy.deepcopy(obj), "m", RESOLVER, root, NOW)  # remembered
    assert first == want
    assert again == want


def test_served_schemas_give_a_pod_the_same_entry_either_way() -> None:
    served = schema_resolver()  # the schemas /openapi/v3 publishes, as the server uses them
    root = openapi.root_schema_name(lookup("", "v1", "pods"))
    for i in range(3):
        obj = pod(f"p{i}", tolerations=[{"key": "k", "operator": "Exists"}])
        want = managed._recorded(None, copy.deepcopy(obj), {}, "m", served, root, NOW, "")
        assert record_update(None, obj, "m", served, root, NOW) == want
        assert "f:tolerations" in want[0]["fieldsV1"]["f:spec"]


def test_objects_of_one_layout_share_the_work_but_keep_their_own_values() -> None:
    one = deployment("one", replicas=1, image="nginx:1")
    other = deployment("other", replicas=5, image="nginx:2", labels={"v": "2"})
    other["metadata"].pop("labels")
    other["metadata"]["labels"] = {"v": "3"}
    one["metadata"]["labels"] = {"v": "1"}
    assert managed._layout(one["metadata"]) == managed._layout(other["metadata"])
    record_update(None, one, "m", RESOLVER, DEPLOYMENT, NOW)
    got = record_update(None, other, "writer-2", RESOLVER, DEPLOYMENT, "2024-02-02T00:00:00Z")
    assert got == recorded(other, DEPLOYMENT, "writer-2", "2024-02-02T00:00:00Z")
    assert got[0]["manager"] == "writer-2" and got[0]["time"] == "2024-02-02T00:00:00Z"
    # the list items differ (image), so their keys are compared: still the same container key
    assert "k:{\"name\":\"web\"}" in got[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]


def test_null_and_a_value_are_different_layouts() -> None:
    assert managed._layout({"a": None}) != managed._layout({"a": 1})
    assert managed._layout({"a": "x", "b": True}) == managed._layout({"a": "y", "b": False})
    assert managed._layout({"l": [1, 2]}) != managed._layout({"l": [1, 3]})  # list items kept whole


def test_the_remembered_layouts_are_bounded() -> None:
    memo = managed._Memo(limit=3)
    for i in range(10):
        memo.put(i, str(i))
    assert [memo.get(i) for i in range(10)] == [None] * 7 + ["7", "8", "9"]


def test_a_returned_entry_is_the_callers_own() -> None:
    obj = deployment("mine")
    first = record_update(None, copy.deepcopy(obj), "m", RESOLVER, DEPLOYMENT, NOW)
    first[0]["fieldsV1"]["f:spec"].clear()
    assert record_update(None, copy.deepcopy(obj), "m", RESOLVER, DEPLOYMENT, NOW) == recorded(obj, DEPLOYMENT)


def test_list_items_with_other_keys_get_their_own_paths() -> None:
    first = pod("k1")
    second = pod("k2")
    second["spec"]["containers"][0]["name"] = "other"
    record_update(None, first, "m", RESOLVER, POD, NOW)
    got = record_update(None, second, "m", RESOLVER, POD, NOW)
    assert got == recorded(second, POD)
    assert list(got[0]["fieldsV1"]["f:spec"]["f:containers"]) == ['k:{"name":"other"}']
