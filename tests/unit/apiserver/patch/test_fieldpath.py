"""FieldsV1 encoding, path printing and the schema resolver the engines share."""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.apiserver.patch import SchemaResolver, from_fields_v1, path_string, to_fields_v1
from svcnet.apiserver.patch.fieldpath import Path, key_element, value_element
from tests.unit.apiserver.patch import CORE, RESOLVER, SCHEMAS

CONTAINER: Path = (("f", "spec"), ("f", "containers"), key_element({"name": "web"}))


@pytest.mark.parametrize(("path", "text"), [
    pytest.param((("f", "spec"), ("f", "replicas")), ".spec.replicas", id="fields"),
    pytest.param(CONTAINER + (("f", "image"),), '.spec.containers[name="web"].image', id="key"),
    pytest.param((("f", "ports"), key_element({"protocol": "TCP", "containerPort": 80})),
                 '.ports[containerPort=80,protocol="TCP"]', id="multi-key-sorted"),
    pytest.param((("f", "finalizers"), value_element("a/b")), '.finalizers[="a/b"]', id="set-value"),
    pytest.param((("f", "args"), ("i", 2)), ".args[2]", id="index"),
])
def test_path_string_matches_structured_merge_diff(path: Path, text: str) -> None:
    assert path_string(path) == text


FIELDS_V1: dict[str, Any] = {
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {
        "f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}},
        "f:finalizers": {'v:"x"': {}},
        "f:replicas": {},
    },
}


def test_fields_v1_round_trips() -> None:
    paths = from_fields_v1(FIELDS_V1)
    assert CONTAINER in paths
    assert (("f", "metadata"), ("f", "labels")) in paths
    assert (("f", "spec"),) not in paths
    assert to_fields_v1(paths) == FIELDS_V1


def test_fields_v1_sorts_fields_before_keys_and_marks_members_first() -> None:
    paths = {CONTAINER, CONTAINER + (("f", "name"),), (("f", "spec"), ("f", "containers"), ("f", "zz"))}
    encoded = to_fields_v1(paths)["f:spec"]["f:containers"]
    assert list(encoded) == ["f:zz", 'k:{"name":"web"}']
    assert list(encoded['k:{"name":"web"}']) == [".", "f:name"]


@pytest.mark.parametrize("bad", [{"x:what": {}}, {"f:a": "leaf"}, ["f:a"], {'k:{"broken"': {}}])
def test_malformed_fields_v1_is_rejected(bad: Any) -> None:
    with pytest.raises(ValueError):
        from_fields_v1(bad)


def test_resolver_keeps_property_metadata_over_the_referenced_type() -> None:
    containers = RESOLVER.property(RESOLVER.root(CORE + "PodSpec"), "containers")
    assert containers is not None
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    item = RESOLVER.items(containers)
    assert item is not None and "ports" in item["properties"] and item["default"] == {}


@pytest.mark.parametrize("document", [
    pytest.param({"components": {"schemas": SCHEMAS}}, id="whole-document"),
    pytest.param({"schemas": SCHEMAS}, id="components"),
    pytest.param(SCHEMAS, id="schemas"),
])
def test_resolver_accepts_the_document_at_any_level(document: dict[str, Any]) -> None:
    resolver = SchemaResolver(document)
    assert resolver.root("#/components/schemas/" + CORE + "Pod") == resolver.root(CORE + "Pod") is not None


def test_resolver_answers_none_for_unknown_types_and_fields() -> None:
    assert RESOLVER.root("io.example.Nope") is None
    assert RESOLVER.property(RESOLVER.root(CORE + "PodSpec"), "nope") is None
