"""Printers of rbac.authorization.k8s.io/v1 kinds, as kube-apiserver's printRole,
printClusterRole, printRoleBinding and printClusterRoleBinding: roles show NAME and
CREATED AT; bindings NAME, ROLE (Kind/name), AGE, and with -o wide the USERS, GROUPS and
SERVICEACCOUNTS (namespace/name) they bind."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, NAME, Column, Printer, wide
from .format import Cell, Obj, age_cell, get_path, name_cell, parse_timestamp

G = "rbac.authorization.k8s.io"
CREATED_AT = Column("Created At", "date", "When the object was created (metadata.creationTimestamp).")


def _created_at(obj: Obj) -> str:
    created = parse_timestamp(get_path(obj, "metadata", "creationTimestamp"))
    return (created or dt.datetime(1, 1, 1, tzinfo=dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _role_cells(role: Obj, now: dt.datetime) -> list[Cell]:
    return [name_cell(role), _created_at(role)]


def subjects_strings(subjects: list[Obj]) -> tuple[list[str], list[str], list[str]]:
    """rbac.SubjectsStrings: user names, group names, service accounts as namespace/name."""
    users, groups, service_accounts = [], [], []
    for s in subjects:
        if not isinstance(s, dict):
            continue
        kind, name = s.get("kind"), str(s.get("name") or "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            service_accounts.append(f"{s.get('namespace') or ''}/{name}")
    return users, groups, service_accounts


def _binding_cells(binding: Obj, now: dt.datetime) -> list[Cell]:
    ref = get_path(binding, "roleRef", default={})
    users, groups, sas = subjects_strings(get_path(binding, "subjects", default=[]))
    return [name_cell(binding), f"{ref.get('kind', '')}/{ref.get('name', '')}", age_cell(binding, now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


_BINDING_COLUMNS = (
    NAME,
    Column("Role", "string", "The role the binding grants (Kind/name)."),
    AGE,
    wide("Users", "Users in the binding."),
    wide("Groups", "Groups in the binding."),
    wide("ServiceAccounts", "ServiceAccounts in the binding."),
)

RBAC_PRINTERS: dict[tuple[str, str], Printer] = {
    (G, "Role"): Printer((NAME, CREATED_AT), _role_cells),
    (G, "ClusterRole"): Printer((NAME, CREATED_AT), _role_cells),
    (G, "RoleBinding"): Printer(_BINDING_COLUMNS, _binding_cells),
    (G, "ClusterRoleBinding"): Printer(_BINDING_COLUMNS, _binding_cells),
}
