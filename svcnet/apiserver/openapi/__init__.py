"""OpenAPI v3 documents for /openapi/v3, generated from the resource table and apiserver/types/.

Component schemas are built in schemas.py, paths and operations in paths.py; this module
assembles the per-group-version documents, their hashes and the index.

What kubectl 1.32 relies on (all checked against its source):

- /openapi/v3 is an index {"paths": {"api/v1": {"serverRelativeURL":
  "/openapi/v3/api/v1?hash=<H>"}, ...}}; a group-version is found under
  "api/v1" or "apis/<group>/<version>". H is the upper-case hex sha512 of the
  document's JSON bytes (kube-openapi handler3); serve those exact bytes.
- Server-side field validation: cli-runtime's query_param_verifier_v3 looks,
  in the group-version document, for a PATCH operation whose own
  `x-kubernetes-group-version-kind` (a single object) is the kind, and
  declares that kind supported iff that operation's own `parameters` list a
  parameter named fieldValidation. Parameters are inlined (a $ref would have no
  name). Every PATCH here lists fieldValidation, so `kubectl create/apply`
  send fieldValidation=Strict and skip client-side validation.
- Client-side apply patches: kubectl's patcher uses a kind's PATCH operation
  only if its requestBody offers application/strategic-merge-patch+json, then
  finds the component whose `x-kubernetes-group-version-kind` list holds the
  kind and reads x-kubernetes-patch-strategy / -patch-merge-key on properties,
  resolving `allOf: [{$ref}]` and `$ref`.
- /openapi/v2 is not needed: 1.32 loads v2 lazily, only when the v3 checks
  above fail, and asks for protobuf only (JSON would not parse). Answer 404 so
  those fallbacks fail fast and quietly.
"""
from __future__ import annotations

import copy
import hashlib
import json
from functools import cache

from svcnet.api.resources import group_versions
from svcnet.apiserver import types

from .paths import PATCH_CONTENT_TYPES, group_version_paths, simple_get
from .schemas import Obj, cached_components, components, root_schema_name

__all__ = ["KUBERNETES_VERSION", "PATCH_CONTENT_TYPES", "components", "openapi_v3_document", "openapi_v3_document_bytes",
           "openapi_v3_hash", "openapi_v3_index", "openapi_v3_paths", "root_schema_name"]

KUBERNETES_VERSION = "v1.32.0"


def _refs(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[1])
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _closure(paths: Obj) -> dict[str, Obj]:
    """The schemas reachable from paths: each document carries only what it uses, as upstream."""
    all_schemas = cached_components()
    todo: set[str] = set()
    _refs(paths, todo)
    done: dict[str, Obj] = {}
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done[name] = all_schemas[name]
        more: set[str] = set()
        _refs(done[name], more)
        todo |= more - done.keys()
    return dict(sorted(done.items()))


def _document(paths: Obj) -> Obj:
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {
            "schemas": _closure(paths),
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                "name": "authorization", "in": "header"},
            },
        },
        "security": [{"BearerToken": []}],
    }


@cache
def _documents() -> dict[str, Obj]:
    docs: dict[str, Obj] = {
        "api": _document({"/api/": simple_get(
            "getCoreAPIVersions", "core", f"{types.META}.APIVersions", "get available API versions")}),
        "apis": _document({"/apis/": simple_get(
            "getAPIVersions", "apis", f"{types.META}.APIGroupList", "get available API versions")}),
        "version": _document({"/version/": simple_get(
            "getCodeVersion", "version", f"{types.VERSION}.Info", "get the code version")}),
    }
    for group, version in group_versions():
        if group:
            word = group.split(".")[0]
            docs[f"apis/{group}"] = _document({f"/apis/{group}/": simple_get(
                f"get{word.capitalize()}APIGroup", word, f"{types.META}.APIGroup",
                "get information of a group")})
            docs[f"apis/{group}/{version}"] = _document(group_version_paths(group, version))
        else:
            docs[f"api/{version}"] = _document(group_version_paths(group, version))
    return dict(sorted(docs.items()))  # kube-openapi marshals its map sorted too


@cache
def _document_bytes(path: str) -> bytes:
    return json.dumps(_documents()[path], separators=(",", ":"), sort_keys=True).encode()


def openapi_v3_document_bytes(group_version_path: str) -> bytes | None:
    """The exact bytes to serve for /openapi/v3/<path> (the hash is over these)."""
    group_version_path = group_version_path.strip("/")
    if group_version_path not in _documents():
        return None
    return _document_bytes(group_version_path)


def openapi_v3_hash(group_version_path: str) -> str | None:
    """Upper-case hex sha512 of the document bytes: the ?hash= value and the ETag."""
    data = openapi_v3_document_bytes(group_version_path)
    return None if data is None else hashlib.sha512(data).hexdigest().upper()


def openapi_v3_document(group_version_path: str) -> Obj | None:
    """The document for "api/v1", "apis/apps/v1", "api", "apis", ... (a private copy), or None."""
    doc = _documents().get(group_version_path.strip("/"))
    return None if doc is None else copy.deepcopy(doc)


@cache
def _index() -> Obj:
    return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={openapi_v3_hash(p)}"}
                      for p in _documents()}}


def openapi_v3_index() -> Obj:
    """/openapi/v3: every document's path and its hash-pinned URL."""
    return copy.deepcopy(_index())


def openapi_v3_paths() -> list[str]:
    return list(_documents())
