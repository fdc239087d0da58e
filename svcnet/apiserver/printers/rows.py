"""A list's Table, from the stored texts, with each object's row kept for as long as the object does not change.

A row depends only on the object and the clock. An object version is named by its mod revision
(every write gets a fresh one, so a revision is one key's one text for the life of the store); a
row kept under (resource, includeObject, revision) is therefore valid until the object changes,
and a changed object has a new revision: there is nothing to invalidate, only old entries to
evict. The clock is the one thing a row may read besides its object: its printer is given
format.DEFERRED as `now`, so every clock-reading cell (AGE, a RESTARTS "(5m ago)") comes back as
a format.Since, and a kept row is stored as encoded JSON pieces around those cells, which are
rendered with the request's time. A list of objects that have not changed decodes nothing and
runs no printer.

The bytes equal jsoncodec.dumps(to_table(...)) of the decoded page
(tests/unit/apiserver/printers/test_rows.py), so the rows are the ones kube-apiserver's printers
would give (pkg/printers/internalversion), as to_table's are.

Memory is bounded: entries are evicted oldest-used first past max_bytes (the pieces' length plus
an estimate of the Python objects around them). At 10,000 pods with includeObject=Metadata an
entry is about 0.8 KiB (bench/bench_apiserver.py's pods: 7.1 MB counted, 7.9 MiB traced by
tracemalloc); the default bound of 64 MiB keeps 10,000 pods whose row metadata carries
managedFields (~4-6 KiB each), and a larger list keeps its most recently listed rows.
"""
from __future__ import annotations

import datetime as dt
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from svcnet.api import jsoncodec
from svcnet.api.resources import Resource

from . import TABLE_API_VERSION, _row_object, _table_metadata, check_include_object, printer_for
from .format import DEFERRED, Since

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_ENTRY_OVERHEAD = 200  # the key tuple, the OrderedDict slot and the piece list, roughly
_SINCE_BYTES = 150  # a Since and its datetime

# A kept row: encoded JSON pieces, and Since cells between them.
_Row = tuple[bytes | Since, ...]
_Scope = tuple[str, str, str]  # the resource's apiVersion and kind, includeObject


class RowCache:
    """Rows by (scope, mod revision), least recently used evicted first past max_bytes. Thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._rows: OrderedDict[tuple[_Scope, int], tuple[_Row, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, scope: _Scope, revisions: Sequence[int]) -> list[_Row | None]:
        rows: list[_Row | None] = []
        with self._lock:
            entries = self._rows
            for revision in revisions:
                key = (scope, revision)
                entry = entries.get(key)
                if entry is None:
                    rows.append(None)
                else:
                    entries.move_to_end(key)
                    rows.append(entry[0])
        return rows

    def store(self, scope: _Scope, rows: list[tuple[int, _Row]]) -> None:
        with self._lock:
            entries = self._rows
            for revision, row in rows:
                size = _ENTRY_OVERHEAD + sum(len(p) if type(p) is bytes else _SINCE_BYTES for p in row)
                old = entries.pop((scope, revision), None)
                if old is not None:
                    self.bytes -= old[1]
                entries[(scope, revision)] = (row, size)
                self.bytes += size
            while self.bytes > self.max_bytes and entries:
                _, (_, size) = entries.popitem(last=False)
                self.bytes -= size


_caches: weakref.WeakKeyDictionary[Any, RowCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(store: Any) -> RowCache:
    """The row cache of a store: revisions name object versions within one store only."""
    with _caches_lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = RowCache()
        return cache


def table_bytes(resource: Resource, texts: Sequence[str], revisions: Sequence[int], *, include_object: str,
                now: dt.datetime, list_meta: dict[str, Any], cache: RowCache | None) -> bytes:
    """A list's Table as JSON, from the page's stored texts and their mod revisions (one per text).

    Without a cache (or with no revisions) every row is built afresh, and nothing is kept.
    """
    include_object = check_include_object(include_object)
    printer = printer_for(resource)
    scope = (resource.api_version, resource.kind, include_object)
    use_cache = cache is not None and len(revisions) == len(texts)
    rows: list[_Row | None] = cache.lookup(scope, revisions) if use_cache and cache else [None] * len(texts)
    missing = [index for index, row in enumerate(rows) if row is None]
    if missing:
        built: list[tuple[int, _Row]] = []
        with jsoncodec.building_many():  # many small objects and no cycles: keep the collector out
            # One decoder call for every text to build, as ListPage.items does.
            objects = jsoncodec.loads("[" + ",".join(texts[index] for index in missing) + "]")
            for index, obj in zip(missing, objects, strict=True):
                row = _build_row(resource, printer, obj, include_object)
                rows[index] = row
                if use_cache:
                    built.append((revisions[index], row))
            del objects
            if built and cache is not None:
                cache.store(scope, built)
    head = jsoncodec.dumps({
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": _table_metadata([], list_meta),
        "columnDefinitions": [c.to_dict() for c in printer.columns],
        "rows": [],
    })[:-2]  # up to and with '"rows":['
    pieces: list[bytes] = [head]
    rendered: dict[Since, bytes] = {}  # pods created in the same second share their AGE
    for position, row in enumerate(rows):
        if position:
            pieces.append(b",")
        assert row is not None
        for piece in row:
            if type(piece) is bytes:
                pieces.append(piece)
            else:
                text = rendered.get(piece)  # type: ignore[arg-type]
                if text is None:
                    text = rendered[piece] = jsoncodec.dumps(piece.at(now))  # type: ignore[union-attr]
                pieces.append(text)
    pieces.append(b"]}")
    return b"".join(pieces)


def _build_row(resource: Resource, printer: Any, obj: dict[str, Any], include_object: str) -> _Row:
    """One row as pieces: the row encoded once, cut where its clock-reading (Since) cells go.

    Each Since is encoded as a marker no object can hold (a NUL and 128 random bits), and the
    encoded row is split at the markers: the pieces are the bytes around those cells.
    """
    cells = printer.cells(obj, DEFERRED)
    clock_cells = [cell for cell in cells if type(cell) is Since]
    row: dict[str, Any] = {"cells": [_MARKER if type(cell) is Since else cell for cell in cells]}
    conditions = printer.conditions(obj) if printer.conditions else []
    if conditions:
        row["conditions"] = conditions
    row["object"] = _row_object(resource, obj, include_object, copy=False)
    encoded = jsoncodec.dumps(row)
    if not clock_cells:
        return (encoded,)
    pieces = encoded.split(_ENCODED_MARKER)
    assert len(pieces) == len(clock_cells) + 1
    kept: list[bytes | Since] = [pieces[0]]
    for cell, piece in zip(clock_cells, pieces[1:], strict=True):
        kept += [cell, piece]
    return tuple(kept)


_MARKER = "\x00svcnet-since-" + secrets.token_hex(16)
_ENCODED_MARKER = jsoncodec.dumps(_MARKER)
