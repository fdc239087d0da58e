"""The strict decoder (the tests' "fieldcheck"): a request body checked against the type
definitions in apiserver/types/ the way kube-apiserver decodes JSON into Go structs, with
upstream's wording for decode errors and for unknown and duplicate fields."""
from __future__ import annotations

import re
from dataclasses import dataclass

from svcnet.api.errors import ApiError, Cause, bad_request
from svcnet.api.resources import Resource
from svcnet.apiserver.gobase64 import CorruptInput, std_decode
from svcnet.apiserver.types import Field, Struct, TypeRef, kind_schema_name, struct, subresource_gvk

# Strict field checking, shaped like kube-apiserver's JSON decoding.
#
# Upstream decodes a request body into the Go struct with sigs.k8s.io/json. A
# value of the wrong JSON type is a decode error ("json: cannot unmarshal ...")
# whatever fieldValidation says; unknown and duplicate fields are "strict"
# errors that fieldValidation turns into a 400 (Strict), warnings (Warn, the
# default) or nothing (Ignore). The walk below reproduces both, with upstream's
# wording: strict paths carry list indices ("spec.containers[0].foo"), type
# error paths do not ("ServicePort.spec.ports.port").

FIELD_VALIDATION_IGNORE = "Ignore"
FIELD_VALIDATION_WARN = "Warn"
FIELD_VALIDATION_STRICT = "Strict"

# The decoder stops collecting strict errors after this many (sigs.k8s.io/json).
_MAX_STRICT_ERRORS = 100

_QUANTITY_FORMAT = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY_FORMAT_ERROR = f"quantities must match the regular expression '{_QUANTITY_FORMAT}'"
_QUANTITY_NUMERIC_ERROR = "unable to parse numeric part of quantity"
_QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"
_QUANTITY_SUFFIXES = frozenset({"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
                                "n", "u", "m", "k", "M", "G", "T", "P", "E"})

_GO_SPECIAL = {"quantity": "resource.Quantity", "intstr": "intstr.IntOrString", "time": "v1.Time",
               "microtime": "v1.MicroTime", "object": "runtime.RawExtension", "fieldsv1": "v1.FieldsV1"}
_GO_SCALAR = {"double": "float64", "bytes": "[]uint8"}
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class Finding:
    """One problem found in a body: an unknown field or a value of the wrong type.

    fatal marks errors upstream's decoder returns at once (from a type's own
    UnmarshalJSON: Quantity, IntOrString, Time), which win over earlier ones.
    """

    kind: str  # "unknown" | "type"
    path: str  # strict-style path, with list indices
    message: str
    fatal: bool = False


def go_type(t: TypeRef) -> str:
    """The Go type string reflect prints for a field type (pointers already stripped)."""
    if t.go:
        return t.go
    if t.kind == "struct":
        return struct(t.name).go_name
    if t.kind == "special":
        return _GO_SPECIAL[t.name]
    if t.kind == "list":
        assert t.elem is not None
        return "[]" + go_type(t.elem)
    if t.kind == "map":
        assert t.elem is not None
        return "map[string]" + go_type(t.elem)
    return _GO_SCALAR.get(t.name, t.name)


def _json_kind(value: object) -> str:
    """How Go's decoder names a JSON value that did not fit."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number_literal(value: int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class _Walker:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def _type_error(self, value_desc: str, type_name: str, path: str, go_fields: tuple[str, ...],
                    go_struct: str, fatal: bool = False) -> None:
        if go_fields:
            where = f"Go struct field {go_struct}.{'.'.join(go_fields)}"
        else:
            where = "Go value"
        self.findings.append(Finding(
            "type", path, f"json: cannot unmarshal {value_desc} into {where} of type {type_name}", fatal))

    def walk(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...], go_struct: str) -> None:
        if value is None:  # null decodes to the zero value everywhere, silently
            return
        if t.kind == "struct":
            self._struct(t, value, path, go_fields, go_struct)
        elif t.kind == "list":
            assert t.elem is not None
            if not isinstance(value, list):
                self._type_error(_json_kind(value), go_type(t), path, go_fields, go_struct)
                return
            for i, item in enumerate(value):
                self.walk(t.elem, item, f"{path}[{i}]", go_fields, go_struct)
        elif t.kind == "map":
            assert t.elem is not None
            if not isinstance(value, dict):
                self._type_error(_json_kind(value), go_type(t), path, go_fields, go_struct)
                return
            for key, item in value.items():
                self.walk(t.elem, item, _join(path, key), go_fields, go_struct)
        elif t.kind == "special":
            self._special(t, value, path, go_fields, go_struct)
        else:
            self._scalar(t, value, path, go_fields, go_struct)

    def _struct(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...],
                go_struct: str) -> None:
        s = struct(t.name)
        if not isinstance(value, dict):
            self._type_error(_json_kind(value), go_type(t), path, go_fields, go_struct)
            return
        fields = _fields_by_name(s)
        for key, item in value.items():
            f = fields.get(key)  # JSON keys match field names case-sensitively upstream
            if f is None:
                self.findings.append(Finding("unknown", _join(path, key), ""))
                continue
            self.walk(f.type, item, _join(path, key), (*go_fields, key), s.short_name)

    def _scalar(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...],
                go_struct: str) -> None:
        name = go_type(t)
        if t.kind == "string":
            if not isinstance(value, str):
                self._type_error(_json_kind(value), name, path, go_fields, go_struct)
        elif t.kind == "bool":
            if not isinstance(value, bool):
                self._type_error(_json_kind(value), name, path, go_fields, go_struct)
        elif t.kind == "double":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._type_error(_json_kind(value), name, path, go_fields, go_struct)
        elif t.kind == "bytes":
            self._bytes(value, name, path, go_fields, go_struct)
        else:  # int32 / int64
            self._integer(t.kind, name, value, path, go_fields, go_struct)

    def _bytes(self, value: object, name: str, path: str, go_fields: tuple[str, ...],
               go_struct: str) -> None:
        """[]byte is base64 text in JSON; bad base64 stops the decode (Go's CorruptInputError)."""
        if not isinstance(value, str):
            self._type_error(_json_kind(value), name, path, go_fields, go_struct)
            return
        try:
            std_decode(value)
        except CorruptInput as exc:
            self.findings.append(Finding("type", path, str(exc), fatal=True))

    def _integer(self, kind: str, name: str, value: object, path: str, go_fields: tuple[str, ...],
                 go_struct: str, fatal: bool = False) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._type_error(_json_kind(value), name, path, go_fields, go_struct, fatal)
            return
        low, high = _INT_RANGE[kind]
        # Go parses the literal itself: "1.0" is not an integer, and overflow is an error.
        if isinstance(value, float) or not low <= value <= high:
            self._type_error(f"number {_number_literal(value)}", name, path, go_fields, go_struct, fatal)

    def _special(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...],
                 go_struct: str) -> None:
        if t.name == "intstr":
            # IntOrString.UnmarshalJSON: a string is a string, anything else decodes as int32.
            if not isinstance(value, str):
                self._integer("int32", "int32", value, path, go_fields, go_struct, fatal=True)
        elif t.name == "quantity":
            problem = quantity_error(_quantity_text(value))
            if problem:
                self.findings.append(Finding("type", path, problem, fatal=True))
        elif t.name in ("time", "microtime"):
            if not isinstance(value, str):
                self._type_error(_json_kind(value), "string", path, go_fields, go_struct, fatal=True)
                return
            problem = time_parse_error(value, micro=t.name == "microtime")
            if problem:
                self.findings.append(Finding("type", path, problem, fatal=True))
        # object / fieldsv1 hold any JSON


# Struct.field as a dict per struct, for the checker's walk; the Struct is kept to notice a
# redefinition under the same name.
_FIELD_INDEX: dict[str, tuple[Struct, dict[str, Field]]] = {}


def _fields_by_name(s: Struct) -> dict[str, Field]:
    cached = _FIELD_INDEX.get(s.name)
    if cached is not None and cached[0] is s:
        return cached[1]
    index: dict[str, Field] = {}
    for f in s.fields:
        index.setdefault(f.name, f)  # the first of a repeated name wins, as Struct.field
    _FIELD_INDEX[s.name] = (s, index)
    return index


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _quantity_text(value: object) -> str:
    """The text Quantity.UnmarshalJSON hands to ParseQuantity."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_literal(value)
    return "{" if isinstance(value, dict) else "["  # never a valid quantity


def quantity_error(text: str) -> str:
    """The error resource.ParseQuantity gives for text, or '' if it parses."""
    if text == "0":
        return ""
    if not re.match(_QUANTITY_FORMAT, text):
        return _QUANTITY_FORMAT_ERROR
    m = re.match(r"^([+-]?)([0-9]*)(\.[0-9]*)?([eEinumkKMGTP]*)([-+]?[0-9]*)$", text)
    if m is None:
        return _QUANTITY_FORMAT_ERROR
    letters, exponent = m.group(4), m.group(5)
    suffix = letters + exponent
    if suffix not in _QUANTITY_SUFFIXES and not re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        return _QUANTITY_SUFFIX_ERROR
    if not (m.group(2) or (m.group(3) or "")[1:]):
        return _QUANTITY_NUMERIC_ERROR
    return ""


_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def time_parse_error(value: str, micro: bool = False) -> str:
    """The error Go's time.Parse gives for an RFC 3339 (or RFC3339Micro) string, or ''.

    Walks the layout element by element as Go does, so the message names the
    element that failed, e.g. `parsing time "2024-1-02" as "...": cannot parse
    "1-02" as "01"`.
    """
    layout = _RFC3339_MICRO if micro else _RFC3339
    rest = value

    def bad(elem: str) -> str:
        return (f"parsing time {_go_quote(value)} as {_go_quote(layout)}: "
                f"cannot parse {_go_quote(rest)} as {_go_quote(elem)}")

    def digits(n: int, fixed: bool) -> int | None:
        nonlocal rest
        if not rest[:1].isdigit():
            return None
        if not fixed and not rest[1:2].isdigit():
            number, rest = int(rest[0]), rest[1:]
            return number
        if len(rest) < n or not rest[:n].isdigit():
            return None
        number, rest = int(rest[:n]), rest[n:]
        return number

    fields: dict[str, int] = {}
    steps = [("2006", 4, True), ("-", 0, True), ("01", 2, True), ("-", 0, True), ("02", 2, True),
             ("T", 0, True), ("15", 2, False), (":", 0, True), ("04", 2, True), (":", 0, True),
             ("05", 2, True)]
    for elem, width, fixed in steps:
        if width == 0:
            if not rest.startswith(elem):
                return bad(elem)
            rest = rest[len(elem):]
            continue
        number = digits(width, fixed)
        if number is None:
            return bad(elem)
        fields[elem] = number
        limits = {"01": (1, 12, "month"), "15": (0, 23, "hour"), "04": (0, 59, "minute"),
                  "05": (0, 59, "second")}
        if elem in limits and not limits[elem][0] <= number <= limits[elem][1]:
            return f"parsing time {_go_quote(value)}: {limits[elem][2]} out of range"
    if micro:
        if len(rest) < 7 or rest[0] not in ".," or not rest[1:7].isdigit():
            return bad(".000000")
        rest = rest[7:]
    elif len(rest) >= 2 and rest[0] in ".," and rest[1].isdigit():
        # Go accepts fractional seconds the layout does not mention.
        rest = rest[1:]
        while rest[:1].isdigit():
            rest = rest[1:]
    if rest.startswith("Z"):
        rest = rest[1:]
    elif (len(rest) >= 6 and rest[0] in "+-" and rest[3] == ":" and rest[1:3].isdigit()
          and rest[4:6].isdigit()):
        if int(rest[1:3]) > 24:
            return f"parsing time {_go_quote(value)}: time zone offset hour out of range"
        if int(rest[4:6]) > 60:
            return f"parsing time {_go_quote(value)}: time zone offset minute out of range"
        rest = rest[6:]
    else:
        return bad("Z07:00")
    if rest:
        return f"parsing time {_go_quote(value)}: extra text: {_go_quote(rest)}"
    year, month, day = fields["2006"], fields["01"], fields["02"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    if not 1 <= day <= days:
        return f"parsing time {_go_quote(value)}: day out of range"
    return ""


# What a body is checked against: a Resource (optionally with a subresource) or a schema name.
Target = Resource | str


def _root_type(target: Target, subresource: str | None = None) -> Struct:
    """The struct a request body decodes into."""
    if isinstance(target, Resource):
        if subresource:
            sub = target.subresource(subresource)
            if sub is None:
                raise KeyError(f"{target.plural}/{subresource}")
            return struct(kind_schema_name(*subresource_gvk(target, sub)))
        return struct(kind_schema_name(target.group, target.version, target.kind))
    if isinstance(target, str):
        return struct(target)
    raise TypeError(f"cannot check fields of {target!r}")


def findings(target: Target, obj: object, subresource: str | None = None) -> list[Finding]:
    """Every unknown field and wrongly typed value in obj, in document order."""
    root = _root_type(target, subresource)
    walker = _Walker()
    ref = TypeRef("struct", root.name)
    if not isinstance(obj, dict):
        walker._type_error(_json_kind(obj), root.go_name, "", (), "")
    else:
        walker.walk(ref, obj, "", (), root.short_name)
    return walker.findings


def unknown_fields(target: Target, obj: object, subresource: str | None = None) -> list[str]:
    """Paths of fields the type does not have, as upstream prints them (spec.containers[0].foo)."""
    return [f.path for f in findings(target, obj, subresource) if f.kind == "unknown"]


def type_errors(target: Target, obj: object, subresource: str | None = None) -> list[str]:
    """Messages for values of the wrong JSON type, worded like Go's json decoder, in document order.

    Upstream reports only one of them: see decode_error.
    """
    return [f.message for f in findings(target, obj, subresource) if f.kind == "type"]


def decode_error(target: Target, obj: object, subresource: str | None = None) -> str | None:
    """The single decode error upstream would report: the first one a type's own decoder
    returns (it aborts decoding), else the first wrongly typed plain value."""
    return _decode_error_of(findings(target, obj, subresource))


def _decode_error_of(found: list[Finding]) -> str | None:
    errors = [f for f in found if f.kind == "type"]
    for f in errors:
        if f.fatal:
            return f.message
    return errors[0].message if errors else None


def strict_errors(target: Target, obj: object, duplicate_paths: tuple[str, ...] | list[str] = (),
                  subresource: str | None = None) -> list[str]:
    """The strict-decoding messages (`unknown field "x"`, `duplicate field "y"`), deduplicated."""
    return _strict_errors_of(findings(target, obj, subresource), duplicate_paths)


def _strict_errors_of(found: list[Finding], duplicate_paths: tuple[str, ...] | list[str]) -> list[str]:
    messages = [f'unknown field "{f.path}"' for f in found if f.kind == "unknown"]
    messages += [f'duplicate field "{p}"' for p in duplicate_paths]
    return list(dict.fromkeys(messages))[:_MAX_STRICT_ERRORS]


def check_fields(target: Target, obj: object, subresource: str | None = None) -> list[Cause]:
    """Every finding as an errors.Cause (field = strict path).

    Upstream sends no causes for decode errors (the Status has only a message);
    these are for svcnet's own logs and tests. Type errors use the real cause
    type FieldValueTypeInvalid; unknown fields use FieldValueInvalid.
    """
    causes = []
    for f in findings(target, obj, subresource):
        if f.kind == "unknown":
            causes.append(Cause(f.path, f'unknown field "{f.path}"', "FieldValueInvalid"))
        else:
            causes.append(Cause(f.path, f.message, "FieldValueTypeInvalid"))
    return causes


def field_validation(target: Target, obj: object, directive: str = "",
                     duplicate_paths: tuple[str, ...] | list[str] = (),
                     subresource: str | None = None) -> tuple[ApiError | None, list[str]]:
    """Decide a write body as kube-apiserver does: (ApiError or None, warnings).

    directive is the fieldValidation query parameter; empty means Warn, the
    upstream default. A type error is a 400 whatever the directive. With
    unknown/duplicate fields, Strict gives a 400 whose message lists them all,
    Warn returns them as warnings (one Warning header each), Ignore drops them.
    """
    root = _root_type(target, subresource)
    found = findings(target, obj, subresource)  # one walk serves both questions
    error = _decode_error_of(found)
    if error is not None:
        return bad_request(_cannot_handle(root, obj, error)), []
    strict = _strict_errors_of(found, duplicate_paths)
    if not strict or directive == FIELD_VALIDATION_IGNORE:
        return None, []
    if directive in ("", FIELD_VALIDATION_WARN):
        return None, strict
    return bad_request(_cannot_handle(root, obj, "strict decoding error: " + ", ".join(strict))), []


def _cannot_handle(root: Struct, obj: object, detail: str) -> str:
    """transformDecodeError's wording; kind/version come from the body, defaulted from the URL."""
    kind = root.short_name
    version = root.gvks[0][1] if root.gvks else "v1"
    if isinstance(obj, dict):
        if isinstance(obj.get("kind"), str) and obj["kind"]:
            kind = obj["kind"]
        if isinstance(obj.get("apiVersion"), str) and obj["apiVersion"]:
            version = obj["apiVersion"].rsplit("/", 1)[-1]
    return f'{kind} in version "{version}" cannot be handled as a {root.short_name}: {detail}'


def prune_unknown(target: Target, obj: object, subresource: str | None = None) -> list[str]:
    """Remove, in place, every field obj's type does not have; return their paths.

    kube-apiserver never stores an unknown field: it decodes every body (and every
    patched object) into the Go struct, and encoding/json drops what the struct has
    no field for (k8s.io/apiserver endpoints/handlers/create.go and patch.go decode
    with the strict serializer only to report the fields, in
    `addStrictDecodingWarnings`, before they are dropped). The same type
    definitions as the strict check above decide here, so what Warn reports is
    exactly what is pruned. Values of the wrong JSON type are left to the check
    (a 400). The field sets in metadata.managedFields lose the pruned fields too,
    so no manager keeps owning a field that is not there.
    """
    if not isinstance(obj, dict):
        return []
    root = TypeRef("struct", _root_type(target, subresource).name)
    pruned: list[str] = []
    _prune(root, obj, "", pruned)
    md = obj.get("metadata")
    entries = md.get("managedFields") if isinstance(md, dict) else None
    if isinstance(entries, list):
        # A manager left owning nothing is dropped, as upstream drops empty field sets.
        entries[:] = [e for e in entries if not (
            isinstance(e, dict) and isinstance(e.get("fieldsV1"), dict)
            and _prune_field_set(root, e["fieldsV1"]) and not e["fieldsV1"])]
    return pruned


def _prune(t: TypeRef, value: object, path: str, pruned: list[str]) -> None:
    if t.kind == "struct" and isinstance(value, dict):
        fields = _fields_by_name(struct(t.name))
        unknown = [key for key in value if key not in fields]
        for key in unknown:
            del value[key]
            pruned.append(_join(path, key))
        for key, item in value.items():
            _prune(fields[key].type, item, _join(path, key), pruned)
    elif t.kind == "list" and isinstance(value, list):
        assert t.elem is not None
        if t.elem.kind in ("struct", "list", "map"):
            for i, item in enumerate(value):
                _prune(t.elem, item, f"{path}[{i}]", pruned)
    elif t.kind == "map" and isinstance(value, dict):
        assert t.elem is not None
        if t.elem.kind in ("struct", "list", "map"):
            for key, item in value.items():
                _prune(t.elem, item, _join(path, key), pruned)


def _prune_field_set(t: TypeRef, fields_v1: dict) -> bool:
    """Drop from a FieldsV1 set ("f:name", "k:{key}" entries) the fields t does not have.

    True when something was removed; a member left empty by the removal goes too.
    """
    removed = False
    for key in list(fields_v1):
        child = fields_v1[key]
        child_type: TypeRef | None = None
        if t.kind == "struct" and key.startswith("f:"):
            f = _fields_by_name(struct(t.name)).get(key[2:])
            if f is None:
                del fields_v1[key]
                removed = True
                continue
            child_type = f.type
        elif (t.kind == "map" and key.startswith("f:")) or (t.kind == "list" and key.startswith(("k:", "i:"))):
            child_type = t.elem
        if child_type is not None and isinstance(child, dict) and child \
                and _prune_field_set(child_type, child):
            removed = True
            if not child:
                del fields_v1[key]
    return removed
