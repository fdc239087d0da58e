"""What only the SQLite driver promises: state survives close, reopen and kill -9."""
from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from svcnet.storage import sqlite as sqlite_driver
from svcnet.storage.base import Compacted, NoSpace, StorageError
from svcnet.storage.sqlite import SqliteStore

from .recording import Recorder

REPO_ROOT = Path(__file__).resolve().parents[3]
PODS = "/registry/core/pods/default/"


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "labels": dict(labels)}}


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "svcnet.db")


def test_data_and_revisions_survive_close_and_reopen(db_path: str) -> None:
    store = SqliteStore(db_path)
    store.create(PODS + "a", pod("a"))
    store.create(PODS + "b", pod("b"))
    store.update(PODS + "a", pod("a", app="x"))
    store.close()

    reopened = SqliteStore(db_path)
    try:
        assert reopened.current_revision() == 3
        a = reopened.get(PODS + "a")
        assert a is not None
        assert (a.revision, a.create_revision, a.value["metadata"]["resourceVersion"]) == (3, 1, "3")
        assert a.value["metadata"]["labels"] == {"app": "x"}
        assert reopened.create(PODS + "c", pod("c")).revision == 4
    finally:
        reopened.close()


def test_history_survives_reopen_and_replays(db_path: str) -> None:
    store = SqliteStore(db_path)
    store.create(PODS + "a", pod("a"))
    store.update(PODS + "a", pod("a", app="x"))
    store.delete(PODS + "a")
    store.close()

    reopened = SqliteStore(db_path)
    try:
        recorder = Recorder()
        reopened.watch(PODS, 1, recorder)
        assert recorder.summary() == [("MODIFIED", PODS + "a", 2), ("DELETED", PODS + "a", 3)]
    finally:
        reopened.close()


def test_compaction_survives_reopen(db_path: str) -> None:
    store = SqliteStore(db_path)
    for name in ("a", "b", "c"):
        store.create(PODS + name, pod(name))
    store.compact(2)
    store.close()

    reopened = SqliteStore(db_path)
    try:
        assert reopened.compacted_revision() == 2
        with pytest.raises(Compacted):
            reopened.watch(PODS, 1, Recorder())
        assert len(reopened.list(PODS).records) == 3
    finally:
        reopened.close()


def test_revision_never_goes_backwards_after_the_newest_key_is_deleted_and_compacted(db_path: str) -> None:
    store = SqliteStore(db_path)
    store.create(PODS + "a", pod("a"))
    store.create(PODS + "b", pod("b"))
    store.delete(PODS + "b")
    store.delete(PODS + "a")
    store.compact(store.current_revision())
    store.close()

    reopened = SqliteStore(db_path)
    try:
        assert reopened.current_revision() == 4
        assert reopened.list("").records == []
        assert reopened.create(PODS + "c", pod("c")).revision == 5
    finally:
        reopened.close()


def test_compaction_removes_superseded_history_rows(db_path: str) -> None:
    store = SqliteStore(db_path)
    store.create(PODS + "a", pod("a"))  # 1
    for n in range(5):
        store.update(PODS + "a", pod("a", n=str(n)))  # 2..6
    store.create(PODS + "b", pod("b"))  # 7
    store.delete(PODS + "b")  # 8
    store.create(PODS + "c", pod("c"))  # 9
    store.compact(9)
    store.close()

    with sqlite3.connect(db_path) as db:
        kept = [row[0] for row in db.execute("SELECT revision FROM log ORDER BY revision")]
    # Live rows stay (current points at them); a's older versions and all of b's life go.
    assert kept == [6, 9]


def test_the_database_runs_in_wal_mode_with_full_sync(db_path: str) -> None:
    store = SqliteStore(db_path)
    try:
        # synchronous is per connection: only the store's own connection can say.
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_open_of_the_same_file_is_refused(db_path: str) -> None:
    store = SqliteStore(db_path)
    try:
        with pytest.raises(StorageError, match="another process"):
            SqliteStore(db_path)
    finally:
        store.close()
    SqliteStore(db_path).close()  # free again once closed


CHILD = textwrap.dedent(
    """
    import sys
    from svcnet.storage.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1])
    for n in range(1, 100_000):
        record = store.create(f"/registry/crash/{n:06d}", {"metadata": {"name": str(n)}, "spec": {"n": n}})
        if n % 3 == 0:
            store.update(f"/registry/crash/{n:06d}", {"metadata": {"name": str(n)}, "spec": {"n": -n}})
        print(f"acked {n} {store.current_revision()}", flush=True)
    """
)


def acknowledged_then_kill_9(child_code: str, db_path: str, enough: Callable[[list[list[str]]], bool]) -> list[list[str]]:
    """Run child_code on db_path, read its "acked ..." lines until enough(lines), then SIGKILL it.

    Returns every acknowledgement read, split into words. Killed right after reading one: the child
    is likely in the middle of its next write.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(
        [sys.executable, "-c", child_code, db_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    acked: list[list[str]] = []
    deadline = time.monotonic() + 60
    assert child.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            buffered = b""
            while not enough(acked):
                remaining = deadline - time.monotonic()
                assert remaining > 0, "child did not acknowledge writes in time"
                if not selector.select(timeout=remaining):
                    continue
                chunk = os.read(child.stdout.fileno(), 65536)
                assert chunk, f"child exited early: {child.stderr.read().decode() if child.stderr else ''}"
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                acked += [line.decode().split()[1:] for line in lines]
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    return acked


def test_an_acknowledged_write_survives_kill_9(db_path: str) -> None:
    acked = acknowledged_then_kill_9(CHILD, db_path, lambda lines: bool(lines) and int(lines[-1][0]) >= 40)
    acked_number, acked_revision = (int(word) for word in acked[-1])
    store = SqliteStore(db_path)
    try:
        assert store.current_revision() >= acked_revision
        for n in range(1, acked_number + 1):
            record = store.get(f"/registry/crash/{n:06d}")
            assert record is not None, f"acknowledged write {n} was lost"
            assert record.value["spec"]["n"] == (-n if n % 3 == 0 else n)
        # The reopened store goes on from where the child stopped, without reusing a revision.
        next_record = store.create("/registry/after-crash", {})
        assert next_record.revision == store.current_revision() > acked_revision
    finally:
        store.close()


# Eight writer threads, so writes share transactions (group commit). Each prints a write's key,
# revision and value once the store acknowledged it; every third object is updated after its create.
CONCURRENT_CHILD = textwrap.dedent(
    """
    import sys, threading
    from svcnet.storage.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1])
    printing = threading.Lock()

    def ack(record):
        with printing:
            print(f"acked {record.key} {record.revision} {record.value['spec']['n']}", flush=True)

    def writer(thread):
        for n in range(1, 100_000):
            key = f"/registry/crash/{thread}/{n:06d}"
            ack(store.create(key, {"metadata": {"name": str(n)}, "spec": {"n": n}}))
            if n % 3 == 0:
                ack(store.update(key, {"metadata": {"name": str(n)}, "spec": {"n": -n}}))

    for thread in range(8):
        threading.Thread(target=writer, args=(thread,)).start()
    """
)


def test_acknowledged_writes_of_concurrent_writers_survive_kill_9(db_path: str) -> None:
    acked = acknowledged_then_kill_9(CONCURRENT_CHILD, db_path, lambda lines: len(lines) >= 400)
    acked_revisions = [int(revision) for _, revision, _ in acked]
    assert len(set(acked_revisions)) == len(acked_revisions), "a revision was acknowledged twice"
    for thread in range(8):
        mine = [int(revision) for key, revision, _ in acked if key.startswith(f"/registry/crash/{thread}/")]
        assert mine == sorted(mine), f"thread {thread} saw its revisions go backwards"

    store = SqliteStore(db_path)
    recorder = Recorder()
    try:
        assert store.current_revision() >= max(acked_revisions)
        # Every acknowledged write is in the history at the revision it was acknowledged with.
        store.watch("/registry/crash/", 1, recorder)
        history = {event.revision: event for event in recorder.events}
        replayed = [event.revision for event in recorder.events]
        assert replayed == sorted(set(replayed)), "history revisions are not strictly increasing"
        for key, revision, n in acked:
            # A watch replays after its revision: the first write (a create, n=1, never updated) is read whole.
            event = history.get(int(revision)) if int(revision) > 1 else store.get(key)
            assert event is not None, f"acknowledged write {key}@{revision} was lost"
            assert (event.key, event.value["spec"]["n"]) == (key, int(n))
        # Every object present is whole: its own name's value, as created or as updated, stamped with
        # its revision (an unacknowledged write either committed whole or left nothing).
        for record in store.list("/registry/crash/").records:
            n = int(record.key.rsplit("/", 1)[1])
            assert record.value["metadata"]["name"] == str(n)
            assert record.value["spec"]["n"] in ((n, -n) if n % 3 == 0 else (n,)), record
            assert record.value["metadata"]["resourceVersion"] == str(record.revision)
        for key, _, n in acked:
            assert store.get(key) is not None, f"acknowledged object {key} is missing"
            if int(n) < 0:
                assert store.get(key).value["spec"]["n"] == int(n)  # type: ignore[union-attr]
        next_record = store.create("/registry/after-crash", {})
        assert next_record.revision == store.current_revision() > max(acked_revisions)
    finally:
        store.close()


def cap_at_current_size(store: SqliteStore) -> None:
    """SQLite's own limit on the database's pages: a write needing one more page fails SQLITE_FULL."""
    (pages,) = store._db.execute("PRAGMA page_count").fetchone()
    store._db.execute(f"PRAGMA max_page_count={pages}")


def test_a_write_refused_for_lack_of_space_is_a_status_and_changes_nothing(db_path: str, monkeypatch) -> None:
    store = SqliteStore(db_path)
    try:
        store.create(PODS + "a", pod("a"))
        revision = store.current_revision()
        cap_at_current_size(store)
        with pytest.raises(NoSpace) as refused:
            store.create(PODS + "big", {**pod("big"), "blob": "x" * 100_000})
        assert refused.value.code == 500 and "database space exceeded" in refused.value.message
        assert refused.value.status()["kind"] == "Status"
        assert store.current_revision() == revision and store.get(PODS + "big") is None
        assert store.space_alarm()

        # The alarm refuses growth before it reaches the disk, even a write that would fit.
        monkeypatch.setattr(sqlite_driver, "free_bytes", lambda directory: 0)
        with pytest.raises(NoSpace):
            store.update(PODS + "a", pod("a", changed="yes"))
        assert store.get(PODS + "a").value["metadata"]["labels"] == {}
        assert [r.key for r in store.list(PODS).records] == [PODS + "a"]

        # Room again (the disk grew): writes resume without a restart.
        store._db.execute("PRAGMA max_page_count=1073741823")
        monkeypatch.setattr(sqlite_driver, "free_bytes", lambda directory: 1 << 40)
        store.create(PODS + "b", pod("b"))
        assert not store.space_alarm()
    finally:
        store.close()


def test_deletes_go_on_while_the_alarm_is_on_and_spend_the_reserve_before_failing(db_path: str) -> None:
    store = SqliteStore(db_path)
    try:
        store.create(PODS + "small", pod("small"))
        store.create(PODS + "large", {**pod("large"), "blob": "y" * 50_000})
        cap_at_current_size(store)
        with pytest.raises(NoSpace):
            store.create(PODS + "big", {**pod("big"), "blob": "x" * 100_000})
        reserve = store._reserve
        assert reserve.held == reserve.size

        store.delete(PODS + "small")  # its tombstone fits in the pages the file has
        assert store.get(PODS + "small") is None

        with pytest.raises(NoSpace):  # 50 kB of tombstone: no page to put it in, whatever is released
            store.delete(PODS + "large")
        assert reserve.held == 0
        assert store.get(PODS + "large") is not None
    finally:
        store.close()
    reopened = SqliteStore(db_path)
    try:
        assert [r.key for r in reopened.list(PODS).records] == [PODS + "large"]
    finally:
        reopened.close()
