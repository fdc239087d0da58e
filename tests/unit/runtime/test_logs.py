from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.api.podlogs import LogOptions
from svcnet.runtime.logs import (
    MAX_ENTRY_BYTES,
    CriLineWriter,
    format_timestamp,
    parse_entry,
    parse_timestamp,
    read_log,
    stream_log,
    tail_offset,
)

T0 = 1_795_737_600_000_000_000  # 2026-11-27T00:00:00Z


def write_lines(path: Path, lines: list[tuple[str, bytes]], start: int = T0) -> None:
    clock = iter(range(start, start + len(lines) * 1_000_000_000 + 1, 1_000_000_000))
    out = bytearray()
    writers = {stream: CriLineWriter(stream, out.extend, lambda: next(clock)) for stream in ("stdout", "stderr")}
    for stream, data in lines:
        writers[stream].feed(data)
    path.write_bytes(bytes(out))


def test_timestamps_have_nine_fraction_digits_and_round_trip() -> None:
    assert format_timestamp(T0 + 5) == "2026-11-27T00:00:00.000000005Z"
    assert parse_timestamp("2026-11-27T00:00:00.5Z") == T0 + 500_000_000
    assert parse_timestamp(format_timestamp(T0 + 123456789)) == T0 + 123456789


def test_writer_emits_one_full_entry_per_line_and_partials_for_long_lines() -> None:
    out = bytearray()
    writer = CriLineWriter("stdout", out.extend, lambda: T0)
    writer.feed(b"hel")
    writer.feed(b"lo\nwor")
    writer.feed(b"x" * (MAX_ENTRY_BYTES + 10))
    writer.close()
    entries = [parse_entry(line) for line in bytes(out).split(b"\n")[:-1]]
    assert [(e.partial, len(e.content)) for e in entries if e] == [(False, 5), (True, MAX_ENTRY_BYTES), (False, 13)]
    assert bytes(out).startswith(b"2026-11-27T00:00:00.000000000Z stdout F hello\n")


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "0.log"
    write_lines(path, [("stdout", b"one\n"), ("stderr", b"two\n"), ("stdout", b"three\n"), ("stdout", b"four\n")])
    return path


@pytest.mark.parametrize("options, expected", [
    (LogOptions(), b"one\ntwo\nthree\nfour\n"),
    (LogOptions(tail_lines=2), b"three\nfour\n"),
    (LogOptions(tail_lines=0), b""),
    (LogOptions(tail_lines=10), b"one\ntwo\nthree\nfour\n"),
    (LogOptions(limit_bytes=6), b"one\ntw"),
    (LogOptions(since_ns=T0 + 2_000_000_000), b"three\nfour\n"),
    (LogOptions(tail_lines=1, timestamps=True), b"2026-11-27T00:00:03.000000000Z four\n"),
])
def test_read_log_as_kubectl_shows_it(log_file: Path, options: LogOptions, expected: bytes) -> None:
    assert read_log(log_file, options) == expected


def test_tail_offset_reads_backwards_in_small_chunks(log_file: Path) -> None:
    assert tail_offset(log_file, 3, chunk=7) == tail_offset(log_file, 3)
    assert log_file.read_bytes()[tail_offset(log_file, 1):].count(b"\n") == 1


async def test_follow_yields_new_lines_until_the_log_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    write_lines(path, [("stdout", b"first\n")])
    polls: list[float] = []
    closed = False

    async def appended_while_polling(seconds: float) -> None:
        nonlocal closed
        polls.append(seconds)
        with open(path, "ab") as f:
            f.write(b"2026-11-27T00:00:09.000000000Z stdout F second\n")
        closed = True

    chunks = [chunk async for chunk in stream_log(path, LogOptions(follow=True), log_closed=lambda: closed,
                                                  sleep=appended_while_polling)]
    assert b"".join(chunks) == b"first\nsecond\n" and len(polls) == 1
