"""Which ServiceAccounts a namespace is missing, as kube-controller-manager's
serviceaccount-controller decides it: every Active namespace has `default`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from svcnet.api.objects import metadata_of, status_of

Obj = dict[str, Any]

# Upstream's DefaultServiceAccountsControllerOptions: the accounts every namespace gets.
SERVICE_ACCOUNTS_TO_ENSURE = ("default",)


def missing_service_accounts(namespace: Obj | None, exists: Callable[[str], bool]) -> list[Obj]:
    """The ServiceAccounts to create in namespace (exists(name) says whether one is there).

    Nothing for a namespace that is gone or not Active: a terminating namespace refuses new
    content, and upstream does not try.
    """
    if namespace is None or (status_of(namespace).get("phase") or "Active") != "Active":
        return []
    name = str(metadata_of(namespace).get("name") or "")
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": name}}
            for account in SERVICE_ACCOUNTS_TO_ENSURE if not exists(account)]
