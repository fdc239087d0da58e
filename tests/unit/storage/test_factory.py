"""Choosing the driver from a DSN."""
from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.storage.factory import open_store, parse_etcd_dsn
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("dsn_template", "driver", "file_name"),
    [
        ("memory://", MemoryStore, None),
        ("sqlite://{dir}/a.db", SqliteStore, "a.db"),  # sqlite:// + /abs/path: three slashes in all
        ("{dir}/bare.db", SqliteStore, "bare.db"),
    ],
)
def test_dsn_picks_the_driver(tmp_path: Path, dsn_template: str, driver: type, file_name: str | None) -> None:
    store = open_store(dsn_template.format(dir=tmp_path))
    try:
        assert isinstance(store, driver)
        if file_name is not None:
            assert isinstance(store, SqliteStore) and store.path == str(tmp_path / file_name)
            assert (tmp_path / file_name).exists()
    finally:
        store.close()


def test_relative_sqlite_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite://rel/dir.db")
    try:
        assert isinstance(store, SqliteStore) and store.path == str(tmp_path / "rel" / "dir.db")
    finally:
        store.close()


@pytest.mark.parametrize("dsn", [
    "memory://somewhere", "sqlite://", "", "mysql://db:3306", "etcd",
    "etcd://", "etcd://127.0.0.1:0", "etcd://127.0.0.1:65536", "etcd://127.0.0.1:http", "etcd://a b:2379",
    "etcd://h:2379?user=root", "etcd://h:2379?cert=/etc/hostname", "etcd://h:2379?cacert=/no/such/ca.pem",
    "etcd://h:2379?cacert=/etc/hostname&cert=/etc/hostname", "etcd://h:2379?prefix=relative",
    "etcd://h:2379?prefix=/ends/", "etcd://h:2379?prefix=/a&prefix=/b", "etcd://h:2379?prefix=",
    "etcd://" + ",".join(f"h{i}:2379" for i in range(17)), "etcd://[::1]x", "etcd:///", "etcd:///" + "a" * 120,
])
def test_unusable_dsn_is_a_clear_error(dsn: str) -> None:
    with pytest.raises(ValueError, match="storage DSN"):
        open_store(dsn)


def test_etcd_dsn_names_endpoints_tls_files_and_a_key_prefix(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client-key.pem"):
        (tmp_path / name).write_text("")
    config = parse_etcd_dsn(f"etcd://10.0.0.1:2379,etcd-2,[fd00::3]:32379?cacert={tmp_path}/ca.pem"
                            f"&cert={tmp_path}/client.pem&key={tmp_path}/client-key.pem&prefix=/cluster-a")
    assert config.endpoints == (("10.0.0.1", 2379), ("etcd-2", 2379), ("fd00::3", 32379))
    assert (config.ca_cert, config.cert, config.key, config.root) == (
        f"{tmp_path}/ca.pem", f"{tmp_path}/client.pem", f"{tmp_path}/client-key.pem", "/cluster-a")


def test_an_etcd_dsn_may_name_unix_sockets() -> None:
    config = parse_etcd_dsn("etcd:///var/lib/svcnet/etcd/svcnet-1.client:0,/var/lib/svcnet/etcd/svcnet-2.client:0")
    assert config.endpoints == (("/var/lib/svcnet/etcd/svcnet-1.client:0", 0), ("/var/lib/svcnet/etcd/svcnet-2.client:0", 0))


def test_a_plain_etcd_dsn_is_plaintext_with_no_prefix() -> None:
    config = parse_etcd_dsn("etcd://127.0.0.1:2379")
    assert (config.endpoints, config.ca_cert, config.cert, config.root) == ((("127.0.0.1", 2379),), None, None, "")
