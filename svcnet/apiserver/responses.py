"""HTTP responses: Status errors, JSON bodies, and objects and lists in the negotiated format."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aiohttp import web

from svcnet.api import jsoncodec, objects
from svcnet.api.errors import ApiError
from svcnet.api.resources import Resource
from svcnet.apiserver import http
from svcnet.apiserver import printers as tables
from svcnet.apiserver.printers import rows
from svcnet.apiserver.registry import ListPage, WriteOptions

PARTIAL_OBJECT_KINDS = ("PartialObjectMetadata", "PartialObjectMetadataList")


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


def json_response(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(status=status, body=jsoncodec.dumps(body), headers={"Content-Type": content_type})


def encoded(body: Any, fmt: http.ResponseFormat, status: int = 200) -> web.Response:
    return web.Response(status=status, body=http.encode(body, fmt), headers={"Content-Type": fmt.content_type})


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": objects.metadata_of(obj)}


def object_response(obj: dict[str, Any], res: Resource, fmt: http.ResponseFormat, now: dt.datetime,
                    status: int = 200, opts: WriteOptions | None = None,
                    include_object: str = "Metadata") -> web.Response:
    if fmt.as_kind == "Table":
        body: Any = tables.to_table(res, [obj], include_object=include_object, now=now)
    elif fmt.as_kind == "PartialObjectMetadata":
        body = partial_metadata(obj)
    else:
        body = obj
    resp = encoded(body, fmt, status)
    # kubectl drops a warning whose text is not a quoted, escaped string.
    for warning in opts.warnings if opts else []:
        resp.headers.add("Warning", f"299 - {json.dumps(warning)}")
    return resp


def list_bytes(res: Resource, page: ListPage, list_meta: dict[str, Any], fmt: http.ResponseFormat,
               now: dt.datetime, include_object: str) -> bytes:
    """A list response's body. As JSON, the stored texts are spliced in as they are: they are the
    bytes encoding list_body would give (ListPage says why), without decoding 10,000 objects to
    encode them again. Tables, partial metadata and YAML need the objects, so they decode.

    kube-apiserver takes the same shortcut for watch events, encoding each object once for every
    watcher (apiserver pkg/storage/cacher/caching_object.go, KEP-1152 "less object
    serializations"); it re-encodes list items, which svcnet need not do since it stores JSON.
    """
    if fmt.as_kind is None and not fmt.yaml:
        head = jsoncodec.dumps({"kind": res.list_kind, "apiVersion": res.api_version, "metadata": list_meta})
        items = ",".join(map(as_served, page.texts)).encode()
        return b"".join((head[:-1], b',"items":[', items, b"]}"))
    if fmt.as_kind == "Table" and not fmt.yaml:
        # Rows kept per object version: an object that has not changed is neither decoded nor printed.
        cache = rows.cache_for(page.store) if page.store is not None else None
        return rows.table_bytes(res, page.texts, page.revisions, include_object=include_object, now=now,
                                list_meta=list_meta, cache=cache)
    return http.encode(list_body(res, page, list_meta, fmt, now, include_object), fmt)


def as_served(text: str) -> str:
    """A stored text as a GET serves it. Stores written before the shared codec (orjson) kept
    non-ASCII text as \\u escapes, which a GET now writes as UTF-8: such a text, and any with
    an escape, is decoded and encoded again (one substring search spares the rest)."""
    return jsoncodec.dumps_text(jsoncodec.loads(text)) if "\\u" in text else text


def list_body(res: Resource, page: ListPage, list_meta: dict[str, Any], fmt: http.ResponseFormat,
              now: dt.datetime, include_object: str) -> Any:
    """A list response as a value: the objects decoded (what list_bytes' JSON splice must equal)."""
    if fmt.as_kind == "Table":
        return tables.to_table(res, page.items, include_object=include_object, now=now, list_meta=list_meta,
                               owned=True)
    if fmt.as_kind in PARTIAL_OBJECT_KINDS:
        return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                "items": [partial_metadata(o) for o in page.items]}
    return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": list_meta, "items": page.items}
