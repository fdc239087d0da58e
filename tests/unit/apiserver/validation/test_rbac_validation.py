"""RBAC validation: pkg/apis/rbac/validation's rules and wording (cases after its
validation_test.go)."""
from __future__ import annotations

import pytest

from svcnet.apiserver.validation import validate

G = "rbac.authorization.k8s.io"


def messages(kind: str, obj: dict, old: dict | None = None) -> list[str]:
    return [f"{c.field}: {c.message}" for c in validate(kind, obj, old)]


def role(*rules: dict, kind: str = "Role", name: str = "r") -> dict:
    md = {"name": name, **({"namespace": "default"} if kind == "Role" else {})}
    return {"apiVersion": f"{G}/v1", "kind": kind, "metadata": md, "rules": list(rules)}


def binding(ref: dict, *subjects: dict, kind: str = "RoleBinding", name: str = "b") -> dict:
    md = {"name": name, **({"namespace": "default"} if kind == "RoleBinding" else {})}
    return {"apiVersion": f"{G}/v1", "kind": kind, "metadata": md, "roleRef": ref, "subjects": list(subjects)}


REF = {"apiGroup": G, "kind": "ClusterRole", "name": "view"}


@pytest.mark.parametrize(("kind", "rule", "expected"), [
    ("Role", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, []),
    ("Role", {"apiGroups": [""], "resources": ["pods"]},
     ["rules[0].verbs: Required value: verbs must contain at least one value"]),
    ("Role", {"verbs": ["get"], "resources": ["pods"]},
     ["rules[0].apiGroups: Required value: resource rules must supply at least one api group"]),
    ("Role", {"verbs": ["get"], "apiGroups": [""]},
     ["rules[0].resources: Required value: resource rules must supply at least one resource"]),
    ("Role", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "services"], "resourceNames": ["x"]},
     ["rules[0].resourceNames: Required value: resource names cannot apply to multiple resources"]),
    ("Role", {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
     ['rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to '
      'non-resource URLs']),
    ("ClusterRole", {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, []),
    ("ClusterRole", {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]},
     ['rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: rules cannot apply to both regular '
      'resources and non-resource URLs']),
])
def test_policy_rules(kind: str, rule: dict, expected: list[str]) -> None:
    assert messages(kind, role(rule, kind=kind)) == expected


def test_rbac_names_are_path_segments_so_colons_are_fine() -> None:
    assert messages("ClusterRole", role(kind="ClusterRole", name="system:node")) == []
    assert messages("ClusterRole", role(kind="ClusterRole", name="a/b")) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"]


@pytest.mark.parametrize(("kind", "ref", "subject", "expected"), [
    ("RoleBinding", REF, {"kind": "User", "apiGroup": G, "name": "bob"}, []),
    ("RoleBinding", {**REF, "kind": "Role"}, {"kind": "ServiceAccount", "name": "default"}, []),
    ("ClusterRoleBinding", {**REF, "kind": "Role"}, {"kind": "Group", "apiGroup": G, "name": "devs"},
     ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"']),
    ("RoleBinding", {**REF, "kind": "Pod"}, {"kind": "User", "apiGroup": G, "name": "bob"},
     ['roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"']),
    ("RoleBinding", {**REF, "apiGroup": "example.com"}, {"kind": "User", "apiGroup": G, "name": "bob"},
     ['roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"']),
    ("RoleBinding", {**REF, "name": ""}, {"kind": "User", "apiGroup": G, "name": "bob"},
     ["roleRef.name: Required value"]),
    ("ClusterRoleBinding", REF, {"kind": "ServiceAccount", "name": "default"},
     ["subjects[0].namespace: Required value"]),
    ("RoleBinding", REF, {"kind": "ServiceAccount", "name": "Bad_Name", "apiGroup": G},
     ['subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case '
      "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
      "'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
      'subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""']),
    ("RoleBinding", REF, {"kind": "User", "name": "bob"},
     ['subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"']),
    ("RoleBinding", REF, {"kind": "Robot", "name": "r2"},
     ['subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"']),
    ("RoleBinding", REF, {"kind": "Group", "apiGroup": G},
     ["subjects[0].name: Required value", 'subjects[0].name: Invalid value: "": group name cannot be empty']),
])
def test_bindings(kind: str, ref: dict, subject: dict, expected: list[str]) -> None:
    assert messages(kind, binding(ref, subject, kind=kind)) == expected


def test_a_bindings_role_ref_never_changes() -> None:
    old = binding(REF, kind="ClusterRoleBinding")
    old["metadata"]["resourceVersion"] = "1"
    new = binding({**REF, "name": "edit"}, kind="ClusterRoleBinding")
    new["metadata"]["resourceVersion"] = "1"
    assert messages("ClusterRoleBinding", new, old) == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
        'Name:"edit"}: cannot change roleRef']
