"""Field paths and sets as structured-merge-diff names them, and their FieldsV1 encoding.

A path element is ("f", field name), ("k", key JSON), ("v", value JSON) or ("i", index); the
JSON forms are canonical (sorted keys, compact) so equal items compare equal.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

PathElement = tuple[str, Any]
Path = tuple[PathElement, ...]
FieldSet = frozenset[Path]

EMPTY: FieldSet = frozenset()
_KIND_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def field(name: str) -> PathElement:
    return ("f", name)


def key_element(fields: dict[str, Any]) -> PathElement:
    return ("k", canonical_json(fields))


def value_element(value: Any) -> PathElement:
    return ("v", canonical_json(value))


def path_string(path: Path) -> str:
    """The path as conflict messages print it: .spec.containers[name="web"].image."""
    out: list[str] = []
    for kind, payload in path:
        if kind == "f":
            out.append("." + payload)
        elif kind == "k":
            pairs = json.loads(payload)
            out.append("[" + ",".join(f"{k}={canonical_json(v)}" for k, v in sorted(pairs.items())) + "]")
        elif kind == "v":
            out.append(f"[={payload}]")
        else:
            out.append(f"[{payload}]")
    return "".join(out)


def element_sort_key(element: PathElement) -> tuple[int, str | int]:
    kind, payload = element
    return (_KIND_ORDER[kind], payload if kind != "i" else int(payload))


def path_sort_key(path: Path) -> tuple[tuple[int, str | int], ...]:
    return tuple(element_sort_key(e) for e in path)


def encode_element(element: PathElement) -> str:
    kind, payload = element
    return f"{kind}:{payload}"


def decode_element(text: str) -> PathElement:
    kind, sep, payload = text.partition(":")
    if not sep or kind not in _KIND_ORDER:
        raise ValueError(f"unknown path element {text!r}")
    if kind == "i":
        return ("i", int(payload))
    if kind in ("k", "v"):
        return (kind, canonical_json(json.loads(payload)))
    return ("f", payload)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Encodes a set as FieldsV1: nested "f:"/"k:"/"v:"/"i:" keys; "." marks a member with children."""
    tree: dict[PathElement, Any] = {}
    members: set[Path] = set()
    for path in paths:
        members.add(path)
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return _encode_tree(tree, (), members)


def _encode_tree(tree: dict[PathElement, Any], prefix: Path, members: set[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for element in sorted(tree, key=element_sort_key):
        path = prefix + (element,)
        children = _encode_tree(tree[element], path, members)
        if children and path in members:
            children = {".": {}, **children}
        out[encode_element(element)] = children
    return out


def from_fields_v1(fields: Any) -> FieldSet:
    """Decodes FieldsV1; raises ValueError on a malformed document."""
    if not isinstance(fields, dict):
        raise ValueError("fieldsV1 must be an object")
    out: set[Path] = set()
    _decode_tree(fields, (), out)
    return frozenset(out)


def _decode_tree(tree: dict[str, Any], prefix: Path, out: set[Path]) -> None:
    for text, children in tree.items():
        if text == ".":
            out.add(prefix)
            continue
        path = prefix + (decode_element(text),)
        if not isinstance(children, dict):
            raise ValueError(f"value of {text!r} must be an object")
        if children:
            _decode_tree(children, path, out)
        else:
            out.add(path)


def ancestors(paths: Iterable[Path]) -> set[Path]:
    """Every proper prefix of the given paths (the parents an owned field keeps alive)."""
    out: set[Path] = set()
    for path in paths:
        for i in range(len(path)):
            out.add(path[:i])
    return out


def without_prefixes(paths: Iterable[Path], prefixes: Iterable[Path]) -> FieldSet:
    """Drops paths equal to or under any of the prefixes (reset and system fields)."""
    prefixes = tuple(prefixes)
    return frozenset(p for p in paths if not any(p[:len(q)] == q for q in prefixes))
