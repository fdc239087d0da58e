"""core/v1 PersistentVolume and PersistentVolumeClaim validation (pkg/apis/core/validation
ValidatePersistentVolume*, ValidatePersistentVolumeClaim*), for the volume sources svcnet
describes: hostPath, local, nfs and csi."""
from __future__ import annotations

from typing import Any

from svcnet.api.errors import Cause
from svcnet.core.scheduling import parse_quantity

from .fields import (
    GoLiteral,
    Obj,
    as_dict,
    as_list,
    as_str,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
    semantic_equal,
    validate_dns1123_subdomain,
)
from .meta import validate_label_selector

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
VOLUME_MODES = ("Block", "Filesystem")
PV_SOURCES = ("hostPath", "nfs", "csi", "local")  # upstream's order of checks


def _access_modes(modes: Any, path: str, detail: str) -> list[Cause]:
    modes = as_list(modes)
    if not modes:
        return [required(path, detail)]
    errs = [not_supported(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _positive_quantity(value: Any, path: str) -> list[Cause]:
    if parse_quantity(value) <= 0:
        return [invalid(path, as_str(value), "must be greater than zero")]
    return []


def _class_and_mode(spec: Obj) -> list[Cause]:
    errs: list[Cause] = []
    if spec.get("storageClassName"):
        errs.extend(validate_dns1123_subdomain(as_str(spec["storageClassName"]), "spec.storageClassName"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(not_supported("spec.volumeMode", mode, VOLUME_MODES))
    return errs


def _source_errors(name: str, source: Obj) -> list[Cause]:
    path = f"spec.{name}"
    errs: list[Cause] = []
    if name in ("hostPath", "local"):
        volume_path = as_str(source.get("path"))
        if not volume_path:
            errs.append(required(f"{path}.path"))
        elif ".." in volume_path.split("/"):
            errs.append(invalid(f"{path}.path", volume_path, "must not contain '..'"))
    elif name == "nfs":
        if not source.get("server"):
            errs.append(required(f"{path}.server"))
        nfs_path = as_str(source.get("path"))
        if not nfs_path:
            errs.append(required(f"{path}.path"))
        elif not nfs_path.startswith("/"):
            errs.append(invalid(f"{path}.path", nfs_path, "must be an absolute path"))
    elif name == "csi":
        for key in ("driver", "volumeHandle"):
            if not source.get(key):
                errs.append(required(f"{path}.{key}"))
    return errs


def _pv_source(spec: Obj) -> list[Cause]:
    present = [name for name in PV_SOURCES if spec.get(name) is not None]
    if not present:
        return [required("spec", "must specify a volume type")]
    errs: list[Cause] = []
    for extra in present[1:]:
        errs.append(forbidden(f"spec.{extra}", "may not specify more than 1 volume type"))
    errs.extend(_source_errors(present[0], as_dict(spec[present[0]])))
    if present[0] == "local" and not as_dict(spec.get("nodeAffinity")).get("required"):
        errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    return errs


def validate_persistent_volume(pv: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(pv.get("spec"))
    errs = _access_modes(spec.get("accessModes"), "spec.accessModes", "")
    capacity = spec.get("capacity")
    if not capacity:
        errs.append(required("spec.capacity"))
    capacity = as_dict(capacity)
    if "storage" not in capacity or len(capacity) > 1:
        errs.append(not_supported("spec.capacity", _resource_list(capacity), ("storage",)))
    for resource, quantity in sorted(capacity.items()):
        errs.extend(_positive_quantity(quantity, f"spec.capacity[{resource}]"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in RECLAIM_POLICIES:
        errs.append(not_supported("spec.persistentVolumeReclaimPolicy", policy or "", RECLAIM_POLICIES))
    errs.extend(_class_and_mode(spec))
    errs.extend(_pv_source(spec))
    if old is not None:
        errs.extend(_pv_update(spec, as_dict(old.get("spec"))))
    return errs


def _resource_list(resources: Obj) -> Any:
    items = ", ".join(f'"{k}":{_quantity_literal(v)}' for k, v in sorted(resources.items()))
    return GoLiteral(f"core.ResourceList{{{items}}}")


def _quantity_literal(value: Any) -> str:
    return f'resource.MustParse("{as_str(value)}")'


def _pv_update(spec: Obj, old_spec: Obj) -> list[Cause]:
    """ValidatePersistentVolumeUpdate: the volume source and volumeMode are fixed once created."""
    errs: list[Cause] = []
    if any(not semantic_equal(spec.get(s), old_spec.get(s)) for s in PV_SOURCES):
        errs.append(forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is forbidden once set"))
    if spec.get("volumeMode") != old_spec.get("volumeMode"):
        errs.append(immutable("spec.volumeMode", spec.get("volumeMode")))
    return errs


def validate_persistent_volume_claim(pvc: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(pvc.get("spec"))
    errs = _access_modes(spec.get("accessModes"), "spec.accessModes", "at least 1 access mode is required")
    if spec.get("selector") is not None:
        errs.extend(validate_label_selector(spec["selector"], "spec.selector"))
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        errs.append(required("spec.resources[storage]"))
    else:
        errs.extend(_positive_quantity(requests["storage"], "spec.resources[storage]"))
    errs.extend(_class_and_mode(spec))
    if old is not None:
        errs.extend(_pvc_update(spec, as_dict(old.get("spec"))))
    return errs


def _pvc_update(spec: Obj, old_spec: Obj) -> list[Cause]:
    """A claim's spec is immutable, but for volumeName set once (the binder's write)."""
    old_view = dict(old_spec)
    if not old_spec.get("volumeName"):
        old_view["volumeName"] = spec.get("volumeName")
    if not semantic_equal(spec, old_view):
        return [forbidden("spec", "spec is immutable after creation except resources.requests and "
                                  "volumeAttributesClassName for bound claims")]
    return []
