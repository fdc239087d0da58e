"""PolicyRules: does one allow a request, and do some rules cover others.

Matching is rbac/v1's evaluation helpers: "*" matches any verb, group or resource; a
resource rule names `pods` or the subresource `pods/log` (or `*/log` for that subresource
of anything); resourceNames, when present, limit the rule to those names; a
nonResourceURL matches exactly or, ending in "*", as a prefix.

Covering is the escalation check of the RBAC storage (policy_comparator): every rule a
user writes into a Role, or binds, is broken down into one verb × one group × one
resource (× one name) pieces, and each piece must be covered by a rule the user holds.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.selectors import go_quote

from .attributes import Attributes

ALL = "*"


@dataclass(frozen=True)
class Rule:
    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_object(cls, rule: Mapping[str, Any]) -> Rule:
        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key) or ()
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()
        return cls(strings("verbs"), strings("apiGroups"), strings("resources"), strings("resourceNames"),
                   strings("nonResourceURLs"))

    def to_object(self) -> dict[str, Any]:
        """The rule as rbac/v1 JSON (verbs always; the lists that are empty omitted)."""
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        for key, value in (("apiGroups", self.api_groups), ("resources", self.resources),
                           ("resourceNames", self.resource_names), ("nonResourceURLs", self.non_resource_urls)):
            if value:
                out[key] = list(value)
        return out

    def compact(self) -> str:
        """rbacv1helpers.CompactString: the rule as the escalation error lists it."""
        parts = [f"{label}:{_go_strings(value)}" for label, value in (
            ("APIGroups", self.api_groups), ("Resources", self.resources),
            ("NonResourceURLs", self.non_resource_urls), ("ResourceNames", self.resource_names),
            ("Verbs", self.verbs)) if value]
        return "{" + ", ".join(parts) + "}"


def rules_of(role: Mapping[str, Any]) -> list[Rule]:
    rules = role.get("rules") or []
    return [Rule.from_object(r) for r in rules if isinstance(r, Mapping)]


# ------------------------------------------------------------------ matching a request
def verb_matches(rule: Rule, verb: str) -> bool:
    return ALL in rule.verbs or verb in rule.verbs


def api_group_matches(rule: Rule, group: str) -> bool:
    return ALL in rule.api_groups or group in rule.api_groups


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for wanted in rule.resources:
        if wanted == ALL or wanted == combined:
            return True
        if subresource and wanted == f"{ALL}/{subresource}":
            return True
    return False


def resource_name_matches(rule: Rule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url == ALL or url == path:
            return True
        if url.endswith(ALL) and path.startswith(url.rstrip(ALL)):
            return True
    return False


def rule_allows(attrs: Attributes, rule: Rule) -> bool:
    if attrs.resource_request:
        return (verb_matches(rule, attrs.verb) and api_group_matches(rule, attrs.api_group)
                and resource_matches(rule, attrs.resource, attrs.subresource)
                and resource_name_matches(rule, attrs.name))
    return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)


# ------------------------------------------------------------------ covering (escalation)
def breakdown(rule: Rule) -> list[Rule]:
    """The rule as pieces of one verb, one group, one resource and at most one name (and
    one nonResourceURL with one verb)."""
    pieces = []
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    pieces += [Rule((verb,), (group,), (resource,), (name,)) for name in rule.resource_names]
                else:
                    pieces.append(Rule((verb,), (group,), (resource,)))
    for url in rule.non_resource_urls:
        pieces += [Rule((verb,), non_resource_urls=(url,)) for verb in rule.verbs]
    return pieces


def _has_all(owned: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    return all(w in owned for w in wanted)


def _resources_cover(owned: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if ALL in owned:
        return True
    for resource in wanted:
        if resource in owned:
            continue
        _, slash, sub = resource.partition("/")
        if not slash or f"{ALL}/{sub}" not in owned:
            return False
    return True


def _url_covers(owned: str, wanted: str) -> bool:
    return owned == wanted or (owned.endswith(ALL) and wanted.startswith(owned.rstrip(ALL)))


def rule_covers(owner: Rule, piece: Rule) -> bool:
    verbs = ALL in owner.verbs or _has_all(owner.verbs, piece.verbs)
    groups = ALL in owner.api_groups or _has_all(owner.api_groups, piece.api_groups)
    urls = all(any(_url_covers(o, w) for o in owner.non_resource_urls) for w in piece.non_resource_urls)
    if piece.resource_names:
        names = not owner.resource_names or _has_all(owner.resource_names, piece.resource_names)
    else:
        names = not owner.resource_names
    return verbs and groups and _resources_cover(owner.resources, piece.resources) and names and urls


def uncovered(owned: Iterable[Rule], wanted: Iterable[Rule]) -> list[Rule]:
    """The pieces of `wanted` no rule in `owned` covers (empty: owned covers wanted)."""
    owned = list(owned)
    return [piece for rule in wanted for piece in breakdown(rule)
            if not any(rule_covers(o, piece) for o in owned)]


def compact_rules(rules: list[Rule]) -> list[Rule]:
    """Pieces that differ only in their verb, for one group and one resource and no names,
    folded into one rule (CompactRules), so an error lists `Verbs:["get" "list"]` once."""
    out: list[Rule] = []
    simple: dict[tuple[str, str], int] = {}
    for rule in rules:
        if len(rule.api_groups) == 1 and len(rule.resources) == 1 and not rule.resource_names \
                and not rule.non_resource_urls:
            key = (rule.api_groups[0], rule.resources[0])
            if key in simple:
                held = out[simple[key]]
                verbs = held.verbs + tuple(v for v in rule.verbs if v not in held.verbs)
                out[simple[key]] = Rule(verbs, held.api_groups, held.resources)
                continue
            simple[key] = len(out)
        out.append(rule)
    return out


def _go_strings(values: tuple[str, ...]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"
