from __future__ import annotations

import datetime as dt

import pytest

from svcnet.api import meta

UTC = dt.UTC


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-27T10:00:00Z", dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)),
    ("2026-11-27T10:00:00.250Z", dt.datetime(2026, 11, 27, 10, 0, 0, 250_000, tzinfo=UTC)),
    ("2026-11-27T12:00:00+02:00", dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)),
    ("2026-11-27T10:00:00", dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)),  # no zone: UTC
    (None, None), ("", None), ("yesterday", None), (42, None),
])
def test_parse_time_or_none_reads_api_timestamps_and_gives_none_for_anything_else(value, expected):
    assert meta.parse_time_or_none(value) == expected
