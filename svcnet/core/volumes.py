"""Pod volumes as kubelet builds them, as pure functions of the pod and the objects it names.

What a volume projects (pkg/volume/configmap, secret, downwardapi, projected: each plugin's
MakePayload), which modes the files get, which paths are allowed (the atomic writer's
validatePath) and what a volumeMount asks of the pod's mount namespace. No I/O: the agent fetches
the ConfigMaps, Secrets and tokens, the runtime writes the files (runtime/atomicwriter.py) and
mounts them (kernel/mounts.py).
"""
from __future__ import annotations

import base64
import json
import math
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from svcnet.api.objects import metadata_of, spec_of
from svcnet.core.scheduling import parse_quantity

Obj = dict[str, Any]

# The API's default for every defaultMode/mode left unset (0644, written 420 in JSON).
DEFAULT_MODE = 0o644
MAX_PATH_LENGTH = 4096
MAX_SEGMENT_LENGTH = 255
# What the ServiceAccount admission plugin mounts in every container (unless automount is off).
SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
API_ACCESS_VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
# kubeadm's and the admission plugin's token lifetime: an hour and 7 s, so a token's age tells
# the API server it came from a kubelet (it is then extended, and warned about when used late).
SERVICE_ACCOUNT_TOKEN_SECONDS = 3607

# The directory kubelet keeps each volume plugin's volumes in: pods/<uid>/volumes/<plugin>/<name>.
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# Volumes whose files the agent writes (kubelet mounts these read-only whatever the volumeMount says).
WRITTEN_KINDS = ("configMap", "secret", "downwardAPI", "projected")


class VolumeError(ValueError):
    """A volume cannot be set up; the message says why (it becomes a FailedMount event)."""


@dataclass(frozen=True)
class FileToWrite:
    data: bytes
    mode: int


Payload = dict[str, FileToWrite]


@dataclass(frozen=True)
class TokenRef:
    """A serviceAccountToken projection: what the agent asks TokenRequest for."""

    audience: str  # "" for the API server's own audiences
    expiration_seconds: int


# (kind "ConfigMap"|"Secret", name) -> the object, or None if it does not exist.
ObjectLookup = Callable[[str, str], Mapping[str, Any] | None]
TokenLookup = Callable[[TokenRef], str]


# ------------------------------------------------------------------ paths
def validate_path(path: str) -> None:
    """A path inside a volume: relative, no `..` element, not beginning with `..` (the writer's own names)."""
    if not path:
        raise VolumeError("invalid path: must not be empty")
    if len(path) > MAX_PATH_LENGTH:
        raise VolumeError(f"invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")
    if posixpath.isabs(path):
        raise VolumeError(f"invalid path: must be relative path: {path}")
    for segment in path.split("/"):
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise VolumeError(f"invalid path: segments must be less than or equal to {MAX_SEGMENT_LENGTH} characters")
    if ".." in path.split("/"):
        raise VolumeError(f"invalid path: must not contain '..': {path}")
    if path.startswith(".."):
        raise VolumeError(f"invalid path: must not start with '..': {path}")


def top_level_names(payload: Mapping[str, FileToWrite]) -> set[str]:
    """The names the writer links into the volume's root (each → ..data/<name>)."""
    return {path.split("/", 1)[0] for path in payload}


def validate_payload(payload: Mapping[str, FileToWrite]) -> Payload:
    """The payload with clean paths; a path that is invalid or a file inside another file is refused."""
    clean: Payload = {}
    for path, item in payload.items():
        validate_path(path)
        clean[posixpath.normpath(path)] = item
    for path in clean:
        parent = posixpath.dirname(path)
        while parent:
            if parent in clean:
                raise VolumeError(f"invalid path: {path} is inside the file {parent}")
            parent = posixpath.dirname(parent)
    return clean


# ------------------------------------------------------------------ sources
def _mode(value: Any, default: int) -> int:
    return default if value is None else int(value)


def configmap_bytes(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's keys: data as UTF-8 text, binaryData decoded."""
    out = {str(k): str(v).encode() for k, v in (obj.get("data") or {}).items()}
    out.update({str(k): base64.b64decode(str(v)) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def secret_bytes(obj: Mapping[str, Any]) -> dict[str, bytes]:
    return {str(k): base64.b64decode(str(v)) for k, v in (obj.get("data") or {}).items()}


def _keyed_payload(kind: str, source: Mapping[str, Any], lookup: ObjectLookup, default_mode: int) -> Payload:
    """configMap and secret (as volumes or projections): all keys, or the items' key→path with modes."""
    name = str(source.get("name") or source.get("secretName") or "")
    optional = bool(source.get("optional"))
    obj = lookup(kind, name)
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    data = configmap_bytes(obj) if kind == "ConfigMap" else secret_bytes(obj)
    items = source.get("items") or []
    if not items:
        return {key: FileToWrite(value, default_mode) for key, value in data.items()}
    payload: Payload = {}
    for item in items:
        key = str(item.get("key") or "")
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"{kind.lower()} references non-existent {'config' if kind == 'ConfigMap' else 'secret'}"
                              f" key: {key}")
        payload[str(item.get("path") or "")] = FileToWrite(data[key], _mode(item.get("mode"), default_mode))
    return payload


def format_map(values: Mapping[str, Any]) -> str:
    """Labels or annotations as the downward API writes them: sorted `key="value"` lines, Go-quoted."""
    return "\n".join(f"{key}={json.dumps(str(value), ensure_ascii=False)}" for key, value in sorted(values.items()))


def field_value(pod: Mapping[str, Any], path: str) -> str:
    meta = metadata_of(pod)
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace") or "default",
              "metadata.uid": meta.get("uid")}
    if path in simple:
        return str(simple[path] or "")
    for field in ("labels", "annotations"):
        if path == f"metadata.{field}":
            return format_map(meta.get(field) or {})
        prefix = f"metadata.{field}['"
        if path.startswith(prefix) and path.endswith("']"):
            return str((meta.get(field) or {}).get(path[len(prefix):-2], ""))
    raise VolumeError(f'unsupported fieldPath in a downwardAPI volume: "{path}"')


def resource_value(pod: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, Any]) -> str:
    """limits/requests of a container, divided by the divisor and rounded up; an unset limit is the
    node's allocatable (kubelet's defaulting of limits for the downward API)."""
    name, resource = str(ref.get("containerName") or ""), str(ref.get("resource") or "")
    container = next((c for c in (spec_of(pod).get("containers") or []) + (spec_of(pod).get("initContainers") or [])
                      if c.get("name") == name), None)
    if container is None:
        raise VolumeError(f'resourceFieldRef: container "{name}" not found in the pod')
    kind, _, what = resource.partition(".")
    if kind not in ("limits", "requests") or what not in ("cpu", "memory", "ephemeral-storage"):
        raise VolumeError(f'unsupported resource in resourceFieldRef: "{resource}"')
    value = ((container.get("resources") or {}).get(kind) or {}).get(what)
    quantity = parse_quantity(value) if value is not None else (
        parse_quantity(allocatable[what]) if kind == "limits" and what in allocatable else Fraction(0))
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor <= 0:
        raise VolumeError(f"resourceFieldRef: invalid divisor {ref.get('divisor')!r}")
    return str(math.ceil(quantity / divisor))


def _downward_payload(pod: Mapping[str, Any], items: Sequence[Mapping[str, Any]], default_mode: int,
                      allocatable: Mapping[str, Any]) -> Payload:
    payload: Payload = {}
    for item in items:
        if item.get("fieldRef"):
            text = field_value(pod, str(item["fieldRef"].get("fieldPath") or ""))
        elif item.get("resourceFieldRef"):
            text = resource_value(pod, item["resourceFieldRef"], allocatable)
        else:
            raise VolumeError(f"downwardAPI item {item.get('path')!r} has neither fieldRef nor resourceFieldRef")
        payload[str(item.get("path") or "")] = FileToWrite(text.encode(), _mode(item.get("mode"), default_mode))
    return payload


def token_ref(projection: Mapping[str, Any]) -> TokenRef:
    return TokenRef(str(projection.get("audience") or ""),
                    int(projection.get("expirationSeconds") or SERVICE_ACCOUNT_TOKEN_SECONDS))


def _projected_payload(pod: Mapping[str, Any], source: Mapping[str, Any], lookup: ObjectLookup,
                       tokens: TokenLookup, allocatable: Mapping[str, Any]) -> Payload:
    default_mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
    payload: Payload = {}
    for projection in source.get("sources") or []:
        if projection.get("configMap") is not None:
            payload.update(_keyed_payload("ConfigMap", projection["configMap"], lookup, default_mode))
        elif projection.get("secret") is not None:
            payload.update(_keyed_payload("Secret", projection["secret"], lookup, default_mode))
        elif projection.get("downwardAPI") is not None:
            payload.update(_downward_payload(pod, projection["downwardAPI"].get("items") or [], default_mode,
                                             allocatable))
        elif projection.get("serviceAccountToken") is not None:
            token = projection["serviceAccountToken"]
            payload[str(token.get("path") or "")] = FileToWrite(tokens(token_ref(token)).encode(), default_mode)
        else:
            raise VolumeError("projected volume source of an unsupported kind: "
                              f"{', '.join(sorted(projection)) or 'empty'}")
    return payload


def volume_kind(volume: Mapping[str, Any]) -> str:
    for kind in PLUGIN_DIRS:
        if volume.get(kind) is not None:
            return kind
    others = sorted(k for k in volume if k != "name")
    raise VolumeError(f'volume "{volume.get("name")}": unsupported volume type {", ".join(others) or "(none)"}')


def payload_of(pod: Mapping[str, Any], volume: Mapping[str, Any], lookup: ObjectLookup, tokens: TokenLookup,
               allocatable: Mapping[str, Any] | None = None) -> Payload:
    """The files a configMap, secret, downwardAPI or projected volume holds now (paths validated)."""
    kind = volume_kind(volume)
    source = volume[kind]
    allocatable = allocatable or {}
    if kind in ("configMap", "secret"):
        payload = _keyed_payload("ConfigMap" if kind == "configMap" else "Secret", source, lookup,
                                 _mode(source.get("defaultMode"), DEFAULT_MODE))
    elif kind == "downwardAPI":
        payload = _downward_payload(pod, source.get("items") or [], _mode(source.get("defaultMode"), DEFAULT_MODE),
                                    allocatable)
    elif kind == "projected":
        payload = _projected_payload(pod, source, lookup, tokens, allocatable)
    else:
        raise VolumeError(f'volume "{volume.get("name")}" of kind {kind} has no files to write')
    return validate_payload(payload)


def referenced_objects(volume: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, name) of the ConfigMaps and Secrets a volume reads."""
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if volume.get("configMap") is not None:
        sources.append(("ConfigMap", volume["configMap"]))
    if volume.get("secret") is not None:
        sources.append(("Secret", volume["secret"]))
    for projection in (volume.get("projected") or {}).get("sources") or []:
        for field, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
            if projection.get(field) is not None:
                sources.append((kind, projection[field]))
    return {(kind, str(s.get("name") or s.get("secretName") or "")) for kind, s in sources}


def empty_dir_limit(volume: Mapping[str, Any]) -> int | None:
    """A memory-backed emptyDir's tmpfs size in bytes (None: not memory-backed; 0: no limit given)."""
    source = volume.get("emptyDir") or {}
    if source.get("medium") != "Memory":
        return None
    limit = source.get("sizeLimit")
    return int(parse_quantity(limit)) if limit is not None else 0


# ------------------------------------------------------------------ mounts
@dataclass(frozen=True)
class MountRequest:
    """A path of the pod's mount namespace and the volume (sub)path mounted there."""

    volume: str
    target: str  # absolute, normalised
    sub_path: str  # "" for the whole volume
    read_only: bool


def _check_mount_path(path: str, container: str) -> str:
    if not path.startswith("/"):
        raise VolumeError(f'container "{container}": mountPath must be absolute: "{path}"')
    clean = posixpath.normpath(path)
    if clean == "/" or ".." in path.split("/"):
        raise VolumeError(f'container "{container}": invalid mountPath "{path}"')
    return clean


def _check_sub_path(path: str, container: str) -> str:
    if not path:
        return ""
    if posixpath.isabs(path) or ".." in path.split("/"):
        raise VolumeError(f'container "{container}": subPath must be a relative path without "..": "{path}"')
    return posixpath.normpath(path)


def mount_requests(pod: Mapping[str, Any]) -> list[MountRequest]:
    """Every container's volumeMounts in the pod's one mount namespace, sorted parent first.

    All containers of an svcnet pod share its mount namespace, so two containers mounting different
    volumes (or subPaths) at one path cannot both be honoured: that is refused, naming both."""
    spec = spec_of(pod)
    volumes = {str(v.get("name")): v for v in spec.get("volumes") or []}
    chosen: dict[str, tuple[MountRequest, str]] = {}
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        cname = str(container.get("name") or "")
        for mount in container.get("volumeMounts") or []:
            name = str(mount.get("name") or "")
            volume = volumes.get(name)
            if volume is None:
                raise VolumeError(f'container "{cname}": volumeMount of unknown volume "{name}"')
            kind = volume_kind(volume)
            request = MountRequest(name, _check_mount_path(str(mount.get("mountPath") or ""), cname),
                                   _check_sub_path(str(mount.get("subPath") or ""), cname),
                                   # kubelet mounts API data volumes read-only whatever the mount says
                                   bool(mount.get("readOnly")) or kind in WRITTEN_KINDS)
            previous = chosen.get(request.target)
            if previous is not None and (previous[0].volume, previous[0].sub_path) != (name, request.sub_path):
                raise VolumeError(f'containers "{previous[1]}" and "{cname}" mount different volumes at '
                                  f'{request.target}; svcnet pods share one mount namespace')
            if previous is None or not request.read_only:  # one writable mount makes the shared path writable
                chosen[request.target] = (request, cname)
    return sorted((r for r, _ in chosen.values()), key=lambda r: (r.target.count("/"), r.target))


def used_volumes(pod: Mapping[str, Any]) -> list[Obj]:
    """The pod's volumes some container mounts (only those are set up, as kubelet)."""
    mounted = {r.volume for r in mount_requests(pod)}
    return [v for v in spec_of(pod).get("volumes") or [] if v.get("name") in mounted]


# ------------------------------------------------------------------ the API-access volume
def api_access_volume(name: str) -> Obj:
    """The projected volume the ServiceAccount admission plugin adds: token, ca.crt and namespace."""
    return {"name": name, "projected": {"defaultMode": DEFAULT_MODE, "sources": [
        {"serviceAccountToken": {"expirationSeconds": SERVICE_ACCOUNT_TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def mounts_service_account_token(pod: Mapping[str, Any], service_account: Mapping[str, Any] | None) -> bool:
    """automountServiceAccountToken: the pod's setting wins, then the ServiceAccount's, then true."""
    pod_setting = spec_of(pod).get("automountServiceAccountToken")
    if pod_setting is not None:
        return bool(pod_setting)
    if service_account is not None and service_account.get("automountServiceAccountToken") is not None:
        return bool(service_account["automountServiceAccountToken"])
    return True


def add_api_access(pod: Obj, volume_name: str) -> None:
    """Mount the API-access volume read-only in every container that does not mount something at the
    token path already (the admission plugin leaves those alone), and add the volume if any does."""
    spec = pod.setdefault("spec", {})
    for volume in spec.get("volumes") or []:
        if str(volume.get("name") or "").startswith(API_ACCESS_VOLUME_PREFIX):
            volume_name = volume["name"]
            break
    added = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            mounts = container.get("volumeMounts") or []
            if any(posixpath.normpath(str(m.get("mountPath") or "")) == SERVICE_ACCOUNT_MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": volume_name, "readOnly": True,
                                                   "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]
            added = True
    volumes = spec.get("volumes") or []
    if added and not any(v.get("name") == volume_name for v in volumes):
        spec["volumes"] = [*volumes, api_access_volume(volume_name)]
