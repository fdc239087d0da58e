"""The storage contract, run against every driver (the `store` fixture is parametrized)."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from svcnet.storage.base import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    StorageError,
    Store,
)

from .conftest import Origin
from .recording import Recorder

PODS = "/registry/core/pods/default/"


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": dict(labels)},
        "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]},
    }


def rv(obj: dict[str, Any]) -> str:
    return obj["metadata"]["resourceVersion"]


def app_is(value: str):
    return lambda obj: obj["metadata"].get("labels", {}).get("app") == value


# --- revisions and resourceVersion -------------------------------------------------------------


def test_new_store_is_at_revision_zero_and_uncompacted(store: Store, rev: Origin) -> None:
    assert store.current_revision() == rev(0)
    assert store.compacted_revision() == rev.compacted
    assert store.list("").records == []


def test_every_write_bumps_the_revision_by_one(store: Store, rev: Origin) -> None:
    revisions = [
        store.create(PODS + "a", pod("a")).revision,
        store.create(PODS + "b", pod("b")).revision,
        store.update(PODS + "a", pod("a", app="x")).revision,
        store.delete(PODS + "b").revision,
    ]
    assert revisions == [rev(1), rev(2), rev(3), rev(4)]
    assert store.current_revision() == rev(4)


def test_failed_writes_do_not_bump_the_revision(store: Store, rev: Origin) -> None:
    store.create(PODS + "a", pod("a"))
    for failing_write in (
        lambda: store.create(PODS + "a", pod("a")),
        lambda: store.update(PODS + "missing", pod("missing")),
        lambda: store.delete(PODS + "missing"),
        lambda: store.update(PODS + "a", pod("a"), expected_revision=rev(99)),
        lambda: store.delete(PODS + "a", expected_revision=rev(99)),
    ):
        with pytest.raises(StorageError):
            failing_write()
    assert store.current_revision() == rev(1)


def test_written_objects_carry_their_revision_as_resource_version(store: Store, rev: Origin) -> None:
    created = store.create(PODS + "a", pod("a"))
    updated = store.update(PODS + "a", pod("a", app="x"))
    assert rv(created.value) == str(rev(1))
    assert rv(updated.value) == str(rev(2))
    fetched = store.get(PODS + "a")
    assert fetched is not None and rv(fetched.value) == str(rev(2))
    assert [rv(record.value) for record in store.list(PODS).records] == [str(rev(2))]


def test_resource_version_sent_by_the_caller_is_replaced(store: Store, rev: Origin) -> None:
    value = pod("a")
    value["metadata"]["resourceVersion"] = "12345"
    assert rv(store.create(PODS + "a", value).value) == str(rev(1))


def test_object_without_metadata_gets_one_with_the_resource_version(store: Store, rev: Origin) -> None:
    assert store.create("/k", {"data": 1}).value == {"data": 1, "metadata": {"resourceVersion": str(rev(1))}}


def test_writes_do_not_change_the_callers_dict(store: Store) -> None:
    value = pod("a")
    store.create(PODS + "a", value)
    assert "resourceVersion" not in value["metadata"]


def test_returned_values_are_fresh_dicts(store: Store, rev: Origin) -> None:
    value = pod("a")
    created = store.create(PODS + "a", value)
    value["spec"]["containers"].append({"name": "after-write"})
    created.value["spec"]["containers"].append({"name": "mutated-result"})
    first = store.get(PODS + "a")
    assert first is not None
    first.value["metadata"]["name"] = "mutated-get"
    again = store.get(PODS + "a")
    assert again is not None
    assert again.value == {**pod("a"), "metadata": {**pod("a")["metadata"], "resourceVersion": str(rev(1))}}


def test_any_json_string_round_trips(store: Store) -> None:
    value = {"metadata": {"name": "a"}, "data": {"text": "héllo 世界 \U0001f600", "lone": "\ud800", "nul": "a\x00b"}}
    store.create("/k", value)
    fetched = store.get("/k")
    assert fetched is not None and fetched.value["data"] == value["data"]


def test_a_value_that_is_not_json_is_refused_and_changes_nothing(store: Store, rev: Origin) -> None:
    with pytest.raises(TypeError):
        store.create("/k", {"metadata": {}, "bad": object()})
    assert (store.get("/k"), store.current_revision()) == (None, rev(0))


def test_get_of_a_missing_key_is_none(store: Store) -> None:
    assert store.get(PODS + "nothing") is None


# --- create, update, delete ---------------------------------------------------------------------


def test_create_of_an_existing_key_raises_key_exists(store: Store) -> None:
    store.create(PODS + "a", pod("a"))
    with pytest.raises(KeyExists) as raised:
        store.create(PODS + "a", pod("a", app="other"))
    assert raised.value.key == PODS + "a"
    fetched = store.get(PODS + "a")
    assert fetched is not None and fetched.value["metadata"]["labels"] == {}


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_update_or_delete_of_a_missing_key_raises_key_not_found(store: Store, operation: str) -> None:
    with pytest.raises(KeyNotFound) as raised:
        if operation == "update":
            store.update(PODS + "a", pod("a"))
        else:
            store.delete(PODS + "a")
    assert raised.value.key == PODS + "a"


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_stale_expected_revision_raises_revision_conflict_and_changes_nothing(
    store: Store, operation: str, rev: Origin
) -> None:
    store.create(PODS + "a", pod("a"))
    store.update(PODS + "a", pod("a", app="v2"))
    with pytest.raises(RevisionConflict) as raised:
        if operation == "update":
            store.update(PODS + "a", pod("a", app="v3"), expected_revision=rev(1))
        else:
            store.delete(PODS + "a", expected_revision=rev(1))
    assert (raised.value.key, raised.value.expected, raised.value.actual) == (PODS + "a", rev(1), rev(2))
    fetched = store.get(PODS + "a")
    assert fetched is not None and fetched.value["metadata"]["labels"] == {"app": "v2"}


def test_matching_expected_revision_lets_the_write_through(store: Store, rev: Origin) -> None:
    created = store.create(PODS + "a", pod("a"))
    updated = store.update(PODS + "a", pod("a", app="v2"), expected_revision=created.revision)
    deleted = store.delete(PODS + "a", expected_revision=updated.revision)
    assert deleted.revision == rev(3)
    assert store.get(PODS + "a") is None


def test_optimistic_concurrency_lets_only_one_of_two_racing_updates_win(store: Store) -> None:
    read = store.create(PODS + "a", pod("a"))
    store.update(PODS + "a", pod("a", app="first"), expected_revision=read.revision)
    with pytest.raises(RevisionConflict):
        store.update(PODS + "a", pod("a", app="second"), expected_revision=read.revision)


def test_update_keeps_the_create_revision(store: Store, rev: Origin) -> None:
    store.create("/other", {})
    created = store.create(PODS + "a", pod("a"))
    updated = store.update(PODS + "a", pod("a", app="x"))
    assert (created.create_revision, updated.create_revision, updated.revision) == (rev(2), rev(2), rev(3))


def test_recreating_a_deleted_key_starts_a_new_life(store: Store, rev: Origin) -> None:
    store.create(PODS + "a", pod("a"))
    store.delete(PODS + "a")
    recreated = store.create(PODS + "a", pod("a"))
    assert (recreated.create_revision, recreated.revision) == (rev(3), rev(3))


def test_delete_returns_the_last_object_stamped_with_the_delete_revision(store: Store, rev: Origin) -> None:
    store.create(PODS + "a", pod("a", app="x"))
    deleted = store.delete(PODS + "a")
    assert (deleted.revision, deleted.create_revision, rv(deleted.value)) == (rev(2), rev(1), str(rev(2)))
    assert deleted.value["metadata"]["labels"] == {"app": "x"}


# --- list -----------------------------------------------------------------------------------------


def fill(store: Store, names: list[str], namespace_prefix: str = PODS) -> None:
    for name in names:
        store.create(namespace_prefix + name, pod(name, app="even" if int(name[-1]) % 2 == 0 else "odd"))


def keys(result) -> list[str]:
    return [record.key.rsplit("/", 1)[-1] for record in result.records]


def test_list_returns_keys_under_the_prefix_in_sorted_order(store: Store, rev: Origin) -> None:
    fill(store, ["p3", "p1", "p2"])
    store.create("/registry/core/pods/default2/p0", pod("p0"))
    store.create("/registry/core/pods/defaul", pod("p9"))
    store.create("/registry/core/services/default/p1", pod("p1"))
    result = store.list(PODS)
    assert keys(result) == ["p1", "p2", "p3"]
    assert (result.continue_key, result.remaining, result.revision) == (None, 0, rev(6))


def test_list_of_the_empty_prefix_returns_everything(store: Store) -> None:
    store.create("/b", {})
    store.create("/a", {})
    assert [record.key for record in store.list("").records] == ["/a", "/b"]


def test_list_records_carry_mod_and_create_revisions(store: Store, rev: Origin) -> None:
    store.create(PODS + "p1", pod("p1"))
    store.update(PODS + "p1", pod("p1", app="x"))
    [record] = store.list(PODS).records
    assert (record.revision, record.create_revision, rv(record.value)) == (rev(2), rev(1), str(rev(2)))


def test_list_revision_is_the_current_revision_even_when_nothing_matches(store: Store, rev: Origin) -> None:
    store.create("/elsewhere", {})
    result = store.list(PODS)
    assert (result.records, result.revision) == ([], rev(1))


def test_list_with_a_predicate_returns_only_matches(store: Store) -> None:
    fill(store, ["p1", "p2", "p3", "p4"])
    assert keys(store.list(PODS, predicate=app_is("even"))) == ["p2", "p4"]


@pytest.mark.parametrize(
    ("limit", "start_after", "expected", "continue_after", "remaining"),
    [
        (0, None, ["p1", "p2", "p3", "p4", "p5"], None, 0),
        (2, None, ["p1", "p2"], "p2", 3),
        (2, "p2", ["p3", "p4"], "p4", 1),
        (2, "p4", ["p5"], None, 0),
        (5, None, ["p1", "p2", "p3", "p4", "p5"], None, 0),
        (9, None, ["p1", "p2", "p3", "p4", "p5"], None, 0),
        (0, "p3", ["p4", "p5"], None, 0),
        (1, "p5", [], None, 0),
    ],
)
def test_list_pages_with_limit_and_continue(
    store: Store,
    limit: int,
    start_after: str | None,
    expected: list[str],
    continue_after: str | None,
    remaining: int,
) -> None:
    fill(store, ["p1", "p2", "p3", "p4", "p5"])
    store.create("/registry/core/pods/default2/p0", pod("p0"))
    result = store.list(PODS, limit=limit, start_after=PODS + start_after if start_after else None)
    assert keys(result) == expected
    assert result.continue_key == (PODS + continue_after if continue_after else None)
    assert result.remaining == remaining


def test_start_after_below_the_prefix_starts_at_the_prefix(store: Store) -> None:
    fill(store, ["p1", "p2"])
    store.create("/registry/core/pods/aaa/p0", pod("p0"))
    assert keys(store.list(PODS, start_after="/registry/core/pods/aaa/p0")) == ["p1", "p2"]


@pytest.mark.parametrize(
    ("start_after", "expected", "continue_after"),
    [
        (None, ["p2", "p4"], "p4"),
        ("p4", ["p6"], None),  # p7 remains but does not match: no further page
    ],
)
def test_list_with_predicate_continues_only_while_matches_remain(
    store: Store, start_after: str | None, expected: list[str], continue_after: str | None
) -> None:
    fill(store, ["p1", "p2", "p3", "p4", "p5", "p6", "p7"])
    result = store.list(
        PODS, predicate=app_is("even"), limit=2, start_after=PODS + start_after if start_after else None
    )
    assert keys(result) == expected
    assert result.continue_key == (PODS + continue_after if continue_after else None)


def test_paging_through_a_list_visits_every_key_once(store: Store) -> None:
    names = [f"p{i:03d}0" for i in range(23)]
    fill(store, names)
    seen: list[str] = []
    start_after: str | None = None
    while True:
        page = store.list(PODS, limit=5, start_after=start_after)
        seen += keys(page)
        if page.continue_key is None:
            break
        start_after = page.continue_key
    assert seen == names


# --- watch ---------------------------------------------------------------------------------------


def test_watch_from_zero_sees_only_what_happens_after(store: Store, recorder: Recorder, rev: Origin) -> None:
    store.create(PODS + "before", pod("before"))
    store.watch(PODS, 0, recorder)
    store.create(PODS + "after", pod("after"))
    assert recorder.summary() == [("ADDED", PODS + "after", rev(2))]


def test_watch_replays_history_after_the_revision_then_goes_live(
    store: Store, recorder: Recorder, rev: Origin
) -> None:
    store.create(PODS + "a", pod("a"))  # 1
    store.create(PODS + "b", pod("b"))  # 2
    store.update(PODS + "a", pod("a", app="x"))  # 3
    store.delete(PODS + "b")  # 4
    store.watch(PODS, rev(1), recorder)
    assert recorder.summary() == [
        ("ADDED", PODS + "b", rev(2)), ("MODIFIED", PODS + "a", rev(3)), ("DELETED", PODS + "b", rev(4))]
    store.create(PODS + "c", pod("c"))
    assert recorder.summary()[3:] == [("ADDED", PODS + "c", rev(5))]


def test_watch_from_the_current_revision_replays_nothing(store: Store, recorder: Recorder, rev: Origin) -> None:
    store.create(PODS + "a", pod("a"))
    store.watch(PODS, rev(1), recorder)
    assert recorder.events == []


def test_replay_from_revision_one_equals_the_live_events(store: Store, rev: Origin) -> None:
    store.create("/marker", {})  # revision 1: the replay below starts after it
    live = Recorder()
    store.watch(PODS, 0, live)
    store.create(PODS + "a", pod("a"))
    store.update(PODS + "a", pod("a", app="x"))
    store.update(PODS + "a", pod("a", app="y"))
    store.delete(PODS + "a")
    replayed = Recorder()
    store.watch(PODS, rev(1), replayed)
    assert len(live.events) == 4
    assert replayed.events == live.events


def test_event_shapes_carry_value_and_prev_value(store: Store, recorder: Recorder, rev: Origin) -> None:
    store.watch(PODS, 0, recorder)
    store.create(PODS + "a", pod("a", app="v1"))
    store.update(PODS + "a", pod("a", app="v2"))
    added, modified = recorder.events
    assert (added.type, rv(added.value), added.prev_value) == ("ADDED", str(rev(1)), None)
    assert (modified.type, rv(modified.value), modified.value["metadata"]["labels"]) == \
        ("MODIFIED", str(rev(2)), {"app": "v2"})
    assert modified.prev_value is not None
    assert (rv(modified.prev_value), modified.prev_value["metadata"]["labels"]) == (str(rev(1)), {"app": "v1"})


def test_deleted_event_holds_the_last_object_at_the_delete_revision(
    store: Store, recorder: Recorder, rev: Origin
) -> None:
    store.create(PODS + "a", pod("a", app="v1"))
    store.update(PODS + "a", pod("a", app="v2"))
    store.watch(PODS, 0, recorder)
    store.delete(PODS + "a")
    [deleted] = recorder.events
    assert (deleted.type, deleted.key, deleted.revision) == ("DELETED", PODS + "a", rev(3))
    assert (rv(deleted.value), deleted.value["metadata"]["labels"]) == (str(rev(3)), {"app": "v2"})
    assert deleted.prev_value is not None
    assert (rv(deleted.prev_value), deleted.prev_value["metadata"]["labels"]) == (str(rev(2)), {"app": "v2"})


def test_watch_prefix_does_not_see_a_longer_sibling_prefix(store: Store, recorder: Recorder, rev: Origin) -> None:
    store.create("/registry/core/pods/default2/old", pod("old"))
    store.watch(PODS, 0, recorder)
    store.create("/registry/core/pods/default2/x", pod("x"))
    store.create("/registry/core/pods/default", pod("bare"))
    store.create(PODS + "x", pod("x"))
    replay = Recorder()
    store.watch(PODS, rev(1), replay)
    assert recorder.summary() == [("ADDED", PODS + "x", rev(4))]
    assert replay.summary() == [("ADDED", PODS + "x", rev(4))]


def test_watch_of_the_empty_prefix_sees_every_key(store: Store, recorder: Recorder) -> None:
    store.watch("", 0, recorder)
    store.create("/a", {})
    store.create("/b/c", {})
    assert [event.key for event in recorder.events] == ["/a", "/b/c"]


# Each row: the label the object starts with (None: it does not exist), what is done to it,
# and what a watch for app=a sees.
PREDICATE_CASES = [
    (None, ("create", "a"), "ADDED"),
    (None, ("create", "b"), None),
    ("a", ("update", "a"), "MODIFIED"),
    ("b", ("update", "a"), "ADDED"),
    ("a", ("update", "b"), "DELETED"),
    ("b", ("update", "b"), None),
    ("a", ("delete", None), "DELETED"),
    ("b", ("delete", None), None),
]


@pytest.mark.parametrize("replay", [False, True], ids=["live", "replay"])
@pytest.mark.parametrize(("initial", "action", "expected"), PREDICATE_CASES)
def test_watch_with_predicate_reports_objects_entering_and_leaving_the_selection(
    store: Store,
    recorder: Recorder,
    initial: str | None,
    action: tuple[str, str | None],
    expected: str | None,
    replay: bool,
) -> None:
    store.create("/marker", {})
    if initial is not None:
        store.create(PODS + "a", pod("a", app=initial))
    start = store.current_revision()
    if not replay:
        store.watch(PODS, start, recorder, predicate=app_is("a"))
    verb, label = action
    if verb == "create":
        store.create(PODS + "a", pod("a", app=label or ""))
    elif verb == "update":
        store.update(PODS + "a", pod("a", app=label or ""))
    else:
        store.delete(PODS + "a")
    if replay:
        store.watch(PODS, start, recorder, predicate=app_is("a"))
    assert [event.type for event in recorder.events] == ([expected] if expected else [])
    if expected == "DELETED":
        [event] = recorder.events
        # The object as the watcher last knew it (app=a), at the revision it left the selection.
        assert event.value["metadata"]["labels"] == {"app": "a"}
        assert rv(event.value) == str(store.current_revision())
    if expected == "ADDED" and initial is not None:
        assert recorder.events[0].prev_value is None


def test_cancel_stops_delivery(store: Store, recorder: Recorder, rev: Origin) -> None:
    watch = store.watch(PODS, 0, recorder)
    store.create(PODS + "a", pod("a"))
    watch.cancel()
    store.create(PODS + "b", pod("b"))
    assert recorder.summary() == [("ADDED", PODS + "a", rev(1))]


def test_cancel_twice_is_harmless(store: Store, recorder: Recorder) -> None:
    watch = store.watch(PODS, 0, recorder)
    watch.cancel()
    watch.cancel()
    store.create(PODS + "a", pod("a"))
    assert recorder.events == []


def test_cancel_from_inside_a_callback_stops_later_events(store: Store, rev: Origin) -> None:
    received: list[int] = []
    handle: dict[str, Any] = {}

    def cancel_after_first(event: Event) -> None:
        received.append(event.revision)
        handle["watch"].cancel()

    handle["watch"] = store.watch(PODS, 0, cancel_after_first)
    store.create(PODS + "a", pod("a"))
    store.create(PODS + "b", pod("b"))
    assert received == [rev(1)]


def test_callback_values_are_private_to_each_watcher(store: Store) -> None:
    def vandal(event: Event) -> None:
        event.value["metadata"]["name"] = "vandalized"

    careful = Recorder()
    store.watch(PODS, 0, vandal)
    store.watch(PODS, 0, careful)
    store.create(PODS + "a", pod("a"))
    assert careful.events[0].value["metadata"]["name"] == "a"
    fetched = store.get(PODS + "a")
    assert fetched is not None and fetched.value["metadata"]["name"] == "a"


def test_a_failing_callback_does_not_fail_the_write_or_starve_other_watchers(
    store: Store, recorder: Recorder, rev: Origin
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    store.watch(PODS, 0, broken)
    store.watch(PODS, 0, recorder)
    store.create(PODS + "a", pod("a"))
    assert recorder.summary() == [("ADDED", PODS + "a", rev(1))]
    assert store.get(PODS + "a") is not None


def test_writes_made_from_a_callback_reach_every_watcher_in_revision_order(store: Store, rev: Origin) -> None:
    def react(event: Event) -> None:
        if event.key == PODS + "a":
            store.create(PODS + "b", pod("b"))

    later = Recorder()
    store.watch(PODS, 0, react)
    store.watch(PODS, 0, later)
    store.create(PODS + "a", pod("a"))
    assert later.summary() == [("ADDED", PODS + "a", rev(1)), ("ADDED", PODS + "b", rev(2))]


def test_watch_beyond_the_current_revision_raises_future_revision(
    store: Store, recorder: Recorder, rev: Origin
) -> None:
    store.create(PODS + "a", pod("a"))
    with pytest.raises(FutureRevision):
        store.watch(PODS, rev(2), recorder)


def test_events_of_concurrent_writers_arrive_in_revision_order(
    store: Store, recorder: Recorder, rev: Origin
) -> None:
    store.watch("", 0, recorder)

    def writer(index: int) -> None:
        for n in range(25):
            store.create(f"/w{index}/{n}", {})

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [event.revision for event in recorder.events] == list(range(rev(1), rev(101)))
    assert len(store.list("").records) == 100


# --- compaction ----------------------------------------------------------------------------------


def test_watch_from_before_the_compacted_revision_raises_compacted(
    store: Store, recorder: Recorder, rev: Origin
) -> None:
    for name in ("a", "b", "c"):
        store.create(PODS + name, pod(name))
    store.compact(rev(2))
    assert store.compacted_revision() == rev(2)
    with pytest.raises(Compacted) as raised:
        store.watch(PODS, rev(1), recorder)
    assert (raised.value.requested, raised.value.compacted) == (rev(1), rev(2))


def test_watch_from_the_compacted_revision_replays_what_follows(
    store: Store, recorder: Recorder, rev: Origin
) -> None:
    store.create(PODS + "a", pod("a", app="v1"))  # 1
    store.update(PODS + "a", pod("a", app="v2"))  # 2
    store.update(PODS + "a", pod("a", app="v3"))  # 3
    store.delete(PODS + "a")  # 4
    store.compact(rev(2))
    store.watch(PODS, rev(2), recorder)
    assert recorder.summary() == [("MODIFIED", PODS + "a", rev(3)), ("DELETED", PODS + "a", rev(4))]
    modified = recorder.events[0]
    assert modified.prev_value is not None and modified.prev_value["metadata"]["labels"] == {"app": "v2"}


def test_compaction_keeps_every_live_object(store: Store, rev: Origin) -> None:
    store.create(PODS + "a", pod("a", app="v1"))
    store.update(PODS + "a", pod("a", app="v2"))
    store.create(PODS + "b", pod("b"))
    store.delete(PODS + "b")
    store.create(PODS + "c", pod("c"))
    store.compact(store.current_revision())
    assert [(record.key, record.revision) for record in store.list(PODS).records] == \
        [(PODS + "a", rev(2)), (PODS + "c", rev(5))]
    updated = store.update(PODS + "a", pod("a", app="v3"), expected_revision=rev(2))
    assert updated.create_revision == rev(1)


def test_compaction_to_an_older_revision_is_a_no_op(store: Store, rev: Origin) -> None:
    for name in ("a", "b", "c"):
        store.create(PODS + name, pod(name))
    store.compact(rev(3))
    store.compact(rev(1))
    assert store.compacted_revision() == rev(3)


def test_compaction_beyond_the_current_revision_raises_future_revision(store: Store, rev: Origin) -> None:
    store.create(PODS + "a", pod("a"))
    with pytest.raises(FutureRevision):
        store.compact(rev(2))
    assert store.compacted_revision() == rev.compacted


def test_compaction_does_not_lower_the_revision(store: Store, rev: Origin) -> None:
    store.create(PODS + "a", pod("a"))
    store.delete(PODS + "a")
    store.compact(rev(2))
    assert store.current_revision() == rev(2)
    assert store.create(PODS + "b", pod("b")).revision == rev(3)


def test_live_watches_keep_receiving_after_compaction(store: Store, recorder: Recorder, rev: Origin) -> None:
    store.watch(PODS, 0, recorder)
    store.create(PODS + "a", pod("a"))
    store.compact(rev(1))
    store.update(PODS + "a", pod("a", app="x"))
    assert recorder.summary() == [("ADDED", PODS + "a", rev(1)), ("MODIFIED", PODS + "a", rev(2))]


# --- lifecycle -----------------------------------------------------------------------------------


def test_a_closed_store_refuses_work_and_stops_watches(store: Store, recorder: Recorder) -> None:
    store.watch(PODS, 0, recorder)
    store.close()
    with pytest.raises(StorageError):
        store.create(PODS + "a", pod("a"))
    with pytest.raises(StorageError):
        store.get(PODS + "a")
    store.close()  # twice is harmless
    assert recorder.events == []


def test_a_store_that_ends_its_watches_runs_their_end_callbacks_once(store: Store, recorder: Recorder) -> None:
    """on_end is how a watch's owner learns the store stopped delivering to it (closed here; on
    etcd also a history compacted away): cancel() by the owner runs no callback, and one
    registered after the end runs at once."""
    ended: list[str] = []
    live = store.watch(PODS, 0, recorder)
    live.on_end(lambda: ended.append("live"))
    dropped = store.watch(PODS, 0, recorder)
    dropped.on_end(lambda: ended.append("dropped"))
    dropped.cancel()
    store.close()
    assert ended == ["live"] and live.cancelled
    live.on_end(lambda: ended.append("late"))
    dropped.on_end(lambda: ended.append("dropped late"))
    assert ended == ["live", "late"]
