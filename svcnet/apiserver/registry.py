"""The registry: what create, update, patch and delete mean for each kind.

It sits between HTTP and storage, like kube-apiserver's generic registry plus
per-kind strategies: it stamps metadata, defaults and validates, keeps status
and spec writes apart, honours preconditions, finalizers and deletion
propagation, and turns storage errors into Kubernetes Status errors. It does no
I/O of its own beyond the Store it is given, so it is tested with MemoryStore.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from svcnet.api import errors, jsoncodec, meta
from svcnet.api.errors import ApiError, Cause
from svcnet.api.resources import RESOURCES, Resource, lookup
from svcnet.storage.base import (
    KeyExists,
    KeyNotFound,
    Predicate,
    RevisionConflict,
    Store,
)

Obj = dict[str, Any]

# Kinds whose status is written only through the status subresource, and whose
# create resets status (kube-apiserver's PrepareForCreate).
_STATUS_SPLIT = {"Node", "Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet", "Namespace"}
# Kinds kube-apiserver lets a PUT create (AllowCreateOnUpdate).
_CREATE_ON_UPDATE = {"Endpoints", "Event", "EndpointSlice", "Lease"}
# Kinds with metadata.generation bumped on every spec change.
_GENERATION = {"Deployment", "ReplicaSet", "StatefulSet"}
# metadata fields a client can never change once set.
_IMMUTABLE_META = ("uid", "creationTimestamp", "name", "namespace", "generateName")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


# (resource, body, fieldValidation directive, duplicated paths, subresource) -> (error, warnings)
FieldChecker = Callable[[Resource, Obj, str, list[str], "str | None"], "tuple[ApiError | None, list[str]]"]


Undo = Callable[[], None]


class Admission(Protocol):
    """A hook on the write path (ClusterIP/NodePort allocation plugs in here)."""

    def admit(self, op: str, resource: Resource, obj: Obj, old: Obj | None,
              dry_run: bool = False) -> tuple[Undo, Undo] | None:
        """Mutate obj before validation and storage; raise ApiError to refuse.

        Returns (commit, rollback): the registry calls commit once the write is
        stored and rollback when anything after admit fails.
        """

    def released(self, resource: Resource, obj: Obj) -> None:
        """obj was removed from storage: give back what admit took for it."""


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = ""  # Strict | Warn | Ignore; empty means Warn, as upstream
    duplicate_fields: list[str] = field(default_factory=list)  # paths repeated in the request body
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeleteOptions:
    propagation_policy: str | None = None  # Orphan | Background | Foreground
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False

    @staticmethod
    def from_body(body: Obj | None, query: dict[str, str]) -> DeleteOptions:
        body = body or {}
        pre = body.get("preconditions") or {}
        policy = query.get("propagationPolicy") or body.get("propagationPolicy")
        if policy is None and body.get("orphanDependents") is not None:
            policy = "Orphan" if body["orphanDependents"] else "Background"
        if policy is None and query.get("orphanDependents") in ("true", "false"):
            policy = "Orphan" if query["orphanDependents"] == "true" else "Background"
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise errors.bad_request(
                f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"')
        grace = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        try:
            grace_int = int(grace) if grace is not None else None
        except (TypeError, ValueError):
            raise errors.bad_request(f"invalid gracePeriodSeconds: {grace!r}") from None
        dry = query.get("dryRun") == "All" or body.get("dryRun") == ["All"]
        return DeleteOptions(policy, grace_int, pre.get("uid"), pre.get("resourceVersion"), dry)


@dataclass(frozen=True)
class ListPage:
    items: list[Obj]
    resource_version: str
    continue_token: str | None
    remaining: int


class Registry:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        admission: list[Admission] | None = None,
        defaulter: Callable[[str, Obj], None] | None = None,
        validator: Callable[[str, Obj, Obj | None], list[Cause]] | None = None,
        field_checker: FieldChecker | None = None,
        managed_fields: Callable[[Resource, Obj | None, Obj, str, str | None, str], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.admission = admission or []
        self._default = defaulter or (lambda kind, obj: None)
        self._validate = validator or (lambda kind, obj, old: [])
        self._check_fields = field_checker or (lambda res, obj, directive, dups, sub: (None, []))
        # (resource, old, new, manager, subresource, now): sets new's metadata.managedFields
        self._managed_fields = managed_fields

    # ----------------------------------------------------------------- helpers
    def now(self) -> str:
        return meta.rfc3339(self.clock())

    def _get_record(self, res: Resource, namespace: str | None, name: str):
        rec = self.store.get(res.storage_key(namespace, name))
        if rec is None:
            raise errors.not_found(res.plural, name, res.group)
        return rec

    def ensure_system_namespaces(self) -> None:
        ns_res = lookup("", "v1", "namespaces")
        assert ns_res is not None
        for name in SYSTEM_NAMESPACES:
            if self.store.get(ns_res.storage_key(None, name)) is None:
                try:
                    self.create(ns_res, None, {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}}, WriteOptions())
                except ApiError as exc:
                    if exc.reason != "AlreadyExists":
                        raise

    def _check_namespace(self, res: Resource, namespace: str | None, obj: Obj, creating: bool) -> None:
        md = meta.metadata(obj)
        if not res.namespaced:
            md.pop("namespace", None)
            return
        given = md.get("namespace")
        if given and namespace and given != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request")
        md["namespace"] = namespace or given or "default"
        if creating:
            ns_res = lookup("", "v1", "namespaces")
            assert ns_res is not None
            rec = self.store.get(ns_res.storage_key(None, md["namespace"]))
            if rec is None:
                raise errors.not_found("namespaces", md["namespace"])
            if (rec.value.get("metadata") or {}).get("deletionTimestamp"):
                raise errors.forbidden(
                    res.plural, md.get("name") or md.get("generateName", ""),
                    f'{res.plural} "{md.get("name") or md.get("generateName", "")}" is forbidden: '
                    f'unable to create new content in namespace {md["namespace"]} because it is '
                    f'being terminated', res.group)

    def _check_type(self, res: Resource, obj: Obj, sub_kind: str | None = None) -> None:
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

    def _strict_fields(self, res: Resource, obj: Obj, opts: WriteOptions,
                       subresource: str | None = None) -> None:
        error, warnings = self._check_fields(res, obj, opts.field_validation, opts.duplicate_fields,
                                             subresource)
        if error is not None:
            raise error
        opts.warnings.extend(w for w in warnings if w not in opts.warnings)

    def _validate_or_raise(self, res: Resource, obj: Obj, old: Obj | None) -> None:
        causes = self._validate(res.kind, obj, old)
        if causes:
            raise errors.invalid(res.kind, meta.name_of(obj), causes, res.group)

    def _track_fields(self, res: Resource, old: Obj | None, new: Obj, opts: WriteOptions,
                      operation: str = "Update", subresource: str | None = None) -> None:
        # Apply keeps its own managedFields (the patch engine wrote them); updates are recorded here.
        if self._managed_fields is not None and opts.field_manager and operation == "Update":
            self._managed_fields(res, old, new, opts.field_manager, subresource, self.now())

    # ------------------------------------------------------------------- reads
    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        return self._get_record(res, namespace, name).value

    def list(
        self,
        res: Resource,
        namespace: str | None,
        *,
        predicate: Predicate | None = None,
        limit: int = 0,
        start_after: str | None = None,
    ) -> ListPage:
        result = self.store.list(res.storage_prefix(namespace), predicate=predicate, limit=limit,
                                 start_after=start_after)
        return ListPage([r.value for r in result.records], str(result.revision),
                        result.continue_key, result.remaining)

    # ------------------------------------------------------------------ create
    def create(self, res: Resource, namespace: str | None, obj: Obj, opts: WriteOptions) -> Obj:
        self._check_type(res, obj)
        self._strict_fields(res, obj, opts)
        self._check_namespace(res, namespace, obj, creating=True)
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
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = self.now()
        if res.kind in _GENERATION:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        self._prepare_status_for_create(res, obj)
        self._default(res.kind, obj)
        with self._admitted("CREATE", res, obj, None, opts.dry_run):
            self._validate_or_raise(res, obj, None)
            self._track_fields(res, None, obj, opts)
            if opts.dry_run:
                return obj
            try:
                return self.store.create(res.storage_key(md.get("namespace"), md["name"]), obj).value
            except KeyExists:
                raise errors.already_exists(res.plural, md["name"], res.group) from None

    @contextlib.contextmanager
    def _admitted(self, op: str, res: Resource, obj: Obj, old: Obj | None, dry_run: bool):
        """Run the admission hooks; commit them if the body succeeds, roll them back if not."""
        undo: list[tuple[Undo, Undo]] = []
        try:
            for hook in self.admission:
                result = hook.admit(op, res, obj, old, dry_run)
                if result is not None:
                    undo.append(result)
            yield
        except BaseException:
            for _, rollback in reversed(undo):
                rollback()
            raise
        for commit, _ in undo:
            commit()

    def _prepare_status_for_create(self, res: Resource, obj: Obj) -> None:
        if res.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        elif res.kind == "Pod":
            obj["status"] = {"phase": "Pending"}
        elif res.kind in _STATUS_SPLIT and res.kind != "Node":
            obj["status"] = {"loadBalancer": {}} if res.kind == "Service" else {}

    # ------------------------------------------------------------------ update
    def update(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        obj: Obj,
        opts: WriteOptions,
        *,
        subresource: str | None = None,
    ) -> tuple[Obj, bool]:
        """Replace an object (PUT). Returns (object, created)."""
        self._check_type(res, obj)
        self._strict_fields(res, obj, opts, subresource)
        self._check_namespace(res, namespace, obj, creating=False)
        md = meta.metadata(obj)
        if md.get("name") and md["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({md['name']}) does not match the name on the URL ({name})")
        md["name"] = name
        key = res.storage_key(md.get("namespace"), name)
        rec = self.store.get(key)
        if rec is None:
            if res.kind in _CREATE_ON_UPDATE and subresource is None:
                return self.create(res, namespace, obj, opts), True
            raise errors.not_found(res.plural, name, res.group)
        return self._write_update(res, rec, obj, opts, subresource=subresource), False

    def _write_update(self, res: Resource, rec, obj: Obj, opts: WriteOptions, *,
                      subresource: str | None, operation: str = "Update") -> Obj:
        old = rec.value
        md = meta.metadata(obj)
        wanted_rv = md.get("resourceVersion")
        if wanted_rv and wanted_rv != str(rec.revision):
            raise errors.conflict(res.plural, meta.name_of(old), res.group)
        new = self._merge_for_subresource(res, old, obj, subresource)
        new_md = meta.metadata(new)
        old_md = old.get("metadata") or {}
        for fld in _IMMUTABLE_META:
            if fld in old_md:
                new_md[fld] = old_md[fld]
            else:
                new_md.pop(fld, None)
        for fld in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if fld in old_md:
                new_md[fld] = old_md[fld]
            else:
                new_md.pop(fld, None)
        if old_md.get("deletionTimestamp"):
            added = set(new_md.get("finalizers") or []) - set(old_md.get("finalizers") or [])
            if added:
                raise errors.forbidden(res.plural, meta.name_of(old),
                                       f'{res.plural} "{meta.name_of(old)}" is forbidden: no new '
                                       f'finalizers can be added if the object is being deleted, '
                                       f'found new finalizers {sorted(added)!r}', res.group)
        if res.kind in _GENERATION:
            gen = int(old_md.get("generation") or 1)
            if subresource is None and new.get("spec") != old.get("spec"):
                gen += 1
            new_md["generation"] = gen
        if res.kind == "Service":
            _keep_allocated_cluster_ips(new, old)
        self._default(res.kind, new)
        with self._admitted("UPDATE", res, new, old, opts.dry_run):
            self._validate_or_raise(res, new, old)
            self._track_fields(res, old, new, opts, operation, subresource)
            if _same_content(old, new):
                return old  # kube-apiserver skips writes that change nothing: the RV stays
            if opts.dry_run:
                return new
            if new_md.get("deletionTimestamp") and not new_md.get("finalizers") and \
                    not new_md.get("deletionGracePeriodSeconds"):
                # The last finalizer went; a graceful (pod) deletion still waits for its node.
                return self._remove(res, rec.key, rec.revision, new)
            try:
                return self.store.update(rec.key, new, expected_revision=rec.revision).value
            except RevisionConflict:
                raise errors.conflict(res.plural, meta.name_of(old), res.group) from None
            except KeyNotFound:
                raise errors.not_found(res.plural, meta.name_of(old), res.group) from None

    def _merge_for_subresource(self, res: Resource, old: Obj, obj: Obj,
                               subresource: str | None) -> Obj:
        if subresource == "status":
            new = jsoncodec.deepcopy(old)
            new["status"] = obj.get("status", {})
            # kube-apiserver's status strategies also take labels/annotations? No: only status.
            new_md = meta.metadata(new)
            if "resourceVersion" in (obj.get("metadata") or {}):
                new_md["resourceVersion"] = obj["metadata"]["resourceVersion"]
            return new
        new = copy.deepcopy(obj)
        if res.kind in _STATUS_SPLIT and res.kind != "Namespace":
            # A main-resource write never changes status (status has its own endpoint).
            if "status" in old:
                new["status"] = jsoncodec.deepcopy(old["status"])
            else:
                new.pop("status", None)
        elif res.kind == "Namespace":
            new["status"] = jsoncodec.deepcopy(old.get("status", {}))
        return new

    def patch_apply(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj | None], Obj],
        opts: WriteOptions,
        *,
        subresource: str | None = None,
        create_if_missing: bool = False,
        operation: str = "Update",
        attempts: int = 5,
    ) -> tuple[Obj, bool]:
        """Read, mutate (a patch), write; retried on conflict as kube-apiserver's patcher is."""
        for attempt in range(attempts):
            key = res.storage_key(namespace if res.namespaced else None, name)
            rec = self.store.get(key)
            if rec is None:
                if not create_if_missing:
                    raise errors.not_found(res.plural, name, res.group)
                obj = mutate(None)
                meta.metadata(obj).setdefault("name", name)
                return self.create(res, namespace, obj, opts), True
            current = rec.value
            patched = mutate(jsoncodec.deepcopy(current))
            patched_rv = meta.resource_version(patched)
            explicit_rv = patched_rv and patched_rv != str(rec.revision)
            if not explicit_rv:
                meta.metadata(patched)["resourceVersion"] = str(rec.revision)
            self._check_type(res, patched)
            self._strict_fields(res, patched, opts, subresource)
            try:
                return self._write_update(res, rec, patched, opts, subresource=subresource,
                                          operation=operation), False
            except ApiError as exc:
                if exc.reason == "Conflict" and not explicit_rv and attempt < attempts - 1:
                    continue
                raise
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- binding
    def bind_pod(self, namespace: str, name: str, binding: Obj, attempts: int = 5) -> Obj:
        """pods/binding: set spec.nodeName once, as kube-apiserver's BindingREST does.

        The only way a pod's node is set after creation (pod validation forbids it on
        update); also marks the pod PodScheduled=True.
        """
        pods = lookup("", "v1", "pods")
        assert pods is not None
        target = binding.get("target") if isinstance(binding, dict) else None
        node = (target or {}).get("name") if isinstance(target, dict) else None
        if not node:
            raise errors.invalid("Binding", name, [Cause("target.name", "Required value",
                                                         "FieldValueRequired")])
        if (target or {}).get("kind") not in (None, "", "Node"):
            raise errors.invalid("Binding", name, [Cause(
                "target.kind", f'Unsupported value: "{target.get("kind")}": supported values: "Node"',
                "FieldValueNotSupported")])
        wanted_uid = ((binding.get("metadata") or {}).get("uid"))
        for attempt in range(attempts):
            rec = self._get_record(pods, namespace, name)
            pod = rec.value
            md = meta.metadata(pod)
            if wanted_uid and wanted_uid != md.get("uid"):
                raise errors.conflict("pods", name, "", "the UID in the precondition does not match")
            if md.get("deletionTimestamp"):
                raise errors.conflict("pods", name, "", "pod is being deleted, cannot be assigned to a host")
            current = (pod.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict("pods", name, "", f"pod {name} is already assigned to node "
                                                        f'"{current}"')
            pod.setdefault("spec", {})["nodeName"] = node
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": self.now()})
            status["conditions"] = conditions
            try:
                return self.store.update(rec.key, pod, expected_revision=rec.revision).value
            except RevisionConflict:
                if attempt == attempts - 1:
                    raise errors.conflict("pods", name) from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ delete
    def delete(self, res: Resource, namespace: str | None, name: str,
               options: DeleteOptions) -> tuple[Obj, bool]:
        """Delete or start deleting. Returns (object, gone_now)."""
        rec = self._get_record(res, namespace, name)
        obj = rec.value
        md = meta.metadata(obj)
        if options.precondition_uid and options.precondition_uid != md.get("uid"):
            raise errors.conflict(
                res.plural, name, res.group,
                f"Precondition failed: UID in precondition: {options.precondition_uid}, "
                f"UID in object meta: {md.get('uid')}")
        if options.precondition_rv and options.precondition_rv != str(rec.revision):
            raise errors.conflict(
                res.plural, name, res.group,
                f"Precondition failed: ResourceVersion in precondition: {options.precondition_rv}, "
                f"ResourceVersion in object meta: {rec.revision}")
        finalizers = list(md.get("finalizers") or [])
        policy = options.propagation_policy
        if policy is None:
            # kube-apiserver's default for these kinds (DefaultGarbageCollectionPolicy) is Background.
            policy = "Background"
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        graceful = self._graceful_seconds(res, obj, options)
        if res.kind == "Namespace":
            return self._delete_namespace(res, rec, options), False
        if not finalizers and graceful == 0:
            if options.dry_run:
                return obj, True
            return self._remove(res, rec.key, rec.revision, obj), True
        if md.get("deletionTimestamp"):
            # Already deleting: a shorter grace period may still apply (kubectl delete --force).
            if graceful == 0 and not finalizers:
                return self._remove(res, rec.key, rec.revision, obj), True
            if finalizers != list(md.get("finalizers") or []):
                md["finalizers"] = finalizers
                if not options.dry_run:
                    obj = self.store.update(rec.key, obj, expected_revision=rec.revision).value
            return obj, False
        md["finalizers"] = finalizers
        if not finalizers:
            md.pop("finalizers")
        md["deletionTimestamp"] = meta.rfc3339(self.clock() + dt.timedelta(seconds=graceful))
        md["deletionGracePeriodSeconds"] = graceful
        if options.dry_run:
            return obj, False
        try:
            return self.store.update(rec.key, obj, expected_revision=rec.revision).value, False
        except RevisionConflict:
            raise errors.conflict(res.plural, name, res.group) from None

    def _graceful_seconds(self, res: Resource, obj: Obj, options: DeleteOptions) -> int:
        """Only pods bound to a node are deleted gracefully (the node's agent finishes the delete)."""
        if res.kind != "Pod" or not (obj.get("spec") or {}).get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if options.grace_period_seconds is not None:
            return max(0, options.grace_period_seconds)
        return int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    def _delete_namespace(self, res: Resource, rec, options: DeleteOptions) -> Obj:
        obj = rec.value
        md = meta.metadata(obj)
        name = md["name"]
        if name in SYSTEM_NAMESPACES:
            raise errors.forbidden("namespaces", name,
                                   f'namespaces "{name}" is forbidden: this namespace may not be '
                                   f'deleted', "")
        if md.get("deletionTimestamp"):
            return obj
        md["deletionTimestamp"] = self.now()
        md["deletionGracePeriodSeconds"] = 0
        obj["status"] = {"phase": "Terminating"}
        if options.dry_run:
            return obj
        return self.store.update(rec.key, obj, expected_revision=rec.revision).value

    def _remove(self, res: Resource, key: str, revision: int, obj: Obj) -> Obj:
        try:
            removed = self.store.delete(key, expected_revision=revision).value
        except RevisionConflict:
            raise errors.conflict(res.plural, meta.name_of(obj), res.group) from None
        except KeyNotFound:
            raise errors.not_found(res.plural, meta.name_of(obj), res.group) from None
        for hook in self.admission:
            hook.released(res, removed)
        return removed

    # ---------------------------------------------------- namespace lifecycle
    def finalize_namespace(self, name: str) -> bool:
        """Empty a terminating namespace; remove it when empty. True when it is gone."""
        ns_res = lookup("", "v1", "namespaces")
        assert ns_res is not None
        rec = self.store.get(ns_res.storage_key(None, name))
        if rec is None:
            return True
        if not (rec.value.get("metadata") or {}).get("deletionTimestamp"):
            return False
        remaining = 0
        for res in RESOURCES:
            if not res.namespaced:
                continue
            for item in self.store.list(res.storage_prefix(name)).records:
                remaining += 1
                item_md = item.value.get("metadata") or {}
                try:
                    if item_md.get("deletionTimestamp"):
                        if res.kind == "Pod" and not item_md.get("finalizers"):
                            self.delete(res, name, item_md["name"], DeleteOptions(
                                grace_period_seconds=0))
                        continue
                    self.delete(res, name, item_md["name"], DeleteOptions("Background"))
                except ApiError as exc:
                    if exc.code not in (404, 409):
                        raise
        if remaining:
            return False
        try:
            self.store.delete(rec.key)
        except KeyNotFound:
            pass
        return True

    def namespaces_terminating(self) -> list[str]:
        ns_res = lookup("", "v1", "namespaces")
        assert ns_res is not None
        return [meta.name_of(r.value) for r in self.store.list(ns_res.storage_prefix()).records
                if (r.value.get("metadata") or {}).get("deletionTimestamp")]


def _keep_allocated_cluster_ips(new: Obj, old: Obj) -> None:
    """A replace that omits clusterIP keeps the allocated one (kube-apiserver's patchAllocatedValues)."""
    new_spec = new.get("spec")
    old_spec = old.get("spec") or {}
    if not isinstance(new_spec, dict) or new_spec.get("type") == "ExternalName":
        return
    if not new_spec.get("clusterIP") and old_spec.get("clusterIP"):
        new_spec["clusterIP"] = old_spec["clusterIP"]
        if old_spec.get("clusterIPs") and not new_spec.get("clusterIPs"):
            new_spec["clusterIPs"] = list(old_spec["clusterIPs"])


def _same_content(old: Obj, new: Obj) -> bool:
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
