"""The SQLite driver: one file, every acknowledged write durable (WAL, synchronous=FULL).

Layout, like kine but smaller:
- log: the revision history, one row per write. A row's value is the object
  stamped with the row's revision (for DELETED: the last object stamped with
  the delete revision); prev_revision points at the key's previous row, which
  gives a MODIFIED event its prev_value on replay.
- current: key -> the log row holding its live value, so a list reads only
  live keys however long the history grows.
- meta: the compacted revision, and the revision as of the last compaction
  (belt and braces: revisions must never go backwards or be reused).

One process owns the file (a lock file beside it says so), so the revision
counter lives in memory and one connection under one lock does everything.

Group commit: writes from concurrent threads share transactions (one fsync for
many). A writer queues its write; if no commit is in flight it leads at once
(a lone write never waits for a timer) and commits everything queued, up to
batch_limit writes, in one transaction; writes that arrive while that commit's
fsync runs queue up and the next leader takes them together. Every caller
returns only after its batch committed and its watch events were delivered, so
an acknowledged write is as durable as before. See _GroupCommit.

Files are private as etcd's (files.py): the directory 0700 when created, the
database, -wal, -shm and lock files 0600 whatever the umask.

A full disk (files.py has the reserve) is etcd's NOSPACE alarm: the first write
that finds no space raises it; from then on creates and updates are refused
with NoSpace before they touch the disk, while reads, deletes and compaction
go on (a delete, a compaction or opening that finds no space releases a part
of the reserve and retries). The alarm clears by itself once the filesystem
has room for the whole reserve again. While checkpoints succeed the WAL stays
below half the reserve (wal_autocheckpoint and journal_size_limit), so the
released reserve has room to checkpoint it.
"""
from __future__ import annotations

import contextlib
import fcntl
import heapq
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TypeVar

from svcnet.api.jsoncodec import building_many
from svcnet.storage.base import (
    EncodedListResult,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    ListResult,
    NoSpace,
    Obj,
    Predicate,
    Record,
    RevisionConflict,
    StorageError,
    Watch,
    WatchCallback,
)
from svcnet.storage.files import (
    PRIVATE_FILE_MODE,
    SpaceReserve,
    free_bytes,
    private_dir,
    private_file,
    reserve_size,
    tighten,
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

log = logging.getLogger("svcnet.storage")

T = TypeVar("T")

_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_MAX_INT = 2**63 - 1
_PAGE_SIZE = 4096  # SQLite's default page size, which the store keeps
_WAL_DEFAULT_PAGES = 1000  # SQLite's default wal_autocheckpoint

# The most writes one transaction commits. etcd's backend commits its bolt batch transaction at
# defaultBatchLimit = 10000 writes or every defaultBatchInterval = 100 ms (server/storage/backend/
# backend.go); that commit is not on the acknowledgement path: durability comes from raft's WAL,
# fsynced once per Ready for every entry proposed meanwhile (server/etcdserver/raft.go, raftNode.start:
# r.storage.Save(rd.HardState, rd.Entries)). That WAL save is svcnet's analogue: SQLite's commit is the
# acknowledgement, so there is no interval (commit as soon as the previous commit is done, as the next
# Ready is handled), and the limit bounds how long a batch's last write waits for the others' work.
# With N writers a batch settles near N/2, so 64 groups up to ~128 writers fully; bench/bench_storage.py
# measured the trade-off (docs/benchmarks.md, "Group commit").
DEFAULT_BATCH_LIMIT = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    prev_revision INTEGER,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS current (
    key TEXT PRIMARY KEY,
    mod_revision INTEGER NOT NULL,
    create_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Durability and speed settings; the benchmark applies the same ones to its raw baseline.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-16384",
)

_CURRENT_COLUMNS = "c.key, c.mod_revision, c.create_revision, l.value"
_CURRENT_JOIN = "current c JOIN log l ON l.revision = c.mod_revision"

# Superseded history below a compaction point: every row but the newest of its key, and tombstones.
# The newest surviving row of each key stays: current points at it, and it is the
# prev_value of the key's next write, which a replay from the compaction point may need.
_COMPACT = """
DELETE FROM log WHERE revision IN (
    SELECT revision FROM (
        SELECT revision, type,
               row_number() OVER (PARTITION BY key ORDER BY revision DESC) AS newer_rows
        FROM log WHERE revision < ?
    ) WHERE newer_rows > 1 OR type = 'DELETED'
)
"""


class SqliteStore:
    def __init__(self, path: str, *, batch_limit: int = DEFAULT_BATCH_LIMIT) -> None:
        if batch_limit < 1:
            raise ValueError(f"batch_limit must be at least 1, not {batch_limit}")
        self.path = os.path.abspath(path)
        self._directory = os.path.dirname(self.path)
        private_dir(self._directory)
        self._lock = threading.RLock()
        self._group = _GroupCommit(batch_limit)
        self._delivering = threading.local()  # depth: this thread is inside watch callbacks
        self._hub = WatchHub(self._lock)
        self._owner = _claim(self.path + ".lock")
        self._reserve = SpaceReserve(self.path + ".reserve", reserve_size(self._directory))
        self._no_space = False
        try:
            # Opening may need space (the -shm index of a WAL left behind): the reserve is for this too.
            self._db = self._guarded(self._open, frees=True)
            self._reader = self._open_reader()
            self._compacted = self._meta("compacted")
            (newest_logged,) = self._db.execute("SELECT COALESCE(MAX(revision), 0) FROM log").fetchone()
            self._revision = max(newest_logged, self._meta("revision"))
        except BaseException:
            self._owner.close()
            raise
        if not self._has_room():
            self._raise_alarm("no room beside the space reserve")
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        private_file(self.path)  # before SQLite creates it with the umask's mode
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in PRAGMAS:
                db.execute(pragma)
            wal_bytes = self._reserve.size // 2
            db.execute(f"PRAGMA wal_autocheckpoint={max(1, min(_WAL_DEFAULT_PAGES, wal_bytes // _PAGE_SIZE))}")
            db.execute(f"PRAGMA journal_size_limit={wal_bytes}")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        for suffix in ("-wal", "-shm"):
            tighten(self.path + suffix)  # SQLite gives them the database's mode; make sure
        return db

    def _open_reader(self) -> sqlite3.Connection:
        """A second connection for get(): in WAL mode it reads the last commit without waiting for
        the writer's lock, which a commit holds through its fsync. Under a pod burst the API
        server's reads on its event loop (a pod before a status patch, the Node authorizer's
        checks) waited there for the commits of writes made on threads (py-spy, issue 13)."""
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=ON")
        self._read_lock = threading.Lock()
        return reader

    def space_alarm(self) -> bool:
        """True while writes that grow the store are refused for lack of space."""
        with self._lock:
            return self._no_space

    def current_revision(self) -> int:
        with self._lock:
            return self._revision

    def compacted_revision(self) -> int:
        with self._lock:
            return self._compacted

    def get(self, key: str) -> Record | None:
        # The reader sees every acknowledged write (a write is acknowledged after its commit) and
        # never waits for one in flight. get() reports no store revision, only the record's own,
        # so reading a commit not yet announced is harmless (lists, which report the store's
        # revision, read under the writer's lock).
        with self._read_lock:
            self._check_open()
            row = self._reader.execute(
                f"SELECT {_CURRENT_COLUMNS} FROM {_CURRENT_JOIN} WHERE c.key = ?", (key,)
            ).fetchone()
            return _record(row) if row is not None else None

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
            records = [Record(key, value if value is not None else decode_json(text), mod_revision, create_revision)
                       for (key, mod_revision, create_revision, text), value in found]
            return ListResult(records, self._revision, continue_key, remaining)

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
            return EncodedListResult([row[3] for row, _ in found], at, continue_key, remaining,
                                     [row[1] for row, _ in found])

    def _scan_at(self, prefix: str, predicate: Predicate | None, limit: int, start_after: str | None,
                 revision: int) -> EncodedListResult:
        """A page as of an older revision, from current and the log (no index beyond both primary keys).

        A key whose current row is at or below the revision had that value then. A key written
        after it (still live or deleted since) had, then, the row its first later write points
        at with prev_revision (none when that write created it). Only the log rows above the
        revision are read for those: a rowid range, as long as the writes since. Compaction keeps
        every key's newest row below the compacted revision and every row above it, so both rows
        exist for any revision read_revision lets through.
        """
        where, params = _key_range(prefix, start_after)
        log_where, log_params = _key_range(prefix, start_after, column="key")
        changed = self._db.execute(
            f"SELECT x.key, p.value, p.revision FROM (SELECT key, MIN(revision) AS first FROM log"
            f" WHERE revision > ? AND {log_where} GROUP BY key) f"
            f" JOIN log x ON x.revision = f.first JOIN log p ON p.revision = x.prev_revision ORDER BY x.key",
            [revision, *log_params],
        ).fetchall()
        sql = (f"SELECT c.key, l.value, c.mod_revision FROM {_CURRENT_JOIN} WHERE {where} AND c.mod_revision <= ?"
               f" ORDER BY c.key")
        if predicate is None and limit:
            # A page and one past it is all the merge can take from either side.
            cursor = self._db.execute(sql + " LIMIT ?", [*params, revision, _page_and_one(limit)])
        else:
            cursor = self._db.execute(sql, [*params, revision])
        try:
            found, continue_key = take_page(heapq.merge(_rows(cursor), changed), predicate, limit)
        finally:
            cursor.close()
        remaining = 0
        if continue_key is not None and predicate is None:
            (unchanged_after,) = self._db.execute(
                f"SELECT COUNT(*) FROM current c WHERE {where} AND c.key > ? AND c.mod_revision <= ?",
                [*params, continue_key, revision],
            ).fetchone()
            remaining = unchanged_after + sum(1 for key, _, _ in changed if key > continue_key)
        return EncodedListResult([text for _, text, _ in found], revision, continue_key, remaining,
                                 [mod_revision for _, _, mod_revision in found])

    def _scan(self, prefix: str, predicate: Predicate | None, limit: int, start_after: str | None,
              ) -> tuple[list[tuple[_Row, Obj | None]], str | None, int]:
        """The page's (row, value decoded for the predicate or None), continue key, remaining."""
        self._check_open()
        where, params = _key_range(prefix, start_after)
        sql = f"SELECT {_CURRENT_COLUMNS} FROM {_CURRENT_JOIN} WHERE {where} ORDER BY c.key"
        if predicate is None:
            return self._scan_all_match(sql, where, params, limit)
        return self._scan_filtered(sql, params, predicate, limit)

    def _scan_all_match(self, sql: str, where: str, params: list[str], limit: int,
                        ) -> tuple[list[tuple[_Row, Obj | None]], str | None, int]:
        if not limit:
            return [(row, None) for row in self._db.execute(sql, params).fetchall()], None, 0
        # One row past the page says whether another page exists without counting first.
        rows = self._db.execute(sql + " LIMIT ?", [*params, _page_and_one(limit)]).fetchall()
        if len(rows) <= limit:
            return [(row, None) for row in rows], None, 0
        last_key = rows[limit - 1][0]
        (remaining,) = self._db.execute(
            f"SELECT COUNT(*) FROM current c WHERE {where} AND c.key > ?", [*params, last_key]
        ).fetchone()
        return [(row, None) for row in rows[:limit]], last_key, remaining

    def _scan_filtered(self, sql: str, params: list[str], predicate: Predicate, limit: int,
                       ) -> tuple[list[tuple[_Row, Obj | None]], str | None, int]:
        found: list[tuple[_Row, Obj | None]] = []
        cursor = self._db.execute(sql, params)
        try:
            for row in _rows(cursor):
                value = decode_json(row[3])
                if not predicate(value):
                    continue
                if limit and len(found) == limit:
                    # Counting every further match would read the whole rest; as upstream, leave it unknown.
                    return found, found[-1][0][0], 0
                found.append((row, value))
        finally:
            cursor.close()
        return found, None, 0

    def create(self, key: str, value: Obj) -> Record:
        return self._write(_Write(lambda revision: self._stage_create(key, value, revision), grows=True))

    def update(self, key: str, value: Obj, *, expected_revision: int | None = None) -> Record:
        return self._write(_Write(lambda revision: self._stage_update(key, value, expected_revision, revision),
                                  grows=True))

    def delete(self, key: str, *, expected_revision: int | None = None) -> Record:
        return self._write(_Write(lambda revision: self._stage_delete(key, expected_revision, revision),
                                  grows=False))

    # The stage functions run inside the batch's open transaction. Each either raises its own error
    # (a StorageError, or the encoder's for a value JSON cannot hold) before it has changed anything
    # (a constraint failure undoes only its own statement), or changes current and returns what the
    # log gets.
    def _stage_create(self, key: str, value: Obj, revision: int) -> _Staged:
        text = encode_stamped(value, revision)
        try:
            self._db.execute(
                "INSERT INTO current (key, mod_revision, create_revision) VALUES (?, ?, ?)",
                (key, revision, revision),
            )
        except sqlite3.IntegrityError:
            raise KeyExists(key) from None
        return _Staged(Change(revision, key, "ADDED", text), None, revision)

    def _stage_update(self, key: str, value: Obj, expected_revision: int | None, revision: int) -> _Staged:
        previous_revision, create_revision, previous_text = self._existing(key, expected_revision)
        text = encode_stamped(value, revision)
        self._db.execute("UPDATE current SET mod_revision = ? WHERE key = ?", (revision, key))
        return _Staged(Change(revision, key, "MODIFIED", text, previous_text), previous_revision, create_revision)

    def _stage_delete(self, key: str, expected_revision: int | None, revision: int) -> _Staged:
        previous_revision, create_revision, previous_text = self._existing(key, expected_revision)
        text = restamp_text(previous_text, revision)
        self._db.execute("DELETE FROM current WHERE key = ?", (key,))
        return _Staged(Change(revision, key, "DELETED", text, previous_text), previous_revision, create_revision)

    # ---------------------------------------------------------- group commit
    def group_commit_stats(self) -> tuple[int, int]:
        """(transactions committed, writes acknowledged) since the store opened."""
        with self._group.changed:
            return self._group.transactions, self._group.writes

    def _write(self, write: _Write) -> Record:
        """Queue a write and return once its batch is durable and announced (or raise its own error)."""
        group = self._group
        if getattr(self._delivering, "depth", 0):
            # A watch callback writing while its thread delivers events (and holds the store's lock):
            # waiting for another leader, who needs that lock, would never end. Commit it alone, now.
            self._commit_and_deliver([write])
            return write.outcome()
        me = threading.get_ident()
        with group.changed:
            group.queue.append(write)
        while True:
            with group.changed:
                while not write.done and group.leader is not None:
                    group.changed.wait()
                if write.done:
                    return write.outcome()
                group.leader = me
                batch = group.queue[: group.batch_limit]
                del group.queue[: group.batch_limit]
            try:
                self._commit_and_deliver(batch)
            finally:
                with group.changed:
                    group.leader = None
                    group.changed.notify_all()

    @contextlib.contextmanager
    def _delivery(self) -> Iterator[None]:
        """Mark this thread as running watch callbacks, which may write (see _write)."""
        self._delivering.depth = getattr(self._delivering, "depth", 0) + 1
        try:
            yield
        finally:
            self._delivering.depth -= 1

    def _commit_and_deliver(self, batch: list[_Write]) -> None:
        """Commit batch as one transaction and deliver its events; every write gets its outcome."""
        try:
            with self._lock:
                self._check_open()
                changes = self._commit_batch(batch)
                with self._delivery():
                    self._hub.publish(*changes)
        except BaseException as exc:
            for write in batch:
                if not write.done:
                    write.error = exc
        with self._group.changed:
            for write in batch:
                write.done = True

    def _commit_batch(self, batch: list[_Write]) -> list[Change]:
        """One transaction for the batch; falls back to one per write when SQLite itself fails.

        A write's own StorageError (exists, not found, conflict, no space) fails only that write.
        An SQLite error (a full disk, an I/O error) rolls the whole transaction back; then each
        write is retried alone, so each caller gets the error its own write meets, or commits.
        """
        if len(batch) == 1:
            write = batch[0]
            return self._guarded(lambda: self._transaction(batch), frees=not write.grows)
        try:
            return self._transaction(batch)
        except sqlite3.Error:
            self._rollback()
        changes: list[Change] = []
        for write in batch:
            try:
                changes += self._guarded(lambda write=write: self._transaction([write]), frees=not write.grows)
            except BaseException as exc:
                write.error = exc
        return changes

    def _transaction(self, batch: list[_Write]) -> list[Change]:
        revision = self._revision
        staged: list[tuple[_Write, _Staged]] = []
        errors: list[tuple[_Write, Exception]] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for write in batch:
                try:
                    if write.grows:
                        self._admit_growth()
                    done = write.stage(revision + 1)
                except sqlite3.Error:
                    raise  # SQLite itself failed: the whole transaction goes
                except Exception as exc:  # raised before the write changed anything: its own error
                    errors.append((write, exc))
                    continue
                # Logged at once: a later write to the same key in this batch reads its value from there.
                self._db.execute(
                    "INSERT INTO log (revision, key, type, prev_revision, value) VALUES (?, ?, ?, ?, ?)",
                    (done.change.revision, done.change.key, done.change.type, done.prev_revision,
                     done.change.value_text),
                )
                staged.append((write, done))
                revision += 1
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._revision = revision
        for write, exc in errors:
            write.error = exc
        for write, s in staged:
            write.result = Record(s.change.key, decode_json(s.change.value_text), s.change.revision,
                                  s.create_revision)
        if staged:
            with self._group.changed:
                self._group.transactions += 1
                self._group.writes += len(staged)
        return [s.change for _, s in staged]

    def watch(
        self,
        prefix: str,
        since_revision: int,
        callback: WatchCallback,
        *,
        predicate: Predicate | None = None,
    ) -> Watch:
        with self._lock, self._delivery():  # the replay runs callbacks, which may write
            self._check_open()
            replay = since_revision and self._compacted <= since_revision <= self._revision
            return self._hub.subscribe(
                prefix,
                since_revision,
                callback,
                predicate,
                current_revision=self._revision,
                compacted_revision=self._compacted,
                history=self._history(prefix, since_revision) if replay else None,
            )

    def compact(self, revision: int) -> None:
        with self._lock:
            self._check_open()
            if revision > self._revision:
                raise FutureRevision(f"cannot compact at {revision}: current revision is {self._revision}")
            if revision <= self._compacted:
                return
            self._guarded(lambda: self._compact(revision), frees=True)

    def _compact(self, revision: int) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(_COMPACT, (revision,))
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                (("compacted", revision), ("revision", self._revision)),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._compacted = revision

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._hub.close()
            try:
                with self._read_lock:
                    self._reader.close()
                self._db.close()
            finally:
                self._owner.close()

    # ------------------------------------------------------------- full disk
    def _admit_growth(self) -> None:
        """Refuse a create or update while the alarm is on, unless the disk has room again."""
        if not self._no_space:
            return
        if not self._has_room():
            raise NoSpace()
        self._no_space = False
        log.warning("storage %s: space available again; writes resume", self.path)

    def _guarded(self, write: Callable[[], T], *, frees: bool) -> T:
        """Run write (one transaction, or opening); no space raises the alarm, then NoSpace.

        A write that frees (a delete, a compaction, opening) releases the reserve part by part,
        retrying after each, before it gives up.
        """
        while True:
            try:
                return write()
            except sqlite3.Error as exc:
                if not self._is_no_space(exc):
                    raise
                self._rollback()
                self._raise_alarm(str(exc))
                if not (frees and self._reserve.release()):
                    raise NoSpace() from exc

    def _is_no_space(self, exc: sqlite3.Error) -> bool:
        """SQLITE_FULL, or an I/O error while the filesystem has no free block (ENOSPC on the -shm)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return False
        if code & 0xFF == _SQLITE_FULL:
            return True
        return code & 0xFF == _SQLITE_IOERR and free_bytes(self._directory) < _PAGE_SIZE

    def _raise_alarm(self, why: str) -> None:
        if not self._no_space:
            log.error("storage %s: no space left (%s): creates and updates are refused; reads, deletes and "
                      "compaction go on", self.path, why)
        self._no_space = True

    def _has_room(self) -> bool:
        """The whole reserve is held (taken now if it must be) and as much again is free beside it."""
        size = self._reserve.size
        missing = size - self._reserve.held
        if missing > 0 and not (free_bytes(self._directory) >= missing + size and self._reserve.take()):
            return False
        return free_bytes(self._directory) >= size

    def _existing(self, key: str, expected_revision: int | None) -> tuple[int, int, str]:
        row = self._db.execute(
            f"SELECT c.mod_revision, c.create_revision, l.value FROM {_CURRENT_JOIN} WHERE c.key = ?", (key,)
        ).fetchone()
        if row is None:
            raise KeyNotFound(key)
        if expected_revision is not None and expected_revision != row[0]:
            raise RevisionConflict(key, expected_revision, row[0])
        return row

    def _history(self, prefix: str, since_revision: int) -> list[Change]:
        """Changes after since_revision under prefix, oldest first.

        Read whole before replaying: a callback may write, and that must not
        happen while this query's cursor is open.
        """
        sql = (
            "SELECT l.revision, l.key, l.type, l.value, l.prev_revision, p.value"
            " FROM log l LEFT JOIN log p ON p.revision = l.prev_revision AND l.type = 'MODIFIED'"
            " WHERE l.revision > ?"
        )
        params: list[object] = [since_revision]
        if prefix:
            sql += " AND l.key >= ?"
            params.append(prefix)
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                sql += " AND l.key < ?"
                params.append(upper)
        changes = []
        for revision, key, type_, value_text, prev_revision, prev_text in self._db.execute(
            sql + " ORDER BY l.revision", params
        ):
            if type_ == "DELETED":
                # The tombstone holds the last object; before the delete it carried its own revision.
                prev_text = restamp_text(value_text, prev_revision)
            changes.append(Change(revision, key, type_, value_text, prev_text))
        return changes

    def _meta(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row is not None else 0

    def _rollback(self) -> None:
        db = getattr(self, "_db", None)  # None while opening
        if db is not None and db.in_transaction:
            db.execute("ROLLBACK")

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("store is closed")


_Row = tuple[str, int, int, str]  # key, mod_revision, create_revision, text


def _record(row: _Row) -> Record:
    key, mod_revision, create_revision, text = row
    return Record(key=key, value=decode_json(text), revision=mod_revision, create_revision=create_revision)


def _page_and_one(limit: int) -> int:
    """A page's rows and one past it, as an SQL LIMIT: the API lets limit reach 2**63-1, SQLite's
    largest integer, where one more would not bind (no table holds that many rows anyway)."""
    return min(limit, _SQLITE_MAX_INT - 1) + 1


def _rows(cursor: sqlite3.Cursor) -> Iterator[_Row]:
    while batch := cursor.fetchmany(256):
        yield from batch


def _key_range(prefix: str, start_after: str | None, column: str = "c.key") -> tuple[str, list[str]]:
    """A WHERE clause on column (a key) for keys under prefix, after start_after when given."""
    clauses = ["1"]
    params: list[str] = []
    if start_after is not None and start_after >= prefix:
        clauses.append(f"{column} > ?")
        params.append(start_after)
    elif prefix:
        clauses.append(f"{column} >= ?")
        params.append(prefix)
    upper = prefix_upper_bound(prefix)
    if upper is not None:
        clauses.append(f"{column} < ?")
        params.append(upper)
    return " AND ".join(clauses), params


def _claim(lock_path: str) -> IO[bytes]:
    """Hold an exclusive lock on lock_path while the store is open: two writers would reuse revisions.

    flock, on a file of its own: closing another descriptor of the database
    file would drop SQLite's own POSIX locks on it.
    """
    handle = os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE), "r+b")
    try:
        os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StorageError(f"{lock_path}: the store is open in another process") from None
    return handle


@dataclass(frozen=True)
class _Staged:
    change: Change
    prev_revision: int | None
    create_revision: int


@dataclass(eq=False)
class _Write:
    """One caller's write waiting in (or committed by) a batch."""

    stage: Callable[[int], _Staged]  # given its revision, changes current inside the open transaction
    grows: bool  # a create or update: refused while the space alarm is on; a delete frees
    done: bool = False
    result: Record | None = None
    error: BaseException | None = None

    def outcome(self) -> Record:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass(eq=False)
class _GroupCommit:
    """The classic group-commit leader/follower state, guarded by its condition.

    At most one leader commits at a time; followers wait on the condition until their write
    is done or no one leads, and then one of them leads the next batch.
    """

    batch_limit: int
    changed: threading.Condition = field(default_factory=threading.Condition)
    queue: list[_Write] = field(default_factory=list)
    leader: int | None = None  # the thread id of the leader
    transactions: int = 0
    writes: int = 0
