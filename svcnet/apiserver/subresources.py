"""The subresources with handlers of their own: pods/log, exec, attach, portforward, nodes/proxy,
pods/binding and scale.

pods/log, exec, attach and portforward, and nodes/proxy, are proxied to the kubelet of the
(pod's) node, as kube-apiserver does (kubeletproxy.py). The API server first decides what it
can itself: which container, which options, whether the pod has a node; the kubelet answers
the rest (the log, whether the container runs).
"""
from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from svcnet.api import errors, meta, objects, selectors
from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver import http, kubeletproxy, params, patch
from svcnet.apiserver.handlers import schema_resolver
from svcnet.apiserver.nodeaccess import NO_KUBELETS, KubeletDialer, NodeUnreachable, kubelet_location
from svcnet.apiserver.registry import Registry
from svcnet.apiserver.responses import json_response, object_response, success_status
from svcnet.apiserver.steps import DEFAULT_CALLS, StoreCalls, run_off_loop

_JSON = http.ResponseFormat(None, http.JSON)
# PodLogOptions kubelet reads (container is in its path)
_LOG_QUERY = ("follow", "previous", "tailLines", "limitBytes", "sinceSeconds", "sinceTime", "timestamps")
# What exec and attach pass on (kubelet's path names the container)
_STREAM_QUERY = ("command", "stdin", "stdout", "stderr", "tty")


class Subresources:
    served = frozenset({"log", "exec", "attach", "portforward", "proxy", "scale", "binding"})

    def __init__(self, registry: Registry, kubelets: KubeletDialer = NO_KUBELETS,
                 store_calls: StoreCalls = DEFAULT_CALLS) -> None:
        self.registry = registry
        self.kubelets = kubelets
        # Writes run as the resource handlers' do: a binding made inline waited for its commit's
        # fsync on the event loop, which under a pod burst was a fifth of the loop's time.
        self.store_calls = store_calls

    async def serve(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        if rp.subresource == "log":
            return await self._pod_log(request, rp)
        if rp.subresource in ("exec", "attach"):
            return await self._pod_stream(request, rp)
        if rp.subresource == "portforward":
            return await self._port_forward(request, rp)
        if rp.subresource == "proxy":
            return await self._node_proxy(request, rp)
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
        await run_off_loop(self.registry.bind_pod_steps(rp.namespace or "default", rp.name or "", body),
                           self.store_calls)
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

    def _kubelet_of(self, node: Mapping[str, Any] | None) -> tuple[str, int] | None:
        if node is None or not self.kubelets.reaches_nodes:
            return None
        return kubelet_location(node)

    async def _proxy(self, request: web.Request, where: tuple[str, int], path: str, query: list[tuple[str, str]],
                     check: kubeletproxy.ErrorCheck | None = None) -> web.StreamResponse:
        target = urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~")
        if query:
            target += "?" + urllib.parse.urlencode(query)
        try:
            return await kubeletproxy.proxy(request, self.kubelets, where[0], where[1], target, check=check)
        except NodeUnreachable as exc:
            raise errors.internal_error(str(exc)) from None
        except kubeletproxy.BadGateway as exc:
            raise errors.internal_error(str(exc)) from None

    # -------------------------------------------------------------------- log
    async def _pod_log(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        """pods/log: the container's log from its node's kubelet (/containerLogs), streamed with follow.

        The options are checked here (as kube-apiserver validates PodLogOptions) and passed on.
        """
        pod = self.registry.get(rp.resource, rp.namespace, rp.name)
        container = log_container(pod, rp.name or "", request.query.get("container"))
        log_options(request)
        where = self._kubelet_of(self._node_of(pod))
        if where is None:
            raise errors.bad_request(f'container "{container}" in pod "{rp.name}" is waiting to start: '
                                     f"ContainerCreating")
        query = [(k, v) for k in _LOG_QUERY for v in request.query.getall(k, [])]
        path = f"/containerLogs/{objects.namespace_of(pod) or 'default'}/{rp.name}/{container}"
        return await self._proxy(request, where, path, query, check=kubelet_error)

    # ---------------------------------------------------------- exec, attach
    async def _pod_stream(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        """pods/exec and pods/attach: checked here, then the upgrade is proxied to /exec or /attach."""
        pod = self.registry.get(rp.resource, rp.namespace, rp.name)
        commands = request.query.getall("command", [])
        if rp.subresource == "exec" and not commands:
            raise errors.bad_request("you must specify at least 1 command")
        if not any(params.flag(request, name) for name in ("stdin", "stdout", "stderr")):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        container = exec_container(pod, request.query.get("container"))
        where = self._pod_kubelet(pod)
        query = [(k, v) for k in _STREAM_QUERY for v in request.query.getall(k, [])]
        path = f"/{rp.subresource}/{objects.namespace_of(pod) or 'default'}/{rp.name}/{container}"
        return await self._proxy(request, where, path, query)

    def _pod_kubelet(self, pod: Mapping[str, Any]) -> tuple[str, int]:
        where = self._kubelet_of(self._node_of(pod))
        if not objects.spec_of(pod).get("nodeName") or where is None:
            raise errors.bad_request(f"pod {objects.name_of(pod)} does not have a host assigned")
        return where

    async def _port_forward(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        """pods/portforward: proxied to the kubelet's /portForward (SPDY/3.1 or WebSocket)."""
        pod = self.registry.get(rp.resource, rp.namespace, rp.name)
        where = self._pod_kubelet(pod)
        path = f"/portForward/{objects.namespace_of(pod) or 'default'}/{rp.name}"
        return await self._proxy(request, where, path, list(request.query.items()))

    # ------------------------------------------------------------- nodes/proxy
    async def _node_proxy(self, request: web.Request, rp: http.ResourcePath) -> web.StreamResponse:
        """nodes/{name}/proxy/{path}: the node's kubelet API at path, answered as it answers."""
        node = self.registry.get(rp.resource, None, rp.name)
        where = self._kubelet_of(node)
        if where is None:
            raise errors.internal_error(f"no preferred addresses found for node {rp.name}")
        prefix = f"/{rp.name}/proxy"
        raw = request.path
        rest = raw[raw.index(prefix) + len(prefix):] if prefix in raw else ""
        return await self._proxy(request, where, rest or "/", list(request.query.items()))

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

        obj, _ = await run_off_loop(self.registry.patch_apply_steps(res, rp.namespace, rp.name or "", mutate, opts),
                                    self.store_calls)
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


def exec_container(pod: Mapping[str, Any], container: str | None) -> str:
    """The container to exec in or attach to: the one asked for, or the default-container annotation's,
    or the first."""
    spec = objects.spec_of(pod)
    containers = [c.get("name") for c in spec.get("containers") or []]
    names = containers + [c.get("name") for c in spec.get("initContainers") or []]
    if not container:
        default = objects.annotations_of(pod).get("kubectl.kubernetes.io/default-container")
        container = default if default in containers else (containers[0] if containers else "")
    if container not in names:
        raise errors.bad_request(f"container {container} is not valid for pod {objects.name_of(pod)}")
    return container


def kubelet_error(status: int, body: bytes) -> ApiError:
    """A kubelet's error answer as the Status kube-apiserver reports for it (its generic response check):
    the kubelet's text is the message."""
    text = body.decode(errors="replace").strip()
    if status == 400:
        return errors.bad_request(text)
    if status == 500:
        return errors.internal_error(text)
    return ApiError(status, "NotFound" if status == 404 else "InternalError", text or f"the kubelet answered {status}")


def log_options(request: web.Request) -> None:
    """Check the query's PodLogOptions (the kubelet is sent them as they are)."""
    for name in ("tailLines", "limitBytes", "sinceSeconds"):
        value = request.query.get(name)
        if value in (None, ""):
            continue
        try:
            number = int(value)
        except ValueError:
            raise errors.bad_request(f"invalid {name}: {value!r}") from None
        if number < 0:
            raise errors.bad_request(f"invalid {name}: {value!r}: must be non-negative")
    if since_time := request.query.get("sinceTime"):
        try:
            unix_ns(since_time)
        except ValueError:
            raise errors.bad_request(f"invalid sinceTime: {since_time!r}") from None


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
