"""runtime/atomicwriter: kubelet's layout (..<timestamp> dir, ..data link, per-name links) and its swaps."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from svcnet.core.volumes import FileToWrite, VolumeError
from svcnet.runtime.atomicwriter import DATA_LINK, write_volume

T0 = dt.datetime(2026, 12, 7, 15, 4, 5, tzinfo=dt.UTC)


def hidden(target: Path) -> list[str]:
    return sorted(name for name in os.listdir(target) if name.startswith(".."))


def test_first_write_makes_a_timestamped_dir_the_data_link_and_one_link_per_top_level_name(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_volume(target, {"a": FileToWrite(b"1", 0o644), "dir/b": FileToWrite(b"2", 0o600)}, T0)
    data_dir = os.readlink(target / DATA_LINK)
    assert data_dir.startswith("..2026_12_07_15_04_05.")
    assert hidden(target) == sorted([data_dir, DATA_LINK])
    assert os.readlink(target / "a") == "..data/a" and os.readlink(target / "dir") == "..data/dir"
    assert (target / "dir" / "b").read_bytes() == b"2"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600
    assert (target / data_dir).stat().st_mode & 0o777 == 0o755


def test_same_payload_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    payload = {"a": FileToWrite(b"1", 0o644)}
    write_volume(target, payload, T0)
    before = os.readlink(target / DATA_LINK)
    assert not write_volume(target, payload, T0 + dt.timedelta(seconds=5))
    assert os.readlink(target / DATA_LINK) == before


def test_new_payload_swaps_data_removes_the_old_dir_and_links_of_names_gone(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_volume(target, {"a": FileToWrite(b"1", 0o644), "old": FileToWrite(b"x", 0o644)}, T0)
    first = os.readlink(target / DATA_LINK)
    assert write_volume(target, {"a": FileToWrite(b"2", 0o644), "new": FileToWrite(b"y", 0o644)},
                        T0 + dt.timedelta(seconds=61))
    second = os.readlink(target / DATA_LINK)
    assert second != first and second.startswith("..2026_12_07_15_05_06.")
    assert hidden(target) == sorted([second, DATA_LINK])
    assert sorted(n for n in os.listdir(target) if not n.startswith("..")) == ["a", "new"]
    assert (target / "a").read_bytes() == b"2"


def test_a_mode_change_alone_is_a_new_payload(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_volume(target, {"a": FileToWrite(b"1", 0o644)}, T0)
    assert write_volume(target, {"a": FileToWrite(b"1", 0o400)}, T0)
    assert (target / "a").stat().st_mode & 0o777 == 0o400


def test_an_invalid_path_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_volume(target, {"a": FileToWrite(b"1", 0o644)}, T0)
    before = sorted(os.listdir(target))
    with pytest.raises(VolumeError):
        write_volume(target, {"../escape": FileToWrite(b"x", 0o644)}, T0)
    assert sorted(os.listdir(target)) == before and not (tmp_path / "escape").exists()
