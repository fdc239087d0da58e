"""A container's environment, built as kubelet's makeEnvironmentVariables does (pure).

Declared variables are resolved in order, each value's $(VAR) references
expanding from the variables declared before it and the service variables;
valueFrom reads pod fields, or Secrets and ConfigMaps through a lookup the
caller provides. Service variables nobody overrode are added last.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from svcnet.api.objects import metadata_of, namespace_of, spec_of, status_of
from svcnet.runtime.images import ContainerConfigError, expand_references

# (kind "Secret"|"ConfigMap", namespace, name) -> the object's data as text, or None if it does not exist.
KeyRefLookup = Callable[[str, str, str], Mapping[str, str] | None]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def _pod_field(pod: Mapping[str, Any], path: str) -> str:
    meta, spec, status = metadata_of(pod), spec_of(pod), status_of(pod)
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(ip.get("ip", "") for ip in status.get("hostIPs") or ()),
        "status.podIPs": ",".join(ip.get("ip", "") for ip in status.get("podIPs") or ()),
    }
    if path in simple:
        return str(simple[path] or "")
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{key}="{value}"' for key, value in sorted(items.items()))
    raise ContainerConfigError(f'unsupported fieldPath: "{path}"')


def _key_ref(kind: str, ref: Mapping[str, Any], namespace: str, lookup: KeyRefLookup | None) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    data = lookup(kind, namespace, name) if lookup else None
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], *,
                  service_env: Mapping[str, str] | None = None,
                  lookup: KeyRefLookup | None = None) -> tuple[tuple[str, str], ...]:
    """The container's variables in kubelet's order (envFrom, env, then remaining service variables)."""
    namespace = namespace_of(pod) or "default"
    service_env = dict(service_env or {})
    declared: dict[str, str] = {}

    for source in container.get("envFrom") or ():
        prefix = source.get("prefix") or ""
        for kind, field_name in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field_name)
            if ref is None:
                continue
            data = lookup(kind, namespace, ref.get("name", "")) if lookup else None
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for key, value in data.items():
                declared[prefix + key] = value

    for var in container.get("env") or ():
        name = var.get("name", "")
        value_from = var.get("valueFrom")
        if value_from is None:
            mapping = {**service_env, **declared}  # declared names shadow service ones
            declared[name] = expand_references(str(var.get("value") or ""), mapping)
            continue
        value: str | None
        if "fieldRef" in value_from:
            value = _pod_field(pod, value_from["fieldRef"].get("fieldPath", ""))
        elif "secretKeyRef" in value_from:
            value = _key_ref("Secret", value_from["secretKeyRef"], namespace, lookup)
        elif "configMapKeyRef" in value_from:
            value = _key_ref("ConfigMap", value_from["configMapKeyRef"], namespace, lookup)
        else:
            raise ContainerConfigError(f'unsupported valueFrom for env "{name}"')
        if value is not None:
            declared[name] = value

    result = dict(declared)
    for name, value in service_env.items():
        result.setdefault(name, value)
    return tuple(result.items())


def process_env(container_vars: Sequence[tuple[str, str]], image_env: Sequence[tuple[str, str]],
                hostname: str) -> dict[str, str]:
    """The whole environment the process starts with: image defaults, then the container's variables."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    env.update(image_env)
    env.update(container_vars)
    return env
