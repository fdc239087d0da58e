"""Upstream's bootstrap roles and bindings, their aggregation, and reconciliation at start."""
from __future__ import annotations

import copy

from svcnet.core.rbac import bootstrap
from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.authorizer import authorize
from svcnet.core.rbac.identity import User
from svcnet.core.rbac.rules import Rule

from .test_authorizer import Policy


def _policy() -> Policy:
    return Policy(crbs=bootstrap.cluster_role_bindings(),
                  cluster_roles={r["metadata"]["name"]: r for r in bootstrap.cluster_roles()})


def _by_name(objs: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs}


def test_every_bootstrap_object_is_labelled_and_auto_updated() -> None:
    for obj in bootstrap.cluster_roles() + bootstrap.cluster_role_bindings():
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert obj["metadata"]["annotations"] == {bootstrap.AUTOUPDATE: "true"}


def test_cluster_admin_and_the_public_roles_are_upstreams() -> None:
    roles = _by_name(bootstrap.cluster_roles())
    assert roles["cluster-admin"]["rules"] == [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]
    assert roles["system:public-info-viewer"]["rules"] == [
        {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]}]
    assert roles["system:basic-user"]["rules"][0]["resources"] == ["selfsubjectaccessreviews",
                                                                  "selfsubjectrulesreviews"]


def test_view_edit_admin_aggregate_upwards() -> None:
    roles = _by_name(bootstrap.cluster_roles())
    view = roles["view"]["rules"]
    assert view == roles["system:aggregate-to-view"]["rules"]
    edit = roles["edit"]["rules"]
    assert all(r in edit for r in view) and all(r in edit for r in roles["system:aggregate-to-edit"]["rules"])
    admin = roles["admin"]["rules"]
    assert all(r in admin for r in edit) and all(r in admin for r in roles["system:aggregate-to-admin"]["rules"])
    assert roles["admin"]["aggregationRule"] == {"clusterRoleSelectors": [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]}


def test_bindings_grant_what_upstream_grants() -> None:
    policy = _policy()
    anyone = User("someone", ("system:authenticated",))
    cases = [
        (User("kubernetes-admin", ("system:masters",)), "delete", "nodes", "", True),
        (anyone, "create", "selfsubjectaccessreviews", "authorization.k8s.io", True),
        (anyone, "create", "selfsubjectreviews", "authentication.k8s.io", True),
        (anyone, "list", "pods", "", False),
        (User("system:kube-proxy", ("system:authenticated",)), "watch", "endpointslices", "discovery.k8s.io", True),
        (User("system:kube-proxy", ("system:authenticated",)), "list", "pods", "", False),
        (User("system:kube-scheduler"), "create", "pods", "", False),
        (User("system:kube-controller-manager"), "watch", "deployments", "apps", True),
        (User("system:serviceaccount:kube-system:kube-dns"), "list", "services", "", True),
    ]
    for user, verb, resource, group, allowed in cases:
        attrs = Attributes(user, verb, True, namespace="default", api_group=group, resource=resource)
        assert authorize(policy, attrs).allowed is allowed, (user.name, verb, resource)
    scheduler_binds = Attributes(User("system:kube-scheduler"), "create", True, namespace="default",
                                 resource="pods", subresource="binding")
    assert authorize(policy, scheduler_binds).allowed
    discovery = Attributes(anyone, "get", False, path="/apis/apps/v1")
    assert authorize(policy, discovery).allowed


def test_reconcile_creates_what_is_missing_and_leaves_what_is_current() -> None:
    expected = bootstrap.cluster_roles()[0]
    assert bootstrap.reconcile_role(None, expected).action == "create"
    assert bootstrap.reconcile_role(copy.deepcopy(expected), expected).action == "none"


def test_reconcile_adds_missing_rules_and_keeps_extra_ones() -> None:
    expected = _by_name(bootstrap.cluster_roles())["system:kube-dns"]
    existing = copy.deepcopy(expected)
    existing["rules"] = [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]
    step = bootstrap.reconcile_role(existing, expected)
    assert step.action == "update"
    assert step.obj["rules"] == existing["rules"] + expected["rules"]


def test_reconcile_leaves_a_role_with_autoupdate_false_alone() -> None:
    expected = _by_name(bootstrap.cluster_roles())["system:kube-dns"]
    existing = copy.deepcopy(expected)
    existing["rules"] = []
    existing["metadata"]["annotations"][bootstrap.AUTOUPDATE] = "false"
    assert bootstrap.reconcile_role(existing, expected).action == "none"


def test_reconcile_binding_adds_subjects_and_recreates_on_a_changed_role_ref() -> None:
    expected = _by_name(bootstrap.cluster_role_bindings())["system:node-proxier"]
    existing = copy.deepcopy(expected)
    extra = {"kind": "User", "apiGroup": bootstrap.GROUP, "name": "someone-else"}
    existing["subjects"] = [extra]
    step = bootstrap.reconcile_binding(existing, expected)
    assert (step.action, step.obj["subjects"]) == ("update", [extra, *expected["subjects"]])
    existing["roleRef"] = {**expected["roleRef"], "name": "view"}
    step = bootstrap.reconcile_binding(existing, expected)
    assert step.action == "recreate" and step.obj["roleRef"] == expected["roleRef"]


def test_expected_rules_reads_one_role() -> None:
    assert bootstrap.expected_rules("system:kube-dns") == [Rule(("list", "watch"), ("",), ("endpoints", "services"))]
