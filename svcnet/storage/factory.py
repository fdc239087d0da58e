"""Pick a storage driver from a DSN, in one place (as kine's factory does)."""
from __future__ import annotations

from svcnet.storage.base import Store
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore

SUPPORTED = ("memory://", "sqlite:///ABSOLUTE/PATH.db", "sqlite://RELATIVE/PATH.db", "/a/bare/path.db")


def open_store(dsn: str) -> Store:
    """memory:// is the in-memory driver; sqlite://PATH or a bare path is SQLite."""
    scheme, separator, rest = dsn.partition("://")
    if not separator:
        return _sqlite(dsn)
    if scheme == "memory":
        if rest:
            raise ValueError(f"storage DSN {dsn!r}: memory:// takes no path")
        return MemoryStore()
    if scheme == "sqlite":
        return _sqlite(rest)
    raise ValueError(f"storage DSN {dsn!r}: unknown scheme {scheme!r}; use one of {', '.join(SUPPORTED)}")


def _sqlite(path: str) -> Store:
    if not path:
        raise ValueError("storage DSN names no SQLite file; use sqlite:///ABSOLUTE/PATH.db")
    if path.startswith("//"):  # sqlite:/// followed by an absolute path: one root is enough
        path = "/" + path.lstrip("/")
    return SqliteStore(path)
