"""Label selectors: parse `kubectl get -l` text and metav1.LabelSelector objects, match labels
and render selectors, with the grammar and error wording of apimachinery's labels package."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.errors import ApiError, bad_request

from .syntax import go_quote, label_key_errors, label_value_errors

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


