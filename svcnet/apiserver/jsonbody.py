"""JSON request bodies, read as kube-apiserver reads them: duplicate keys reported with their paths,
NaN/Infinity refused, and nesting bounded before anything recurses on it (YAML's twin is
yamlbody.py; the type checks that follow are decoding.py's)."""
from __future__ import annotations

import json


class _Pairs(list):
    """A JSON object as its key/value pairs, duplicates kept (json object_pairs_hook)."""


class _RepeatedKey(Exception):
    """A JSON object named a key twice: its path needs the slower, path-keeping parse."""


def _dict_of_unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _RepeatedKey
    return out


# How deep a request body may nest objects and arrays (the top-level value is depth 1).
#
# Upstream's JSON decoder stops at 10000 levels (Go's encoding/json scanner.go, maxNestingDepth,
# "exceeded max depth", kept by sigs.k8s.io/json) and go-yaml at 10000 too ("exceeded max depth
# of 10000"). Python cannot follow: json, PyYAML and svcnet's own walks (defaulting, patches,
# managed fields, the YAML encoder) recurse once or more per level within a 1000-frame stack.
# So svcnet takes the bound of the decoder kube-apiserver wrote for typed bodies most recently,
# its CBOR decoder (apimachinery pkg/runtime/serializer/cbor/internal/modes/decode.go:
# MaxNestedLevels 64, "observed depth up to 16" in a CronJobList), and leaves room above it.
MAX_NESTING_DEPTH = 100


class NestingTooDeep(ValueError):
    """A value nested deeper than MAX_NESTING_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"exceeded max depth of {MAX_NESTING_DEPTH}")


def check_depth(value: object, limit: int = MAX_NESTING_DEPTH) -> None:
    """Raise NestingTooDeep if value nests dicts and lists more than limit levels deep.

    A loop with its own stack, not recursion: it must answer for any value it is given.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            raise NestingTooDeep
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def _may_nest_deeper(text: str | bytes, limit: int) -> bool:
    """False when text has too few brackets to nest past limit (every body svcnet usually gets)."""
    if isinstance(text, str):
        return text.count("{") + text.count("[") > limit
    return text.count(b"{") + text.count(b"[") > limit


def load_json_strict(text: str | bytes) -> tuple[object, list[str]]:
    """Parse JSON, returning (value, paths of duplicated keys) as sigs.k8s.io/json reports them.

    Python's json keeps the last of duplicate keys silently, like Go; this also
    says which keys were duplicated, so Strict can reject them. The last value
    wins, as upstream.

    A document nested deeper than MAX_NESTING_DEPTH raises NestingTooDeep (a ValueError,
    as every other parse error), however deep it goes: json's own recursion guard stops
    a 100,000-level document after about a thousand levels.
    """
    try:
        value, duplicates = _load_json(text)
    except RecursionError:
        raise NestingTooDeep from None
    if isinstance(value, dict | list) and _may_nest_deeper(text, MAX_NESTING_DEPTH):
        check_depth(value)
    return value, duplicates


def _not_json(literal: str) -> object:
    """NaN and Infinity are Python's, not JSON's: Go's scanner stops at their first letter."""
    raise ValueError(f"invalid character '{literal.lstrip('-')[0]}' looking for beginning of value")


def _load_json(text: str | bytes) -> tuple[object, list[str]]:
    try:
        # Bodies almost never repeat a key: then one plain parse is the whole answer.
        return json.loads(text, object_pairs_hook=_dict_of_unique_pairs,
                          parse_constant=_not_json), []
    except _RepeatedKey:
        pass
    raw = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_not_json)
    duplicates: list[str] = []

    def build(value: object, path: str) -> object:
        if isinstance(value, _Pairs):
            out: dict[str, object] = {}
            for key, item in value:
                child = f"{path}.{key}" if path else key
                if key in out:
                    duplicates.append(child)
                out[key] = build(item, child)
            return out
        if isinstance(value, list):
            return [build(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return value

    return build(raw, ""), duplicates
