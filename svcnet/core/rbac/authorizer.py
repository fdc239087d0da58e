"""The RBAC decision: which bindings apply to a user, the rules of the roles they bind, and
whether one of those rules allows the request (plugin/pkg/auth/authorizer/rbac with the
rule resolver of pkg/registry/rbac/validation).

Rules come from every ClusterRoleBinding naming the user (or one of its groups, or its
service account), then, for a request in a namespace, from that namespace's RoleBindings.
A binding whose role is missing is skipped and named in the reason of a denial. Members of
system:masters are always allowed, as kube-apiserver's privileged-group authorizer allows them
before RBAC is asked.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from svcnet.api.selectors import go_quote

from .attributes import Attributes
from .identity import User, service_account_username
from .rules import Rule, rule_allows, rules_of

GROUP = "rbac.authorization.k8s.io"
Obj = Mapping[str, Any]


class PolicySource(Protocol):
    """Where roles and bindings are read from (the API server's store, or a test's lists)."""

    def cluster_role_bindings(self) -> Iterable[Obj]: ...

    def role_bindings(self, namespace: str) -> Iterable[Obj]: ...

    def cluster_role(self, name: str) -> Obj | None: ...

    def role(self, namespace: str, name: str) -> Obj | None: ...


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class Grant:
    """The rules one binding gives a user, and how to name that binding in a reason."""

    rules: tuple[Rule, ...]
    description: str


def applies_to(user: User, subject: Obj, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == service_account_username(namespace, name)
    return False


def describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind, name = subject.get("kind") or "", subject.get("name") or ""
    if kind == "ServiceAccount":
        name = f"{name}/{subject.get('namespace') or binding_namespace}"
    return f"{kind} {go_quote(name)}"


def _meta(obj: Obj) -> Obj:
    md = obj.get("metadata")
    return md if isinstance(md, Mapping) else {}


def role_ref_rules(source: PolicySource, role_ref: Obj, namespace: str) -> list[Rule]:
    """The rules a roleRef names (GetRoleReferenceRules); LookupError names what is missing."""
    kind, name = role_ref.get("kind"), role_ref.get("name") or ""
    if kind == "ClusterRole":
        role = source.cluster_role(name)
        if role is None:
            raise LookupError(f'clusterrole.{GROUP} {go_quote(name)} not found')
        return rules_of(role)
    if kind == "Role":
        role = source.role(namespace, name)
        if role is None:
            raise LookupError(f'role.{GROUP} {go_quote(name)} not found')
        return rules_of(role)
    raise LookupError(f"unsupported role reference kind: {go_quote(str(kind))}")


def grants(source: PolicySource, user: User, namespace: str) -> Iterator[Grant | LookupError]:
    """Each binding's rules for this user, cluster-wide first, then in namespace (if any);
    a LookupError in place of a binding whose role is missing."""
    for binding in source.cluster_role_bindings():
        yield from _binding_grants(source, user, binding, "ClusterRoleBinding", _meta(binding).get("name", ""), "")
    if namespace:
        for binding in source.role_bindings(namespace):
            name = f"{_meta(binding).get('name', '')}/{namespace}"
            yield from _binding_grants(source, user, binding, "RoleBinding", name, namespace)


def _binding_grants(source: PolicySource, user: User, binding: Obj, kind: str, label: str,
                    namespace: str) -> Iterator[Grant | LookupError]:
    subjects = binding.get("subjects") or []
    subject = next((s for s in subjects if isinstance(s, Mapping) and applies_to(user, s, namespace)), None)
    if subject is None:
        return
    role_ref = binding.get("roleRef") or {}
    try:
        rules = role_ref_rules(source, role_ref, namespace)
    except LookupError as exc:
        yield exc
        return
    yield Grant(tuple(rules), f"{kind} {go_quote(label)} of {role_ref.get('kind')} "
                             f"{go_quote(role_ref.get('name') or '')} to {describe_subject(subject, namespace)}")


class GrantCache:
    """The grants of each (user, groups, namespace) as `grants` found them, for a source whose
    roles and bindings do not change while the cache lives: the policy's owner makes a new one
    when they change. Finding them walks every ClusterRoleBinding and reads the rules of the roles
    that apply, which for a node's or a controller's every request was a tenth of the API
    server's time in a pod burst (issue 13); kube-apiserver's rule resolver walks them per
    request too, over objects already decoded by its informers."""

    def __init__(self, source: PolicySource, limit: int = 4096) -> None:
        self.source = source
        self.limit = limit  # distinct users x namespaces; past it the cache starts again
        self._grants: dict[tuple[str, tuple[str, ...], str], tuple[Grant | LookupError, ...]] = {}

    def grants(self, user: User, namespace: str) -> tuple[Grant | LookupError, ...]:
        key = (user.name, user.groups, namespace)
        found = self._grants.get(key)
        if found is None:
            if len(self._grants) >= self.limit:
                self._grants.clear()
            found = self._grants[key] = tuple(grants(self.source, user, namespace))
        return found


def authorize(source: PolicySource, attrs: Attributes, cache: GrantCache | None = None) -> Decision:
    if attrs.user.privileged:
        return Decision(True)
    failures: list[str] = []
    found = cache.grants(attrs.user, attrs.namespace) if cache is not None else grants(source, attrs.user,
                                                                                        attrs.namespace)
    for grant in found:
        if isinstance(grant, LookupError):
            failures.append(str(grant))
            continue
        if any(rule_allows(attrs, rule) for rule in grant.rules):
            return Decision(True, f"RBAC: allowed by {grant.description}")
    if not failures:
        return Decision(False)
    joined = failures[0] if len(failures) == 1 else "[" + ", ".join(failures) + "]"
    return Decision(False, f"RBAC: {joined}")


def rules_for(source: PolicySource, user: User, namespace: str) -> tuple[list[Rule], list[str]]:
    """Every rule the user holds in namespace ("" for cluster-wide only), and the lookup errors
    met on the way (RulesFor)."""
    rules: list[Rule] = []
    failures: list[str] = []
    for grant in grants(source, user, namespace):
        if isinstance(grant, LookupError):
            failures.append(str(grant))
        else:
            rules.extend(grant.rules)
    return rules, failures
