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


# The identity of svcnet's admin credential and of its root-only unix socket: system:masters,
# as kubeadm's admin.conf was before 1.29. `svcnet up` itself uses them; the components it starts
# authenticate with client certificates of their own (node_user, KUBE_PROXY, ... below).
ADMIN = User("kubernetes-admin", (SYSTEM_MASTERS, AUTHENTICATED))
LOCAL_SOCKET = User("system:admin", (SYSTEM_MASTERS, AUTHENTICATED))

# Node identities (pkg/auth/nodeidentifier's default): a user named system:node:<name> in the
# system:nodes group is the node <name>; the Node authorizer and NodeRestriction act on them only.
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
# The component users kubeadm issues client certificates for, each bound by the bootstrap policy.
KUBE_PROXY = "system:kube-proxy"
KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
KUBE_SCHEDULER = "system:kube-scheduler"


def node_user(node_name: str) -> User:
    """The identity a node's kubelet authenticates as (its client certificate's CN and O)."""
    return User(f"{NODE_USER_PREFIX}{node_name}", (NODES_GROUP, AUTHENTICATED))


def node_identity(user: User) -> tuple[bool, str]:
    """(is a node, its name) as NodeIdentifier.NodeIdentity answers: a node needs both the
    system:node: prefix and the system:nodes group; the name may be empty (an unidentifiable node)."""
    if not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return False, ""
    return True, user.name[len(NODE_USER_PREFIX):]
