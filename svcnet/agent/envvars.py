"""A container's environment, built as kubelet's makeEnvironmentVariables does (pure).

Declared variables are resolved in order, each value's $(VAR) references
expanding from the variables declared before it and the service variables;
valueFrom reads pod fields, or Secrets and ConfigMaps through a lookup the
caller provides. Service variables nobody overrode are added last.
"""
from __future__ import annotations

import base64
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


def env_sources(container: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, name) of every ConfigMap and Secret the container's env and envFrom read."""
    wanted: set[tuple[str, str]] = set()
    for source in container.get("envFrom") or ():
        for kind, field_name in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if source.get(field_name) is not None:
                wanted.add((kind, source[field_name].get("name", "")))
    for var in container.get("env") or ():
        value_from = var.get("valueFrom") or {}
        for kind, field_name in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if value_from.get(field_name) is not None:
                wanted.add((kind, value_from[field_name].get("name", "")))
    return wanted


def source_data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """What env reads of a ConfigMap (its data) or a Secret (its data, base64-decoded to text, as
    kubelet's string(bytes))."""
    data = obj.get("data") or {}
    if kind != "Secret":
        return {str(k): str(v) for k, v in data.items()}
    return {str(k): base64.b64decode(str(v)).decode("utf-8", errors="replace") for k, v in data.items()}


# Services whose variables every pod gets, from the default namespace, even with enableServiceLinks off.
MASTER_SERVICES = frozenset({"kubernetes"})


def _env_name(text: str) -> str:
    return text.upper().replace("-", "_")


def _service_ip_set(service: Mapping[str, Any]) -> bool:
    ip = spec_of(service).get("clusterIP")
    return bool(ip) and ip != "None"


def _service_variables(service: Mapping[str, Any]) -> dict[str, str]:
    """One Service's variables: kubelet's envvars.FromServices, with Docker's link variables."""
    spec = spec_of(service)
    ports = spec.get("ports") or ()
    ip = str(spec.get("clusterIP"))
    prefix = _env_name(metadata_of(service).get("name", ""))
    out: dict[str, str] = {f"{prefix}_SERVICE_HOST": ip}
    if not ports:
        return out
    out[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
    for port in ports:
        if port.get("name"):
            out[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port.get("port"))
    host = f"[{ip}]" if ":" in ip else ip
    for index, port in enumerate(ports):
        protocol = str(port.get("protocol") or "TCP")
        url = f"{protocol.lower()}://{host}:{port.get('port')}"
        if index == 0:
            out[f"{prefix}_PORT"] = url  # Docker special-cases the first port
        port_prefix = f"{prefix}_PORT_{port.get('port')}_{protocol.upper()}"
        out.update({port_prefix: url, f"{port_prefix}_PROTO": protocol.lower(),
                    f"{port_prefix}_PORT": str(port.get("port")), f"{port_prefix}_ADDR": ip})
    return out


def service_env(services: Sequence[Mapping[str, Any]], namespace: str, enable_service_links: bool
                ) -> dict[str, str]:
    """The service variables of a pod in `namespace`, as kubelet's getServiceEnvVarMap.

    Every pod gets default/kubernetes's (KUBERNETES_SERVICE_HOST/PORT, which in-cluster clients
    read); with enableServiceLinks (the default) also those of every Service of its own namespace
    that has a cluster IP (headless and ExternalName Services have none).
    """
    chosen: dict[str, Mapping[str, Any]] = {}
    for service in services:
        if not _service_ip_set(service):
            continue
        name = metadata_of(service).get("name", "")
        service_namespace = namespace_of(service) or "default"
        if service_namespace == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, service)
        elif service_namespace == namespace and enable_service_links:
            chosen[name] = service
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(_service_variables(chosen[name]))
    return out


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
