"""The aiohttp application: authentication, routing, watch streams.

Everything a verb means lives in the Registry; this module turns HTTP into
registry calls and registry results (or ApiErrors) into responses.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import functools
import hmac
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from svcnet.api import errors, jsoncodec, meta, selectors
from svcnet.api.errors import ApiError
from svcnet.api.resources import Resource
from svcnet.apiserver import discovery, http, openapi, patch
from svcnet.apiserver import printers as tables
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.storage.base import Compacted, Event, FutureRevision

log = logging.getLogger("svcnet.apiserver")

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

UNAUTHENTICATED_PATHS = ("/healthz", "/livez", "/readyz")
# The verb an HTTP method asks for on a named object (or one of its subresources).
_VERB_OF_METHOD = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                   "DELETE": "delete"}
MAX_WATCH_BACKLOG = 10_000


@dataclass
class ServerSettings:
    token: str | None  # None: no authentication (only with --insecure or on the unix socket)
    default_watch_timeout: int = 1800
    bookmark_interval: float = 60.0
    advertise_address: str = "127.0.0.1:6443"


@functools.cache
def schema_resolver() -> patch.SchemaResolver:
    """Patch strategies come from the same schemas /openapi/v3 publishes."""
    return patch.SchemaResolver(openapi.components())


def status_response(exc: ApiError) -> web.Response:
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return web.Response(status=exc.code, body=jsoncodec.dumps(exc.status()),
                        content_type="application/json", headers=headers)


def success_status(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success"}
    if details:
        body["details"] = details
    return body


class ApiServer:
    def __init__(self, registry: Registry, settings: ServerSettings) -> None:
        self.registry = registry
        self.settings = settings
        self._watch_count = 0
        self._watch_queues: set[asyncio.Queue] = set()
        self._closing = False

    def close_watches(self) -> None:
        """End every open watch stream (shutdown): clients re-watch from their last revision.

        From now on new watches are refused, or clients that re-watch at once would keep
        the server's shutdown waiting on fresh streams.
        """
        self._closing = True
        for queue in list(self._watch_queues):
            queue.put_nowait(None)

    # -------------------------------------------------------------- app build
    def make_app(self, *, authenticate: bool = True) -> web.Application:
        middlewares = [self._error_middleware]
        if authenticate and self.settings.token is not None:
            middlewares.insert(0, self._auth_middleware)
        app = web.Application(middlewares=middlewares, client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler):
        if request.path in UNAUTHENTICATED_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        assert self.settings.token is not None
        if not token or not hmac.compare_digest(token.encode(), self.settings.token.encode()):
            return status_response(errors.unauthorized())
        return await handler(request)

    @web.middleware
    async def _error_middleware(self, request: web.Request, handler):
        try:
            return await handler(request)
        except ApiError as exc:
            return status_response(exc)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug: answer as kube-apiserver does, keep serving
            log.exception("internal error serving %s %s", request.method, request.path)
            return status_response(ApiError(500, "InternalError",
                                            f"Internal error occurred: {exc}"))

    # --------------------------------------------------------------- dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(
                ("/healthz/", "/livez/", "/readyz/")):
            return web.Response(text="ok")
        if request.method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            raise errors.method_not_allowed(f"{request.method} is not supported")
        if path == "/version":
            return self._json(KUBERNETES_VERSION)
        if path in ("/api", "/apis"):
            return self._discovery_root(request, core=(path == "/api"))
        if path == "/openapi/v3":
            return self._json(openapi.openapi_v3_index())
        if path.startswith("/openapi/v3/"):
            return self._openapi_document(request, path[len("/openapi/v3/"):])
        if path == "/openapi/v2":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        segments = [s for s in path.split("/") if s]
        if (len(segments) == 2 and segments[0] == "api") or (len(segments) == 3 and segments[0] == "apis"):
            group = "" if segments[0] == "api" else segments[1]
            doc = discovery.api_resource_list(group, segments[-1])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(doc)
        if len(segments) == 2 and segments[0] == "apis":
            group_doc = discovery.api_group(segments[1])
            if group_doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(group_doc)
        rpath = http.parse_resource_path(path)
        if rpath is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        watching = request.query.get("watch") in ("true", "1") or "/watch/" in path
        return await self._resource(request, rpath, watching)

    def _json(self, body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
        return web.Response(status=status, body=jsoncodec.dumps(body),
                            headers={"Content-Type": content_type})

    def _openapi_document(self, request: web.Request, gv_path: str) -> web.Response:
        body = openapi.openapi_v3_document_bytes(gv_path)
        if body is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        digest = openapi.openapi_v3_hash(gv_path)
        wanted = request.query.get("hash")
        if wanted and wanted != digest:
            # As kube-apiserver: a stale pinned URL is redirected to the current one.
            raise web.HTTPMovedPermanently(f"/openapi/v3/{gv_path}?hash={digest}")
        headers = {"Content-Type": "application/json", "Etag": f'"{digest}"'}
        headers["Cache-Control"] = "public, immutable" if wanted else "no-cache, private"
        return web.Response(body=body, headers=headers)

    def _discovery_root(self, request: web.Request, core: bool) -> web.Response:
        kind, content_type = discovery.negotiate_discovery(request.headers.get("Accept"))
        if kind != discovery.DISCOVERY_LEGACY:
            return self._json(discovery.aggregated_discovery(core, kind), content_type=content_type)
        if core:
            return self._json(discovery.legacy_api_versions(self.settings.advertise_address))
        return self._json(discovery.api_group_list())

    # -------------------------------------------------------------- resources
    async def _resource(self, request: web.Request, rp: http.ResourcePath,
                        watching: bool) -> web.StreamResponse:
        method = request.method
        res = rp.resource
        if rp.subresource == "log":
            return await self._pod_log(request, rp)
        if rp.subresource == "exec":
            from svcnet.apiserver import exec_ws
            pod = self.registry.get(rp.resource, rp.namespace, rp.name)
            return await exec_ws.handle_exec(request, pod, exec_ws.node_runtime_root(self.registry, pod))
        if rp.subresource == "scale":
            return await self._scale(request, rp)
        if rp.subresource == "binding":
            if request.method != "POST":
                raise errors.method_not_allowed(f"{request.method} is not supported on pods/binding")
            body = await self._read_object(request, self._write_options(request))
            self.registry.bind_pod(rp.namespace or "default", rp.name or "", body)
            return self._json(success_status(), status=201)
        if rp.subresource is not None:
            # status and finalize: only the verbs discovery lists (a DELETE on pods/x/status
            # must not delete the pod, a PATCH on namespaces/x/finalize is not served).
            sub = res.subresource(rp.subresource)
            if sub is None or _VERB_OF_METHOD.get(method) not in sub.verbs:
                raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        fmt = http.negotiate(request.headers.get("Accept"))
        if method in ("GET", "HEAD"):
            if watching:
                return await self._watch(request, rp, fmt)
            if rp.is_collection:
                return self._respond_list(request, rp, fmt)
            obj = self.registry.get(res, rp.namespace, rp.name)
            return self._respond_object(obj, res, fmt,
                                        include_object=request.query.get("includeObject", "Metadata"))
        if method == "POST":
            if not rp.is_collection:
                raise errors.method_not_allowed(
                    f"POST on {res.plural}/{rp.name} is not supported")
            opts = self._write_options(request)
            body = await self._read_object(request, opts)
            obj = self.registry.create(res, rp.namespace, body, opts)
            return self._respond_object(obj, res, fmt, status=201, opts=opts)
        if method == "PUT":
            if rp.is_collection:
                raise errors.method_not_allowed(f"PUT on a collection of {res.plural} is not supported")
            opts = self._write_options(request)
            body = await self._read_object(request, opts)
            if rp.subresource == "finalize":
                obj, created = self.registry.update(res, rp.namespace, rp.name, body, opts)
            else:
                obj, created = self.registry.update(res, rp.namespace, rp.name, body, opts,
                                                    subresource=rp.subresource)
            return self._respond_object(obj, res, fmt, status=201 if created else 200, opts=opts)
        if method == "PATCH":
            if rp.is_collection:
                raise errors.method_not_allowed(f"PATCH on a collection of {res.plural} is not supported")
            obj, created, opts = await self._patch(request, rp)
            return self._respond_object(obj, res, fmt, status=201 if created else 200, opts=opts)
        if method == "DELETE":
            body = await self._read_optional_json(request)
            options = DeleteOptions.from_body(body, dict(request.query))
            if rp.is_collection:
                return self._delete_collection(request, rp, options, fmt)
            obj, gone = self.registry.delete(res, rp.namespace, rp.name, options)
            return self._respond_object(obj, res, fmt, status=200 if gone else 202)
        raise errors.method_not_allowed(f"{method} is not supported")

    def _write_options(self, request: web.Request) -> WriteOptions:
        q = request.query
        validation = q.get("fieldValidation", "")
        if validation not in ("", "Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f'fieldValidation parameter unsupported: "{validation}". Supported values: '
                f'Ignore, Warn, Strict')
        dry_run = q.getall("dryRun", [])
        for value in dry_run:
            if value != "All":
                raise errors.bad_request(f'Unsupported value: "{value}": supported values: "All"')
        manager = q.get("fieldManager") or _manager_from_user_agent(request.headers.get("User-Agent"))
        return WriteOptions(dry_run=bool(dry_run), field_manager=manager, field_validation=validation)

    async def _read_optional_json(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return None
        return http.decode_body(request.headers.get("Content-Type"), raw).value

    async def _read_object(self, request: web.Request, opts: WriteOptions) -> dict[str, Any]:
        decoded = http.decode_body(request.headers.get("Content-Type"), await request.read())
        if not isinstance(decoded.value, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        opts.duplicate_fields = decoded.duplicate_fields
        return decoded.value

    def _warning_headers(self, opts: WriteOptions | None) -> list[tuple[str, str]]:
        if not opts:
            return []
        # kubectl drops a warning whose text is not a quoted, escaped string.
        return [("Warning", f"299 - {json.dumps(w)}") for w in opts.warnings]

    def _respond_object(self, obj: dict[str, Any], res: Resource, fmt: http.ResponseFormat,
                        status: int = 200, opts: WriteOptions | None = None,
                        include_object: str = "Metadata") -> web.Response:
        if fmt.as_kind == "Table":
            body: Any = tables.to_table(res, [obj], include_object=include_object, now=self._now())
        elif fmt.as_kind == "PartialObjectMetadata":
            body = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata", {})}
        else:
            body = obj
        resp = web.Response(status=status, body=http.encode(body, fmt),
                            headers={"Content-Type": fmt.content_type})
        for k, v in self._warning_headers(opts):
            resp.headers.add(k, v)
        return resp

    def _now(self) -> dt.datetime:
        return self.registry.clock()

    # ------------------------------------------------------------------- list
    def _predicate(self, request: web.Request, res: Resource):
        label_sel = selectors.parse_label_selector(request.query.get("labelSelector", ""))
        field_sel = selectors.parse_field_selector(res.kind, request.query.get("fieldSelector", ""))
        if label_sel.empty and field_sel.empty:
            return None

        def predicate(obj: dict[str, Any]) -> bool:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            return label_sel.matches(labels) and field_sel.matches(obj)

        return predicate

    def _respond_list(self, request: web.Request, rp: http.ResourcePath,
                      fmt: http.ResponseFormat) -> web.Response:
        res = rp.resource
        predicate = self._predicate(request, res)
        limit = _int_param(request, "limit", 0)
        start_after = _decode_continue(request.query.get("continue"))
        page = self.registry.list(res, rp.namespace, predicate=predicate, limit=limit,
                                  start_after=start_after)
        list_meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            list_meta["continue"] = _encode_continue(page.continue_token, page.resource_version)
            if page.remaining:
                list_meta["remainingItemCount"] = page.remaining
        if fmt.as_kind == "Table":
            include = request.query.get("includeObject", "Metadata")
            body: Any = tables.to_table(res, page.items, include_object=include, now=self._now(),
                                        list_meta=list_meta)
        elif fmt.as_kind in ("PartialObjectMetadataList", "PartialObjectMetadata"):
            body = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                    "metadata": list_meta,
                    "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": o.get("metadata", {})} for o in page.items]}
        else:
            body = {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": list_meta,
                    "items": page.items}
        return web.Response(body=http.encode(body, fmt), headers={"Content-Type": fmt.content_type})

    def _delete_collection(self, request: web.Request, rp: http.ResourcePath,
                           options: DeleteOptions, fmt: http.ResponseFormat) -> web.Response:
        res = rp.resource
        if "deletecollection" not in res.verbs:
            raise errors.method_not_allowed(f"deletecollection is not supported on {res.plural}")
        page = self.registry.list(res, rp.namespace, predicate=self._predicate(request, res))
        deleted = []
        for obj in page.items:
            md = obj.get("metadata") or {}
            try:
                gone, _ = self.registry.delete(res, md.get("namespace"), md["name"], options)
                deleted.append(gone)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        body = {"kind": res.list_kind, "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self.registry.store.current_revision())},
                "items": deleted}
        return web.Response(body=http.encode(body, fmt), headers={"Content-Type": fmt.content_type})

    # ------------------------------------------------------------------ patch
    async def _patch(self, request: web.Request, rp: http.ResourcePath):
        res = rp.resource
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in http.PATCH_TYPES:
            raise errors.unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(http.PATCH_TYPES)}")
        opts = self._write_options(request)
        decoded = http.decode_body(content_type, await request.read())
        body = decoded.value
        force = request.query.get("force") in ("true", "1")
        if content_type == http.APPLY_PATCH:
            if not request.query.get("fieldManager"):
                raise errors.bad_request(
                    "PATCH, application/apply-patch+yaml requires fieldManager to be set")
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request was not a YAML object")
        elif force:
            raise errors.bad_request("force is only allowed for apply patches")
        root = openapi.root_schema_name(res)
        resolver = schema_resolver()

        def mutate(current: dict[str, Any] | None) -> dict[str, Any]:
            if content_type == http.APPLY_PATCH:
                return patch.server_side_apply(current, copy.deepcopy(body), opts.field_manager, force,
                                               resolver, root, self.registry.now(),
                                               subresource=rp.subresource or "")
            if current is None:
                raise errors.not_found(res.plural, rp.name or "", res.group)
            if content_type == http.MERGE_PATCH:
                if not isinstance(body, dict):
                    raise errors.bad_request("the body of the request was not a JSON object")
                return patch.json_merge_patch(current, body)
            if content_type == http.JSON_PATCH:
                if not isinstance(body, list):
                    raise errors.bad_request(
                        "the body of the request was not a JSON patch (a list of operations)")
                return patch.json_patch(current, body)
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request was not a JSON object")
            return patch.strategic_merge_patch(current, body, resolver, root)

        operation = "Apply" if content_type == http.APPLY_PATCH else "Update"
        obj, created = self.registry.patch_apply(
            res, rp.namespace, rp.name or "", mutate, opts, subresource=rp.subresource,
            create_if_missing=(content_type == http.APPLY_PATCH and rp.subresource is None),
            operation=operation)
        return obj, created, opts

    # ------------------------------------------------------------------ scale
    async def _scale(self, request: web.Request, rp: http.ResourcePath) -> web.Response:
        res = rp.resource
        fmt = http.ResponseFormat(None, http.JSON)
        if request.method == "GET":
            return self._json(_scale_of(self.registry.get(res, rp.namespace, rp.name)))
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(f"{request.method} is not supported on scale")
        opts = self._write_options(request)
        content_type = (request.headers.get("Content-Type") or http.JSON).split(";")[0].strip().lower()
        decoded = http.decode_body(content_type, await request.read())
        body = decoded.value
        if not isinstance(body, (dict, list)):
            raise errors.bad_request("the body of the request was not a JSON object")

        def mutate(current: dict[str, Any] | None) -> dict[str, Any]:
            assert current is not None
            scale = _scale_of(current)
            if request.method == "PUT":
                new_scale = body
            elif content_type == http.JSON_PATCH:
                new_scale = patch.json_patch(scale, body)
            elif content_type == http.MERGE_PATCH:
                new_scale = patch.json_merge_patch(scale, body)
            elif content_type == http.STRATEGIC_PATCH:
                new_scale = patch.strategic_merge_patch(
                    scale, body, schema_resolver(),
                    "io.k8s.api.autoscaling.v1.Scale")
            else:
                raise errors.unsupported_media_type(f"unsupported patch type {content_type}")
            if not isinstance(new_scale, dict):
                raise errors.bad_request("the body of the request was not a JSON object")
            replicas = (new_scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid("Scale", rp.name or "", [errors.Cause(
                    "spec.replicas", f"Invalid value: {json.dumps(replicas)}: must be greater "
                                     f"than or equal to 0")], "autoscaling")
            rv = (new_scale.get("metadata") or {}).get("resourceVersion")
            current.setdefault("spec", {})["replicas"] = replicas
            if rv and request.method == "PUT":
                current["metadata"]["resourceVersion"] = rv
            return current

        obj, _ = self.registry.patch_apply(res, rp.namespace, rp.name or "", mutate, opts)
        return web.Response(body=http.encode(_scale_of(obj), fmt),
                            headers={"Content-Type": http.JSON})

    # -------------------------------------------------------------------- log
    async def _pod_log(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        """pods/log: the container's log file as the node's runtime wrote it (kubelet serves it upstream).

        The Node's runtime-root annotation (written by its agent) says where the node keeps pod
        state; the file is read with kubelet's options (tailLines, timestamps, limitBytes,
        sinceSeconds/sinceTime, previous) and, with follow, streamed until the container's log
        closes or the pod goes away.
        """
        import time as _time
        from pathlib import Path

        from svcnet.agent.node import RUNTIME_ROOT_ANNOTATION
        from svcnet.api.resources import lookup
        from svcnet.runtime import logs
        from svcnet.runtime.containers import Runtime
        from svcnet.runtime.sandbox import PodKey

        pod = self.registry.get(rp.resource, rp.namespace, rp.name)
        spec = pod.get("spec") or {}
        containers = [c.get("name") for c in spec.get("containers") or []]
        init_containers = [c.get("name") for c in spec.get("initContainers") or []]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {rp.name}, choose one of: "
                    f"[{' '.join(containers)}]"
                    + (f" or one of the init containers: [{' '.join(init_containers)}]" if init_containers else ""))
            container = containers[0]
        elif container not in containers and container not in init_containers:
            raise errors.bad_request(f"container {container} is not valid for pod {rp.name}")
        waiting = errors.bad_request(f'container "{container}" in pod "{rp.name}" is waiting to start: '
                                     f"ContainerCreating")

        def flag(name: str) -> bool:
            return request.query.get(name, "").lower() in ("true", "1")

        def number(name: str) -> int | None:
            value = request.query.get(name)
            if value in (None, ""):
                return None
            try:
                return int(value)
            except ValueError:
                raise errors.bad_request(f"invalid {name}: {value!r}") from None

        since_ns = None
        if (seconds := number("sinceSeconds")) is not None:
            since_ns = _time.time_ns() - seconds * 1_000_000_000
        elif request.query.get("sinceTime"):
            try:
                since_ns = logs.parse_timestamp(request.query["sinceTime"])
            except ValueError:
                raise errors.bad_request(f"invalid sinceTime: {request.query['sinceTime']!r}") from None
        options = logs.LogOptions(tail_lines=number("tailLines"), timestamps=flag("timestamps"),
                                  limit_bytes=number("limitBytes"), since_ns=since_ns, follow=flag("follow"))

        node_name = spec.get("nodeName")
        nodes = lookup("", "v1", "nodes")
        root = None
        if node_name and nodes is not None:
            try:
                node = self.registry.get(nodes, None, node_name)
                root = ((node.get("metadata") or {}).get("annotations") or {}).get(RUNTIME_ROOT_ANNOTATION)
            except ApiError:
                root = None
        if not root:
            raise waiting
        runtime = Runtime(Path(root))
        key = PodKey.of(pod)
        sandbox = runtime.get_sandbox(key)
        if sandbox is None:
            raise waiting
        try:
            path = runtime.log_path(sandbox, container, previous=flag("previous"))
        except logs.PreviousLogNotFound as exc:
            raise errors.bad_request(str(exc)) from None
        except LookupError as exc:
            raise errors.bad_request(str(exc)) from None
        if not options.follow:
            try:
                body = await asyncio.to_thread(logs.read_log, path, options)
            except FileNotFoundError:
                raise waiting from None
            return web.Response(body=body, headers={"Content-Type": "text/plain"})

        instance = int(path.name.split(".")[0])

        def closed() -> bool:
            if runtime.log_closed(sandbox, container, instance):
                return True
            try:  # the pod deleted (or replaced by one of the same name): nothing more will be written
                current = self.registry.get(rp.resource, rp.namespace, rp.name)
            except ApiError:
                return True
            return (current.get("metadata") or {}).get("uid") != key.uid

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in logs.stream_log(path, options, log_closed=closed):
                await response.write(chunk)
        except FileNotFoundError:
            pass  # the pod's files were removed while we followed
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ watch
    async def _watch(self, request: web.Request, rp: http.ResourcePath,
                     fmt: http.ResponseFormat) -> web.StreamResponse:
        if self._closing:
            # As kube-apiserver with --shutdown-send-retry-after: 429 and Retry-After, which clients
            # (client-go's reflector) retry without re-listing.
            raise ApiError(429, "TooManyRequests", "The apiserver is shutting down, please try again later.",
                           retry_after=1)
        res = rp.resource
        predicate = self._predicate(request, res)
        if rp.name is not None:
            base = predicate

            def predicate(obj: dict[str, Any], _name=rp.name, _base=base) -> bool:  # noqa: E731
                return meta.name_of(obj) == _name and (_base is None or _base(obj))

        timeout = _int_param(request, "timeoutSeconds", self.settings.default_watch_timeout)
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        rv_param = request.query.get("resourceVersion", "")
        send_initial = request.query.get("sendInitialEvents") in ("true", "1")
        store = self.registry.store
        prefix = res.storage_prefix(rp.namespace)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        loop_thread = threading.get_ident()
        overflow = False

        def on_event(event: Event) -> None:
            nonlocal overflow
            if overflow:
                return
            if queue.qsize() >= MAX_WATCH_BACKLOG:
                overflow = True  # a watcher this far behind must re-list, as upstream closes it
                item = None
            else:
                item = event
            if threading.get_ident() == loop_thread:
                queue.put_nowait(item)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, item)

        initial: list[dict[str, Any]] = []
        if rv_param in ("", "0"):
            page = store.list(prefix, predicate=predicate)
            initial = [r.value for r in page.records]
            since = page.revision
        else:
            try:
                since = int(rv_param)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion: {rv_param!r}") from None
        response = web.StreamResponse(status=200, headers={
            "Content-Type": fmt.content_type, "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            # The store applies the selector as the watch cache does: objects that start
            # matching arrive as ADDED, ones that stop matching as DELETED.
            watch = store.watch(prefix, since, on_event, predicate=predicate)
        except Compacted as exc:
            status = errors.gone(f"too old resource version: {since} ({exc.compacted})").status()
            await response.write(jsoncodec.dumps({"type": "ERROR", "object": status}) + b"\n")
            return response
        except FutureRevision:
            status = ApiError(504, "Timeout", f"Too large resource version: {since}, current: "
                                              f"{store.current_revision()}", retry_after=1).status()
            await response.write(jsoncodec.dumps({"type": "ERROR", "object": status}) + b"\n")
            return response
        self._watch_count += 1
        self._watch_queues.add(queue)
        encoder = _WatchEncoder(res, fmt, self._now, request.query.get("includeObject", "Metadata"))
        try:
            for obj in initial:
                await response.write(encoder.line("ADDED", obj))
            if send_initial and bookmarks:
                await response.write(encoder.bookmark(since, initial_events_end=True))
            deadline = loop.time() + timeout
            last_revision = since
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, self.settings.bookmark_interval) if bookmarks else remaining
                try:
                    async with asyncio.timeout(wait):  # not wait_for: 3.11's can swallow a cancel
                        event = await queue.get()
                except TimeoutError:
                    if bookmarks and loop.time() < deadline and queue.empty():
                        last_revision = max(last_revision, store.current_revision())
                        await response.write(encoder.bookmark(last_revision))
                    continue
                if event is None:
                    break
                last_revision = event.revision
                await response.write(encoder.line(event.type, event.value))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watch.cancel()
            self._watch_count -= 1
            self._watch_queues.discard(queue)
        return response


class _WatchEncoder:
    def __init__(self, res: Resource, fmt: http.ResponseFormat, now: Callable[[], dt.datetime],
                 include_object: str = "Metadata"):
        self.res = res
        self.include_object = include_object
        self.fmt = fmt
        self.now = now
        self.sent_header = False

    def line(self, event_type: str, obj: dict[str, Any]) -> bytes:
        if self.fmt.as_kind == "Table":
            # Columns ride on the first event only, as kube-apiserver streams tables.
            payload: Any = tables.to_table(self.res, [obj], include_object=self.include_object,
                                           now=self.now(), include_headers=not self.sent_header)
            self.sent_header = True
        elif self.fmt.as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            payload = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": obj.get("metadata", {})}
        else:
            payload = obj
        return jsoncodec.dumps({"type": event_type, "object": payload}) + b"\n"

    def bookmark(self, revision: int, initial_events_end: bool = False) -> bytes:
        md: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_events_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.res.kind, "apiVersion": self.res.api_version, "metadata": md}
        return jsoncodec.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scale_md = {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in md}
    scale_status: dict[str, Any] = {"replicas": int(status.get("replicas") or 0)}
    if spec.get("selector"):
        scale_status["selector"] = selectors.selector_to_string(spec["selector"])
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_md,
            "spec": {"replicas": int(spec.get("replicas", 1))}, "status": scale_status}


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f"invalid {name} parameter: {raw!r}") from None
    if value < 0:
        raise errors.bad_request(f"invalid {name} parameter: must not be negative")
    return value


def _encode_continue(key: str, revision: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(revision), "start": key})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str | None) -> str | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if data.get("v") != "meta.k8s.io/v1" or not isinstance(data.get("start"), str):
            raise ValueError
        return data["start"]
    except (ValueError, TypeError):
        raise errors.bad_request("continue key is not valid: incorrect encoded start "
                                 "resourceVersion (version meta.k8s.io/v1)") from None


def _manager_from_user_agent(user_agent: str | None) -> str:
    """kube-apiserver's default field manager: the user agent up to the first '/'."""
    if not user_agent:
        return "unknown"
    return user_agent.split("/", 1)[0][:128] or "unknown"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
