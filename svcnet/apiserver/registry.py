"""The registry: what create, update, patch and delete mean for each kind.

It sits between HTTP and storage, like kube-apiserver's generic registry plus
per-kind strategies (`strategy.py`, pure): it stamps metadata, defaults and
validates, keeps status and spec writes apart, honours preconditions,
finalizers and deletion propagation, and turns storage errors into Kubernetes
Status errors. It does no I/O of its own beyond the Store it is given, so it is
tested with MemoryStore.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from svcnet.api import errors, jsoncodec, meta, objects
from svcnet.api.errors import ApiError, Cause
from svcnet.api.resources import RESOURCES, Resource, lookup, served
from svcnet.apiserver import strategy
from svcnet.apiserver.lister import StoreLister
from svcnet.apiserver.steps import Read, Steps, inline
from svcnet.storage.base import (
    KeyExists,
    KeyNotFound,
    Predicate,
    RevisionConflict,
    Store,
)

Obj = dict[str, Any]

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


_NAMESPACES = served("", "v1", "namespaces")


# (resource, body, fieldValidation directive, duplicated paths, subresource) -> (error, warnings)
FieldChecker = Callable[[Resource, Obj, str, list[str], "str | None"], "tuple[ApiError | None, list[str]]"]
# (resource, object) -> paths removed: drops, in place, the fields the kind's type does not have
FieldPruner = Callable[[Resource, Obj], list[str]]

# The largest object the registry stores, encoded: etcd's default request limit,
# DefaultMaxRequestBytes = 1.5 MiB (etcd server/embed/config.go), which etcd
# enforces on every put. kube-apiserver lets etcd refuse ("etcdserver: request is
# too large") and answers 500 (kubernetes/kubernetes#112152); svcnet refuses first,
# with the 413 kube-apiserver uses for an oversized body.
MAX_OBJECT_BYTES = 1_572_864


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


class SteppedAdmission(Admission, Protocol):
    """A hook whose admission makes store calls (the Service allocator's claims in the shared
    store): they are yielded as steps, so the HTTP handlers make them off the event loop."""

    def admit_steps(self, op: str, resource: Resource, obj: Obj, old: Obj | None,
                    dry_run: bool = False) -> Steps[tuple[Undo, Undo] | None]: ...

    def released_steps(self, resource: Resource, obj: Obj) -> Steps[None]: ...


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
    """One page of a list, its objects as the JSON text the store keeps.

    A get serves an object as jsoncodec.dumps(jsoncodec.loads(text)), which is text itself
    (the store encoded it with that codec and nothing is added at read time), so a JSON list
    splices the texts as they are; `items` decodes them, once, for the forms that need objects.
    """

    texts: list[str]
    resource_version: str
    continue_token: str | None
    remaining: int
    revisions: list[int] = field(default_factory=list)  # each text's mod revision
    store: Any = None  # the store the revisions belong to (they name object versions within it)

    @functools.cached_property
    def items(self) -> list[Obj]:
        # One document of them all: one decoder call instead of one per object, the same values.
        with jsoncodec.building_many():
            return jsoncodec.loads("[" + ",".join(self.texts) + "]")


class _StoreConflict(Exception):
    """The store refused a write because the object changed after it was read: the caller
    retries from the read when it may (no resourceVersion given), else answers `error`."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


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
        field_pruner: FieldPruner | None = None,
        managed_fields: Callable[[Resource, Obj | None, Obj, str, str | None, str], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.admission = admission or []
        self._default = defaulter or (lambda kind, obj: None)
        self._validate = validator or (lambda kind, obj, old: [])
        self._check_fields = field_checker or (lambda res, obj, directive, dups, sub: (None, []))
        self._prune_fields = field_pruner or (lambda res, obj: [])
        # (resource, old, new, manager, subresource, now): sets new's metadata.managedFields
        self._managed_fields = managed_fields
        self._now_memo: tuple[float, str] = (-1.0, "")
        # Namespaces as the store's watch brings them: a create checks its namespace here, and
        # reads the store only when the namespace is not there (yet), as NamespaceLifecycle does.
        self.namespaces = StoreLister(store, _NAMESPACES.storage_prefix())

    # ----------------------------------------------------------------- helpers
    def now(self) -> str:
        """The clock as RFC 3339 to the second; formatted once a second (a create asks twice)."""
        moment = self.clock()
        second = moment.timestamp() // 1
        memo = self._now_memo
        if memo[0] != second:
            memo = self._now_memo = (second, meta.rfc3339(moment))
        return memo[1]

    def _get_record(self, res: Resource, namespace: str | None, name: str):
        rec = self.store.get(res.storage_key(namespace, name))
        if rec is None:
            raise errors.not_found(res.plural, name, res.group)
        return rec

    def _get_record_steps(self, res: Resource, namespace: str | None, name: str) -> Steps[Any]:
        rec = yield Read(self.store.get, res.storage_key(namespace, name))
        if rec is None:
            raise errors.not_found(res.plural, name, res.group)
        return rec

    def ensure_system_namespaces(self) -> None:
        for name in SYSTEM_NAMESPACES:
            if self.store.get(_NAMESPACES.storage_key(None, name)) is None:
                try:
                    self.create(_NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}}, WriteOptions())
                except ApiError as exc:
                    if exc.reason != "AlreadyExists":
                        raise

    def _check_namespace(self, res: Resource, namespace: str | None, obj: Obj, creating: bool) -> Steps[None]:
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
            key = _NAMESPACES.storage_key(None, md["namespace"])
            namespace_obj = self.namespaces.get(key)
            if namespace_obj is None:
                rec = yield Read(self.store.get, key)
                if rec is None:
                    raise errors.not_found("namespaces", md["namespace"])
                namespace_obj = rec.value
            if objects.is_being_deleted(namespace_obj):
                raise errors.forbidden(
                    res.plural, md.get("name") or md.get("generateName", ""),
                    f'{res.plural} "{md.get("name") or md.get("generateName", "")}" is forbidden: '
                    f'unable to create new content in namespace {md["namespace"]} because it is '
                    f'being terminated', res.group)

    def check_fields(self, res: Resource, obj: Obj, opts: WriteOptions,
                     subresource: str | None = None) -> None:
        """Decode-time field checks of a body (or patched object) against its type: a wrong JSON
        type is a 400; unknown/duplicate fields are refused (Strict) or added to opts.warnings."""
        error, warnings = self._check_fields(res, obj, opts.field_validation, opts.duplicate_fields,
                                             subresource)
        if error is not None:
            raise error
        opts.warnings.extend(w for w in warnings if w not in opts.warnings)

    def _typed(self, res: Resource, obj: Obj) -> Obj:
        """obj as the kind's type can hold it: every write passes here after patching or merging
        and before defaulting, validation and storage (kube-apiserver decodes into the Go struct);
        so do the stored objects that binding and deletion rewrite.

        Fields the type lacks were reported by `check_fields` (Warn) or refused (Strict);
        here they are dropped whatever the directive, so nothing unknown is ever stored.
        """
        self._prune_fields(res, obj)
        return obj

    def _check_size(self, res: Resource, obj: Obj) -> None:
        """Refuse an object larger than MAX_OBJECT_BYTES encoded, before the store sees it."""
        size = len(jsoncodec.dumps(obj))
        if size > MAX_OBJECT_BYTES:
            raise ApiError(413, "RequestEntityTooLarge",
                           f'Request entity too large: {res.kind} "{objects.name_of(obj)}" is {size} '
                           f"bytes encoded, limit is {MAX_OBJECT_BYTES}",
                           name=objects.name_of(obj), group=res.group, kind=res.plural)

    def _validate_or_raise(self, res: Resource, obj: Obj, old: Obj | None) -> None:
        causes = self._validate(res.kind, obj, old)
        if causes:
            raise errors.invalid(res.kind, objects.name_of(obj), causes, res.group)

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
        revision: int | None = None,
    ) -> ListPage:
        """A page of the list, as of revision when given (the store raises Compacted or FutureRevision)."""
        result = self.store.list_encoded(res.storage_prefix(namespace), predicate=predicate, limit=limit,
                                         start_after=start_after, revision=revision)
        return ListPage(result.texts, str(result.revision), result.continue_key, result.remaining,
                        result.revisions, self.store)

    # ------------------------------------------------------------------ create
    # Each write is a generator of steps (steps.py): it yields its store calls, so the HTTP
    # handlers can run them off the event loop; the plain methods (create, update, patch_apply,
    # bind_pod, delete: see the end of the write section) run them inline.
    def create_steps(self, res: Resource, namespace: str | None, obj: Obj, opts: WriteOptions, *,
                     operation: str = "Update") -> Steps[Obj]:
        strategy.check_type(res, obj)
        self.check_fields(res, obj, opts)
        self._typed(res, obj)
        yield from self._check_namespace(res, namespace, obj, creating=True)
        strategy.prepare_for_create(res, obj, str(uuid.uuid4()), self.now())
        md = meta.metadata(obj)
        self._default(res.kind, obj)
        undo = yield from self._admit("CREATE", res, obj, None, opts.dry_run)
        with self._settled(undo):
            self._validate_or_raise(res, obj, None)
            self._track_fields(res, None, obj, opts, operation)
            if opts.dry_run:
                return obj
            self._check_size(res, obj)
            key = res.storage_key(md.get("namespace"), md["name"])
            try:
                rec = yield functools.partial(self.store.create, key, obj)
            except KeyExists:
                raise errors.already_exists(res.plural, md["name"], res.group) from None
            return rec.value

    def _admit(self, op: str, res: Resource, obj: Obj, old: Obj | None,
               dry_run: bool) -> Steps[list[tuple[Undo, Undo]]]:
        """Run the admission hooks (a hook's store calls as steps); what each took, to settle."""
        undo: list[tuple[Undo, Undo]] = []
        try:
            for hook in self.admission:
                stepped = getattr(hook, "admit_steps", None)
                if stepped is not None:
                    result = yield from stepped(op, res, obj, old, dry_run)
                else:
                    result = hook.admit(op, res, obj, old, dry_run)
                if result is not None:
                    undo.append(result)
        except BaseException:
            for _, rollback in reversed(undo):
                rollback()
            raise
        return undo

    @contextlib.contextmanager
    def _settled(self, undo: list[tuple[Undo, Undo]]):
        """Commit the admission hooks if the body succeeds, roll them back if not."""
        try:
            yield
        except BaseException:
            for _, rollback in reversed(undo):
                rollback()
            raise
        for commit, _ in undo:
            commit()

    # ------------------------------------------------------------------ update
    def update_steps(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        obj: Obj,
        opts: WriteOptions,
        *,
        subresource: str | None = None,
        attempts: int = 5,
    ) -> Steps[tuple[Obj, bool]]:
        """Replace an object (PUT). Returns (object, created).

        An object without a resourceVersion replaces whatever is stored: a write that lands
        between the read and the write is a conflict retried here, as kube-apiserver's
        GuaranteedUpdate retries an unconditional update (apiserver
        pkg/registry/generic/registry/store.go, Store.Update with AllowUnconditionalUpdate)."""
        strategy.check_type(res, obj)
        self.check_fields(res, obj, opts, subresource)
        yield from self._check_namespace(res, namespace, obj, creating=False)
        md = meta.metadata(obj)
        if md.get("name") and md["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({md['name']}) does not match the name on the URL ({name})")
        md["name"] = name
        key = res.storage_key(md.get("namespace"), name)
        unconditional = not md.get("resourceVersion")
        for attempt in range(attempts):
            retry = unconditional and attempt < attempts - 1
            body = jsoncodec.deepcopy(obj) if retry else obj  # a write changes what it is given
            rec = yield Read(self.store.get, key)
            if rec is None:
                if res.kind in strategy.CREATE_ON_UPDATE and subresource is None:
                    return (yield from self.create_steps(res, namespace, body, opts)), True
                raise errors.not_found(res.plural, name, res.group)
            try:
                return (yield from self._write_update(res, rec, body, opts, subresource=subresource)), False
            except _StoreConflict as exc:
                if not retry:
                    raise exc.error from None
        raise AssertionError("unreachable")

    def _write_update(self, res: Resource, rec, obj: Obj, opts: WriteOptions, *,
                      subresource: str | None, operation: str = "Update") -> Steps[Obj]:
        """Raises _StoreConflict when the object changed since rec was read (its caller may retry)."""
        old = rec.value
        md = meta.metadata(obj)
        wanted_rv = md.get("resourceVersion")
        if wanted_rv and wanted_rv != str(rec.revision):
            raise errors.conflict(res.plural, objects.name_of(old), res.group)
        new = self._typed(res, strategy.prepare_for_update(res, old, obj, subresource))
        new_md = meta.metadata(new)
        self._default(res.kind, new)
        strategy.set_generation(res, old, new, subresource)
        undo = yield from self._admit("UPDATE", res, new, old, opts.dry_run)
        with self._settled(undo):
            self._validate_or_raise(res, new, old)
            self._track_fields(res, old, new, opts, operation, subresource)
            if strategy.same_content(old, new):
                return old  # kube-apiserver skips writes that change nothing: the RV stays
            if opts.dry_run:
                return new
            if new_md.get("deletionTimestamp") and not new_md.get("finalizers") and \
                    not new_md.get("deletionGracePeriodSeconds"):
                # The last finalizer went; a graceful (pod) deletion still waits for its node.
                return (yield from self._remove(res, rec.key, rec.revision, new))
            self._check_size(res, new)
            return (yield from self._store_update(res, rec, new)).value

    def patch_apply_steps(
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
    ) -> Steps[tuple[Obj, bool]]:
        """Read, mutate (a patch), write; retried on conflict as kube-apiserver's patcher is."""
        for attempt in range(attempts):
            key = res.storage_key(namespace if res.namespaced else None, name)
            rec = yield Read(self.store.get, key)
            if rec is None:
                if not create_if_missing:
                    raise errors.not_found(res.plural, name, res.group)
                obj = mutate(None)
                meta.metadata(obj).setdefault("name", name)
                return (yield from self.create_steps(res, namespace, obj, opts, operation=operation)), True
            # Patched as kube-apiserver patches: the stored object as its type reads it, so a
            # field stored before pruning existed is neither reported nor kept.
            patched = mutate(self._typed(res, jsoncodec.deepcopy(rec.value)))
            patched_rv = objects.resource_version(patched)
            explicit_rv = patched_rv and patched_rv != str(rec.revision)
            if not explicit_rv:
                meta.metadata(patched)["resourceVersion"] = str(rec.revision)
            strategy.check_type(res, patched)
            self.check_fields(res, patched, opts, subresource)
            try:
                return (yield from self._write_update(res, rec, patched, opts, subresource=subresource,
                                                      operation=operation)), False
            except _StoreConflict as exc:
                if explicit_rv or attempt == attempts - 1:
                    raise exc.error from None
            except ApiError as exc:
                if exc.reason == "Conflict" and not explicit_rv and attempt < attempts - 1:
                    continue
                raise
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- binding
    def bind_pod_steps(self, namespace: str, name: str, binding: Obj, attempts: int = 5) -> Steps[Obj]:
        """pods/binding: set spec.nodeName once, as kube-apiserver's BindingREST does.

        The only way a pod's node is set after creation (pod validation forbids it on
        update); also marks the pod PodScheduled=True.
        """
        pods = lookup("", "v1", "pods")
        assert pods is not None
        node = strategy.binding_node(name, binding)
        wanted_uid = objects.metadata_of(binding).get("uid")
        for attempt in range(attempts):
            rec = yield from self._get_record_steps(pods, namespace, name)
            pod = self._typed(pods, rec.value)
            md = meta.metadata(pod)
            if wanted_uid and wanted_uid != md.get("uid"):
                raise errors.conflict("pods", name, "", "the UID in the precondition does not match")
            if md.get("deletionTimestamp"):
                raise errors.conflict("pods", name, "", "pod is being deleted, cannot be assigned to a host")
            current = objects.spec_of(pod).get("nodeName")
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
                return (yield functools.partial(self.store.update, rec.key, pod, expected_revision=rec.revision)).value
            except RevisionConflict:
                if attempt == attempts - 1:
                    raise errors.conflict("pods", name) from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ delete
    def delete_steps(self, res: Resource, namespace: str | None, name: str, options: DeleteOptions,
                     attempts: int = 5) -> Steps[tuple[Obj, bool]]:
        """Delete or start deleting. Returns (object, gone_now).

        Without a resourceVersion precondition, a write that lands between the read and the
        delete is retried, as kube-apiserver's Store.Delete re-reads and retries on a conflict."""
        for attempt in range(attempts):
            try:
                return (yield from self._delete_once(res, namespace, name, options))
            except _StoreConflict as exc:
                if options.precondition_rv or attempt == attempts - 1:
                    raise exc.error from None
        raise AssertionError("unreachable")

    def _delete_once(self, res: Resource, namespace: str | None, name: str,
                     options: DeleteOptions) -> Steps[tuple[Obj, bool]]:
        rec = yield from self._get_record_steps(res, namespace, name)
        obj = self._typed(res, rec.value)
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
        finalizers = strategy.deletion_finalizers(md, options.propagation_policy, res.kind)
        if res.kind == "Namespace":
            return (yield from self._delete_namespace(res, rec, options)), False
        if md.get("deletionTimestamp"):
            return (yield from self._delete_again(res, rec, obj, finalizers, options))
        graceful = strategy.graceful_seconds(res, obj, options.grace_period_seconds)
        if not finalizers and graceful == 0:
            if options.dry_run:
                return obj, True
            return (yield from self._remove(res, rec.key, rec.revision, obj)), True
        md["finalizers"] = finalizers
        if not finalizers:
            md.pop("finalizers")
        md["deletionTimestamp"] = meta.rfc3339(self.clock() + dt.timedelta(seconds=graceful))
        md["deletionGracePeriodSeconds"] = graceful
        if options.dry_run:
            return obj, False
        return (yield from self._store_update(res, rec, obj)).value, False

    def _delete_again(self, res: Resource, rec, obj: Obj, finalizers: list[str],
                      options: DeleteOptions) -> Steps[tuple[Obj, bool]]:
        """A delete of an object already being deleted (the second half of BeforeDelete).

        A graceful deletion under way only takes a shorter grace period (kubectl delete
        --grace-period=5 after a 30 s one; --force is 0) and nothing else, finalizers included;
        one with no period left is removed now unless finalizers hold it."""
        md = meta.metadata(obj)
        if md.get("deletionGracePeriodSeconds"):
            if not strategy.shorten_grace_period(md, options.grace_period_seconds):
                return obj, False
            if finalizers:
                md["finalizers"] = finalizers
            else:
                md.pop("finalizers", None)
            if md["deletionGracePeriodSeconds"] > 0 or finalizers:
                if options.dry_run:
                    return obj, False
                return (yield from self._store_update(res, rec, obj)).value, False
            # Cut to 0: upstream writes that, then removes the object; the write is skipped here as
            # for a first delete with grace 0 (only a watcher could see it, as one more MODIFIED).
        if not finalizers:
            if options.dry_run:
                return obj, True
            return (yield from self._remove(res, rec.key, rec.revision, obj)), True
        if finalizers != list(md.get("finalizers") or []):
            md["finalizers"] = finalizers
            if not options.dry_run:
                obj = (yield from self._store_update(res, rec, obj)).value
        return obj, False

    def _store_update(self, res: Resource, rec, obj: Obj) -> Steps[Any]:
        try:
            return (yield functools.partial(self.store.update, rec.key, obj, expected_revision=rec.revision))
        except RevisionConflict:
            raise _StoreConflict(errors.conflict(res.plural, objects.name_of(obj), res.group)) from None
        except KeyNotFound:
            raise errors.not_found(res.plural, objects.name_of(obj), res.group) from None

    def _delete_namespace(self, res: Resource, rec, options: DeleteOptions) -> Steps[Obj]:
        obj = self._typed(res, rec.value)
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
        return (yield from self._store_update(res, rec, obj)).value

    def _remove(self, res: Resource, key: str, revision: int, obj: Obj) -> Steps[Obj]:
        try:
            removed = (yield functools.partial(self.store.delete, key, expected_revision=revision)).value
        except RevisionConflict:
            raise _StoreConflict(errors.conflict(res.plural, objects.name_of(obj), res.group)) from None
        except KeyNotFound:
            raise errors.not_found(res.plural, objects.name_of(obj), res.group) from None
        for hook in self.admission:
            stepped = getattr(hook, "released_steps", None)
            if stepped is not None:
                yield from stepped(res, removed)
            else:
                hook.released(res, removed)
        return removed

    # The plain methods: each write with its store calls made inline.
    create = inline(create_steps)
    update = inline(update_steps)
    patch_apply = inline(patch_apply_steps)
    bind_pod = inline(bind_pod_steps)
    delete = inline(delete_steps)

    # ---------------------------------------------------- namespace lifecycle
    def finalize_namespace(self, name: str) -> bool:
        """Empty a terminating namespace; remove it when empty. True when it is gone."""
        rec = self.store.get(_NAMESPACES.storage_key(None, name))
        if rec is None:
            return True
        if not objects.is_being_deleted(rec.value):
            return False
        remaining = 0
        for res in RESOURCES:
            if not res.namespaced:
                continue
            for item in self.store.list(res.storage_prefix(name)).records:
                remaining += 1
                item_md = objects.metadata_of(item.value)
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
        return [objects.name_of(r.value) for r in self.store.list(_NAMESPACES.storage_prefix()).records
                if objects.is_being_deleted(r.value)]
