"""components.schemas of the OpenAPI v3 documents, one per struct in apiserver/types/."""
from __future__ import annotations

import copy
from functools import cache
from typing import Any

from svcnet.api.resources import Resource
from svcnet.apiserver import types

Obj = dict[str, Any]


def ref(name: str) -> Obj:
    return {"$ref": f"#/components/schemas/{name}"}


_SCALAR_SCHEMAS: dict[str, Obj] = {
    "string": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "double": {"type": "number", "format": "double"},
    "bytes": {"type": "string", "format": "byte"},
}

_SPECIAL_COMPONENTS: dict[str, Obj] = {
    types.QUANTITY: {
        "description": "A fixed-point number with an optional SI or binary suffix, e.g. 100m, 1Gi, 2.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
    types.INT_OR_STRING: {
        "description": "Either an integer or a string (e.g. a port number or a port name).",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    types.TIME: {"description": "An RFC 3339 timestamp with second precision.",
               "type": "string", "format": "date-time"},
    types.MICRO_TIME: {"description": "An RFC 3339 timestamp with microsecond precision.",
                     "type": "string", "format": "date-time"},
    types.RAW_EXTENSION: {"description": "An embedded object of any kind.", "type": "object"},
    types.FIELDS_V1: {"description": "The set of fields a manager owns, in the fieldsV1 format.",
                    "type": "object"},
    types.PATCH: {"description": "A patch body; its format is given by the request Content-Type.",
                "type": "object"},
}


def _type_schema(t: types.TypeRef, as_property: bool) -> Obj:
    """A field type as a schema. Properties wrap references in allOf, as upstream's v3 does."""
    if t.kind in _SCALAR_SCHEMAS:
        return dict(_SCALAR_SCHEMAS[t.kind])
    if t.kind in ("struct", "special"):
        name = t.name if t.kind == "struct" else types.SPECIAL[t.name]
        return {"allOf": [ref(name)]} if as_property else ref(name)
    assert t.elem is not None
    if t.kind == "list":
        return {"type": "array", "items": _type_schema(t.elem, as_property=False)}
    return {"type": "object", "additionalProperties": _type_schema(t.elem, as_property=False)}


def _field_schema(f: types.Field) -> Obj:
    out = _type_schema(f.type, as_property=True)
    if f.default is not None:
        out["default"] = f.default
    if f.list_type:
        out["x-kubernetes-list-type"] = f.list_type
    if f.list_map_keys:
        out["x-kubernetes-list-map-keys"] = list(f.list_map_keys)
    if f.map_type:
        out["x-kubernetes-map-type"] = f.map_type
    if f.patch_merge_key:
        out["x-kubernetes-patch-merge-key"] = f.patch_merge_key
    if f.patch_strategy:
        out["x-kubernetes-patch-strategy"] = f.patch_strategy
    return out


def _struct_schema(s: types.Struct) -> Obj:
    out: Obj = {
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in sorted(s.fields, key=lambda f: f.name)},
    }
    if s.required:
        out["required"] = list(s.required)
    if s.gvks:
        out["x-kubernetes-group-version-kind"] = [
            {"group": g, "kind": k, "version": v} for g, v, k in s.gvks
        ]
    if s.map_type:
        out["x-kubernetes-map-type"] = s.map_type
    return out


@cache
def cached_components() -> dict[str, Obj]:
    out = {name: _struct_schema(s) for name, s in types.all_structs().items()}
    out.update(copy.deepcopy(_SPECIAL_COMPONENTS))
    return out


def components() -> dict[str, Obj]:
    """Every schema svcnet publishes, by upstream's name (a private copy; mutate freely)."""
    return copy.deepcopy(cached_components())


def root_schema_name(resource: Resource, subresource: str | None = None) -> str:
    """The schema a resource (or subresource) body has, e.g. io.k8s.api.apps.v1.Deployment."""
    if subresource:
        sub = resource.subresource(subresource)
        if sub is None:
            raise KeyError(f"{resource.plural}/{subresource}")
        if sub.name == "log":
            raise KeyError("pods/log is plain text, not a schema")
        return types.kind_schema_name(*types.subresource_gvk(resource, sub))
    return types.kind_schema_name(resource.group, resource.version, resource.kind)


