"""Shared pieces of every kind's validation: Go value rendering, field.Error builders,
syntax checks (apimachinery's Is* functions), name rules and typed reads that never raise."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from svcnet.api.errors import Cause
from svcnet.api.selectors import (
    DNS1123_LABEL_FMT,
    dns1123_subdomain_errors,
    go_quote,
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


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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
    if parse_ip(value) is None:
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
    ip = parse_ip(value)
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


def each_error(path: str, value: str, messages: list[str]) -> list[Cause]:
    return [invalid(path, value, m) for m in messages]


def validate_dns1123_label(value: str, path: str) -> list[Cause]:
    return each_error(path, value, dns1123_label_errors(value))


def validate_dns1123_subdomain(value: str, path: str) -> list[Cause]:
    return each_error(path, value, dns1123_subdomain_errors(value))


def validate_port_num_or_name(value: Any, path: str) -> list[Cause]:
    if value is None:
        value = 0  # an unset IntOrString is the integer zero
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [invalid(path, value, "must be an integer or a port name")]
    if isinstance(value, int):
        return each_error(path, value, port_number_errors(value))  # type: ignore[arg-type]
    return each_error(path, value, port_name_errors(value))


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

def as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def int_field(obj: Obj, key: str, path: str, errs: list[Cause]) -> int | None:
    """obj[key] as int; a present non-integer is reported (the decoder would refuse it)."""
    value = obj.get(key)
    if value is None:
        return None
    if as_int(value) is None:
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


