"""rbac.authorization.k8s.io/v1 types: Role, ClusterRole, RoleBinding, ClusterRoleBinding."""
from __future__ import annotations

from .dsl import RBAC, define, define_kind

G = "rbac.authorization.k8s.io"

define(RBAC, "PolicyRule", """
    apiGroups []string list=atomic
    nonResourceURLs []string list=atomic
    resourceNames []string list=atomic
    resources []string list=atomic
    verbs []string list=atomic
""", required="verbs")
define(RBAC, "AggregationRule", "clusterRoleSelectors []meta.LabelSelector list=atomic")
define(RBAC, "RoleRef", """
    apiGroup string
    kind string
    name string
""", required="apiGroup kind name", map_type="atomic")
define(RBAC, "Subject", """
    apiGroup string
    kind string
    name string
    namespace string
""", required="kind name", map_type="atomic")

define_kind(RBAC, "Role", G, "v1", "rules []PolicyRule list=atomic")
define_kind(RBAC, "ClusterRole", G, "v1", """
    aggregationRule AggregationRule
    rules []PolicyRule list=atomic
""")
define_kind(RBAC, "RoleBinding", G, "v1", """
    roleRef RoleRef
    subjects []Subject list=atomic
""", required="roleRef")
define_kind(RBAC, "ClusterRoleBinding", G, "v1", """
    roleRef RoleRef
    subjects []Subject list=atomic
""", required="roleRef")
