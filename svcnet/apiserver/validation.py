"""Validation of svcnet's API kinds, worded as kube-apiserver's field.ErrorList.

`validate(kind, obj, old)` returns Causes whose `field` is the path
(`spec.ports[0].port`) and whose `message` is the rest of upstream's error
(`Invalid value: 70000: must be between 1 and 65535, inclusive`), so
`errors.invalid(kind, name, causes)` prints what kubectl users know.

It expects defaulted objects (run `defaults.apply_defaults` first), as upstream
validates after defaulting. Rules and wording follow
pkg/apis/core/validation, pkg/apis/apps/validation,
pkg/apis/discovery/validation and pkg/apis/coordination/validation.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from svcnet.api.errors import ApiError, Cause
from svcnet.api.resources import RESOURCES
from svcnet.api.selectors import (
    DNS1123_LABEL_FMT,
    dns1123_subdomain_errors,
    go_quote,
    label_key_errors,
    label_selector_from_object,
    label_value_errors,
    max_len_error,
    regex_error,
)

Obj = dict[str, Any]
NameFn = Callable[[str, bool], list[str]]

# --- Go value rendering -------------------------------------------------------


class GoLiteral(str):
    """Text already in Go's %#v form; printed verbatim as a bad value."""


def go_value(value: Any) -> str:
    """How field.Error prints a bad value (%v for scalars, %q strings, %#v the rest)."""
    if isinstance(value, GoLiteral):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, Mapping):
        return go_string_map(value)
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return go_string_slice(value)
        return "[]interface {}{" + ", ".join(go_value(v) for v in value) + "}"
    return str(value)


def go_string_map(value: Mapping[str, Any] | None) -> str:
    if value is None:
        return "map[string]string(nil)"
    items = ", ".join(f"{go_quote(str(k))}:{go_quote(str(v))}" for k, v in sorted(value.items()))
    return f"map[string]string{{{items}}}"


def go_string_slice(value: list[Any] | tuple[Any, ...] | None) -> str:
    if value is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(str(v)) for v in value) + "}"


def go_int_or_string(value: Any) -> GoLiteral:
    if isinstance(value, str):
        return GoLiteral(f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}')
    return GoLiteral(f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}')


def go_label_selector(selector: Mapping[str, Any] | None) -> GoLiteral:
    """A metav1.LabelSelector as %#v prints it (upstream passes the dereferenced struct)."""
    selector = selector or {}
    labels = selector.get("matchLabels")
    exprs = selector.get("matchExpressions")
    if exprs:
        rendered = ", ".join(
            f'v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get("key", "")))}, '
            f'Operator:{go_quote(str(e.get("operator", "")))}, Values:{go_string_slice(e.get("values"))}}}'
            for e in exprs if isinstance(e, Mapping))
        exprs_text = f"[]v1.LabelSelectorRequirement{{{rendered}}}"
    else:
        exprs_text = "[]v1.LabelSelectorRequirement(nil)"
    labels_text = go_string_map(labels if labels else None)
    return GoLiteral(f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{exprs_text}}}")


# --- field.Error builders -----------------------------------------------------

def invalid(path: str, value: Any, detail: str = "") -> Cause:
    message = f"Invalid value: {go_value(value)}"
    return Cause(path, f"{message}: {detail}" if detail else message, "FieldValueInvalid")


def required(path: str, detail: str = "") -> Cause:
    return Cause(path, f"Required value: {detail}" if detail else "Required value", "FieldValueRequired")


def forbidden(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", "FieldValueForbidden")


def not_supported(path: str, value: Any, supported: list[str] | tuple[str, ...]) -> Cause:
    choices = ", ".join(go_quote(s) for s in supported)
    return Cause(path, f"Unsupported value: {go_value(value)}: supported values: {choices}",
                 "FieldValueNotSupported")


def duplicate(path: str, value: Any, detail: str = "") -> Cause:
    message = f"Duplicate value: {go_value(value)}"
    return Cause(path, f"{message}: {detail}" if detail else message, "FieldValueDuplicate")


def too_long(path: str, limit: int) -> Cause:
    return Cause(path, f"Too long: may not be more than {limit} bytes", "FieldValueTooLong")


def too_many(path: str, actual: int, limit: int) -> Cause:
    return Cause(path, f"Too many: {actual}: must have at most {limit} items", "FieldValueTooMany")


def immutable(path: str, new: Any) -> Cause:
    return invalid(path, new, "field is immutable")


def nonnegative(value: Any, path: str) -> list[Cause]:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


# --- syntax checks (message lists, as apimachinery's Is* functions) ----------

_DNS1123_LABEL_RE = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                      "or '-', and must start and end with an alphanumeric character")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def dns1123_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL_RE.match(value):
        if _SUBDOMAIN_RE.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def port_number_errors(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def port_name_errors(name: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 of [-a-z0-9], a letter, no leading/trailing/double hyphen."""
    errs = []
    if len(name) > 15:
        errs.append(max_len_error(15))
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        # Go's ParseIPSloppy accepts leading zeros in IPv4 octets; so do we.
        parts = value.split(".")
        if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
            try:
                return ipaddress.ip_address(".".join(str(int(p)) for p in parts))
            except ValueError:
                return None
        return None


def ip_errors(path: str, value: str) -> list[Cause]:
    if _parse_ip(value) is None:
        return [invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def cidr_errors(path: str, value: str) -> list[Cause]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    return [] if "/" in value else [
        invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]


def non_special_ip_errors(path: str, value: str) -> list[Cause]:
    ip = _parse_ip(value)
    if ip is None:
        return [invalid(path, value, "must be a valid IP address")]
    errs = []
    if ip.is_unspecified:
        errs.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        errs.append(invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip in ipaddress.ip_network("169.254.0.0/16") or ip in ipaddress.ip_network("fe80::/10"):
        errs.append(invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if ip in ipaddress.ip_network("224.0.0.0/24") or ip in ipaddress.ip_network("ff02::/16"):
        errs.append(invalid(path, value,
                            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


def _each(path: str, value: str, messages: list[str]) -> list[Cause]:
    return [invalid(path, value, m) for m in messages]


def validate_dns1123_label(value: str, path: str) -> list[Cause]:
    return _each(path, value, dns1123_label_errors(value))


def validate_dns1123_subdomain(value: str, path: str) -> list[Cause]:
    return _each(path, value, dns1123_subdomain_errors(value))


def validate_port_num_or_name(value: Any, path: str) -> list[Cause]:
    if value is None:
        value = 0  # an unset IntOrString is the integer zero
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [invalid(path, value, "must be an integer or a port name")]
    if isinstance(value, int):
        return _each(path, value, port_number_errors(value))  # type: ignore[arg-type]
    return _each(path, value, port_name_errors(value))


# --- name functions (ValidateNameFunc: prefix=True for generateName) ---------

def _mask_trailing_dash(name: str) -> str:
    # Upstream's maskTrailingDash, including its habit of dropping the char before the dash.
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return dns1123_subdomain_errors(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return dns1123_label_errors(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return dns1035_label_errors(_mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# --- typed reads that never raise --------------------------------------------

def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int_field(obj: Obj, key: str, path: str, errs: list[Cause]) -> int | None:
    """obj[key] as int; a present non-integer is reported (the decoder would refuse it)."""
    value = obj.get(key)
    if value is None:
        return None
    if _int(value) is None:
        errs.append(invalid(path, value, "must be an integer"))
        return None
    return value


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == [] or value == ""


def semantic_equal(a: Any, b: Any) -> bool:
    """apiequality.Semantic.DeepEqual: nil and empty maps/slices/strings are equal."""
    if _empty(a) and _empty(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return all(semantic_equal(a.get(k), b.get(k)) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(semantic_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --- metadata ----------------------------------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def validate_labels(labels: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for key, value in sorted(_dict(labels).items()):
        errs.extend(_each(path, key, label_key_errors(key)))
        errs.extend(_each(path, _str(value), label_value_errors(_str(value))))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    items = _dict(annotations)
    errs: list[Cause] = []
    for key in sorted(items):
        # Annotation keys are qualified names, case-insensitively.
        errs.extend(_each(path, key, label_key_errors(key.lower())))
    if sum(len(k) + len(_str(v)) for k, v in items.items()) > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_finalizer_name(name: str, path: str) -> list[Cause]:
    errs = _each(path, name, label_key_errors(name))
    if not errs and "/" not in name and name not in _STANDARD_FINALIZERS:
        errs.append(invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def validate_object_meta(meta: Obj, namespaced: bool, name_fn: NameFn, path: str = "metadata") -> list[Cause]:
    errs: list[Cause] = []
    generate_name = _str(meta.get("generateName"))
    if generate_name:
        errs.extend(_each(f"{path}.generateName", generate_name, name_fn(generate_name, True)))
    name = _str(meta.get("name"))
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs.extend(_each(f"{path}.name", name, name_fn(name, False)))
    namespace = _str(meta.get("namespace"))
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs.extend(_each(f"{path}.namespace", namespace, name_is_dns_label(namespace, False)))
    elif namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs.extend(nonnegative(meta.get("generation"), f"{path}.generation"))
    errs.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    finalizers = [_str(f) for f in _list(meta.get("finalizers"))]
    for i, finalizer in enumerate(finalizers):
        errs.extend(validate_finalizer_name(finalizer, f"{path}.finalizers[{i}]"))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(f"{path}.finalizers", finalizers, "finalizers 'orphan' and 'foregroundDeletion' "
                            "cannot be both set"))
    errs.extend(validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    return errs


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    """apimachinery's ValidateOwnerReferences: each names apiVersion, kind, name and uid;
    at most one is the controller."""
    errs: list[Cause] = []
    controllers: list[str] = []
    for i, ref in enumerate(_list(refs)):
        if not isinstance(ref, dict):
            errs.append(invalid(f"{path}[{i}]", ref, "must be an object"))
            continue
        for field in ("apiVersion", "kind", "name", "uid"):
            if not _str(ref.get(field)):
                errs.append(required(f"{path}[{i}].{field}") if field != "apiVersion" else
                            invalid(f"{path}[{i}].apiVersion", ref.get(field), "version must not be empty"))
        if ref.get("controller") is True:
            controllers.append(_str(ref.get("name")))
    if len(controllers) > 1:
        errs.append(invalid(path, refs, "Only one reference can have Controller set to true. Found \"true\" "
                            f"in references for {' and '.join(controllers)}"))
    return errs


def validate_object_meta_update(new: Obj, old: Obj, path: str = "metadata") -> list[Cause]:
    """Identity fields are immutable. uid/creationTimestamp are compared only when the
    new object carries them: the registry copies them from the stored object otherwise."""
    errs: list[Cause] = []
    for key in ("name", "namespace"):
        if _str(new.get(key)) != _str(old.get(key)):
            errs.append(immutable(f"{path}.{key}", _str(new.get(key))))
    for key in ("uid", "creationTimestamp"):
        if new.get(key) and old.get(key) and new.get(key) != old.get(key):
            errs.append(immutable(f"{path}.{key}", new.get(key)))
    old_generation, new_generation = _int(old.get("generation")), _int(new.get("generation"))
    if old_generation is not None and new_generation is not None and new_generation < old_generation:
        errs.append(invalid(f"{path}.generation", new_generation, "must not be decremented"))
    if old.get("deletionTimestamp"):
        added = set(_list(new.get("finalizers"))) - set(_list(old.get("finalizers")))
        if added:
            errs.append(forbidden(f"{path}.finalizers",
                                  "no new finalizers can be added if the object is being deleted, "
                                  f"found new finalizers {go_string_slice(sorted(map(str, added)))}"))
    errs.extend(validate_labels(new.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(new.get("annotations"), f"{path}.annotations"))
    return errs


# --- label selectors ---------------------------------------------------------

def validate_label_selector(selector: Any, path: str) -> list[Cause]:
    """metav1 ValidateLabelSelector (strict label values, as apps kinds use)."""
    if selector is None:
        return []
    sel = _dict(selector)
    errs = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(_list(sel.get("matchExpressions"))):
        expr = _dict(expr)
        expr_path = f"{path}.matchExpressions[{i}]"
        operator, values = _str(expr.get("operator")), _list(expr.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{expr_path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{expr_path}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{expr_path}.operator", operator, "not a valid selector operator"))
        key = _str(expr.get("key"))
        errs.extend(_each(f"{expr_path}.key", key, label_key_errors(key)))
        for j, value in enumerate(values):
            errs.extend(_each(f"{expr_path}.values[{j}]", _str(value), label_value_errors(_str(value))))
    return errs


# --- pods ---------------------------------------------------------------------

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_MAX_INT32 = 2**31 - 1


def _validate_protocol(value: Any, path: str) -> list[Cause]:
    if not value:
        return [required(path)]
    if value not in _PROTOCOLS:
        return [not_supported(path, value, _PROTOCOLS)]
    return []


def _validate_container_ports(ports: list[Any], path: str, host_network: bool) -> list[Cause]:
    errs: list[Cause] = []
    names: set[str] = set()
    for i, raw in enumerate(ports):
        port, port_path = _dict(raw), f"{path}[{i}]"
        name = _str(port.get("name"))
        if name:
            if msgs := port_name_errors(name):
                errs.extend(_each(f"{port_path}.name", name, msgs))
            elif name in names:
                errs.append(duplicate(f"{port_path}.name", name))
            else:
                names.add(name)
        container_port = _int_field(port, "containerPort", f"{port_path}.containerPort", errs)
        if not port.get("containerPort"):
            errs.append(required(f"{port_path}.containerPort"))
        elif container_port is not None:
            errs.extend(_each(f"{port_path}.containerPort", container_port,  # type: ignore[arg-type]
                              port_number_errors(container_port)))
        host_port = _int_field(port, "hostPort", f"{port_path}.hostPort", errs)
        if host_port:
            errs.extend(_each(f"{port_path}.hostPort", host_port, port_number_errors(host_port)))  # type: ignore[arg-type]
            if host_network and container_port is not None and host_port != container_port:
                errs.append(invalid(f"{port_path}.hostPort", host_port,
                                    "must match `containerPort` when `hostNetwork` is true"))
        errs.extend(_validate_protocol(port.get("protocol"), f"{port_path}.protocol"))
    return errs


def _validate_handler(handler: Obj, path: str) -> list[Cause]:
    errs: list[Cause] = []
    count = 0
    for kind in ("exec", "httpGet", "tcpSocket", "grpc"):
        action = handler.get(kind)
        if action is None:
            continue
        action_path = f"{path}.{kind}"
        if count > 0:
            errs.append(forbidden(action_path, "may not specify more than 1 handler type"))
            continue
        count += 1
        action = _dict(action)
        if kind == "exec" and not _list(action.get("command")):
            errs.append(required(f"{action_path}.command"))
        elif kind == "httpGet":
            if not action.get("path"):
                errs.append(required(f"{action_path}.path"))
            errs.extend(validate_port_num_or_name(action.get("port"), f"{action_path}.port"))
            scheme = action.get("scheme") or ""
            if scheme not in ("HTTP", "HTTPS"):
                errs.append(not_supported(f"{action_path}.scheme", scheme, ("HTTP", "HTTPS")))
        elif kind == "tcpSocket":
            errs.extend(validate_port_num_or_name(action.get("port"), f"{action_path}.port"))
        elif kind == "grpc":
            port = action.get("port")
            errs.extend(_each(f"{action_path}.port", port, port_number_errors(port))  # type: ignore[arg-type]
                        if _int(port) is not None else [invalid(f"{action_path}.port", port,
                                                                "must be an integer")])
    if count == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def _validate_probe(probe: Any, path: str) -> list[Cause]:
    if probe is None:
        return []
    probe = _dict(probe)
    errs = _validate_handler(probe, path)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs.extend(nonnegative(_int_field(probe, key, f"{path}.{key}", errs), f"{path}.{key}"))
    grace = _int(probe.get("terminationGracePeriodSeconds"))
    if grace is not None and grace <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))
    return errs


def _validate_container(container: Obj, path: str, host_network: bool) -> list[Cause]:
    errs: list[Cause] = []
    name = _str(container.get("name"))
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs.extend(validate_dns1123_label(name, f"{path}.name"))
    image = _str(container.get("image"))
    if not image:
        errs.append(required(f"{path}.image"))
    elif image.strip() != image:
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    errs.extend(_validate_container_ports(_list(container.get("ports")), f"{path}.ports", host_network))
    for i, env in enumerate(_list(container.get("env"))):
        if not _str(_dict(env).get("name")):
            errs.append(required(f"{path}.env[{i}].name"))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        errs.extend(_validate_probe(container.get(probe), f"{path}.{probe}"))
    for probe in ("livenessProbe", "startupProbe"):
        threshold = _dict(container.get(probe)).get("successThreshold")
        if container.get(probe) is not None and threshold is not None and threshold != 1:
            errs.append(invalid(f"{path}.{probe}.successThreshold", threshold, "must be 1"))
    policy = container.get("imagePullPolicy")
    if not policy:
        errs.append(required(f"{path}.imagePullPolicy"))
    elif policy not in _PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", policy, _PULL_POLICIES))
    message_policy = container.get("terminationMessagePolicy")
    if not message_policy:
        errs.append(required(f"{path}.terminationMessagePolicy"))
    elif message_policy not in ("File", "FallbackToLogsOnError"):
        errs.append(invalid(f"{path}.terminationMessagePolicy", message_policy,
                            "must be 'File' or 'FallbackToLogsOnError'"))
    return errs


def _validate_containers(spec: Obj, path: str) -> list[Cause]:
    errs: list[Cause] = []
    host_network = bool(spec.get("hostNetwork"))
    seen: set[str] = set()
    containers = _list(spec.get("containers"))
    if not containers:
        errs.append(required(f"{path}.containers"))
    for key in ("initContainers", "containers"):
        for i, raw in enumerate(_list(spec.get(key))):
            container, container_path = _dict(raw), f"{path}.{key}[{i}]"
            errs.extend(_validate_container(container, container_path, host_network))
            name = _str(container.get("name"))
            if name and name in seen:
                errs.append(duplicate(f"{container_path}.name", name))
            seen.add(name)
    return errs


def validate_tolerations(tolerations: list[Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, raw in enumerate(tolerations):
        toleration, t_path = _dict(raw), f"{path}[{i}]"
        key, operator = _str(toleration.get("key")), _str(toleration.get("operator"))
        value, effect = _str(toleration.get("value")), _str(toleration.get("effect"))
        if key:
            errs.extend(_each(f"{t_path}.key", key, label_key_errors(key)))
        if not key and operator != "Exists":
            errs.append(invalid(f"{t_path}.operator", operator,
                                'operator must be Exists when `key` is empty, which means "match all values and all keys"'))
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{t_path}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("Equal", ""):
            if msgs := label_value_errors(value):
                errs.append(invalid(f"{t_path}.operator", value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                errs.append(invalid(f"{t_path}.operator", GoLiteral(f"core.Toleration{{Key:{go_quote(key)}, "
                                    f"Operator:{go_quote(operator)}, Value:{go_quote(value)}, "
                                    f"Effect:{go_quote(effect)}}}"), "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(f"{t_path}.operator", operator, ("Equal", "Exists")))
        if effect and effect not in _TAINT_EFFECTS:
            errs.append(not_supported(f"{t_path}.effect", effect, _TAINT_EFFECTS))
    return errs


def _validate_dns(spec: Obj, path: str) -> list[Cause]:
    errs: list[Cause] = []
    policy = spec.get("dnsPolicy")
    if not policy:
        errs.append(required(f"{path}.dnsPolicy"))
    elif policy not in _DNS_POLICIES:
        errs.append(not_supported(f"{path}.dnsPolicy", policy, _DNS_POLICIES))
    config = spec.get("dnsConfig")
    config_path = f"{path}.dnsConfig"
    if policy == "None":
        if config is None:
            return errs + [required(config_path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not _list(_dict(config).get("nameservers")):
            errs.append(required(f"{config_path}.nameservers",
                                 "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if config is not None:
        config = _dict(config)
        nameservers = [_str(n) for n in _list(config.get("nameservers"))]
        if len(nameservers) > 3:
            errs.append(invalid(f"{config_path}.nameservers", nameservers, "must not have more than 3 nameservers"))
        for i, server in enumerate(nameservers):
            errs.extend(ip_errors(f"{config_path}.nameservers[{i}]", server))
        searches = [_str(s) for s in _list(config.get("searches"))]
        if len(searches) > 32:
            errs.append(invalid(f"{config_path}.searches", searches, "must not have more than 32 search paths"))
        for i, search in enumerate(searches):
            if search != ".":
                errs.extend(validate_dns1123_subdomain(search.removesuffix("."), f"{config_path}.searches[{i}]"))
        for i, option in enumerate(_list(config.get("options"))):
            if not _str(_dict(option).get("name")):
                errs.append(required(f"{config_path}.options[{i}]", "Option.Name must not be empty"))
    return errs


def validate_pod_spec(spec: Obj, path: str) -> list[Cause]:
    errs = _validate_containers(spec, path)
    restart = spec.get("restartPolicy")
    if not restart:
        errs.append(required(f"{path}.restartPolicy"))
    elif restart not in _RESTART_POLICIES:
        errs.append(not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES))
    errs.extend(_validate_dns(spec, path))
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            errs.extend(validate_dns1123_label(_str(spec[key]), f"{path}.{key}"))
    for key in ("nodeName", "serviceAccountName"):
        if spec.get(key):
            errs.extend(validate_dns1123_subdomain(_str(spec[key]), f"{path}.{key}"))
    deadline = _int_field(spec, "activeDeadlineSeconds", f"{path}.activeDeadlineSeconds", errs)
    if deadline is not None and not 1 <= deadline <= _MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, f"must be between 1 and {_MAX_INT32}, inclusive"))
    _int_field(spec, "terminationGracePeriodSeconds", f"{path}.terminationGracePeriodSeconds", errs)
    errs.extend(validate_tolerations(_list(spec.get("tolerations")), f"{path}.tolerations"))
    return errs


def validate_pod_template(template: Any, path: str) -> list[Cause]:
    template = _dict(template)
    meta = _dict(template.get("metadata"))
    # Upstream reports template labels at `<path>.labels` (not `.metadata.labels`).
    errs = validate_labels(meta.get("labels"), f"{path}.labels")
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_pod_spec(_dict(template.get("spec")), f"{path}.spec"))
    return errs


_POD_UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                  "`spec.tolerations` (only additions to existing tolerations),"
                  "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def _pod_update(new: Obj, old: Obj) -> list[Cause]:
    new_spec, old_spec = _dict(new.get("spec")), _dict(old.get("spec"))
    errs: list[Cause] = []
    munged = dict(new_spec)
    for key in ("containers", "initContainers"):
        new_list, old_list = _list(new_spec.get(key)), _list(old_spec.get(key))
        if len(new_list) != len(old_list):
            return errs + [forbidden(f"spec.{key}", "pod updates may not add or remove containers")]
        merged = []
        for i, (n, o) in enumerate(zip(new_list, old_list, strict=True)):
            image = _str(_dict(n).get("image"))
            if not image:
                errs.append(required(f"spec.{key}[{i}].image"))
            elif image.strip() != image:
                errs.append(invalid(f"spec.{key}[{i}].image", image, "must not have leading or trailing whitespace"))
            merged.append({**_dict(n), "image": _dict(o).get("image")})
        if key in new_spec:
            munged[key] = merged
    new_deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    deadline_path = "spec.activeDeadlineSeconds"
    if _int(new_deadline) is not None:
        if not 0 <= new_deadline <= _MAX_INT32:
            return errs + [invalid(deadline_path, new_deadline, f"must be between 0 and {_MAX_INT32}, inclusive")]
        if _int(old_deadline) is not None and old_deadline < new_deadline:
            return errs + [invalid(deadline_path, new_deadline, "must be less than or equal to previous value")]
    elif old_deadline is not None:
        errs.append(invalid(deadline_path, None, "must not update from a positive integer to nil value"))
    munged["activeDeadlineSeconds"] = old_deadline
    new_tolerations, old_tolerations = _list(new_spec.get("tolerations")), _list(old_spec.get("tolerations"))
    for toleration in old_tolerations:
        if not any(_same_toleration(toleration, t) for t in new_tolerations):
            errs.append(forbidden("spec.tolerations",
                                  "existing toleration can not be modified except its tolerationSeconds"))
            break
    errs.extend(validate_tolerations(new_tolerations, "spec.tolerations"))
    munged["tolerations"] = old_spec.get("tolerations")
    new_grace, old_grace = new_spec.get("terminationGracePeriodSeconds"), old_spec.get("terminationGracePeriodSeconds")
    if _int(old_grace) is not None and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if not semantic_equal(munged, old_spec):
        errs.append(forbidden("spec", f"pod updates may not change fields other than {_POD_UPDATABLE}"))
    return errs


def _same_toleration(old: Any, new: Any) -> bool:
    strip = ("tolerationSeconds",)
    return semantic_equal({k: v for k, v in _dict(old).items() if k not in strip},
                          {k: v for k, v in _dict(new).items() if k not in strip})


def _validate_pod(pod: Obj, old: Obj | None) -> list[Cause]:
    errs = validate_pod_spec(_dict(pod.get("spec")), "spec")
    if old is not None:
        errs.extend(_pod_update(pod, old))
    return errs


# --- services -----------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_SESSION_AFFINITIES = ("ClientIP", "None")
_TRAFFIC_POLICIES = ("Cluster", "Local")
_IP_FAMILIES = ("IPv4", "IPv6")
_IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
_MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def service_cluster_ips(spec: Obj) -> list[str]:
    """spec.clusterIPs, or [clusterIP] when only that is given (the strategy syncs them)."""
    ips = [_str(ip) for ip in _list(spec.get("clusterIPs"))]
    if not ips and spec.get("clusterIP"):
        ips = [_str(spec["clusterIP"])]
    return ips


def _is_headless(spec: Obj) -> bool:
    return service_cluster_ips(spec) == ["None"]


def _service_port_key(port: Obj) -> GoLiteral:
    return GoLiteral(f'core.ServicePort{{Name:"", Protocol:{go_quote(_str(port.get("protocol")))}, '
                     f'AppProtocol:(*string)(nil), Port:{_int(port.get("port")) or 0}, '
                     f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


def _validate_service_port(port: Obj, path: str, require_name: bool, names: set[str]) -> list[Cause]:
    errs: list[Cause] = []
    name = _str(port.get("name"))
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs.extend(validate_dns1123_label(name, f"{path}.name"))
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
    number = _int_field(port, "port", f"{path}.port", errs)
    if number is not None or port.get("port") is None:
        errs.extend(_each(f"{path}.port", number or 0, port_number_errors(number or 0)))  # type: ignore[arg-type]
    errs.extend(_validate_protocol(port.get("protocol"), f"{path}.protocol"))
    errs.extend(validate_port_num_or_name(port.get("targetPort"), f"{path}.targetPort"))
    node_port = _int_field(port, "nodePort", f"{path}.nodePort", errs)
    if node_port:
        # The allocator checks the configured range; here only that it is a port.
        errs.extend(_each(f"{path}.nodePort", node_port, port_number_errors(node_port)))  # type: ignore[arg-type]
    if port.get("appProtocol") is not None:
        app = _str(port.get("appProtocol"))
        errs.extend(_each(f"{path}.appProtocol", app, label_key_errors(app)))
    return errs


def _validate_cluster_ips(spec: Obj) -> list[Cause]:
    errs: list[Cause] = []
    cluster_ip = _str(spec.get("clusterIP"))
    ips = [_str(ip) for ip in _list(spec.get("clusterIPs"))]
    if cluster_ip and ips and ips[0] != cluster_ip:
        errs.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    elif not cluster_ip and ips:
        errs.append(invalid("spec.clusterIPs", ips, "must be empty when `clusterIP` is not specified"))
    families = [_str(f) for f in _list(spec.get("ipFamilies"))]
    seen: set[str] = set()
    for i, family in enumerate(families):
        if family not in _IP_FAMILIES:
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, _IP_FAMILIES))
        if family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in _IP_FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, _IP_FAMILY_POLICIES))
    ips = service_cluster_ips(spec)
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                errs.append(invalid("spec.clusterIPs", ips, "'None' must be the first and only value"))
            continue
        ip_errs = ip_errors(f"spec.clusterIPs[{i}]", ip)
        bad = bad or bool(ip_errs)
        errs.extend(ip_errs)
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if bad:
        return errs
    if len(ips) == 2 and {_parse_ip(ip).version for ip in ips} != {4, 6}:  # type: ignore[union-attr]
        errs.append(invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family"))
    if ips and ips != ["None"]:
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            is_v6 = _parse_ip(ip).version == 6  # type: ignore[union-attr]
            if family == "IPv4" and is_v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"))
            if family == "IPv6" and not is_v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"))
    return errs


def _validate_service_spec(service: Obj) -> list[Cause]:
    spec = _dict(service.get("spec"))
    kind = spec.get("type")
    ports = [_dict(p) for p in _list(spec.get("ports"))]
    headless = _is_headless(spec)
    ips = service_cluster_ips(spec)
    errs: list[Cause] = []
    if not ports and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    if kind in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid("spec.clusterIPs[0]", ips[0], f"may not be set to 'None' for {kind} services"))
    elif kind == "ExternalName":
        if ips:
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = _str(spec.get("externalName")).removesuffix(".")
        if cname:
            errs.extend(validate_dns1123_subdomain(cname, "spec.externalName"))
        else:
            errs.append(required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        errs.extend(_validate_service_port(port, f"spec.ports[{i}]", len(ports) > 1, names))
    if spec.get("selector") is not None:
        errs.extend(validate_labels(spec.get("selector"), "spec.selector"))
    affinity = spec.get("sessionAffinity")
    if not affinity:
        errs.append(required("spec.sessionAffinity"))
    elif affinity not in _SESSION_AFFINITIES:
        errs.append(not_supported("spec.sessionAffinity", affinity, _SESSION_AFFINITIES))
    if affinity == "ClientIP":
        errs.extend(_validate_client_ip_affinity(spec.get("sessionAffinityConfig")))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))
    if kind != "ExternalName":
        errs.extend(_validate_cluster_ips(spec))
    for i, ip in enumerate(_list(spec.get("externalIPs"))):
        ip_errs = ip_errors(f"spec.externalIPs[{i}]", _str(ip))
        errs.extend(ip_errs or non_special_ip_errors(f"spec.externalIPs[{i}]", _str(ip)))
    if not kind:
        errs.append(required("spec.type"))
    elif kind not in _SERVICE_TYPES:
        errs.append(not_supported("spec.type", kind, _SERVICE_TYPES))
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if port.get("nodePort"):
                errs.append(forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))
    seen_node_ports: set[tuple[str, Any]] = set()
    seen_ports: set[tuple[str, Any]] = set()
    for i, port in enumerate(ports):
        if port.get("nodePort"):
            node_key = (_str(port.get("protocol")), port.get("nodePort"))
            if node_key in seen_node_ports:
                errs.append(duplicate(f"spec.ports[{i}].nodePort", port.get("nodePort")))
            seen_node_ports.add(node_key)
        key = (_str(port.get("protocol")), port.get("port"))
        if key in seen_ports:
            errs.append(duplicate(f"spec.ports[{i}]", _service_port_key(port)))
        seen_ports.add(key)
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        # Upstream reports this one without the `spec.` prefix.
        errs.append(required("allocateLoadBalancerNodePorts"))
    errs.extend(_validate_traffic_policies(service))
    return errs


def _validate_client_ip_affinity(config: Any) -> list[Cause]:
    detail = "when session affinity type is ClientIP"
    if config is None:
        return [required("spec.sessionAffinityConfig", detail)]
    client_ip = _dict(config).get("clientIP")
    if client_ip is None:
        return [required("spec.sessionAffinityConfig.clientIP", detail)]
    timeout = _dict(client_ip).get("timeoutSeconds")
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    if timeout is None:
        return [required(path, detail)]
    if _int(timeout) is None or not 0 < timeout <= _MAX_CLIENT_IP_AFFINITY_SECONDS:
        return [invalid(path, timeout, f"must be greater than 0 and less than {_MAX_CLIENT_IP_AFFINITY_SECONDS}")]
    return []


def _externally_accessible(spec: Obj) -> bool:
    kind = spec.get("type")
    return kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _validate_traffic_policies(service: Obj) -> list[Cause]:
    spec = _dict(service.get("spec"))
    errs: list[Cause] = []
    external = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec):
        if external:
            errs.append(invalid("spec.externalTrafficPolicy", external, "may only be set for externally-accessible services"))
    elif not external:
        errs.append(required("spec.externalTrafficPolicy"))
    elif external not in _TRAFFIC_POLICIES:
        errs.append(not_supported("spec.externalTrafficPolicy", external, _TRAFFIC_POLICIES))
    health = _int(spec.get("healthCheckNodePort")) or 0
    needs_health_check = spec.get("type") == "LoadBalancer" and external == "Local"
    if not needs_health_check and health:
        errs.append(invalid("spec.healthCheckNodePort", health,
                            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    internal = spec.get("internalTrafficPolicy")
    if internal is None and spec.get("type") in ("NodePort", "LoadBalancer", "ClusterIP"):
        errs.append(required("spec.internalTrafficPolicy"))
    elif internal is not None and internal not in _TRAFFIC_POLICIES:
        errs.append(not_supported("spec.internalTrafficPolicy", internal, _TRAFFIC_POLICIES))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        errs.append(not_supported("spec.trafficDistribution", distribution, ("PreferClose",)))
    return errs


def _service_update(new: Obj, old: Obj) -> list[Cause]:
    """ClusterIPs may be added (dual-stack upgrade) or the secondary released, never changed."""
    new_spec, old_spec = _dict(new.get("spec")), _dict(old.get("spec"))
    if "ExternalName" in (new_spec.get("type"), old_spec.get("type")):
        return []
    if _is_headless(new_spec) and _is_headless(old_spec):
        return []
    new_ips, old_ips = service_cluster_ips(new_spec), service_cluster_ips(old_spec)
    errs: list[Cause] = []
    if len(new_ips) == len(old_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                errs.append(invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set"))
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset"))
        elif new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
        if len(new_ips) == 1 and new_spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.ipFamilyPolicy", new_spec.get("ipFamilyPolicy"),
                                "must be set to 'SingleStack' when releasing the secondary clusterIP"))
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    return errs


def _validate_service(service: Obj, old: Obj | None) -> list[Cause]:
    errs = _service_update(service, old) if old is not None else []
    return errs + _validate_service_spec(service)


# --- endpoints and endpoint slices ------------------------------------------------

def _validate_endpoints(endpoints: Obj, old: Obj | None) -> list[Cause]:
    errs: list[Cause] = []
    for i, raw in enumerate(_list(endpoints.get("subsets"))):
        subset, path = _dict(raw), f"subsets[{i}]"
        if not _list(subset.get("addresses")) and not _list(subset.get("notReadyAddresses")):
            errs.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(_list(subset.get(key))):
                errs.extend(_validate_endpoint_address(_dict(address), f"{path}.{key}[{j}]"))
        ports = [_dict(p) for p in _list(subset.get("ports"))]
        for j, port in enumerate(ports):
            port_path = f"{path}.ports[{j}]"
            name = _str(port.get("name"))
            if len(ports) > 1 and not name:
                errs.append(required(f"{port_path}.name"))
            elif name:
                errs.extend(validate_dns1123_label(name, f"{port_path}.name"))
            number = _int(port.get("port")) or 0
            errs.extend(_each(f"{port_path}.port", number, port_number_errors(number)))  # type: ignore[arg-type]
            errs.extend(_validate_protocol(port.get("protocol"), f"{port_path}.protocol"))
    return errs


def _validate_endpoint_address(address: Obj, path: str) -> list[Cause]:
    ip = _str(address.get("ip"))
    errs = ip_errors(f"{path}.ip", ip)
    if address.get("hostname"):
        errs.extend(validate_dns1123_label(_str(address["hostname"]), f"{path}.hostname"))
    if address.get("nodeName") is not None:
        errs.extend(validate_dns1123_subdomain(_str(address["nodeName"]), f"{path}.nodeName"))
    errs.extend(non_special_ip_errors(f"{path}.ip", ip))
    return errs


_ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
_MAX_SLICE_ENDPOINTS, _MAX_SLICE_ADDRESSES, _MAX_SLICE_PORTS = 1000, 100, 100


def _validate_endpoint_slice(slice_: Obj, old: Obj | None) -> list[Cause]:
    errs: list[Cause] = []
    address_type = slice_.get("addressType")
    if not address_type:
        errs.append(required("addressType"))
    elif address_type not in _ADDRESS_TYPES:
        errs.append(not_supported("addressType", address_type, _ADDRESS_TYPES))
    endpoints = _list(slice_.get("endpoints"))
    if len(endpoints) > _MAX_SLICE_ENDPOINTS:
        errs.append(too_many("endpoints", len(endpoints), _MAX_SLICE_ENDPOINTS))
    else:
        for i, raw in enumerate(endpoints):
            errs.extend(_validate_slice_endpoint(_dict(raw), f"endpoints[{i}]", address_type))
    ports = _list(slice_.get("ports"))
    if len(ports) > _MAX_SLICE_PORTS:
        errs.append(too_many("ports", len(ports), _MAX_SLICE_PORTS))
    else:
        names: set[str] = set()
        for i, raw in enumerate(ports):
            port, path = _dict(raw), f"ports[{i}]"
            name = _str(port.get("name"))
            if name:
                errs.extend(validate_dns1123_label(name, f"{path}.name"))
            if name in names:
                errs.append(duplicate(f"{path}.name", name))
            names.add(name)
            protocol = port.get("protocol")
            if protocol is None:
                errs.append(required(f"{path}.protocol"))
            elif protocol not in _PROTOCOLS:
                errs.append(not_supported(f"{path}.protocol", protocol, _PROTOCOLS))
            if port.get("appProtocol") is not None:
                app = _str(port.get("appProtocol"))
                errs.extend(_each(f"{path}.appProtocol", app, label_key_errors(app)))
    if old is not None and old.get("addressType") != address_type:
        errs.append(immutable("addressType", address_type))
    return errs


def _validate_slice_endpoint(endpoint: Obj, path: str, address_type: Any) -> list[Cause]:
    errs: list[Cause] = []
    addresses = [_str(a) for a in _list(endpoint.get("addresses"))]
    address_path = f"{path}.addresses"
    if not addresses:
        errs.append(required(address_path, "must contain at least 1 address"))
    elif len(addresses) > _MAX_SLICE_ADDRESSES:
        errs.append(too_many(address_path, len(addresses), _MAX_SLICE_ADDRESSES))
    for i, address in enumerate(addresses):
        item_path = f"{address_path}[{i}]"
        ip = _parse_ip(address)
        if address_type == "IPv4":
            if ip is None or ip.version != 4:
                errs.append(invalid(item_path, address, "must be a valid IPv4 address"))
            errs.extend(non_special_ip_errors(item_path, address))
        elif address_type == "IPv6":
            if ip is None or ip.version != 6:
                errs.append(invalid(item_path, address, "must be a valid IPv6 address"))
            errs.extend(non_special_ip_errors(item_path, address))
        elif address_type == "FQDN":
            errs.extend(_fqdn_errors(item_path, address))
    if endpoint.get("hostname") is not None:
        errs.extend(validate_dns1123_label(_str(endpoint["hostname"]), f"{path}.hostname"))
    return errs


def _fqdn_errors(path: str, name: str) -> list[Cause]:
    if not name:
        return [required(path)]
    name = name.removesuffix(".")
    if msgs := dns1123_subdomain_errors(name):
        return [invalid(path, name, ",".join(msgs))]
    if len(name.split(".")) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated by dots")]
    return []


# --- apps ---------------------------------------------------------------------

def _intstr_percent(value: Any) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"[0-9]+%", value):
        return int(value[:-1])
    return None


def _validate_int_or_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str):
        if _intstr_percent(value) is None:
            return [invalid(path, go_int_or_string(value),
                            regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                                        "[0-9]+%", "1%", "93%"))]
        return []
    if _int(value) is not None:
        return nonnegative(value, path)
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def _int_or_percent_value(value: Any) -> int:
    percent = _intstr_percent(value)
    if percent is not None:
        return percent
    return _int(value) or 0


def _not_more_than_100_percent(value: Any, path: str) -> list[Cause]:
    percent = _intstr_percent(value)
    if percent is not None and percent > 100:
        return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]
    return []


def _selector_and_template(spec: Obj, what: str, invalid_detail: str) -> list[Cause]:
    """Selector required, valid and non-empty, and matching the template's labels."""
    errs: list[Cause] = []
    selector = spec.get("selector")
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        errs.extend(validate_label_selector(selector, "spec.selector"))
        sel = _dict(selector)
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            errs.append(invalid("spec.selector", go_label_selector(sel), f"empty selector is invalid for {what}"))
    try:
        matcher = label_selector_from_object(selector if isinstance(selector, dict) or selector is None else {})
    except ApiError:
        errs.append(invalid("spec.selector", go_label_selector(_dict(selector)), invalid_detail))
        return errs
    labels = _dict(_dict(spec.get("template")).get("metadata")).get("labels")
    if not matcher.empty and not matcher.matches(_dict(labels)):
        errs.append(invalid("spec.template.metadata.labels", GoLiteral(go_string_map(labels)),
                            "`selector` does not match template `labels`"))
    return errs


def _template_restart_rules(spec: Obj, kind: str) -> list[Cause]:
    pod_spec = _dict(_dict(spec.get("template")).get("spec"))
    errs: list[Cause] = []
    restart = pod_spec.get("restartPolicy")
    if restart and restart != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def _validate_replica_set_spec(spec: Obj, what: str) -> list[Cause]:
    errs: list[Cause] = []
    for key in ("replicas", "minReadySeconds"):
        errs.extend(nonnegative(_int_field(spec, key, f"spec.{key}", errs), f"spec.{key}"))
    errs.extend(_selector_and_template(spec, what, "invalid label selector"))
    errs.extend(validate_pod_template(spec.get("template"), "spec.template"))
    errs.extend(_template_restart_rules(spec, "ReplicaSet"))
    return errs


def _validate_deployment_strategy(strategy: Obj) -> list[Cause]:
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return [required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")]
        rolling = _dict(rolling)
        path = "spec.strategy.rollingUpdate"
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        errs = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable")
        errs.extend(_validate_int_or_percent(surge, f"{path}.maxSurge"))
        if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
            errs.append(invalid(f"{path}.maxUnavailable", go_int_or_string(unavailable),
                                "may not be 0 when `maxSurge` is 0"))
        errs.extend(_not_more_than_100_percent(unavailable, f"{path}.maxUnavailable"))
        return errs
    rolling_text = "(*apps.RollingUpdateDeployment)(nil)" if rolling is None else "&apps.RollingUpdateDeployment{...}"
    value = GoLiteral(f"apps.DeploymentStrategy{{Type:{go_quote(_str(kind))}, RollingUpdate:{rolling_text}}}")
    return [not_supported("spec.strategy", value, ("Recreate", "RollingUpdate"))]


def _validate_deployment(deployment: Obj, old: Obj | None) -> list[Cause]:
    spec = _dict(deployment.get("spec"))
    errs: list[Cause] = []
    errs.extend(nonnegative(_int_field(spec, "replicas", "spec.replicas", errs), "spec.replicas"))
    errs.extend(_selector_and_template(spec, "deployment", "invalid label selector"))
    errs.extend(validate_pod_template(spec.get("template"), "spec.template"))
    errs.extend(_template_restart_rules(spec, "ReplicaSet"))
    errs.extend(_validate_deployment_strategy(_dict(spec.get("strategy"))))
    min_ready = _int_field(spec, "minReadySeconds", "spec.minReadySeconds", errs) or 0
    errs.extend(nonnegative(min_ready, "spec.minReadySeconds"))
    history = _int_field(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit", errs)
    errs.extend(nonnegative(history, "spec.revisionHistoryLimit"))
    deadline = _int_field(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds", errs)
    if deadline is not None:
        errs.extend(nonnegative(deadline, "spec.progressDeadlineSeconds"))
        if deadline <= min_ready:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    if old is not None:
        errs.extend(_selector_immutable(deployment, old))
    return errs


def _selector_immutable(new: Obj, old: Obj) -> list[Cause]:
    new_selector = _dict(new.get("spec")).get("selector")
    if not semantic_equal(new_selector, _dict(old.get("spec")).get("selector")):
        return [immutable("spec.selector", go_label_selector(_dict(new_selector)))]
    return []


def _validate_replica_set(replica_set: Obj, old: Obj | None) -> list[Cause]:
    # Upstream's ReplicaSet message says "deployment" too.
    errs = _validate_replica_set_spec(_dict(replica_set.get("spec")), "deployment")
    if old is not None:
        errs.extend(_selector_immutable(replica_set, old))
    return errs


_STATEFUL_SET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                         "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _validate_stateful_set(stateful_set: Obj, old: Obj | None) -> list[Cause]:
    spec = _dict(stateful_set.get("spec"))
    errs: list[Cause] = []
    policy = spec.get("podManagementPolicy")
    if not policy:
        errs.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    errs.extend(_validate_stateful_set_strategy(_dict(spec.get("updateStrategy"))))
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for key in ("whenDeleted", "whenScaled"):
            value = _dict(retention).get(key)
            if value not in ("Retain", "Delete"):
                errs.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value or "",
                                          ("Retain", "Delete")))
    for key in ("replicas", "minReadySeconds"):
        errs.extend(nonnegative(_int_field(spec, key, f"spec.{key}", errs), f"spec.{key}"))
    if spec.get("ordinals") is not None:
        errs.extend(nonnegative(_dict(spec["ordinals"]).get("start"), "spec.ordinals.start"))
    errs.extend(_selector_and_template(spec, "statefulset", ""))
    errs.extend(validate_pod_template(spec.get("template"), "spec.template"))
    errs.extend(_template_restart_rules(spec, "StatefulSet"))
    # svcnet rule (the seed): a StatefulSet must name its governing Service.
    # Upstream's ValidateStatefulSetSpec does not check this (only the OpenAPI
    # schema lists serviceName as required), so real clusters accept it.
    if not spec.get("serviceName"):
        errs.append(required("spec.serviceName"))
    if old is not None:
        old_spec = _dict(old.get("spec"))
        rest_new = {k: v for k, v in spec.items() if k not in _STATEFUL_SET_MUTABLE}
        rest_old = {k: v for k, v in old_spec.items() if k not in _STATEFUL_SET_MUTABLE}
        if not semantic_equal(rest_new, rest_old):
            errs.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', "
                                  "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
                                  "and 'minReadySeconds' are forbidden"))
    return errs


def _validate_stateful_set_strategy(strategy: Obj) -> list[Cause]:
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    path = "spec.updateStrategy"
    if not kind:
        return [required(path)]
    if kind == "OnDelete":
        if rolling is not None:
            partition = _int(_dict(rolling).get("partition")) or 0
            value = GoLiteral(f"apps.RollingUpdateStatefulSetStrategy{{Partition:{partition}, "
                              "MaxUnavailable:(*intstr.IntOrString)(nil)}")
            return [invalid(f"{path}.rollingUpdate", value, "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return []
        rolling = _dict(rolling)
        errs = nonnegative(rolling.get("partition"), f"{path}.rollingUpdate.partition")
        if rolling.get("maxUnavailable") is not None:
            unavailable = rolling["maxUnavailable"]
            unavailable_path = f"{path}.rollingUpdate.maxUnavailable"
            errs.extend(_validate_int_or_percent(unavailable, unavailable_path))
            if _int_or_percent_value(unavailable) == 0:
                errs.append(invalid(unavailable_path, go_int_or_string(unavailable), "cannot be 0"))
            errs.extend(_not_more_than_100_percent(unavailable, unavailable_path))
        return errs
    rolling_text = ("(*apps.RollingUpdateStatefulSetStrategy)(nil)" if rolling is None
                    else "&apps.RollingUpdateStatefulSetStrategy{...}")
    value = GoLiteral(f"apps.StatefulSetUpdateStrategy{{Type:{go_quote(_str(kind))}, RollingUpdate:{rolling_text}}}")
    return [invalid(path, value, "must be 'RollingUpdate' or 'OnDelete'")]


# --- namespaces, nodes, events, leases ---------------------------------------------

def _validate_namespace(namespace: Obj, old: Obj | None) -> list[Cause]:
    errs: list[Cause] = []
    for finalizer in _list(_dict(namespace.get("spec")).get("finalizers")):
        # Upstream reports spec finalizers without an index.
        errs.extend(validate_finalizer_name(_str(finalizer), "spec.finalizers"))
    return errs


_NODE_CIDR_CHANGE = 'node updates may not change podCIDR except from "" to valid'


def _node_pod_cidrs(spec: Obj) -> list[str]:
    cidrs = [_str(c) for c in _list(spec.get("podCIDRs"))]
    return cidrs or ([_str(spec["podCIDR"])] if spec.get("podCIDR") else [])


def _validate_node(node: Obj, old: Obj | None) -> list[Cause]:
    spec = _dict(node.get("spec"))
    errs: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(_list(spec.get("taints"))):
        taint, path = _dict(raw), f"spec.taints[{i}]"
        key, value, effect = _str(taint.get("key")), _str(taint.get("value")), _str(taint.get("effect"))
        errs.extend(_each(f"{path}.key", key, label_key_errors(key)))
        if msgs := label_value_errors(value):
            errs.append(invalid(f"{path}.value", value, ";".join(msgs)))
        if not effect:
            errs.append(required(f"{path}.effect"))
        elif effect not in _TAINT_EFFECTS:
            errs.append(not_supported(f"{path}.effect", effect, _TAINT_EFFECTS))
        if (key, effect) in seen:
            errs.append(duplicate(path, GoLiteral(f"core.Taint{{Key:{go_quote(key)}, Value:{go_quote(value)}, "
                                                  f"Effect:{go_quote(effect)}, TimeAdded:<nil>}}"),
                                  "taints must be unique by key and effect pair"))
        seen.add((key, effect))
    cidrs = _node_pod_cidrs(spec)
    bad_cidr = False
    for i, cidr in enumerate(cidrs):
        cidr_errs = cidr_errors(f"spec.podCIDRs[{i}]", cidr)
        bad_cidr = bad_cidr or bool(cidr_errs)
        errs.extend(cidr_errs)
    if len(cidrs) > 1 and not bad_cidr:
        versions = [ipaddress.ip_network(c, strict=False).version for c in cidrs]
        if len(cidrs) > 2 or set(versions) != {4, 6}:
            errs.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    if old is not None:
        old_spec = _dict(old.get("spec"))
        old_cidrs = _node_pod_cidrs(old_spec)
        if old_cidrs and old_cidrs != cidrs:
            errs.append(forbidden("spec.podCIDRs", _NODE_CIDR_CHANGE))
        old_provider = _str(old_spec.get("providerID"))
        if old_provider and old_provider != _str(spec.get("providerID")):
            errs.append(forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid'))
    return errs


def _validate_event(event: Obj, old: Obj | None) -> list[Cause]:
    """core/v1 Events get only the legacy checks (upstream keeps them lenient)."""
    errs: list[Cause] = []
    namespace = _str(_dict(event.get("metadata")).get("namespace"))
    involved_namespace = _str(_dict(event.get("involvedObject")).get("namespace"))
    if not event.get("eventTime"):
        mismatch = (namespace not in ("", "default") if not involved_namespace
                    else namespace != involved_namespace)
    else:
        mismatch = not involved_namespace and namespace not in ("default", "kube-system")
        for key, limit in (("reportingController", None), ("reportingInstance", 128), ("action", 128),
                           ("reason", 128)):
            value = _str(event.get(key))
            if not value:
                errs.append(required(key))
            elif limit is not None and len(value) > limit:
                errs.append(invalid(key, "", f"can have at most {limit} characters"))
        controller = _str(event.get("reportingController"))
        if controller:
            errs.extend(_each("reportingController", controller, label_key_errors(controller)))
        if len(_str(event.get("message"))) > 1024:
            errs.append(invalid("message", "", "can have at most 1024 characters"))
    if mismatch:
        errs.append(invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace"))
    errs.extend(_each("namespace", namespace, dns1123_subdomain_errors(namespace)))
    return errs


def _validate_lease(lease: Obj, old: Obj | None) -> list[Cause]:
    spec = _dict(lease.get("spec"))
    errs: list[Cause] = []
    duration = _int_field(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds", errs)
    if duration is not None and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = _int_field(spec, "leaseTransitions", "spec.leaseTransitions", errs)
    if transitions is not None and transitions < 0:
        errs.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        errs.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
    return errs


# --- dispatch -------------------------------------------------------------------

KindValidator = Callable[[Obj, "Obj | None"], list[Cause]]

# kind -> (name rule, rules for the rest of the object; `old` is None on create)
_RULES: dict[str, tuple[NameFn, KindValidator]] = {
    "Namespace": (name_is_dns_label, _validate_namespace),
    "Node": (name_is_dns_subdomain, _validate_node),
    "Pod": (name_is_dns_subdomain, _validate_pod),
    "Service": (name_is_dns1035_label, _validate_service),
    "Endpoints": (name_is_dns_subdomain, _validate_endpoints),
    "EndpointSlice": (name_is_dns_subdomain, _validate_endpoint_slice),
    "Event": (name_is_path_segment, _validate_event),
    "Deployment": (name_is_dns_subdomain, _validate_deployment),
    "ReplicaSet": (name_is_dns_subdomain, _validate_replica_set),
    # Pod hostnames come from StatefulSet names, so upstream now wants a DNS label.
    "StatefulSet": (name_is_dns_label, _validate_stateful_set),
    "Lease": (name_is_dns_subdomain, _validate_lease),
}


def _namespaced(kind: str) -> bool:
    return next((r.namespaced for r in RESOURCES if r.kind == kind), True)


def validate(kind: str, obj: Obj, old: Obj | None = None) -> list[Cause]:
    """All of upstream's field errors for `obj` (an update when `old` is given).

    Unknown kinds validate clean. The object is never modified.
    """
    rules = _RULES.get(kind)
    if rules is None:
        return []
    name_fn, validate_rest = rules
    meta = _dict(obj.get("metadata"))
    if old is None:
        errs = validate_object_meta(meta, _namespaced(kind), name_fn)
    else:
        errs = validate_object_meta_update(meta, _dict(old.get("metadata")))
    return errs + validate_rest(obj, old)
