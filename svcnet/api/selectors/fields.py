"""Field selectors: the fields kube-apiserver lets clients select on per kind, and the parser
and matcher of apimachinery's fields package."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.errors import bad_request


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
    "Secret": {"type": _getter("type")},
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
