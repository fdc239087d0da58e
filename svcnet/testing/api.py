"""FakeApi: ApiClient's methods over svcnet's own Registry and the memory store, for tests.

There is no second model of the API server here. Every write goes through the
real Registry (svcnet.apiserver.registry), built as the API server builds it
(defaulting, validation, strict fields, managedFields, the Service
ClusterIP/NodePort admission) over a MemoryStore, and every watch is the
store's watch with the selector applied as the server applies it. The system
namespaces exist from the start, as the server creates them when it starts.

What stays out: HTTP itself, authentication, the background loops the server
runs beside the registry (namespace finalization, compaction), and the
`default/kubernetes` Service the server keeps.

Test controls: `clock` (timestamps the registry sets), `outage` (every call
fails with TransportError and open watches break), `fail(...)` (the next
writes of a kind fail with a given error), compact(), close_watches(),
send_bookmarks(), watcher_count(), objects(), and `actions`, the writes that
were stored so far.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import errors, jsoncodec, selectors
from svcnet.api.errors import ApiError
from svcnet.api.objects import labels_of, metadata_of
from svcnet.api.resources import Resource
from svcnet.apiserver import openapi, patch
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.handlers import schema_resolver
from svcnet.apiserver.http import parse_resource_path
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.apiserver.service_alloc import ServiceAllocator
from svcnet.client.rest import PatchType, StatusWrites, TransportError, ensure_namespace, required_name
from svcnet.config import ApiServerConfig
from svcnet.storage.base import Compacted, Event, FutureRevision
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

# ApiClient's default User-Agent is svcnet-client/…: the server takes the field manager from it.
DEFAULT_FIELD_MANAGER = "svcnet-client"
_WRITE_VERBS = ("create", "update", "patch", "delete")


@dataclass(frozen=True)
class Action:
    """One stored write a test can assert on: ("create", "services", "default", "web", None)."""

    verb: str
    plural: str
    namespace: str | None
    name: str
    subresource: str | None = None


@dataclass
class Failure:
    """Writes that fail on purpose: `verb` on `resource` raises `error` once `after` calls went through.

    `times` bounds how often it fires (None: every call from then on); `attempts` counts
    every matching call, the ones let through included.
    """

    verb: str
    resource: Resource
    error: Exception
    after: int = 0
    times: int | None = None
    attempts: int = 0
    fired: int = 0

    def check(self, verb: str, resource: Resource) -> None:
        if verb != self.verb or resource != self.resource:
            return
        self.attempts += 1
        if self.attempts <= self.after or (self.times is not None and self.fired >= self.times):
            return
        self.fired += 1
        raise self.error


_END = object()  # queue sentinel: the server closed the watch


@dataclass
class _Watcher:
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class FakeApi(StatusWrites):
    """`async with FakeApi() as api:` then get/list/create/.../watch, as on ApiClient."""

    def __init__(self, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC), *,
                 config: ApiServerConfig | None = None,
                 field_manager: str = DEFAULT_FIELD_MANAGER) -> None:
        cfg = config or ApiServerConfig()
        self.store = MemoryStore()
        self.allocator = ServiceAllocator(list(cfg.service_cidrs), cfg.node_port_range,
                                          reserved_ips=cfg.dns_service_ips)
        self.registry: Registry = build_registry(self.store, [self.allocator])
        self.registry.clock = clock
        self.registry.ensure_system_namespaces()
        self.field_manager = field_manager
        self.actions: list[Action] = []
        self.failures: list[Failure] = []
        self._watchers: list[_Watcher] = []
        self._outage = False

    async def __aenter__(self) -> FakeApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close_watches()

    # -------------------------------------------------------------- test controls
    @property
    def clock(self) -> Callable[[], dt.datetime]:
        return self.registry.clock

    @clock.setter
    def clock(self, clock: Callable[[], dt.datetime]) -> None:
        self.registry.clock = clock

    @property
    def resource_version(self) -> str:
        return str(self.store.current_revision())

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

    def fail(self, verb: str, resource: Resource, error: Exception, *, after: int = 0,
             times: int | None = None) -> Failure:
        """Make `verb` writes of `resource` raise `error` after `after` of them succeed."""
        if verb not in _WRITE_VERBS:
            raise ValueError(f"only writes can be made to fail, not {verb!r}")
        failure = Failure(verb, resource, error, after, times)
        self.failures.append(failure)
        return failure

    def compact(self, revision: int | None = None) -> None:
        """Forget history up to revision (default: all of it); older watches get 410."""
        self.store.compact(self.store.current_revision() if revision is None else revision)

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
                w.queue.put_nowait(("BOOKMARK", {"metadata": {"resourceVersion": self.resource_version}}))

    def watcher_count(self) -> int:
        return len(self._watchers)

    def objects(self, resource: Resource) -> list[Obj]:
        """Every stored object of a resource (fresh copies), sorted by namespace/name."""
        return self.registry.list(resource, None).items

    async def create_with_status(self, resource: Resource, namespace: str | None, body: Obj) -> Obj:
        """Create, then write body's status through the status subresource, as its controller would.

        The server drops status on create (kube-apiserver's PrepareForCreate) for pods,
        services and the apps kinds, so a test that needs a stored status writes it after.
        """
        created = await self.create(resource, namespace, body)
        if "status" not in body:
            return created
        created["status"] = body["status"]
        return await self.update_status(resource, namespace, created)

    # ------------------------------------------------------------------ helpers
    def _check_up(self) -> None:
        if self._outage:
            raise TransportError("fake API server is down")

    def _before_write(self, verb: str, resource: Resource) -> int:
        self._check_up()
        for failure in self.failures:
            failure.check(verb, resource)
        return self.store.current_revision()

    def _record(self, since: int, verb: str, resource: Resource, obj: Obj,
                subresource: str | None = None) -> None:
        """Write down a write that was stored (one that changed nothing moved no revision)."""
        if self.store.current_revision() != since:
            md = metadata_of(obj)
            self.actions.append(Action(verb, resource.plural, md.get("namespace"), str(md.get("name")),
                                       subresource))

    def _options(self, field_manager: str | None, dry_run: bool) -> WriteOptions:
        return WriteOptions(dry_run=dry_run, field_manager=field_manager or self.field_manager)

    # -------------------------------------------------------------------- reads
    async def get(self, resource: Resource, namespace: str | None, name: str,
                  subresource: str | None = None) -> Obj:
        self._check_up()
        return self.registry.get(resource, ensure_namespace(resource, namespace), name)

    async def list(self, resource: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj:
        self._check_up()
        page = self.registry.list(resource, namespace,
                                  predicate=_predicate(resource, label_selector, field_selector),
                                  limit=limit or 0, start_after=continue_ or None)
        list_meta: Obj = {"resourceVersion": page.resource_version}
        if page.continue_token:
            list_meta["continue"] = page.continue_token  # opaque to clients: the storage key will do
            if page.remaining:
                list_meta["remainingItemCount"] = page.remaining
        return {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": list_meta,
                "items": page.items}

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Only POST pods/NAME/binding, which the scheduler sends as a raw request."""
        self._check_up()
        rp = parse_resource_path(path)
        if method != "POST" or rp is None or rp.subresource != "binding":
            raise NotImplementedError(f"FakeApi does not serve raw requests ({method} {path})")
        since = self._before_write("create", rp.resource)
        bound = self.registry.bind_pod(rp.namespace or "default", rp.name or "", kwargs["body"])
        self._record(since, "create", rp.resource, bound, "binding")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    # ------------------------------------------------------------------- writes
    async def create(self, resource: Resource, namespace: str | None, body: Obj, *,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj:
        ns = ensure_namespace(resource, namespace, body)
        since = self._before_write("create", resource)
        obj = self.registry.create(resource, ns, jsoncodec.deepcopy(body),
                                   self._options(field_manager, dry_run))
        self._record(since, "create", resource, obj)
        return obj

    async def update(self, resource: Resource, namespace: str | None, body: Obj, *,
                     field_manager: str | None = None, dry_run: bool = False,
                     subresource: str | None = None) -> Obj:
        ns = ensure_namespace(resource, namespace, body)
        name = required_name(body)
        since = self._before_write("update", resource)
        obj, _ = self.registry.update(resource, ns, name, jsoncodec.deepcopy(body),
                                      self._options(field_manager, dry_run), subresource=subresource)
        self._record(since, "update", resource, obj, subresource)
        return obj

    async def patch(self, resource: Resource, namespace: str | None, name: str, body: Any, *,
                    patch_type: PatchType = "merge", field_manager: str | None = None,
                    force: bool = False, subresource: str | None = None, dry_run: bool = False) -> Obj:
        ns = ensure_namespace(resource, namespace)
        since = self._before_write("patch", resource)
        opts = self._options(field_manager, dry_run)
        mutate = _patcher(resource, name, jsoncodec.deepcopy(body), patch_type, opts.field_manager, force,
                          subresource, self.registry.now)
        obj, _ = self.registry.patch_apply(
            resource, ns, name, mutate, opts, subresource=subresource,
            create_if_missing=(patch_type == "apply" and subresource is None),
            operation="Apply" if patch_type == "apply" else "Update")
        self._record(since, "patch", resource, obj, subresource)
        return obj

    async def delete(self, resource: Resource, namespace: str | None, name: str, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None, dry_run: bool = False) -> Obj:
        """Returns the object as deleted, or as marked for deletion when finalizers hold it."""
        ns = ensure_namespace(resource, namespace)
        since = self._before_write("delete", resource)
        pre = preconditions or {}
        obj, _ = self.registry.delete(resource, ns, name, DeleteOptions(
            propagation_policy, grace_period_seconds, pre.get("uid"), pre.get("resourceVersion"),
            dry_run))
        if not dry_run:
            self.actions.append(Action("delete", resource.plural, ns, name))
        elif self.store.current_revision() != since:
            raise AssertionError("a dry-run delete was stored")
        return obj

    # -------------------------------------------------------------------- watch
    async def watch(self, resource: Resource, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = False, name: str | None = None,
                    ) -> AsyncIterator[tuple[str, Obj]]:
        """The store's watch, as the server serves it: objects moving in or out of a selector
        arrive as ADDED/DELETED; a compacted resourceVersion raises 410 Gone."""
        self._check_up()
        predicate = _predicate(resource, label_selector,
                               ",".join(filter(None, [field_selector, name and f"metadata.name={name}"])))
        prefix = resource.storage_prefix(namespace)
        watcher = _Watcher(allow_bookmarks)
        if resource_version in (None, "", "0"):
            page = self.store.list(prefix, predicate=predicate)
            for record in page.records:
                watcher.queue.put_nowait(("ADDED", record.value))
            since = page.revision
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion: {resource_version!r}") from None

        def on_event(event: Event) -> None:
            watcher.queue.put_nowait((event.type, event.value))

        try:
            handle = self.store.watch(prefix, since, on_event, predicate=predicate)
        except Compacted as exc:
            raise errors.gone(f"too old resource version: {since} ({exc.compacted})") from None
        except FutureRevision:
            raise ApiError(504, "Timeout", f"Timeout: Too large resource version: {since}, current: "
                                           f"{self.store.current_revision()}", retry_after=1,
                           causes=[errors.Cause("", "Too large resource version", "ResourceVersionTooLarge")],
                           with_details=True) from None
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
                obj.setdefault("apiVersion", resource.api_version)
                obj.setdefault("kind", resource.kind)
                yield event_type, obj
        finally:
            handle.cancel()
            self._watchers.remove(watcher)


def _predicate(resource: Resource, label_selector: str | None,
               field_selector: str | None) -> Predicate | None:
    labels = selectors.parse_label_selector(label_selector or "")
    fields = selectors.parse_field_selector(resource.kind, field_selector or "")
    if labels.empty and fields.empty:
        return None

    def matches(obj: Obj) -> bool:
        return labels.matches(labels_of(obj)) and fields.matches(obj)

    return matches


def _patcher(resource: Resource, name: str, body: Any, patch_type: PatchType, manager: str,
             force: bool, subresource: str | None,
             now: Callable[[], str]) -> Callable[[Obj | None], Obj]:
    """The mutation the server applies for a patch of this type (see apiserver.app's _patch)."""
    root = openapi.root_schema_name(resource)
    resolver = schema_resolver()

    def mutate(current: Obj | None) -> Obj:
        if patch_type == "apply":
            return patch.server_side_apply(current, jsoncodec.deepcopy(body), manager, force, resolver, root,
                                           now(), subresource=subresource or "")
        if current is None:
            raise errors.not_found(resource.plural, name, resource.group)
        if patch_type == "merge":
            return patch.json_merge_patch(current, body)
        if patch_type == "json":
            return patch.json_patch(current, body)
        if patch_type == "strategic":
            return patch.strategic_merge_patch(current, body, resolver, root)
        raise errors.unsupported_media_type(f"unsupported patch type {patch_type!r}")

    return mutate

