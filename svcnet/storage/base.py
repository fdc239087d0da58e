"""The storage interface: versioned JSON objects under string keys.

Like etcd/kine: one global revision counter; every write bumps it and stamps
the written object with it (that number is the Kubernetes resourceVersion).
Watches start from a revision and replay history after it from the log, then
receive live events from memory. History older than the compacted revision is
gone; watching from there raises Compacted (the API answers 410 Gone).

All methods are synchronous and thread-safe; a write returns once it is
durable. Watch callbacks run right after the write is durable and before it
returns, in the thread that committed it (with the SQLite driver's group
commit that may be another writer's thread; with the etcd driver, the thread
that follows etcd's watch, while the writer waits), so a callback must be quick
(the API server hands events to an asyncio queue with call_soon_threadsafe).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from svcnet.api import jsoncodec
from svcnet.api.errors import ApiError

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class StorageError(Exception):
    pass


class KeyExists(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionConflict(StorageError):
    """An update or delete named a revision that is no longer the key's current one."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"conflict on {key}: expected revision {expected}, have {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class Compacted(StorageError):
    """The requested revision is older than the oldest kept in history."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest kept {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevision(StorageError):
    """A list or watch named a revision newer than the store has reached."""


class NoSpace(StorageError, ApiError):
    """A write refused because the storage device is full (etcd's NOSPACE alarm).

    While it is raised, only reads, deletes and compaction are served, as etcd
    does once its alarm is on (server/etcdserver/api/v3rpc/rpctypes: "etcdserver:
    mvcc: database space exceeded"). kube-apiserver passes that storage error
    through unchanged as a 500 Status with no reason (apiserver
    endpoints/handlers/responsewriters/status.go, convertStorageErrorOrNot), so
    this error is that Status too: the API answers it wherever it surfaces.
    """

    def __init__(self) -> None:
        ApiError.__init__(self, 500, "", "database space exceeded: the storage device is full; "
                                         "only reads and deletes are served until space is freed")


@dataclass(frozen=True)
class Record:
    """An object as stored: value is a fresh dict the caller may mutate."""

    key: str
    value: Obj
    revision: int  # mod revision: the revision of the last write to this key
    create_revision: int


class Event:
    """A watch event: `value` is the object (for DELETED: as it was last, stamped with the delete
    revision), `prev_value` for MODIFIED/DELETED the object before the write.

    The stores make events from the stored JSON text and decode it only when `value` or
    `prev_value` is first read, each event its own dicts (a callback may mutate them). An HTTP
    watch writes `value_text` as it is and never decodes: under a burst of pod writes, decoding
    every event's object and previous object for each of the dozen pod watchers, only to encode
    the object again, was a fifth of the API server's time (docs/benchmarks.md, issue 13).
    """

    __slots__ = ("type", "key", "revision", "_value", "_value_text", "_prev", "_prev_text")

    def __init__(self, type: EventType, key: str, value: Obj | None = None, revision: int = 0,
                 prev_value: Obj | None = None, *, value_text: str | None = None,
                 prev_text: str | None = None) -> None:
        if value is None and value_text is None:
            raise TypeError("an Event needs value or value_text")
        self.type = type
        self.key = key
        self.revision = revision
        self._value = value
        self._value_text = value_text
        self._prev = prev_value
        self._prev_text = prev_text

    @property
    def value(self) -> Obj:
        if self._value is None:
            self._value = jsoncodec.loads(self._value_text or "")
        return self._value

    @property
    def prev_value(self) -> Obj | None:
        if self._prev is None and self._prev_text is not None:
            self._prev = jsoncodec.loads(self._prev_text)
        return self._prev

    @property
    def value_text(self) -> str:
        """The object as stored JSON (encoded here if the event was made from a dict)."""
        if self._value_text is None:
            self._value_text = jsoncodec.dumps_text(self._value)
        return self._value_text

    def _fields(self) -> tuple[Any, ...]:
        return (self.type, self.key, self.value, self.revision, self.prev_value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable values, as the dataclass it replaced

    def __repr__(self) -> str:
        return (f"Event(type={self.type!r}, key={self.key!r}, value={self.value!r}, revision={self.revision!r}, "
                f"prev_value={self.prev_value!r})")


@dataclass(frozen=True)
class ListResult:
    records: list[Record]
    revision: int  # the store revision the list reflects
    continue_key: str | None  # pass as start_after to get the next page; None at the end
    remaining: int = 0  # how many more match after this page (0 when unknown or none)


@dataclass(frozen=True)
class EncodedListResult:
    """A list as the stored JSON text of each object: what a get would decode, not decoded here.

    The API server splices these texts into a list response instead of decoding and
    re-encoding every object (issue 13, "fast lists").
    """

    texts: list[str]
    revision: int
    continue_key: str | None
    remaining: int = 0
    # Each text's mod revision, in the same order: it names that version of that object for the
    # life of the store (every write takes a fresh revision), so a cache of anything derived from
    # a text can key on it (apiserver/printers/rows.py keeps Table rows so).
    revisions: list[int] = field(default_factory=list)


class Watch(Protocol):
    # True once cancelled, or once the store ended the watch: it closed, or (etcd) the history the
    # watch followed was compacted away. An ended watch delivers nothing more.
    cancelled: bool
    ended: bool  # cancelled by the store, not by cancel()

    def cancel(self) -> None: ...

    def on_end(self, callback: Callable[[], None]) -> None:
        """callback runs once when the store ends this watch (never for cancel()), from the store's
        thread: it must not block. Registered after the end, it runs at once."""
        ...


WatchCallback = Callable[[Event], None]


class Store(Protocol):
    def current_revision(self) -> int: ...

    def compacted_revision(self) -> int: ...

    def get(self, key: str) -> Record | None: ...

    def list(
        self,
        prefix: str,
        *,
        predicate: Predicate | None = None,
        limit: int = 0,
        start_after: str | None = None,
    ) -> ListResult: ...

    def list_encoded(
        self,
        prefix: str,
        *,
        predicate: Predicate | None = None,
        limit: int = 0,
        start_after: str | None = None,
        revision: int | None = None,
    ) -> EncodedListResult:
        """As list, but each object as its stored JSON text; only a predicate decodes objects.

        With a revision, the list is the keys and values as they were at that revision (etcd's
        range with WithRev, which kube-apiserver reads every page of a paged list at): the result
        carries that revision. A revision older than the compacted one raises Compacted; one newer
        than the current revision raises FutureRevision. Each text is the object as written then,
        stamped with its own mod revision (so a GET at the time would have served the same bytes).
        """
        ...

    def create(self, key: str, value: Obj) -> Record: ...

    def update(self, key: str, value: Obj, *, expected_revision: int | None = None) -> Record: ...

    def delete(self, key: str, *, expected_revision: int | None = None) -> Record: ...

    def watch(
        self,
        prefix: str,
        since_revision: int,
        callback: WatchCallback,
        *,
        predicate: Predicate | None = None,
    ) -> Watch: ...

    def compact(self, revision: int) -> None: ...

    def close(self) -> None: ...
