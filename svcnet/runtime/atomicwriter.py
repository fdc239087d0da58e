"""A volume directory whose whole content changes at once, as kubelet's atomic writer does it.

The files live in a hidden `..<UTC timestamp>.<random>` directory; `..data` is a symlink to it and
each top-level name of the volume is a symlink to `..data/<name>`. A new payload is written to a
new timestamped directory and `..data` is swapped to it with one rename(2), so a reader that opens
`config/key` sees the old files or the new ones, never a mix. Nothing is written when the payload
is what is there already. (Learnt from pkg/volume/util/atomic_writer.go.)
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from svcnet.core.volumes import FileToWrite, top_level_names, validate_payload

DATA_LINK = "..data"
NEW_DATA_LINK = "..data_tmp"


def _current_files(directory: Path) -> dict[str, FileToWrite] | None:
    """What the data directory holds (path → bytes and mode), or None if there is none."""
    if not directory.is_dir():
        return None
    found: dict[str, FileToWrite] = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            relative = str(path.relative_to(directory))
            found[relative] = FileToWrite(path.read_bytes(), path.stat().st_mode & 0o7777)
    return found


def _write_tree(directory: Path, payload: Mapping[str, FileToWrite]) -> None:
    for relative, item in payload.items():
        path = directory / relative
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, item.mode)
        try:
            os.write(fd, item.data)
        finally:
            os.close(fd)
        os.chmod(path, item.mode)  # the umask may have taken bits off


def write_volume(target: Path, payload: Mapping[str, FileToWrite], now: dt.datetime | None = None) -> bool:
    """Make target hold exactly payload; True if anything changed. A bad path raises VolumeError first."""
    payload = validate_payload(payload)
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    data_link = target / DATA_LINK
    old_dir_name = os.readlink(data_link) if data_link.is_symlink() else None
    old_names = top_level_names(_current_files(target / old_dir_name) or {}) if old_dir_name else set()
    changed = old_dir_name is None or _current_files(target / old_dir_name) != payload
    if changed:
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("..%Y_%m_%d_%H_%M_%S.")
        new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
        os.chmod(new_dir, 0o755)
        _write_tree(new_dir, payload)
        new_link = target / NEW_DATA_LINK
        with contextlib.suppress(FileNotFoundError):
            new_link.unlink()
        os.symlink(new_dir.name, new_link)
        os.replace(new_link, data_link)
    new_names = top_level_names(payload)
    for name in sorted(new_names):
        visible = target / name
        if not visible.is_symlink():
            os.symlink(f"{DATA_LINK}/{name}", visible)
    for name in sorted(old_names - new_names):
        with contextlib.suppress(FileNotFoundError):
            (target / name).unlink()
    if changed and old_dir_name is not None:
        shutil.rmtree(target / old_dir_name, ignore_errors=True)
    return changed


__all__ = ["DATA_LINK", "write_volume"]
