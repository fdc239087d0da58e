"""The objects under one storage prefix, kept from the store's watch, for the write path's lookups.

Upstream's admission plugins read shared informers' listers, not storage: NamespaceLifecycle
checks a create's namespace, and ServiceAccount admission its pod's account, in the API server's
own cache, and look the object up live only when the cache does not have it (it may have been
created a moment ago). svcnet's create path did a store read for each: on SQLite a read right
after another request's commit costs ~30 µs (the read connection's snapshot is renewed), twice a
pod (docs/benchmarks.md, issue 13).

The cache is only ever behind, never ahead: a store delivers a write's events before it
acknowledges the write, so a lister in the process that wrote sees it at once; a write made
through another API server over the same store arrives when that store's watch brings it (as an
informer's lag upstream). A watch the store ended (etcd compacted away the history it was
following, the store closed) is noticed on the next lookup, which lists again.
"""
from __future__ import annotations

import threading
from typing import Any

from svcnet.storage.base import Event, Store, Watch

Obj = dict[str, Any]


class StoreLister:
    def __init__(self, store: Store, prefix: str) -> None:
        self._store = store
        self._prefix = prefix
        self._objects: dict[str, Obj] = {}
        self._watch: Watch | None = None
        self._starting = threading.Lock()

    def get(self, key: str) -> Obj | None:
        """The cached object at key (not to be mutated), or None: not seen yet — look it up live."""
        if self._watch is None or self._watch.ended:
            self._start()
        return self._objects.get(key)

    def stop(self) -> None:
        with self._starting:
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
            self._objects = {}

    def _start(self) -> None:
        with self._starting:
            if self._watch is not None and not self._watch.ended:
                return  # another thread started it meanwhile
            listed = self._store.list(self._prefix)
            objects = {record.key: record.value for record in listed.records}
            self._objects = objects
            # Events after the list's revision: the watch replays them before live ones.
            self._watch = self._store.watch(self._prefix, listed.revision, self._on_event)

    def _on_event(self, event: Event) -> None:
        # One dict operation each, atomic under the interpreter lock: readers on other threads see
        # the object before or after, never half of it.
        if event.type == "DELETED":
            self._objects.pop(event.key, None)
        else:
            self._objects[event.key] = event.value


__all__ = ["StoreLister"]
