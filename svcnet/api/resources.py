"""The resource table: every kind svcnet serves, described once.

Discovery, OpenAPI, routing, storage keys and tables all read this table, so
adding a kind is one entry here plus its validation and printer columns.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subresource:
    """A subresource svcnet serves, listed in discovery and OpenAPI as kube-apiserver lists it.

    Only subresources that are really served belong here: discovery is what
    clients (and RBAC tooling) trust. A connect subresource (pods/exec) is a
    stream rather than an object: kind names its options type (PodExecOptions),
    its verbs are those of the HTTP methods it accepts (GET -> get, POST ->
    create) and OpenAPI describes it with query parameters, not a body.
    """

    name: str  # "status", "scale", "log", "exec"
    kind: str  # kind returned by the subresource (connect: its options kind)
    group: str = ""
    version: str = "v1"
    verbs: tuple[str, ...] = ("get", "patch", "update")
    connect: bool = False


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    def storage_prefix(self, namespace: str | None = None) -> str:
        """Key prefix in the store; ends with '/' so prefixes never collide."""
        base = f"/registry/{self.group or 'core'}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def storage_key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.group or 'core'}/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.group or 'core'}/{self.plural}/{name}"


_SCALE = Subresource("scale", kind="Scale", group="autoscaling", version="v1")
_LOG = Subresource("log", kind="Pod", verbs=("get",))
_BINDING = Subresource("binding", kind="Binding", verbs=("create",))
_EXEC = Subresource("exec", kind="PodExecOptions", verbs=("create", "get"), connect=True)
_ATTACH = Subresource("attach", kind="PodAttachOptions", verbs=("create", "get"), connect=True)
_PORT_FORWARD = Subresource("portforward", kind="PodPortForwardOptions", verbs=("create", "get"), connect=True)
_NODE_PROXY = Subresource("proxy", kind="NodeProxyOptions", verbs=("create", "delete", "get", "patch", "update"),
                          connect=True)
_FINALIZE = Subresource("finalize", kind="Namespace", verbs=("update",))
_TOKEN = Subresource("token", kind="TokenRequest", group="authentication.k8s.io", verbs=("create",))


def _status(kind: str, group: str = "") -> Subresource:
    return Subresource("status", kind=kind, group=group)


RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_RESOURCES: tuple[Resource, ...] = (
    Resource(RBAC_GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", False),
    Resource(RBAC_GROUP, "v1", "ClusterRole", "clusterroles", "clusterrole", False),
    Resource(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", "rolebinding", True),
    Resource(RBAC_GROUP, "v1", "Role", "roles", "role", True),
)
BATCH_RESOURCES: tuple[Resource, ...] = (
    Resource("batch", "v1", "CronJob", "cronjobs", "cronjob", True, ("cj",), ("all",),
             subresources=(_status("CronJob", "batch"),)),
    Resource("batch", "v1", "Job", "jobs", "job", True, (), ("all",),
             subresources=(_status("Job", "batch"),)),
)
CERTIFICATES_GROUP = "certificates.k8s.io"
CERTIFICATES_RESOURCES: tuple[Resource, ...] = (
    Resource(CERTIFICATES_GROUP, "v1", "CertificateSigningRequest", "certificatesigningrequests",
             "certificatesigningrequest", False, ("csr",),
             subresources=(Subresource("approval", kind="CertificateSigningRequest", group=CERTIFICATES_GROUP),
                           _status("CertificateSigningRequest", CERTIFICATES_GROUP))),
)
# Create-only kinds answered in their status and never stored (the API server's reviews).
REVIEW_RESOURCES: tuple[Resource, ...] = (
    Resource("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview",
             False, verbs=("create",)),
    Resource("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", False,
             verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
             "localsubjectaccessreview", True, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
             "selfsubjectaccessreview", False, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
             "selfsubjectrulesreview", False, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews",
             "subjectaccessreview", False, verbs=("create",)),
)

# The rest of kubectl's default prune allowlist: persistent volumes and claims, replication
# controllers, daemon sets, ingresses (and their classes).
WORKLOAD_AND_STORAGE_RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", False, ("pv",),
             subresources=(_status("PersistentVolume"),)),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", True,
             ("pvc",), subresources=(_status("PersistentVolumeClaim"),)),
    Resource("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", True,
             ("rc",), ("all",), subresources=(_SCALE, _status("ReplicationController"))),
    Resource("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",), ("all",),
             subresources=(_status("DaemonSet", "apps"),)),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", True, ("ing",),
             subresources=(_status("Ingress", "networking.k8s.io"),)),
    Resource("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", False),
)


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",),
             subresources=(_FINALIZE, _status("Namespace")),
             verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    Resource("", "v1", "Node", "nodes", "node", False, ("no",), subresources=(_NODE_PROXY, _status("Node"))),
    Resource("", "v1", "Pod", "pods", "pod", True, ("po",), ("all",),
             subresources=(_ATTACH, _BINDING, _EXEC, _LOG, _PORT_FORWARD, _status("Pod"))),
    Resource("", "v1", "Service", "services", "service", True, ("svc",), ("all",),
             subresources=(_status("Service"),),
             verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    Resource("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    Resource("", "v1", "Event", "events", "event", True, ("ev",)),
    Resource("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    Resource("", "v1", "Secret", "secrets", "secret", True),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",),
             subresources=(_TOKEN,)),
    Resource("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), ("all",),
             subresources=(_status("Deployment", "apps"), _SCALE)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("all",),
             subresources=(_status("ReplicaSet", "apps"), _SCALE)),
    Resource("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",), ("all",),
             subresources=(_status("StatefulSet", "apps"), _SCALE)),
    *BATCH_RESOURCES,
    Resource("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", False,
             subresources=(_status("ServiceCIDR"),)),
    *WORKLOAD_AND_STORAGE_RESOURCES,
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True),
    Resource("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    *RBAC_RESOURCES,
    *CERTIFICATES_RESOURCES,
    *REVIEW_RESOURCES,
)

# Groups in the order discovery lists them (core first, as kube-apiserver does; then by
# kube-apiserver's group priorities: apps, authentication, authorization, batch, networking, rbac).
GROUP_ORDER: tuple[str, ...] = ("", "apps", "authentication.k8s.io", "authorization.k8s.io", "batch",
                                "certificates.k8s.io", "networking.k8s.io",
                                "rbac.authorization.k8s.io", "discovery.k8s.io", "coordination.k8s.io")


def by_group_version(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def lookup(group: str, version: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def served(group: str, version: str, plural: str) -> Resource:
    """lookup for a resource svcnet always serves (a KeyError names a typo in svcnet itself)."""
    res = lookup(group, version, plural)
    if res is None:
        raise KeyError(f"{group or 'core'}/{version} {plural} is not served")
    return res


def lookup_kind(api_version: str, kind: str) -> Resource | None:
    for r in RESOURCES:
        if r.api_version == api_version and r.kind == kind:
            return r
    return None


def group_versions() -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for g in GROUP_ORDER:
        for r in RESOURCES:
            if r.group == g and (g, r.version) not in seen:
                seen.append((g, r.version))
    return seen
