"""The in-memory driver: the same contract as SQLite, nothing on disk (tests, throwaway clusters).

Objects are kept as encoded JSON text, as the SQLite driver keeps them, so
every read hands out fresh dicts and a caller mutating its input after a write
cannot change what was stored.
"""
from __future__ import annotations

import bisect
import heapq
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from svcnet.api.jsoncodec import building_many
from svcnet.storage.base import (
    EncodedListResult,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    ListResult,
    Obj,
    Predicate,
    Record,
    RevisionConflict,
    StorageError,
    Watch,
    WatchCallback,
)
from svcnet.storage.mvcc import (
    Change,
    WatchHub,
    decode_json,
    encode_stamped,
    prefix_upper_bound,
    read_revision,
    restamp_text,
    take_page,
)


@dataclass(frozen=True)
class _Current:
    text: str  # stamped with revision
    revision: int
    create_revision: int


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._hub = WatchHub(self._lock)
        self._current: dict[str, _Current] = {}
        self._sorted_keys: list[str] = []
        self._history: list[Change] = []  # revision order, oldest kept first
        self._revision = 0
        self._compacted = 0
        self._closed = False

    def current_revision(self) -> int:
        with self._lock:
            return self._revision

    def compacted_revision(self) -> int:
        with self._lock:
            return self._compacted

    def get(self, key: str) -> Record | None:
        with self._lock:
            self._check_open()
            current = self._current.get(key)
            return _record(key, current) if current is not None else None

    def list(
        self,
        prefix: str,
        *,
        predicate: Predicate | None = None,
        limit: int = 0,
        start_after: str | None = None,
    ) -> ListResult:
        with self._lock, building_many():
            found, continue_key, remaining = self._scan(prefix, predicate, limit, start_after)
            records = [Record(key, value if value is not None else decode_json(current.text),
                              current.revision, current.create_revision) for key, current, value in found]
            return ListResult(records=records, revision=self._revision, continue_key=continue_key, remaining=remaining)

    def list_encoded(
        self,
        prefix: str,
        *,
        predicate: Predicate | None = None,
        limit: int = 0,
        start_after: str | None = None,
        revision: int | None = None,
    ) -> EncodedListResult:
        with self._lock, building_many():
            self._check_open()
            at = read_revision(revision, self._revision, self._compacted)
            if at != self._revision:
                return self._scan_at(prefix, predicate, limit, start_after, at)
            found, continue_key, remaining = self._scan(prefix, predicate, limit, start_after)
            return EncodedListResult([current.text for _, current, _ in found], at, continue_key, remaining,
                                     [current.revision for _, current, _ in found])

    def _scan_at(self, prefix: str, predicate: Predicate | None, limit: int, start_after: str | None,
                 revision: int) -> EncodedListResult:
        """A page as of an older revision: the keys not written since, merged with history's view of the rest.

        A key whose current value is at or below the revision had that value then. A key written
        after it had, then, the value its first later change replaced (that change's prev_text;
        none when the first later change created it). Compaction keeps every change above the
        compacted revision, so both are at hand for any revision read_revision lets through.
        """
        keys = self._sorted_keys
        if start_after is not None and start_after >= prefix:
            position = bisect.bisect_right(keys, start_after)
        else:
            start_after = None
            position = bisect.bisect_left(keys, prefix)
        first_later: dict[str, Change] = {}
        for change in self._history_after(revision):
            key = change.key
            if key not in first_later and key.startswith(prefix) and (start_after is None or key > start_after):
                first_later[key] = change
        changed = sorted((key, change.prev_text, change.prev_revision) for key, change in first_later.items()
                         if change.prev_text is not None)
        upper = prefix_upper_bound(prefix)
        end = len(keys) if upper is None else bisect.bisect_left(keys, upper, lo=position)
        current = self._current
        unchanged = ((key, value.text, value.revision) for key in keys[position:end]
                     if (value := current[key]).revision <= revision)
        candidates = heapq.merge(unchanged, changed)
        found, continue_key = take_page(candidates, predicate, limit)
        remaining = 1 + sum(1 for _ in candidates) if continue_key is not None and predicate is None else 0
        return EncodedListResult([text for _, text, _ in found], revision, continue_key, remaining,
                                 [mod_revision for _, _, mod_revision in found])

    def _scan(self, prefix: str, predicate: Predicate | None, limit: int, start_after: str | None,
              ) -> tuple[list[tuple[str, _Current, Obj | None]], str | None, int]:
        """The page's (key, current, value decoded for the predicate or None), continue key, remaining."""
        self._check_open()
        keys = self._sorted_keys
        if start_after is not None and start_after >= prefix:
            position = bisect.bisect_right(keys, start_after)
        else:
            position = bisect.bisect_left(keys, prefix)
        found: list[tuple[str, _Current, Obj | None]] = []
        for index in range(position, len(keys)):
            key = keys[index]
            if not key.startswith(prefix):
                break
            current = self._current[key]
            value = None
            if predicate is not None:
                value = decode_json(current.text)
                if not predicate(value):
                    continue
            if limit and len(found) == limit:
                remaining = _count_prefix(keys, index, prefix) if predicate is None else 0
                return found, found[-1][0], remaining
            found.append((key, current, value))
        return found, None, 0

    def create(self, key: str, value: Obj) -> Record:
        with self._lock:
            self._check_open()
            if key in self._current:
                raise KeyExists(key)
            revision = self._revision + 1
            current = _Current(encode_stamped(value, revision), revision, revision)
            self._commit(key, current, Change(revision, key, "ADDED", current.text))
            bisect.insort(self._sorted_keys, key)
            self._hub.publish(self._history[-1])
            return _record(key, current)

    def update(self, key: str, value: Obj, *, expected_revision: int | None = None) -> Record:
        with self._lock:
            self._check_open()
            previous = self._existing(key, expected_revision)
            revision = self._revision + 1
            current = _Current(encode_stamped(value, revision), revision, previous.create_revision)
            self._commit(key, current, Change(revision, key, "MODIFIED", current.text, previous.text,
                                              previous.revision))
            self._hub.publish(self._history[-1])
            return _record(key, current)

    def delete(self, key: str, *, expected_revision: int | None = None) -> Record:
        with self._lock:
            self._check_open()
            previous = self._existing(key, expected_revision)
            revision = self._revision + 1
            tombstone = _Current(restamp_text(previous.text, revision), revision, previous.create_revision)
            self._commit(key, None, Change(revision, key, "DELETED", tombstone.text, previous.text,
                                           previous.revision))
            del self._sorted_keys[bisect.bisect_left(self._sorted_keys, key)]
            self._hub.publish(self._history[-1])
            return _record(key, tombstone)

    def watch(
        self,
        prefix: str,
        since_revision: int,
        callback: WatchCallback,
        *,
        predicate: Predicate | None = None,
    ) -> Watch:
        with self._lock:
            self._check_open()
            return self._hub.subscribe(
                prefix,
                since_revision,
                callback,
                predicate,
                current_revision=self._revision,
                compacted_revision=self._compacted,
                # A copy: a callback writing during the replay must not grow the list being read.
                history=list(self._history_after(since_revision)),
            )

    def compact(self, revision: int) -> None:
        with self._lock:
            self._check_open()
            if revision > self._revision:
                raise FutureRevision(f"cannot compact at {revision}: current revision is {self._revision}")
            if revision <= self._compacted:
                return
            # Keep the change at the compaction revision and after: a watch from there replays them.
            cut = bisect.bisect_left(self._history, revision, key=lambda change: change.revision)
            del self._history[:cut]
            self._compacted = revision

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._hub.close()

    def _existing(self, key: str, expected_revision: int | None) -> _Current:
        current = self._current.get(key)
        if current is None:
            raise KeyNotFound(key)
        if expected_revision is not None and expected_revision != current.revision:
            raise RevisionConflict(key, expected_revision, current.revision)
        return current

    def _commit(self, key: str, current: _Current | None, change: Change) -> None:
        if current is None:
            del self._current[key]
        else:
            self._current[key] = current
        self._history.append(change)
        self._revision = change.revision

    def _history_after(self, since_revision: int) -> Iterator[Change]:
        if not since_revision:
            return iter(())
        start = bisect.bisect_right(self._history, since_revision, key=lambda change: change.revision)
        return iter(self._history[start:])

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed")


def _record(key: str, current: _Current) -> Record:
    return Record(key=key, value=decode_json(current.text), revision=current.revision, create_revision=current.create_revision)


def _count_prefix(keys: list[str], start: int, prefix: str) -> int:
    """How many keys from index start on begin with prefix (keys are sorted, so they are contiguous)."""
    upper = prefix_upper_bound(prefix)
    end = len(keys) if upper is None else bisect.bisect_left(keys, upper, lo=start)
    return end - start
