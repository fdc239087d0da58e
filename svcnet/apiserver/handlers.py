"""Resource requests: the verbs on collections and objects, as registry calls.

Subresources with handlers of their own (log, exec, scale, binding) are in
`subresources`; status and finalize are served here, as the object verbs on part of it.
"""
from __future__ import annotations

import copy
import datetime as dt
import functools
from typing import Any, TypeVar

from aiohttp import web

from svcnet.api import errors, objects
from svcnet.api.errors import ApiError
from svcnet.apiserver import http, openapi, params, patch
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.apiserver.responses import encoded, list_bytes, object_response
from svcnet.apiserver.steps import DEFAULT_CALLS, Steps, StoreCalls, run_off_loop
from svcnet.apiserver.watch import Watches
from svcnet.storage.base import Compacted, FutureRevision

T = TypeVar("T")

# The verb an HTTP method asks for on a named object (or one of its subresources).
_VERB_OF_METHOD = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                   "DELETE": "delete"}


@functools.cache
def schema_resolver() -> patch.SchemaResolver:
    """Patch strategies come from the same schemas /openapi/v3 publishes."""
    return patch.SchemaResolver(openapi.components())


class ResourceHandlers:
    def __init__(self, registry: Registry, watches: Watches, store_calls: StoreCalls = DEFAULT_CALLS) -> None:
        self.registry = registry
        self.watches = watches
        self.store_calls = store_calls

    async def _run(self, steps: Steps[T]) -> T:
        return await run_off_loop(steps, self.store_calls)

    def _now(self) -> dt.datetime:
        return self.registry.clock()

    async def serve(self, request: web.Request, rp: http.ResourcePath, watching: bool) -> web.StreamResponse:
        method = request.method
        if rp.subresource is not None:
            # status and finalize: only the verbs discovery lists (a DELETE on pods/x/status
            # must not delete the pod, a PATCH on namespaces/x/finalize is not served).
            sub = rp.resource.subresource(rp.subresource)
            if sub is None or _VERB_OF_METHOD.get(method) not in sub.verbs:
                raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        fmt = http.negotiate(request.headers.get("Accept"))
        if method in ("GET", "HEAD"):
            if watching:
                return await self.watches.serve(request, rp, fmt)
            return self._get(request, rp, fmt)
        if method == "POST":
            return await self._create(request, rp, fmt)
        if method == "PUT":
            return await self._update(request, rp, fmt)
        if method == "PATCH":
            if rp.is_collection:
                raise errors.method_not_allowed(f"PATCH on a collection of {rp.resource.plural} is not supported")
            obj, created, opts = await self._patch(request, rp)
            return object_response(obj, rp.resource, fmt, self._now(), status=201 if created else 200, opts=opts)
        if method == "DELETE":
            return await self._delete(request, rp, fmt)
        raise errors.method_not_allowed(f"{method} is not supported")

    def _get(self, request: web.Request, rp: http.ResourcePath, fmt: http.ResponseFormat) -> web.Response:
        if rp.is_collection:
            return self._list(request, rp, fmt)
        # Served from the latest revision, as the etcd3 store's Get: a resourceVersion is the oldest
        # the answer may be (validateMinimumResourceVersion), so one not reached yet is a 504.
        minimum = params.resource_version_param(request)
        current = self.registry.store.current_revision()
        if minimum is not None and minimum > current:
            raise params.too_large_resource_version(minimum, current)
        obj = self.registry.get(rp.resource, rp.namespace, rp.name)
        return object_response(obj, rp.resource, fmt, self._now(),
                               include_object=request.query.get("includeObject", "Metadata"))

    def _list(self, request: web.Request, rp: http.ResourcePath, fmt: http.ResponseFormat) -> web.Response:
        res = rp.resource
        predicate = params.predicate(request, res)
        read = params.list_read(request)
        # Every page of a paged list is read at the first page's revision, which its continue token
        # carries (etcd3 store GetList: WithRev(continueRV)); so is an Exact read.
        try:
            page = self.registry.list(res, rp.namespace, predicate=predicate, limit=read.limit,
                                      start_after=read.start_after, revision=read.revision)
        except Compacted:
            raise params.list_expired(read) from None
        except FutureRevision:
            raise params.too_large_resource_version(read.revision or 0,
                                                    self.registry.store.current_revision()) from None
        if read.not_older_than is not None and read.not_older_than > int(page.resource_version):
            raise params.too_large_resource_version(read.not_older_than, int(page.resource_version))
        list_meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            list_meta["continue"] = params.encode_continue(page.continue_token, page.resource_version)
            if page.remaining:
                list_meta["remainingItemCount"] = page.remaining
        include = request.query.get("includeObject", "Metadata")
        body = list_bytes(res, page, list_meta, fmt, self._now(), include)
        return web.Response(body=body, headers={"Content-Type": fmt.content_type})

    async def _create(self, request: web.Request, rp: http.ResourcePath, fmt: http.ResponseFormat) -> web.Response:
        res = rp.resource
        if not rp.is_collection:
            raise errors.method_not_allowed(f"POST on {res.plural}/{rp.name} is not supported")
        opts = params.write_options(request)
        body = await params.read_object(request, opts)
        obj = await self._run(self.registry.create_steps(res, rp.namespace, body, opts))
        return object_response(obj, res, fmt, self._now(), status=201, opts=opts)

    async def _update(self, request: web.Request, rp: http.ResourcePath, fmt: http.ResponseFormat) -> web.Response:
        res = rp.resource
        if rp.is_collection:
            raise errors.method_not_allowed(f"PUT on a collection of {res.plural} is not supported")
        opts = params.write_options(request)
        body = await params.read_object(request, opts)
        if rp.subresource == "finalize":
            steps = self.registry.update_steps(res, rp.namespace, rp.name, body, opts)
        else:
            steps = self.registry.update_steps(res, rp.namespace, rp.name, body, opts, subresource=rp.subresource)
        obj, created = await self._run(steps)
        return object_response(obj, res, fmt, self._now(), status=201 if created else 200, opts=opts)

    async def _delete(self, request: web.Request, rp: http.ResourcePath, fmt: http.ResponseFormat) -> web.Response:
        body = await params.read_optional_json(request)
        options = DeleteOptions.from_body(body, dict(request.query))
        if rp.is_collection:
            return self._delete_collection(request, rp, options, fmt)
        obj, gone = await self._run(self.registry.delete_steps(rp.resource, rp.namespace, rp.name, options))
        return object_response(obj, rp.resource, fmt, self._now(), status=200 if gone else 202)

    def _delete_collection(self, request: web.Request, rp: http.ResourcePath,
                           options: DeleteOptions, fmt: http.ResponseFormat) -> web.Response:
        res = rp.resource
        if "deletecollection" not in res.verbs:
            raise errors.method_not_allowed(f"deletecollection is not supported on {res.plural}")
        page = self.registry.list(res, rp.namespace, predicate=params.predicate(request, res))
        deleted = []
        for obj in page.items:
            md = objects.metadata_of(obj)
            try:
                gone, _ = self.registry.delete(res, md.get("namespace"), md["name"], options)
                deleted.append(gone)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        body = {"kind": res.list_kind, "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self.registry.store.current_revision())},
                "items": deleted}
        return encoded(body, fmt)

    async def _patch(self, request: web.Request, rp: http.ResourcePath) -> tuple[dict[str, Any], bool, WriteOptions]:
        res = rp.resource
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in http.PATCH_TYPES:
            raise errors.unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(http.PATCH_TYPES)}")
        opts = params.write_options(request)
        body = http.decode_body(content_type, await request.read()).value
        force = request.query.get("force") in ("true", "1")
        if content_type == http.APPLY_PATCH:
            if not request.query.get("fieldManager"):
                raise errors.bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
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
                    raise errors.bad_request("the body of the request was not a JSON patch (a list of operations)")
                return patch.json_patch(current, body)
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request was not a JSON object")
            return patch.strategic_merge_patch(current, body, resolver, root)

        operation = "Apply" if content_type == http.APPLY_PATCH else "Update"
        obj, created = await self._run(self.registry.patch_apply_steps(
            res, rp.namespace, rp.name or "", mutate, opts, subresource=rp.subresource,
            create_if_missing=(content_type == http.APPLY_PATCH and rp.subresource is None),
            operation=operation))
        return obj, created, opts
