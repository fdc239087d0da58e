"""list_encoded at an older revision, on every driver: the list exactly as it was then (etcd's WithRev).

A snapshot taken at revision R (list_encoded while R was current) must equal
list_encoded(revision=R) read after any later creates, updates, deletes and
compactions up to R, page by page, with and without a predicate.
"""
from __future__ import annotations

import random
from typing import Any

import pytest

from svcnet.api import jsoncodec
from svcnet.storage.base import Compacted, EncodedListResult, FutureRevision, Store

from .conftest import Origin

PODS = "/registry/core/pods/ns/"


def _pod(name: str, generation: int, app: str = "a") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": app}}, "spec": {"generation": generation}}


def _app_is(value: str):
    return lambda obj: obj["metadata"]["labels"]["app"] == value


def _pages(store: Store, prefix: str, *, revision: int | None, limit: int, predicate=None,
           ) -> list[EncodedListResult]:
    pages = []
    start_after: str | None = None
    while True:
        page = store.list_encoded(prefix, predicate=predicate, limit=limit, start_after=start_after,
                                  revision=revision)
        pages.append(page)
        if page.continue_key is None:
            return pages
        start_after = page.continue_key


def _stamped_revisions(page: EncodedListResult) -> list[int]:
    return [int(jsoncodec.loads(text)["metadata"]["resourceVersion"]) for text in page.texts]


def _names(page: EncodedListResult) -> list[str]:
    return [jsoncodec.loads(text)["metadata"]["name"] for text in page.texts]


def _changes_after(store: Store) -> None:
    """Every kind of write to the keys listed before: update, delete, create, delete and recreate."""
    store.update(PODS + "p2", _pod("p2", 2, app="b"))
    store.delete(PODS + "p3")
    store.create(PODS + "p0", _pod("p0", 1))
    store.delete(PODS + "p4")
    store.create(PODS + "p4", _pod("p4", 9))
    store.create(PODS + "p9", _pod("p9", 1))
    store.delete(PODS + "p9")
    store.update(PODS + "p2", _pod("p2", 3))
    store.create("/registry/core/pods/other/p1", _pod("p1", 1))


def _fill(store: Store) -> int:
    for index in range(1, 7):
        store.create(PODS + f"p{index}", _pod(f"p{index}", 1, app="a" if index % 2 else "b"))
    store.delete(PODS + "p6")  # deleted before the snapshot: absent from it
    return store.current_revision()


@pytest.mark.parametrize("limit", [0, 1, 2, 4, 50])
@pytest.mark.parametrize("predicate", [None, _app_is("a")], ids=["all", "selector"])
def test_a_list_at_a_revision_is_the_list_as_it_was_then(store: Store, limit: int, predicate) -> None:
    snapshot_revision = _fill(store)
    snapshot = _pages(store, PODS, revision=None, limit=limit, predicate=predicate)
    _changes_after(store)
    assert store.current_revision() > snapshot_revision
    at = _pages(store, PODS, revision=snapshot_revision, limit=limit, predicate=predicate)
    assert [(p.texts, p.revision, p.continue_key, p.remaining) for p in at] == \
        [(p.texts, p.revision, p.continue_key, p.remaining) for p in snapshot]
    assert {p.revision for p in at} == {snapshot_revision}
    for page in at + snapshot:  # each text's mod revision, as stamped in it
        assert page.revisions == _stamped_revisions(page)
    latest = [name for page in _pages(store, PODS, revision=None, limit=limit, predicate=predicate)
              for name in _names(page)]
    then = [name for page in at for name in _names(page)]
    assert latest != then  # the writes since did change the list: the test reads history, not the present


def test_remaining_item_count_at_a_revision_counts_keys_as_they_were(store: Store) -> None:
    revision = _fill(store)  # p1..p5 live
    _changes_after(store)  # now p0, p1, p2, p4, p5 (p3 gone, p0 new)
    first = store.list_encoded(PODS, limit=2, revision=revision)
    assert (_names(first), first.continue_key, first.remaining) == (["p1", "p2"], PODS + "p2", 3)
    second = store.list_encoded(PODS, limit=2, start_after=first.continue_key, revision=revision)
    assert (_names(second), second.continue_key, second.remaining) == (["p3", "p4"], PODS + "p4", 1)
    assert jsoncodec.loads(second.texts[1])["spec"]["generation"] == 1  # p4 before its recreation


def test_each_text_is_the_object_as_stored_then_with_its_own_revision(store: Store) -> None:
    store.create(PODS + "a", _pod("a", 1))
    updated = store.update(PODS + "a", _pod("a", 2))
    revision = store.current_revision()
    texts_then = store.list_encoded(PODS).texts
    store.update(PODS + "a", _pod("a", 3))
    store.delete(PODS + "a")
    [text] = store.list_encoded(PODS, revision=revision).texts
    assert text == texts_then[0]
    assert jsoncodec.loads(text)["metadata"]["resourceVersion"] == str(updated.revision)


def test_the_current_revision_reads_the_same_as_no_revision(store: Store) -> None:
    _fill(store)
    _changes_after(store)
    now = store.current_revision()
    for limit in (0, 2):
        assert [(p.texts, p.continue_key, p.remaining) for p in _pages(store, PODS, revision=now, limit=limit)] == \
            [(p.texts, p.continue_key, p.remaining) for p in _pages(store, PODS, revision=None, limit=limit)]


def test_revision_zero_is_the_empty_store(store: Store, rev: Origin) -> None:
    _fill(store)
    page = store.list_encoded(PODS, revision=rev(0))  # the revision the store started at (etcd's is global)
    assert (page.texts, page.revision, page.continue_key) == ([], rev(0), None)


def test_a_revision_past_the_current_one_raises_future_revision(store: Store) -> None:
    revision = _fill(store)
    with pytest.raises(FutureRevision):
        store.list_encoded(PODS, revision=revision + 1)


def test_a_compacted_revision_raises_compacted_and_the_compaction_point_still_reads(store: Store) -> None:
    revision = _fill(store)
    snapshot = store.list_encoded(PODS).texts
    _changes_after(store)
    store.compact(revision)
    assert store.list_encoded(PODS, revision=revision).texts == snapshot
    store.compact(revision + 2)
    with pytest.raises(Compacted) as raised:
        store.list_encoded(PODS, revision=revision)
    assert (raised.value.requested, raised.value.compacted) == (revision, revision + 2)


def test_a_prefix_reads_only_its_own_keys_at_a_revision(store: Store) -> None:
    store.create("/registry/core/pods/ns/a", _pod("a", 1))
    store.create("/registry/core/pods/ns2/b", _pod("b", 1))
    store.create("/registry/core/pods/n/c", _pod("c", 1))
    revision = store.current_revision()
    store.update("/registry/core/pods/ns2/b", _pod("b", 2))
    store.update("/registry/core/pods/n/c", _pod("c", 2))
    store.create("/registry/core/pods/ns2/d", _pod("d", 1))
    assert _names(store.list_encoded(PODS, revision=revision)) == ["a"]
    assert _names(store.list_encoded("/registry/core/pods/", revision=revision)) == ["c", "a", "b"]


@pytest.mark.parametrize("seed", range(6))
def test_every_past_revision_lists_as_it_did_then_under_random_writes_and_compactions(
    store: Store, seed: int
) -> None:
    rng = random.Random(seed)
    names = [f"k{i:02d}" for i in range(12)]
    snapshots: dict[int, list[str]] = {}
    for step in range(120):
        name = rng.choice(names)
        key = PODS + name
        exists = store.get(key) is not None
        roll = rng.random()
        if not exists:
            store.create(key, _pod(name, step, app=rng.choice("ab")))
        elif roll < 0.5:
            store.update(key, _pod(name, step, app=rng.choice("ab")))
        else:
            store.delete(key)
        if rng.random() < 0.1:
            store.create(f"/registry/core/pods/zz/{name}{step}", _pod(name, step))  # outside the prefix
        snapshots[store.current_revision()] = store.list_encoded(PODS).texts
        if rng.random() < 0.05:
            store.compact(rng.randint(store.compacted_revision(), store.current_revision()))
    compacted = store.compacted_revision()
    for revision, texts in snapshots.items():
        if revision < compacted:
            with pytest.raises(Compacted):
                store.list_encoded(PODS, revision=revision)
            continue
        limit = rng.choice([0, 1, 3])
        pages = _pages(store, PODS, revision=revision, limit=limit)
        assert [t for page in pages for t in page.texts] == texts, f"revision {revision}, limit {limit}"
        assert all(page.revisions == _stamped_revisions(page) for page in pages)


@pytest.mark.parametrize("at_past_revision", [False, True])
def test_the_largest_limit_the_api_takes_lists_everything(store: Store, at_past_revision: bool) -> None:
    revision = _fill(store)
    _changes_after(store)
    page = store.list_encoded(PODS, limit=2**63 - 1, revision=revision if at_past_revision else None)
    expected = ["p1", "p2", "p3", "p4", "p5"] if at_past_revision else ["p0", "p1", "p2", "p4", "p5"]
    assert (_names(page), page.continue_key) == (expected, None)
