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
        # Facts about the resolved nodes this resolver handed out, by id: those nodes live as
        # long as the resolver (the cache above holds them), so an id cannot be reused.
        self._resolved_ids: set[int] = set()
        self._facts: dict[int, NodeFacts] = {}

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
        self._resolved_ids.add(id(resolved))
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

    def facts(self, node: Node | None) -> NodeFacts:
        """What the typed walks need of a resolved node, worked out once per node this
        resolver resolved (the walks visit the same few hundred nodes for every object)."""
        if node is None:
            return _UNTYPED_FACTS
        facts = self._facts.get(id(node))
        if facts is not None:
            return facts
        facts = NodeFacts(self, node)
        if id(node) in self._resolved_ids:
            self._facts[id(node)] = facts
        return facts


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


class NodeFacts:
    """One resolved node as the typed walks see it: the rule shape_of applies to it, its
    resolved property, map-value and item schemas, and its list-map keys, worked out once.
    Answers are exactly those of shape_of, SchemaResolver.property/declares/items and
    list_map_keys; only declared properties are kept per name (map keys are unbounded)."""

    __slots__ = ("untyped", "_container", "_container_shape", "children", "additional", "items",
                 "zero_struct_fields", "required", "list_keys", "_key_defaults")

    def __init__(self, resolver: SchemaResolver | None, node: Node | None) -> None:
        self.untyped = node is None or _is_untyped(node)
        # the shape of a value of the container's type (or null); other values are scalars
        self._container: type | None = None
        self._container_shape = Shape.SCALAR
        if node is not None and not self.untyped and not node.get("x-kubernetes-int-or-string"):
            kind = node.get("type")
            if kind == "array" or (kind is None and "items" in node):
                self._container = list
                list_type = node.get("x-kubernetes-list-type")
                self._container_shape = (Shape.LIST_MAP if list_type == "map"
                                         else Shape.LIST_SET if list_type == "set" else Shape.ATOMIC)
            elif kind == "object" or "properties" in node or "additionalProperties" in node:
                self._container = dict
                self._container_shape = (Shape.ATOMIC if node.get("x-kubernetes-map-type") == "atomic"
                                         else Shape.STRUCT if "properties" in node else Shape.MAP)
        props = node.get("properties") if node is not None else None
        self.children: dict[str, Node | None] = {}
        self.additional: Node | None = None
        self.items: Node | None = None
        self.required: frozenset[str] = frozenset()
        if node is not None and resolver is not None:
            if isinstance(props, dict):
                self.children = {name: resolver.resolve(raw) for name, raw in props.items()}
            extra = node.get("additionalProperties")
            self.additional = resolver.resolve(extra) if isinstance(extra, dict) else None
            self.items = resolver.resolve(node.get("items"))
            self.required = frozenset(node.get("required") or [])
        # properties a Go object always has (non-pointer structs), in schema order
        self.zero_struct_fields: tuple[tuple[str, Node], ...] = tuple(
            (name, child) for name, child in self.children.items() if child is not None and is_value_struct(child))
        self.list_keys = tuple(list_map_keys(node))
        self._key_defaults: tuple[tuple[str, Any], ...] | None = None

    def shape(self, value: Any) -> Shape:
        """shape_of(node, value)."""
        if self.untyped:
            if isinstance(value, dict):
                return Shape.MAP
            return Shape.ATOMIC if isinstance(value, list) else Shape.SCALAR
        container = self._container
        if container is None:
            return Shape.SCALAR
        if value is None or isinstance(value, container):
            return self._container_shape
        return Shape.SCALAR

    def child(self, name: str) -> Node | None:
        """SchemaResolver.property(node, name)."""
        children = self.children
        return children[name] if name in children else self.additional

    def key_defaults(self, item_facts: NodeFacts) -> tuple[tuple[str, Any], ...]:
        """Each list-map key with the schema default its item field has (None: no default)."""
        if self._key_defaults is None:
            self._key_defaults = tuple((key, (item_facts.child(key) or {}).get("default"))
                                       for key in self.list_keys)
        return self._key_defaults


def is_value_struct(node: Node | None) -> bool:
    """A non-pointer struct field: upstream's OpenAPI gives those `default: {}`."""
    return node is not None and node.get("default") == {} and shape_of(node, {}) is Shape.STRUCT


_UNTYPED_FACTS = NodeFacts(None, None)
