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
    # A tree of path elements; the key None marks a node that is itself a member of the set.
    tree: dict[PathElement | None, Any] = {}
    for path in paths:
        node = tree
        for element in path:
            child = node.get(element)
            if child is None:
                child = node[element] = {}
            node = child
        node[None] = True
    return _encode_tree(tree)


def _encode_tree(tree: dict[PathElement | None, Any]) -> dict[str, Any]:
    elements = [element for element in tree if element is not None]
    if len(elements) > 1:
        elements.sort(key=element_sort_key)
    out: dict[str, Any] = {}
    for element in elements:
        subtree = tree[element]
        if len(subtree) == 1 and None in subtree:
            children: dict[str, Any] = {}  # a member with nothing under it
        else:
            children = _encode_tree(subtree)
            if None in subtree:
                children = {".": {}, **children}
        out[f"{element[0]}:{element[1]}"] = children
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
    if prefixes and all(len(q) == 1 for q in prefixes):
        # the usual case (status or spec): a path goes when its first element is one of them
        heads = {q[0] for q in prefixes}
        return frozenset(p for p in paths if not (p and p[0] in heads))
    return frozenset(p for p in paths if not any(p[:len(q)] == q for q in prefixes))
