"""HTTP edges of the API server: request paths, content negotiation, bodies.

Pure functions over strings and bytes, so the routing and codec rules are
tested without a socket.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from svcnet.api import errors, jsoncodec
from svcnet.api.resources import Resource, lookup
from svcnet.apiserver import protobuf, yamlbody
from svcnet.apiserver.jsonbody import NestingTooDeep, check_depth, load_json_strict

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

# The largest request body, as kube-apiserver's MaxRequestBodyBytes (apiserver pkg/server/config.go,
# NewConfig: twice etcd's 1.5 MiB request limit, a body being JSON and stored as protobuf). Every
# body is read through aiohttp's client_max_size (app.py), so create, update, every patch, the
# subresources and delete options are all bounded, as upstream's limitedReadBody bounds each
# handler (apiserver pkg/endpoints/handlers/rest.go).
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024


def body_too_large() -> errors.ApiError:
    """limitedReadBody's answer: 413 RequestEntityTooLarge, "limit is 3145728"."""
    return errors.request_entity_too_large(f"limit is {MAX_REQUEST_BODY_BYTES}")


@dataclass(frozen=True)
class ResourcePath:
    """A parsed /api/v1/... or /apis/g/v/... path."""

    resource: Resource
    namespace: str | None  # None: cluster-scoped or all namespaces
    name: str | None
    subresource: str | None

    @property
    def is_collection(self) -> bool:
        return self.name is None


def parse_resource_path(path: str) -> ResourcePath | None:
    """Return the parsed path, None when it is not a resource path at all.

    Raises NotFound for paths under a known group-version that name no resource.
    """
    segments = [s for s in path.split("/") if s]
    if len(segments) >= 2 and segments[0] == "api":
        group, version, rest = "", segments[1], segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == "watch":  # legacy /api/v1/watch/... form: same as ?watch=true
        rest = rest[1:]
        if not rest:
            return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    res = lookup(group, version, plural)
    # a proxy subresource's path goes on: /api/v1/nodes/NAME/proxy/PATH...
    if res is None or (len(rest) > 3 and rest[2] != "proxy"):
        raise errors.path_not_found()
    if namespace is not None and not res.namespaced:
        raise errors.path_not_found()
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) >= 3 else None
    if sub is not None and res.subresource(sub) is None:
        raise errors.path_not_found()
    return ResourcePath(res, namespace, name, sub)


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict[str, str]


def parse_accept(header: str | None) -> list[MediaRange]:
    ranges: list[MediaRange] = []
    for part in (header or "").split(","):
        part = part.strip()
        if not part:
            continue
        fields = [f.strip() for f in part.split(";")]
        params: dict[str, str] = {}
        for f in fields[1:]:
            if "=" in f:
                k, v = f.split("=", 1)
                params[k.strip()] = v.strip()
        ranges.append(MediaRange(fields[0].lower(), params))
    return ranges


@dataclass(frozen=True)
class ResponseFormat:
    """What the client asked to get back."""

    as_kind: str | None  # None (the object itself), "Table", "PartialObjectMetadata[List]"
    content_type: str
    yaml: bool = False


def negotiate(accept: str | None) -> ResponseFormat:
    """Pick the first acceptable representation, as kube-apiserver's negotiation does."""
    ranges = parse_accept(accept)
    if not ranges:
        return ResponseFormat(None, JSON)
    for r in ranges:
        as_kind = r.params.get("as")
        if r.type in (JSON, "application/*", "*/*"):
            if as_kind == "Table" and r.params.get("g") == "meta.k8s.io" and \
                    r.params.get("v") in ("v1", "v1beta1"):
                return ResponseFormat("Table", f"{JSON};as=Table;v=v1;g=meta.k8s.io")
            if as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList") and \
                    r.params.get("g") == "meta.k8s.io":
                return ResponseFormat(as_kind, f"{JSON};as={as_kind};v=v1;g=meta.k8s.io")
            if as_kind is None:
                return ResponseFormat(None, JSON)
        elif r.type == YAML and "as" not in r.params:
            return ResponseFormat(None, YAML, yaml=True)
    raise errors.not_acceptable(
        "only the following media types are accepted: application/json, application/yaml, "
        "application/json;as=Table;v=v1;g=meta.k8s.io")


@dataclass(frozen=True)
class DecodedBody:
    value: Any
    duplicate_fields: list[str]


def decode_body(content_type: str | None, raw: bytes) -> DecodedBody:
    """Decode a request body as kube-apiserver accepts it (JSON, YAML, or protobuf for known kinds).

    The one decoder of every request body, bounded: at most MAX_REQUEST_BODY_BYTES (the caller
    read it so), nested at most MAX_NESTING_DEPTH deep, and for YAML within yamlbody's bounds on
    alias expansion and size. A body over a bound is a 400 (413 for too many YAML nodes) and
    nothing of it reaches the registry.
    """
    if len(raw) > MAX_REQUEST_BODY_BYTES:
        raise body_too_large()
    media = (content_type or JSON).split(";")[0].strip().lower()
    if media == PROTOBUF:
        try:
            value = protobuf.decode_object(raw)
            check_depth(value)
            return DecodedBody(value, [])
        except protobuf.UnsupportedKind as exc:
            raise errors.unsupported_media_type(
                'the body of the request was in an unknown format - accepted media types include: '
                f'application/json, application/yaml (svcnet does not decode protobuf {exc.kind} '
                'bodies; use "kubectl apply -f FILE" or "kubectl create -f FILE" instead)') from None
        except (RecursionError, NestingTooDeep):
            raise errors.bad_request(f"protobuf: {NestingTooDeep()}") from None
    if not raw.strip():
        raise errors.bad_request("the body of the request was empty")
    if media in (YAML, APPLY_PATCH, "application/x-yaml", "text/yaml"):
        try:
            return DecodedBody(yamlbody.load(raw.decode("utf-8"), MAX_REQUEST_BODY_BYTES), [])
        except yamlbody.TooManyNodes as exc:
            raise errors.request_entity_too_large(f"error converting YAML to JSON: yaml: {exc}") from None
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {yamlbody.one_line(exc)}") from None
        except UnicodeDecodeError as exc:
            raise errors.bad_request(f"error converting YAML to JSON: yaml: {exc}") from None
    if media in (JSON, MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, "*/*", ""):
        try:
            value, duplicates = load_json_strict(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        return DecodedBody(value, duplicates)
    raise errors.unsupported_media_type(
        'the body of the request was in an unknown format - accepted media types include: '
        'application/json, application/yaml, application/vnd.kubernetes.protobuf'
        if media not in PATCH_TYPES else f"unsupported media type {media}")


def encode(value: Any, fmt: ResponseFormat) -> bytes:
    if fmt.yaml:
        return encode_yaml(value)
    return jsoncodec.dumps(value)


def encode_yaml(value: Any) -> bytes:
    """value as YAML; as JSON (which is YAML) where PyYAML cannot go.

    PyYAML's representer and serializer recurse about three frames per level, so an object
    stored before MAX_NESTING_DEPTH existed (or a list of them) can be too deep for it; the
    same value as JSON is still a YAML document, and kube-apiserver would have answered it.
    """
    try:
        return yaml.safe_dump(value, sort_keys=False).encode()
    except RecursionError:
        return jsoncodec.dumps(value) + b"\n"
