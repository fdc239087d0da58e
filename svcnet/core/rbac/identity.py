"""Who a request comes from: the user.Info kube-apiserver's authenticators produce."""
from __future__ import annotations

from dataclasses import dataclass, field

SYSTEM_MASTERS = "system:masters"  # always allowed (kube-apiserver's privileged group)
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def privileged(self) -> bool:
        return SYSTEM_MASTERS in self.groups


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}")


def split_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a service-account user name; None for any other name
    (or one whose namespace or name is empty, as serviceaccount.SplitUsername refuses it)."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_PREFIX):].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def with_authenticated_group(name: str, groups: tuple[str, ...]) -> tuple[str, ...]:
    """Groups as the authentication filter completes them: every named user is in
    system:authenticated, the anonymous one in system:unauthenticated."""
    wanted = UNAUTHENTICATED if name == ANONYMOUS else AUTHENTICATED
    return groups if wanted in groups else (*groups, wanted)


# The identity of svcnet's one admin credential and of its root-only unix socket: system:masters,
# as kubeadm's admin.conf was before 1.29. Components still use these; per-component identities
# (system:node:<name>, system:kube-proxy, ...) are a later step.
ADMIN = User("kubernetes-admin", (SYSTEM_MASTERS, AUTHENTICATED))
LOCAL_SOCKET = User("system:admin", (SYSTEM_MASTERS, AUTHENTICATED))
