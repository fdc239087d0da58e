"""The kubelet API's paths, as kubelet serves them on port 10250 (pure: strings in, values out).

`parse_route` names what a path asks for (`/containerLogs/{ns}/{pod}/{container}`,
`/exec/{ns}/{pod}[/{uid}]/{container}`, `/attach/...`, `/run/...`,
`/portForward/{ns}/{pod}[/{uid}]`, `/healthz`, `/pods`); `request_attributes` is
kubelet's webhook authorization mapping: every request is a verb on the node
object's `proxy` subresource, except /stats, /metrics and /logs, which get
subresources of their own, so RBAC can grant them apart (kubelet's
nodeAuthorizerAttributesGetter). The texts of 401 and 403 are kubelet's.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from svcnet.api import meta
from svcnet.api.podlogs import LogOptions

KUBELET_PORT = 10250  # kubelet's --port

HEALTHZ, PODS, LOGS, EXEC, ATTACH, RUN, PORT_FORWARD = (
    "healthz", "pods", "containerLogs", "exec", "attach", "run", "portForward")
_CONTAINER_KINDS = (EXEC, ATTACH, RUN)

# HTTP method to API verb, as kubelet maps them (HEAD and others: no verb)
_VERBS = {"POST": "create", "GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Paths with subresources of their own; everything else is nodes/proxy
_SUBRESOURCE_PATHS = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"))

UNAUTHORIZED = "Unauthorized"


@dataclass(frozen=True)
class Route:
    """What a kubelet path names. uid is "" when the path carries none."""
    kind: str
    namespace: str = ""
    pod: str = ""
    container: str = ""
    uid: str = ""


def parse_route(path: str) -> Route | None:
    """The route a path names, or None (kubelet answers 404)."""
    parts = path.strip("/").split("/")
    head, rest = parts[0], parts[1:]
    if head in (HEALTHZ, PODS) and not rest:
        return Route(head)
    if any(not part for part in rest):
        return None
    if head == LOGS and len(rest) == 3:
        return Route(LOGS, rest[0], rest[1], rest[2])
    if head in _CONTAINER_KINDS and len(rest) in (3, 4):
        uid = rest[2] if len(rest) == 4 else ""
        return Route(head, rest[0], rest[1], rest[-1], uid)
    if head == PORT_FORWARD and len(rest) in (2, 3):
        return Route(PORT_FORWARD, rest[0], rest[1], "", rest[2] if len(rest) == 3 else "")
    return None


@dataclass(frozen=True)
class NodeAttributes:
    """What a kubelet request is, for a SubjectAccessReview: verb on nodes/<subresource> named node."""
    verb: str
    subresource: str
    node: str
    path: str

    def review_spec(self, user: str, groups: tuple[str, ...], uid: str = "") -> dict:
        spec: dict = {"user": user, "groups": list(groups),
                      "resourceAttributes": {"verb": self.verb, "version": "v1", "resource": "nodes",
                                             "subresource": self.subresource, "name": self.node}}
        if uid:
            spec["uid"] = uid
        return spec


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def request_attributes(method: str, path: str, node: str) -> NodeAttributes:
    subresource = next((sub for prefix, sub in _SUBRESOURCE_PATHS if _is_subpath(path, prefix)), "proxy")
    return NodeAttributes(_VERBS.get(method.upper(), ""), subresource, node, path)


def forbidden_message(user: str, attrs: NodeAttributes) -> str:
    return (f"Forbidden (user={user}, verb={attrs.verb}, resource=nodes, "
            f"subresource={attrs.subresource})")


def authorization_error_message(user: str, attrs: NodeAttributes) -> str:
    return (f"Authorization error (user={user}, verb={attrs.verb}, resource=nodes, "
            f"subresource={attrs.subresource})")


# ---------------------------------------------------------------- log options

def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


def log_options(query: Mapping[str, str], now_ns: int | None = None) -> LogOptions:
    """PodLogOptions from a containerLogs query; ValueError on a malformed option."""
    def number(name: str) -> int | None:
        value = query.get(name)
        if value in (None, ""):
            return None
        try:
            parsed = int(value)
        except ValueError:
            raise ValueError(f"invalid {name}: {value!r}") from None
        if parsed < 0:
            raise ValueError(f"{name} must be non-negative: {value!r}")
        return parsed

    since_ns = None
    if (seconds := number("sinceSeconds")) is not None:
        since_ns = (time.time_ns() if now_ns is None else now_ns) - seconds * 1_000_000_000
    elif since_time := query.get("sinceTime"):
        since_ns = unix_ns(since_time)
    return LogOptions(tail_lines=number("tailLines"), timestamps=_flag(query, "timestamps"),
                      limit_bytes=number("limitBytes"), since_ns=since_ns, follow=_flag(query, "follow"))


def previous(query: Mapping[str, str]) -> bool:
    return _flag(query, "previous")


def unix_ns(text: str) -> int:
    """Unix nanoseconds from an RFC 3339 UTC time with 0-9 fraction digits (sinceTime)."""
    whole, _, fraction = text.partition(".")
    if fraction:
        if not fraction.endswith("Z"):
            raise ValueError(f"invalid sinceTime: {text!r}")
        whole, fraction = whole + "Z", fraction[:-1]
    try:
        seconds = int(meta.parse_time(whole).timestamp())
        return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])
    except ValueError:
        raise ValueError(f"invalid sinceTime: {text!r}") from None
