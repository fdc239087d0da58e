"""PodLogOptions as values: what `pods/log` asks for, shared by the API server (which parses the
query) and the node side (which reads the container's log files), so neither imports the other."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogOptions:
    """core/v1 PodLogOptions, parsed (`container` and `previous` pick the file; these shape its reading)."""
    tail_lines: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    since_ns: int | None = None  # sinceSeconds/sinceTime as unix nanoseconds
    follow: bool = False
