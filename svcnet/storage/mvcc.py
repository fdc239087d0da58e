"""What both drivers share: revision stamping, the change record, and the watch hub.

A driver commits a write, turns it into a Change (JSON text stamped with its
revision) and hands it to the WatchHub, which fans it out to the watches whose
prefix and predicate match. Replaying history goes through the same path, so a
replayed event and a live one look alike.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from svcnet.api import jsoncodec
from svcnet.storage.base import (
    Compacted,
    Event,
    EventType,
    FutureRevision,
    Obj,
    Predicate,
    WatchCallback,
)

log = logging.getLogger(__name__)

# Compact: the text is stored, so every byte counts in file size. The shared codec keeps the
# json module's values; a lone surrogate (legal in JSON input as \ud800) still comes out as an
# ASCII escape, so it cannot fail SQLite's UTF-8 binding. Lists and watch fan-out decode
# stored text once per object and watcher, so the codec's speed shows there.
encode_json = jsoncodec.dumps_text
decode_json = jsoncodec.loads


def stamp(value: Obj, revision: int) -> Obj:
    """A shallow copy of value whose metadata.resourceVersion is the revision.

    Only the top level and metadata are copied: the result is encoded at once,
    so sharing the rest with the caller's dict is safe.
    """
    metadata = value.get("metadata")
    stamped_metadata = dict(metadata) if isinstance(metadata, dict) else {}
    stamped_metadata["resourceVersion"] = str(revision)
    stamped = dict(value)
    stamped["metadata"] = stamped_metadata
    return stamped


def encode_stamped(value: Obj, revision: int) -> str:
    return encode_json(stamp(value, revision))


def restamp_text(text: str, revision: int) -> str:
    """The same object as text, carrying another resourceVersion."""
    return encode_stamped(decode_json(text), revision)


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with prefix (None: no bound)."""
    if not prefix:
        return None
    last = ord(prefix[-1])
    if last == 0x10FFFF:
        return prefix_upper_bound(prefix[:-1])
    return prefix[:-1] + chr(last + 1)


def read_revision(requested: int | None, current: int, compacted: int) -> int:
    """The revision a list reads at: the current one when none is asked for.

    As etcd's range at a revision (server/storage/mvcc/kvstore_txn.go, rangeKeys): a revision
    below the compacted one is gone (Compacted; reading at the compacted revision itself still
    works, compaction keeps every key's value as of then), and one past the current revision
    has not happened yet (FutureRevision).
    """
    if requested is None:
        return current
    if requested > current:
        raise FutureRevision(f"revision {requested} is newer than the current {current}")
    if requested < compacted:
        raise Compacted(requested, compacted)
    return requested


def take_page(candidates: Iterator[tuple[str, str, int]], predicate: Predicate | None, limit: int,
              ) -> tuple[list[tuple[str, str, int]], str | None]:
    """A page of (key, text, mod revision) from candidates in key order: the ones the predicate accepts,
    at most limit.

    The continue key is the page's last key when one more candidate was accepted after it
    (that candidate is consumed from the iterator), else None.
    """
    found: list[tuple[str, str, int]] = []
    for candidate in candidates:
        if predicate is not None and not predicate(decode_json(candidate[1])):
            continue
        if limit and len(found) == limit:
            return found, found[-1][0]
        found.append(candidate)
    return found, None


@dataclass(frozen=True)
class Change:
    """One committed write as history keeps it.

    value_text is stamped with revision (for DELETED: the last object, stamped
    with the delete revision); prev_text is the object before the write,
    stamped with its own revision, or None for ADDED.
    """

    revision: int
    key: str
    type: EventType
    value_text: str
    prev_text: str | None = None
    prev_revision: int | None = None  # prev_text's own revision, where the driver keeps it (memory)


class _DecodedChange:
    """Decodes a change at most once for every predicate that looks at it.

    Predicates only read; each delivered event still gets freshly decoded dicts
    because callbacks may mutate what they receive.
    """

    __slots__ = ("change", "_value", "_prev")

    def __init__(self, change: Change) -> None:
        self.change = change
        self._value: Obj | None = None
        self._prev: Obj | None = None

    def value(self) -> Obj:
        if self._value is None:
            self._value = decode_json(self.change.value_text)
        return self._value

    def prev(self) -> Obj | None:
        if self._prev is None and self.change.prev_text is not None:
            self._prev = decode_json(self.change.prev_text)
        return self._prev


def event_for(decoded: _DecodedChange, predicate: Predicate | None) -> Event | None:
    """The event a watcher with this predicate sees for a change, or None.

    As the Kubernetes watch cache does: an update that makes an object start
    matching is an ADDED, one that makes it stop matching is a DELETED carrying
    the old object stamped with the update's revision.
    """
    change = decoded.change
    prev_text = change.prev_text
    if predicate is None:
        return _event(change.type, change, change.value_text, prev_text)
    if change.type == "ADDED":
        return _event("ADDED", change, change.value_text, None) if predicate(decoded.value()) else None
    if change.type == "DELETED":
        return _event("DELETED", change, change.value_text, prev_text) if predicate(decoded.value()) else None
    prev = decoded.prev()
    current_matches = predicate(decoded.value())
    previous_matches = prev is not None and predicate(prev)
    if current_matches and previous_matches:
        return _event("MODIFIED", change, change.value_text, prev_text)
    if current_matches:
        return _event("ADDED", change, change.value_text, None)
    if previous_matches and prev_text is not None:
        # Stamped with this revision so a client resuming from it does not see the change twice.
        return _event("DELETED", change, restamp_text(prev_text, change.revision), prev_text)
    return None


def deliver(change: Change, callback: WatchCallback, predicate: Predicate | None) -> None:
    """Call one watcher with the event a change makes for it, as the hub would (a driver replaying
    history outside the hub: the etcd driver reads it from etcd without holding the hub's lock)."""
    try:
        event = event_for(_DecodedChange(change), predicate)
        if event is not None:
            callback(event)
    except Exception:
        log.exception("watch callback failed for %s at revision %d", change.key, change.revision)


def _event(type_: EventType, change: Change, value_text: str, prev_text: str | None) -> Event:
    return Event(type_, change.key, revision=change.revision, value_text=value_text, prev_text=prev_text)


@dataclass(eq=False)
class _Subscription:
    hub: WatchHub
    prefix: str
    callback: WatchCallback
    predicate: Predicate | None
    # Changes at or below this revision were replayed (or predate the watch): never deliver them again.
    delivered_through: int
    cancelled: bool = field(default=False)
    ended: bool = field(default=False)  # by the store (close, lost history), not by cancel()
    _on_end: list[Callable[[], None]] = field(default_factory=list)

    def cancel(self) -> None:
        self.hub.unsubscribe(self)

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call callback once if the store ends this watch (not on cancel()); at once if it has."""
        with self.hub._lock:
            if not self.cancelled:
                self._on_end.append(callback)
                return
        if self.ended:
            _call_quietly(callback)


class WatchHub:
    """In-memory fan-out of committed changes to watches, in revision order.

    Shares the driver's lock: a watch's replay and its subscription happen under
    the same lock writes take, so no change is missed or seen twice.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._subscriptions: list[_Subscription] = []
        self._pending: deque[Change] = deque()
        self._delivering = False

    def subscribe(
        self,
        prefix: str,
        since_revision: int,
        callback: WatchCallback,
        predicate: Predicate | None,
        *,
        current_revision: int,
        compacted_revision: int,
        history: Iterable[Change] | None,
    ) -> _Subscription:
        """Replay history after since_revision, then receive live changes.

        The caller holds the lock and passes the changes after since_revision
        already read whole (a callback may write during the replay), or None
        when there is nothing to replay.
        """
        if since_revision > current_revision:
            raise FutureRevision(f"revision {since_revision} is newer than the current {current_revision}")
        if since_revision and since_revision < compacted_revision:
            raise Compacted(since_revision, compacted_revision)
        subscription = _Subscription(self, prefix, callback, predicate, current_revision)
        if since_revision and history is not None:
            for change in history:
                if change.key.startswith(prefix):
                    _send(subscription, change, _DecodedChange(change))
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: _Subscription) -> None:
        with self._lock:
            subscription.cancelled = True
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def publish(self, *changes: Change) -> None:
        """Deliver committed changes (a batch: all of them, in revision order); the caller holds the lock.

        A callback that writes to the store publishes again from inside this
        loop: that change is queued behind the rest of the batch, so every
        watch still sees revision order.
        """
        self._pending.extend(changes)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._pending:
                pending = self._pending.popleft()
                decoded = _DecodedChange(pending)
                for subscription in list(self._subscriptions):
                    # The revision check skips a change queued by a callback's write that
                    # a watch opened later from a callback has already replayed.
                    if (
                        pending.key.startswith(subscription.prefix)
                        and pending.revision > subscription.delivered_through
                    ):
                        _send(subscription, pending, decoded)
        finally:
            self._delivering = False

    def close(self) -> None:
        """End every watch: each is cancelled and its on_end callbacks run (the store closed, or
        cannot go on delivering: etcd compacted the history it followed)."""
        with self._lock:
            ended = list(self._subscriptions)
            for subscription in ended:
                subscription.cancelled = subscription.ended = True
            self._subscriptions.clear()
            self._pending.clear()
            callbacks = [cb for subscription in ended for cb in subscription._on_end]
            for subscription in ended:
                subscription._on_end.clear()
        for callback in callbacks:
            _call_quietly(callback)


def _call_quietly(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("a watch's end callback failed")


def _send(subscription: _Subscription, change: Change, decoded: _DecodedChange) -> None:
    if subscription.cancelled:
        return
    try:
        event = event_for(decoded, subscription.predicate)
        if event is not None:
            subscription.callback(event)
    except Exception:
        # The write is already durable; one broken watcher must not fail it or starve the others.
        log.exception("watch callback failed for %s at revision %d", change.key, change.revision)
