"""Which ServiceAccounts a namespace is missing, as kube-controller-manager's
serviceaccount-controller decides it: every Active namespace has `default`."""
from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from svcnet.api.objects import metadata_of, status_of
from svcnet.core.satoken import SA_NAME_ANNOTATION, SA_UID_ANNOTATION, TOKEN_SECRET_TYPE

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


# ------------------------------------------------------------------ token Secrets
# kube-controller-manager's tokens controller (pkg/controller/serviceaccount/tokens_controller.go):
# a Secret of type kubernetes.io/service-account-token that names an existing ServiceAccount in
# its kubernetes.io/service-account.name annotation gets a token, the root CA and the namespace;
# one whose account is gone (or has another uid now) is deleted. Since 1.24 no such Secret is made
# for an account unless a user creates it.


def is_token_secret(secret: Obj) -> bool:
    return secret.get("type") == TOKEN_SECRET_TYPE


def token_secret_account(secret: Obj) -> tuple[str, str]:
    """(name, uid) of the ServiceAccount a token Secret names; uid is "" until the controller sets it."""
    annotations = metadata_of(secret).get("annotations") or {}
    return str(annotations.get(SA_NAME_ANNOTATION) or ""), str(annotations.get(SA_UID_ANNOTATION) or "")


def token_secret_orphaned(secret: Obj, account: Obj | None) -> bool:
    """Whether the Secret's account is gone: none by that name, or one with another uid."""
    _, uid = token_secret_account(secret)
    return account is None or bool(uid and uid != metadata_of(account).get("uid"))


def filled_token_secret(secret: Obj, account: Obj, root_ca: bytes, make_token: Callable[[], str]) -> Obj | None:
    """The Secret with what it lacks (the CA when it differs, the namespace, a token when it has none)
    and the account's name and uid annotations; None when it needs nothing."""
    data = dict(secret.get("data") or {})
    md = metadata_of(account)
    namespace = str(metadata_of(secret).get("namespace") or "")
    ca = base64.b64encode(root_ca).decode() if root_ca else ""
    needs_ca = bool(ca) and data.get("ca.crt") != ca
    needs_namespace = not data.get("namespace")
    needs_token = not data.get("token")
    annotations = dict(metadata_of(secret).get("annotations") or {})
    wanted_annotations = {SA_NAME_ANNOTATION: str(md.get("name") or ""), SA_UID_ANNOTATION: str(md.get("uid") or "")}
    if not (needs_ca or needs_namespace or needs_token) and all(annotations.get(k) == v
                                                                for k, v in wanted_annotations.items()):
        return None
    if needs_ca:
        data["ca.crt"] = ca
    if needs_namespace:
        data["namespace"] = base64.b64encode(namespace.encode()).decode()
    if needs_token:
        data["token"] = base64.b64encode(make_token().encode()).decode()
    updated = dict(secret)
    updated["metadata"] = {**metadata_of(secret), "annotations": {**annotations, **wanted_annotations}}
    updated["data"] = data
    return updated
