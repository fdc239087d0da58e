"""Server-side apply and managedFields bookkeeping, after kube-apiserver's field manager
(k8s.io/apimachinery managedfields over structured-merge-diff).

Ownership is a set of field paths per manager entry (manager, operation, apiVersion for
updates, subresource). An apply sets what the configuration names, drops what the same
manager applied before and no manager owns any more, and fails on a field another manager
owns that the apply changes, unless forced. Any other write takes ownership of what it changes.
"""
from __future__ import annotations

import copy
import json
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from svcnet.api import jsoncodec
from svcnet.api.errors import ApiError, Cause, bad_request, invalid
from svcnet.api.objects import annotations_of, metadata_of

from .fieldpath import (
    EMPTY,
    FieldSet,
    Path,
    ancestors,
    from_fields_v1,
    path_sort_key,
    path_string,
    to_fields_v1,
    without_prefixes,
)
from .strategy_schema import Node, SchemaResolver
from .typed import Comparison, Typed, same_json

APPLY = "Apply"
UPDATE = "Update"
# Owner of whatever an object held when it is first applied without any managedFields.
BEFORE_FIRST_APPLY = "before-first-apply"
FIELD_MANAGER_MAX_LENGTH = 128
# kubectl apply --server-side's default manager; it alone takes over client-side apply state.
KUBECTL = "kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _f(*names: str) -> Path:
    return tuple(("f", n) for n in names)


# Fields no manager owns: identity and server-maintained metadata (upstream's stripMeta).
_SYSTEM_FIELDS: FieldSet = frozenset({
    _f("apiVersion"), _f("kind"), _f("metadata"),
    *(_f("metadata", n) for n in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                  "clusterName", "generation", "managedFields", "resourceVersion")),
})


@dataclass(frozen=True)
class ManagerKey:
    """What makes two managedFields entries the same one (upstream's manager identifier)."""

    manager: str
    operation: str
    api_version: str  # only updates are told apart by version
    subresource: str


@dataclass(frozen=True)
class ManagedEntry:
    """One metadata.managedFields entry: who owns which fields, as of when."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    fields: FieldSet
    time: str | None

    @property
    def key(self) -> ManagerKey:
        version = self.api_version if self.operation == UPDATE else ""
        return ManagerKey(self.manager, self.operation, version, self.subresource)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = to_fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def field_manager_for(field_manager: str | None, user_agent: str | None) -> str:
    """The fieldManager query parameter, or else the user agent up to its first "/"
    ("kubectl/v1.32.0 (linux/amd64) ..." -> "kubectl"), printable and at most 128 bytes."""
    if field_manager:
        return field_manager
    prefix = (user_agent or "").split("/", 1)[0]
    out = ""
    for char in prefix:
        if not char.isprintable():
            continue
        if len((out + char).encode()) > FIELD_MANAGER_MAX_LENGTH:
            break
        out += char
    return out


def decode_managed_fields(obj: dict[str, Any] | None) -> dict[ManagerKey, ManagedEntry]:
    """The object's managedFields by manager; malformed entries are skipped."""
    raw = metadata_of(obj).get("managedFields")
    entries: dict[ManagerKey, ManagedEntry] = {}
    if not isinstance(raw, list):
        return entries
    for item in raw:
        if not isinstance(item, dict) or not item.get("manager") or item.get("operation") not in (APPLY, UPDATE):
            continue
        try:
            fields = from_fields_v1(item.get("fieldsV1") or {})
        except (ValueError, TypeError):
            continue
        entry = ManagedEntry(str(item["manager"]), str(item["operation"]), str(item.get("apiVersion") or ""),
                             str(item.get("subresource") or ""), fields, item.get("time"))
        if entry.key in entries:
            entry = replace(entry, fields=entry.fields | entries[entry.key].fields)
        entries[entry.key] = entry
    return entries


def encode_managed_fields(entries: Iterable[ManagedEntry]) -> list[dict[str, Any]]:
    """Entries in upstream's order: applies first, then by time, manager, version, subresource."""
    ordered = sorted(entries, key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.to_dict() for e in ordered]


def server_side_apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool,
                      resolver: SchemaResolver, root_ref: str, now: str, *,
                      subresource: str = "") -> dict[str, Any]:
    """Applies `applied` for `manager` over `live` (None: the object does not exist yet) and
    returns the merged object with metadata.managedFields maintained; raises a 409 Conflict
    naming each conflicting field unless `force`, which moves ownership to `manager`."""
    if not manager:
        raise invalid("PatchOptions", "", [Cause("fieldManager", "Required value: is required for apply requests",
                                                 "FieldValueRequired")], group="meta.k8s.io")
    if not isinstance(applied, dict):
        raise bad_request("error decoding YAML: the applied configuration must be an object")
    if metadata_of(applied).get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    typed = Typed(resolver)
    node = resolver.root(root_ref)
    reset = _reset_fields(subresource)
    config = jsoncodec.without_nulls(applied)
    problems = typed.applied_errors(config, node)
    if problems:
        raise _untyped_configuration(config, problems)
    live_obj = _without_managed_fields(live) if live is not None else {}
    entries = decode_managed_fields(live)

    if live is not None and not entries:
        owned_before = _owned(typed.compare(zero_object(resolver, node), typed.with_zero_structs(live_obj, node),
                                            node).changed, reset)
        if owned_before:
            first = ManagedEntry(BEFORE_FIRST_APPLY, UPDATE, str(live_obj.get("apiVersion") or ""), "",
                                 owned_before, now)
            entries[first.key] = first

    plan = _ApplyPlan(typed, node, reset, live_obj, entries, config, manager, subresource, now)
    try:
        merged = plan.run(force)
    except _Conflicts as exc:
        if manager != KUBECTL:
            raise exc.error() from None
        # kubectl's first server-side apply may take over what it applied client-side
        allowed = _allowed_by_last_applied(typed, node, live_obj)
        remaining = {k: paths - allowed for k, paths in exc.conflicts.items() if paths - allowed}
        if remaining:
            raise _Conflicts(remaining).error() from None
        merged = plan.run(True)
    if manager == KUBECTL and LAST_APPLIED in annotations_of(merged):
        merged["metadata"]["annotations"][LAST_APPLIED] = last_applied_configuration(applied)
    return merged


@dataclass(frozen=True)
class _ApplyPlan:
    typed: Typed
    node: Node | None
    reset: tuple[Path, ...]
    live: dict[str, Any]
    entries: dict[ManagerKey, ManagedEntry]
    config: dict[str, Any]
    manager: str
    subresource: str
    now: str

    def run(self, force: bool) -> dict[str, Any]:
        typed, node, live = self.typed, self.node, self.live
        entries = dict(self.entries)
        key = ManagerKey(self.manager, APPLY, "", self.subresource)
        previous = entries.get(key)
        last_applied = previous.fields if previous else EMPTY
        api_version = str(self.config.get("apiVersion") or live.get("apiVersion") or "")
        entries[key] = ManagedEntry(self.manager, APPLY, api_version, self.subresource,
                                    _owned(typed.field_set(self.config, node), self.reset),
                                    previous.time if previous else self.now)

        merged = typed.merge(live, self.config, node)
        owned_now = frozenset().union(*(e.fields for e in entries.values()))
        kept_for_children = ancestors(owned_now)
        # what this manager applied before, omits now, and nobody else owns, goes
        dropped = frozenset(p for p in last_applied - owned_now if p not in kept_for_children)
        merged = jsoncodec.deepcopy(typed.remove(merged, dropped, node))

        comparison = _filtered(typed.compare(typed.with_zero_structs(live, node),
                                             typed.with_zero_structs(merged, node), node), self.reset)
        conflicts = {k: e.fields & comparison.changed for k, e in entries.items() if k != key}
        conflicts = {k: paths for k, paths in conflicts.items() if paths}
        if conflicts and not force:
            raise _Conflicts(conflicts)

        result: dict[ManagerKey, ManagedEntry] = {}
        for entry_key, entry in entries.items():
            fields = entry.fields
            if entry_key != key:
                fields = fields - conflicts.get(entry_key, EMPTY) - comparison.removed
            if fields:
                result[entry_key] = replace(entry, fields=fields)
        if key in result and (previous is None or not same_json(live, merged)):
            result[key] = replace(result[key], time=self.now)
        return _with_managed_fields(merged, result.values())


def _untyped_configuration(config: dict[str, Any], problems: list[str]) -> ApiError:
    """An applied configuration structured-merge-diff cannot type, in the words of kube-apiserver's
    structuredMergeManager.Apply (managedfields/internal/structuredmerge.go): "failed to create
    typed patch object (ns/name; group/version, Kind=K): ...". kube-apiserver 1.32 answers this
    with a 500; svcnet answers 400, as the client sent it (kubernetes/kubernetes#139253)."""
    md = metadata_of(config)
    api_version = str(config.get("apiVersion") or "")
    group_version = api_version if "/" in api_version else "/" + api_version
    what = f"{md.get('namespace') or ''}/{md.get('name') or ''}; {group_version}, Kind={config.get('kind') or ''}"
    detail = problems[0] if len(problems) == 1 else "errors:\n" + "\n".join("  " + p for p in problems)
    return bad_request(f"failed to create typed patch object ({what}): {detail}")


class _Conflicts(Exception):
    def __init__(self, conflicts: dict[ManagerKey, FieldSet]) -> None:
        super().__init__("apply conflicts")
        self.conflicts = conflicts

    def error(self) -> ApiError:
        return _conflict_error(self.conflicts)


def _allowed_by_last_applied(typed: Typed, node: Node | None, live: dict[str, Any]) -> FieldSet:
    """Fields of the client-side last-applied configuration whose live value still matches it."""
    raw = annotations_of(live).get(LAST_APPLIED)
    try:
        last = json.loads(raw) if isinstance(raw, str) and raw else None
    except ValueError:
        last = None
    if not isinstance(last, dict):
        return EMPTY
    changed = typed.compare(last, typed.with_zero_structs(live, node), node).modified
    return typed.field_set(last, node) - changed


def last_applied_configuration(applied: dict[str, Any]) -> str:
    """The last-applied-configuration annotation value for a configuration, as upstream builds
    it (Go's JSON encoder: sorted keys, HTML-escaped, newline-terminated), without itself."""
    body = copy.deepcopy(applied)
    annotations = metadata_of(body).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, resolver: SchemaResolver,
                  root_ref: str, now: str, *, subresource: str = "") -> list[dict[str, Any]]:
    """The managedFields `new` should carry after a non-apply write (create: old is None) by
    `manager`: it takes what it changed from every other manager, and fields it removed are
    no longer anyone's. An existing object that has no managedFields is left untracked."""
    entries = decode_managed_fields(new)
    if not entries or subresource:
        # clients that do not know managedFields must not wipe them by omission
        entries = decode_managed_fields(old)
    if old is None and not entries:
        return _created(new, manager, resolver, root_ref, now, subresource)
    return _recorded(old, new, entries, manager, resolver, root_ref, now, subresource)


def _recorded(old: dict[str, Any] | None, new: dict[str, Any], entries: dict[ManagerKey, ManagedEntry],
              manager: str, resolver: SchemaResolver, root_ref: str, now: str,
              subresource: str) -> list[dict[str, Any]]:
    if old is not None and not entries:
        return []
    old_obj = _without_managed_fields(old) if old is not None else {}
    new_obj = _without_managed_fields(new)
    comparison = _comparison(old_obj if old is not None else None, new_obj, resolver, root_ref, subresource)
    changed = comparison.changed

    result: dict[ManagerKey, ManagedEntry] = {}
    for entry_key, entry in entries.items():
        fields = entry.fields - changed - comparison.removed
        if fields:
            result[entry_key] = replace(entry, fields=fields)
    if changed:
        api_version = str(new_obj.get("apiVersion") or old_obj.get("apiVersion") or "")
        mine = ManagedEntry(manager, UPDATE, api_version, subresource, changed, now)
        if mine.key in result:
            mine = replace(mine, fields=changed | result[mine.key].fields)
        result[mine.key] = mine
    return encode_managed_fields(result.values())


def _comparison(old_obj: dict[str, Any] | None, new_obj: dict[str, Any], resolver: SchemaResolver,
                root_ref: str, subresource: str) -> Comparison:
    """What a write from old_obj (None: a create) to new_obj changed, in the fields a writer owns."""
    typed = Typed(resolver)
    node = resolver.root(root_ref)
    old_view = typed.with_zero_structs(old_obj, node) if old_obj is not None else zero_object(resolver, node)
    return _filtered(typed.compare(old_view, typed.with_zero_structs(new_obj, node), node),
                     _reset_fields(subresource))


def _created(new: dict[str, Any], manager: str, resolver: SchemaResolver, root_ref: str, now: str,
             subresource: str) -> list[dict[str, Any]]:
    """record_update for a create with no managedFields of its own: the one entry of its writer.

    What it owns is the created object's field set against the type's zero value, and that
    depends only on the object's layout (see _layout), so it is worked out once per layout: the
    pods of one ReplicaSet, and most objects a controller creates, share theirs. The entry is
    what _recorded gives (tests/unit/apiserver/patch/test_managed.py checks the two agree)."""
    new_obj = _without_managed_fields(new)
    memo = _created_fields_memo(resolver)
    key = (root_ref, subresource, jsoncodec.dumps(_layout(new_obj)))
    fields_v1 = memo.get(key)
    if fields_v1 is None:
        changed = _comparison(None, new_obj, resolver, root_ref, subresource).changed
        fields_v1 = jsoncodec.dumps(to_fields_v1(changed)) if changed else b""
        memo.put(key, fields_v1)
    if not fields_v1:
        return []
    entry: dict[str, Any] = {"manager": manager, "operation": UPDATE, "apiVersion": str(new_obj.get("apiVersion") or ""),
                             "time": now, "fieldsType": "FieldsV1", "fieldsV1": jsoncodec.loads(fields_v1)}
    if subresource:
        entry["subresource"] = subresource
    return [entry]


def _layout(value: Any) -> Any:
    """value with every scalar outside a list made 0 (null stays null): what the field set of a
    created object depends on. The typed walks read a value's kind (object, list, null or other
    scalar, Shape), an object's keys, and a leaf's value only to compare it with the zero
    object's (null, {} or absent), where any two non-null scalars answer alike; list items are
    kept whole, since their keys (and a set's values) are path elements."""
    if isinstance(value, dict):
        return {k: _layout(v) for k, v in value.items()}
    if value is None or isinstance(value, list):
        return value
    return 0


class _Memo:
    """A bounded map, oldest entry out first; safe across threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        return self._items.get(key)

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.limit:
                del self._items[next(iter(self._items))]


# Layouts remembered per resolver: each holds one small FieldsV1 document and its key.
CREATED_LAYOUTS = 512
_memos: weakref.WeakKeyDictionary[SchemaResolver, _Memo] = weakref.WeakKeyDictionary()
_memos_lock = threading.Lock()


def _created_fields_memo(resolver: SchemaResolver) -> _Memo:
    memo = _memos.get(resolver)
    if memo is None:
        with _memos_lock:
            memo = _memos.setdefault(resolver, _Memo(CREATED_LAYOUTS))
    return memo


def zero_object(resolver: SchemaResolver, node: Node | None, depth: int = 0) -> dict[str, Any]:
    """The typed zero value upstream compares a created object against: non-pointer structs
    (properties defaulting to {}) are there as empty objects, required fields as null."""
    out: dict[str, Any] = {}
    if node is None or depth > 16:
        return out
    facts = resolver.facts(node)
    value_structs = dict(facts.zero_struct_fields)
    for name in facts.children:
        if name in value_structs:
            out[name] = zero_object(resolver, value_structs[name], depth + 1)
        elif name in facts.required:
            out[name] = None
    return out


def _conflict_error(conflicts: dict[ManagerKey, FieldSet]) -> ApiError:
    listed = [(key, path) for key in sorted(conflicts, key=lambda k: (k.manager, k.operation, k.api_version,
                                                                       k.subresource))
              for path in sorted(conflicts[key], key=path_sort_key)]
    causes = [Cause(path_string(path), f"conflict with {_describe(key)}", "FieldManagerConflict")
              for key, path in listed]
    if len(listed) == 1:
        key, path = listed[0]
        message = f"Apply failed with 1 conflict: conflict with {_describe(key)}: {path_string(path)}"
    else:
        lines: list[str] = []
        for key in dict.fromkeys(k for k, _ in listed):
            lines.append(f"conflicts with {_describe(key)}:")
            lines.extend(f"- {path_string(p)}" for k, p in listed if k == key)
        message = f"Apply failed with {len(listed)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, causes=causes)


def _describe(key: ManagerKey) -> str:
    text = json.dumps(key.manager)
    if key.subresource:
        text += f" with subresource {json.dumps(key.subresource)}"
    if key.operation == UPDATE:
        text += f" using {key.api_version}"
    return text


def _reset_fields(subresource: str) -> tuple[Path, ...]:
    """Fields a write through this endpoint never owns: status for the main resource,
    spec for the status subresource (upstream's per-strategy reset fields)."""
    return (_f("spec"),) if subresource == "status" else (_f("status"),)


def _owned(paths: FieldSet, reset: tuple[Path, ...]) -> FieldSet:
    return without_prefixes(paths - _SYSTEM_FIELDS, reset)


def _filtered(comparison: Comparison, reset: tuple[Path, ...]) -> Comparison:
    return Comparison(_owned(comparison.added, reset), _owned(comparison.modified, reset),
                      _owned(comparison.removed, reset))


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """obj without metadata.managedFields, sharing everything else with it: the walks only
    read it, and every object they build anew is copied before it is returned."""
    out = dict(obj)
    metadata = out.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        out["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return out


def _with_managed_fields(obj: dict[str, Any], entries: Iterable[ManagedEntry]) -> dict[str, Any]:
    encoded = encode_managed_fields(entries)
    metadata = obj.setdefault("metadata", {})
    if encoded:
        metadata["managedFields"] = encoded
    else:
        metadata.pop("managedFields", None)
    return obj

