"""Reading a request: query parameters, write options, selectors, continue tokens, bodies.

Every parameter is parsed as upstream parses it (a Go strconv function, a JSON token), and
anything else is a 400 BadRequest Status that names the parameter, never a 500.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from svcnet.api import errors, objects, selectors
from svcnet.api.resources import Resource
from svcnet.apiserver import http
from svcnet.apiserver.registry import WriteOptions
from svcnet.apiserver.validation import fields


def flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


# What Go's strconv.ParseInt(s, 10, 64) and ParseUint(s, 10, 64) accept: no spaces, no
# underscores, ASCII digits only (Python's int() takes all three).
_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")


def parse_int64(name: str, raw: str) -> int:
    """raw as strconv.ParseInt reads it, the parameter's int64 (metav1 conversion
    Convert_Slice_string_To_int64); a 400 naming the parameter otherwise."""
    return _parse_go_int(name, raw, "ParseInt", _SIGNED, -(2**63), 2**63 - 1)


def parse_uint64(name: str, raw: str) -> int:
    """raw as strconv.ParseUint reads it (a resourceVersion: APIObjectVersioner.ParseResourceVersion)."""
    return _parse_go_int(name, raw, "ParseUint", _UNSIGNED, 0, 2**64 - 1)


def _parse_go_int(name: str, raw: str, func: str, form: re.Pattern[str], low: int, high: int) -> int:
    problem = "invalid syntax"
    if form.fullmatch(raw):
        # Past 20 digits nothing fits 64 bits; and int() refuses over 4300 digits.
        value = int(raw) if len(raw.lstrip("+-0")) <= 20 else high + 1
        if low <= value <= high:
            return value
        problem = "value out of range"
    raise errors.bad_request(f"invalid {name} parameter: strconv.{func}: parsing {json.dumps(raw)}: "
                             f"{problem}")


def int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return default
    value = parse_int64(name, raw)
    if value < 0:
        raise errors.bad_request(f"invalid {name} parameter: must not be negative")
    return value


def resource_version_param(request: web.Request) -> int | None:
    """The resourceVersion parameter as a revision; None when absent, "" or "0" (any)."""
    raw = request.query.get("resourceVersion", "")
    if raw in ("", "0"):
        return None
    return parse_uint64("resourceVersion", raw)


@dataclass(frozen=True)
class ListRead:
    """How a list request reads the store: which page, and at which revision.

    revision: read every item as of this revision (a continue token's, resourceVersionMatch=Exact,
    or the legacy exact read: a resourceVersion with a limit and no match); None reads the latest.
    not_older_than: the latest must have reached this revision (NotOlderThan, or a resourceVersion
    without a limit and no match), else a 504 "Too large resource version".
    """

    limit: int
    start_after: str | None
    revision: int | None
    not_older_than: int | None


_EXACT, _NOT_OLDER_THAN = "Exact", "NotOlderThan"


def list_read(request: web.Request) -> ListRead:
    """A list request's limit, continue, resourceVersion and resourceVersionMatch, as kube-apiserver reads them.

    First the checks of ValidateListOptions (apimachinery pkg/apis/meta/internalversion/validation/
    validation.go), a 422 Invalid on ListOptions; then what the etcd3 store's GetList decides
    (apiserver pkg/storage/etcd3/store.go): the resourceVersion parsed (400), the continue token
    decoded (400), a resourceVersion other than "0" beside a continue token refused (400), and the
    revision to read at. svcnet has no watch cache, so "" and "0" both read the latest revision.
    """
    q = request.query
    match = q.get("resourceVersionMatch", "")
    raw_rv = q.get("resourceVersion", "")
    token = q.get("continue", "")
    causes: list[errors.Cause] = []
    if match:
        if not raw_rv:
            causes.append(fields.forbidden("resourceVersionMatch",
                                           "resourceVersionMatch is forbidden unless resourceVersion is provided"))
        if token:
            causes.append(fields.forbidden("resourceVersionMatch",
                                           "resourceVersionMatch is forbidden when continue is provided"))
        if match not in (_EXACT, _NOT_OLDER_THAN):
            causes.append(fields.not_supported("resourceVersionMatch", match, (_EXACT, _NOT_OLDER_THAN, "")))
        if match == _EXACT and raw_rv == "0":
            causes.append(fields.forbidden("resourceVersionMatch",
                                           'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if q.get("sendInitialEvents"):
        causes.append(fields.forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if causes:
        raise errors.invalid("ListOptions", "", causes, group="meta.k8s.io")
    limit = int_param(request, "limit", 0)
    rv = resource_version_param(request)
    if token:
        start_after, token_rv = _decode_continue(token)
        if rv is not None:
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        # A token's revision below zero (an expired list's token) continues at the latest.
        return ListRead(limit, start_after, token_rv if token_rv > 0 else None, None)
    if rv is None:
        return ListRead(limit, None, None, None)
    if match == _EXACT or (not match and limit > 0):
        return ListRead(limit, None, rv, None)
    return ListRead(limit, None, None, rv)


def list_expired(read: ListRead) -> errors.ApiError:
    """The 410 for a list whose revision is compacted (etcd3 interpretListError, pkg/storage/etcd3/errors.go).

    A continued list gets upstream's inconsistentContinue message and, in the Status's metadata,
    a token that continues after the same key at the latest revision (revision -1).
    """
    if read.start_after is None:
        return errors.gone("The resourceVersion for the provided list is too old.")
    return _ExpiredContinue(encode_continue(read.start_after, "-1"))


class _ExpiredContinue(errors.ApiError):
    def __init__(self, token: str) -> None:
        super().__init__(410, "Expired", (
            "The provided continue parameter is too old to display a consistent list result. You can start a "
            "new list without the continue parameter, or use the continue token in this response to retrieve "
            "the remainder of the results. Continuing with the provided token results in an inconsistent "
            "list - objects that were created, modified, or deleted between the time the first chunk was "
            "returned and now may show up in the list."))
        self.token = token

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["metadata"] = {"continue": self.token}
        return body


def too_large_resource_version(requested: int, current: int, retry_after: int | None = None) -> errors.ApiError:
    """storage.NewTooLargeResourceVersionError (apiserver pkg/storage/errors.go): NewTimeoutError's 504
    "Timeout: ..." with a ResourceVersionTooLarge cause; no retry for a list (as the etcd3 store raises
    it), 1 s for a watch (as the watch cache raises it after waiting for the revision)."""
    return errors.ApiError(504, "Timeout", f"Timeout: Too large resource version: {requested}, current: {current}",
                           causes=[errors.Cause("", "Too large resource version", "ResourceVersionTooLarge")],
                           with_details=True, retry_after=retry_after)


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


# The continue token, as upstream encodes it (apiserver pkg/storage/continue.go: a
# continueToken {"v", "rv", "start"} as JSON in unpadded URL-safe base64), and the errors
# DecodeContinue answers, each wrapped as ValidateListOptions wraps it ("invalid continue
# token: ...").
_CONTINUE_VERSION = "meta.k8s.io/v1"
_INVALID_KEY = "continue key is not valid"
_NOT_RAW_URL_BASE64 = re.compile(r"[^A-Za-z0-9_-]")
_JSON_KIND = {dict: "object", list: "array", str: "string", bool: "bool", type(None): "null",
              int: "number", float: "number"}


def encode_continue(key: str, revision: str) -> str:
    raw = json.dumps({"v": _CONTINUE_VERSION, "rv": int(revision), "start": key})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str | None) -> str | None:
    """The key a continue token starts after (None for no token); a 400 for any token this server did not write."""
    return _decode_continue(token)[0] if token else None


def _decode_continue(token: str) -> tuple[str, int]:
    """The key a continue token starts after and its revision; a 400 for any token this server did not write."""
    problem = _continue_problem(token)
    if isinstance(problem, str):
        raise errors.bad_request(f"invalid continue token: {problem}")
    return problem["start"], problem["rv"]


def _continue_problem(token: str) -> dict[str, Any] | str:
    """The decoded token, or what upstream's DecodeContinue says is wrong with it."""
    outside = _NOT_RAW_URL_BASE64.search(token)  # "=" too: RawURLEncoding has no padding
    if outside is not None:
        return f"{_INVALID_KEY}: illegal base64 data at input byte {outside.start()}"
    try:
        data = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return f"{_INVALID_KEY}: illegal base64 data at input byte {len(token) - 1}"
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return f"{_INVALID_KEY}: {exc}"
    if not isinstance(value, dict):
        return (f"{_INVALID_KEY}: json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} "
                f"into Go value of type storage.continueToken")
    for field, kind in (("v", str), ("rv", int), ("start", str)):
        item = value.get(field)
        if item is not None and (not isinstance(item, kind) or isinstance(item, bool)):
            go_type = "int64" if kind is int else "string"
            return (f"{_INVALID_KEY}: json: cannot unmarshal {_JSON_KIND.get(type(item), 'value')} "
                    f"into Go struct field continueToken.{field} of type {go_type}")
    if value.get("v") != _CONTINUE_VERSION:
        return f"{_INVALID_KEY}: server does not recognize this encoded version {value.get('v') or ''}"
    if not value.get("rv") or not -(2**63) <= value["rv"] < 2**63:
        return f"{_INVALID_KEY}: incorrect encoded start resourceVersion (version {_CONTINUE_VERSION})"
    if not value.get("start"):
        return f"{_INVALID_KEY}: encoded start key empty (version {_CONTINUE_VERSION})"
    return value
