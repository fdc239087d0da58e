"""Watch streams: one chunked response per watch, fed by a store watch through a queue.

A watch starts with the matching objects as ADDED (resourceVersion "" or "0") or from a
revision, then streams events until its timeout, the client leaving, or the server
shutting down; bookmarks keep an idle client's revision fresh.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from svcnet.api import errors, jsoncodec, objects
from svcnet.api.errors import ApiError
from svcnet.api.resources import Resource
from svcnet.apiserver import http, params
from svcnet.apiserver import printers as tables
from svcnet.apiserver.responses import PARTIAL_OBJECT_KINDS, as_served, partial_metadata
from svcnet.storage.base import Compacted, Event, FutureRevision, Store

# The watch cache's blockTimeout (apiserver cacher/watch_cache.go): how long a watch from a revision not
# reached yet waits for it before the 504. Checked every FUTURE_REVISION_POLL seconds meanwhile.
FUTURE_REVISION_WAIT = 3.0
FUTURE_REVISION_POLL = 0.05

MAX_WATCH_BACKLOG = 10_000


@dataclass(frozen=True)
class WatchRequest:
    prefix: str
    predicate: Callable[[dict[str, Any]], bool] | None
    timeout: int
    bookmarks: bool
    send_initial: bool
    resource_version: int | None  # None: "", "0" or absent, start with the current objects

    @staticmethod
    def of(request: web.Request, rp: http.ResourcePath, default_timeout: int) -> WatchRequest:
        predicate = params.predicate(request, rp.resource)
        if rp.name is not None:
            base = predicate

            def predicate(obj: dict[str, Any], _name=rp.name, _base=base) -> bool:  # noqa: E731
                return objects.name_of(obj) == _name and (_base is None or _base(obj))

        return WatchRequest(rp.resource.storage_prefix(rp.namespace), predicate,
                            params.int_param(request, "timeoutSeconds", default_timeout),
                            request.query.get("allowWatchBookmarks") in ("true", "1"),
                            request.query.get("sendInitialEvents") in ("true", "1"),
                            params.resource_version_param(request))


class Watches:
    """The open watch streams of one server."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime], default_timeout: int,
                 bookmark_interval: float) -> None:
        self.store = store
        self.clock = clock
        self.default_timeout = default_timeout
        self.bookmark_interval = bookmark_interval
        self.count = 0
        self._queues: set[asyncio.Queue] = set()
        self._closing = False

    def close_all(self) -> None:
        """End every open watch stream (shutdown): clients re-watch from their last revision.

        From now on new watches are refused, or clients that re-watch at once would keep
        the server's shutdown waiting on fresh streams.
        """
        self._closing = True
        for queue in list(self._queues):
            queue.put_nowait(None)

    async def serve(self, request: web.Request, rp: http.ResourcePath,
                    fmt: http.ResponseFormat) -> web.StreamResponse:
        if self._closing:
            # As kube-apiserver with --shutdown-send-retry-after: 429 and Retry-After, which clients
            # (client-go's reflector) retry without re-listing.
            raise ApiError(429, "TooManyRequests", "The apiserver is shutting down, please try again later.",
                           retry_after=1)
        wr = WatchRequest.of(request, rp, self.default_timeout)
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        initial, since = self._initial(wr)
        await self._wait_for_revision(since)
        response = web.StreamResponse(status=200, headers={
            "Content-Type": fmt.content_type, "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            # The store applies the selector as the watch cache does: objects that start
            # matching arrive as ADDED, ones that stop matching as DELETED.
            watch = self.store.watch(wr.prefix, since, _enqueue(queue), predicate=wr.predicate)
        except Compacted as exc:
            status = errors.gone(f"too old resource version: {since} ({exc.compacted})").status()
            await response.write(jsoncodec.dumps({"type": "ERROR", "object": status}) + b"\n")
            return response
        except FutureRevision:  # the store went back (restored from a copy) after the check above
            status = params.too_large_resource_version(since, self.store.current_revision(), 1).status()
            await response.write(jsoncodec.dumps({"type": "ERROR", "object": status}) + b"\n")
            return response
        # The store ended the watch (etcd compacted the history it followed): the stream ends, as
        # kube-apiserver's cacher ends its watchers when its own etcd watch breaks; the client
        # watches again from its last revision, or lists again on the 410 a compacted one gets.
        watch.on_end(_enqueue(queue, end=True))
        self.count += 1
        self._queues.add(queue)
        encoder = WatchEncoder(rp.resource, fmt, self.clock, request.query.get("includeObject", "Metadata"))
        try:
            for obj in initial:
                await response.write(encoder.line("ADDED", obj))
            if wr.send_initial and wr.bookmarks:
                await response.write(encoder.bookmark(since, initial_events_end=True))
            await self._stream(response, queue, encoder, wr, since)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watch.cancel()
            self.count -= 1
            self._queues.discard(queue)
        return response

    async def _wait_for_revision(self, since: int) -> None:
        """A watch from a revision the store has not reached: wait for it as the watch cache does (up to
        FUTURE_REVISION_WAIT), then answer 504 "Too large resource version" before any stream starts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FUTURE_REVISION_WAIT
        while (current := self.store.current_revision()) < since:
            if loop.time() >= deadline:
                raise params.too_large_resource_version(since, current, retry_after=1)
            await asyncio.sleep(FUTURE_REVISION_POLL)

    def _initial(self, wr: WatchRequest) -> tuple[list[dict[str, Any]], int]:
        """The objects to send first, and the revision to watch from."""
        if wr.resource_version is None:
            page = self.store.list(wr.prefix, predicate=wr.predicate)
            return [r.value for r in page.records], page.revision
        return [], wr.resource_version

    async def _stream(self, response: web.StreamResponse, queue: asyncio.Queue[Event | None],
                      encoder: WatchEncoder, wr: WatchRequest, since: int) -> None:
        """Events until the timeout or a None (shutdown, or a watcher too far behind)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wr.timeout
        last_revision = since
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(remaining, self.bookmark_interval) if wr.bookmarks else remaining
            try:
                async with asyncio.timeout(wait):  # not wait_for: 3.11's can swallow a cancel
                    event = await queue.get()
            except TimeoutError:
                if wr.bookmarks and loop.time() < deadline and queue.empty():
                    last_revision = max(last_revision, self.store.current_revision())
                    await response.write(encoder.bookmark(last_revision))
                continue
            if event is None:
                break
            last_revision = event.revision
            await response.write(encoder.event_line(event))


def _enqueue(queue: asyncio.Queue[Event | None], *, end: bool = False) -> Callable[..., None]:
    """The store's event callback, from any thread: a None once the queue overflows. With end: a
    callback that ends the stream (a None), for Watch.on_end.

    Every event reaches the queue through the loop's callback queue, also when the store
    publishes on the loop thread itself: a write committed on a write thread (steps.py)
    schedules its events there, and a later write committed on the loop must queue behind
    them, not put its events first (a watch sees revisions in order).
    """
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    overflow = False

    def on_event(event: Event | None = None) -> None:
        nonlocal overflow
        if overflow:
            return
        if end or queue.qsize() >= MAX_WATCH_BACKLOG:
            overflow = True  # a watcher this far behind must re-list, as upstream closes it
            item = None
        else:
            item = event
        if threading.get_ident() == loop_thread:
            loop.call_soon(queue.put_nowait, item)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, item)

    return on_event


class WatchEncoder:
    def __init__(self, res: Resource, fmt: http.ResponseFormat, now: Callable[[], dt.datetime],
                 include_object: str = "Metadata"):
        self.res = res
        self.include_object = include_object
        self.fmt = fmt
        self.now = now
        self.sent_header = False

    def event_line(self, event: Event) -> bytes:
        """A stored event's line. As plain JSON the stored text is spliced in as a list's items are
        (responses.list_bytes): the event is never decoded here, only the forms that need the
        object (Table, partial metadata) decode it."""
        if self.fmt.as_kind is None:
            return b"".join((b'{"type":"', event.type.encode(), b'","object":', as_served(event.value_text).encode(),
                             b"}\n"))
        return self.line(event.type, event.value)

    def line(self, event_type: str, obj: dict[str, Any]) -> bytes:
        if self.fmt.as_kind == "Table":
            # Columns ride on the first event only, as kube-apiserver streams tables.
            payload: Any = tables.to_table(self.res, [obj], include_object=self.include_object,
                                           now=self.now(), include_headers=not self.sent_header)
            self.sent_header = True
        elif self.fmt.as_kind in PARTIAL_OBJECT_KINDS:
            payload = partial_metadata(obj)
        else:
            payload = obj
        return jsoncodec.dumps({"type": event_type, "object": payload}) + b"\n"

    def bookmark(self, revision: int, initial_events_end: bool = False) -> bytes:
        md: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_events_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.res.kind, "apiVersion": self.res.api_version, "metadata": md}
        return jsoncodec.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"
