"""The DSL that describes every Kubernetes type svcnet serves, and the registry it fills.

One definition feeds three readers: the OpenAPI v3 documents (apiserver/openapi/), the
strategic-merge-patch code (through the x-kubernetes-* extensions those
documents carry) and the strict decoder (apiserver/decoding.py). Field names,
list semantics (patchStrategy/patchMergeKey, listType/listMapKeys, mapType) and
`required` follow upstream's Go types for Kubernetes 1.32.

A struct body is one field per line: `name type [option=value ...]`.

Types: string int32 int64 bool double bytes quantity intstr time microtime object,
`[]T` (list), `{}T` (map of string to T), `Name` (struct in the same package) or
`pkg.Name` (meta., core., apps., autoscaling., discovery., coordination., networking.,
rbac., authorization., authentication., batch., version.). `object` is free-form JSON (RawExtension-like).

Options: patch=merge|retainKeys|merge,retainKeys  key=<patchMergeKey>
list=atomic|set|map  keys=a,b (listMapKeys)  maptype=atomic|granular
go=<Go type> (the Go type named in decode errors, e.g. v1.Protocol).
default=<value> (upstream's `+default=` marker, published as the property's OpenAPI `default`;
server-side apply fills a list-map key field the item omits from it. A JSON value, or a bare
string: default=TCP, default="").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# OpenAPI schema-name prefixes, as upstream names its definitions.
CORE = "io.k8s.api.core.v1"
APPS = "io.k8s.api.apps.v1"
AUTOSCALING = "io.k8s.api.autoscaling.v1"
DISCOVERY = "io.k8s.api.discovery.v1"
COORDINATION = "io.k8s.api.coordination.v1"
NETWORKING = "io.k8s.api.networking.v1"
RBAC = "io.k8s.api.rbac.v1"
AUTHORIZATION = "io.k8s.api.authorization.v1"
AUTHENTICATION = "io.k8s.api.authentication.v1"
BATCH = "io.k8s.api.batch.v1"
CERTIFICATES = "io.k8s.api.certificates.v1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
VERSION = "io.k8s.apimachinery.pkg.version"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"
FIELDS_V1 = f"{META}.FieldsV1"
PATCH = f"{META}.Patch"

_PACKAGES = {
    "core": CORE, "apps": APPS, "autoscaling": AUTOSCALING, "discovery": DISCOVERY,
    "coordination": COORDINATION, "networking": NETWORKING, "meta": META, "version": VERSION,
    "rbac": RBAC, "authorization": AUTHORIZATION, "authentication": AUTHENTICATION, "batch": BATCH,
    "certificates": CERTIFICATES,
}

# bytes: Go's []byte, base64 text in JSON (Secret.data, ConfigMap.binaryData).
SCALARS = frozenset({"string", "int32", "int64", "bool", "double", "bytes"})
# Types with their own component schema and their own JSON decoding upstream.
SPECIAL = {
    "quantity": QUANTITY, "intstr": INT_OR_STRING, "time": TIME, "microtime": MICRO_TIME,
    "object": RAW_EXTENSION, "fieldsv1": FIELDS_V1,
}


@dataclass(frozen=True)
class TypeRef:
    """A field type: kind is scalar name, 'special', 'struct', 'list' or 'map'."""

    kind: str
    name: str = ""  # scalar/special name, or full schema name for a struct
    elem: TypeRef | None = None
    go: str = ""  # Go type string used in decode errors, when it differs from the default


@dataclass(frozen=True)
class Field:
    name: str
    type: TypeRef
    patch_strategy: str = ""
    patch_merge_key: str = ""
    list_type: str = ""
    list_map_keys: tuple[str, ...] = ()
    map_type: str = ""
    default: Any = None  # None: no default (upstream never declares a null one)


@dataclass(frozen=True)
class Struct:
    name: str  # full schema name, e.g. io.k8s.api.core.v1.PodSpec
    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    map_type: str = ""
    gvks: tuple[tuple[str, str, str], ...] = ()  # (group, version, kind)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[1]

    @property
    def go_name(self) -> str:
        """How Go's reflect prints the type: last package element + type name."""
        package, short = self.name.rsplit(".", 1)
        return f"{package.rsplit('.', 1)[1]}.{short}"

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


# ---------------------------------------------------------------------------
# The DSL reader.

STRUCTS: dict[str, Struct] = {}


def _parse_type(token: str, package: str, go: str) -> TypeRef:
    if token.startswith("[]"):
        return TypeRef("list", elem=_parse_type(token[2:], package, ""), go=go)
    if token.startswith("{}"):
        return TypeRef("map", elem=_parse_type(token[2:], package, ""), go=go)
    if token in SCALARS:
        return TypeRef(token, token, go=go)
    if token in SPECIAL:
        return TypeRef("special", token, go=go)
    if "." in token:
        prefix, short = token.split(".", 1)
        return TypeRef("struct", f"{_PACKAGES[prefix]}.{short}", go=go)
    return TypeRef("struct", f"{package}.{token}", go=go)


def _parse_field(line: str, package: str) -> Field:
    name, type_token, *options = line.split()
    opts = dict(o.split("=", 1) for o in options)
    unknown = set(opts) - {"patch", "key", "list", "keys", "maptype", "go", "default"}
    if unknown:
        raise ValueError(f"unknown option {unknown} in {line!r}")
    return Field(
        name=name,
        type=_parse_type(type_token, package, opts.get("go", "")),
        patch_strategy=opts.get("patch", ""),
        patch_merge_key=opts.get("key", ""),
        list_type=opts.get("list", ""),
        list_map_keys=tuple(opts["keys"].split(",")) if "keys" in opts else (),
        map_type=opts.get("maptype", ""),
        default=_parse_default(opts["default"]) if "default" in opts else None,
    )


def _parse_default(text: str) -> Any:
    """default=TCP is the string "TCP"; default="" or default=0 are JSON values."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def define(package: str, short: str, body: str, *, required: str = "", map_type: str = "",
            kind: tuple[str, str] | None = None) -> None:
    """Declare a struct; kind=(group, version) marks a top-level kind with its GVK."""
    fields = tuple(_parse_field(line.strip(), package) for line in body.strip().splitlines()
                   if line.strip() and not line.strip().startswith("#"))
    gvks = ((kind[0], kind[1], short),) if kind else ()
    name = f"{package}.{short}"
    if name in STRUCTS:
        raise ValueError(f"{name} defined twice")
    STRUCTS[name] = Struct(name, fields, tuple(required.split()), map_type, gvks)


TYPE_META = """
    apiVersion string
    kind string
"""


def define_kind(package: str, short: str, group: str, version: str, body: str, *, required: str = "",
          with_list: bool = True) -> None:
    """A top-level kind (TypeMeta inlined, as Go's json does) and, usually, its List."""
    define(package, short, TYPE_META + "metadata meta.ObjectMeta\n" + body,
            required=required, kind=(group, version))
    if with_list:
        define(package, short + "List", TYPE_META + f"""
            items []{short}
            metadata meta.ListMeta
        """, required="items", kind=(group, version))


