"""Schema-aware walks over plain objects, after structured-merge-diff's typed package:
the field set of an object, the comparison of two objects, the apply merge, and removal."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import jsoncodec

from .fieldpath import EMPTY, FieldSet, Path, PathElement, key_element, path_string, value_element
from .fieldpath import field as field_element
from .strategy_schema import Node, NodeFacts, SchemaResolver, Shape

_MAX_DEPTH = 32


class _Absent:
    """A field that is not there at all, as opposed to one set to null."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Typed:
    """A resolver bound to the walks; `node` arguments are resolved schema nodes or None.

    The walks read each node through the resolver's NodeFacts (shape rule, resolved
    children, list keys), which answer as shape_of and the resolver's lookups do."""

    resolver: SchemaResolver

    def child(self, node: Node | None, key: str) -> tuple[Node | None, bool]:
        """(schema of field `key`, whether it is a declared struct field)."""
        facts = self.resolver.facts(node)
        return facts.child(key), key in facts.children

    def item_element(self, shape: Shape, node: Node | None, item: Any, index: int) -> PathElement:
        if shape is Shape.LIST_SET:
            return value_element(item)
        facts = self.resolver.facts(node)
        if not isinstance(item, dict) or not facts.list_keys:
            return ("i", index)
        return key_element(self.key_fields(facts, item)[0])

    def key_fields(self, facts: NodeFacts, item: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The key of a list-map item, and the key fields it omits that have no default.

        A key field the item omits takes the default its schema declares, so {port: 80} and
        {port: 80, protocol: TCP} are one Service port, as structured-merge-diff's
        keyedAssociativeListItemToPathElement (typed/helpers.go, since Kubernetes 1.20) does."""
        fields: dict[str, Any] = {}
        missing: list[str] = []
        for key, default in facts.key_defaults(self.resolver.facts(facts.items)):
            if key in item:
                fields[key] = item[key]
            elif default is not None:
                fields[key] = default
            else:
                missing.append(key)
        return fields, missing

    # -- applied configuration checks ----------------------------------------------------

    def applied_errors(self, value: Any, node: Node | None) -> list[str]:
        """What makes `value` unusable as an applied configuration, in structured-merge-diff's
        words (typed/validate.go doList, typed/helpers.go): a list-map item without a key field
        that has no default, a null or non-object item, two items with one key (after defaults).
        A live object may hold such lists (written by update); an apply may not."""
        errors: list[str] = []
        self._check_applied(value, node, (), errors)
        return errors

    def _check_applied(self, value: Any, node: Node | None, path: Path, errors: list[str]) -> None:
        facts = self.resolver.facts(node)
        shape = facts.shape(value)
        if shape in (Shape.STRUCT, Shape.MAP) and isinstance(value, dict):
            for key, child in value.items():
                self._check_applied(child, facts.child(key), path + (field_element(key),), errors)
            return
        keyed = shape is Shape.LIST_MAP and bool(facts.list_keys)
        if not isinstance(value, list) or not (keyed or shape is Shape.LIST_SET):
            return
        where = path_string(path)
        seen: set[PathElement] = set()
        for index, item in enumerate(value):
            if keyed:
                if not isinstance(item, dict):
                    what = "a null element" if item is None else "non-map elements"
                    errors.append(f"{where}: element {index}: associative list with keys may not have {what}")
                    continue
                fields, missing = self.key_fields(facts, item)
                if missing:
                    errors.append(f"{where}: element {index}: associative list with keys has an element that "
                                  f"omits key field {json.dumps(missing[0])} (and doesn't have default value)")
                    continue
                element = key_element(fields)
            elif item is None:
                errors.append(f"{where}: element {index}: associative list without keys has an element "
                              f"that's an explicit null")
                continue
            else:
                element = value_element(item)
            if element in seen:
                errors.append(f"{where}: duplicate entries for key {path_string((element,))}")
            seen.add(element)
            self._check_applied(item, facts.items, path + (element,), errors)

    def indexed_items(self, shape: Shape, node: Node | None, items: list[Any]) -> list[tuple[PathElement, Any]]:
        """Items with their path elements in order; a repeated element keeps its first item."""
        seen: set[PathElement] = set()
        out: list[tuple[PathElement, Any]] = []
        for index, item in enumerate(items):
            element = self.item_element(shape, node, item, index)
            if element not in seen:
                seen.add(element)
                out.append((element, item))
        return out

    # -- typed view ----------------------------------------------------------------------

    def with_zero_structs(self, value: Any, node: Node | None, depth: int = 0) -> Any:
        """value as it reads back from a Go object: non-pointer struct fields (properties
        defaulting to {}) are always there. Comparisons use this so that, as upstream, only
        maps that really appeared count as added."""
        if node is None or depth > _MAX_DEPTH:
            return value
        facts = self.resolver.facts(node)
        shape = facts.shape(value)
        if shape is Shape.STRUCT and isinstance(value, dict):
            out = dict(value)
            children = facts.children
            for name, item in value.items():
                if name in children:
                    out[name] = self.with_zero_structs(item, children[name], depth + 1)
            # appended in schema order, after the fields the value has
            for name, child in facts.zero_struct_fields:
                if name not in value:
                    out[name] = self.with_zero_structs({}, child, depth + 1)
            return out
        if shape is Shape.LIST_MAP and isinstance(value, list):
            item_node = facts.items
            return [self.with_zero_structs(item, item_node, depth + 1) for item in value]
        return value

    # -- field set -----------------------------------------------------------------------

    def field_set(self, value: Any, node: Node | None) -> FieldSet:
        """The fields an applied configuration sets (structured-merge-diff ToFieldSet)."""
        out: set[Path] = set()
        self._collect(value, node, (), out)
        return frozenset(out)

    def _collect(self, value: Any, node: Node | None, path: Path, out: set[Path]) -> None:
        facts = self.resolver.facts(node)
        shape = facts.shape(value)
        if shape is Shape.SCALAR or shape is Shape.ATOMIC:
            out.add(path)
            return
        if value is None:
            return
        if shape is Shape.STRUCT or shape is Shape.MAP:
            children = facts.children
            for key, child in value.items():
                child_path = path + (("f", key),)
                self._collect(child, facts.child(key), child_path, out)
                if key not in children:
                    out.add(child_path)
            return
        item_node = facts.items
        for element, item in self.indexed_items(shape, node, value):
            item_path = path + (element,)
            self._collect(item, item_node, item_path, out)
            out.add(item_path)

    # -- comparison ----------------------------------------------------------------------

    def compare(self, old: Any, new: Any, node: Node | None) -> Comparison:
        builder = _ComparisonBuilder()
        self._compare(old, new, node, (), builder)
        return builder.build()

    def _compare(self, old: Any, new: Any, node: Node | None, path: Path, acc: _ComparisonBuilder) -> None:
        if old is ABSENT:
            self._appeared(new, node, path, acc.added)
            return
        if new is ABSENT:
            self._appeared(old, node, path, acc.removed)
            return
        facts = self.resolver.facts(node)
        old_shape = facts.shape(old) if old is not ABSENT else None
        new_shape = facts.shape(new) if new is not ABSENT else None
        shape = new_shape or old_shape
        if shape is Shape.SCALAR or shape is Shape.ATOMIC or (old_shape and new_shape and old_shape != new_shape):
            acc.leaf(old, new, path)
            return
        if shape is Shape.STRUCT or shape is Shape.MAP:
            old_map = old if isinstance(old, dict) else {}
            new_map = new if isinstance(new, dict) else {}
            if not old_map and not new_map:
                acc.leaf(old, new, path)  # empty and null stay distinct leaves
                return
            for key in {**old_map, **new_map}:
                self._compare(old_map.get(key, ABSENT), new_map.get(key, ABSENT), facts.child(key),
                              path + (("f", key),), acc)
        else:
            old_list = old if isinstance(old, list) else []
            new_list = new if isinstance(new, list) else []
            if not old_list and not new_list:
                acc.leaf(old, new, path)
                return
            item_node = facts.items
            old_items = dict(self.indexed_items(shape, node, old_list))
            new_items = dict(self.indexed_items(shape, node, new_list))
            for element in {**old_items, **new_items}:
                self._compare(old_items.get(element, ABSENT), new_items.get(element, ABSENT), item_node,
                              path + (element,), acc)
        # a map, list or list item that appears or disappears is itself added or removed
        if old is ABSENT:
            acc.added.add(path)
        elif new is ABSENT:
            acc.removed.add(path)

    def _appeared(self, value: Any, node: Node | None, path: Path, out: set[Path]) -> None:
        """_compare with one side absent: the value's every path, itself included, is added
        (or removed), as the generic walk finds pairing it against nothing."""
        facts = self.resolver.facts(node)
        shape = facts.shape(value)
        if shape is Shape.SCALAR or shape is Shape.ATOMIC:
            out.add(path)
            return
        if shape is Shape.STRUCT or shape is Shape.MAP:
            if isinstance(value, dict) and value:
                for key, child in value.items():
                    self._appeared(child, facts.child(key), path + (("f", key),), out)
        elif isinstance(value, list) and value:
            item_node = facts.items
            for element, item in self.indexed_items(shape, node, value):
                self._appeared(item, item_node, path + (element,), out)
        out.add(path)

    # -- apply merge ---------------------------------------------------------------------

    def merge(self, live: Any, config: Any, node: Node | None) -> Any:
        """live merged with an applied config: config wins on leaves, associative lists and
        maps merge item by item, atomic values are replaced."""
        if config is ABSENT:
            return live
        if live is ABSENT:
            return jsoncodec.deepcopy(config)
        facts = self.resolver.facts(node)
        shape = facts.shape(config)
        if shape != facts.shape(live) or shape in (Shape.SCALAR, Shape.ATOMIC):
            return jsoncodec.deepcopy(config)
        if shape in (Shape.STRUCT, Shape.MAP):
            if not isinstance(live, dict) or not isinstance(config, dict):
                return jsoncodec.deepcopy(config)
            out = dict(live)
            for key, value in config.items():
                out[key] = self.merge(live.get(key, ABSENT), value, facts.child(key))
            return out
        if not isinstance(live, list) or not isinstance(config, list):
            return jsoncodec.deepcopy(config)
        item_node = facts.items
        # live lists may repeat a key (env does): repeats of an item the config leaves alone
        # keep their place, repeats of one it sets give way to it
        wanted = {element for element, _ in self.indexed_items(shape, node, config)}
        old_items: list[tuple[Any, Any]] = []
        seen: dict[PathElement, int] = {}
        for index, item in enumerate(live):
            element = self.item_element(shape, node, item, index)
            count = seen[element] = seen.get(element, 0) + 1
            if count == 1:
                old_items.append((element, item))
            elif element not in wanted:
                old_items.append((("repeat", element, count), item))
        merged: list[Any] = []
        for _, old, new in zip_lists(old_items, self.indexed_items(shape, node, config)):
            merged.append(self.merge(old, new, item_node))
        return merged

    # -- removal -------------------------------------------------------------------------

    def remove(self, value: Any, paths: FieldSet, node: Node | None) -> Any:
        """value without the given paths; maps and lists emptied by the removal go too,
        as Go's omitempty would drop them."""
        if not paths:
            return value
        prefixes = {p[:i] for p in paths for i in range(len(p))}
        result = self._remove(value, node, (), paths, prefixes)
        return {} if result is ABSENT else result

    def _remove(self, value: Any, node: Node | None, path: Path, targets: FieldSet,
                prefixes: set[Path], keys: tuple[str, ...] = ()) -> Any:
        facts = self.resolver.facts(node)
        shape = facts.shape(value)
        if shape in (Shape.STRUCT, Shape.MAP) and isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, child in value.items():
                child_path = path + (field_element(key),)
                if child_path in targets and key not in keys:  # a kept list item keeps its key
                    continue
                if child_path in prefixes:
                    child = self._remove(child, facts.child(key), child_path, targets, prefixes)
                    if child is ABSENT:
                        continue
                out[key] = child
            emptied = value and not out and shape is Shape.MAP
            return ABSENT if emptied and path else out
        if shape in (Shape.LIST_MAP, Shape.LIST_SET) and isinstance(value, list):
            item_node = facts.items
            kept: list[Any] = []
            for index, item in enumerate(value):
                item_path = path + (self.item_element(shape, node, item, index),)
                if item_path in targets:
                    continue
                if item_path in prefixes:
                    item = self._remove(item, item_node, item_path, targets, prefixes,
                                        facts.list_keys if shape is Shape.LIST_MAP else ())
                kept.append(item)
            return ABSENT if value and not kept else kept
        return value


@dataclass(frozen=True)
class Comparison:
    """Paths added, modified and removed going from an old object to a new one."""

    added: FieldSet = EMPTY
    modified: FieldSet = EMPTY
    removed: FieldSet = EMPTY

    @property
    def changed(self) -> FieldSet:
        return self.added | self.modified


@dataclass
class _ComparisonBuilder:
    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    def leaf(self, old: Any, new: Any, path: Path) -> None:
        if old is ABSENT:
            self.added.add(path)
        elif new is ABSENT:
            self.removed.add(path)
        elif not same_json(old, new):
            self.modified.add(path)

    def build(self) -> Comparison:
        return Comparison(frozenset(self.added), frozenset(self.modified), frozenset(self.removed))


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: 1 and true differ, 1 and 1.0 do not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if type(a) in (int, float) and type(b) in (int, float):
        return a == b
    return type(a) is type(b) and a == b


def zip_lists(old: list[tuple[Any, Any]], new: list[tuple[Any, Any]]) -> list[tuple[Any, Any, Any]]:
    """Pairs up items of two keyed lists in the merged order structured-merge-diff produces:
    the new list's order, with items only in the old list kept where they stood."""
    old_map = dict(old)
    new_map = dict(new)
    shared = [e for e, _ in new if e in old_map]
    shared_at = 0
    next_shared = shared[0] if shared else None
    out: list[tuple[Any, Any, Any]] = []
    li = ri = 0

    def advance_shared() -> None:
        nonlocal shared_at, next_shared
        shared_at += 1
        next_shared = shared[shared_at] if shared_at < len(shared) else None

    while li < len(old) or ri < len(new):
        progress = (li, ri)
        if li < len(old) and ri < len(new):
            element = old[li][0]
            if element == new[ri][0]:
                out.append((element, old_map[element], new_map[element]))
                li += 1
                ri += 1
                advance_shared()
                continue
            if element in new_map and next_shared is not None and next_shared != element:
                li += 1  # shared item, taken when the new list reaches it
                continue
        if li < len(old) and old[li][0] not in new_map:
            out.append((old[li][0], old[li][1], ABSENT))
            li += 1
            continue
        if ri < len(new):
            element = new[ri][0]
            out.append((element, old_map.get(element, ABSENT), new_map[element]))
            ri += 1
            if next_shared == element:
                advance_shared()
        if (li, ri) == progress:
            li += 1  # an old shared item already merged: nothing left to emit for it
    return out

