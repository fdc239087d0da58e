"""OpenAPI v3 schema lookups that the patch engines need, over kube-apiserver's /openapi/v3 shape."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

Node = dict[str, Any]

_REF_PREFIX = "#/components/schemas/"
# A $ref chain longer than this is a cycle in a malformed document, not a real schema.
_MAX_REF_DEPTH = 32


class SchemaResolver:
    """Resolves `$ref` and `allOf: [{$ref}]` wrappers to one flat node.

    The property node's own keys (x-kubernetes-patch-strategy, default, ...) win over the
    referenced type's, because upstream puts list and patch metadata on the property.
    Accepts a whole OpenAPI document, its `components`, or the `schemas` mapping itself.
    """

    def __init__(self, components: Mapping[str, Any]) -> None:
        if isinstance(components.get("components"), Mapping):
            components = components["components"]
        schemas = components.get("schemas")
        self._schemas: Mapping[str, Any] = schemas if isinstance(schemas, Mapping) else components
        self._cache: dict[int, tuple[Node, Node]] = {}

    def root(self, ref_name: str) -> Node | None:
        """The schema of a top-level type: "io.k8s.api.core.v1.Pod" or "#/components/schemas/..."."""
        name = ref_name[len(_REF_PREFIX):] if ref_name.startswith(_REF_PREFIX) else ref_name
        node = self._schemas.get(name)
        return self.resolve(node) if isinstance(node, dict) else None

    def resolve(self, node: Any) -> Node | None:
        if not isinstance(node, dict):
            return None
        cached = self._cache.get(id(node))
        if cached is not None and cached[0] is node:
            return cached[1]
        resolved = self._flatten(node, 0)
        self._cache[id(node)] = (node, resolved)
        return resolved

    def _flatten(self, node: Node, depth: int) -> Node:
        if depth > _MAX_REF_DEPTH:
            return {}
        flat: Node = {}
        for part in node.get("allOf") or []:
            if isinstance(part, dict):
                flat.update(self._flatten(part, depth + 1))
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = self._schemas.get(ref[len(_REF_PREFIX):] if ref.startswith(_REF_PREFIX) else ref)
            if isinstance(target, dict):
                flat.update(self._flatten(target, depth + 1))
        flat.update((k, v) for k, v in node.items() if k not in ("allOf", "$ref"))
        return flat

    def property(self, node: Node | None, name: str) -> Node | None:
        """The schema of field `name` of an object node (or its map value schema), resolved."""
        if node is None:
            return None
        props = node.get("properties")
        if isinstance(props, dict) and name in props:
            return self.resolve(props[name])
        extra = node.get("additionalProperties")
        return self.resolve(extra) if isinstance(extra, dict) else None

    def declares(self, node: Node | None, name: str) -> bool:
        props = (node or {}).get("properties")
        return isinstance(props, dict) and name in props

    def items(self, node: Node | None) -> Node | None:
        return self.resolve(node.get("items")) if node is not None else None


class Shape(Enum):
    """How structured-merge-diff treats a value: which parts are owned and merged separately."""

    SCALAR = "scalar"
    STRUCT = "struct"          # fixed properties; each field tracked on its own
    MAP = "map"                # additionalProperties or untyped object: each key tracked on its own
    ATOMIC = "atomic"          # atomic map or list: owned and replaced as a whole
    LIST_SET = "set"           # x-kubernetes-list-type: set
    LIST_MAP = "map-list"      # x-kubernetes-list-type: map, keyed by x-kubernetes-list-map-keys


@dataclass(frozen=True)
class PatchMeta:
    """Strategic-merge metadata of one field (x-kubernetes-patch-strategy / -merge-key)."""

    strategy: str = ""
    merge_key: str = ""


def patch_meta(node: Node | None) -> PatchMeta:
    if node is None:
        return PatchMeta()
    return PatchMeta(str(node.get("x-kubernetes-patch-strategy") or ""),
                     str(node.get("x-kubernetes-patch-merge-key") or ""))


def _is_untyped(node: Node) -> bool:
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return True
    return not any(k in node for k in ("type", "properties", "additionalProperties", "items",
                                       "x-kubernetes-int-or-string"))


def shape_of(node: Node | None, value: Any) -> Shape:
    """The shape of `value` under `node`; without a schema the shape is deduced from the value
    (objects are maps, lists atomic), as structured-merge-diff does for untyped fields."""
    if node is None or _is_untyped(node):
        if isinstance(value, dict):
            return Shape.MAP
        return Shape.ATOMIC if isinstance(value, list) else Shape.SCALAR
    if node.get("x-kubernetes-int-or-string"):
        return Shape.SCALAR
    kind = node.get("type")
    if kind == "array" or (kind is None and "items" in node):
        if not isinstance(value, list) and value is not None:
            return Shape.SCALAR
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "map":
            return Shape.LIST_MAP
        return Shape.LIST_SET if list_type == "set" else Shape.ATOMIC
    if kind == "object" or "properties" in node or "additionalProperties" in node:
        if not isinstance(value, dict) and value is not None:
            return Shape.SCALAR
        if node.get("x-kubernetes-map-type") == "atomic":
            return Shape.ATOMIC
        return Shape.STRUCT if "properties" in node else Shape.MAP
    return Shape.SCALAR


def list_map_keys(node: Node | None) -> list[str]:
    keys = (node or {}).get("x-kubernetes-list-map-keys")
    return [str(k) for k in keys] if isinstance(keys, list) else []
