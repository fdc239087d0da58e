"""Authorization in the API server: RBAC over the stored roles and bindings, impersonation,
escalation prevention on RBAC writes, and the bootstrap policy.

Every request but the health checks goes authenticate → impersonate → authorize (as
kube-apiserver's filter chain: WithAuthentication, WithImpersonation, WithAuthorization);
the decision is svcnet.core.rbac's, over a snapshot of the four RBAC kinds that is read again
whenever the store's revision moved. The user a request runs as is kept in CURRENT_USER, so
the write path's EscalationCheck (an admission hook) knows who writes a Role or binding.
"""
from __future__ import annotations

import contextvars
import copy
import logging
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import errors
from svcnet.api.errors import ApiError
from svcnet.api.resources import RBAC_GROUP, Resource, served
from svcnet.api.selectors import go_quote
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.core.rbac import bootstrap
from svcnet.core.rbac.attributes import Attributes, forbidden_status_message
from svcnet.core.rbac.authorizer import Decision, GrantCache, authorize, role_ref_rules, rules_for
from svcnet.core.rbac.identity import (
    User,
    service_account_groups,
    split_service_account,
    with_authenticated_group,
)
from svcnet.core.rbac.nodeauthorizer import NodeAuthorizer
from svcnet.core.rbac.rules import compact_rules, rules_of, uncovered
from svcnet.storage.base import NoSpace

log = logging.getLogger("svcnet.apiserver")

Obj = dict[str, Any]

# Who the request being served runs as (None: the server itself, e.g. the bootstrap policy).
CURRENT_USER: contextvars.ContextVar[User | None] = contextvars.ContextVar("svcnet_user", default=None)
# What that request asks (its subresource and name, which admission hooks such as NodeRestriction need).
CURRENT_ATTRIBUTES: contextvars.ContextVar[Attributes | None] = contextvars.ContextVar("svcnet_attributes",
                                                                                       default=None)


def _rbac(plural: str) -> Resource:
    return served(RBAC_GROUP, "v1", plural)


@dataclass
class _Snapshot:
    revision: int = -1
    cluster_role_bindings: list[Obj] = field(default_factory=list)
    role_bindings: dict[str, list[Obj]] = field(default_factory=dict)
    cluster_roles: dict[str, Obj] = field(default_factory=dict)
    roles: dict[tuple[str, str], Obj] = field(default_factory=dict)
    grants: GrantCache | None = None  # made with the snapshot, gone with it


def _ns_name(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata") or {}
    return md.get("namespace") or "", md.get("name") or ""


class StorePolicy:
    """The roles and bindings in the store, as core.rbac's PolicySource, kept as one snapshot that
    is read again only after a role or binding changed (a watch on the four RBAC kinds marks it
    stale; the store delivers a write's events before it acknowledges the write, so the next
    request after a binding is created sees it). Every other write leaves it as it is: a node's,
    a proxy's or a controller's requests are authorized without reading the policy again."""

    RBAC_PLURALS = ("clusterrolebindings", "rolebindings", "clusterroles", "roles")

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._snap = _Snapshot()
        self._stale = True
        self._watches: list[Any] = []

    def _current(self) -> _Snapshot:
        # A watch the store ended (etcd compaction) may have missed changes: read the policy again and
        # watch anew from now (never a snapshot kept past what the store can tell).
        ended = any(watch.ended for watch in self._watches)
        if not self._stale and not ended:
            return self._snap
        self._stale = False  # before reading: a change from here on marks it stale again
        if ended:
            self._watches.clear()
        revision = self.registry.store.current_revision()
        if not self._watches:
            for plural in self.RBAC_PLURALS:
                self._watches.append(self.registry.store.watch(_rbac(plural).storage_prefix(None), revision,
                                                               self._changed))
        snap = _Snapshot(revision)
        snap.cluster_role_bindings = self._all("clusterrolebindings")
        for rb in self._all("rolebindings"):
            snap.role_bindings.setdefault(_ns_name(rb)[0], []).append(rb)
        snap.cluster_roles = {_ns_name(r)[1]: r for r in self._all("clusterroles")}
        snap.roles = {_ns_name(r): r for r in self._all("roles")}
        snap.grants = GrantCache(self)
        self._snap = snap
        return snap

    def grant_cache(self) -> GrantCache | None:
        """The grants found in the current policy (made anew when a role or binding changed)."""
        return self._current().grants

    def _changed(self, _event: Any) -> None:
        self._stale = True

    def close(self) -> None:
        for watch in self._watches:
            watch.cancel()
        self._watches.clear()

    def _all(self, plural: str) -> list[Obj]:
        return list(self.registry.list(_rbac(plural), None).items)

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self._current().cluster_role_bindings

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        return self._current().role_bindings.get(namespace, [])

    def cluster_role(self, name: str) -> Obj | None:
        return self._current().cluster_roles.get(name)

    def role(self, namespace: str, name: str) -> Obj | None:
        return self._current().roles.get((namespace, name))


def forbidden(attrs: Attributes, reason: str = "") -> ApiError:
    """The 403 of the authorization filter (responsewriters.Forbidden)."""
    message = forbidden_status_message(attrs, reason)
    if not attrs.resource_request or not attrs.resource:
        return ApiError(403, "Forbidden", message)
    return errors.forbidden(attrs.resource, attrs.name, message, attrs.api_group)


class Authorizer:
    """--authorization-mode=Node,RBAC: system:masters always; then the Node authorizer (when
    given) for nodes; then RBAC. A denial carries the reasons of both, one per line, as the
    union authorizer joins them."""

    def __init__(self, policy: StorePolicy, node: NodeAuthorizer | None = None) -> None:
        self.policy = policy
        self.node = node

    def decide(self, attrs: Attributes) -> Decision:
        if self.node is None or attrs.user.privileged:
            return authorize(self.policy, attrs, self.policy.grant_cache())
        by_node = self.node.decide(attrs)
        if by_node.allowed:
            return by_node
        by_rbac = authorize(self.policy, attrs, self.policy.grant_cache())
        if by_rbac.allowed:
            return by_rbac
        return Decision(False, "\n".join(r for r in (by_node.reason, by_rbac.reason) if r))

    def check(self, attrs: Attributes) -> None:
        decision = self.decide(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)


# ------------------------------------------------------------------ impersonation
IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "Impersonate-Extra-"


def impersonated(user: User, headers: Mapping[str, str], all_values, authorizer: Authorizer) -> User:
    """The user a request acts as after its Impersonate-* headers, each impersonation
    authorized with the `impersonate` verb (filters/impersonation.go); `user` itself when
    there are none. all_values(name) lists every value of a repeated header."""
    name = headers.get(IMPERSONATE_USER, "")
    groups = tuple(all_values(IMPERSONATE_GROUP))
    uid = headers.get(IMPERSONATE_UID, "")
    extra: dict[str, tuple[str, ...]] = {}
    for header in headers:
        if header.lower().startswith(IMPERSONATE_EXTRA.lower()):
            key = urllib.parse.unquote(header[len(IMPERSONATE_EXTRA):].lower())  # keys travel %-escaped
            extra[key] = tuple(all_values(header))
    if not name:
        if groups or uid or extra:
            raise ApiError(500, "InternalError", "Internal error occurred: requested impersonation of "
                           "groups, uid or extra without impersonating a user")
        return user
    sa = split_service_account(name)
    if sa is not None:
        authorizer.check(Attributes(user, "impersonate", True, namespace=sa[0], resource="serviceaccounts",
                                    name=sa[1]))
    else:
        authorizer.check(Attributes(user, "impersonate", True, resource="users", name=name))
    for group in groups:
        authorizer.check(Attributes(user, "impersonate", True, resource="groups", name=group))
    if sa is not None and not groups:
        groups = service_account_groups(sa[0])  # a service account's groups follow from its name
    if uid:
        authorizer.check(Attributes(user, "impersonate", True, resource="uids", name=uid))
    for key, values in extra.items():
        for value in values:
            authorizer.check(Attributes(user, "impersonate", True, api_group="authentication.k8s.io",
                                        resource="userextras", subresource=key, name=value))
    return User(name, with_authenticated_group(name, groups), uid, extra)


# ------------------------------------------------------------------ escalation
class EscalationCheck:
    """Refuse a Role, ClusterRole or binding that grants more than its writer holds, unless the
    writer may `escalate` (roles) or `bind` (the referenced role), or is in system:masters
    (the RBAC storage's policybased wrappers and ConfirmNoEscalation)."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def admit(self, op: str, resource: Resource, obj: Obj, old: Obj | None, dry_run: bool = False):
        user = CURRENT_USER.get()
        if resource.group != RBAC_GROUP or user is None or user.privileged:
            return None
        if old is not None and _only_metadata_changed(obj, old):
            return None
        namespace, name = _ns_name(obj)
        if resource.kind in ("Role", "ClusterRole"):
            escalate = Attributes(user, "escalate", True, namespace=namespace, api_group=RBAC_GROUP,
                                  resource=resource.plural, name=name)
            if not self.authorizer.decide(escalate).allowed:
                self._confirm_no_escalation(user, resource, name, namespace, rules_of(obj))
            return None
        ref = obj.get("roleRef") or {}
        ref_kind = ref.get("kind")
        bind = Attributes(user, "bind", True, namespace=namespace, api_group=str(ref.get("apiGroup") or ""),
                          resource="clusterroles" if ref_kind == "ClusterRole" else "roles",
                          name=str(ref.get("name") or ""))
        if self.authorizer.decide(bind).allowed:
            return None
        try:
            rules = role_ref_rules(self.authorizer.policy, ref, namespace)
        except LookupError as exc:
            raise errors.forbidden(resource.plural, name, _forbidden_text(resource, name, str(exc)),
                                   RBAC_GROUP) from None
        self._confirm_no_escalation(user, resource, name, namespace, rules)
        return None

    def released(self, resource: Resource, obj: Obj) -> None:
        return None

    def _confirm_no_escalation(self, user: User, resource: Resource, name: str, namespace: str, rules) -> None:
        owned, failures = rules_for(self.authorizer.policy, user, namespace)
        missing = uncovered(owned, rules)
        if not missing:
            return
        described = sorted({r.compact() for r in compact_rules(missing)})
        groups = "[" + " ".join(go_quote(g) for g in user.groups) + "]"
        msg = (f"user {go_quote(user.name)} (groups={groups}) is attempting to grant RBAC permissions "
               f"not currently held:\n" + "\n".join(described))
        if failures:
            msg += f"; resolution errors: [{' '.join(failures)}]"
        raise errors.forbidden(resource.plural, name, _forbidden_text(resource, name, msg), RBAC_GROUP)


def _forbidden_text(resource: Resource, name: str, detail: str) -> str:
    return f"{resource.plural}.{resource.group} {go_quote(name)} is forbidden: {detail}"


def _only_metadata_changed(obj: Obj, old: Obj) -> bool:
    """An update that leaves rules, roleRef and subjects as they were grants nothing new
    (upstream lets the garbage collector's metadata-only writes through the same way)."""
    keys = ("rules", "roleRef", "subjects", "aggregationRule")
    return all(obj.get(k) == old.get(k) for k in keys)


# ------------------------------------------------------------------ bootstrap policy
def ensure_bootstrap_policy(registry: Registry) -> None:
    """Create or top up upstream's bootstrap roles and bindings (storage_rbac's PostStartHook):
    missing ones created, autoupdate=false ones left alone, nothing extra removed."""
    opts = WriteOptions(field_manager="kube-apiserver")
    roles, bindings = _rbac("clusterroles"), _rbac("clusterrolebindings")
    try:
        for expected in bootstrap.cluster_roles():
            _apply(registry, roles, bootstrap.reconcile_role(_existing(registry, roles, expected), expected), opts)
        for expected in bootstrap.cluster_role_bindings():
            existing = _existing(registry, bindings, expected)
            _apply(registry, bindings, bootstrap.reconcile_binding(existing, expected), opts)
    except NoSpace:
        log.warning("the bootstrap RBAC policy is incomplete: the storage device is full")


def _existing(registry: Registry, res: Resource, expected: Obj) -> Obj | None:
    try:
        return registry.get(res, None, expected["metadata"]["name"])
    except ApiError as exc:
        if exc.code != 404:
            raise
    return None


def _apply(registry: Registry, res: Resource, step: bootstrap.Reconciled, opts: WriteOptions) -> None:
    if step.obj is None:
        return
    name = step.obj["metadata"]["name"]
    if step.action == "create":
        registry.create(res, None, step.obj, opts)
    elif step.action == "update":
        registry.update(res, None, name, step.obj, opts)
    elif step.action == "recreate":
        registry.delete(res, None, name, DeleteOptions())
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            step.obj["metadata"].pop(key, None)
        registry.create(res, None, step.obj, opts)
    log.info("bootstrap RBAC: %s %s %s", step.action, res.kind, name)


# ------------------------------------------------------------------ ClusterRole aggregation
AGGREGATION_MANAGER = "clusterrole-aggregation-controller"


def aggregate_cluster_roles(registry: Registry) -> int:
    """One pass of kube-controller-manager's clusterrole-aggregation controller: every
    ClusterRole with an aggregationRule gets the rules of the roles it selects. Returns how
    many were updated; a conflict or a bad selector leaves that role to the next pass."""
    res = _rbac("clusterroles")
    roles = list(registry.list(res, None).items)
    updated = 0
    for role in roles:
        name = _ns_name(role)[1]
        try:
            rules = bootstrap.aggregated_rules(role, roles)
            if rules is None or rules == (role.get("rules") or []):
                continue
            new = copy.deepcopy(role)
            new["rules"] = rules
            registry.update(res, None, name, new, WriteOptions(field_manager=AGGREGATION_MANAGER))
            updated += 1
        except ApiError as exc:
            log.warning("aggregating ClusterRole %s: %s", name, exc.message)
    return updated
