"""Printers of core/v1 PersistentVolumes, PersistentVolumeClaims and ReplicationControllers,
as kube-apiserver's printPersistentVolume, printPersistentVolumeClaim and printReplicationController."""
from __future__ import annotations

import datetime as dt
from typing import Any

from .apps import replicas_cells
from .columns import AGE, CONTAINERS, IMAGES, NAME, Column, Printer, wide
from .format import (
    Cell,
    Obj,
    age_cell,
    format_labels,
    get_path,
    list_at,
    name_cell,
)

# GetAccessModesAsString's order and abbreviations.
_ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP"))
UNSET = "<unset>"


def access_modes_string(modes: Any) -> str:
    wanted = set(modes) if isinstance(modes, list) else set()
    return ",".join(short for mode, short in _ACCESS_MODES if mode in wanted)


def _storage(resources: Any) -> str:
    value = get_path(resources, "storage", default="")
    return "" if value is None else str(value)


def _phase(obj: Obj) -> str:
    if get_path(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return str(get_path(obj, "status", "phase", default="") or "")


def _volume_attributes_class(obj: Obj) -> str:
    return str(get_path(obj, "spec", "volumeAttributesClassName", default="") or UNSET)


def _persistent_volume_cells(pv: Obj, now: dt.datetime) -> list[Cell]:
    spec = get_path(pv, "spec", default={})
    ref = spec.get("claimRef")
    claim = f"{get_path(ref, 'namespace', default='')}/{get_path(ref, 'name', default='')}" if ref else ""
    return [
        name_cell(pv),
        _storage(spec.get("capacity")),
        access_modes_string(spec.get("accessModes")),
        str(spec.get("persistentVolumeReclaimPolicy") or ""),
        _phase(pv),
        claim,
        str(spec.get("storageClassName") or ""),
        _volume_attributes_class(pv),
        str(get_path(pv, "status", "reason", default="") or ""),
        age_cell(pv, now),
        str(spec.get("volumeMode") or "<unset>"),
    ]


def _persistent_volume_claim_cells(pvc: Obj, now: dt.datetime) -> list[Cell]:
    spec = get_path(pvc, "spec", default={})
    volume = str(spec.get("volumeName") or "")
    # Capacity and modes are the bound volume's, shown once there is one.
    capacity = _storage(get_path(pvc, "status", "capacity")) if volume else ""
    modes = access_modes_string(list_at(pvc, "status", "accessModes")) if volume else ""
    return [
        name_cell(pvc),
        _phase(pvc),
        volume,
        capacity,
        modes,
        str(spec.get("storageClassName") or ""),
        _volume_attributes_class(pvc),
        age_cell(pvc, now),
        str(spec.get("volumeMode") or "<unset>"),
    ]


def _replication_controller_cells(rc: Obj, now: dt.datetime) -> list[Cell]:
    return replicas_cells(rc, now, format_labels(get_path(rc, "spec", "selector")))


VOLUME_MODE = wide("VolumeMode", "The volume's mode: Filesystem or Block.")

STORAGE_PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "PersistentVolume"): Printer((
        NAME,
        Column("Capacity", "string", "The volume's size (spec.capacity[storage])."),
        Column("Access Modes", "string", "How the volume can be mounted: RWO, ROX, RWX, RWOP."),
        Column("Reclaim Policy", "string", "What happens to the volume when its claim is released."),
        Column("Status", "string", "The volume's phase: Pending, Available, Bound, Released or Failed."),
        Column("Claim", "string", "The claim bound to the volume, as namespace/name."),
        Column("StorageClass", "string", "The volume's storage class."),
        Column("VolumeAttributesClass", "string", "The volume's attributes class."),
        Column("Reason", "string", "Why the volume is in its phase."),
        AGE,
        VOLUME_MODE,
    ), _persistent_volume_cells),
    ("", "PersistentVolumeClaim"): Printer((
        NAME,
        Column("Status", "string", "The claim's phase: Pending, Bound or Lost."),
        Column("Volume", "string", "The volume bound to the claim."),
        Column("Capacity", "string", "The bound volume's size."),
        Column("Access Modes", "string", "How the bound volume can be mounted: RWO, ROX, RWX, RWOP."),
        Column("StorageClass", "string", "The claim's storage class."),
        Column("VolumeAttributesClass", "string", "The claim's attributes class."),
        AGE,
        VOLUME_MODE,
    ), _persistent_volume_claim_cells),
    ("", "ReplicationController"): Printer((
        NAME,
        Column("Desired", "integer", "The number of pods wanted."),
        Column("Current", "integer", "The number of pods that exist."),
        Column("Ready", "integer", "The number of ready pods."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "The label query over the replication controller's pods."),
    ), _replication_controller_cells),
}
