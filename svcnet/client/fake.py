"""FakeApi: ApiClient's methods over an in-memory object map, for controller tests.

It keeps what controllers and informers depend on and nothing more:
- one resourceVersion counter; every write bumps it and stamps the object;
- get/list/create/update/update_status/patch/delete with upstream's 404/409
  ApiErrors, conditional updates, generateName, uid, creationTimestamp,
  status written only through update_status (for kinds with a status
  subresource), generation bumps on spec changes for apps kinds, finalizers
  holding a deleted object until they are removed;
- label and field selectors as the API server parses them (svcnet.api.selectors);
- watch from a resourceVersion: history replay, then live events through an
  asyncio queue; objects entering/leaving a selector arrive as ADDED/DELETED;
  watching from before compact() raises 410 Gone, as the real server's ERROR
  event does.

Test controls: compact(), close_watches(), send_bookmarks(), `outage` (every
call fails with TransportError and open watches break), and `actions`, the
writes made so far. Not modelled: validation, defaulting, admission (ClusterIP
allocation), graceful pod deletion, garbage collection of dependents.
"""
from __future__ import annotations

import asyncio
import copy
import datetime as dt
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import errors, meta, selectors
from svcnet.api.resources import Resource
from svcnet.apiserver import patch
from svcnet.client.rest import PatchType, TransportError

Obj = dict[str, Any]
Matcher = Callable[[Obj], bool]

_GENERATION_KINDS = {"Deployment", "ReplicaSet", "StatefulSet"}
_IMMUTABLE_META = ("uid", "creationTimestamp", "name", "namespace", "generateName",
                   "deletionTimestamp", "deletionGracePeriodSeconds")


@dataclass(frozen=True)
class Action:
    """One write a test can assert on: ("create", "services", "default", "web", None)."""

    verb: str
    plural: str
    namespace: str | None
    name: str
    subresource: str | None = None


@dataclass(frozen=True)
class _Event:
    revision: int
    resource: tuple[str, str]  # (group, plural)
    type: str
    obj: Obj
    prev: Obj | None


_END = object()  # queue sentinel: the server closed the watch


@dataclass
class _Watcher:
    resource: tuple[str, str]
    matches: Matcher
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


@functools.cache
def _schema_resolver() -> patch.SchemaResolver:
    from svcnet.apiserver import openapi  # large tables: load only when a strategic patch needs them

    return patch.SchemaResolver(openapi.components())


def _root_schema(resource: Resource) -> str:
    from svcnet.apiserver import openapi

    return openapi.root_schema_name(resource)


class FakeApi:
    def __init__(self, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._clock = clock
        self._revision = 0
        self._compacted = 0
        self._objects: dict[tuple[str, str], dict[str, Obj]] = {}
        self._history: list[_Event] = []
        self._watchers: list[_Watcher] = []
        self._outage = False
        self.actions: list[Action] = []

    async def __aenter__(self) -> FakeApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close_watches()

    # -------------------------------------------------------------- test controls
    @property
    def resource_version(self) -> str:
        return str(self._revision)

    @property
    def outage(self) -> bool:
        return self._outage

    @outage.setter
    def outage(self, down: bool) -> None:
        """While down, every call raises TransportError; going down breaks open watches."""
        self._outage = down
        if down:
            for w in self._watchers:
                w.queue.put_nowait(TransportError("fake API server is down"))

    def compact(self, revision: int | None = None) -> None:
        """Forget history up to revision (default: all of it); older watches get 410."""
        target = self._revision if revision is None else revision
        self._compacted = max(self._compacted, target)
        self._history = [e for e in self._history if e.revision > self._compacted]

    def close_watches(self, drop_pending: bool = False) -> None:
        """End every open watch, as a server does at its timeout; drop_pending loses undelivered events."""
        for w in self._watchers:
            if drop_pending:
                while not w.queue.empty():
                    w.queue.get_nowait()
            w.queue.put_nowait(_END)

    def send_bookmarks(self) -> None:
        for w in self._watchers:
            if w.bookmarks:
                w.queue.put_nowait(("BOOKMARK", {"metadata": {"resourceVersion": str(self._revision)}}))

    def watcher_count(self) -> int:
        return len(self._watchers)

    def objects(self, resource: Resource) -> list[Obj]:
        """Every stored object of a resource (copies), sorted by namespace/name."""
        bucket = self._bucket(resource)
        return [copy.deepcopy(bucket[k]) for k in sorted(bucket)]

    # ------------------------------------------------------------------ helpers
    def _check_up(self) -> None:
        if self._outage:
            raise TransportError("fake API server is down")

    def _bucket(self, resource: Resource) -> dict[str, Obj]:
        return self._objects.setdefault((resource.group, resource.plural), {})

    @staticmethod
    def _key(resource: Resource, namespace: str | None, name: str) -> str:
        return f"{namespace}/{name}" if resource.namespaced else name

    @staticmethod
    def _namespace(resource: Resource, namespace: str | None, body: Obj | None = None) -> str | None:
        if not resource.namespaced:
            return None
        ns = namespace or ((body or {}).get("metadata") or {}).get("namespace")
        if not ns:
            raise ValueError(f"{resource.plural} are namespaced: a namespace is required")
        body_ns = ((body or {}).get("metadata") or {}).get("namespace")
        if body_ns and body_ns != ns:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        return str(ns)

    def _current(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        obj = self._bucket(resource).get(self._key(resource, namespace, name))
        if obj is None:
            raise errors.not_found(resource.plural, name, resource.group)
        return obj

    def _now(self) -> str:
        return meta.rfc3339(self._clock())

    def _write(self, resource: Resource, event_type: str, obj: Obj, prev: Obj | None) -> Obj:
        self._revision += 1
        md = meta.metadata(obj)
        md["resourceVersion"] = str(self._revision)
        bucket = self._bucket(resource)
        key = self._key(resource, md.get("namespace"), md["name"])
        if event_type == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        event = _Event(self._revision, (resource.group, resource.plural), event_type,
                       copy.deepcopy(obj), copy.deepcopy(prev) if prev is not None else None)
        self._history.append(event)
        for w in self._watchers:
            if w.resource == event.resource and (translated := _translate(event, w.matches)):
                w.queue.put_nowait(translated)
        return copy.deepcopy(obj)

    def _with_type(self, resource: Resource, obj: Obj) -> Obj:
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        return obj

    # -------------------------------------------------------------------- reads
    async def get(self, resource: Resource, namespace: str | None, name: str,
                  subresource: str | None = None) -> Obj:
        self._check_up()
        ns = self._namespace(resource, namespace)
        return copy.deepcopy(self._current(resource, ns, name))

    async def list(self, resource: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj:
        self._check_up()
        matches = _matcher(resource, namespace, label_selector, field_selector)
        bucket = self._bucket(resource)
        keys = [k for k in sorted(bucket) if matches(bucket[k]) and (not continue_ or k > continue_)]
        page = keys[:limit] if limit else keys
        list_meta: Obj = {"resourceVersion": str(self._revision)}
        if limit and len(keys) > limit:
            list_meta["continue"] = page[-1]
            list_meta["remainingItemCount"] = len(keys) - limit
        return {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": list_meta,
                "items": [copy.deepcopy(bucket[k]) for k in page]}

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError(f"FakeApi does not serve raw requests ({method} {path})")

    # ------------------------------------------------------------------- writes
    async def create(self, resource: Resource, namespace: str | None, body: Obj, *,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj:
        self._check_up()
        ns = self._namespace(resource, namespace, body)
        obj = self._with_type(resource, copy.deepcopy(body))
        md = meta.metadata(obj)
        if not md.get("name"):
            if not md.get("generateName"):
                raise errors.invalid(resource.kind, "", [errors.Cause(
                    "metadata.name", "Required value: name or generateName is required",
                    "FieldValueRequired")], resource.group)
            md["name"] = md["generateName"] + meta.random_suffix()
        if ns is not None:
            md["namespace"] = ns
        if self._key(resource, ns, md["name"]) in self._bucket(resource):
            raise errors.already_exists(resource.plural, md["name"], resource.group)
        for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(transient, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = self._now()
        if resource.kind in _GENERATION_KINDS:
            md["generation"] = 1
        if dry_run:
            return obj
        self.actions.append(Action("create", resource.plural, ns, md["name"]))
        return self._write(resource, "ADDED", obj, None)

    async def update(self, resource: Resource, namespace: str | None, body: Obj, *,
                     field_manager: str | None = None, dry_run: bool = False,
                     subresource: str | None = None) -> Obj:
        self._check_up()
        ns = self._namespace(resource, namespace, body)
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            raise ValueError("the object has no metadata.name")
        old = self._current(resource, ns, name)
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != meta.resource_version(old):
            raise errors.conflict(resource.plural, name, resource.group)
        new = self._merged(resource, old, body, subresource)
        if _same(old, new):
            return copy.deepcopy(old)  # an update that changes nothing keeps the resourceVersion
        if dry_run:
            return new
        self.actions.append(Action("update", resource.plural, ns, name, subresource))
        new_md = meta.metadata(new)
        if new_md.get("deletionTimestamp") and not new_md.get("finalizers"):
            return self._write(resource, "DELETED", new, old)
        return self._write(resource, "MODIFIED", new, old)

    async def update_status(self, resource: Resource, namespace: str | None, body: Obj, *,
                            field_manager: str | None = None) -> Obj:
        return await self.update(resource, namespace, body, field_manager=field_manager,
                                 subresource="status")

    def _merged(self, resource: Resource, old: Obj, body: Obj, subresource: str | None) -> Obj:
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(body.get("status", {}))
            return new
        new = self._with_type(resource, copy.deepcopy(body))
        if resource.subresource("status") is not None:
            # The status subresource owns status: a main-resource write keeps the stored one.
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        old_md, new_md = old.get("metadata") or {}, meta.metadata(new)
        for key in _IMMUTABLE_META:
            if key in old_md:
                new_md[key] = old_md[key]
            else:
                new_md.pop(key, None)
        if resource.kind in _GENERATION_KINDS:
            generation = int(old_md.get("generation") or 1)
            new_md["generation"] = generation + 1 if new.get("spec") != old.get("spec") else generation
        return new

    async def patch(self, resource: Resource, namespace: str | None, name: str, body: Any, *,
                    patch_type: PatchType = "merge", field_manager: str | None = None,
                    force: bool = False, subresource: str | None = None, dry_run: bool = False) -> Obj:
        self._check_up()
        ns = self._namespace(resource, namespace)
        key = self._key(resource, ns, name)
        current = self._bucket(resource).get(key)
        if patch_type == "apply":
            applied = patch.server_side_apply(
                copy.deepcopy(current) if current is not None else None, copy.deepcopy(body),
                field_manager or "", force, _schema_resolver(), _root_schema(resource), self._now(),
                subresource=subresource or "")
            if current is None:
                meta.metadata(applied).setdefault("name", name)
                return await self.create(resource, ns, applied, dry_run=dry_run)
            patched = applied
        else:
            if current is None:
                raise errors.not_found(resource.plural, name, resource.group)
            if patch_type == "merge":
                patched = patch.json_merge_patch(copy.deepcopy(current), body)
            elif patch_type == "json":
                patched = patch.json_patch(copy.deepcopy(current), body)
            elif patch_type == "strategic":
                patched = patch.strategic_merge_patch(copy.deepcopy(current), body, _schema_resolver(),
                                                      _root_schema(resource))
            else:
                raise errors.unsupported_media_type(f"unsupported patch type {patch_type!r}")
        md = meta.metadata(patched)
        # A patch applies to the current object unless it names a resourceVersion itself.
        md.setdefault("resourceVersion", meta.resource_version(current))
        md["name"], md["namespace"] = name, ns
        if ns is None:
            md.pop("namespace")
        return await self.update(resource, ns, patched, dry_run=dry_run, subresource=subresource)

    async def delete(self, resource: Resource, namespace: str | None, name: str, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None, dry_run: bool = False) -> Obj:
        self._check_up()
        ns = self._namespace(resource, namespace)
        current = self._current(resource, ns, name)
        md = current.get("metadata") or {}
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise errors.conflict(resource.plural, name, resource.group,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, "
                                  f"UID in object meta: {md.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != md.get("resourceVersion"):
            raise errors.conflict(resource.plural, name, resource.group,
                                  f"Precondition failed: ResourceVersion in precondition: "
                                  f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                  f"{md.get('resourceVersion')}")
        if dry_run:
            return copy.deepcopy(current)
        self.actions.append(Action("delete", resource.plural, ns, name))
        if md.get("finalizers"):
            if md.get("deletionTimestamp"):
                return copy.deepcopy(current)
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = self._now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._write(resource, "MODIFIED", marked, current)
        return self._write(resource, "DELETED", copy.deepcopy(current), current)

    # -------------------------------------------------------------------- watch
    async def watch(self, resource: Resource, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = False, name: str | None = None,
                    ) -> AsyncIterator[tuple[str, Obj]]:
        self._check_up()
        base = _matcher(resource, namespace, label_selector, field_selector)
        matches: Matcher = base if name is None else (lambda o: meta.name_of(o) == name and base(o))
        watcher = _Watcher((resource.group, resource.plural), matches, allow_bookmarks)
        if resource_version in (None, "", "0"):
            bucket = self._bucket(resource)
            for k in sorted(bucket):
                if matches(bucket[k]):
                    watcher.queue.put_nowait(("ADDED", copy.deepcopy(bucket[k])))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion: {resource_version!r}") from None
            if since < self._compacted:
                raise errors.gone(f"too old resource version: {since} ({self._compacted})")
            for event in self._history:
                if event.revision > since and event.resource == watcher.resource:
                    if translated := _translate(event, matches):
                        watcher.queue.put_nowait(translated)
        self._watchers.append(watcher)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds if timeout_seconds else None
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                    # when an item is already queued, and Informer.stop() would hang.
                    async with asyncio.timeout(remaining):
                        item = await watcher.queue.get()
                except TimeoutError:
                    return
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                event_type, obj = item
                yield event_type, self._with_type(resource, copy.deepcopy(obj))
        finally:
            self._watchers.remove(watcher)


def _matcher(resource: Resource, namespace: str | None, label_selector: str | None,
             field_selector: str | None) -> Matcher:
    labels = selectors.parse_label_selector(label_selector or "")
    fields = selectors.parse_field_selector(resource.kind, field_selector or "")

    def matches(obj: Obj) -> bool:
        md = obj.get("metadata") or {}
        if resource.namespaced and namespace and md.get("namespace") != namespace:
            return False
        return labels.matches(md.get("labels") or {}) and fields.matches(obj)

    return matches


def _translate(event: _Event, matches: Matcher) -> tuple[str, Obj] | None:
    """The event a selector-filtered watcher sees: objects move in (ADDED) and out (DELETED)."""
    now = matches(event.obj)
    before = event.prev is not None and matches(event.prev)
    if event.type == "MODIFIED":
        if now and before:
            return "MODIFIED", event.obj
        if now:
            return "ADDED", event.obj
        if before:
            return "DELETED", event.obj
        return None
    if event.type == "DELETED":
        return ("DELETED", event.obj) if (now or before) else None
    return (event.type, event.obj) if now else None


def _same(old: Obj, new: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        o = copy.deepcopy(o)
        (o.get("metadata") or {}).pop("resourceVersion", None)
        return o

    return strip(old) == strip(new)
