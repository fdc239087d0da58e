"""The subresources with handlers of their own: pods/log, pods/exec, pods/binding and scale.

pods/log and pods/exec reach the pod's node through the server's NodeAccess; the
API server itself decides which container, which options and which Status to answer.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from svcnet.api import errors, meta, objects, selectors
from svcnet.api.errors import ApiError
from svcnet.api.podlogs import LogOptions
from svcnet.api.resources import lookup
from svcnet.apiserver import exec_ws, http, params, patch
from svcnet.apiserver.handlers import schema_resolver
from svcnet.apiserver.nodeaccess import NodeAccess
from svcnet.apiserver.registry import Registry
from svcnet.apiserver.responses import json_response, object_response, success_status

_JSON = http.ResponseFormat(None, http.JSON)


class Subresources:
    served = frozenset({"log", "exec", "scale", "binding"})

    def __init__(self, registry: Registry, node_access: NodeAccess) -> None:
        self.registry = registry
        self.node_access = node_access

    async def serve(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        if rp.subresource == "log":
            return await self._pod_log(request, rp)
        if rp.subresource == "exec":
            pod = self.registry.get(rp.resource, rp.namespace, rp.name)
            return await exec_ws.handle_exec(request, pod, self._node_of(pod), self.node_access)
        if rp.subresource == "scale":
            return await self._scale(request, rp)
        return await self._binding(request, rp)

    async def _binding(self, request: web.Request, rp: http.ResourcePath) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed(f"{request.method} is not supported on pods/binding")
        opts = params.write_options(request)
        body = await params.read_object(request, opts)
        # Decoded as a Binding first (its unknown fields warned about or refused), as upstream does.
        self.registry.check_fields(rp.resource, body, opts, "binding")
        self.registry.bind_pod(rp.namespace or "default", rp.name or "", body)
        return object_response(success_status(), rp.resource, _JSON, self.registry.clock(), status=201,
                               opts=opts)

    def _node_of(self, pod: Mapping[str, Any]) -> dict[str, Any] | None:
        """The Node the pod is bound to, if it exists."""
        node_name = objects.spec_of(pod).get("nodeName")
        nodes = lookup("", "v1", "nodes")
        if not node_name or nodes is None:
            return None
        try:
            return self.registry.get(nodes, None, node_name)
        except ApiError:
            return None

    # -------------------------------------------------------------------- log
    async def _pod_log(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        """pods/log: the container's log as its node's runtime wrote it (kubelet serves it upstream).

        Read with kubelet's options (tailLines, timestamps, limitBytes, sinceSeconds/sinceTime,
        previous) and, with follow, streamed until the container's log closes or the pod goes away.
        """
        pod = self.registry.get(rp.resource, rp.namespace, rp.name)
        container = log_container(pod, rp.name or "", request.query.get("container"))
        waiting = errors.bad_request(f'container "{container}" in pod "{rp.name}" is waiting to start: '
                                     f"ContainerCreating")
        options = log_options(request)
        node = self._node_of(pod)
        if node is None or not self.node_access.reaches(node):
            raise waiting
        try:
            log = self.node_access.container_log(node, pod, container, previous=params.flag(request, "previous"))
        except LookupError as exc:
            raise errors.bad_request(str(exc)) from None
        if log is None:
            raise waiting
        if not options.follow:
            try:
                body = await log.read(options)
            except FileNotFoundError:
                raise waiting from None
            return web.Response(body=body, headers={"Content-Type": "text/plain"})
        uid = objects.uid_of(pod)

        def pod_gone() -> bool:
            try:  # the pod deleted (or replaced by one of the same name): nothing more will be written
                current = self.registry.get(rp.resource, rp.namespace, rp.name)
            except ApiError:
                return True
            return objects.uid_of(current) != uid

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            async for chunk in log.follow(options, pod_gone):
                await response.write(chunk)
        except FileNotFoundError:
            pass  # the pod's files were removed while we followed
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ scale
    async def _scale(self, request: web.Request, rp: http.ResourcePath) -> web.Response:
        res = rp.resource
        if request.method == "GET":
            return json_response(scale_of(self.registry.get(res, rp.namespace, rp.name)))
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(f"{request.method} is not supported on scale")
        opts = params.write_options(request)
        content_type = (request.headers.get("Content-Type") or http.JSON).split(";")[0].strip().lower()
        decoded = http.decode_body(content_type, await request.read())
        body = decoded.value
        if request.method == "PUT":
            opts.duplicate_fields = decoded.duplicate_fields
        if not isinstance(body, (dict, list)):
            raise errors.bad_request("the body of the request was not a JSON object")

        def mutate(current: dict[str, Any] | None) -> dict[str, Any]:
            assert current is not None
            new_scale = _patched_scale(scale_of(current), body, request.method, content_type)
            # The Scale is what the client wrote: its unknown fields are warned about or refused here
            # (only spec.replicas reaches the object).
            self.registry.check_fields(res, new_scale, opts, "scale")
            replicas = objects.spec_of(new_scale).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid("Scale", rp.name or "", [errors.Cause(
                    "spec.replicas", f"Invalid value: {json.dumps(replicas)}: must be greater "
                                     f"than or equal to 0")], "autoscaling")
            rv = objects.metadata_of(new_scale).get("resourceVersion")
            current.setdefault("spec", {})["replicas"] = replicas
            if rv and request.method == "PUT":
                current["metadata"]["resourceVersion"] = rv
            return current

        obj, _ = self.registry.patch_apply(res, rp.namespace, rp.name or "", mutate, opts)
        return object_response(scale_of(obj), res, _JSON, self.registry.clock(), opts=opts)


def log_container(pod: Mapping[str, Any], pod_name: str, container: str | None) -> str:
    """The container pods/log reads: the one asked for, or the pod's only one."""
    spec = objects.spec_of(pod)
    containers = [c.get("name") for c in spec.get("containers") or []]
    init_containers = [c.get("name") for c in spec.get("initContainers") or []]
    if not container:
        if len(containers) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {pod_name}, choose one of: "
                f"[{' '.join(containers)}]"
                + (f" or one of the init containers: [{' '.join(init_containers)}]" if init_containers else ""))
        return containers[0]
    if container not in containers and container not in init_containers:
        raise errors.bad_request(f"container {container} is not valid for pod {pod_name}")
    return container


def log_options(request: web.Request) -> LogOptions:
    """PodLogOptions from the query."""
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
        since_ns = time.time_ns() - seconds * 1_000_000_000
    elif since_time := request.query.get("sinceTime"):
        try:
            since_ns = unix_ns(since_time)
        except ValueError:
            raise errors.bad_request(f"invalid sinceTime: {since_time!r}") from None
    return LogOptions(tail_lines=number("tailLines"), timestamps=params.flag(request, "timestamps"),
                      limit_bytes=number("limitBytes"), since_ns=since_ns, follow=params.flag(request, "follow"))


def unix_ns(text: str) -> int:
    """Unix nanoseconds from an RFC 3339 UTC time with 0-9 fraction digits (sinceTime)."""
    whole, _, fraction = text.partition(".")
    if fraction:
        if not fraction.endswith("Z"):
            raise ValueError(f"not a UTC timestamp: {text!r}")
        whole, fraction = whole + "Z", fraction[:-1]
    seconds = int(meta.parse_time(whole).timestamp())
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def _patched_scale(scale: dict[str, Any], body: Any, method: str, content_type: str) -> dict[str, Any]:
    """The Scale a PUT or PATCH of scale asks for."""
    if method == "PUT":
        new_scale = body
    elif content_type == http.JSON_PATCH:
        new_scale = patch.json_patch(scale, body)
    elif content_type == http.MERGE_PATCH:
        new_scale = patch.json_merge_patch(scale, body)
    elif content_type == http.STRATEGIC_PATCH:
        new_scale = patch.strategic_merge_patch(scale, body, schema_resolver(), "io.k8s.api.autoscaling.v1.Scale")
    else:
        raise errors.unsupported_media_type(f"unsupported patch type {content_type}")
    if not isinstance(new_scale, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    return new_scale


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    md, spec, status = objects.metadata_of(obj), objects.spec_of(obj), objects.status_of(obj)
    scale_md = {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in md}
    scale_status: dict[str, Any] = {"replicas": int(status.get("replicas") or 0)}
    if spec.get("selector"):
        scale_status["selector"] = selectors.selector_to_string(spec["selector"])
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_md,
            "spec": {"replicas": int(spec.get("replicas", 1))}, "status": scale_status}
