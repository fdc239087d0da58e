"""One identity per component, as kubeadm gives them: the credentials `svcnet up` writes and the
RBAC it adds for them.

kubeadm issues a client certificate per component from the cluster CA and writes it into a
kubeconfig: controller-manager.conf (system:kube-controller-manager), scheduler.conf
(system:kube-scheduler), kubelet.conf per node (system:node:<name> in system:nodes); kube-proxy
runs as a ServiceAccount that kubeadm binds to system:node-proxier. svcnet writes the same
identities into <data-dir>/kubeconfigs/ (0600, in a 0700 directory), kube-proxy as the
certificate user system:kube-proxy that upstream's bootstrap binding system:node-proxier names.

The controllers run with --use-service-account-credentials=false semantics: one client as
system:kube-controller-manager. That role only lets it read everything and manage service
accounts, so (as the RBAC documentation says of that mode) the controller manager's credential
must be granted the roles of the controllers it runs: `controller_manager_bindings` binds it to
each controller's system:controller:<name> role.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.resources import RBAC_GROUP, lookup
from svcnet.apiserver.credentials import ensure_component_kubeconfig
from svcnet.client.config import load_kubeconfig
from svcnet.core.loadbalancer import SPEAKER_LEASE_NAMESPACE
from svcnet.core.rbac.batch_controller_roles import BATCH_CONTROLLER_ROLE_OF
from svcnet.core.rbac.bootstrap import (
    CONTROLLER_ROLE_PREFIX,
    CONTROLLER_ROLES,
    PRUNE_ALLOWLIST_CONTROLLER_ROLE_OF,
)
from svcnet.core.rbac.identity import (
    KUBE_CONTROLLER_MANAGER,
    KUBE_PROXY,
    KUBE_SCHEDULER,
    NODE_USER_PREFIX,
    NODES_GROUP,
)

KUBECONFIG_DIR = "kubeconfigs"
# svcnet's controller names -> the upstream controller role each one's work needs.
CONTROLLER_ROLE_OF = {
    "replicaset": "replicaset-controller",
    "deployment": "deployment-controller",
    "statefulset": "statefulset-controller",
    "endpointslice": "endpointslice-controller",
    "endpoints": "endpoint-controller",
    "endpointslicemirroring": "endpointslicemirroring-controller",
    "garbagecollector": "generic-garbage-collector",
    "podgc": "pod-garbage-collector",
    "nodelifecycle": "node-controller",
    "serviceaccount": "service-account-controller",
    "root-ca-cert-publisher": "root-ca-cert-publisher",
    "service-lb": "service-lb-controller",
    "tokencleaner": "token-cleaner",
    "bootstrapsigner": "bootstrap-signer",
    "csrapproving": "certificate-controller",
    "csrsigning": "certificate-controller",
}
CONTROLLER_ROLE_OF.update(BATCH_CONTROLLER_ROLE_OF)
CONTROLLER_ROLE_OF.update(PRUNE_ALLOWLIST_CONTROLLER_ROLE_OF)
BINDING_PREFIX = "svcnet:kube-controller-manager:"

# The LoadBalancer speaker (svcnet.agent.speaker) runs in each agent with an identity of its own, as
# MetalLB's speaker has its ServiceAccount and ClusterRole: it reads Services, Nodes and EndpointSlices,
# records Events, and renews its Lease in kube-system (a Role there, not cluster-wide).
LB_SPEAKER = "lb-speaker"
LB_SPEAKER_USER = "system:svcnet:lb-speaker"
LB_SPEAKER_ROLE = "svcnet:lb-speaker"
# The VXLAN overlay (svcnet.agent.overlay, flanneld's part) runs in each agent of a several-host cluster
# as flannel runs under its own ServiceAccount and ClusterRole: it watches every Node (a node's own
# identity may read only its own) and writes its Node's flannel annotations.
OVERLAY = "flannel"
OVERLAY_USER = "system:svcnet:flannel"
OVERLAY_ROLE = "svcnet:flannel"
# flannel's own ServiceAccount (kube-flannel.yml's), bound to the same role: a node joined from another
# machine runs the overlay with a token of it, as flanneld run outside the cluster is given one.
OVERLAY_NAMESPACE = "kube-flannel"
OVERLAY_SERVICE_ACCOUNT = "flannel"


def kubeconfig_path(data_dir: Path, component: str) -> Path:
    """<data-dir>/kubeconfigs/<component>.conf: controller-manager, scheduler, kube-proxy, kubelet-<node>."""
    return data_dir / KUBECONFIG_DIR / f"{component}.conf"


def kubelet_kubeconfig(data_dir: Path, node: str) -> Path:
    return kubeconfig_path(data_dir, f"kubelet-{node}")


def identities(nodes: list[str], lb_speaker: bool = False,
               overlay: bool = False) -> dict[str, tuple[str, tuple[str, ...]]]:
    """component -> (user, groups) for every credential a cluster with these nodes needs."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {
        "controller-manager": (KUBE_CONTROLLER_MANAGER, ()),
        "scheduler": (KUBE_SCHEDULER, ()),
    }
    if nodes:
        out["kube-proxy"] = (KUBE_PROXY, ())
    for node in nodes:
        out[f"kubelet-{node}"] = (f"{NODE_USER_PREFIX}{node}", (NODES_GROUP,))
    if lb_speaker:
        out[LB_SPEAKER] = (LB_SPEAKER_USER, ())
    if overlay:
        out[OVERLAY] = (OVERLAY_USER, ())
    return out


def ensure_component_kubeconfigs(data_dir: Path, server_url: str, nodes: list[str],
                                 lb_speaker: bool = False, overlay: bool = False) -> dict[str, Path]:
    """Write (or keep) every component's kubeconfig; the cluster CA must exist (the API server made it)."""
    pki_dir = data_dir / "pki"
    return {component: ensure_component_kubeconfig(kubeconfig_path(data_dir, component), server_url, pki_dir,
                                                   user, groups)
            for component, (user, groups) in identities(nodes, lb_speaker, overlay).items()}


def lb_speaker_rbac() -> list[tuple[str, str | None, dict[str, Any]]]:
    """(plural, namespace, object) for the speaker's ClusterRole, Role and their bindings."""
    group = f"{RBAC_GROUP}/v1"
    subject = [{"apiGroup": RBAC_GROUP, "kind": "User", "name": LB_SPEAKER_USER}]
    read = ["get", "list", "watch"]
    return [
        ("clusterroles", None, {"apiVersion": group, "kind": "ClusterRole", "metadata": {"name": LB_SPEAKER_ROLE},
                                "rules": [{"apiGroups": [""], "resources": ["services", "nodes"], "verbs": read},
                                          {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                                           "verbs": read},
                                          {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                                           "verbs": ["create", "patch", "update"]}]}),
        ("clusterrolebindings", None, {
            "apiVersion": group, "kind": "ClusterRoleBinding", "metadata": {"name": LB_SPEAKER_ROLE},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": LB_SPEAKER_ROLE},
            "subjects": subject}),
        ("roles", SPEAKER_LEASE_NAMESPACE, {
            "apiVersion": group, "kind": "Role",
            "metadata": {"name": LB_SPEAKER_ROLE, "namespace": SPEAKER_LEASE_NAMESPACE},
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                       "verbs": [*read, "create", "update", "patch", "delete"]}]}),
        ("rolebindings", SPEAKER_LEASE_NAMESPACE, {
            "apiVersion": group, "kind": "RoleBinding",
            "metadata": {"name": LB_SPEAKER_ROLE, "namespace": SPEAKER_LEASE_NAMESPACE},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": LB_SPEAKER_ROLE},
            "subjects": subject}),
    ]


def overlay_rbac() -> list[tuple[str, str | None, dict[str, Any]]]:
    """The overlay's ClusterRole and binding: flannel's (nodes read, patched) less the pods it never reads.
    It patches the Node itself, not nodes/status: svcnet's status writes keep metadata as it was."""
    group = f"{RBAC_GROUP}/v1"
    return [
        ("clusterroles", None, {"apiVersion": group, "kind": "ClusterRole", "metadata": {"name": OVERLAY_ROLE},
                                "rules": [{"apiGroups": [""], "resources": ["nodes"],
                                           "verbs": ["get", "list", "watch", "patch"]},
                                          {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}]}),
        ("clusterrolebindings", None, {
            "apiVersion": group, "kind": "ClusterRoleBinding", "metadata": {"name": OVERLAY_ROLE},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": OVERLAY_ROLE},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": OVERLAY_USER},
                         {"kind": "ServiceAccount", "name": OVERLAY_SERVICE_ACCOUNT,
                          "namespace": OVERLAY_NAMESPACE}]}),
    ]


def overlay_service_account() -> list[tuple[str, str | None, dict[str, Any]]]:
    """kube-flannel/flannel, the ServiceAccount the overlay's binding names (before the binding)."""
    return [
        ("namespaces", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OVERLAY_NAMESPACE}}),
        ("serviceaccounts", OVERLAY_NAMESPACE, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                "metadata": {"name": OVERLAY_SERVICE_ACCOUNT,
                                                             "namespace": OVERLAY_NAMESPACE}}),
    ]


async def ensure_objects(api: Any, objects: list[tuple[str, str | None, dict[str, Any]]]) -> None:
    """Create each object that is missing (an existing one, perhaps edited by the admin, is kept)."""
    for plural, namespace, body in objects:
        resource = lookup(str(body["apiVersion"]).rpartition("/")[0], "v1", plural)
        assert resource is not None
        try:
            await api.create(resource, namespace, body)
        except ApiError as exc:
            if exc.code != 409:
                raise


def controller_manager_bindings(controller_names: list[str]) -> list[dict[str, Any]]:
    """ClusterRoleBindings of system:kube-controller-manager to the roles of the controllers it runs."""
    roles = sorted({CONTROLLER_ROLE_OF[n] for n in controller_names if n in CONTROLLER_ROLE_OF})
    return [{
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": BINDING_PREFIX + role},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": CONTROLLER_ROLE_PREFIX + role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": KUBE_CONTROLLER_MANAGER}],
    } for role in roles if role in CONTROLLER_ROLES]


async def ensure_bindings(api: Any, bindings: list[dict[str, Any]]) -> None:
    """Create each binding that is missing (an existing one, perhaps edited by the admin, is kept)."""
    resource = lookup(RBAC_GROUP, "v1", "clusterrolebindings")
    assert resource is not None
    for binding in bindings:
        try:
            await api.create(resource, None, binding)
        except ApiError as exc:
            if exc.code != 409:
                raise


class ComponentCredentials:
    """`svcnet up`'s step after the API server starts (kubeadm's kubeconfig phase and its RBAC
    for the components): every component's kubeconfig, and the controller manager's bindings."""

    def __init__(self, data_dir: Path, server_url: str, nodes: list[str], controller_names: list[str],
                 admin_api: Callable[[], Any], lb_speaker: bool = False, overlay: bool = False) -> None:
        self.lb_speaker = lb_speaker
        self.overlay = overlay
        self.data_dir = data_dir
        self.server_url = server_url
        self.nodes = nodes
        self.controller_names = controller_names
        self.admin_api = admin_api

    async def start(self) -> None:
        ensure_component_kubeconfigs(self.data_dir, self.server_url, self.nodes, self.lb_speaker, self.overlay)
        if self.controller_names or self.lb_speaker or self.overlay:
            async with self.admin_api() as api:
                await ensure_bindings(api, controller_manager_bindings(self.controller_names))
                if self.lb_speaker:
                    await ensure_objects(api, lb_speaker_rbac())
                if self.overlay:
                    await ensure_objects(api, overlay_service_account() + overlay_rbac())

    async def stop(self) -> None:
        return None


class WithKubeconfig:
    """A component built from its kubeconfig when it starts (the file is written by an earlier stage)."""

    def __init__(self, path: Path, make: Callable[[Any], Any]) -> None:
        self.path = path
        self.make = make
        self.component: Any = None

    async def start(self) -> None:
        self.component = self.make(load_kubeconfig(self.path))
        await self.component.start()

    async def stop(self) -> None:
        if self.component is not None:
            await self.component.stop()


def component_server_url(cfg: Any) -> str:
    """Where the components on this host reach the API: its URL, with an unspecified bind address
    (0.0.0.0, ::) replaced by loopback, which the serving certificate names."""
    if cfg.bind_address in ("0.0.0.0", "::", ""):
        scheme = "http" if cfg.insecure else "https"
        host = "[::1]" if cfg.bind_address == "::" else "127.0.0.1"
        return f"{scheme}://{host}:{cfg.port}"
    return str(cfg.url)
