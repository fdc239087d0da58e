"""NodeRestriction: the admission check that keeps a node's writes to what concerns it
(plugin/pkg/admission/noderestriction). The Node authorizer lets every node create and update
Nodes, pods' status, mirror pods, evictions and leases; this check, which sees the objects,
limits each node to its own:

- pods: create only mirror pods bound to itself, owned by its Node, referencing no service
  account, secret, configmap or claim; delete only pods bound to itself; status only of pods
  bound to itself, without touching labels or resource claim statuses; evict only its own;
- nodes: only its own Node, never setting node-restriction.kubernetes.io/ labels or kubernetes.io
  and k8s.io labels other than kubelet's own, never changing taints or configSource;
- leases: only its own in kube-node-lease; csinodes: only its own;
- serviceaccounts/token: only bound to a pod on itself;
- persistentvolumeclaims: only status, and of it only capacity and conditions.

Pure: `admit` gets the request and a way to read current pods and nodes, and returns the
reason a write is refused (the text after `is forbidden: `), or None.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .identity import User, node_identity
from .nodeauthorizer import NODE_LEASE_NAMESPACE
from .nodegraph import pod_configmap_names, pod_secret_names

Obj = Mapping[str, Any]
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
# k8s.io/kubelet/pkg/apis: the labels a kubelet sets on its own Node, and the namespaces it owns.
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


class NotFound(Exception):
    """The object a check needs is gone: the request fails with 404, as upstream's lister error."""


@dataclass(frozen=True)
class Request:
    user: User
    operation: str  # CREATE, UPDATE or DELETE
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    obj: Obj | None = None
    old: Obj | None = None


Lookup = Callable[[str, str], Obj]  # (namespace, name) -> object; raises NotFound


def _md(obj: Obj | None) -> Mapping[str, Any]:
    md = (obj or {}).get("metadata")
    return md if isinstance(md, Mapping) else {}


def _spec(obj: Obj | None) -> Mapping[str, Any]:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def admit(req: Request, get_pod: Lookup, get_node: Callable[[str], Obj]) -> str | None:
    """Why the request is refused, or None when it may go on (always None for non-nodes)."""
    is_node, node = node_identity(req.user)
    if not is_node:
        return None
    if not node:
        return f'could not determine node from user "{req.user.name}"'
    resource = (req.group, req.resource)
    if resource == ("", "pods"):
        return _pod(node, req, get_pod, get_node)
    if resource == ("", "nodes"):
        return _node(node, req)
    if resource == ("", "persistentvolumeclaims"):
        return _pvc_status(node, req) if req.subresource == "status" else "may only update PVC status"
    if resource == ("", "serviceaccounts"):
        return _token(node, req, get_pod)
    if resource == ("coordination.k8s.io", "leases"):
        return _own_named(node, req, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
                          if req.namespace != NODE_LEASE_NAMESPACE else "", "node lease")
    if resource == ("storage.k8s.io", "csinodes"):
        return _own_named(node, req, "", "CSINode")
    return None


def _own_named(node: str, req: Request, namespace_error: str, what: str) -> str | None:
    if namespace_error:
        return namespace_error
    name = _md(req.obj).get("name") if req.operation == "CREATE" else req.name
    if name != node:
        return f"can only access {what} with the same name as the requesting node"
    return None


def _pod(node: str, req: Request, get_pod: Lookup, get_node: Callable[[str], Obj]) -> str | None:
    if req.subresource == "status":
        if req.operation != "UPDATE":
            return f'unexpected operation "{req.operation}"'
        if _spec(req.old).get("nodeName") != node:
            return f'node "{node}" can only update pod status for pods with spec.nodeName set to itself'
        if (_md(req.obj).get("labels") or {}) != (_md(req.old).get("labels") or {}):
            return f'node "{node}" cannot update labels through pod status'
        claims = ((req.obj or {}).get("status") or {}).get("resourceClaimStatuses")
        if claims != ((req.old or {}).get("status") or {}).get("resourceClaimStatuses"):
            return f'node "{node}" cannot update resource claim statues'
        return None
    if req.subresource == "eviction":
        if req.operation != "CREATE":
            return f"unexpected operation {req.operation}"
        name = req.name or _md(req.obj).get("name")
        if not name:
            return "could not determine pod from request data"
        if _spec(get_pod(req.namespace, str(name))).get("nodeName") != node:
            return f"node {node} can only evict pods with spec.nodeName set to itself"
        return None
    if req.subresource:
        return f"unexpected pod subresource \"{req.subresource}\", only 'status' and 'eviction' are allowed"
    if req.operation == "DELETE":
        if _spec(get_pod(req.namespace, req.name)).get("nodeName") != node:
            return f'node "{node}" can only delete pods with spec.nodeName set to itself'
        return None
    if req.operation == "CREATE":
        return _mirror_pod(node, req.obj or {}, get_node)
    return f'unexpected operation "{req.operation}", node "{node}" can only create and delete mirror pods'


def _mirror_pod(node: str, pod: Obj, get_node: Callable[[str], Obj]) -> str | None:
    if MIRROR_POD_ANNOTATION not in (_md(pod).get("annotations") or {}):
        return f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can only create mirror pods'
    if _spec(pod).get("nodeName") != node:
        return f'node "{node}" can only create pods with spec.nodeName set to itself'
    owners = _md(pod).get("ownerReferences") or []
    if len(owners) > 1:
        return f'node "{node}" can only create pods with a single owner reference set to itself'
    if not owners:
        return f'node "{node}" can only create pods with an owner reference set to itself'
    owner = owners[0] if isinstance(owners[0], Mapping) else {}
    if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
        return f'node "{node}" can only create pods with an owner reference set to itself'
    if owner.get("controller") is not True:
        return f'node "{node}" can only create pods with a controller owner reference set to itself'
    if owner.get("blockOwnerDeletion") is True:
        return f'node "{node}" must not set blockOwnerDeletion on an owner reference'
    uid = _md(get_node(node)).get("uid")
    if owner.get("uid") != uid:
        return f"node {node} UID mismatch: expected {owner.get('uid')} got {uid}"
    if _spec(pod).get("serviceAccountName"):
        return f'node "{node}" can not create pods that reference a service account'
    if pod_secret_names(pod):
        return f'node "{node}" can not create pods that reference secrets'
    if pod_configmap_names(pod):
        return f'node "{node}" can not create pods that reference configmaps'
    for volume in _spec(pod).get("volumes") or []:
        for source in ((volume.get("projected") or {}).get("sources") or []) if isinstance(volume, Mapping) else []:
            if isinstance(source, Mapping) and source.get("clusterTrustBundle") is not None:
                return f'node "{node}" can not create pods that reference clustertrustbundles'
    if any(isinstance(v, Mapping) and v.get("persistentVolumeClaim") for v in _spec(pod).get("volumes") or []):
        return f'node "{node}" can not create pods that reference persistentvolumeclaims'
    return None


def _pvc_status(node: str, req: Request) -> str | None:
    if req.operation != "UPDATE":
        return f'unexpected operation "{req.operation}"'
    old, new = copy.deepcopy(dict(req.old or {})), copy.deepcopy(dict(req.obj or {}))
    for obj in (old, new):
        md = dict(obj.get("metadata") or {})
        md.pop("resourceVersion", None)
        md.pop("managedFields", None)
        obj["metadata"] = md
        status = dict(obj.get("status") or {})
        for key in ("capacity", "conditions", "allocatedResourceStatuses", "allocatedResources"):
            status.pop(key, None)
        obj["status"] = status
    if old != new:
        return f'node "{node}" is not allowed to update fields other than status.capacity and status.conditions'
    return None


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _is_kubernetes_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return any(namespace == ns or namespace.endswith("." + ns) for ns in ("kubernetes.io", "k8s.io"))


def _is_kubelet_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return key in KUBELET_LABELS or any(namespace == ns or namespace.endswith("." + ns)
                                        for ns in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(new: Mapping[str, str], old: Mapping[str, str]) -> list[str]:
    """The changed label keys a node may not set: node-restriction ones, and kubernetes.io /
    k8s.io ones kubelet does not own (getForbiddenLabels), sorted."""
    modified = {k for k in set(new) | set(old) if new.get(k) != old.get(k) or (k in new) != (k in old)}
    bad = set()
    for key in modified:
        namespace = _label_namespace(key)
        if namespace == NODE_RESTRICTION_LABEL_NAMESPACE or namespace.endswith("." + NODE_RESTRICTION_LABEL_NAMESPACE):
            bad.add(key)
        if _is_kubernetes_label(key) and not _is_kubelet_label(key):
            bad.add(key)
    return sorted(bad)


def _node(node: str, req: Request) -> str | None:
    name = req.name or (_md(req.obj).get("name") if req.operation == "CREATE" else "")
    if name != node:
        return f'node "{node}" is not allowed to modify node "{name}"'
    new_labels = _md(req.obj).get("labels") or {}
    if req.operation == "CREATE":
        if _spec(req.obj).get("configSource") is not None:
            return f'node "{node}" is not allowed to create pods with a non-nil configSource'
        bad = forbidden_labels(new_labels, {})
        if bad:
            return f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}'
    if req.operation == "UPDATE":
        source = _spec(req.obj).get("configSource")
        if source is not None and source != _spec(req.old).get("configSource"):
            return f'node "{node}" is not allowed to update configSource to a new non-nil configSource'
        if (_spec(req.obj).get("taints") or []) != (_spec(req.old).get("taints") or []):
            return f'node "{node}" is not allowed to modify taints'
        bad = forbidden_labels(new_labels, _md(req.old).get("labels") or {})
        if bad:
            return f"is not allowed to modify labels: {', '.join(bad)}"
    return None


def _token(node: str, req: Request, get_pod: Lookup) -> str | None:
    if req.operation != "CREATE" or req.subresource != "token":
        return None
    ref = _spec(req.obj).get("boundObjectRef")
    ref = ref if isinstance(ref, Mapping) else {}
    if not ref or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        return "node requested token not bound to a pod"
    if not ref.get("uid"):
        return "node requested token with a pod binding without a uid"
    pod = get_pod(req.namespace, str(ref["name"]))
    if ref.get("uid") != _md(pod).get("uid"):
        return (f"the UID in the bound object reference ({ref.get('uid')}) does not match the UID in record. "
                f"The object might have been deleted and then recreated")
    if _spec(pod).get("nodeName") != node:
        return "node requested token bound to a pod scheduled on a different node"
    return None
