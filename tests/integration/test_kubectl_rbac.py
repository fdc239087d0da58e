"""RBAC through a real `svcnet apiserver` with the real kubectl: whoami, can-i with
impersonation, the imperative generators for roles and bindings (protobuf bodies), the 403
a service account gets outside its namespace, and tables."""
from __future__ import annotations

import pytest

from tests.integration.apiserver_harness import kubectl_available
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not on PATH")]

SA = "system:serviceaccount:default:default"


def test_whoami_is_the_admin_in_system_masters(apiserver):
    out = apiserver.kubectl("auth", "whoami").stdout
    assert "kubernetes-admin" in out
    assert "[system:masters system:authenticated]" in out


def test_whoami_as_a_service_account_shows_its_groups(apiserver):
    out = apiserver.kubectl("auth", "whoami", f"--as={SA}").stdout
    assert SA in out
    assert "[system:serviceaccounts system:serviceaccounts:default system:authenticated]" in out


def test_a_role_and_binding_let_the_default_service_account_list_pods_only_in_its_namespace(apiserver):
    denied = apiserver.kubectl("auth", "can-i", "list", "pods", f"--as={SA}", check=False)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")

    created = apiserver.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    assert "role.rbac.authorization.k8s.io/pod-reader created" in created.stdout
    bound = apiserver.kubectl("create", "rolebinding", "read-pods", "--role=pod-reader",
                              "--serviceaccount=default:default")
    assert "rolebinding.rbac.authorization.k8s.io/read-pods created" in bound.stdout

    allowed = apiserver.kubectl("auth", "can-i", "list", "pods", f"--as={SA}")
    assert allowed.stdout.strip() == "yes"
    assert apiserver.kubectl("auth", "can-i", "delete", "pods", f"--as={SA}", check=False).stdout.strip() == "no"

    elsewhere = apiserver.kubectl("get", "pods", "-n", "kube-system", f"--as={SA}", check=False)
    assert elsewhere.returncode == 1
    assert ('Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:default" '
            'cannot list resource "pods" in API group "" in the namespace "kube-system"') in elsewhere.stderr
    assert apiserver.kubectl("get", "pods", f"--as={SA}").returncode == 0


def test_roles_and_bindings_print_kubectls_tables(apiserver):
    apiserver.kubectl("create", "clusterrole", "pod-viewer", "--verb=get,list,watch", "--resource=pods")
    apiserver.kubectl("create", "clusterrolebinding", "viewers", "--clusterrole=pod-viewer", "--user=alice",
                      "--group=devs", "--serviceaccount=team-a:robot")
    role = apiserver.kubectl_json("get", "clusterrole", "pod-viewer")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    lines = apiserver.kubectl("get", "clusterrolebinding", "viewers", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert lines[1].split()[:2] == ["viewers", "ClusterRole/pod-viewer"]
    assert lines[1].split()[3:] == ["alice", "devs", "team-a/robot"]
    header = apiserver.kubectl("get", "clusterroles").stdout.splitlines()[0]
    assert header.split() == ["NAME", "CREATED", "AT"]


def test_the_bootstrap_policy_is_there(apiserver):
    names = apiserver.kubectl("get", "clusterroles", "-o", "name").stdout.split()
    for role in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                 "system:public-info-viewer", "system:node", "system:node-proxier", "system:kube-dns"):
        assert f"clusterrole.rbac.authorization.k8s.io/{role}" in names
    binding = apiserver.kubectl_json("get", "clusterrolebinding", "cluster-admin")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:masters"}]
    listed = apiserver.kubectl("auth", "can-i", "--list", f"--as={SA}").stdout
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listed


def test_invalid_rbac_objects_are_refused_with_upstreams_message(apiserver):
    manifest = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: urls}
rules:
- verbs: [get]
  nonResourceURLs: [/healthz]
"""
    refused = apiserver.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert refused.returncode == 1
    assert ('rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to '
            'non-resource URLs') in refused.stderr


def test_a_role_labelled_aggregate_to_view_joins_view_edit_and_admin(apiserver):
    manifest = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: lease-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {verbs: [get, list], apiGroups: [coordination.k8s.io], resources: [leases]}
"""
    apiserver.kubectl("create", "rolebinding", "viewers", "--clusterrole=view", "--user=vera")
    denied = apiserver.kubectl("auth", "can-i", "list", "leases", "--as=vera", check=False)
    assert denied.stdout.strip() == "no"  # view alone holds no lease rule
    apiserver.kubectl("apply", "-f", "-", input=manifest)
    leases = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list"]}

    def aggregated() -> bool:
        return all(leases in apiserver.kubectl_json("get", "clusterrole", name)["rules"]
                   for name in ("view", "edit", "admin"))

    wait_for(aggregated, timeout=60, what="the lease rule in view, edit and admin")
    assert apiserver.kubectl("auth", "can-i", "list", "leases", "--as=vera").stdout.strip() == "yes"
