"""What each node may reach: the Node authorizer's graph of pods bound to nodes and the objects
they reference (plugin/pkg/auth/authorizer/node/graph.go, as its populator feeds it).

Vertices are (kind, namespace, name); an edge points from an object towards the node that
needs it: secret → pod, configmap → pod, pvc → pod, serviceaccount → pod, resourceclaim → pod,
pod → node, and for persistent volumes pv → pvc and secret → pv. A node may read an object
when a path leads from it to the node. Only pods bound to a node (spec.nodeName set) are in
the graph; a pod's references are read again whenever it is set, and removed with it.

Pure: objects in, answers out. The API server keeps one instance current from its store's
watch (svcnet.apiserver.nodeauthz) and asks it under its own lock.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Obj = Mapping[str, Any]
Vertex = tuple[str, str, str]  # (kind, namespace, name); kind is the resource's plural

SECRETS = "secrets"
CONFIGMAPS = "configmaps"
PVCS = "persistentvolumeclaims"
PVS = "persistentvolumes"
SERVICE_ACCOUNTS = "serviceaccounts"
RESOURCE_CLAIMS = "resourceclaims"
PODS = "pods"
NODES = "nodes"

# Volume sources that name a Secret through a secretRef (podutil.VisitPodSecretNames lists them).
_SECRET_REF_VOLUMES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(spec: Obj) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _list(spec.get(key)):
            if isinstance(container, Mapping):
                yield container


def pod_secret_names(pod: Obj) -> set[str]:
    """Every Secret a pod names: image pull secrets, env and envFrom, secret and projected
    volumes, and the secretRefs of the volume plugins that take one."""
    spec = _mapping(pod.get("spec"))
    names = {_mapping(ref).get("name") for ref in _list(spec.get("imagePullSecrets"))}
    for container in _containers(spec):
        names |= {_mapping(_mapping(e).get("secretRef")).get("name") for e in _list(container.get("envFrom"))}
        names |= {_mapping(_mapping(_mapping(e).get("valueFrom")).get("secretKeyRef")).get("name")
                  for e in _list(container.get("env"))}
    for volume in map(_mapping, _list(spec.get("volumes"))):
        names.add(_mapping(volume.get("secret")).get("secretName"))
        names |= {_mapping(_mapping(src).get("secret")).get("name")
                  for src in _list(_mapping(volume.get("projected")).get("sources"))}
        names.add(_mapping(volume.get("azureFile")).get("secretName"))
        names |= {_mapping(_mapping(volume.get(kind)).get("secretRef")).get("name") for kind in _SECRET_REF_VOLUMES}
        names.add(_mapping(_mapping(volume.get("csi")).get("nodePublishSecretRef")).get("name"))
    return {n for n in names if isinstance(n, str) and n}


def pod_configmap_names(pod: Obj) -> set[str]:
    """Every ConfigMap a pod names: env and envFrom, configMap and projected volumes."""
    spec = _mapping(pod.get("spec"))
    names: set[Any] = set()
    for container in _containers(spec):
        names |= {_mapping(_mapping(e).get("configMapRef")).get("name") for e in _list(container.get("envFrom"))}
        names |= {_mapping(_mapping(_mapping(e).get("valueFrom")).get("configMapKeyRef")).get("name")
                  for e in _list(container.get("env"))}
    for volume in map(_mapping, _list(spec.get("volumes"))):
        names.add(_mapping(volume.get("configMap")).get("name"))
        names |= {_mapping(_mapping(src).get("configMap")).get("name")
                  for src in _list(_mapping(volume.get("projected")).get("sources"))}
    return {n for n in names if isinstance(n, str) and n}


def pod_claim_names(pod: Obj) -> set[str]:
    """The PersistentVolumeClaims a pod mounts, a generic ephemeral volume's claim being
    <pod>-<volume> (ephemeral.VolumeClaimName)."""
    spec = _mapping(pod.get("spec"))
    pod_name = _mapping(pod.get("metadata")).get("name") or ""
    names: set[Any] = set()
    for volume in map(_mapping, _list(spec.get("volumes"))):
        names.add(_mapping(volume.get("persistentVolumeClaim")).get("claimName"))
        if "ephemeral" in volume and volume.get("name"):
            names.add(f"{pod_name}-{volume['name']}")
    return {n for n in names if isinstance(n, str) and n}


def pod_references(pod: Obj) -> set[Vertex]:
    """The vertices a bound pod links to its node, in the pod's namespace."""
    namespace = _mapping(pod.get("metadata")).get("namespace") or ""
    spec = _mapping(pod.get("spec"))
    refs = {(SECRETS, namespace, n) for n in pod_secret_names(pod)}
    refs |= {(CONFIGMAPS, namespace, n) for n in pod_configmap_names(pod)}
    refs |= {(PVCS, namespace, n) for n in pod_claim_names(pod)}
    account = spec.get("serviceAccountName")
    if isinstance(account, str) and account:
        refs.add((SERVICE_ACCOUNTS, namespace, account))
    for status in _list(_mapping(pod.get("status")).get("resourceClaimStatuses")):
        claim = _mapping(status).get("resourceClaimName")
        if isinstance(claim, str) and claim:
            refs.add((RESOURCE_CLAIMS, namespace, claim))
    return refs


def pv_references(pv: Obj) -> set[Vertex]:
    """What a bound PersistentVolume links: its claim (pv → pvc) is the edge; the secrets its
    source names point at the pv. Returned as the claim and the secrets, for NodeGraph."""
    spec = _mapping(pv.get("spec"))
    ref = _mapping(spec.get("claimRef"))
    refs: set[Vertex] = set()
    if ref.get("name"):
        refs.add((PVCS, str(ref.get("namespace") or ""), str(ref["name"])))
    for kind in (*_SECRET_REF_VOLUMES, "csi", "azureFile"):
        source = _mapping(spec.get(kind))
        secret = _mapping(source.get("secretRef")) or _mapping(source.get("nodePublishSecretRef"))
        if secret.get("name"):
            refs.add((SECRETS, str(secret.get("namespace") or ""), str(secret["name"])))
    return refs


class NodeGraph:
    """The edges, kept per source object so replacing or removing one object touches only its own."""

    def __init__(self) -> None:
        self._out: dict[Vertex, set[Vertex]] = {}  # vertex -> the vertices it points to
        self._owned: dict[Vertex, set[tuple[Vertex, Vertex]]] = {}  # object -> the edges it put in

    def _replace(self, owner: Vertex, edges: set[tuple[Vertex, Vertex]]) -> None:
        for src, dst in self._owned.pop(owner, set()):
            targets = self._out.get(src)
            if targets is not None:
                targets.discard(dst)
                if not targets:
                    del self._out[src]
        if edges:
            self._owned[owner] = edges
            for src, dst in edges:
                self._out.setdefault(src, set()).add(dst)

    def set_pod(self, pod: Obj) -> None:
        """Add or refresh a pod: an unbound pod has no edges (the scheduler has not placed it)."""
        md = _mapping(pod.get("metadata"))
        vertex = (PODS, str(md.get("namespace") or ""), str(md.get("name") or ""))
        node = _mapping(pod.get("spec")).get("nodeName")
        if not isinstance(node, str) or not node:
            self._replace(vertex, set())
            return
        edges = {(vertex, (NODES, "", node))}
        edges |= {(ref, vertex) for ref in pod_references(pod)}
        self._replace(vertex, edges)

    def delete_pod(self, pod: Obj) -> None:
        md = _mapping(pod.get("metadata"))
        self._replace((PODS, str(md.get("namespace") or ""), str(md.get("name") or "")), set())

    def set_pv(self, pv: Obj) -> None:
        vertex = (PVS, "", str(_mapping(pv.get("metadata")).get("name") or ""))
        edges: set[tuple[Vertex, Vertex]] = set()
        for ref in pv_references(pv):
            edges.add((vertex, ref) if ref[0] == PVCS else (ref, vertex))
        if not any(ref[0] == PVCS for ref in pv_references(pv)):
            edges = set()  # an unbound volume leads to no node
        self._replace(vertex, edges)

    def delete_pv(self, pv: Obj) -> None:
        self._replace((PVS, "", str(_mapping(pv.get("metadata")).get("name") or "")), set())

    def has_path(self, node: str, start: Vertex) -> bool:
        """Whether start leads to node; edges into other nodes are never followed."""
        goal = (NODES, "", node)
        seen = {start}
        stack = [start]
        while stack:
            for nxt in self._out.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt[0] != NODES and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def known(self, vertex: Vertex) -> bool:
        return vertex in self._out
