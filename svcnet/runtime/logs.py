"""Container logs in the CRI format, written by the shim and read for `kubectl logs`.

One file per container instance, one entry per line of output:
`2026-11-27T08:00:00.000000000Z stdout F hello`, where F ends a line and P is
a piece of a longer one (lines are cut at 16 KiB, as containerd does). Reading
follows kubelet's ReadLogs: tail counts entries from the end, sinceTime skips
older entries, timestamps prefix each entry, limitBytes cuts the output, and a
follow keeps reading until the container's log is closed.
"""
from __future__ import annotations

import asyncio
import calendar
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from svcnet.api.podlogs import LogOptions

WHOLE_LOG = LogOptions()  # no tail, no limit, from the start

MAX_ENTRY_BYTES = 16 * 1024
FULL, PARTIAL = b"F", b"P"


def format_timestamp(unix_ns: int) -> str:
    """RFC 3339 with nine fraction digits in UTC, the fixed form kubelet prints with --timestamps."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_timestamp(text: str) -> int:
    """Unix nanoseconds from an RFC 3339 UTC timestamp with 0-9 fraction digits."""
    if not text.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {text!r}")
    whole, _, fraction = text[:-1].partition(".")
    struct = time.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    seconds = calendar.timegm(struct)
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def format_entry(unix_ns: int, stream: str, content: bytes, partial: bool = False) -> bytes:
    return b"%s %s %s %s\n" % (format_timestamp(unix_ns).encode(), stream.encode(),
                               PARTIAL if partial else FULL, content)


@dataclass(frozen=True)
class LogEntry:
    unix_ns: int
    stream: str
    partial: bool
    content: bytes


def parse_entry(line: bytes) -> LogEntry | None:
    """One CRI log line (without its newline); None if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    try:
        unix_ns = parse_timestamp(parts[0].decode())
    except ValueError:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return LogEntry(unix_ns, parts[1].decode(errors="replace"), parts[2] == PARTIAL, content)


class CriLineWriter:
    """Turns a stream's raw output into CRI entries, a line (or a 16 KiB piece) at a time."""

    def __init__(self, stream: str, write: Callable[[bytes], None],
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.stream = stream
        self._write = write
        self._clock_ns = clock_ns
        self._pending = b""

    def feed(self, data: bytes) -> None:
        self._pending += data
        while True:
            newline = self._pending.find(b"\n")
            if newline == -1 or newline > MAX_ENTRY_BYTES:
                break
            line, self._pending = self._pending[:newline], self._pending[newline + 1:]
            self._write(format_entry(self._clock_ns(), self.stream, line.removesuffix(b"\r")))
        while len(self._pending) > MAX_ENTRY_BYTES:
            piece, self._pending = self._pending[:MAX_ENTRY_BYTES], self._pending[MAX_ENTRY_BYTES:]
            self._write(format_entry(self._clock_ns(), self.stream, piece, partial=True))

    def close(self) -> None:
        """End of output: an unterminated last line still becomes a full entry."""
        if self._pending:
            self._write(format_entry(self._clock_ns(), self.stream, self._pending))
            self._pending = b""


class PreviousLogNotFound(LookupError):
    pass


def render_entry(entry: LogEntry, timestamps: bool) -> bytes:
    """What kubectl shows: the content, a newline for a full entry, the timestamp first if asked."""
    prefix = (format_timestamp(entry.unix_ns) + " ").encode() if timestamps else b""
    return prefix + entry.content + (b"" if entry.partial else b"\n")


def tail_offset(path: Path, lines: int, chunk: int = 64 * 1024) -> int:
    """The file offset where the last `lines` lines begin, reading backwards."""
    if lines <= 0:
        return os.path.getsize(path)
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        position, found = end, 0
        # A final newline ends the last line rather than starting a new one.
        skip_last = True
        while position > 0:
            start = max(0, position - chunk)
            f.seek(start)
            block = f.read(position - start)
            for index in range(len(block) - 1, -1, -1):
                if block[index] != 0x0A:
                    continue
                if skip_last and start + index == end - 1:
                    skip_last = False
                    continue
                found += 1
                if found == lines:
                    return start + index + 1
            skip_last = False
            position = start
    return 0


class _Limiter:
    def __init__(self, limit: int | None) -> None:
        self.remaining = limit

    def cut(self, data: bytes) -> bytes:
        if self.remaining is None:
            return data
        data = data[:self.remaining]
        self.remaining -= len(data)
        return data

    @property
    def done(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


def _render_lines(lines: list[bytes], options: LogOptions) -> bytes:
    out = []
    for line in lines:
        entry = parse_entry(line)
        if entry is None or (options.since_ns is not None and entry.unix_ns < options.since_ns):
            continue
        out.append(render_entry(entry, options.timestamps))
    return b"".join(out)


def read_log(path: Path, options: LogOptions = WHOLE_LOG) -> bytes:
    """The whole (or tailed) log as kubectl shows it, without following."""
    start = tail_offset(path, options.tail_lines) if options.tail_lines is not None else 0
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    complete = data[:data.rfind(b"\n") + 1]
    return _Limiter(options.limit_bytes).cut(_render_lines(complete.split(b"\n")[:-1], options))


async def stream_log(path: Path, options: LogOptions, *, log_closed: Callable[[], bool],
                     poll_seconds: float = 0.2,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncIterator[bytes]:
    """Yield rendered output; with follow, keep yielding new entries until log_closed() and all is read."""
    limiter = _Limiter(options.limit_bytes)
    start = tail_offset(path, options.tail_lines) if options.tail_lines is not None else 0
    pending = b""
    with open(path, "rb") as f:
        f.seek(start)
        while not limiter.done:
            # Ask before reading: whatever was written before the close is then surely read.
            closed = log_closed() if options.follow else True
            data = f.read(1 << 16)
            if data:
                pending += data
                cut = pending.rfind(b"\n") + 1
                lines, pending = pending[:cut].split(b"\n")[:-1], pending[cut:]
                chunk = limiter.cut(_render_lines(lines, options))
                if chunk:
                    yield chunk
                continue
            if closed:
                return
            await sleep(poll_seconds)
