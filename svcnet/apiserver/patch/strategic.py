"""Kubernetes strategic merge patch, applied as apimachinery's strategicpatch applies it server-side.

Merge strategies come from the OpenAPI schema (x-kubernetes-patch-strategy / -merge-key).
Errors carry upstream's wording and status codes: malformed directives are 400, lists of lists
422, and everything else (a missing merge key, a bad $patch) a 500 whose message kubectl prints
as "Error from server: ...".
"""
from __future__ import annotations

from typing import Any

from svcnet.api import jsoncodec
from svcnet.api.errors import ApiError, bad_request

from .jsonpatches import generic_invalid
from .strategy_schema import Node, SchemaResolver, patch_meta

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"

_ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
_ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
_ERR_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_ERR_LIST_OF_LISTS = "lists of lists are not supported"


class _PatchError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Drop:
    """A patch value that removes its field (a map carrying $patch where nothing was)."""


_DROP: Any = _Drop()


def strategic_merge_patch(original: dict[str, Any], patch: Any, resolver: SchemaResolver,
                          root_ref: str) -> dict[str, Any]:
    """Applies a strategic merge patch to `original` (not modified) and returns the result."""
    if not isinstance(patch, dict):
        kind = "array" if isinstance(patch, list) else "string" if isinstance(patch, str) else "value"
        raise bad_request(f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    engine = _Engine(resolver)
    try:
        return engine.merge_map(jsoncodec.deepcopy(original), jsoncodec.deepcopy(patch), resolver.root(root_ref))
    except _PatchError as exc:
        if exc.code == 400:
            raise bad_request(exc.message) from exc
        if exc.code == 422:
            raise generic_invalid() from exc
        # not a Status error upstream: answered as 500 with an empty (Unknown) reason
        raise ApiError(500, "", exc.message) from exc


class _Engine:
    def __init__(self, resolver: SchemaResolver) -> None:
        self.resolver = resolver

    # -- maps ----------------------------------------------------------------------------

    def merge_map(self, original: dict[str, Any] | None, patch: dict[str, Any], node: Node | None
                  ) -> dict[str, Any]:
        if DIRECTIVE in patch:
            directive = patch[DIRECTIVE]
            if directive == "replace":
                return fresh_map({k: v for k, v in patch.items() if k != DIRECTIVE})
            if directive == "delete":
                return {}
            raise _PatchError(500, f"unknown patch type: {go_format(directive)} in map: {go_format(patch)}")
        if original is None:
            original = {}
        _apply_retain_keys(original, patch)
        self._merge_element_order_lists(original, patch, node)
        for key, patch_value in patch.items():
            is_delete_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
            if is_delete_list:
                key = _strip_prefix(key, DELETE_FROM_PRIMITIVE_LIST, _ERR_PRIMITIVE_LIST)
            if patch_value is None:
                original.pop(key, None)
                continue
            if key not in original or _json_kind(original[key]) != _json_kind(patch_value):
                if not is_delete_list:
                    _set_fresh(original, key, patch_value)
                continue
            current = original[key]
            child = self.resolver.property(node, key)
            meta = patch_meta(child)
            strategy = _strategy(meta.strategy)
            if isinstance(current, dict):
                if strategy == "replace":
                    _set_fresh(original, key, patch_value)
                else:
                    original[key] = self.merge_map(current, patch_value, child)
            elif isinstance(current, list):
                original[key] = self.merge_list_field(current, patch_value, child, strategy, meta.merge_key,
                                                      is_delete_list)
            else:
                _set_fresh(original, key, patch_value)
        return original

    def _merge_element_order_lists(self, original: dict[str, Any], patch: dict[str, Any],
                                   node: Node | None) -> None:
        """Merges each list named by a $setElementOrder/<field> directive, then orders it:
        $setElementOrder first, then the order of the patch list, then the live order."""
        for order_key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
            order = patch.pop(order_key)
            if not isinstance(order, list):
                raise _PatchError(500, f"expected a slice, but received a {_go_kind(order)}")
            key = _strip_prefix(order_key, SET_ELEMENT_ORDER, _ERR_SET_ELEMENT_ORDER)
            has_original, has_patch = key in original, key in patch
            original_list = original.get(key)
            patch_list = patch.get(key)
            for present, value in ((has_original, original_list), (has_patch, patch_list)):
                if present and not isinstance(value, list):
                    raise _PatchError(500, f"expected a slice, but received a {_go_kind(value)}")
            child = self.resolver.property(node, key)
            meta = patch_meta(child)
            strategy = _strategy(meta.strategy)
            _validate_against_order(patch_list or [], order, meta.merge_key)
            if has_original and not has_patch:
                merged = list(original_list or [])
            elif has_patch and not has_original:
                merged = fresh_list(patch_list or [])
            elif has_original and has_patch:
                merged = self.merge_list_field(original_list or [], patch_list or [], child, strategy,
                                               meta.merge_key, False)
            else:
                continue
            kind = _element_kind(original_list or [], patch_list or [])
            in_order, server_only = _partition(merged, order, meta.merge_key)
            original[key] = _normalize_element_order(in_order, server_only, order, original_list or [],
                                                     meta.merge_key, kind)
            patch.pop(key, None)

    # -- lists ---------------------------------------------------------------------------

    def merge_list_field(self, original: list[Any], patch: Any, node: Node | None, strategy: str,
                         merge_key: str, is_delete_list: bool) -> list[Any]:
        if not isinstance(patch, list):
            raise _PatchError(500, f"expected a slice, but received a {_go_kind(patch)}")
        if strategy != "merge":
            return fresh_list(patch)
        return self.merge_list(original, patch, self.resolver.items(node), merge_key, is_delete_list)

    def merge_list(self, original: list[Any], patch: list[Any], item_node: Node | None, merge_key: str,
                   is_delete_list: bool) -> list[Any]:
        if not original and not patch:
            return original
        kind = _element_kind(original, patch)
        if kind != "map":
            if is_delete_list:
                doomed = {_scalar_key(v) for v in patch}
                return [v for v in original if _scalar_key(v) not in doomed]
            merged = _dedupe_scalars(original + patch)
        else:
            if not merge_key:
                raise _PatchError(500, "cannot merge lists without merge key for type map")
            original, patch = _apply_list_directives(original, patch, merge_key)
            merged = list(original)
            for item in patch:
                if merge_key not in item:
                    raise _PatchError(500, _no_merge_key(item, merge_key))
                index = _find_by_key(merged, merge_key, item[merge_key])
                if index is None:
                    merged.append(fresh_map(item))
                else:
                    merged[index] = self.merge_map(merged[index], item, item_node)
        in_patch, server_only = _partition(merged, patch, merge_key)
        return _normalize_element_order(in_patch, server_only, patch, original, merge_key, kind)


# -- directives --------------------------------------------------------------------------

def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """$retainKeys: drop every original field not listed; the patch may only set listed ones."""
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list):
        raise _PatchError(400, _ERR_RETAIN_KEYS)
    keep = {k for k in retained if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise _PatchError(400, _ERR_RETAIN_KEYS)
    for key in [k for k in original if k not in keep]:
        del original[key]


def _apply_list_directives(original: list[Any], patch: list[Any], merge_key: str
                           ) -> tuple[list[Any], list[Any]]:
    """Handles list items carrying $patch: delete removes matches, replace swaps the list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _PatchError(500, _no_merge_key(item, merge_key))
            original = [o for o in original if not (isinstance(o, dict) and merge_key in o
                                                    and _scalar_key(o[merge_key]) == _scalar_key(item[merge_key]))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _PatchError(500, "merging lists cannot yet be specified in the patch")
        else:
            raise _PatchError(500, f"unknown patch type: {go_format(directive)} in map: {go_format(item)}")
    if replace:
        return fresh_list(plain), []
    return original, plain


def _validate_against_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list must follow the $setElementOrder list's relative order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise _PatchError(500, f"expected a map, but received a {_go_kind(item)}")
        items = [i for i in patch_list if i.get(DIRECTIVE) != "delete"]
    at_patch = at_order = 0
    while at_patch < len(items) and at_order < len(order):
        if isinstance(items[at_patch], dict) and DIRECTIVE in items[at_patch]:
            at_patch += 1
            continue
        if _merge_key_equal(items[at_patch], order[at_order], merge_key):
            at_patch += 1
        at_order += 1
    if at_patch < len(items) and at_order >= len(order):
        raise _PatchError(500, f"The order in patch list:\n{go_format(patch_list)}\n doesn't match "
                               f"{SET_ELEMENT_ORDER} list:\n{go_format(order)}\n")


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _scalar_key(left) == _scalar_key(right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _PatchError(500, f"expected a map, but received a {_go_kind(item)}")
        if merge_key not in item:
            raise _PatchError(500, _no_merge_key(item, merge_key))
    return _scalar_key(left[merge_key]) == _scalar_key(right[merge_key])


# -- ordering ----------------------------------------------------------------------------

def _partition(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Splits items into those present in `by` (patch items) and the rest (server-only)."""
    if not merge_key:
        present = {_scalar_key(v) for v in by}
        return ([v for v in items if _scalar_key(v) in present],
                [v for v in items if _scalar_key(v) not in present])
    wanted = {_scalar_key(b.get(merge_key)) for b in by if isinstance(b, dict) and merge_key in b}
    in_by: list[Any] = []
    rest: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _PatchError(500, f"expected a map, but received a {_go_kind(item)}")
        if merge_key not in item:
            raise _PatchError(500, _no_merge_key(item, merge_key))
        (in_by if _scalar_key(item[merge_key]) in wanted else rest).append(item)
    return in_by, rest


def _normalize_element_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                             server_order: list[Any], merge_key: str, kind: str) -> list[Any]:
    patch_items = _sort_by_order(patch_items, patch_order, merge_key, kind)
    server_only = _sort_by_order(server_only, server_order, merge_key, kind)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, kind)


def _sort_by_order(items: list[Any], order: list[Any], merge_key: str, kind: str) -> list[Any]:
    to_delete: list[Any] = []
    if kind == "map":
        for item in (*items, *order):
            if not isinstance(item, dict):
                raise _PatchError(500, f"expected a map, but received a {_go_kind(item)}")
            if merge_key not in item:
                raise _PatchError(500, _no_merge_key(item, merge_key))
        to_delete = [i for i in items if i.get(DIRECTIVE) == "delete"]
        items = [i for i in items if i.get(DIRECTIVE) != "delete"]

    def less(a: Any, b: Any) -> bool:
        # upstream's comparator: items missing from the order list count as smaller
        ia, ib = _index(order, a, merge_key, kind), _index(order, b, merge_key, kind)
        return ia < ib if ia >= 0 and ib >= 0 else True

    ordered = list(items)
    for i in range(1, len(ordered)):  # insertion sort, as Go's stable sort does on short lists
        j = i
        while j > 0 and less(ordered[j], ordered[j - 1]):
            ordered[j], ordered[j - 1] = ordered[j - 1], ordered[j]
            j -= 1
    return ordered + to_delete


def _merge_sorted(left: list[Any], right: list[Any], server_order: list[Any], merge_key: str,
                  kind: str) -> list[Any]:
    """Interleaves server-only items (left) into patch items (right) by their live positions."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, kind)
            ri = _index(server_order, right[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _index(items: list[Any], value: Any, merge_key: str, kind: str) -> int:
    def ident(item: Any) -> Any:
        if kind == "map":
            return _scalar_key(item.get(merge_key)) if isinstance(item, dict) else _scalar_key(None)
        return _scalar_key(item)

    wanted = ident(value)
    for position, item in enumerate(items):
        if ident(item) == wanted:
            return position
    return -1


# -- values ------------------------------------------------------------------------------

def fresh_map(value: dict[str, Any]) -> dict[str, Any]:
    result = fresh(value)
    return result if isinstance(result, dict) else {}


def fresh_list(value: list[Any]) -> list[Any]:
    return [v for v in (fresh(x) for x in value) if v is not _DROP]


def fresh(value: Any) -> Any:
    """A patch value taken as is: nested nulls and directives go, as decoding into the typed
    object drops them upstream; a map carrying $patch is dropped altogether."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return _DROP
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or key == RETAIN_KEYS or key.startswith(
                    (SET_ELEMENT_ORDER + "/", DELETE_FROM_PRIMITIVE_LIST + "/")):
                continue
            item = fresh(item)
            if item is not _DROP:
                out[key] = item
        return out
    if isinstance(value, list):
        return fresh_list(value)
    return value


def _set_fresh(target: dict[str, Any], key: str, value: Any) -> None:
    value = fresh(value)
    if value is _DROP:
        target.pop(key, None)
    else:
        target[key] = value


def _strategy(strategies: str) -> str:
    """The merge strategy without retainKeys ("merge,retainKeys" -> "merge")."""
    if not strategies:
        return ""
    parts = strategies.split(",")
    if len(parts) == 1:
        return "" if parts[0] == "retainKeys" else parts[0]
    if len(parts) == 2 and "retainKeys" in parts:
        return parts[0] if parts[1] == "retainKeys" else parts[1]
    raise _PatchError(500, f"unexpected patch strategy: {strategies}")


def _strip_prefix(key: str, prefix: str, error: str) -> str:
    head, sep, tail = key.partition("/")
    if not sep or head != prefix:
        raise _PatchError(400, error)
    return tail


def _element_kind(*lists: list[Any]) -> str:
    kinds = {_json_kind(v) for lst in lists for v in lst}
    if not kinds:
        raise _PatchError(500, "no elements in any of the given slices")
    if "list" in kinds:
        raise _PatchError(422, _ERR_LIST_OF_LISTS)
    if len(kinds) > 1:
        raise _PatchError(500, f"list element types are not identical: {go_format(list(lists))}")
    return kinds.pop()


def _find_by_key(items: list[Any], merge_key: str, value: Any) -> int | None:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _PatchError(500, f"value for key {index} is not a map.")
        if merge_key in item and _scalar_key(item[merge_key]) == _scalar_key(value):
            return index
    return None


def _dedupe_scalars(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for value in values:
        key = _scalar_key(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _scalar_key(value: Any) -> Any:
    """Go interface equality: int64 and float64 differ, and so do 1 and true."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, (dict, list)):
        return ("json", go_format(value))
    return (type(value).__name__, value)


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "null" if value is None else "string"


def _go_kind(value: Any) -> str:
    return {"map": "map", "list": "slice", "int": "int64", "float": "float64", "null": "invalid"}.get(
        _json_kind(value), _json_kind(value))


def _no_merge_key(item: Any, merge_key: str) -> str:
    return f"map: {go_format(item)} does not contain declared merge key: {merge_key}"


def go_format(value: Any) -> str:
    """Go's %v of a decoded JSON value: map[k:v ...] with sorted keys, [a b], <nil>."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return str(value)
