"""An asyncio client for the Kubernetes REST API over one aiohttp session.

The pure edges (paths, query strings, error decoding, the watch line splitter)
are plain functions tested without a socket; ApiClient only moves bytes.

Failures come in two kinds, so callers can tell them apart:
- ApiError (svcnet.api.errors): the server answered with a non-2xx Status;
  test `.code == 404`, `.code == 409`, `.reason`, ...
- TransportError: no answer (connection refused or reset, timeout, TLS).
"""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from svcnet.api import jsoncodec, objects
from svcnet.api.errors import ApiError, Cause
from svcnet.api.resources import Resource
from svcnet.client.config import ClientConfig

Obj = dict[str, Any]
PatchType = Literal["merge", "strategic", "json", "apply"]

VERSION = "0.1"
DEFAULT_TIMEOUT = 30.0  # seconds for any request but a watch
TOKEN_FILE_REFRESH = 60.0  # client-go re-reads a token file once a minute
# Above this a watch line is surely garbage; without a cap a broken peer could eat memory.
MAX_WATCH_LINE = 64 * 1024 * 1024
# Requests in flight at once, each on its own HTTP/1.1 connection (aiohttp's default, made
# explicit): a controller's slow-start batch or the scheduler's bindings go out together, up to
# this; kube-apiserver's HTTP/2 allows 250 streams per connection (Go's http2 default).
MAX_CONNECTIONS = 100
# Requests other than watches in flight at once. Each in flight holds a connection; beyond the
# ones already open, each is a new TLS handshake on both sides. A node agent starting 100 pods at
# once sent ~100 requests together (a TokenRequest and a status write per pod), and the API
# server spent an eighth of its time in handshakes (docs/benchmarks.md, issue 13): the rest
# now wait here for one of these connections, kept alive between requests. The API server
# serves requests on one thread, so more at once would not be answered sooner.
MAX_REQUESTS_IN_FLIGHT = 16

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

# When a body is not a Status (a proxy in the way), the reason kube's client infers from the code.
_REASON_BY_CODE = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


class TransportError(Exception):
    """The request got no HTTP answer: refused, reset, timed out, or TLS failed."""


# ------------------------------------------------------------------ pure helpers

def resource_path(resource: Resource, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """/api/v1/namespaces/NS/pods/NAME/status and the like; namespace ignored if cluster-scoped."""
    parts = ["/api", resource.version] if not resource.group else ["/apis", resource.group,
                                                                     resource.version]
    if resource.namespaced and namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(resource.plural)
    if name is not None:
        if not name:
            raise ValueError(f"an empty name for {resource.plural}")
        parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
    elif subresource:
        raise ValueError("a subresource needs an object name")
    return "/".join(parts)


def api_error_from_response(code: int, body: bytes) -> ApiError:
    """Rebuild the server's Status as an ApiError (falling back to the HTTP code alone)."""
    status: Any = None
    try:
        status = json.loads(body) if body else None
    except ValueError:
        pass
    if isinstance(status, Mapping) and status.get("kind") == "Status":
        return api_error_from_status(status, code)
    text = body.decode(errors="replace").strip()
    return ApiError(code, _REASON_BY_CODE.get(code, ""), text or f"the server responded with {code}")


def api_error_from_status(status: Mapping[str, Any], fallback_code: int = 500) -> ApiError:
    details = status.get("details") if isinstance(status.get("details"), Mapping) else {}
    causes = [Cause(field=str(c.get("field", "")), message=str(c.get("message", "")),
                    reason=str(c.get("reason", "")))
              for c in details.get("causes") or [] if isinstance(c, Mapping)]
    code = status.get("code")
    retry = details.get("retryAfterSeconds")
    return ApiError(
        int(code) if isinstance(code, int) and code else fallback_code,
        str(status.get("reason") or _REASON_BY_CODE.get(fallback_code, "")),
        str(status.get("message") or ""),
        name=details.get("name"), group=details.get("group"), kind=details.get("kind"),
        causes=causes, retry_after=int(retry) if isinstance(retry, int) else None,
    )


def list_params(label_selector: str | None = None, field_selector: str | None = None,
                limit: int | None = None, continue_: str | None = None,
                resource_version: str | None = None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    if limit:
        params["limit"] = str(limit)
    if continue_:
        params["continue"] = continue_
    if resource_version is not None:
        params["resourceVersion"] = resource_version
    return params


def delete_options(propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                   preconditions: Mapping[str, str] | None = None) -> Obj | None:
    """A DeleteOptions body, or None when every option is left to the server."""
    body: Obj = {}
    if propagation_policy is not None:
        body["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        body["gracePeriodSeconds"] = grace_period_seconds
    if preconditions:
        body["preconditions"] = dict(preconditions)
    if not body:
        return None
    return {"kind": "DeleteOptions", "apiVersion": "v1", **body}


class LineSplitter:
    """Bytes in, complete newline-terminated lines out: no limit on a line's length but the cap.

    aiohttp's readline() refuses lines over its buffer size, and one EndpointSlice
    or Pod can be larger than that, so the watch stream is split here instead.
    """

    def __init__(self, max_line: int = MAX_WATCH_LINE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        if b"\n" not in data:
            if len(self._buffer) > self._max_line:
                raise ValueError(f"watch line exceeds {self._max_line} bytes")
            return []
        *lines, rest = bytes(self._buffer).split(b"\n")
        self._buffer = bytearray(rest)
        return [line for line in lines if line.strip()]

    def tail(self) -> bytes:
        """What is left after the stream ended (a last line without its newline)."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return rest if rest.strip() else b""


def ensure_namespace(resource: Resource, namespace: str | None, body: Obj | None = None) -> str | None:
    """The namespace a request on this resource goes to (the argument, else the body's); None when
    cluster-scoped. ValueError when a namespaced resource has none."""
    if not resource.namespaced:
        return None
    ns = namespace or objects.namespace_of(body)
    if not ns:
        raise ValueError(f"{resource.plural} are namespaced: a namespace is required")
    return str(ns)


def required_name(body: Obj) -> str:
    """The body's metadata.name; ValueError when it has none."""
    name = objects.name_of(body)
    if not name:
        raise ValueError("the object has no metadata.name")
    return name


# -------------------------------------------------------------------- the client

def _ssl_context(config: ClientConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if config.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif config.ca_data:
        # As client-go: a configured CA replaces the system roots rather than adding to them.
        ctx.load_verify_locations(cadata=config.ca_data.decode())
    else:
        ctx.load_default_certs()
    if config.client_cert_data and config.client_key_data:
        # ssl only loads a key pair from files: write them to a private directory, load, remove.
        with tempfile.TemporaryDirectory(prefix="svcnet-client-") as tmp:
            cert_path, key_path = os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key")
            for path, data in ((cert_path, config.client_cert_data), (key_path, config.client_key_data)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert_path, key_path)
    return ctx


class StatusWrites:
    """update_status in terms of update, for every implementation of the client's verbs."""

    async def update_status(self, resource: Resource, namespace: str | None, body: Obj, *,
                            field_manager: str | None = None) -> Obj:
        return await self.update(resource, namespace, body, field_manager=field_manager,  # type: ignore[attr-defined]
                                 subresource="status")


class ApiClient(StatusWrites):
    """`async with ApiClient(config, component="proxy") as api:` then get/list/create/.../watch."""

    def __init__(self, config: ClientConfig, *, component: str = "client",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.config = config
        self.user_agent = f"svcnet-{component}/{VERSION}"
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: asyncio.Semaphore | None = None
        self._token = config.token
        self._token_read_at = float("-inf")

    async def __aenter__(self) -> ApiClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is not None:
            return
        connector: aiohttp.BaseConnector
        if self.config.unix_socket:
            connector = aiohttp.UnixConnector(path=self.config.unix_socket, limit=MAX_CONNECTIONS)
        elif self.config.server.startswith("https://"):
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self.config), limit=MAX_CONNECTIONS)
        else:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
        self._in_flight = asyncio.Semaphore(MAX_REQUESTS_IN_FLIGHT)
        self._session = aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": self.user_agent, "Accept": "application/json"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -------------------------------------------------------------- plumbing
    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        token = self._current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _current_token(self) -> str | None:
        path = self.config.token_file
        if path and time.monotonic() - self._token_read_at > TOKEN_FILE_REFRESH:
            try:
                with open(path) as f:
                    self._token = f.read().strip()
                self._token_read_at = time.monotonic()
            except OSError:
                pass  # keep the last token: the file may be mid-rotation
        return self._token

    def _request_kwargs(self) -> dict[str, Any]:
        if self.config.tls_server_name and self.config.server.startswith("https://"):
            return {"server_hostname": self.config.tls_server_name}
        return {}

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = None) -> Any:
        """One request; returns the decoded JSON body (text if not JSON); raises ApiError/TransportError."""
        if self._session is None or self._in_flight is None:
            raise RuntimeError("ApiClient is not open: use `async with ApiClient(...)`")
        data = None if body is None else jsoncodec.dumps(body)
        async with self._in_flight:
            try:
                return await self._request(method, path, params, data, content_type, timeout)
            except TransportError as exc:
                if not _safe_to_retry(method, exc.__cause__):
                    raise
                # A kept-alive connection the server (or a load balancer in front of several,
                # failing over) closed under us: once more, on a new connection.
                return await self._request(method, path, params, data, content_type, timeout)

    async def _request(self, method: str, path: str, params: Mapping[str, str] | None, data: bytes | None,
                       content_type: str, timeout: float | None) -> Any:
        assert self._session is not None
        try:
            async with self._session.request(
                    method, self.config.server + path, params=params, data=data,
                    headers=self._headers(content_type if data is not None else None),
                    timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
                    **self._request_kwargs()) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise api_error_from_response(resp.status, raw)
                ctype = resp.headers.get("Content-Type", "")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"{method} {path}: {exc or type(exc).__name__}") from exc
        if not raw:
            return None
        if "json" in ctype:
            return jsoncodec.loads(raw)
        return raw.decode(errors="replace")

    # ------------------------------------------------------------------ verbs
    async def get(self, resource: Resource, namespace: str | None, name: str,
                  subresource: str | None = None) -> Obj:
        ns = ensure_namespace(resource, namespace)
        return await self.request("GET", resource_path(resource, ns, name, subresource))

    async def list(self, resource: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj:
        """One page: the XList body ({metadata: {resourceVersion, continue?}, items})."""
        params = list_params(label_selector, field_selector, limit, continue_, resource_version)
        return await self.request("GET", resource_path(resource, namespace), params=params)

    async def create(self, resource: Resource, namespace: str | None, body: Obj, *,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj:
        ns = ensure_namespace(resource, namespace, body)
        return await self.request("POST", resource_path(resource, ns), body=body,
                                  params=_write_params(field_manager, dry_run))

    async def update(self, resource: Resource, namespace: str | None, body: Obj, *,
                     field_manager: str | None = None, dry_run: bool = False,
                     subresource: str | None = None) -> Obj:
        """PUT; a resourceVersion in the body makes it conditional (409 when stale)."""
        ns = ensure_namespace(resource, namespace, body)
        path = resource_path(resource, ns, required_name(body), subresource)
        return await self.request("PUT", path, body=body, params=_write_params(field_manager, dry_run))

    async def patch(self, resource: Resource, namespace: str | None, name: str, body: Any, *,
                    patch_type: PatchType = "merge", field_manager: str | None = None,
                    force: bool = False, subresource: str | None = None, dry_run: bool = False) -> Obj:
        ns = ensure_namespace(resource, namespace)
        params = _write_params(field_manager, dry_run)
        if force:
            params["force"] = "true"
        # JSON is YAML, so an apply body goes out as JSON under the apply content type.
        return await self.request("PATCH", resource_path(resource, ns, name, subresource), body=body,
                                  params=params, content_type=PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, resource: Resource, namespace: str | None, name: str, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None, dry_run: bool = False) -> Obj:
        """Returns the object as deleted, or as marked for deletion when finalizers hold it."""
        ns = ensure_namespace(resource, namespace)
        body = delete_options(propagation_policy, grace_period_seconds, preconditions)
        return await self.request("DELETE", resource_path(resource, ns, name), body=body,
                                  params={"dryRun": "All"} if dry_run else None)

    async def watch(self, resource: Resource, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = False, name: str | None = None,
                    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield (type, object) for ADDED/MODIFIED/DELETED/BOOKMARK until the server ends the watch.

        An ERROR event is raised as the ApiError it carries (410 Gone when the
        resourceVersion was compacted). Close it with contextlib.aclosing when
        leaving early, so the connection is released at once.
        """
        if self._session is None:
            raise RuntimeError("ApiClient is not open: use `async with ApiClient(...)`")
        params = list_params(label_selector, field_selector, resource_version=resource_version)
        params["watch"] = "true"
        if name:
            params["fieldSelector"] = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(timeout_seconds)
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        # No total deadline: the server ends the watch. A read deadline a little past the
        # server's catches a peer that vanished without closing the connection.
        read_deadline = timeout_seconds + 30.0 if timeout_seconds else None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=read_deadline)
        path = resource_path(resource, namespace)
        splitter = LineSplitter()
        try:
            async with self._session.get(self.config.server + path, params=params,
                                         headers=self._headers(), timeout=timeout,
                                         **self._request_kwargs()) as resp:
                if resp.status >= 400:
                    raise api_error_from_response(resp.status, await resp.read())
                async for chunk in resp.content.iter_any():
                    try:
                        lines = splitter.feed(chunk)
                    except ValueError as exc:
                        raise TransportError(f"watch {path}: {exc}") from None
                    for line in lines:
                        yield _decode_watch_line(line)
                if tail := splitter.tail():
                    yield _decode_watch_line(tail)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"watch {path}: {exc or type(exc).__name__}") from exc


def _safe_to_retry(method: str, cause: BaseException | None) -> bool:
    """Whether a request that failed on its connection may be sent once more, as client-go and
    Go's transport allow: a GET that met a reset or an early EOF (client-go retries only GETs:
    writes are not idempotent), and any request whose body never left (the connection was
    closed before it was written, so the server cannot have acted on it)."""
    if isinstance(cause, aiohttp.ClientOSError) and "Can not write request body" in str(cause):
        return True
    return method == "GET" and isinstance(cause, (aiohttp.ServerDisconnectedError, ConnectionResetError,
                                                   aiohttp.ClientOSError))


def _decode_watch_line(line: bytes) -> tuple[str, Obj]:
    try:
        event = jsoncodec.loads(line)
        kind, obj = event["type"], event["object"]
    except (ValueError, KeyError, TypeError):
        raise TransportError(f"undecodable watch event: {line[:200]!r}") from None
    if kind == "ERROR":
        raise api_error_from_status(obj if isinstance(obj, Mapping) else {})
    return str(kind), obj


def _write_params(field_manager: str | None, dry_run: bool) -> dict[str, str]:
    params: dict[str, str] = {}
    if field_manager:
        params["fieldManager"] = field_manager
    if dry_run:
        params["dryRun"] = "All"
    return params
