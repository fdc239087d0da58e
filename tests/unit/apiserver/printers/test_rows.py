"""Table rows kept per object version (printers/rows.py) are the rows to_table prints, at any time.

Every object the printer tests use, for every kind with a printer, is stored under a revision and
printed through table_bytes, cold and then from the cache at later clocks; the bytes must equal
jsoncodec.dumps(to_table(...)) at each clock. A changed object (a new revision) gets a new row,
an unchanged one is not printed again, and the cache stays under its byte bound.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from svcnet.api import jsoncodec
from svcnet.apiserver import printers
from svcnet.apiserver.printers import rows
from svcnet.apiserver.printers.columns import Printer

from . import test_tables as fixtures

# The tests of test_tables whose parameters hold whole objects, and the kind each prints.
_OBJECT_TESTS = {
    "test_pod_ready_status_restarts_follow_upstream_print_pod": fixtures.POD,
    "test_pod_wide_cells": fixtures.POD,
    "test_service_cells": fixtures.SERVICE,
    "test_node_cells": fixtures.NODE,
    "test_event_cells": fixtures.EVENT,
    "test_deployment_cells": fixtures.DEPLOYMENT,
    "test_replica_set_cells": fixtures.REPLICA_SET,
    "test_stateful_set_cells": fixtures.STATEFUL_SET,
}


def _objects_by_kind() -> list[tuple[Any, list[dict[str, Any]]]]:
    found = []
    for test_name, resource in _OBJECT_TESTS.items():
        mark = next(m for m in getattr(fixtures, test_name).pytestmark if m.name == "parametrize")
        names = [n.strip() for n in mark.args[0]] if not isinstance(mark.args[0], str) else \
            [n.strip() for n in mark.args[0].split(",")]
        column = names.index("obj")
        objects = [jsoncodec.deepcopy(case[column]) for case in mark.args[1]]  # theirs stay untouched
        for index, obj in enumerate(objects):  # names unique within the list, as a list's are
            obj.setdefault("metadata", {})["name"] = f"o{index:03d}"
        assert len(objects) >= 2, test_name
        found.append((resource, objects))
    return found


KINDS = _objects_by_kind()
LATER = [fixtures.NOW, fixtures.NOW + dt.timedelta(seconds=1), fixtures.NOW + dt.timedelta(minutes=7, seconds=3),
         fixtures.NOW + dt.timedelta(days=3, hours=5), fixtures.NOW + dt.timedelta(days=900)]
LIST_META = {"resourceVersion": "77", "continue": "abc", "remainingItemCount": 3}


def _texts(objects: list[dict[str, Any]]) -> list[str]:
    return [jsoncodec.dumps_text(obj) for obj in objects]


def _reference(resource, objects, include: str, now: dt.datetime) -> bytes:
    decoded = [jsoncodec.loads(text) for text in _texts(objects)]
    return jsoncodec.dumps(printers.to_table(resource, decoded, include_object=include, now=now,
                                             list_meta=LIST_META))


@pytest.mark.parametrize("include", ["Metadata", "Object", "None"])
@pytest.mark.parametrize(("resource", "objects"), KINDS, ids=[r.kind for r, _ in KINDS])
def test_kept_rows_give_the_bytes_to_table_gives_at_every_later_time(resource, objects, include: str) -> None:
    cache = rows.RowCache()
    texts = _texts(objects)
    revisions = list(range(100, 100 + len(texts)))
    for now in LATER:  # the first call builds every row; the later ones only render clock cells
        got = rows.table_bytes(resource, texts, revisions, include_object=include, now=now, list_meta=LIST_META,
                               cache=cache)
        assert got == _reference(resource, objects, include, now), now
    assert len(cache) == len(texts)
    uncached = rows.table_bytes(resource, texts, [], include_object=include, now=LATER[2], list_meta=LIST_META,
                                cache=None)
    assert uncached == _reference(resource, objects, include, LATER[2])


def test_clock_cells_are_kept_as_since_and_everything_else_as_printed() -> None:
    pod = fixtures.pod(statuses=[fixtures.running(restarts=2, last_finished=fixtures.ago(hours=3, minutes=5))])
    cells = printers.printer_for(fixtures.POD).cells(pod, rows.DEFERRED)
    kinds = [type(cell).__name__ for cell in cells]
    assert kinds == ["str", "str", "str", "Since", "Since", "str", "str", "str", "str"]  # RESTARTS and AGE
    assert [cell.at(fixtures.NOW) if isinstance(cell, rows.Since) else cell for cell in cells] == \
        printers.row_cells(fixtures.POD, pod, fixtures.NOW)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    printed: list[str] = []
    original = printers.PRINTERS[("", "Pod")]

    def cells(obj: dict[str, Any], now: dt.datetime) -> list[Any]:
        printed.append(obj["metadata"]["name"])
        return original.cells(obj, now)

    monkeypatch.setitem(printers.PRINTERS, ("", "Pod"), Printer(original.columns, cells, original.conditions))
    return printed


def test_an_unchanged_object_is_not_printed_again_and_a_changed_one_is(monkeypatch: pytest.MonkeyPatch) -> None:
    printed = _counting(monkeypatch)
    cache = rows.RowCache()
    objects = [fixtures.pod(f"p{index}", statuses=[fixtures.RUNNING]) for index in range(4)]

    def table(revisions: list[int]) -> bytes:
        return rows.table_bytes(fixtures.POD, _texts(objects), revisions, include_object="Metadata",
                                now=fixtures.NOW, list_meta=LIST_META, cache=cache)

    table([1, 2, 3, 4])
    assert printed == ["p0", "p1", "p2", "p3"]
    printed.clear()
    again = table([1, 2, 3, 4])
    assert printed == []
    assert again == _reference(fixtures.POD, objects, "Metadata", fixtures.NOW)
    printed.clear()
    objects[2] = fixtures.pod("p2", phase="Failed", statuses=[fixtures.terminated(exit_code=137)])
    got = table([1, 2, 5, 4])  # p2 written again: a new revision
    assert printed == ["p2"]
    assert got == _reference(fixtures.POD, objects, "Metadata", fixtures.NOW)
    assert b"ExitCode:137" in got


def test_an_object_holding_nul_and_marker_like_text_prints_as_to_table_prints_it() -> None:
    obj = fixtures.pod("p0", statuses=[fixtures.running(restarts=1, last_finished=fixtures.ago(minutes=3))])
    obj["metadata"]["annotations"] = {"a": "\x00svcnet-since-", "b": "\u0000 \x00"}
    for now in LATER[:2]:
        got = rows.table_bytes(fixtures.POD, _texts([obj]), [3], include_object="Metadata", now=now,
                               list_meta=LIST_META, cache=rows.RowCache())
        assert got == _reference(fixtures.POD, [obj], "Metadata", now)


def test_include_object_modes_keep_rows_of_their_own() -> None:
    cache = rows.RowCache()
    objects = [fixtures.pod("p0", statuses=[fixtures.RUNNING])]
    for include in ("Metadata", "None", "Object", "Metadata"):
        got = rows.table_bytes(fixtures.POD, _texts(objects), [9], include_object=include, now=fixtures.NOW,
                               list_meta=LIST_META, cache=cache)
        assert got == _reference(fixtures.POD, objects, include, fixtures.NOW)
    assert len(cache) == 3


def test_the_cache_stays_under_its_byte_bound_evicting_the_least_recently_used() -> None:
    objects = [fixtures.pod(f"p{index:03d}", statuses=[fixtures.RUNNING]) for index in range(200)]
    texts = _texts(objects)
    probe = rows.RowCache()
    rows.table_bytes(fixtures.POD, texts[:1], [1], include_object="Metadata", now=fixtures.NOW,
                     list_meta=LIST_META, cache=probe)
    per_row = probe.bytes
    cache = rows.RowCache(max_bytes=per_row * 50)
    for start in range(0, 200, 20):
        rows.table_bytes(fixtures.POD, texts[start:start + 20], list(range(start, start + 20)),
                         include_object="Metadata", now=fixtures.NOW, list_meta=LIST_META, cache=cache)
        assert cache.bytes <= cache.max_bytes
    assert 40 <= len(cache) <= 50
    scope = (fixtures.POD.api_version, fixtures.POD.kind, "Metadata")
    kept = cache.lookup(scope, list(range(200)))
    assert all(row is None for row in kept[:150]) and all(row is not None for row in kept[-40:])


def test_each_store_has_its_own_cache() -> None:
    class Store:
        pass

    first, second = Store(), Store()
    assert rows.cache_for(first) is rows.cache_for(first)
    assert rows.cache_for(first) is not rows.cache_for(second)
