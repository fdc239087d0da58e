"""Paths and operations of the OpenAPI v3 documents: per resource, its collection, item,
subresource and watch URLs with upstream's operationIds, parameters and responses."""
from __future__ import annotations

import copy
from dataclasses import dataclass

from svcnet.api.resources import Resource, Subresource, by_group_version
from svcnet.apiserver import types

from .schemas import Obj, ref, root_schema_name

_RESPONSE_TYPES = ("application/json", "application/yaml")
PATCH_CONTENT_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


# ---------------------------------------------------------------------------
# Parameters (inlined: kubectl reads operation parameters by name)

def _param(name: str, where: str, description: str, type_: str = "string", required: bool = False) -> Obj:
    out: Obj = {"name": name, "in": where, "description": description,
                "schema": {"type": type_, "uniqueItems": True}}
    if required:
        out["required"] = True
    return out


def _name_param(kind: str) -> Obj:
    return _param("name", "path", f"name of the {kind}", required=True)


_NAMESPACE = _param("namespace", "path", "object name and scope for the request", required=True)
_PRETTY = _param("pretty", "query", "if 'true', the response is indented")
_DRY_RUN = _param("dryRun", "query", "'All' processes the request fully but persists nothing")
_FIELD_MANAGER = _param("fieldManager", "query", "name of the actor making the change")
_FIELD_VALIDATION = _param(
    "fieldValidation", "query",
    "what to do with unknown or duplicate fields: Ignore, Warn (default) or Strict")
_FORCE = _param("force", "query", "apply requests only: take ownership of conflicting fields",
                "boolean")
_LIST_PARAMS = [
    _param("allowWatchBookmarks", "query", "watch only: ask for BOOKMARK events", "boolean"),
    _param("continue", "query", "token from a previous limited list, to fetch the next page"),
    _param("fieldSelector", "query", "return only objects whose fields match"),
    _param("labelSelector", "query", "return only objects whose labels match"),
    _param("limit", "query", "maximum number of objects in one response", "integer"),
    _param("resourceVersion", "query", "which version of the collection to read or watch from"),
    _param("resourceVersionMatch", "query", "how resourceVersion applies: Exact or NotOlderThan"),
    _param("sendInitialEvents", "query", "watch only: start with the current objects", "boolean"),
    _param("timeoutSeconds", "query", "close the list or watch after this long", "integer"),
    _param("watch", "query", "stream changes instead of returning a list", "boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _param("gracePeriodSeconds", "query", "seconds before the object is removed", "integer"),
    _param("ignoreStoreReadErrorWithClusterBreakingPotential", "query",
           "delete even if the stored object cannot be read", "boolean"),
    _param("orphanDependents", "query", "deprecated: use propagationPolicy", "boolean"),
    _param("propagationPolicy", "query", "what happens to dependents: Orphan, Background or Foreground"),
]
_LOG_PARAMS = [
    _param("container", "query", "container to read; needed when the pod has several"),
    _param("follow", "query", "keep streaming as the log grows", "boolean"),
    _param("insecureSkipTLSVerifyBackend", "query", "do not verify the kubelet's certificate",
           "boolean"),
    _param("limitBytes", "query", "stop after this many bytes", "integer"),
    _param("previous", "query", "read the previous, terminated instance of the container", "boolean"),
    _param("sinceSeconds", "query", "only lines newer than this many seconds", "integer"),
    _param("stream", "query", "All, Stdout or Stderr"),
    _param("tailLines", "query", "only this many lines from the end", "integer"),
    _param("timestamps", "query", "prefix each line with its RFC 3339 timestamp", "boolean"),
]


# ---------------------------------------------------------------------------
# Operations

def _content(schema_name: str, media_types: tuple[str, ...] = _RESPONSE_TYPES) -> Obj:
    return {t: {"schema": ref(schema_name)} for t in media_types}


def _responses(codes: dict[str, tuple[str, str]]) -> Obj:
    out: Obj = {code: {"description": desc, "content": _content(name)}
                for code, (desc, name) in codes.items()}
    out["401"] = {"description": "Unauthorized"}
    return out


def _gvk(group: str, version: str, kind: str) -> Obj:
    return {"group": group, "kind": kind, "version": version}


def _operation(op_id: str, tag: str, action: str, gvk: Obj, responses: Obj,
               parameters: list[Obj] | None = None, body: Obj | None = None,
               description: str = "") -> Obj:
    op: Obj = {"tags": [tag], "description": description or op_id, "operationId": op_id}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = gvk
    return op


def _write_body(schema_name: str) -> Obj:
    return {"content": {"*/*": {"schema": ref(schema_name)}}, "required": True}


def _patch_body() -> Obj:
    return {"content": {t: {"schema": ref(types.PATCH)} for t in PATCH_CONTENT_TYPES}, "required": True}


def _delete_body() -> Obj:
    return {"content": {"*/*": {"schema": ref(f"{types.META}.DeleteOptions")}}}


def _op_group(group: str) -> str:
    """Upstream's operationId group word: '' -> Core, 'discovery.k8s.io' -> Discovery."""
    return (group.split(".")[0] or "core").capitalize()


def _tag(group: str, version: str) -> str:
    return f"{(group.split('.')[0] or 'core')}_{version}"


def _prefix(group: str, version: str) -> str:
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


_STATUS = f"{types.META}.Status"
_WATCH_EVENT = f"{types.META}.WatchEvent"
_WATCH_TYPES = ("application/json", "application/yaml", "application/json;stream=watch")
_WRITE_PARAMS = (_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION)
_PATCH_PARAMS = (*_WRITE_PARAMS, _FORCE)
_UNAUTHORIZED = {"401": {"description": "Unauthorized"}}


@dataclass(frozen=True)
class _Names:
    """What every path of one resource is named after: operationId parts, tag, GVK, schemas, URLs."""

    resource: Resource
    gv: str  # operationId group-version word, e.g. AppsV1
    tag: str
    gvk: Obj
    schema_name: str
    list_name: str
    scoped: str  # operationId kind word, e.g. NamespacedPod
    prefix: str  # /api/v1 or /apis/<group>/<version>
    base: str  # prefix, plus /namespaces/{namespace} for namespaced kinds
    scope_params: tuple[Obj, ...]


def _names(r: Resource) -> _Names:
    prefix = _prefix(r.group, r.version)
    return _Names(
        resource=r,
        gv=_op_group(r.group) + r.version.capitalize(),
        tag=_tag(r.group, r.version),
        gvk=_gvk(r.group, r.version, r.kind),
        schema_name=root_schema_name(r),
        # create-only kinds (the reviews) have no List type
        list_name=types.kind_schema_name(r.group, r.version, r.list_kind) if "list" in r.verbs else "",
        scoped=("Namespaced" if r.namespaced else "") + r.kind,
        prefix=prefix,
        base=f"{prefix}/namespaces/{{namespace}}" if r.namespaced else prefix,
        scope_params=(_NAMESPACE,) if r.namespaced else (),
    )


def _list_responses(n: _Names) -> Obj:
    return {"200": {"description": "OK", "content": _content(n.list_name, _WATCH_TYPES)}, **_UNAUTHORIZED}


def _collection_operations(n: _Names) -> Obj:
    r, schema_name = n.resource, n.schema_name
    collection: Obj = {}
    if "list" in r.verbs:
        collection["get"] = _operation(
            f"list{n.gv}{n.scoped}", n.tag, "list", n.gvk, _list_responses(n),
            _LIST_PARAMS, description=f"list or watch objects of kind {r.kind}")
    if "create" in r.verbs:
        collection["post"] = _operation(
            f"create{n.gv}{n.scoped}", n.tag, "post", n.gvk,
            _responses({"200": ("OK", schema_name), "201": ("Created", schema_name),
                        "202": ("Accepted", schema_name)}),
            [*_WRITE_PARAMS], _write_body(schema_name), description=f"create a {r.kind}")
    if "deletecollection" in r.verbs:
        collection["delete"] = _operation(
            f"delete{n.gv}Collection{n.scoped}", n.tag, "deletecollection", n.gvk,
            _responses({"200": ("OK", _STATUS)}),
            [*_DELETE_PARAMS, *_LIST_PARAMS], _delete_body(),
            description=f"delete a collection of {r.kind}")
    if collection:
        collection["parameters"] = [*n.scope_params, _PRETTY]
    return collection


def _item_operations(n: _Names) -> Obj:
    r, schema_name = n.resource, n.schema_name
    # Deleting a pod answers with the pod (it lingers while terminating); others with a Status.
    deleted = schema_name if r.kind == "Pod" else _STATUS
    item: Obj = {}
    if "get" in r.verbs:
        item["get"] = _operation(f"read{n.gv}{n.scoped}", n.tag, "get", n.gvk,
                                 _responses({"200": ("OK", schema_name)}),
                                 description=f"read the specified {r.kind}")
    if "update" in r.verbs:
        item["put"] = _operation(
            f"replace{n.gv}{n.scoped}", n.tag, "put", n.gvk,
            _responses({"200": ("OK", schema_name), "201": ("Created", schema_name)}),
            [*_WRITE_PARAMS], _write_body(schema_name), description=f"replace the specified {r.kind}")
    if "patch" in r.verbs:
        item["patch"] = _operation(
            f"patch{n.gv}{n.scoped}", n.tag, "patch", n.gvk,
            _responses({"200": ("OK", schema_name), "201": ("Created", schema_name)}),
            [*_PATCH_PARAMS], _patch_body(), description=f"partially update the specified {r.kind}")
    if "delete" in r.verbs:
        item["delete"] = _operation(
            f"delete{n.gv}{n.scoped}", n.tag, "delete", n.gvk,
            _responses({"200": ("OK", deleted), "202": ("Accepted", deleted)}),
            _DELETE_PARAMS, _delete_body(), description=f"delete a {r.kind}")
    if item:
        item["parameters"] = [_name_param(r.kind), *n.scope_params, _PRETTY]
    return item


def _subresource_operations(n: _Names, sub: Subresource) -> Obj:
    r = n.resource
    sub_group, sub_version, sub_kind = types.subresource_gvk(r, sub)
    sub_gvk = _gvk(sub_group, sub_version, sub_kind)
    if sub.connect:
        return _connect_path(n, sub, sub_gvk, sub_kind)
    op_id = f"{n.gv}{n.scoped}{sub.name.capitalize()}"
    sub_path: Obj = {}
    if sub.name == "log":
        sub_path["get"] = _operation(
            f"read{n.gv}{n.scoped}Log", n.tag, "get", sub_gvk,
            {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
             **_UNAUTHORIZED},
            _LOG_PARAMS, description=f"read log of the specified {r.kind}")
    else:
        sub_schema = types.kind_schema_name(sub_group, sub_version, sub_kind)
        if "create" in sub.verbs:
            sub_path["post"] = _operation(
                f"create{op_id}", n.tag, "post", sub_gvk,
                _responses({"200": ("OK", sub_schema), "201": ("Created", sub_schema),
                            "202": ("Accepted", sub_schema)}),
                [*_WRITE_PARAMS], _write_body(sub_schema), description=f"create {sub.name} of a {r.kind}")
        if "get" in sub.verbs:
            sub_path["get"] = _operation(
                f"read{op_id}", n.tag, "get", sub_gvk, _responses({"200": ("OK", sub_schema)}),
                description=f"read {sub.name} of the specified {r.kind}")
        if "update" in sub.verbs:
            sub_path["put"] = _operation(
                f"replace{op_id}", n.tag, "put", sub_gvk,
                _responses({"200": ("OK", sub_schema), "201": ("Created", sub_schema)}),
                [*_WRITE_PARAMS], _write_body(sub_schema),
                description=f"replace {sub.name} of the specified {r.kind}")
        if "patch" in sub.verbs:
            sub_path["patch"] = _operation(
                f"patch{op_id}", n.tag, "patch", sub_gvk,
                _responses({"200": ("OK", sub_schema), "201": ("Created", sub_schema)}),
                [*_PATCH_PARAMS], _patch_body(),
                description=f"partially update {sub.name} of the specified {r.kind}")
    sub_path["parameters"] = [_name_param(sub_kind), *n.scope_params, _PRETTY]
    return sub_path


def _watch_paths(n: _Names) -> dict[str, Obj]:
    """The deprecated /watch/ URLs upstream still documents."""
    r, gv, tag, gvk = n.resource, n.gv, n.tag, n.gvk
    watch_responses = {"200": {"description": "OK", "content": _content(_WATCH_EVENT, _WATCH_TYPES)},
                       **_UNAUTHORIZED}
    watch_base = f"{n.prefix}/watch/namespaces/{{namespace}}" if r.namespaced else f"{n.prefix}/watch"
    paths: dict[str, Obj] = {
        f"{watch_base}/{r.plural}": {
            "get": _operation(f"watch{gv}{n.scoped}List", tag, "watchlist", gvk, watch_responses,
                              description=f"deprecated: use list with ?watch=true ({r.kind})"),
            "parameters": [*_LIST_PARAMS, *n.scope_params, _PRETTY],
        },
        f"{watch_base}/{r.plural}/{{name}}": {
            "get": _operation(f"watch{gv}{n.scoped}", tag, "watch", gvk, watch_responses,
                              description=f"deprecated: use list with ?watch=true&fieldSelector ({r.kind})"),
            "parameters": [*_LIST_PARAMS, _name_param(r.kind), *n.scope_params, _PRETTY],
        },
    }
    if r.namespaced:
        paths[f"{n.prefix}/watch/{r.plural}"] = {
            "get": _operation(f"watch{gv}{r.kind}ListForAllNamespaces", tag, "watchlist", gvk,
                              watch_responses,
                              description=f"deprecated: use list with ?watch=true ({r.kind})"),
            "parameters": [*_LIST_PARAMS, _PRETTY],
        }
    return paths


def _resource_paths(r: Resource) -> dict[str, Obj]:
    n = _names(r)
    paths: dict[str, Obj] = {}
    if collection := _collection_operations(n):
        paths[f"{n.base}/{r.plural}"] = collection
    if item := _item_operations(n):
        paths[f"{n.base}/{r.plural}/{{name}}"] = item
    for sub in r.subresources:
        paths[f"{n.base}/{r.plural}/{{name}}/{sub.name}"] = _subresource_operations(n, sub)
    if r.namespaced and "list" in r.verbs:
        paths[f"{n.prefix}/{r.plural}"] = {
            "get": _operation(
                f"list{n.gv}{r.kind}ForAllNamespaces", n.tag, "list", n.gvk, _list_responses(n),
                description=f"list or watch objects of kind {r.kind} in every namespace"),
            "parameters": [*_LIST_PARAMS, _PRETTY],
        }
    if "watch" in r.verbs:
        paths.update(_watch_paths(n))
    return paths


# Connect subresources: a stream, so the response is an opaque string and the
# options arrive as query parameters, declared once on the path (upstream's shape).
_CONNECT_METHODS = (("get", "Get"), ("post", "Post"))  # the methods behind verbs get and create
_CONNECT_PARAMS: dict[str, list[Obj]] = {
    "exec": [
        _param("command", "query", "the command and its arguments, one parameter each (run directly, "
               "not through a shell)"),
        _param("container", "query", "container to run the command in; needed when the pod has several"),
        _param("stderr", "query", "stream the command's standard error", "boolean"),
        _param("stdin", "query", "stream standard input to the command", "boolean"),
        _param("stdout", "query", "stream the command's standard output", "boolean"),
        _param("tty", "query", "run the command on a terminal", "boolean"),
    ],
    "attach": [
        _param("container", "query", "container to attach to; needed when the pod has several"),
        _param("stderr", "query", "stream the container's standard error", "boolean"),
        _param("stdin", "query", "stream standard input to the container", "boolean"),
        _param("stdout", "query", "stream the container's standard output", "boolean"),
        _param("tty", "query", "the container runs on a terminal", "boolean"),
    ],
    "portforward": [
        _param("ports", "query", "the pod's ports to forward (the WebSocket protocol's; SPDY names each in "
               "its streams)", "integer"),
    ],
    "proxy": [
        _param("path", "query", "the path of the node's kubelet API to reach"),
    ],
}


def _connect_path(n: _Names, sub: Subresource, gvk: Obj, options_kind: str) -> Obj:
    """pods/exec as upstream documents it: connect GET and POST, query options, no body."""
    r, gv, scoped, tag = n.resource, n.gv, n.scoped, n.tag
    verb_of = {"get": "get", "post": "create"}
    responses = {"200": {"description": "OK", "content": {"*/*": {"schema": {"type": "string"}}}},
                 "401": {"description": "Unauthorized"}}
    item: Obj = {}
    for method, word in _CONNECT_METHODS:
        if verb_of[method] in sub.verbs:
            item[method] = _operation(
                f"connect{gv}{word}{scoped}{sub.name.capitalize()}", tag, "connect", gvk,
                copy.deepcopy(responses),
                description=f"connect {method.upper()} requests to {sub.name} of {r.kind}")
    params = [*_CONNECT_PARAMS.get(sub.name, []), _name_param(options_kind), *n.scope_params]
    item["parameters"] = sorted(params, key=lambda p: p["name"])
    return item


def simple_get(op_id: str, tag: str, schema_name: str, description: str) -> Obj:
    return {"get": {"tags": [tag], "description": description, "operationId": op_id,
                    "responses": _responses({"200": ("OK", schema_name)})}}


def group_version_paths(group: str, version: str) -> dict[str, Obj]:
    gv = _op_group(group) + version.capitalize()
    paths: dict[str, Obj] = {
        f"{_prefix(group, version)}/": simple_get(
            f"get{gv}APIResources", _tag(group, version), f"{types.META}.APIResourceList",
            "get available resources"),
    }
    for r in by_group_version(group, version):
        paths.update(_resource_paths(r))
    return dict(sorted(paths.items()))


