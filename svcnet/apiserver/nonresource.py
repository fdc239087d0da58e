"""The paths that are not resources: health, /version, discovery and OpenAPI documents."""
from __future__ import annotations

from aiohttp import web

from svcnet.api.errors import path_not_found
from svcnet.apiserver import discovery, openapi
from svcnet.apiserver.responses import json_response

KUBERNETES_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-svcnet",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-27T00:00:00Z",
    "goVersion": "python3.11",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

HEALTH_PATHS = ("/healthz", "/livez", "/readyz")


def is_health(path: str) -> bool:
    return path in HEALTH_PATHS or path.startswith(tuple(p + "/" for p in HEALTH_PATHS))


def serve(request: web.Request, path: str, advertise_address: str) -> web.Response | None:
    """The answer for a non-resource path (path without its trailing slash); None for anything else."""
    if path == "/version":
        return json_response(KUBERNETES_VERSION)
    if path in ("/api", "/apis"):
        return _discovery_root(request, path == "/api", advertise_address)
    if path == "/openapi/v3":
        return json_response(openapi.openapi_v3_index())
    if path.startswith("/openapi/v3/"):
        return _openapi_document(request, path[len("/openapi/v3/"):])
    if path == "/openapi/v2":
        raise path_not_found()
    segments = [s for s in path.split("/") if s]
    if (len(segments) == 2 and segments[0] == "api") or (len(segments) == 3 and segments[0] == "apis"):
        group = "" if segments[0] == "api" else segments[1]
        return _found(discovery.api_resource_list(group, segments[-1]))
    if len(segments) == 2 and segments[0] == "apis":
        return _found(discovery.api_group(segments[1]))
    return None


def _found(doc) -> web.Response:
    if doc is None:
        raise path_not_found()
    return json_response(doc)


def _openapi_document(request: web.Request, gv_path: str) -> web.Response:
    body = openapi.openapi_v3_document_bytes(gv_path)
    if body is None:
        raise path_not_found()
    digest = openapi.openapi_v3_hash(gv_path)
    wanted = request.query.get("hash")
    if wanted and wanted != digest:
        # As kube-apiserver: a stale pinned URL is redirected to the current one.
        raise web.HTTPMovedPermanently(f"/openapi/v3/{gv_path}?hash={digest}")
    headers = {"Content-Type": "application/json", "Etag": f'"{digest}"'}
    headers["Cache-Control"] = "public, immutable" if wanted else "no-cache, private"
    return web.Response(body=body, headers=headers)


def _discovery_root(request: web.Request, core: bool, advertise_address: str) -> web.Response:
    kind, content_type = discovery.negotiate_discovery(request.headers.get("Accept"))
    if kind != discovery.DISCOVERY_LEGACY:
        return json_response(discovery.aggregated_discovery(core, kind), content_type=content_type)
    if core:
        return json_response(discovery.legacy_api_versions(advertise_address))
    return json_response(discovery.api_group_list())
