"""What only the etcd driver does, on the session's etcd: upstream keys, lists across moved
resources, errors etcd reports, and a second store (another API server) on the same etcd."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from svcnet.storage.base import NoSpace, StorageError
from svcnet.storage.etcd import EtcdConfig, EtcdStore, EtcdUnavailable, _storage_error

from .recording import Recorder

_roots = itertools.count()


@pytest.fixture
def server(etcd_server: Any) -> Any:
    return etcd_server


def _open(server: Any, root: str) -> EtcdStore:
    return EtcdStore(EtcdConfig((("127.0.0.1", server.spec.client_port),), root=root))


@pytest.fixture
def store(server: Any) -> Iterator[EtcdStore]:
    opened = _open(server, f"/etcd-test-{next(_roots)}")
    yield opened
    opened.close()


def _etcdctl(server: Any, *args: str) -> str:
    assert shutil.which("etcdctl"), "etcdctl missing: install Debian's etcd-client (scripts/bootstrap.sh)"
    out = subprocess.run(["etcdctl", f"--endpoints=127.0.0.1:{server.spec.client_port}", *args],
                         env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=30, check=True)
    return out.stdout


def test_objects_land_under_kube_apiservers_keys_as_json(server: Any) -> None:
    store = _open(server, "")  # no namespace: the keys a kube-apiserver would use
    try:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hostnames", "namespace": "etcd-t"}}
        created = store.create("/registry/core/services/etcd-t/hostnames", service)
        out = _etcdctl(server, "get", "/registry/services/specs/etcd-t/hostnames")
        assert out.splitlines()[0] == "/registry/services/specs/etcd-t/hostnames"
        assert '"name":"hostnames"' in out and "resourceVersion" not in out
        fetched = store.get("/registry/core/services/etcd-t/hostnames")
        assert fetched is not None and fetched.value["metadata"]["resourceVersion"] == str(created.revision)
    finally:
        store.delete("/registry/core/services/etcd-t/hostnames")
        store.close()


def test_a_list_across_moved_resources_is_in_store_key_order_page_by_page(store: EtcdStore) -> None:
    keys = ["/registry/core/endpoints/ns/e", "/registry/core/nodes/n1", "/registry/core/pods/ns/p1",
            "/registry/core/pods/ns/p2", "/registry/core/services/ns/s", "/registry/core/zzz"]
    for key in reversed(keys):
        store.create(key, {"metadata": {"name": key}})
    assert [r.key for r in store.list("/registry/core/").records] == keys
    seen, after = [], None
    while True:
        page = store.list("/registry/core/", limit=4, start_after=after)
        seen += [r.key for r in page.records]
        if page.continue_key is None:
            break
        assert page.remaining == len(keys) - len(seen)
        after = page.continue_key
    assert seen == keys


def test_a_second_store_on_the_same_etcd_sees_the_first_ones_writes(server: Any, store: EtcdStore) -> None:
    """Two API servers over one etcd: the other's write reaches this one's watch."""
    recorder = Recorder()
    root = store._root
    other = _open(server, root)
    try:
        store.watch("/registry/core/pods/", 0, recorder)
        written = other.create("/registry/core/pods/ns/a", {"metadata": {"name": "a"}})
        store.create("/registry/core/pods/ns/b", {"metadata": {"name": "b"}})  # waits for its own event
        assert recorder.summary() == [("ADDED", "/registry/core/pods/ns/a", written.revision),
                                      ("ADDED", "/registry/core/pods/ns/b", written.revision + 1)]
    finally:
        other.close()


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_etcds_nospace_alarm_is_the_stores_no_space() -> None:
    error = _storage_error(_RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"))
    assert isinstance(error, NoSpace) and error.code == 500


def test_an_unreachable_etcd_is_a_503_storage_error_not_a_hang() -> None:
    from svcnet.kernel.etcdserver import free_loopback_port

    store = EtcdStore(EtcdConfig((("127.0.0.1", free_loopback_port()),), timeout=1.0))
    try:
        with pytest.raises(EtcdUnavailable, match="etcd is unavailable") as raised:
            store.get("/registry/core/pods/ns/a")
        assert isinstance(raised.value, StorageError)
        assert (raised.value.code, raised.value.reason, raised.value.retry_after) == (503, "ServiceUnavailable", 1)
    finally:
        store.close()


def test_a_dispatcher_resuming_behind_a_compaction_ends_every_watch(server: Any) -> None:
    """The etcd watch the store follows resumes from a revision etcd has compacted (it fell behind
    while etcd was away, say): the store cannot deliver what it missed, so it ends every watch and
    their owners list again (the HTTP watches end; RBAC and the node graph re-read)."""
    root = f"/etcd-test-{next(_roots)}"
    store, other = _open(server, root), _open(server, root)
    try:
        recorder = Recorder()
        ended: list[int] = []
        watch = store.watch("/registry/core/pods/", 0, recorder)
        watch.on_end(lambda: ended.append(1))
        lagging = store._dispatcher
        assert lagging is not None
        lagging.stop()  # the store's etcd watch is gone; it will resume from where it was
        resume_at = lagging._next
        for i in range(3):  # written through another API server while this one's watch is down
            other.create(f"/registry/core/pods/default/p{i}", {"kind": "Pod", "metadata": {"name": f"p{i}"}})
        other.compact(other.current_revision())
        with store._lock, store._delivery:
            store._dispatcher = type(lagging)(store, resume_at - 1)
        store._dispatcher.start()
        deadline = time.monotonic() + 20
        while not ended and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ended == [1] and watch.cancelled
        assert [e.key for e in recorder.events] == []  # nothing half-delivered
        late = store.watch("/registry/core/pods/", 0, recorder)  # a new watch works again
        other.create("/registry/core/pods/default/after", {"kind": "Pod", "metadata": {"name": "after"}})
        deadline = time.monotonic() + 20
        while not recorder.events and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.key for e in recorder.events] == ["/registry/core/pods/default/after"]
        late.cancel()
    finally:
        store.close()
        other.close()
