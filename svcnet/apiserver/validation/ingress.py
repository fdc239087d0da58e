"""networking.k8s.io/v1 Ingress and IngressClass validation (pkg/apis/networking/validation)."""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from svcnet.api.errors import Cause
from svcnet.api.selectors import dns1123_subdomain_errors

from .fields import (
    Obj,
    as_dict,
    as_list,
    as_str,
    dns1035_label_errors,
    each_error,
    immutable,
    invalid,
    not_supported,
    port_name_errors,
    port_number_errors,
    required,
    validate_dns1123_subdomain,
)

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
# Sequences a path of type Exact or Prefix may not hold (invalidPathSequences, invalidPathSuffixes).
_INVALID_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_SUFFIXES = ("/..", "/.")
_WILDCARD_RE = re.compile(r"^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
                 "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
                 "alphanumeric character (e.g. '*.example.com', regex used for validation is "
                 r"'\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_CONTROLLER_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[^/].*$")
MAX_CONTROLLER_LENGTH = 250


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _host_errors(host: str, path: str) -> list[Cause]:
    if _is_ip(host):
        return [invalid(path, host, "must be a DNS name, not an IP address")]
    if host.startswith("*"):
        return [] if _WILDCARD_RE.match(host) else [invalid(path, host, _WILDCARD_MSG)]
    return each_error(path, host, dns1123_subdomain_errors(host))


def _service_backend(service: Obj, path: str) -> list[Cause]:
    errs: list[Cause] = []
    name = as_str(service.get("name"))
    if not name:
        errs.append(required(f"{path}.service.name"))
    else:
        errs.extend(each_error(f"{path}.service.name", name, dns1035_label_errors(name)))
    port = as_dict(service.get("port"))
    port_name, port_number = as_str(port.get("name")), port.get("number") or 0
    if port_name and port_number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errs.extend(each_error(f"{path}.service.port.name", port_name, port_name_errors(port_name)))
    elif port_number:
        errs.extend(each_error(f"{path}.service.port.number", port_number, port_number_errors(port_number)))
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _backend(backend: Any, path: str) -> list[Cause]:
    backend = as_dict(backend)
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        ref = as_dict(resource)
        errs = [required(f"{path}.resource.{k}") for k in ("kind", "name") if not ref.get(k)]
        return errs
    if service is not None:
        return _service_backend(as_dict(service), path)
    return [invalid(path, "", "resource or service backend is required")]


def _http_path(item: Obj, path: str) -> list[Cause]:
    errs: list[Cause] = []
    path_type = item.get("pathType")
    value = as_str(item.get("path"))
    if not path_type:
        errs.append(required(f"{path}.pathType", "pathType must be specified"))
    elif path_type not in PATH_TYPES:
        errs.append(not_supported(f"{path}.pathType", path_type, PATH_TYPES))
    elif path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
        errs.extend(invalid(f"{path}.path", value, f"must not contain '{seq}'")
                    for seq in _INVALID_SEQUENCES if seq in value)
        errs.extend(invalid(f"{path}.path", value, f"must not end with '{suffix}'")
                    for suffix in _INVALID_SUFFIXES if value.endswith(suffix))
    elif value and not value.startswith("/"):
        errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
    errs.extend(_backend(item.get("backend"), f"{path}.backend"))
    return errs


def _rules(rules: list[Any]) -> list[Cause]:
    errs: list[Cause] = []
    for i, rule in enumerate(rules):
        path = f"spec.rules[{i}]"
        rule = as_dict(rule)
        if rule.get("host"):
            errs.extend(_host_errors(as_str(rule["host"]), f"{path}.host"))
        if rule.get("http") is not None:
            paths = as_list(as_dict(rule["http"]).get("paths"))
            if not paths:
                errs.append(required(f"{path}.http.paths"))
            for j, item in enumerate(paths):
                errs.extend(_http_path(as_dict(item), f"{path}.http.paths[{j}]"))
    return errs


def _tls(entries: list[Any]) -> list[Cause]:
    errs: list[Cause] = []
    for i, entry in enumerate(entries):
        entry = as_dict(entry)
        for j, host in enumerate(as_list(entry.get("hosts"))):
            errs.extend(_host_errors(as_str(host), f"spec.tls[{i}].hosts[{j}]"))
        if entry.get("secretName"):
            errs.extend(validate_dns1123_subdomain(as_str(entry["secretName"]), f"spec.tls[{i}].secretName"))
    return errs


def validate_ingress(ingress: Obj, old: Obj | None) -> list[Cause]:
    del old  # an Ingress's spec may change freely
    spec = as_dict(ingress.get("spec"))
    rules = as_list(spec.get("rules"))
    errs: list[Cause] = []
    if spec.get("defaultBackend") is None and not rules:
        errs.append(invalid("spec", "", "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        errs.extend(_backend(spec["defaultBackend"], "spec.defaultBackend"))
    errs.extend(_rules(rules))
    errs.extend(_tls(as_list(spec.get("tls"))))
    if spec.get("ingressClassName"):
        errs.extend(validate_dns1123_subdomain(as_str(spec["ingressClassName"]), "spec.ingressClassName"))
    return errs


def _parameters(params: Obj) -> list[Cause]:
    path = "spec.parameters"
    errs = [required(f"{path}.{k}") for k in ("kind", "name") if not params.get(k)]
    scope = params.get("scope")
    namespace = params.get("namespace")
    if scope is None:
        return errs
    if scope not in ("Cluster", "Namespace"):
        errs.append(not_supported(f"{path}.scope", scope, ("Cluster", "Namespace")))
    elif scope == "Namespace" and not namespace:
        errs.append(required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
    elif scope == "Cluster" and namespace:
        errs.append(Cause(f"{path}.namespace",
                          "Forbidden: `parameters.scope` is set to 'Cluster'", "FieldValueForbidden"))
    return errs


def validate_ingress_class(ingress_class: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(ingress_class.get("spec"))
    controller = as_str(spec.get("controller"))
    errs: list[Cause] = []
    if not controller:
        errs.append(required("spec.controller"))
    elif len(controller) > MAX_CONTROLLER_LENGTH:
        errs.append(Cause("spec.controller", f"Too long: may not be more than {MAX_CONTROLLER_LENGTH} bytes",
                          "FieldValueTooLong"))
    elif not _CONTROLLER_RE.match(controller):
        errs.append(invalid("spec.controller", controller,
                            'must be a domain-prefixed path (such as "acme.io/foo")'))
    if spec.get("parameters") is not None:
        errs.extend(_parameters(as_dict(spec["parameters"])))
    if old is not None:
        old_controller = as_str(as_dict(old.get("spec")).get("controller"))
        if controller != old_controller:
            errs.append(immutable("spec.controller", controller))
    return errs
