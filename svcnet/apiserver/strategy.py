"""Per-kind write rules, as kube-apiserver's strategies hold them: pure decisions on objects.

What a create resets, what an update may not change, how status and spec writes
stay apart, which deletions are graceful. The Registry applies them around its
store calls.
"""
from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from svcnet.api import errors, jsoncodec, meta, objects
from svcnet.api.errors import Cause
from svcnet.api.resources import Resource
from svcnet.apiserver import types
from svcnet.core import job_labels

Obj = dict[str, Any]

# Kinds whose status is written only through the status subresource, and whose
# create resets status (kube-apiserver's PrepareForCreate).
# (ServiceCIDR: as upstream since kubernetes#137715; 1.33 kept a status sent to the main resource.)
STATUS_SPLIT = {"Node", "Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet", "Namespace", "ServiceCIDR",
                "Job", "CronJob"}
# Kinds kube-apiserver lets a PUT create (AllowCreateOnUpdate).
CREATE_ON_UPDATE = {"Endpoints", "Event", "EndpointSlice", "Lease"}
# Kinds with metadata.generation bumped on every spec change.
GENERATION = {"Deployment", "ReplicaSet", "StatefulSet", "Job", "CronJob"}
# Kinds whose delete orphans dependents unless the client names a policy: batch/v1 Job keeps
# OrphanDependents for backward compatibility (jobStrategy.DefaultGarbageCollectionPolicy).
ORPHAN_BY_DEFAULT = {"Job"}
# metadata fields a client can never change once set.
IMMUTABLE_META = ("uid", "creationTimestamp", "name", "namespace", "generateName")


# The rest of kubectl's default prune allowlist: status through its subresource, generation on
# spec changes, as their upstream strategies (IngressClass: generation only, it has no status).
STATUS_SPLIT |= {"DaemonSet", "ReplicationController", "PersistentVolume", "PersistentVolumeClaim", "Ingress"}
# A CertificateSigningRequest's spec is fixed at create; its approval and its certificate each
# have a subresource of their own (csrStrategy, csrApprovalStrategy, csrStatusStrategy).
STATUS_SPLIT.add("CertificateSigningRequest")
_APPROVAL_CONDITIONS = ("Approved", "Denied")
GENERATION |= {"DaemonSet", "ReplicationController", "Ingress", "IngressClass"}
# The storage-object-in-use-protection admission plugin: a volume or a claim in use is not
# removed until the protection controllers (controllers/pvbinder.py) take their finalizer off.
PROTECTION_FINALIZERS = {"PersistentVolume": "kubernetes.io/pv-protection",
                         "PersistentVolumeClaim": "kubernetes.io/pvc-protection"}
# apps/v1 DaemonSets carry their template generation here (the strategy's TemplateGeneration);
# daemon pods are labelled pod-template-generation with it.
DAEMON_SET_TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


def check_type(res: Resource, obj: Obj, sub_kind: str | None = None) -> None:
    """The body's kind and apiVersion match the resource's (and are filled in when missing)."""
    if not isinstance(obj, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    kind = sub_kind or res.kind
    if obj.get("kind") and obj["kind"] != kind:
        raise errors.bad_request(
            f'the kind of the object ({obj["kind"]}) does not match the expected kind ({kind})')
    obj["kind"] = kind
    expected_av = "autoscaling/v1" if sub_kind == "Scale" else res.api_version
    if obj.get("apiVersion") and obj["apiVersion"] != expected_av:
        raise errors.bad_request(
            f'the API version in the data ({obj["apiVersion"]}) does not match the expected '
            f'API version ({expected_av})')
    obj["apiVersion"] = expected_av


def prepare_for_create(res: Resource, obj: Obj, uid: str, now: str) -> None:
    """Name (from generateName), uid, creationTimestamp, generation and status as a create sets them."""
    md = meta.metadata(obj)
    if not md.get("name"):
        if md.get("generateName"):
            md["name"] = md["generateName"] + meta.random_suffix()
        else:
            raise errors.invalid(res.kind, "", [Cause("metadata.name", "Required value: name or "
                                                      "generateName is required",
                                                      "FieldValueRequired")], res.group)
    for transient in ("resourceVersion", "uid", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "selfLink"):
        md.pop(transient, None)
    md["uid"] = uid
    md["creationTimestamp"] = now
    if res.kind in GENERATION:
        md["generation"] = 1
    else:
        md.pop("generation", None)
    protection = PROTECTION_FINALIZERS.get(res.kind)
    if protection and protection not in (md.get("finalizers") or []):
        md["finalizers"] = [*(md.get("finalizers") or []), protection]
    if res.kind == "DaemonSet":
        _annotations(obj)[DAEMON_SET_TEMPLATE_GENERATION] = "1"
    if res.kind == "PersistentVolume":
        # A new volume is Pending until the binder sees it (upstream's PrepareForCreate).
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": now}
        return
    if res.kind == "Ingress":
        obj["status"] = {"loadBalancer": {}}
        return
    if res.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    elif res.kind == "Pod":
        obj["status"] = {"phase": "Pending"}
    elif res.kind in STATUS_SPLIT and res.kind != "Node":
        # The zero status, as Go writes it: fields without omitempty are there (an RC's replicas: 0).
        obj["status"] = {"loadBalancer": {}} if res.kind == "Service" else types.empty_status(res.group, res.kind)
    if res.kind == "Job" and objects.spec_of(obj).get("manualSelector") is not True:
        job_labels.generate_selector(obj, uid)


def prepare_for_update(res: Resource, old: Obj, obj: Obj, subresource: str | None) -> Obj:
    """The object an update (of the object, or of its status) stores, before defaulting and validation."""
    new = _merge_for_subresource(res, old, obj, subresource)
    new_md = meta.metadata(new)
    old_md = objects.metadata_of(old)
    for fld in (*IMMUTABLE_META, "deletionTimestamp", "deletionGracePeriodSeconds"):
        if fld in old_md:
            new_md[fld] = old_md[fld]
        else:
            new_md.pop(fld, None)
    if old_md.get("deletionTimestamp"):
        added = set(new_md.get("finalizers") or []) - set(old_md.get("finalizers") or [])
        if added:
            raise errors.forbidden(res.plural, objects.name_of(old),
                                   f'{res.plural} "{objects.name_of(old)}" is forbidden: no new '
                                   f'finalizers can be added if the object is being deleted, '
                                   f'found new finalizers {sorted(added)!r}', res.group)
    if res.kind == "Service":
        _keep_allocated_cluster_ips(new, old)
    return new


def set_generation(res: Resource, old: Obj, new: Obj, subresource: str | None) -> None:
    """metadata.generation moves when the spec changes, compared once both are defaulted.

    Upstream's PrepareForUpdate compares decoded objects, and decoding defaults them: a spec that
    differs only by what defaulting fills in again (a field an apply stopped owning) is no change.
    """
    if res.kind not in GENERATION:
        return
    gen = int(objects.metadata_of(old).get("generation") or 1)
    if subresource is None and new.get("spec") != old.get("spec"):
        gen += 1
    meta.metadata(new)["generation"] = gen
    if res.kind == "DaemonSet" and subresource is None:
        _bump_template_generation(old, new)


def _bump_template_generation(old: Obj, new: Obj) -> None:
    """The DaemonSet strategy's PrepareForUpdate: a changed template is a new template generation."""
    previous = objects.annotations_of(old).get(DAEMON_SET_TEMPLATE_GENERATION) or "1"
    changed = objects.spec_of(new).get("template") != objects.spec_of(old).get("template")
    try:
        generation = int(previous) + (1 if changed else 0)
    except ValueError:
        generation = 1
    _annotations(new)[DAEMON_SET_TEMPLATE_GENERATION] = str(generation)


def _annotations(obj: Obj) -> dict[str, str]:
    md = meta.metadata(obj)
    if not isinstance(md.get("annotations"), dict):
        md["annotations"] = {}
    return md["annotations"]


def _merge_for_subresource(res: Resource, old: Obj, obj: Obj, subresource: str | None) -> Obj:
    if res.kind == "CertificateSigningRequest":
        return _merge_csr(old, obj, subresource)
    if subresource == "status":
        new = jsoncodec.deepcopy(old)
        new["status"] = obj.get("status", {})
        # kube-apiserver's status strategies also take labels/annotations? No: only status.
        new_md = meta.metadata(new)
        if "resourceVersion" in (obj.get("metadata") or {}):
            new_md["resourceVersion"] = obj["metadata"]["resourceVersion"]
        return new
    new = copy.deepcopy(obj)
    if res.kind in STATUS_SPLIT and res.kind != "Namespace":
        # A main-resource write never changes status (status has its own endpoint).
        if "status" in old:
            new["status"] = jsoncodec.deepcopy(old["status"])
        else:
            new.pop("status", None)
    elif res.kind == "Namespace":
        new["status"] = jsoncodec.deepcopy(old.get("status", {}))
    return new


def _merge_csr(old: Obj, obj: Obj, subresource: str | None) -> Obj:
    """A CSR write: the spec is always the stored one; /approval changes only the conditions and
    may not touch the certificate, /status changes conditions and certificate but keeps the
    approval (Approved/Denied) the approval subresource decided; a main write changes metadata."""
    new = copy.deepcopy(obj)
    new["spec"] = jsoncodec.deepcopy(old.get("spec") or {})
    old_status = jsoncodec.deepcopy(old.get("status") or {})
    sent = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    if subresource == "approval":
        status = {**old_status, "conditions": list(sent.get("conditions") or [])}
    elif subresource == "status":
        kept = [c for c in old_status.get("conditions") or [] if c.get("type") in _APPROVAL_CONDITIONS]
        others = [c for c in sent.get("conditions") or []
                  if not (isinstance(c, dict) and c.get("type") in _APPROVAL_CONDITIONS)]
        status = {**{k: v for k, v in sent.items() if k != "conditions"}, "conditions": kept + others}
    else:
        status = old_status
    new["status"] = {k: v for k, v in status.items() if v not in (None, [], "")}
    return new


def _keep_allocated_cluster_ips(new: Obj, old: Obj) -> None:
    """A replace that omits clusterIP keeps the allocated one (kube-apiserver's patchAllocatedValues)."""
    new_spec = new.get("spec")
    old_spec = objects.spec_of(old)
    if not isinstance(new_spec, dict) or new_spec.get("type") == "ExternalName":
        return
    if not new_spec.get("clusterIP") and old_spec.get("clusterIP"):
        new_spec["clusterIP"] = old_spec["clusterIP"]
        if old_spec.get("clusterIPs") and not new_spec.get("clusterIPs"):
            new_spec["clusterIPs"] = list(old_spec["clusterIPs"])


def deletion_finalizers(md: Obj, policy: str | None, kind: str = "") -> list[str]:
    """The finalizers a delete leaves on the object: its own plus the propagation policy's."""
    finalizers = list(md.get("finalizers") or [])
    if policy is None:
        # kube-apiserver's default (DefaultGarbageCollectionPolicy) is Background, but Orphan for Jobs.
        policy = "Orphan" if kind in ORPHAN_BY_DEFAULT else "Background"
    if policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    elif policy == "Orphan" and "orphan" not in finalizers:
        finalizers.append("orphan")
    return finalizers


def graceful_seconds(res: Resource, obj: Obj, grace_period_seconds: int | None) -> int:
    """Only pods bound to a node are deleted gracefully (the node's agent finishes the delete).

    A negative period is 1 s, as BeforeDelete and podStrategy.CheckGracefulDelete make it."""
    if res.kind != "Pod" or not objects.spec_of(obj).get("nodeName"):
        return 0
    if objects.status_of(obj).get("phase") in ("Succeeded", "Failed"):
        return 0
    if grace_period_seconds is None:
        grace_period_seconds = int(objects.spec_of(obj).get("terminationGracePeriodSeconds", 30))
    return 1 if grace_period_seconds < 0 else grace_period_seconds


def shorten_grace_period(md: Obj, requested: int | None) -> bool:
    """A graceful deletion under way, asked for again: only a shorter grace period takes effect.

    As kube-apiserver 1.32's BeforeDelete (rest/delete.go): the deletionTimestamp moves back by
    what the period lost, so it stays "when the deletion started + the period" (it may then lie in
    the past; 1.33 clamps it to now, 1.32 does not). A request without a period, or with one as
    long or longer, changes nothing. True when md was shortened."""
    current = md.get("deletionGracePeriodSeconds")
    if requested is None or not current:
        return False
    requested = 1 if requested < 0 else requested
    if requested >= current:
        return False
    started = meta.parse_time(md["deletionTimestamp"]) - dt.timedelta(seconds=current)
    md["deletionTimestamp"] = meta.rfc3339(started + dt.timedelta(seconds=requested))
    md["deletionGracePeriodSeconds"] = requested
    return True


def binding_node(name: str, binding: Obj) -> str:
    """The node a pods/binding body names, as BindingREST validates it."""
    target = binding.get("target") if isinstance(binding, dict) else None
    node = (target or {}).get("name") if isinstance(target, dict) else None
    if not node:
        raise errors.invalid("Binding", name, [Cause("target.name", "Required value", "FieldValueRequired")])
    if (target or {}).get("kind") not in (None, "", "Node"):
        raise errors.invalid("Binding", name, [Cause(
            "target.kind", f'Unsupported value: "{target.get("kind")}": supported values: "Node"',
            "FieldValueNotSupported")])
    return node


def same_content(old: Obj, new: Obj) -> bool:
    """Equal but for resourceVersion and managedFields timestamps."""
    return _without_volatile_meta(old) == _without_volatile_meta(new)


def _without_volatile_meta(obj: Obj) -> Obj:
    """obj without metadata.resourceVersion and managedFields times, sharing everything else
    (it is only compared): copying whole objects twice per write was most of this check."""
    md = obj.get("metadata")
    if not md:
        return obj
    entries = md.get("managedFields") if isinstance(md, dict) else None
    if not isinstance(md, dict) or (entries and not (isinstance(entries, list)
                                                     and all(isinstance(e, dict) for e in entries))):
        # malformed metadata: keep the copying version's behaviour, errors included
        out = copy.deepcopy(obj)
        out_md = out.get("metadata") or {}
        out_md.pop("resourceVersion", None)
        for entry in out_md.get("managedFields") or []:
            entry.pop("time", None)
        return out
    out_md = {k: v for k, v in md.items() if k != "resourceVersion"}
    if entries:
        out_md["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in entries]
    return {**obj, "metadata": out_md}
