"""Authorization through the real aiohttp app: authentication with the admin token,
impersonation, RBAC decisions and their 403s, escalation prevention on RBAC writes, and the
review kinds."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver import authz
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.identity import User

TOKEN = "secret-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SA = "system:serviceaccount:default:default"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _res(plural: str):
    res = lookup("rbac.authorization.k8s.io", "v1", plural)
    assert res is not None
    return res


def _as(user: str) -> dict[str, str]:
    return {**ADMIN, "Impersonate-User": user}


@pytest.fixture
async def api(registry: Registry) -> AsyncIterator[TestClient]:
    """The TCP app (token required) with the bootstrap policy and the escalation check, as the daemon wires it."""
    server = ApiServer(registry, ServerSettings(token=TOKEN))
    authz.ensure_bootstrap_policy(registry)
    registry.admission.append(authz.EscalationCheck(server.authorizer))
    async with TestClient(TestServer(server.make_app(authenticate=True))) as c:
        yield c


async def test_a_request_without_the_token_is_401_and_health_needs_none(api: TestClient) -> None:
    assert (await api.get("/api/v1/pods")).status == 401
    assert (await api.get("/healthz")).status == 200


async def test_the_admin_token_is_system_masters(api: TestClient) -> None:
    resp = await api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=ADMIN,
                          json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert resp.status == 201
    body = await resp.json()
    assert body["status"]["userInfo"] == {"username": "kubernetes-admin",
                                          "groups": ["system:masters", "system:authenticated"]}
    assert (await api.get("/api/v1/namespaces/kube-system/pods", headers=ADMIN)).status == 200


async def test_an_impersonated_service_account_gets_upstreams_403(api: TestClient) -> None:
    resp = await api.get("/api/v1/namespaces/default/pods", headers=_as(SA))
    assert resp.status == 403
    status = await resp.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (f'pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" '
                                 f'in the namespace "default"')
    assert status["details"] == {"kind": "pods"}


async def test_an_impersonated_service_account_has_its_groups(api: TestClient) -> None:
    resp = await api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=_as(SA), json={})
    info = (await resp.json())["status"]["userInfo"]
    assert info == {"username": SA, "groups": ["system:serviceaccounts", "system:serviceaccounts:default",
                                               "system:authenticated"]}


def test_impersonation_needs_the_impersonate_verb(registry: Registry) -> None:
    """Only the admin token authenticates over HTTP, and it may impersonate anyone; so a
    non-privileged impersonator is checked on the function the middleware calls."""
    authz.ensure_bootstrap_policy(registry)
    authorizer = authz.Authorizer(authz.StorePolicy(registry))
    bob = User("bob", ("system:authenticated",))
    headers = {"Impersonate-User": SA}
    with pytest.raises(ApiError) as refused:
        authz.impersonated(bob, headers, lambda name: [], authorizer)
    assert refused.value.code == 403
    assert refused.value.message == ('serviceaccounts "default" is forbidden: User "bob" cannot impersonate '
                                     'resource "serviceaccounts" in API group "" in the namespace "default"')
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "imp"},
            "rules": [{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["serviceaccounts"]}]}
    registry.create(_res("roles"), "default", role, WriteOptions())
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "imp"},
               "roleRef": {"kind": "Role", "name": "imp"}, "subjects": [{"kind": "User", "name": "bob"}]}
    registry.create(_res("rolebindings"), "default", binding, WriteOptions())
    assert authz.impersonated(bob, headers, lambda name: [], authorizer).name == SA
    with pytest.raises(ApiError, match='groups "admins" is forbidden'):
        authz.impersonated(bob, headers, lambda name: ["admins"] if name == "Impersonate-Group" else [], authorizer)


async def test_a_role_and_binding_let_the_service_account_read_pods_in_that_namespace_only(api: TestClient) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}
    assert (await api.post(f"{RBAC}/namespaces/default/roles", json=role, headers=ADMIN)).status == 201
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "read"},
               "roleRef": {"kind": "Role", "name": "pod-reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}
    resp = await api.post(f"{RBAC}/namespaces/default/rolebindings", json=binding, headers=ADMIN)
    assert resp.status == 201
    assert (await resp.json())["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"  # defaulted
    assert (await api.get("/api/v1/namespaces/default/pods", headers=_as(SA))).status == 200
    resp = await api.get("/api/v1/namespaces/kube-system/pods", headers=_as(SA))
    assert resp.status == 403
    assert (await resp.json())["message"].endswith('in the namespace "kube-system"')


async def _grant(api: TestClient, name: str, rules: list[dict], user: str) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": rules}
    assert (await api.post(f"{RBAC}/clusterroles", json=role, headers=ADMIN)).status == 201
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name}, "roleRef": {"kind": "ClusterRole", "name": name},
               "subjects": [{"kind": "User", "name": user}]}
    assert (await api.post(f"{RBAC}/clusterrolebindings", json=binding, headers=ADMIN)).status == 201


async def test_a_user_cannot_write_a_role_granting_more_than_it_holds(api: TestClient) -> None:
    await _grant(api, "role-writer", [
        {"verbs": ["create"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], "bob")
    ok = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "get-pods"},
          "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}
    assert (await api.post(f"{RBAC}/namespaces/default/roles", json=ok, headers=_as("bob"))).status == 201
    more = {**ok, "metadata": {"name": "list-pods"},
            "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]}
    resp = await api.post(f"{RBAC}/namespaces/default/roles", json=more, headers=_as("bob"))
    assert resp.status == 403
    assert (await resp.json())["message"] == (
        'roles.rbac.authorization.k8s.io "list-pods" is forbidden: user "bob" (groups=["system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["list" "watch"]}')
    assert (await api.get(f"{RBAC}/namespaces/default/roles/list-pods", headers=ADMIN)).status == 404


async def test_the_escalate_verb_lets_a_user_write_any_role(api: TestClient) -> None:
    await _grant(api, "escalator", [{"verbs": ["create", "escalate"], "apiGroups": ["rbac.authorization.k8s.io"],
                                     "resources": ["roles"]}], "eve")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "all"},
            "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}
    assert (await api.post(f"{RBAC}/namespaces/default/roles", json=role, headers=_as("eve"))).status == 201


async def test_binding_needs_the_roles_permissions_or_the_bind_verb(api: TestClient) -> None:
    await _grant(api, "binder", [{"verbs": ["create"], "apiGroups": ["rbac.authorization.k8s.io"],
                                  "resources": ["rolebindings"]}], "dan")
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
               "roleRef": {"kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "dan"}]}
    resp = await api.post(f"{RBAC}/namespaces/default/rolebindings", json=binding, headers=_as("dan"))
    assert resp.status == 403
    assert "is attempting to grant RBAC permissions not currently held" in (await resp.json())["message"]
    await _grant(api, "bind-view", [{"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"],
                                     "resources": ["clusterroles"], "resourceNames": ["view"]}], "dan")
    resp = await api.post(f"{RBAC}/namespaces/default/rolebindings", json=binding, headers=_as("dan"))
    assert resp.status == 201


async def test_access_reviews_answer_in_status(api: TestClient) -> None:
    ssar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}}
    resp = await api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=ssar, headers=_as(SA))
    assert resp.status == 201
    assert (await resp.json())["status"] == {"allowed": False}
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "someone", "groups": ["system:authenticated"],
                    "nonResourceAttributes": {"path": "/version", "verb": "get"}}}
    resp = await api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar, headers=ADMIN)
    status = (await resp.json())["status"]
    assert status["allowed"] is True
    assert status["reason"].startswith('RBAC: allowed by ClusterRoleBinding "system:discovery"')


async def test_an_access_review_needs_exactly_one_kind_of_attributes(api: TestClient) -> None:
    ssar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}
    resp = await api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=ssar, headers=ADMIN)
    assert resp.status == 422
    assert "exactly one of nonResourceAttributes or resourceAttributes must be specified" in \
        (await resp.json())["message"]
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"nonResourceAttributes": {"path": "/version", "verb": "get"}}}
    resp = await api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar, headers=ADMIN)
    assert resp.status == 422
    assert "at least one of user or group must be specified" in (await resp.json())["message"]


async def test_reviews_are_create_only(api: TestClient) -> None:
    resp = await api.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", headers=ADMIN)
    assert resp.status == 405


async def test_rules_review_lists_the_users_rules(api: TestClient) -> None:
    ssrr = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": "default"}}
    resp = await api.post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", json=ssrr, headers=_as(SA))
    status = (await resp.json())["status"]
    assert status["incomplete"] is False
    assert {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"]} in status["resourceRules"]
    assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]} \
        in status["nonResourceRules"]


async def test_the_unix_socket_app_is_system_masters(registry: Registry) -> None:
    server = ApiServer(registry, ServerSettings(token=TOKEN))
    async with TestClient(TestServer(server.make_app(authenticate=False))) as c:
        resp = await c.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
        assert (await resp.json())["status"]["userInfo"]["groups"] == ["system:masters", "system:authenticated"]


async def test_a_patch_cannot_escalate_either(api: TestClient) -> None:
    await _grant(api, "role-patcher", [
        {"verbs": ["create", "patch"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], "pat")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "mine"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}
    assert (await api.post(f"{RBAC}/namespaces/default/roles", json=role, headers=_as("pat"))).status == 201
    patch = {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}
    resp = await api.patch(f"{RBAC}/namespaces/default/roles/mine", json=patch,
                           headers={**_as("pat"), "Content-Type": "application/merge-patch+json"})
    assert resp.status == 403
    assert 'Resources:["secrets"], Verbs:["get"]' in (await resp.json())["message"]
    labels = {"metadata": {"labels": {"team": "a"}}}  # grants nothing new: allowed
    resp = await api.patch(f"{RBAC}/namespaces/default/roles/mine", json=labels,
                           headers={**_as("pat"), "Content-Type": "application/merge-patch+json"})
    assert resp.status == 200


async def test_a_local_access_review_asks_about_its_namespace_only(api: TestClient) -> None:
    lsar = {"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "spec": {"user": "bob", "resourceAttributes": {"namespace": "default", "verb": "get",
                                                           "resource": "pods"}}}
    url = "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews"
    resp = await api.post(url, json=lsar, headers=ADMIN)
    assert resp.status == 201
    body = await resp.json()
    assert (body["metadata"]["namespace"], body["status"]) == ("default", {"allowed": False})
    other = {**lsar, "spec": {**lsar["spec"], "resourceAttributes": {"namespace": "kube-system", "verb": "get",
                                                                    "resource": "pods"}}}
    resp = await api.post(url, json=other, headers=ADMIN)
    assert resp.status == 422
    assert "spec.resourceAttributes.namespace: Invalid value: \"kube-system\": must match metadata.namespace" in \
        (await resp.json())["message"]


async def test_a_namespace_admin_may_grant_what_the_admin_role_holds_there_only(api: TestClient) -> None:
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "adm"},
               "roleRef": {"kind": "ClusterRole", "name": "admin"}, "subjects": [{"kind": "User", "name": "nina"}]}
    assert (await api.post(f"{RBAC}/namespaces/default/rolebindings", json=binding, headers=ADMIN)).status == 201
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-editor"},
            "rules": [{"verbs": ["get", "update"], "apiGroups": [""], "resources": ["configmaps"]}]}
    assert (await api.post(f"{RBAC}/namespaces/default/roles", json=role, headers=_as("nina"))).status == 201
    nodes = {**role, "metadata": {"name": "nodes"},
             "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]}
    resp = await api.post(f"{RBAC}/namespaces/default/roles", json=nodes, headers=_as("nina"))
    assert resp.status == 403  # admin holds no nodes rule
    resp = await api.post(f"{RBAC}/namespaces/kube-system/roles", json=role, headers=_as("nina"))
    assert resp.status == 403  # and nothing in another namespace
    assert (await resp.json())["message"].startswith('roles.rbac.authorization.k8s.io is forbidden: User "nina" '
                                                     'cannot create resource "roles"')


def test_aggregation_gives_view_edit_and_admin_a_new_roles_rules(registry: Registry) -> None:
    authz.ensure_bootstrap_policy(registry)
    assert authz.aggregate_cluster_roles(registry) == 0  # the bootstrap roles are created aggregated
    widget = {"verbs": ["get", "list"], "apiGroups": ["example.com"], "resources": ["widgets"]}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "widget-viewer", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [widget]}
    registry.create(_res("clusterroles"), None, role, WriteOptions())
    passes = [authz.aggregate_cluster_roles(registry) for _ in range(4)]
    assert passes[-1] == 0 and sum(passes) == 3  # view, then edit, then admin
    for name in ("view", "edit", "admin"):
        assert widget in registry.get(_res("clusterroles"), None, name)["rules"], name
    assert widget not in registry.get(_res("clusterroles"), None, "system:aggregate-to-view")["rules"]


def test_the_policy_is_read_again_only_after_a_role_or_binding_changed(registry: Registry) -> None:
    """Other writes leave the snapshot as it is (a node's or a controller's requests are authorized
    without listing the policy again); a new binding is seen by the very next decision."""
    authz.ensure_bootstrap_policy(registry)
    policy = authz.StorePolicy(registry)
    lists: list[str] = []
    real_list = registry.list

    def counting_list(res, namespace, *args, **kwargs):
        lists.append(res.plural)
        return real_list(res, namespace, *args, **kwargs)

    registry.list = counting_list  # type: ignore[method-assign]
    authorizer = authz.Authorizer(policy)
    bob = User("bob", ("system:authenticated",))
    reads = Attributes(bob, "list", True, "/api/v1/namespaces/default/configmaps", "default", "", "v1",
                       "configmaps")
    assert not authorizer.decide(reads).allowed
    first = len(lists)
    registry.create(lookup("", "v1", "configmaps"), "default",
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}}, WriteOptions())
    assert not authorizer.decide(reads).allowed
    assert len(lists) == first  # an unrelated write: no new read of the policy
    registry.create(lookup("rbac.authorization.k8s.io", "v1", "rolebindings"), "default", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bob-views"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]}, WriteOptions())
    assert authorizer.decide(reads).allowed
    assert len(lists) > first
    policy.close()
