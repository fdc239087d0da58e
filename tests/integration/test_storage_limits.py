"""Storage under hostile conditions: file modes wherever --storage points, and a full disk.

A real `svcnet apiserver` on a real 2 MiB tmpfs mounted under the test's temp dir (and unmounted
in teardown, even on failure): the disk fills up; reads and deletes still work; a refused write
is a Status and stores nothing; the server restarts on the full disk; once the disk grows, every
acknowledged object is there.
"""
from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.storage.sqlite import SqliteStore
from tests.integration.apiserver_harness import ApiServerProcess, free_port

OBJECTS = "/api/v1/namespaces/default/endpoints"  # a plain object: no allocator, no controller

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at tmp_path/disk, unmounted afterwards whatever happens."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "svcnet-test", str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem says ENOSPC: nothing is left for anyone."""
    filler = directory / "filler"
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28, exc
    assert os.statvfs(directory).f_bavail == 0
    return filler


def blob(name: str) -> dict:
    """An Endpoints object of about 3 KiB (its annotation), with no addresses."""
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "annotations": {"test.svcnet.io/blob": "x" * 3000}}}


def names(server: ApiServerProcess) -> set[str]:
    status, body = server.request("GET", OBJECTS)
    assert status == 200, body
    return {item["metadata"]["name"] for item in body["items"]} - {"kubernetes"}


def test_storage_files_are_private_wherever_storage_points(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "deeper"
    db = elsewhere / "state.db"
    home = tmp_path / "home"
    home.mkdir()
    server = ApiServerProcess(data_dir=tmp_path / "data", port=free_port(), home=home,
                              flags=("--storage", f"sqlite://{db}"), umask=0)
    server.start()
    try:
        status, body = server.request("POST", OBJECTS, blob("written"))
        assert status == 201, body
        assert mode(tmp_path / "elsewhere") == 0o700
        assert mode(elsewhere) == 0o700
        files = {p.name: mode(p) for p in elsewhere.iterdir()}
        assert {"state.db", "state.db-wal", "state.db-shm"} <= files.keys()
        assert files == dict.fromkeys(files, 0o600)
    finally:
        server.stop()
    assert {p.name: mode(p) for p in elsewhere.iterdir()} == dict.fromkeys(
        [p.name for p in elsewhere.iterdir()], 0o600)


def test_a_full_disk_keeps_reads_deletes_and_restarts_and_loses_nothing(
        tmp_path: Path, small_disk: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = ApiServerProcess(data_dir=small_disk, port=free_port(), home=home, log_dir=tmp_path)
    server.start()
    try:
        acknowledged: list[str] = []
        refused = None
        for i in range(2000):  # 2 MiB holds a few hundred of these: the loop ends on the first refusal
            status, body = server.request("POST", OBJECTS, blob(f"cm-{i:04d}"))
            if status != 201:
                refused = (f"cm-{i:04d}", status, body)
                break
            acknowledged.append(f"cm-{i:04d}")
        assert refused is not None, "the disk never filled"
        name, status, body = refused
        assert status == 500 and body["kind"] == "Status", body
        assert "database space exceeded" in body["message"]
        fill(small_disk)

        # A refused write changes nothing.
        status, body = server.request("POST", OBJECTS, blob("one-more"))
        assert status == 500 and "database space exceeded" in body["message"], body
        assert server.request("GET", f"{OBJECTS}/one-more")[0] == 404
        assert server.request("GET", f"{OBJECTS}/{name}")[0] == 404

        # Reads and deletes work.
        assert names(server) == set(acknowledged)
        deleted = acknowledged[:5]
        server.kubectl("delete", "endpoints", *deleted)
        assert names(server) == set(acknowledged) - set(deleted)

        # Restart on the full disk, as the issue found it (after a clean stop) and after a crash with
        # the disk filled again: nothing at startup needs space it has not got.
        kubeconfig = server.kubeconfig.read_bytes()
        server.stop()
        server.start()
        server.kill9()
        fill(small_disk)
        server.start()
        assert server.kubeconfig.read_bytes() == kubeconfig
        assert not list(small_disk.glob("*.tmp"))
        assert names(server) == set(acknowledged) - set(deleted)
        server.kubectl("delete", "endpoints", acknowledged[5])
        deleted.append(acknowledged[5])
        assert names(server) == set(acknowledged) - set(deleted)

        # The disk grows: writes resume, and every acknowledged write is there.
        subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
        status, body = server.request("POST", OBJECTS, blob("after-growth"))
        assert status == 201, body
        server.stop()
        server.start()
        assert names(server) == set(acknowledged) - set(deleted) | {"after-growth"}
    finally:
        server.stop()


def test_the_store_opens_on_a_disk_filled_after_a_clean_close(small_disk: Path) -> None:
    """A clean close removes the WAL and its -shm index; reopening must create the index again."""
    path = str(small_disk / "state.db")
    store = SqliteStore(path)
    keys = [f"/registry/core/pods/default/p{i}" for i in range(50)]
    for key in keys:
        store.create(key, {"metadata": {"name": key.rsplit("/", 1)[1]}, "blob": "x" * 3000})
    store.close()
    assert not (small_disk / "state.db-shm").exists()
    fill(small_disk)

    reopened = SqliteStore(path)
    try:
        assert reopened.space_alarm()
        assert [r.key for r in reopened.list("/registry/core/pods/").records] == sorted(keys)
        reopened.delete(keys[0])
        assert reopened.get(keys[0]) is None
    finally:
        reopened.close()
