"""Upstream's bootstrap policy for what svcnet runs, and how a start reconciles it.

The roles and bindings are those kube-apiserver creates (plugin/pkg/auth/authorizer/rbac/
bootstrappolicy, as its testdata/cluster-roles.yaml and cluster-role-bindings.yaml list them
for 1.32), rule for rule, including resources svcnet does not serve: a rule about an unserved
resource allows nothing, and keeping the text makes `kubectl get clusterrole view -o yaml`
read as upstream's.

admin, edit and view are aggregated upstream (an aggregationRule selecting the
system:aggregate-to-* roles by label, filled by kube-controller-manager's aggregation
controller); `aggregated_rules` is that controller's decision, which the API server runs
on every ClusterRole change, and the bootstrap roles are created already aggregated.

Reconciliation (storage_rbac's ensure-policy, with reconciliation.ReconcileClusterRole and
ReconcileClusterRoleBinding): a missing object is created; one annotated
rbac.authorization.kubernetes.io/autoupdate=false is left alone; otherwise missing rules
(an aggregated role: missing selectors), subjects, labels and annotations are added
(nothing extra is removed), and a binding whose roleRef changed is deleted and created again.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.selectors import label_selector_from_object

from .batch_controller_roles import BATCH_CONTROLLER_ROLES
from .rules import Rule, rules_of, uncovered

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
Obj = dict[str, Any]

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
EVENTS = (("create", "patch", "update"), ("", "events.k8s.io"), ("events",))
TOKEN_REVIEWS = (("create",), ("authentication.k8s.io",), ("tokenreviews",))
SUBJECT_ACCESS_REVIEWS = (("create",), ("authorization.k8s.io",), ("subjectaccessreviews",))

_R = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # verbs, apiGroups, resources


def _rules(*specs: _R | Rule) -> list[Rule]:
    return [s if isinstance(s, Rule) else Rule(s[0], s[1], s[2]) for s in specs]


def _urls(verbs: tuple[str, ...], *urls: str) -> Rule:
    return Rule(verbs, non_resource_urls=urls)


def _named(verbs: tuple[str, ...], group: str, resource: str, name: str) -> Rule:
    return Rule(verbs, (group,), (resource,), (name,))


_AGGREGATE_TO_VIEW = _rules(
    (READ, ("",), ("configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                   "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                   "services/status")),
    (READ, ("",), ("bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                   "replicationcontrollers/status", "resourcequotas", "resourcequotas/status")),
    (READ, ("",), ("namespaces",)),
    (READ, ("discovery.k8s.io",), ("endpointslices",)),
    (READ, ("apps",), ("controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                       "deployments/status", "replicasets", "replicasets/scale", "replicasets/status",
                       "statefulsets", "statefulsets/scale", "statefulsets/status")),
    (READ, ("autoscaling",), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
    (READ, ("batch",), ("cronjobs", "cronjobs/status", "jobs", "jobs/status")),
    (READ, ("extensions",), ("daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                             "deployments/status", "ingresses", "ingresses/status", "networkpolicies",
                             "replicasets", "replicasets/scale", "replicasets/status",
                             "replicationcontrollers/scale")),
    (READ, ("policy",), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
    (READ, ("networking.k8s.io",), ("ingresses", "ingresses/status", "networkpolicies")),
)

_AGGREGATE_TO_EDIT = _rules(
    (READ, ("",), ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy")),
    (("impersonate",), ("",), ("serviceaccounts",)),
    (WRITE, ("",), ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy")),
    (("create",), ("",), ("pods/eviction",)),
    (WRITE, ("",), ("configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                    "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy")),
    (("create",), ("",), ("serviceaccounts/token",)),
    (WRITE, ("apps",), ("daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                        "replicasets/scale", "statefulsets", "statefulsets/scale")),
    (WRITE, ("autoscaling",), ("horizontalpodautoscalers",)),
    (WRITE, ("batch",), ("cronjobs", "jobs")),
    (WRITE, ("extensions",), ("daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                              "ingresses", "networkpolicies", "replicasets", "replicasets/scale",
                              "replicationcontrollers/scale")),
    (WRITE, ("policy",), ("poddisruptionbudgets",)),
    (WRITE, ("networking.k8s.io",), ("ingresses", "networkpolicies")),
    (READ_WRITE, ("coordination.k8s.io",), ("leases",)),
)

_AGGREGATE_TO_ADMIN = _rules(
    (("create",), ("authorization.k8s.io",), ("localsubjectaccessreviews",)),
    (READ_WRITE, (GROUP,), ("rolebindings", "roles")),
)

_SCHEDULER_AND_CONTROLLER_LEASES = (("create",), ("coordination.k8s.io",), ("leases",))

_NODE = _rules(
    TOKEN_REVIEWS,
    (("create",), ("authorization.k8s.io",), ("localsubjectaccessreviews", "subjectaccessreviews")),
    (READ, ("",), ("services",)),
    (("create", "get", "list", "watch"), ("",), ("nodes",)),
    (("patch", "update"), ("",), ("nodes/status",)),
    (("patch", "update"), ("",), ("nodes",)),
    (("create", "patch", "update"), ("",), ("events",)),
    (READ, ("",), ("pods",)),
    (("create", "delete"), ("",), ("pods",)),
    (("patch", "update"), ("",), ("pods/status",)),
    (("create",), ("",), ("pods/eviction",)),
    (READ, ("",), ("configmaps", "secrets")),
    (("get",), ("",), ("persistentvolumeclaims", "persistentvolumes")),
    (("get",), ("",), ("endpoints",)),
    (("create", "get", "list", "watch"), ("certificates.k8s.io",), ("certificatesigningrequests",)),
    (("create", "delete", "get", "patch", "update"), ("coordination.k8s.io",), ("leases",)),
    (("get",), ("storage.k8s.io",), ("volumeattachments",)),
    (("create",), ("",), ("serviceaccounts/token",)),
    (("get", "patch", "update"), ("",), ("persistentvolumeclaims/status",)),
    (READ, ("storage.k8s.io",), ("csidrivers",)),
    (("create", "delete", "get", "patch", "update"), ("storage.k8s.io",), ("csinodes",)),
    (READ, ("node.k8s.io",), ("runtimeclasses",)),
)

_KUBE_CONTROLLER_MANAGER = _rules(
    EVENTS, _SCHEDULER_AND_CONTROLLER_LEASES,
    _named(("get", "update"), "coordination.k8s.io", "leases", "kube-controller-manager"),
    (("create",), ("",), ("secrets", "serviceaccounts")),
    (("delete",), ("",), ("secrets",)),
    (("get",), ("",), ("configmaps", "namespaces", "secrets", "serviceaccounts")),
    (("update",), ("",), ("secrets", "serviceaccounts")),
    TOKEN_REVIEWS, SUBJECT_ACCESS_REVIEWS,
    (("list", "watch"), ("*",), ("*",)),
    (("create",), ("",), ("serviceaccounts/token",)),
)

_KUBE_SCHEDULER = _rules(
    EVENTS, _SCHEDULER_AND_CONTROLLER_LEASES,
    _named(("get", "update"), "coordination.k8s.io", "leases", "kube-scheduler"),
    (READ, ("",), ("nodes",)),
    (("delete", "get", "list", "watch"), ("",), ("pods",)),
    (("create",), ("",), ("bindings", "pods/binding")),
    (("patch", "update"), ("",), ("pods/status",)),
    (READ, ("",), ("replicationcontrollers", "services")),
    (READ, ("apps", "extensions"), ("replicasets",)),
    (READ, ("apps",), ("statefulsets",)),
    (READ, ("policy",), ("poddisruptionbudgets",)),
    (READ, ("",), ("persistentvolumeclaims", "persistentvolumes")),
    TOKEN_REVIEWS, SUBJECT_ACCESS_REVIEWS,
    (READ, ("storage.k8s.io",), ("csinodes",)),
    (READ, ("",), ("namespaces",)),
    (READ, ("storage.k8s.io",), ("csidrivers",)),
    (READ, ("storage.k8s.io",), ("csistoragecapacities",)),
)


# The controller roles (bootstrappolicy/controller_policy.go) of the controllers svcnet runs, each
# bound upstream to the service account kube-system/<name>, which kube-controller-manager's
# controllers use with --use-service-account-credentials.
CONTROLLER_ROLE_PREFIX = "system:controller:"
_EVENTS_RULE = EVENTS
CONTROLLER_ROLES: dict[str, list[Rule]] = {
    "deployment-controller": _rules(
        (("get", "list", "watch", "update"), ("extensions", "apps"), ("deployments",)),
        (("update",), ("extensions", "apps"), ("deployments/status",)),
        (("update",), ("extensions", "apps"), ("deployments/finalizers",)),
        (("get", "list", "watch", "create", "update", "patch", "delete"), ("apps", "extensions"), ("replicasets",)),
        (("get", "list", "watch", "update"), ("",), ("pods",)),
        _EVENTS_RULE),
    "endpoint-controller": _rules(
        (READ, ("",), ("services", "pods")),
        (("get", "list", "watch", "create", "update", "delete"), ("",), ("endpoints",)),
        (("create",), ("",), ("endpoints/restricted",)),
        _EVENTS_RULE),
    "endpointslice-controller": _rules(
        (READ, ("",), ("services", "pods", "nodes")),
        (("update",), ("",), ("services/finalizers",)),
        (("get", "list", "watch", "create", "update", "delete"), ("discovery.k8s.io",), ("endpointslices",)),
        _EVENTS_RULE),
    "endpointslicemirroring-controller": _rules(
        (READ, ("",), ("services", "endpoints")),
        (("update",), ("",), ("services/finalizers",)),
        (("update",), ("",), ("endpoints/finalizers",)),
        (("get", "list", "create", "update", "delete"), ("discovery.k8s.io",), ("endpointslices",)),
        _EVENTS_RULE),
    "generic-garbage-collector": _rules(
        (("get", "list", "watch", "patch", "update", "delete"), ("*",), ("*",)),
        _EVENTS_RULE),
    "node-controller": _rules(
        (("get", "list", "watch", "update", "delete", "patch"), ("",), ("nodes",)),
        (("patch", "update"), ("",), ("nodes/status",)),
        (("patch", "update"), ("",), ("pods/status",)),
        (("list", "watch", "get", "delete"), ("",), ("pods",)),
        _EVENTS_RULE),
    "pod-garbage-collector": _rules(
        (("list", "watch", "delete"), ("",), ("pods",)),
        (READ, ("",), ("nodes",)),
        (("patch",), ("",), ("pods/status",))),
    "replicaset-controller": _rules(
        (("get", "list", "watch", "update"), ("apps", "extensions"), ("replicasets",)),
        (("update",), ("apps", "extensions"), ("replicasets/status",)),
        (("update",), ("apps", "extensions"), ("replicasets/finalizers",)),
        (("list", "watch", "patch", "create", "delete"), ("",), ("pods",)),
        _EVENTS_RULE),
    "root-ca-cert-publisher": _rules(
        (("create", "update"), ("",), ("configmaps",)),
        _EVENTS_RULE),
    # svcnet's service-lb controller: upstream's cloud service controller's rules
    # (system:controller:service-controller) without nodes, which it never reads.
    "service-lb-controller": _rules(
        (READ, ("",), ("services",)),
        (("patch", "update"), ("",), ("services/status",)),
        _EVENTS_RULE),
    "service-account-controller": _rules(
        (("create",), ("",), ("serviceaccounts",)),
        _EVENTS_RULE),
    "statefulset-controller": _rules(
        (("list", "watch"), ("",), ("pods",)),
        (READ, ("apps",), ("statefulsets",)),
        (("update",), ("apps",), ("statefulsets/status",)),
        (("update",), ("apps",), ("statefulsets/finalizers",)),
        (("get", "create", "delete", "update", "patch"), ("",), ("pods",)),
        (("get", "create", "delete", "update", "patch", "list", "watch"), ("apps",), ("controllerrevisions",)),
        (("get", "create", "list", "watch"), ("",), ("persistentvolumeclaims",)),
        (("update", "delete"), ("",), ("persistentvolumeclaims",)),
        (("update",), ("",), ("pods/finalizers",)),
        _EVENTS_RULE),
}
CONTROLLER_ROLES.update(BATCH_CONTROLLER_ROLES)
# Node bootstrap: the certificate controller (csrapproving, csrsigning) as upstream's ClusterRole;
# upstream's bootstrap-signer and token-cleaner roles are Roles in kube-public and kube-system,
# here ClusterRoles with the same rules (the controller manager's bindings are cluster-wide).
CONTROLLER_ROLES.update({
    "certificate-controller": _rules(
        (("delete", "get", "list", "watch"), ("certificates.k8s.io",), ("certificatesigningrequests",)),
        (("update",), ("certificates.k8s.io",), ("certificatesigningrequests/approval",
                                                  "certificatesigningrequests/status")),
        Rule(("approve",), ("certificates.k8s.io",), ("signers",),
             ("kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/legacy-unknown")),
        Rule(("sign",), ("certificates.k8s.io",), ("signers",),
             ("kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet",
              "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown")),
        SUBJECT_ACCESS_REVIEWS, _EVENTS_RULE),
    "bootstrap-signer": _rules(
        (READ, ("",), ("configmaps", "secrets")),
        Rule(("update",), ("",), ("configmaps",), ("cluster-info",)),
        _EVENTS_RULE),
    "token-cleaner": _rules(
        (("delete", "get", "list", "watch"), ("",), ("secrets",)),
        _EVENTS_RULE),
})


def _selector(label: str) -> dict[str, Any]:
    return {"clusterRoleSelectors": [{"matchLabels": {f"{GROUP}/{label}": "true"}}]}


@dataclass(frozen=True)
class _Role:
    name: str
    rules: list[Rule]
    labels: tuple[str, ...] = ()  # aggregate-to-* labels it carries
    aggregate_from: str = ""  # the aggregate-to-* label its aggregationRule selects


_CLUSTER_ROLES: tuple[_Role, ...] = (
    _Role("admin", [], aggregate_from="aggregate-to-admin"),
    _Role("cluster-admin", _rules((("*",), ("*",), ("*",)), _urls(("*",), "*"))),
    _Role("edit", [], labels=("aggregate-to-admin",), aggregate_from="aggregate-to-edit"),
    _Role("system:aggregate-to-admin", _AGGREGATE_TO_ADMIN, labels=("aggregate-to-admin",)),
    _Role("system:aggregate-to-edit", _AGGREGATE_TO_EDIT, labels=("aggregate-to-edit",)),
    _Role("system:aggregate-to-view", _AGGREGATE_TO_VIEW, labels=("aggregate-to-view",)),
    _Role("system:auth-delegator", _rules(TOKEN_REVIEWS, SUBJECT_ACCESS_REVIEWS)),
    _Role("system:basic-user", _rules(
        (("create",), ("authorization.k8s.io",), ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
        (("create",), ("authentication.k8s.io",), ("selfsubjectreviews",)))),
    _Role("system:discovery", [_urls(("get",), "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                     "/openapi", "/openapi/*", "/readyz", "/version", "/version/")]),
    _Role("system:kube-controller-manager", _KUBE_CONTROLLER_MANAGER),
    _Role("system:kube-dns", _rules((("list", "watch"), ("",), ("endpoints", "services")))),
    _Role("system:kube-scheduler", _KUBE_SCHEDULER),
    _Role("system:monitoring", [_urls(("get",), "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics",
                                      "/metrics/slis", "/readyz", "/readyz/*")]),
    _Role("system:node", _NODE),
    _Role("system:node-bootstrapper", _rules(
        (("create", "get", "list", "watch"), ("certificates.k8s.io",), ("certificatesigningrequests",)))),
    _Role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", _rules(
        (("create",), ("certificates.k8s.io",), ("certificatesigningrequests/nodeclient",)))),
    _Role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", _rules(
        (("create",), ("certificates.k8s.io",), ("certificatesigningrequests/selfnodeclient",)))),
    _Role("system:certificates.k8s.io:kube-apiserver-client-kubelet-approver", [
        _named(("approve",), "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client-kubelet")]),
    _Role("system:node-proxier", _rules(
        (("list", "watch"), ("",), ("endpoints", "services")), (READ, ("",), ("nodes",)), EVENTS,
        (("list", "watch"), ("discovery.k8s.io",), ("endpointslices",)),
        # with MultiCIDRServiceAllocator (svcnet serves ServiceCIDRs): kube-proxy's nftables mode
        # watches them to drop traffic to unallocated service IPs
        (("list", "watch"), ("networking.k8s.io",), ("servicecidrs",)))),
    _Role("system:public-info-viewer", [_urls(("get",), "/healthz", "/livez", "/readyz", "/version",
                                              "/version/")]),
    _Role("system:service-account-issuer-discovery", [_urls(
        ("get",), "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
        "/openid/v1/jwks/")]),
    _Role("view", [], labels=("aggregate-to-edit",), aggregate_from="aggregate-to-view"),
)

# name -> (role, subjects as (kind, name, namespace)); the binding has the role's name.
_CLUSTER_ROLE_BINDINGS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("cluster-admin", (("Group", "system:masters", ""),)),
    ("system:basic-user", (("Group", "system:authenticated", ""),)),
    ("system:discovery", (("Group", "system:authenticated", ""),)),
    ("system:kube-controller-manager", (("User", "system:kube-controller-manager", ""),)),
    ("system:kube-dns", (("ServiceAccount", "kube-dns", "kube-system"),)),
    ("system:kube-scheduler", (("User", "system:kube-scheduler", ""),)),
    ("system:monitoring", (("Group", "system:monitoring", ""),)),
    ("system:node", ()),
    ("system:node-proxier", (("User", "system:kube-proxy", ""),)),
    ("system:public-info-viewer", (("Group", "system:authenticated", ""), ("Group", "system:unauthenticated", ""))),
    ("system:service-account-issuer-discovery", (("Group", "system:serviceaccounts", ""),)),
)


def _metadata(name: str, labels: Mapping[str, str] | None = None) -> Obj:
    return {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
            "annotations": {AUTOUPDATE: "true"}}


def _all_roles() -> tuple[_Role, ...]:
    controllers = tuple(_Role(CONTROLLER_ROLE_PREFIX + name, rules) for name, rules in CONTROLLER_ROLES.items())
    return tuple(sorted(_CLUSTER_ROLES + controllers, key=lambda role: role.name))


def _all_bindings() -> tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]:
    controllers = tuple((CONTROLLER_ROLE_PREFIX + name, (("ServiceAccount", name, "kube-system"),))
                        for name in CONTROLLER_ROLES)
    return tuple(sorted(_CLUSTER_ROLE_BINDINGS + controllers))


def cluster_roles() -> list[Obj]:
    """The bootstrap ClusterRoles, admin/edit/view with their aggregated rules filled in."""
    roles = []
    for role in _all_roles():
        obj: Obj = {"apiVersion": API_VERSION, "kind": "ClusterRole",
                    "metadata": _metadata(role.name, {f"{GROUP}/{label}": "true" for label in role.labels}),
                    "rules": [r.to_object() for r in role.rules]}
        if role.aggregate_from:
            obj["aggregationRule"] = _selector(role.aggregate_from)
        roles.append(obj)
    return aggregate(roles)


def cluster_role_bindings() -> list[Obj]:
    out = []
    for name, subjects in _all_bindings():
        obj: Obj = {"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": _metadata(name),
                    "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name}}
        if subjects:
            obj["subjects"] = [_subject(*s) for s in subjects]
        out.append(obj)
    return out


def _subject(kind: str, name: str, namespace: str) -> Obj:
    subject: Obj = {"kind": kind, "name": name}
    if kind == "ServiceAccount":
        subject["namespace"] = namespace
    else:
        subject["apiGroup"] = GROUP
    return subject


# ------------------------------------------------------------------ aggregation
def aggregated_rules(role: Mapping[str, Any], roles: list[Obj]) -> list[Obj] | None:
    """The rules the ClusterRole aggregation controller gives an aggregated role: for each of
    its clusterRoleSelectors in turn, the rules of the other ClusterRoles it selects (in name
    order), each rule once. None when the role has no aggregationRule."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, Mapping):
        return None
    name = (role.get("metadata") or {}).get("name")
    out: list[Obj] = []
    for selector in rule.get("clusterRoleSelectors") or []:
        matcher = label_selector_from_object(selector)
        selected = sorted((r for r in roles if (r.get("metadata") or {}).get("name") != name
                           and matcher.matches((r.get("metadata") or {}).get("labels") or {})),
                          key=lambda r: r["metadata"]["name"])
        for other in selected:
            out += [r for r in other.get("rules") or [] if r not in out]
    return out


def aggregate(roles: list[Obj]) -> list[Obj]:
    """Every aggregated role's rules filled in, repeated until nothing changes, as aggregated
    roles may aggregate others (view into edit into admin)."""
    roles = copy.deepcopy(roles)
    for _ in range(len(roles)):
        changed = False
        for role in roles:
            rules = aggregated_rules(role, roles)
            if rules is not None and rules != (role.get("rules") or []):
                role["rules"], changed = rules, True
        if not changed:
            break
    return roles


# ------------------------------------------------------------------ reconciliation
@dataclass(frozen=True)
class Reconciled:
    """What to do with one bootstrap object: create, update (to `obj`), recreate or nothing."""

    action: str  # "create", "update", "recreate", "none"
    obj: Obj | None = None


def _merged_meta(existing: Obj, expected: Obj) -> Obj:
    md = copy.deepcopy(existing.get("metadata") or {})
    for key in ("labels", "annotations"):
        merged = {**(expected["metadata"].get(key) or {}), **(md.get(key) or {})}
        if merged:
            md[key] = merged
    return md


def _protected(existing: Obj) -> bool:
    return ((existing.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE) == "false"


def reconcile_role(existing: Obj | None, expected: Obj) -> Reconciled:
    """ReconcileClusterRole without removing extra permissions: add the rules not covered."""
    if existing is None:
        return Reconciled("create", copy.deepcopy(expected))
    if _protected(existing):
        return Reconciled("none")
    updated = copy.deepcopy(existing)
    updated["metadata"] = _merged_meta(existing, expected)
    if expected.get("aggregationRule"):
        # an aggregated role's rules are the aggregation's: only its selectors are reconciled
        selectors = list((existing.get("aggregationRule") or {}).get("clusterRoleSelectors") or [])
        for s in expected["aggregationRule"]["clusterRoleSelectors"]:
            if s not in selectors:
                selectors.append(s)
        updated["aggregationRule"] = {"clusterRoleSelectors": selectors}
    else:
        have = rules_of(existing)
        missing = [r for r in rules_of(expected) if uncovered(have, [r])]
        if missing:
            updated["rules"] = list(existing.get("rules") or []) + [r.to_object() for r in missing]
    return Reconciled("none") if updated == existing else Reconciled("update", updated)


def reconcile_binding(existing: Obj | None, expected: Obj) -> Reconciled:
    """ReconcileClusterRoleBinding without removing extra subjects; a changed roleRef means
    the binding is deleted and created again (roleRef is immutable)."""
    if existing is None:
        return Reconciled("create", copy.deepcopy(expected))
    if _protected(existing):
        return Reconciled("none")
    updated = copy.deepcopy(existing)
    updated["metadata"] = _merged_meta(existing, expected)
    subjects = list(existing.get("subjects") or [])
    subjects += [s for s in expected.get("subjects") or [] if s not in subjects]
    if subjects:
        updated["subjects"] = subjects
    if existing.get("roleRef") != expected["roleRef"]:
        updated["roleRef"] = expected["roleRef"]
        return Reconciled("recreate", updated)
    return Reconciled("none") if updated == existing else Reconciled("update", updated)


def expected_rules(name: str) -> list[Rule]:
    """The bootstrap rules of one ClusterRole (for tests and docs)."""
    role = next(r for r in cluster_roles() if r["metadata"]["name"] == name)
    return rules_of(role)


# ------------------------------------------------- controllers of the prune-allowlist kinds

# Their controller roles (bootstrappolicy/controller_policy.go), each bound upstream to the service
# account kube-system/<role>; the roles of the controllers svcnet runs include these.
PRUNE_ALLOWLIST_CONTROLLER_ROLES: dict[str, list[Rule]] = {
    "daemon-set-controller": _rules(
        (READ, ("extensions", "apps"), ("daemonsets",)),
        (("update",), ("extensions", "apps"), ("daemonsets/status",)),
        (("update",), ("extensions", "apps"), ("daemonsets/finalizers",)),
        (("list", "watch"), ("",), ("nodes",)),
        (("list", "watch", "create", "delete", "patch"), ("",), ("pods",)),
        (("create",), ("",), ("pods/binding",)),
        (("get", "list", "watch", "create", "delete", "update", "patch"), ("apps",), ("controllerrevisions",)),
        EVENTS),
    "replication-controller": _rules(
        (("get", "list", "watch", "update"), ("",), ("replicationcontrollers",)),
        (("update",), ("",), ("replicationcontrollers/status",)),
        (("update",), ("",), ("replicationcontrollers/finalizers",)),
        (("list", "watch", "patch", "create", "delete"), ("",), ("pods",)),
        EVENTS),
    "persistent-volume-binder": _rules(
        (("get", "list", "watch", "update", "create", "delete"), ("",), ("persistentvolumes",)),
        (("update",), ("",), ("persistentvolumes/status",)),
        (("get", "list", "watch", "update"), ("",), ("persistentvolumeclaims",)),
        (("update",), ("",), ("persistentvolumeclaims/status",)),
        (("list", "watch", "get", "create", "delete"), ("",), ("pods",)),
        (READ, ("storage.k8s.io",), ("storageclasses",)),
        (("get", "create", "update", "delete"), ("",), ("endpoints",)),
        (("get", "create", "delete"), ("",), ("services",)),
        (("get",), ("",), ("secrets",)),
        (("get", "list"), ("",), ("nodes",)),
        (("watch",), ("",), ("events",)),
        EVENTS),
    "pvc-protection-controller": _rules(
        (("get", "list", "watch", "update"), ("",), ("persistentvolumeclaims",)),
        (("list", "watch", "get"), ("",), ("pods",)),
        EVENTS),
    "pv-protection-controller": _rules(
        (("get", "list", "watch", "update"), ("",), ("persistentvolumes",)),
        EVENTS),
}
# svcnet's controller names -> the upstream controller role each one's work needs.
PRUNE_ALLOWLIST_CONTROLLER_ROLE_OF = {
    "daemonset": "daemon-set-controller",
    "replicationcontroller": "replication-controller",
    "persistentvolume-binder": "persistent-volume-binder",
    "pvc-protection": "pvc-protection-controller",
    "pv-protection": "pv-protection-controller",
}
CONTROLLER_ROLES.update(PRUNE_ALLOWLIST_CONTROLLER_ROLES)
