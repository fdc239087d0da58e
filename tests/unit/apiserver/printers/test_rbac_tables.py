"""Tables of the RBAC kinds, as kubectl shows them: roles NAME CREATED AT; bindings NAME ROLE
AGE, and with -o wide USERS GROUPS SERVICEACCOUNTS."""
from __future__ import annotations

import datetime as dt

import pytest

from svcnet.api.resources import lookup_kind
from svcnet.apiserver import printers as tables

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
G = "rbac.authorization.k8s.io/v1"


def _res(kind: str):
    found = lookup_kind(G, kind)
    assert found is not None
    return found


def _headers(kind: str, wide: bool) -> str:
    return " ".join(c["name"].upper() for c in tables.column_definitions(_res(kind)) if wide or c["priority"] == 0)


@pytest.mark.parametrize(("kind", "wide", "header"), [
    ("Role", False, "NAME CREATED AT"),
    ("ClusterRole", True, "NAME CREATED AT"),
    ("RoleBinding", False, "NAME ROLE AGE"),
    ("RoleBinding", True, "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS"),
    ("ClusterRoleBinding", True, "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS"),
])
def test_headers_are_kubectls(kind: str, wide: bool, header: str) -> None:
    assert _headers(kind, wide) == header


def test_a_role_shows_its_creation_time_in_utc() -> None:
    role = {"metadata": {"name": "pod-reader", "creationTimestamp": "2024-05-01T11:00:00Z"}}
    assert tables.row_cells(_res("Role"), role, NOW) == ["pod-reader", "2024-05-01T11:00:00Z"]


def test_a_binding_lists_its_role_and_subjects_by_kind() -> None:
    binding = {"metadata": {"name": "read", "creationTimestamp": "2024-05-01T11:58:00Z"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                            {"kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "name": "default", "namespace": "team-a"}]}
    assert tables.row_cells(_res("RoleBinding"), binding, NOW) == [
        "read", "ClusterRole/view", "2m", "alice, bob", "devs", "team-a/default"]
