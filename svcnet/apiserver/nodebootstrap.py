"""Node bootstrap in the API server, as kube-apiserver and `kubeadm init` set it up: the bootstrap
token authenticator (--enable-bootstrap-token-auth), the kube-public/cluster-info ConfigMap a
joining node discovers the cluster from, and kubeadm's RBAC for joining nodes.

Anonymous requests are refused everywhere but one: GET of kube-public/cluster-info, which
kubeadm's discovery reads before it trusts anything (kube-apiserver 1.32 can narrow anonymous
authentication to named paths the same way, AuthenticationConfiguration's anonymous.conditions).
What it holds is public (the server URL and CA certificate) and signed per bootstrap token, so a
node that knows a token can tell a genuine copy from a forged one.
"""
from __future__ import annotations

import base64
import logging
from contextlib import suppress
from typing import Any

import yaml

from svcnet.api.errors import ApiError
from svcnet.api.resources import RBAC_GROUP, lookup
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.core import bootstraptoken
from svcnet.core.rbac.identity import ANONYMOUS, NODES_GROUP, UNAUTHENTICATED, User
from svcnet.storage.base import NoSpace

log = logging.getLogger("svcnet.apiserver")
Obj = dict[str, Any]

CLUSTER_INFO_PATH = (f"/api/v1/namespaces/{bootstraptoken.CLUSTER_INFO_NAMESPACE}/configmaps/"
                     f"{bootstraptoken.CLUSTER_INFO}")
ANONYMOUS_USER = User(ANONYMOUS, (UNAUTHENTICATED,))


def anonymous_user(method: str, path: str) -> User | None:
    """system:anonymous for the one request anonymous clients may make; None for the rest (401)."""
    if method in ("GET", "HEAD") and path == CLUSTER_INFO_PATH:
        return ANONYMOUS_USER
    return None


class BootstrapTokens:
    """kube-apiserver's bootstrap token authenticator over the Secrets in kube-system."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.secrets = lookup("", "v1", "secrets")

    def user(self, text: str) -> User | None | bool:
        """The token's user; None when it is a bootstrap token that does not authenticate;
        False when it is not of the bootstrap form at all (another authenticator's)."""
        token = bootstraptoken.parse(text)
        if token is None:
            return False
        assert self.secrets is not None
        try:
            secret = self.registry.get(self.secrets, bootstraptoken.NAMESPACE, bootstraptoken.secret_name(token.id))
        except ApiError as exc:
            if exc.code != 404:
                raise
            secret = None
        try:
            return bootstraptoken.authenticate(token, secret, self.registry.clock())
        except bootstraptoken.TokenError as exc:
            log.info("Bootstrap secret %s/%s matching bearer token %s", bootstraptoken.NAMESPACE,
                     bootstraptoken.secret_name(token.id), exc)
            return None


# ------------------------------------------------------------------ cluster-info and kubeadm's RBAC
def cluster_info_kubeconfig(server_url: str, ca_pem: bytes) -> str:
    """The kubeconfig kubeadm publishes: one cluster (server and CA), no user."""
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": "", "cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(),
                                                 "server": server_url}}],
           "contexts": None, "current-context": "", "users": None}
    return yaml.safe_dump(doc, sort_keys=False)


def _binding(kind: str, name: str, role_kind: str, role: str, subject_kind: str, subject: str,
             namespace: str | None = None) -> Obj:
    md: Obj = {"name": name}
    if namespace:
        md["namespace"] = namespace
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind, "metadata": md,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": subject_kind, "name": subject}]}


NODE_PROXIER_BINDING = "svcnet:node-proxier"


def kubeadm_rbac() -> list[tuple[str, str | None, Obj]]:
    """(plural, namespace, object): what kubeadm init's bootstrap-token phase creates."""
    public = bootstraptoken.CLUSTER_INFO_NAMESPACE
    group = bootstraptoken.KUBEADM_NODE_GROUP
    crb = "ClusterRoleBinding"
    return [
        ("roles", public, {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role",
                           "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": public},
                           "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                                      "resourceNames": [bootstraptoken.CLUSTER_INFO]}]}),
        ("rolebindings", public, _binding("RoleBinding", "kubeadm:bootstrap-signer-clusterinfo", "Role",
                                          "kubeadm:bootstrap-signer-clusterinfo", "User", ANONYMOUS, public)),
        ("clusterrolebindings", None, _binding(crb, "kubeadm:kubelet-bootstrap", "ClusterRole",
                                               "system:node-bootstrapper", "Group", group)),
        ("clusterrolebindings", None, _binding(crb, "kubeadm:node-autoapprove-bootstrap", "ClusterRole",
                                               "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                                               "Group", group)),
        ("clusterrolebindings", None, _binding(crb, "kubeadm:node-autoapprove-certificate-rotation", "ClusterRole",
                                               "system:certificates.k8s.io:certificatesigningrequests:"
                                               "selfnodeclient", "Group", NODES_GROUP)),
        ("clusterroles", None, {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
                                "metadata": {"name": "kubeadm:get-nodes"},
                                "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
        ("clusterrolebindings", None, _binding(crb, "kubeadm:get-nodes", "ClusterRole", "kubeadm:get-nodes",
                                               "Group", group)),
        # A joined node runs its service proxy with its own credential (svcnet has no kube-proxy
        # DaemonSet whose ServiceAccount kubeadm would bind): nodes get what kube-proxy reads and a
        # node may not already (system:node-proxier's endpointslices and servicecidrs; services,
        # events and its own Node it has; other Nodes stay the Node authorizer's refusal).
        ("clusterroles", None, {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
                                "metadata": {"name": NODE_PROXIER_BINDING},
                                "rules": [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                                           "verbs": ["list", "watch"]},
                                          {"apiGroups": ["networking.k8s.io"], "resources": ["servicecidrs"],
                                           "verbs": ["list", "watch"]}]}),
        ("clusterrolebindings", None, _binding(crb, NODE_PROXIER_BINDING, "ClusterRole", NODE_PROXIER_BINDING,
                                               "Group", NODES_GROUP)),
    ]


def ensure_node_bootstrap(registry: Registry, server_url: str, ca_pem: bytes) -> None:
    """cluster-info (its kubeconfig kept current; the signatures are the bootstrap signer's) and
    kubeadm's RBAC, each created when missing; an admin's edits to the RBAC are kept."""
    opts = WriteOptions(field_manager="kube-apiserver")
    try:
        for plural, namespace, body in kubeadm_rbac():
            res = lookup(RBAC_GROUP, "v1", plural)
            assert res is not None
            with suppress(ApiError):  # exists
                registry.create(res, namespace, body, opts)
        _ensure_cluster_info(registry, cluster_info_kubeconfig(server_url, ca_pem), opts)
    except NoSpace:
        log.warning("cluster-info and the node bootstrap RBAC are incomplete: the storage device is full")


def _ensure_cluster_info(registry: Registry, kubeconfig: str, opts: WriteOptions) -> None:
    configmaps = lookup("", "v1", "configmaps")
    assert configmaps is not None
    namespace, name = bootstraptoken.CLUSTER_INFO_NAMESPACE, bootstraptoken.CLUSTER_INFO
    try:
        current = registry.get(configmaps, namespace, name)
    except ApiError as exc:
        if exc.code != 404:
            raise
        registry.create(configmaps, namespace, {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": name, "namespace": namespace},
                                                "data": {bootstraptoken.KUBECONFIG_KEY: kubeconfig}}, opts)
        return
    data = dict(current.get("data") or {})
    if data.get(bootstraptoken.KUBECONFIG_KEY) != kubeconfig:
        # a new server address or CA: the old signatures no longer match; the signer makes new ones
        data = {k: v for k, v in data.items() if not k.startswith(bootstraptoken.JWS_PREFIX)}
        data[bootstraptoken.KUBECONFIG_KEY] = kubeconfig
        registry.update(configmaps, namespace, name, {**current, "data": data}, opts)
