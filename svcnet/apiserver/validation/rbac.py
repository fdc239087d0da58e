"""rbac.authorization.k8s.io/v1 validation, worded as pkg/apis/rbac/validation: names are
path segments; each rule has verbs, and either resources with groups or nonResourceURLs
(the latter only in ClusterRoles); a binding's roleRef is a Role or ClusterRole of the RBAC
group and never changes; subjects are Users, Groups (RBAC group) or ServiceAccounts ("")."""
from __future__ import annotations

from svcnet.api.errors import Cause
from svcnet.api.selectors import go_quote

from .fields import (
    GoLiteral,
    Obj,
    as_dict,
    as_list,
    as_str,
    invalid,
    name_is_dns_subdomain,
    name_is_path_segment,
    not_supported,
    required,
)

GROUP = "rbac.authorization.k8s.io"


def _rule_errors(rule: Obj, namespaced: bool, path: str) -> list[Cause]:
    errs: list[Cause] = []
    if not as_list(rule.get("verbs")):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = as_list(rule.get("nonResourceURLs"))
    groups, resources = as_list(rule.get("apiGroups")), as_list(rule.get("resources"))
    names = as_list(rule.get("resourceNames"))
    if urls:
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs"))
        if groups or resources or names:
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not groups:
        errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not resources:
        errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    if names and len(resources) > 1:
        errs.append(required(f"{path}.resourceNames", "resource names cannot apply to multiple resources"))
    return errs


def _rules_errors(role: Obj, namespaced: bool) -> list[Cause]:
    errs: list[Cause] = []
    for i, rule in enumerate(as_list(role.get("rules"))):
        errs += _rule_errors(as_dict(rule), namespaced, f"rules[{i}]")
    return errs


def validate_role(role: Obj, old: Obj | None) -> list[Cause]:
    return _rules_errors(role, True)


def validate_cluster_role(role: Obj, old: Obj | None) -> list[Cause]:
    return _rules_errors(role, False)


def _role_ref_literal(ref: Obj) -> GoLiteral:
    return GoLiteral(f"rbac.RoleRef{{APIGroup:{go_quote(as_str(ref.get('apiGroup')))}, "
                     f"Kind:{go_quote(as_str(ref.get('kind')))}, Name:{go_quote(as_str(ref.get('name')))}}}")


def _role_ref_errors(ref: Obj, kinds: tuple[str, ...]) -> list[Cause]:
    errs: list[Cause] = []
    if as_str(ref.get("apiGroup")) != GROUP:
        errs.append(not_supported("roleRef.apiGroup", as_str(ref.get("apiGroup")), [GROUP]))
    if as_str(ref.get("kind")) not in kinds:
        errs.append(not_supported("roleRef.kind", as_str(ref.get("kind")), list(kinds)))
    name = as_str(ref.get("name"))
    if not name:
        errs.append(required("roleRef.name"))
    else:
        errs += [invalid("roleRef.name", name, msg) for msg in name_is_path_segment(name, False)]
    return errs


def _subject_errors(subject: Obj, namespaced: bool, path: str) -> list[Cause]:
    errs: list[Cause] = []
    name, kind, group = as_str(subject.get("name")), as_str(subject.get("kind")), as_str(subject.get("apiGroup"))
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid(f"{path}.name", name, msg) for msg in name_is_dns_subdomain(name, False)]
        if group:
            errs.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not as_str(subject.get("namespace")):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if not name:
            errs.append(invalid(f"{path}.name", name, f"{kind.lower()} name cannot be empty"))
        if group != GROUP:
            errs.append(not_supported(f"{path}.apiGroup", group, [GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def _binding_errors(binding: Obj, old: Obj | None, namespaced: bool) -> list[Cause]:
    ref = as_dict(binding.get("roleRef"))
    errs = _role_ref_errors(ref, ("Role", "ClusterRole") if namespaced else ("ClusterRole",))
    for i, subject in enumerate(as_list(binding.get("subjects"))):
        errs += _subject_errors(as_dict(subject), namespaced, f"subjects[{i}]")
    if old is not None:
        old_ref = as_dict(old.get("roleRef"))
        if any(as_str(old_ref.get(k)) != as_str(ref.get(k)) for k in ("apiGroup", "kind", "name")):
            errs.append(invalid("roleRef", _role_ref_literal(ref), "cannot change roleRef"))
    return errs


def validate_role_binding(binding: Obj, old: Obj | None) -> list[Cause]:
    return _binding_errors(binding, old, True)


def validate_cluster_role_binding(binding: Obj, old: Obj | None) -> list[Cause]:
    return _binding_errors(binding, old, False)
