"""A request's authorization attributes, derived as kube-apiserver's RequestInfoFactory derives
them, and the message of the 403 that refuses them (the authorization filter's Forbidden).

A path under /api/<version>/... or /apis/<group>/<version>/... is a resource request: its
verb comes from the method (GET on a collection is list, or watch with ?watch=true; DELETE on
a collection is deletecollection), or from the legacy /watch/ and /proxy/ prefixes; a
list or watch narrowed to one name by fieldSelector=metadata.name=<n> carries that name.
Anything else (/version, /healthz, /api, /apis/apps/v1, /openapi/v3) is a non-resource
request whose verb is the lower-cased method.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from svcnet.api.selectors import go_quote as _go_quote

from .identity import User

_API_PREFIXES = ("api", "apis")
_GROUPLESS_PREFIXES = ("api",)
_SPECIAL_VERBS = ("proxy", "watch")
_NO_SUBRESOURCE_VERBS = ("proxy",)  # /proxy/.../name/rest/of/path: the rest is not a subresource
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}


@dataclass(frozen=True)
class Attributes:
    """What is asked (authorizer.Attributes): by whom, which verb, on what."""

    user: User
    verb: str
    resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    field_selector: str = ""  # a list or watch's fieldSelector, as sent (the Node authorizer reads it)


def request_attributes(user: User, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of an HTTP request (path without the query string)."""
    parts = [p for p in path.strip("/").split("/") if p]
    non_resource = Attributes(user, method.lower(), False, path=path)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] not in _GROUPLESS_PREFIXES:
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    if rest and rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:
            return non_resource
        verb, rest = rest[0], rest[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")
    return _resource_attributes(user, verb, path, group, version, rest, query)


def _resource_attributes(user: User, verb: str, path: str, group: str, version: str,
                         rest: list[str], query: Mapping[str, str]) -> Attributes:
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb not in _NO_SUBRESOURCE_VERBS else ""
    field_selector = ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in ("true", "1") else "list"
        field_selector = query.get("fieldSelector", "")
        name = _exact_name(field_selector)
    elif verb == "watch":
        field_selector = query.get("fieldSelector", "")
    if not name and verb == "delete":
        verb = "deletecollection"
        field_selector = query.get("fieldSelector", "")
    return Attributes(user, verb, True, path=path, namespace=namespace, api_group=group,
                      api_version=version, resource=resource, subresource=subresource, name=name,
                      field_selector=field_selector)


def _exact_name(field_selector: str) -> str:
    """The name a list asks for with metadata.name=<n> (or ==), when that name could be a
    path segment; anything else narrows nothing."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and not key.endswith("!") and key.strip() == "metadata.name":
            value = value.strip()
            if value and value not in (".", "..") and "/" not in value and "%" not in value:
                return value
    return ""


def field_equals(field_selector: str, field: str, value: str) -> bool:
    """Whether a field selector holds the requirement field=value with the single-= operator,
    the only one (selection.Equals) the Node authorizer accepts as scoping a list to a node."""
    for term in field_selector.split(","):
        key, sep, wanted = term.partition("=")
        if sep and not key.endswith("!") and not wanted.startswith("=") and key.strip() == field:
            if wanted.strip() == value:
                return True
    return False


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The authorization filter's message: who cannot do what, where; a reason after a colon."""
    who = attrs.user.name
    if not attrs.resource_request:
        msg = f"User {_go_quote(who)} cannot {attrs.verb} path {_go_quote(attrs.path)}"
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        msg = (f"User {_go_quote(who)} cannot {attrs.verb} resource {_go_quote(resource)} "
               f"in API group {_go_quote(attrs.api_group)}")
        msg += (f" in the namespace {_go_quote(attrs.namespace)}" if attrs.namespace
                else " at the cluster scope")
    return f"{msg}: {reason}" if reason else msg


def forbidden_status_message(attrs: Attributes, reason: str = "") -> str:
    """apierrors.NewForbidden's wording around forbidden_message: `pods "x" is forbidden: ...`."""
    detail = forbidden_message(attrs, reason)
    if not attrs.resource_request or not attrs.resource:
        return f"forbidden: {detail}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if attrs.name:
        return f"{qualified} {_go_quote(attrs.name)} is forbidden: {detail}"
    return f"{qualified} is forbidden: {detail}"

