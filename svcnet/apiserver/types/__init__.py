"""Type definitions for every Kubernetes type svcnet serves (one module per API group, the DSL
in dsl.py), and lookups over them.

One definition feeds three readers: the OpenAPI v3 documents (apiserver/openapi/), the
strategic-merge-patch code (through the x-kubernetes-* extensions those documents carry)
and the strict decoder (apiserver/decoding.py).
"""
from __future__ import annotations

from functools import cache

from svcnet.api.resources import Resource, Subresource, group_versions

from .dsl import (
    APPS,
    AUTHENTICATION,
    AUTHORIZATION,
    AUTOSCALING,
    BATCH,
    CERTIFICATES,
    COORDINATION,
    CORE,
    DISCOVERY,
    FIELDS_V1,
    INT_OR_STRING,
    META,
    MICRO_TIME,
    NETWORKING,
    PATCH,
    QUANTITY,
    RAW_EXTENSION,
    RBAC,
    SCALARS,
    SPECIAL,
    STRUCTS,
    TIME,
    VERSION,
    Field,
    Struct,
    TypeRef,
)

# The definitions, in the order the OpenAPI components list them. Each module fills STRUCTS.
# isort: off
from . import meta, core_pods, core, core_config, apps, subresources, discovery, coordination, networking  # noqa: E401, F401
from . import rbac, authorization, batch, certificates  # noqa: E401, F401
# isort: on

__all__ = [
    "APPS", "AUTOSCALING", "BATCH", "COORDINATION", "CORE", "DISCOVERY", "FIELDS_V1", "INT_OR_STRING", "META",
    "MICRO_TIME", "NETWORKING", "PATCH", "QUANTITY", "RAW_EXTENSION", "SCALARS", "SPECIAL", "TIME", "VERSION",
    "Field", "Struct", "TypeRef", "all_structs", "gvk_schema_names", "kind_schema_name", "struct",
    "subresource_gvk",
]


def struct(name: str) -> Struct:
    """The struct with this full schema name (KeyError if svcnet does not describe it)."""
    return STRUCTS[name]


def all_structs() -> dict[str, Struct]:
    return dict(STRUCTS)


_GROUP_PACKAGE = {"": CORE, "apps": APPS, "autoscaling": AUTOSCALING, "discovery.k8s.io": DISCOVERY,
                  "coordination.k8s.io": COORDINATION, "networking.k8s.io": NETWORKING,
                  "rbac.authorization.k8s.io": RBAC, "authorization.k8s.io": AUTHORIZATION,
                  "authentication.k8s.io": AUTHENTICATION, "batch": BATCH,
                  "certificates.k8s.io": CERTIFICATES}


def kind_schema_name(group: str, version: str, kind: str) -> str:
    """Schema name of a kind, e.g. ('apps', 'v1', 'Deployment') -> io.k8s.api.apps.v1.Deployment."""
    del version  # every group svcnet serves has exactly one version, v1
    name = f"{_GROUP_PACKAGE[group]}.{kind}"
    if name not in STRUCTS:
        raise KeyError(name)
    return name


_SCALAR_ZEROS = {"string": "", "int32": 0, "int64": 0, "bool": False, "double": 0.0}


@cache
def _empty_status(group: str, kind: str) -> tuple[tuple[str, object], ...]:
    try:
        status = struct(kind_schema_name(group, "v1", kind)).field("status")
    except KeyError:
        return ()
    if status is None or status.type.kind != "struct":
        return ()
    fields = struct(status.type.name)
    return tuple((name, _SCALAR_ZEROS[f.type.name]) for name in fields.required
                 if (f := fields.field(name)) is not None and f.type.kind in _SCALAR_ZEROS)


def empty_status(group: str, kind: str) -> dict[str, object]:
    """A kind's status as Go encodes its zero value: the fields without omitempty (the ones the
    schema lists as required), e.g. a ReplicationController's {"replicas": 0}."""
    return dict(_empty_status(group, kind))


def subresource_gvk(resource: Resource, sub: Subresource) -> tuple[str, str, str]:
    """(group, version, kind) a subresource answers with.

    resources.py's status entries carry group "" even for apps kinds; a
    subresource whose kind is the parent's own kind (status) answers in the
    parent's group-version, as upstream's deployments/status does.
    """
    if sub.kind == resource.kind:
        return resource.group, resource.version, resource.kind
    return sub.group, sub.version, sub.kind


@cache
def gvk_schema_names() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> schema name, for every struct that is a kind."""
    out: dict[tuple[str, str, str], str] = {}
    for s in STRUCTS.values():
        for gvk in s.gvks:
            out[gvk] = s.name
    return out


def _check_references() -> None:
    """Fail at import if a definition names a struct nobody defined (a DSL typo)."""
    def walk(t: TypeRef, where: str) -> None:
        if t.kind == "struct" and t.name not in STRUCTS:
            raise ValueError(f"{where} refers to undefined {t.name}")
        if t.elem is not None:
            walk(t.elem, where)

    for s in STRUCTS.values():
        for f in s.fields:
            walk(f.type, f"{s.name}.{f.name}")
            if f.list_map_keys and f.list_type != "map":
                raise ValueError(f"{s.name}.{f.name}: keys= needs list=map")
        for r in s.required:
            if s.field(r) is None:
                raise ValueError(f"{s.name}: required {r} is not a field")


_check_references()


def _add_shared_kind_gvks() -> None:
    """DeleteOptions and WatchEvent are registered in every served group-version upstream."""
    gvs = [("", "v1")] + [(g, v) for g, v in group_versions() if g] + [("autoscaling", "v1")]
    for short in ("DeleteOptions", "WatchEvent"):
        s = STRUCTS[f"{META}.{short}"]
        STRUCTS[s.name] = Struct(s.name, s.fields, s.required, s.map_type,
                                  tuple((g, v, short) for g, v in gvs))


_add_shared_kind_gvks()


