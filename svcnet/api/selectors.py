"""Label and field selectors: parse, match and render them as upstream does.

Grammar, matching and error wording follow apimachinery's labels and fields
packages, so `kubectl get -l ...` and `--field-selector ...` behave (and fail)
exactly as against kube-apiserver. Everything here is pure.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.errors import ApiError, bad_request

# --- label syntax (shared with validation) -----------------------------------

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
                       "and must start and end with an alphanumeric character")
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric character")

_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError: the message, examples, then the regex."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def label_key_errors(key: str) -> list[str]:
    """Upstream IsQualifiedName: an optional DNS subdomain prefix and '/', then a name part."""
    errs: list[str] = []
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + msg for msg in dns1123_subdomain_errors(prefix))
    else:
        return ["a qualified name "
                + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def go_quote(value: str) -> str:
    """Go's %q for the strings we print (ASCII escapes; printable Unicode kept)."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- label selectors ---------------------------------------------------------

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"
# The order upstream lists binary operators in its "expected: ..." message.
_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: key, operator and its values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return self.key in labels
        if self.operator == DOES_NOT_EXIST:
            return self.key not in labels
        if self.operator in (GREATER_THAN, LESS_THAN):
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except (KeyError, ValueError, IndexError):
                return False
            return have > want if self.operator == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{values}"


@dataclass(frozen=True)
class LabelSelector:
    """An AND of requirements; `matches_nothing` is upstream's labels.Nothing()."""

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when it does not restrict anything (upstream Selector.Empty)."""
        return not self.requirements and not self.matches_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.matches_nothing:
            return False
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(matches_nothing=True)

# Lexer tokens.
_END, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN, _ERR = range(14)
_SYMBOLS = {")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _DEQ, "=": _EQ, ">": _GT, "in": _IN,
            "<": _LT, "!=": _NEQ, "notin": _NOTIN, "(": _OPEN}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(text: str) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(text):
            items.append((_END, ""))
            return items
        if text[pos] in _SPECIAL:
            # Longest run of special characters that still forms a known symbol.
            buffer, best = "", None
            while pos < len(text) and text[pos] in _SPECIAL:
                buffer += text[pos]
                if buffer in _SYMBOLS:
                    best = (_SYMBOLS[buffer], buffer)
                    pos += 1
                elif best is not None:
                    break
                else:
                    pos += 1
            items.append(best if best else (_ERR, f"error expected: keyword found '{buffer}'"))
            continue
        start = pos
        while pos < len(text) and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        items.append((_SYMBOLS.get(word, _ID), word))


class _SelectorSyntaxError(Exception):
    pass


def _field_invalid(path: str, value: Any, detail: str) -> str:
    shown = go_quote(value) if isinstance(value, str) else "[]string{" + ", ".join(
        go_quote(v) for v in value) + "}"
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def new_requirement(key: str, operator: str, values: list[str] | tuple[str, ...]) -> Requirement:
    """Upstream NewRequirement: validates key, operator arity and values.

    Raises _SelectorSyntaxError carrying upstream's aggregated field errors.
    """
    vals = list(values)
    errs: list[str] = []
    if key_errs := label_key_errors(key):
        errs.append(_field_invalid("key", key, "; ".join(key_errs)))
    if operator in (IN, NOT_IN) and not vals:
        errs.append(_field_invalid("values", vals, "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(vals) != 1:
        errs.append(_field_invalid("values", vals, "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST) and vals:
        errs.append(_field_invalid("values", vals, "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(_field_invalid("values", vals,
                                       "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(vals):
            if not re.fullmatch(r"[+-]?[0-9]+", v):
                errs.append(_field_invalid(f"values[{i}]", v,
                                           "for 'Gt', 'Lt' operators, the value must be an integer"))
    for i, v in enumerate(vals):
        if value_errs := label_value_errors(v):
            errs.append(_field_invalid(f"values[{i}][{key}]", v, "; ".join(value_errs)))
    if errs:
        raise _SelectorSyntaxError(_aggregate(errs))
    return Requirement(key, operator, tuple(vals))


class _LabelParser:
    """Recursive descent over the token list, mirroring upstream's error texts."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def _peek(self) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        # In "values" context the keywords in/notin are plain identifiers.
        return (_ID if tok in (_IN, _NOTIN) else tok), lit

    def _take(self, keywords: bool = False) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        self.pos += 1
        if not keywords and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self._requirement())
                except _SelectorSyntaxError as err:
                    raise _SelectorSyntaxError(f"unable to parse requirement: {err}") from None
                tok, lit = self._take()
                if tok == _END:
                    return reqs
                if tok == _COMMA:
                    tok2, lit2 = self._peek()
                    if tok2 not in (_ID, _NOT):
                        raise _SelectorSyntaxError(f"found '{lit2}', expected: identifier after ','")
                    continue
                raise _SelectorSyntaxError(f"found '{lit}', expected: ',' or 'end of string'")
            if tok == _END:
                return reqs
            raise _SelectorSyntaxError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        operator = ""
        tok, lit = self._take()
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, lit = self._take()
        if tok != _ID:
            raise _SelectorSyntaxError(f"found '{lit}', expected: identifier")
        if key_errs := label_key_errors(lit):
            # Upstream validates the key with a nil field path, hence "<nil>".
            raise _SelectorSyntaxError(_field_invalid("<nil>", lit, "; ".join(key_errs)))
        key = lit
        if self._peek()[0] in (_END, _COMMA):
            return new_requirement(key, operator or EXISTS, [])
        if operator == DOES_NOT_EXIST:
            return new_requirement(key, operator, [])
        tok, lit = self._take(keywords=True)
        operators = {_IN: IN, _NOTIN: NOT_IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _NEQ: NOT_EQUALS,
                     _GT: GREATER_THAN, _LT: LESS_THAN}
        if tok not in operators:
            raise _SelectorSyntaxError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        operator = operators[tok]
        values = self._set_values() if operator in (IN, NOT_IN) else self._exact_value()
        return new_requirement(key, operator, sorted(values))

    def _set_values(self) -> set[str]:
        tok, lit = self._take()
        if tok != _OPEN:
            raise _SelectorSyntaxError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok == _CLOSE:
            self._take()
            return {""}
        if tok not in (_ID, _COMMA):
            raise _SelectorSyntaxError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._identifier_list()
        if self._take()[0] != _CLOSE:
            raise _SelectorSyntaxError(f"found '{lit}', expected: ')'")
        return values

    def _identifier_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._take()
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return values
                raise _SelectorSyntaxError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                # Empty items between commas stand for the empty value.
                if not values:
                    values.add("")
                tok2, _ = self._peek()
                if tok2 == _CLOSE:
                    values.add("")
                    return values
                if tok2 == _COMMA:
                    values.add("")
                continue
            raise _SelectorSyntaxError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self._peek()[0] in (_END, _COMMA):
            return {""}
        tok, lit = self._take()
        if tok == _ID:
            return {lit}
        raise _SelectorSyntaxError(f"found '{lit}', expected: identifier")


def _sorted_by_key(reqs: list[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(reqs, key=lambda r: r.key))


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a `-l`/labelSelector string; raises ApiError 400 worded as upstream."""
    try:
        reqs = _LabelParser(text).parse()
    except _SelectorSyntaxError as err:
        raise bad_request(str(err)) from None
    return LabelSelector(_sorted_by_key(reqs))


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Exact-match selector for a map such as Service.spec.selector (no validation)."""
    if not labels:
        return EVERYTHING
    return LabelSelector(_sorted_by_key([Requirement(k, EQUALS, (v,)) for k, v in labels.items()]))


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelector -> matcher, as LabelSelectorAsSelector.

    None selects nothing; an empty selector selects everything. Invalid content
    raises ApiError 400 with upstream's message.
    """
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return EVERYTHING
    reqs: list[Requirement] = []
    try:
        for key, value in match_labels.items():
            reqs.append(new_requirement(str(key), EQUALS, [str(value)]))
        for expr in expressions:
            op = _EXPRESSION_OPERATORS.get(str(expr.get("operator", "")))
            if op is None:
                raise _SelectorSyntaxError(
                    f"{go_quote(str(expr.get('operator', '')))} is not a valid label selector operator")
            reqs.append(new_requirement(str(expr.get("key", "")), op,
                                        [str(v) for v in expr.get("values") or []]))
    except _SelectorSyntaxError as err:
        raise bad_request(str(err)) from None
    return LabelSelector(_sorted_by_key(reqs))


def selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """A metav1.LabelSelector as its selector string (Scale status.selector: `app=hostnames`)."""
    return str(label_selector_from_object(selector))


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """kubectl's FormatLabelSelector: `<none>` when empty, `<error>` when invalid."""
    try:
        text = selector_to_string(selector)
    except ApiError:
        return "<error>"
    return text or "<none>"


# --- field selectors ---------------------------------------------------------

def _path(obj: Mapping[str, Any], *keys: str) -> Any:
    cur: Any = obj
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    return cur


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _getter(*keys: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda obj: _text(_path(obj, *keys))


def _event_source(obj: Mapping[str, Any]) -> str:
    # Upstream falls back to reportingController when source.component is empty.
    return _text(_path(obj, "source", "component")) or _text(obj.get("reportingComponent"))


_META_FIELDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": _getter("metadata", "name"),
    "metadata.namespace": _getter("metadata", "namespace"),
}

# Per kind, the fields kube-apiserver lets clients select on, and how to read each.
SELECTABLE_FIELDS: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "Pod": {
        "spec.nodeName": _getter("spec", "nodeName"),
        "spec.restartPolicy": _getter("spec", "restartPolicy"),
        "spec.schedulerName": _getter("spec", "schedulerName"),
        "spec.serviceAccountName": _getter("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: _text(bool(_path(o, "spec", "hostNetwork"))),
        "status.phase": _getter("status", "phase"),
        "status.podIP": _getter("status", "podIP"),
        "status.nominatedNodeName": _getter("status", "nominatedNodeName"),
    },
    "Event": {
        "involvedObject.kind": _getter("involvedObject", "kind"),
        "involvedObject.namespace": _getter("involvedObject", "namespace"),
        "involvedObject.name": _getter("involvedObject", "name"),
        "involvedObject.uid": _getter("involvedObject", "uid"),
        "involvedObject.apiVersion": _getter("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _getter("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _getter("involvedObject", "fieldPath"),
        "reason": _getter("reason"),
        "reportingComponent": _getter("reportingComponent"),
        "source": _event_source,
        "type": _getter("type"),
    },
    "Namespace": {"status.phase": _getter("status", "phase")},
    "Service": {"spec.clusterIP": _getter("spec", "clusterIP"), "spec.type": _getter("spec", "type")},
    "Node": {"spec.unschedulable": lambda o: _text(bool(_path(o, "spec", "unschedulable")))},
    "ReplicaSet": {"status.replicas": lambda o: _text(_path(o, "status", "replicas") or 0)},
}

# Old client spellings kube-apiserver still accepts, rewritten to the real field.
_FIELD_ALIASES: dict[str, dict[str, str]] = {"Pod": {"spec.host": "spec.nodeName"}}


def selectable_fields(kind: str) -> dict[str, Callable[[Mapping[str, Any]], str]]:
    return {**_META_FIELDS, **SELECTABLE_FIELDS.get(kind, {})}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" (also for "==") or "!="
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    kind: str
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        readers = selectable_fields(self.kind)
        for req in self.requirements:
            have = readers[req.field](obj)
            if (have == req.value) != (req.operator == "="):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_unescaped_commas(text: str) -> list[str]:
    parts, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _unescape_field_value(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            # Go prints the rune as its code point here.
            raise bad_request(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(kind: str, text: str) -> FieldSelector:
    """Parse a fieldSelector for `kind`; unknown fields give upstream's 400."""
    terms = sorted(_split_unescaped_commas(text))
    reqs: list[FieldRequirement] = []
    for term in terms:
        if not term:
            continue
        for i in range(len(term)):
            op = next((o for o in ("!=", "==", "=") if term.startswith(o, i)), None)
            if op:
                field, raw = term[:i], term[i + len(op):]
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        value = _unescape_field_value(raw)
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    readers = selectable_fields(kind)
    aliases = _FIELD_ALIASES.get(kind, {})
    converted = []
    for req in reqs:
        field = aliases.get(req.field, req.field)
        if field not in readers:
            raise bad_request(f"field label not supported: {req.field}")
        converted.append(FieldRequirement(field, req.operator, req.value))
    return FieldSelector(kind, tuple(converted))
