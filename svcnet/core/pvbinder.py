"""Static binding of PersistentVolumeClaims to PersistentVolumes, pure
(pkg/controller/volume/persistentvolume: pv_controller.go's syncClaim/syncVolume, index.go's
findMatchingVolume), and the protection controllers' "still in use?" answers.

- A Pending claim binds to the smallest Available volume whose storageClassName
  equals the claim's, whose access modes include all the claim's, whose volumeMode
  is the claim's, whose capacity is at least the request, and whose labels match
  the claim's selector; a volume pre-bound to the claim (spec.claimRef) is taken
  whatever its phase; a claim naming spec.volumeName waits for that volume.
- Binding writes the volume's claimRef (annotated bound-by-controller), the
  volume's phase Bound, the claim's volumeName and bind-completed annotation, and
  the claim's status (Bound, the volume's access modes and capacity).
- A volume whose claim is gone (or was recreated with another uid) is Released;
  with Retain it stays so; svcnet has no volume plugins, so a Delete or Recycle
  policy fails the volume as upstream does without a matching plugin.
- No dynamic provisioning: svcnet serves no StorageClasses, so a claim with a class
  that no volume matches stays Pending with upstream's ProvisioningFailed event.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import (
    annotations_of,
    labels_of,
    metadata_of,
    name_of,
    namespace_of,
    spec_of,
    status_of,
)
from svcnet.api.selectors import label_selector_from_object
from svcnet.core.scheduling import parse_quantity

Obj = dict[str, Any]

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PV_PROTECTION = "kubernetes.io/pv-protection"
PVC_PROTECTION = "kubernetes.io/pvc-protection"

AVAILABLE, BOUND, RELEASED, FAILED, PENDING, LOST = "Available", "Bound", "Released", "Failed", "Pending", "Lost"
NO_VOLUME_NO_CLASS = "no persistent volumes available for this claim and no storage class is set"


def _storage(resources: Any) -> Any:
    return (resources or {}).get("storage") if isinstance(resources, dict) else None


def requested_storage(claim: Obj) -> Any:
    return _storage((spec_of(claim).get("resources") or {}).get("requests"))


def storage_class(obj: Obj) -> str:
    return str(spec_of(obj).get("storageClassName") or "")


def _volume_mode(obj: Obj) -> str:
    return str(spec_of(obj).get("volumeMode") or "Filesystem")


def is_bound_to(volume: Obj, claim: Obj) -> bool:
    """isVolumeBoundToClaim: the claimRef names the claim (and its uid, once set)."""
    ref = spec_of(volume).get("claimRef")
    if not isinstance(ref, dict):
        return False
    if ref.get("name") != name_of(claim) or ref.get("namespace") != namespace_of(claim):
        return False
    return not ref.get("uid") or ref.get("uid") == metadata_of(claim).get("uid")


def _selector_matches(claim: Obj, volume: Obj) -> bool:
    selector = spec_of(claim).get("selector")
    if selector is None:
        return True
    try:
        return label_selector_from_object(selector).matches(labels_of(volume))
    except ApiError:
        return False


def find_best_volume(claim: Obj, volumes: Iterable[Obj]) -> Obj | None:
    """findMatchingVolume: a volume pre-bound to the claim, else the smallest fitting Available one."""
    wanted_modes = set(spec_of(claim).get("accessModes") or [])
    requested = parse_quantity(requested_storage(claim) or 0)
    best: Obj | None = None
    for volume in sorted(volumes, key=lambda v: (parse_quantity(_storage(spec_of(v).get("capacity")) or 0),
                                                 name_of(v))):
        spec = spec_of(volume)
        if metadata_of(volume).get("deletionTimestamp"):
            continue
        if parse_quantity(_storage(spec.get("capacity")) or 0) < requested:
            continue
        if not wanted_modes <= set(spec.get("accessModes") or []):
            continue
        if _volume_mode(volume) != _volume_mode(claim):
            continue
        if is_bound_to(volume, claim):
            return volume
        if status_of(volume).get("phase") != AVAILABLE or spec.get("claimRef") is not None:
            continue
        if not _selector_matches(claim, volume) or storage_class(volume) != storage_class(claim):
            continue
        if best is None:
            best = volume
    return best


def mismatch(volume: Obj, claim: Obj) -> str:
    """checkVolumeSatisfyClaim: why a volume named by the claim cannot serve it ("" when it can)."""
    requested = parse_quantity(requested_storage(claim) or 0)
    if parse_quantity(_storage(spec_of(volume).get("capacity")) or 0) < requested:
        return "requested PV is too small"
    if storage_class(volume) != storage_class(claim):
        return "storageClassName does not match"
    if _volume_mode(volume) != _volume_mode(claim):
        return "incompatible volumeMode"
    if not set(spec_of(claim).get("accessModes") or []) <= set(spec_of(volume).get("accessModes") or []):
        return "incompatible accessMode"
    return ""


# ------------------------------------------------------------------ decisions

@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class ClaimDecision:
    """What a claim sync does: bind to `volume`, set `phase` (with an event), or nothing."""

    volume: Obj | None = None
    phase: str = ""
    event: Event | None = None


def decide_claim(claim: Obj, volumes: Mapping[str, Obj]) -> ClaimDecision:
    """syncClaim for one claim against every volume (by name)."""
    volume_name = str(spec_of(claim).get("volumeName") or "")
    bound = annotations_of(claim).get(BIND_COMPLETED) is not None
    if bound:
        return _decide_bound_claim(claim, volumes.get(volume_name) if volume_name else None)
    if not volume_name:
        volume = find_best_volume(claim, volumes.values())
        if volume is not None:
            return ClaimDecision(volume=volume)
        klass = storage_class(claim)
        if klass:
            # Upstream would provision through the class; svcnet serves no StorageClasses.
            return ClaimDecision(phase=PENDING, event=Event(
                "Warning", "ProvisioningFailed", f'storageclass.storage.k8s.io "{klass}" not found'))
        return ClaimDecision(phase=PENDING, event=Event("Normal", "FailedBinding", NO_VOLUME_NO_CLASS))
    volume = volumes.get(volume_name)
    if volume is None:
        return ClaimDecision(phase=PENDING)  # the named volume may still come
    ref = spec_of(volume).get("claimRef")
    if ref is None:
        why = mismatch(volume, claim)
        if why:
            return ClaimDecision(phase=PENDING, event=Event(
                "Warning", "VolumeMismatch", f'Cannot bind to requested volume "{volume_name}": {why}'))
        return ClaimDecision(volume=volume)
    if is_bound_to(volume, claim):
        return ClaimDecision(volume=volume)
    return ClaimDecision(phase=PENDING, event=Event(
        "Warning", "FailedBinding", f'volume "{volume_name}" already bound to a different claim.'))


def _decide_bound_claim(claim: Obj, volume: Obj | None) -> ClaimDecision:
    if volume is None:
        return ClaimDecision(phase=LOST, event=Event(
            "Warning", "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!"))
    ref = spec_of(volume).get("claimRef")
    if ref is None or is_bound_to(volume, claim):
        return ClaimDecision(volume=volume)  # (re)complete the binding; a no-op when it is whole
    return ClaimDecision(phase=LOST, event=Event(
        "Warning", "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly"))


@dataclass(frozen=True)
class VolumeDecision:
    phase: str = ""
    message: str = ""
    unbind: bool = False  # clear the claimRef the controller set (the claim chose another volume)
    event: Event | None = None


def decide_volume(volume: Obj, claim: Obj | None) -> VolumeDecision:
    """syncVolume: the volume's phase from its claimRef and the claim it names (None: no such claim)."""
    ref = spec_of(volume).get("claimRef")
    if not isinstance(ref, dict):
        return VolumeDecision(phase=AVAILABLE)
    if not ref.get("uid"):
        return VolumeDecision(phase=AVAILABLE)  # pre-bound by a user, waiting for the claim
    if claim is not None and metadata_of(claim).get("uid") != ref.get("uid"):
        claim = None  # the claim was deleted and made again: not ours
    if claim is None:
        return _released(volume)
    claim_volume = spec_of(claim).get("volumeName")
    if not claim_volume:
        return VolumeDecision()  # the claim's sync completes the binding
    if claim_volume == name_of(volume):
        return VolumeDecision(phase=BOUND)
    if annotations_of(volume).get(BOUND_BY_CONTROLLER) is not None:
        return VolumeDecision(phase=AVAILABLE, unbind=True)
    return VolumeDecision()  # a user's pre-binding stays


def _released(volume: Obj) -> VolumeDecision:
    policy = spec_of(volume).get("persistentVolumeReclaimPolicy") or "Retain"
    phase = status_of(volume).get("phase")
    if policy == "Retain" or phase == FAILED:
        return VolumeDecision(phase=RELEASED if phase != FAILED else "")
    # No volume plugins in svcnet: upstream's answer when no plugin can delete or recycle it.
    if policy == "Delete":
        message = f'error getting deleter volume plugin for volume "{name_of(volume)}": no deletable volume plugin matched'
        return VolumeDecision(phase=FAILED, message=message, event=Event("Warning", "VolumeFailedDelete", message))
    message = 'No recycler plugin found for the volume!'
    return VolumeDecision(phase=FAILED, message=message, event=Event("Warning", "VolumeFailedRecycle", message))


# ------------------------------------------------------------------ the writes

def claim_ref(claim: Obj) -> Obj:
    md = metadata_of(claim)
    return {"kind": "PersistentVolumeClaim", "namespace": md.get("namespace"), "name": md.get("name"),
            "uid": md.get("uid"), "apiVersion": "v1", "resourceVersion": md.get("resourceVersion")}


def volume_needs_binding(volume: Obj, claim: Obj) -> bool:
    ref = spec_of(volume).get("claimRef") or {}
    return not (ref.get("uid") == metadata_of(claim).get("uid") and ref.get("name") == name_of(claim)
                and ref.get("namespace") == namespace_of(claim))


def claim_needs_binding(claim: Obj, volume: Obj) -> bool:
    return (spec_of(claim).get("volumeName") != name_of(volume)
            or annotations_of(claim).get(BIND_COMPLETED) is None)


def bound_claim_status(claim: Obj, volume: Obj) -> Obj:
    status = dict(status_of(claim))
    status["phase"] = BOUND
    status["accessModes"] = list(spec_of(volume).get("accessModes") or [])
    status["capacity"] = dict(spec_of(volume).get("capacity") or {})
    return status


def pods_using_claim(pods: Iterable[Obj], claim: Obj) -> list[Obj]:
    """Pods in the claim's namespace that mount it and have not finished (the PVC protection check)."""
    out = []
    for pod in pods:
        if namespace_of(pod) != namespace_of(claim):
            continue
        if status_of(pod).get("phase") in ("Succeeded", "Failed"):
            continue
        for volume in spec_of(pod).get("volumes") or []:
            source = volume.get("persistentVolumeClaim") if isinstance(volume, dict) else None
            if isinstance(source, dict) and source.get("claimName") == name_of(claim):
                out.append(pod)
                break
    return out
