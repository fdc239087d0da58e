"""The RBAC decision over roles and bindings (after plugin/pkg/auth/authorizer/rbac's
rbac_test.go and the rule resolver's tests): which bindings apply to whom, cluster-wide and
per namespace, and what a denial names."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.authorizer import GrantCache, applies_to, authorize, rules_for
from svcnet.core.rbac.identity import User, service_account_groups

G = "rbac.authorization.k8s.io"


@dataclass
class Policy:
    crbs: list[dict] = field(default_factory=list)
    rbs: list[dict] = field(default_factory=list)
    cluster_roles: dict[str, dict] = field(default_factory=dict)
    roles: dict[tuple[str, str], dict] = field(default_factory=dict)

    def cluster_role_bindings(self):
        return self.crbs

    def role_bindings(self, namespace):
        return [b for b in self.rbs if b["metadata"]["namespace"] == namespace]

    def cluster_role(self, name):
        return self.cluster_roles.get(name)

    def role(self, namespace, name):
        return self.roles.get((namespace, name))


def _role(*rules: dict) -> dict:
    return {"rules": list(rules)}


def _binding(name: str, ref_kind: str, ref_name: str, *subjects: dict, namespace: str = "") -> dict:
    md = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": md, "roleRef": {"apiGroup": G, "kind": ref_kind, "name": ref_name},
            "subjects": list(subjects)}


def _user(name: str) -> dict:
    return {"kind": "User", "apiGroup": G, "name": name}


def _group(name: str) -> dict:
    return {"kind": "Group", "apiGroup": G, "name": name}


def _sa(name: str, namespace: str = "") -> dict:
    return {"kind": "ServiceAccount", "name": name, **({"namespace": namespace} if namespace else {})}


POD_READER = _role({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]})
SA = User("system:serviceaccount:default:default", (*service_account_groups("default"), "system:authenticated"))
ALICE = User("alice", ("devs", "system:authenticated"))


def _policy() -> Policy:
    return Policy(
        crbs=[_binding("devs-read", "ClusterRole", "reader", _group("devs"))],
        rbs=[_binding("sa-read", "Role", "pod-reader", _sa("default"), namespace="default"),
             _binding("dangling", "Role", "gone", _user("carol"), namespace="default")],
        cluster_roles={"reader": POD_READER},
        roles={("default", "pod-reader"): POD_READER},
    )


def _list_pods(user: User, namespace: str) -> Attributes:
    return Attributes(user, "list", True, namespace=namespace, resource="pods")


@pytest.mark.parametrize(("user", "namespace", "allowed"), [
    (SA, "default", True),  # RoleBinding in default: its SA subject's namespace is the binding's
    (SA, "kube-system", False),  # a RoleBinding grants nothing outside its namespace
    (SA, "", False),  # nor cluster-wide
    (ALICE, "kube-system", True),  # ClusterRoleBinding to a group: every namespace
    (ALICE, "", True),
    (User("bob"), "default", False),
    (User("mallory", ("system:masters",)), "anywhere", True),  # the privileged group needs no binding
])
@pytest.mark.parametrize("cached", [False, True])
def test_who_may_list_pods_where(user: User, namespace: str, allowed: bool, cached: bool) -> None:
    policy = _policy()
    cache = GrantCache(policy) if cached else None
    assert authorize(policy, _list_pods(user, namespace), cache).allowed is allowed
    assert authorize(policy, _list_pods(user, namespace), cache).allowed is allowed  # from the cache, if any


def test_a_grant_cache_reads_the_bindings_once_per_user_groups_and_namespace() -> None:
    class CountingPolicy(Policy):
        reads = 0

        def cluster_role_bindings(self):
            self.reads += 1
            return super().cluster_role_bindings()

    policy = CountingPolicy(**vars(_policy()))
    cache = GrantCache(policy, limit=3)
    for _ in range(3):
        assert authorize(policy, _list_pods(ALICE, "default"), cache).allowed
    assert policy.reads == 1
    # the same name in other groups is another user as far as bindings go
    assert not authorize(policy, _list_pods(User("alice"), "default"), cache).allowed
    assert authorize(policy, _list_pods(ALICE, "kube-system"), cache).allowed
    assert policy.reads == 3
    authorize(policy, _list_pods(SA, "default"), cache)  # past the limit the cache starts again
    authorize(policy, _list_pods(ALICE, "default"), cache)
    assert policy.reads == 5


def test_an_allowed_decision_names_the_binding_role_and_subject() -> None:
    decision = authorize(_policy(), _list_pods(SA, "default"))
    assert decision.reason == ('RBAC: allowed by RoleBinding "sa-read/default" of Role "pod-reader" to '
                               'ServiceAccount "default/default"')
    decision = authorize(_policy(), _list_pods(ALICE, ""))
    assert decision.reason == 'RBAC: allowed by ClusterRoleBinding "devs-read" of ClusterRole "reader" to Group "devs"'


def test_a_binding_to_a_missing_role_is_named_in_the_denial() -> None:
    decision = authorize(_policy(), _list_pods(User("carol"), "default"))
    assert not decision.allowed
    assert decision.reason == 'RBAC: role.rbac.authorization.k8s.io "gone" not found'


def test_a_denial_without_errors_has_no_reason() -> None:
    assert authorize(_policy(), _list_pods(User("bob"), "default")).reason == ""


@pytest.mark.parametrize(("subject", "namespace", "applies"), [
    (_user("alice"), "", True),
    (_user("bob"), "", False),
    (_group("devs"), "", True),
    (_sa("default", "default"), "", False),  # alice is no service account
])
def test_applies_to_alice(subject: dict, namespace: str, applies: bool) -> None:
    assert applies_to(ALICE, subject, namespace) is applies


@pytest.mark.parametrize(("subject", "binding_namespace", "applies"), [
    (_sa("default", "default"), "", True),
    (_sa("default"), "default", True),
    (_sa("default"), "other", False),
    (_sa("default"), "", False),  # a ClusterRoleBinding's SA subject without a namespace applies to nobody
    (_group("system:serviceaccounts:default"), "", True),
])
def test_applies_to_a_service_account(subject: dict, binding_namespace: str, applies: bool) -> None:
    assert applies_to(SA, subject, binding_namespace) is applies


def test_rules_for_collects_cluster_and_namespace_rules_and_errors() -> None:
    rules, failures = rules_for(_policy(), User("carol", ("devs",)), "default")
    assert [r.resources for r in rules] == [("pods",)]
    assert failures == ['role.rbac.authorization.k8s.io "gone" not found']
