"""Reading a request: query parameters, write options, selectors, continue tokens, bodies."""
from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from svcnet.api import errors, objects, selectors
from svcnet.api.resources import Resource
from svcnet.apiserver import http
from svcnet.apiserver.registry import WriteOptions


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def int_param(request: web.Request, name: str, default: int) -> int:
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


def write_options(request: web.Request) -> WriteOptions:
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
    manager = q.get("fieldManager") or manager_from_user_agent(request.headers.get("User-Agent"))
    return WriteOptions(dry_run=bool(dry_run), field_manager=manager, field_validation=validation)


def manager_from_user_agent(user_agent: str | None) -> str:
    """kube-apiserver's default field manager: the user agent up to the first '/'."""
    if not user_agent:
        return "unknown"
    return user_agent.split("/", 1)[0][:128] or "unknown"


async def read_optional_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    return http.decode_body(request.headers.get("Content-Type"), raw).value


async def read_object(request: web.Request, opts: WriteOptions) -> dict[str, Any]:
    decoded = http.decode_body(request.headers.get("Content-Type"), await request.read())
    if not isinstance(decoded.value, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    opts.duplicate_fields = decoded.duplicate_fields
    return decoded.value


def predicate(request: web.Request, res: Resource):
    """The labelSelector and fieldSelector as one test on objects; None when there are none."""
    label_sel = selectors.parse_label_selector(request.query.get("labelSelector", ""))
    field_sel = selectors.parse_field_selector(res.kind, request.query.get("fieldSelector", ""))
    if label_sel.empty and field_sel.empty:
        return None

    def matches(obj: dict[str, Any]) -> bool:
        labels = objects.labels_of(obj)
        return label_sel.matches(labels) and field_sel.matches(obj)

    return matches


def encode_continue(key: str, revision: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(revision), "start": key})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str | None) -> str | None:
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
