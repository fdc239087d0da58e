"""client-go's shared informer, small: list, then watch, keep a cache, call handlers.

One Informer keeps a local copy of one resource (optionally narrowed by
namespace and selectors) in sync with the API:

- list in pages of 500, then watch from the list's resourceVersion with
  bookmarks; when a watch ends, watch again from the last resourceVersion seen;
- 410 Gone (the server compacted past us) or any other API error: list again
  and diff against the cache, emitting adds, updates and deletes, so a handler
  never misses a delete that happened while we were not watching;
- connection errors: back off (exponential with jitter, capped at ~5 s) and
  retry forever, until stop().

Handlers are plain callables run on the informer's task: they must be cheap
(controllers enqueue a key) and must not mutate the objects they are given -
those dicts are the cache's own. Objects are plain dicts as the API sent them.

It talks to anything with ApiClient's list/watch methods, FakeApi included.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from svcnet.api import objects
from svcnet.api.errors import ApiError
from svcnet.api.objects import object_key  # re-exported: controllers and the kubelet key queues with it
from svcnet.api.resources import Resource

log = logging.getLogger("svcnet.client.informer")

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]

PAGE_SIZE = 500


class ListWatchClient(Protocol):
    async def list(self, resource: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> Obj: ...

    def watch(self, resource: Resource, namespace: str | None = None, *,
              resource_version: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, timeout_seconds: int | None = None,
              allow_bookmarks: bool = False) -> AsyncIterator[tuple[str, Obj]]: ...


# ----------------------------------------------------------------------- keys

def split_key(key: str) -> tuple[str | None, str]:
    """The inverse of object_key: (namespace or None, name)."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


def _not_newer(candidate: Obj, current: Obj) -> bool:
    """True when candidate is not a later version than current.

    resourceVersions are opaque in general, but both etcd and svcnet issue
    increasing integers; comparing them lets an event replayed after a
    paged list (whose pages may be read at different revisions) never roll
    the cache back.
    """
    a, b = objects.resource_version(candidate), objects.resource_version(current)
    return a.isdigit() and b.isdigit() and int(a) <= int(b)


# ---------------------------------------------------------------------- cache

class Cache:
    """The informer's objects by key, with secondary indexes. Single-threaded (asyncio) use."""

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Index objects by func(obj) (several values allowed), e.g. pods by spec.nodeName."""
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists")
        self._index_funcs[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    def by_index(self, name: str, value: str) -> list[Obj]:
        keys = self._indices[name].get(value, set())
        return [self._items[k] for k in sorted(keys)]

    def index_keys(self, name: str, value: str) -> list[str]:
        return sorted(self._indices[name].get(value, set()))

    def put(self, obj: Obj) -> Obj | None:
        """Store obj under its key; returns the object it replaced."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._index_funcs:
            self._index_one(name, key, obj)
        return old

    def remove(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index_one(self, name: str, key: str, obj: Obj) -> None:
        for value in self._index_funcs[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._index_funcs.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


# -------------------------------------------------------------------- backoff

@dataclass
class Backoff:
    """Exponential delays with jitter, capped; reset() after a success."""

    initial: float = 0.2
    cap: float = 5.0
    factor: float = 2.0
    jitter: float = 0.5  # each delay is scaled by a random factor in [1 - jitter, 1]
    _next: float = 0.0

    def next_delay(self) -> float:
        base = self._next or self.initial
        self._next = min(base * self.factor, self.cap)
        return min(base, self.cap) * (1 - self.jitter * random.random())

    def reset(self) -> None:
        self._next = 0.0


@dataclass(frozen=True)
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


# ------------------------------------------------------------------- informer

class Informer:
    def __init__(self, client: ListWatchClient, resource: Resource, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 resync_period: float | None = None, *, backoff: Backoff | None = None,
                 page_size: int = PAGE_SIZE, min_watch_timeout: int = 300) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.cache = Cache()
        self._backoff = backoff or Backoff()
        self._page_size = page_size
        self._min_watch_timeout = min_watch_timeout
        self._handlers: list[_Handlers] = []
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_resource_version = ""
        self.relists = 0  # how many times the cache was rebuilt from a list (first one included)

    # ------------------------------------------------------------- public API
    def add_handler(self, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                    on_delete: DeleteHandler | None = None) -> None:
        """Register handlers; after sync, on_add is replayed at once for every cached object."""
        handlers = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if self.has_synced() and on_add is not None:
            for obj in self.cache.list():
                self._call(on_add, obj)

    def add_index(self, name: str, func: IndexFunc) -> None:
        self.cache.add_index(name, func)

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.cache.get(namespace, name)

    def list(self) -> list[Obj]:
        return self.cache.list()

    def by_index(self, name: str, value: str) -> list[Obj]:
        return self.cache.by_index(name, value)

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def start(self) -> asyncio.Task[None]:
        """Run list+watch on a task (and resync, if asked); stop() ends it, start() resumes."""
        if self._tasks:
            return self._tasks[0]
        main = asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}")
        self._tasks.append(main)
        if self.resync_period:
            self._tasks.append(asyncio.create_task(self._resync_loop(self.resync_period),
                                                   name=f"informer-{self.resource.plural}-resync"))
        return main

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---------------------------------------------------------------- the loop
    async def _run(self) -> None:
        # Started again after stop(): the cache is good up to last_resource_version, so
        # watch on from there (a 410 then re-lists and diffs, as after any long gap).
        need_list = not (self.has_synced() and self.last_resource_version)
        gone_in_a_row = 0
        while True:
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = False
                    self._backoff.reset()
                await self._watch_once()
                gone_in_a_row = 0
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.code == 410:
                    # Our resourceVersion is compacted: only a fresh list can resync us. Re-list
                    # at once the first time; back off if a fresh list's version is gone too.
                    log.info("%s: %s; re-listing", self.resource.plural, exc.message)
                    need_list = True
                    gone_in_a_row += 1
                    if gone_in_a_row > 1:
                        await asyncio.sleep(self._backoff.next_delay())
                    continue
                if exc.code == 429 and self.last_resource_version:
                    # Throttled, or the server is shutting down: as client-go's reflector, retry the
                    # watch from where it was after a backoff; the cache is still good.
                    log.info("%s: %s; retrying the watch", self.resource.plural, exc.message)
                    await asyncio.sleep(self._backoff.next_delay())
                    continue
                log.warning("%s: API error %d %s: %s; re-listing after backoff",
                            self.resource.plural, exc.code, exc.reason, exc.message)
                need_list = True
                await asyncio.sleep(self._backoff.next_delay())
            except Exception as exc:  # connection refused or reset, timeouts, bad bytes
                delay = self._backoff.next_delay()
                log.info("%s: %s %s; retrying in %.2fs", self.resource.plural, type(exc).__name__,
                         exc, delay)
                if not self.last_resource_version:
                    need_list = True
                await asyncio.sleep(delay)

    async def _list_and_replace(self) -> None:
        items: dict[str, Obj] = {}
        continue_: str | None = None
        first_rv = ""
        while True:
            try:
                page = await self.client.list(
                    self.resource, self.namespace, label_selector=self.label_selector,
                    field_selector=self.field_selector, limit=self._page_size, continue_=continue_)
            except ApiError as exc:
                if exc.code == 410 and continue_:
                    # The continue token expired mid-list: start over in one page, as client-go does.
                    items, continue_ = {}, None
                    page = await self.client.list(
                        self.resource, self.namespace, label_selector=self.label_selector,
                        field_selector=self.field_selector)
                    first_rv = ""
                else:
                    raise
            md = objects.metadata_of(page)
            # Pages may be read at different revisions here; watching from the first
            # page's revision replays anything a later page could have missed.
            first_rv = first_rv or str(md.get("resourceVersion") or "")
            for obj in page.get("items") or []:
                obj = self._with_type(obj)
                items[object_key(obj)] = obj
            continue_ = md.get("continue") or None
            if not continue_:
                break
        self._replace(items)
        self.last_resource_version = first_rv
        self.relists += 1
        if not self._synced.is_set():
            self._synced.set()
            log.debug("%s: synced %d objects at %s", self.resource.plural, len(items), first_rv)

    def _with_type(self, obj: Obj) -> Obj:
        # List items carry no kind/apiVersion; give them back so handlers see whole objects.
        if "kind" not in obj:
            obj = {"apiVersion": self.resource.api_version, "kind": self.resource.kind, **obj}
        return obj

    def _replace(self, items: dict[str, Obj]) -> None:
        """Make the cache equal items, telling handlers what changed."""
        for key in self.cache.keys():
            if key not in items:
                old = self.cache.remove(key)
                assert old is not None
                self._emit_delete(old)
        for obj in items.values():
            old = self.cache.put(obj)
            if old is None:
                self._emit_add(obj)
            elif objects.resource_version(old) != objects.resource_version(obj):
                self._emit_update(old, obj)

    async def _watch_once(self) -> None:
        # A random server timeout in [min, 2*min], as client-go's, so a fleet of watchers
        # does not reconnect at once.
        timeout = random.randint(self._min_watch_timeout, 2 * self._min_watch_timeout)
        got_event = False
        loop = asyncio.get_running_loop()
        started = loop.time()
        stream = self.client.watch(
            self.resource, self.namespace, resource_version=self.last_resource_version,
            label_selector=self.label_selector, field_selector=self.field_selector,
            timeout_seconds=timeout, allow_bookmarks=True)
        async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
            async for event_type, obj in events:
                got_event = True
                self._backoff.reset()
                self._apply(event_type, obj)
        if not got_event and loop.time() - started < 1.0:
            # A watch that ends at once and says nothing: do not spin on it.
            await asyncio.sleep(self._backoff.next_delay())

    def _apply(self, event_type: str, obj: Obj) -> None:
        rv = objects.resource_version(obj)
        if event_type == "BOOKMARK":
            if rv:
                self.last_resource_version = rv
            return
        obj = self._with_type(obj)
        key = object_key(obj)
        if event_type in ("ADDED", "MODIFIED"):
            old = self.cache.get_by_key(key)
            if old is not None and _not_newer(obj, old):
                pass  # a replay of history the cache has already moved past
            else:
                self.cache.put(obj)
                if old is None:
                    self._emit_add(obj)
                else:
                    self._emit_update(old, obj)
        elif event_type == "DELETED":
            old = self.cache.get_by_key(key)
            if old is not None and not _not_newer(obj, old):
                self.cache.remove(key)
                self._emit_delete(obj)
        else:
            log.warning("%s: unknown watch event type %r", self.resource.plural, event_type)
        if rv:
            self.last_resource_version = rv

    async def _resync_loop(self, period: float) -> None:
        """client-go's resync: every period, on_update(obj, obj) for each cached object."""
        await self._synced.wait()
        while True:
            await asyncio.sleep(period)
            for obj in self.cache.list():
                self._emit_update(obj, obj)

    # --------------------------------------------------------------- handlers
    def _emit_add(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _emit_update(self, old: Obj, new: Obj) -> None:
        for h in list(self._handlers):
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _emit_delete(self, obj: Obj) -> None:
        for h in list(self._handlers):
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    def _call(self, handler: Callable[..., None], *args: Obj) -> None:
        try:
            handler(*args)
        except Exception:  # one broken handler must not stop the informer or the others
            log.exception("%s: event handler %r failed", self.resource.plural, handler)
