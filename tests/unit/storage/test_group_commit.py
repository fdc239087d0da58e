"""Group commit in the SQLite driver: concurrent writes share a transaction, each keeps its own outcome.

A batch is made deterministic by holding the store's lock from the test: the first writer becomes
leader and waits for the lock, the others queue behind it; releasing the lock lets the leader commit
alone and the next leader take every queued write in one transaction.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from svcnet.storage.base import Event, KeyExists, Record, RevisionConflict
from svcnet.storage.sqlite import SqliteStore
from tests.waiting import wait_for

from .recording import Recorder

PODS = "/registry/core/pods/default/"


def pod(name: str, n: int = 0) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name}, "spec": {"n": n}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "state.db"))
    yield opened
    opened.close()


class Writer(threading.Thread):
    """One caller's write on a thread of its own, keeping what it returned or raised."""

    def __init__(self, write: Callable[[], Record]) -> None:
        super().__init__(daemon=True)
        self.write = write
        self.record: Record | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.record = self.write()
        except BaseException as exc:  # handed to the test, which asserts on it
            self.error = exc


@contextmanager
def one_batch(store: SqliteStore, writes: list[Callable[[], Record]]) -> Iterator[list[Writer]]:
    """Queue writes behind a leader that cannot commit yet; on exit they commit as one batch."""
    group = store._group
    threads: list[Writer] = []
    store._lock.acquire()
    try:
        leader = Writer(lambda: store.create(PODS + "leader", pod("leader")))
        leader.start()
        wait_for(lambda: group.leader is not None and not group.queue, what="the first writer to lead")
        threads = [Writer(write) for write in writes]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(group.queue) == len(writes), what="every write queued behind the leader")
    finally:
        store._lock.release()
        for thread in [*threads, leader]:
            thread.join(timeout=30)
    assert leader.error is None and not leader.is_alive()
    assert not any(thread.is_alive() for thread in threads)
    yield threads


def test_a_lone_write_commits_at_once_in_its_own_transaction(store: SqliteStore) -> None:
    # No other writer exists: returning at all shows the write waited for no batch to fill.
    record = store.create(PODS + "a", pod("a"))
    assert record.revision == 1
    assert store.group_commit_stats() == (1, 1)
    assert store.get(PODS + "a") is not None


def test_writes_queued_during_a_commit_share_one_transaction(store: SqliteStore) -> None:
    names = [f"p{n}" for n in range(6)]
    with one_batch(store, [lambda name=name: store.create(PODS + name, pod(name)) for name in names]) as writers:
        pass
    # The leader's own transaction, then one for all six queued writes.
    assert store.group_commit_stats() == (2, 7)
    revisions = sorted(writer.record.revision for writer in writers if writer.record is not None)
    assert revisions == [2, 3, 4, 5, 6, 7]
    for writer in writers:
        assert writer.error is None
        assert writer.record is not None
        stored = store.get(writer.record.key)
        assert stored is not None and stored.revision == writer.record.revision


def test_a_failing_write_fails_only_itself_and_the_rest_of_its_batch_commits(store: SqliteStore) -> None:
    store.create(PODS + "taken", pod("taken"))
    store.create(PODS + "versioned", pod("versioned"))
    writes: list[Callable[[], Record]] = [
        lambda: store.create(PODS + "x", pod("x")),
        lambda: store.create(PODS + "taken", pod("taken", 1)),
        lambda: store.update(PODS + "versioned", pod("versioned", 1), expected_revision=1),
        lambda: store.create(PODS + "y", pod("y")),
        lambda: store.create(PODS + "bad", {"metadata": {"name": "bad"}, "spec": {"n": object()}}),
    ]
    with one_batch(store, writes) as (x, taken, versioned, y, bad):
        pass
    assert isinstance(taken.error, KeyExists)
    assert isinstance(versioned.error, RevisionConflict)
    assert isinstance(bad.error, TypeError)
    assert x.error is None and y.error is None
    # Two writes before, the leader's, then x and y together: failed writes take no revision.
    assert store.group_commit_stats() == (4, 5)
    assert sorted(w.record.revision for w in (x, y) if w.record is not None) == [4, 5]
    assert store.get(PODS + "taken").value["spec"]["n"] == 0  # type: ignore[union-attr]
    assert store.get(PODS + "versioned").revision == 2  # type: ignore[union-attr]
    assert store.get(PODS + "bad") is None
    assert store.current_revision() == 5


def test_an_sqlite_failure_in_a_batch_is_retried_write_by_write(store: SqliteStore, monkeypatch) -> None:
    store.create(PODS + "a", pod("a"))
    original = store._transaction
    failed: list[int] = []

    def fail_batches(batch):
        if len(batch) > 1:
            failed.append(len(batch))
            raise sqlite3.OperationalError("disk I/O error")
        return original(batch)

    monkeypatch.setattr(store, "_transaction", fail_batches)
    writes: list[Callable[[], Record]] = [
        lambda: store.create(PODS + "b", pod("b")),
        lambda: store.create(PODS + "a", pod("a", 1)),
        lambda: store.create(PODS + "c", pod("c")),
    ]
    with one_batch(store, writes) as (b, a, c):
        pass
    assert failed == [3]
    assert b.error is None and c.error is None
    assert isinstance(a.error, KeyExists)
    assert {store.get(PODS + name) is not None for name in ("b", "c")} == {True}


def test_concurrent_writers_get_strictly_increasing_revisions_and_per_key_watch_order(
    store: SqliteStore, recorder: Recorder
) -> None:
    store.watch(PODS, 0, recorder)
    acked: dict[str, list[int]] = {}
    rounds = 25

    def writer(index: int) -> None:  # returns None: Writer keeps only what it raised
        key = PODS + f"w{index}"
        mine = [store.create(key, pod(f"w{index}")).revision]
        for n in range(1, rounds):
            mine.append(store.update(key, pod(f"w{index}", n)).revision)
            store.update(PODS + "shared", pod("shared", index))
        acked[key] = mine

    store.create(PODS + "shared", pod("shared"))
    threads = [Writer(lambda index=index: writer(index)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert [thread.error for thread in threads] == [None] * 8
    assert len(acked) == 8

    revisions = [event.revision for event in recorder.events]
    assert revisions == list(range(1, store.current_revision() + 1))  # increasing, no gap, no repeat
    for key, mine in acked.items():
        assert mine == sorted(mine) and len(set(mine)) == rounds
        seen = [event for event in recorder.events if event.key == key]
        assert [event.revision for event in seen] == mine
        assert [event.value["spec"]["n"] for event in seen] == list(range(rounds))
    _, writes = store.group_commit_stats()
    assert writes == store.current_revision()


def test_a_watch_callback_may_write_while_its_batch_is_delivered(store: SqliteStore, recorder: Recorder) -> None:
    def echo(event: Event) -> None:
        if event.type == "ADDED" and not event.key.endswith("-echo"):
            store.create(event.key + "-echo", pod("echo"))

    store.watch(PODS, 0, echo)
    store.watch(PODS, 0, recorder)
    with one_batch(store, [lambda: store.create(PODS + "a", pod("a")),
                           lambda: store.create(PODS + "b", pod("b"))]):
        pass
    keys = [event.key for event in recorder.events]
    assert sorted(keys) == sorted(PODS + name for name in ("leader", "leader-echo", "a", "a-echo", "b", "b-echo"))
    assert [event.revision for event in recorder.events] == list(range(1, 7))
