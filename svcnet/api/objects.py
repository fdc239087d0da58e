"""Read-only accessors over Kubernetes objects held as JSON dicts.

Every component reads the same few places of an object (metadata, spec, status, a
condition, an owner reference) and must not fail when a field is absent, as a Go client
reading a zero value would not. These functions do that in one place; they never modify
the object. A missing section reads as an empty one: `spec_of(obj).get("x")` is safe.
Writers that need the object's own metadata dict use `meta.metadata(obj)`.

Counterparts upstream: apimachinery's meta.Accessor, metav1.GetControllerOf,
podutil.IsPodReady, discovery's LabelServiceName.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]
ObjLike = Mapping[str, Any] | None

# The label that ties an EndpointSlice to its Service (discovery.k8s.io/service-name).
LABEL_SERVICE_NAME = "kubernetes.io/service-name"


def child(parent: Obj, key: str) -> Obj:
    """parent[key] as a dict to write into, created (or replacing a non-dict) when missing."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def metadata_of(obj: ObjLike) -> Obj:
    return (obj or {}).get("metadata") or {}


def spec_of(obj: ObjLike) -> Obj:
    return (obj or {}).get("spec") or {}


def status_of(obj: ObjLike) -> Obj:
    return (obj or {}).get("status") or {}


def name_of(obj: ObjLike) -> str:
    return str(metadata_of(obj).get("name") or "")


def namespace_of(obj: ObjLike) -> str:
    return str(metadata_of(obj).get("namespace") or "")


def uid_of(obj: ObjLike) -> str:
    return str(metadata_of(obj).get("uid") or "")


def resource_version(obj: ObjLike) -> str:
    return str(metadata_of(obj).get("resourceVersion") or "")


def labels_of(obj: ObjLike) -> dict[str, str]:
    return metadata_of(obj).get("labels") or {}


def annotations_of(obj: ObjLike) -> dict[str, str]:
    return metadata_of(obj).get("annotations") or {}


def owner_references_of(obj: ObjLike) -> list[Obj]:
    return metadata_of(obj).get("ownerReferences") or []


def finalizers_of(obj: ObjLike) -> list[str]:
    return metadata_of(obj).get("finalizers") or []


def controller_ref(obj: ObjLike) -> Obj | None:
    """The ownerReference with controller: true, if any (metav1.GetControllerOf)."""
    for ref in owner_references_of(obj):
        if ref.get("controller"):
            return ref
    return None


def new_controller_ref(owner: ObjLike, api_version: str, kind: str) -> Obj:
    """The ownerReference a controller puts on what it creates (metav1.NewControllerRef)."""
    md = metadata_of(owner)
    return {"apiVersion": api_version, "kind": kind, "name": md.get("name"), "uid": md.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def is_being_deleted(obj: ObjLike) -> bool:
    """metadata.deletionTimestamp is set: the object waits for its finalizers."""
    return bool(metadata_of(obj).get("deletionTimestamp"))


def object_key(obj: ObjLike) -> str:
    """"namespace/name", or "name" for a cluster-scoped object (cache.MetaNamespaceKeyFunc)."""
    namespace, name = namespace_of(obj), name_of(obj)
    return f"{namespace}/{name}" if namespace else name


# --- pods

def condition_of(obj: ObjLike, condition_type: str) -> Obj | None:
    """The first status condition of this type (pods and nodes alike), if any."""
    for condition in status_of(obj).get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition
    return None


def is_condition_true(obj: ObjLike, condition_type: str) -> bool:
    """The status condition of this type is there and True (a node's Ready, say)."""
    condition = condition_of(obj, condition_type)
    return condition is not None and condition.get("status") == "True"


def is_pod_ready(pod: ObjLike) -> bool:
    """The Ready condition is True (podutil.IsPodReady)."""
    return is_condition_true(pod, "Ready")


def is_pod_terminal(pod: ObjLike) -> bool:
    """The pod has finished: phase Succeeded or Failed; it will run nothing again."""
    return status_of(pod).get("phase") in ("Succeeded", "Failed")


# --- services and endpoint slices

def is_headless_spec(spec: Mapping[str, Any]) -> bool:
    """clusterIP None; clusterIPs[0] says the same once the API server has defaulted both."""
    return spec.get("clusterIP") == "None" or (spec.get("clusterIPs") or [""])[0] == "None"


def is_headless(service: ObjLike) -> bool:
    return is_headless_spec(spec_of(service))


def slice_service_key(endpoint_slice: ObjLike) -> str | None:
    """"namespace/service" of the Service a slice belongs to (its service-name label), or None."""
    service = labels_of(endpoint_slice).get(LABEL_SERVICE_NAME)
    return f"{namespace_of(endpoint_slice) or 'default'}/{service}" if service else None
