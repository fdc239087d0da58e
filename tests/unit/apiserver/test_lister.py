"""StoreLister: the write path's cache of namespaces and ServiceAccounts, kept from the store's watch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from svcnet.api import errors
from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.lister import StoreLister
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.apiserver.serviceaccount_admission import ServiceAccountAdmission
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore

NAMESPACES = lookup("", "v1", "namespaces")
PODS = lookup("", "v1", "pods")
SERVICE_ACCOUNTS = lookup("", "v1", "serviceaccounts")
PREFIX = "/registry/core/configmaps/"


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": data}


def pod(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    made = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "state.db"))
    yield made
    made.close()


def test_it_holds_what_was_there_and_follows_creates_updates_and_deletes(store) -> None:
    store.create(PREFIX + "default/before", config_map("before", v="1"))
    store.create("/registry/core/secrets/default/other", {"kind": "Secret"})
    lister = StoreLister(store, PREFIX)
    assert lister.get(PREFIX + "default/before")["data"] == {"v": "1"}
    assert lister.get("/registry/core/secrets/default/other") is None  # outside its prefix
    # A store delivers a write's events before it acknowledges it: the cache has it on return.
    store.create(PREFIX + "default/after", config_map("after", v="2"))
    assert lister.get(PREFIX + "default/after")["data"] == {"v": "2"}
    store.update(PREFIX + "default/before", config_map("before", v="3"))
    assert lister.get(PREFIX + "default/before")["data"] == {"v": "3"}
    store.delete(PREFIX + "default/before")
    assert lister.get(PREFIX + "default/before") is None
    lister.stop()


def test_a_watch_the_store_ended_is_noticed_and_the_prefix_listed_again(store) -> None:
    lister = StoreLister(store, PREFIX)
    assert lister.get(PREFIX + "default/late") is None
    ended = lister._watch
    assert ended is not None
    store._hub.close()  # what a store does to every watch when it cannot go on (EtcdStore._lose_watches)
    store.create(PREFIX + "default/late", config_map("late"))
    assert lister.get(PREFIX + "default/late") is not None
    assert ended.ended and lister._watch is not ended and not lister._watch.ended
    lister.stop()


def test_two_registries_over_one_store_see_each_others_namespaces_terminate(tmp_path: Path) -> None:
    """A create's namespace check reads the lister: a namespace made, then put into termination,
    through one registry is seen by the other one's creates (as by an API server beside it)."""
    store = SqliteStore(str(tmp_path / "state.db"))
    try:
        first, second = build_registry(store), build_registry(store)
        first.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
                     WriteOptions())
        second.create(PODS, "team", pod("a", "team"), WriteOptions())
        first.delete(NAMESPACES, None, "team", DeleteOptions())  # the namespace finalizer keeps it, terminating
        with pytest.raises(errors.ApiError) as refused:
            second.create(PODS, "team", pod("b", "team"), WriteOptions())
        assert refused.value.code == 403 and "being terminated" in refused.value.message
        with pytest.raises(errors.ApiError) as missing:
            second.create(PODS, "nowhere", pod("c", "nowhere"), WriteOptions())
        assert missing.value.code == 404
    finally:
        store.close()


def test_service_account_admission_reads_accounts_made_after_it_started(registry: Registry) -> None:
    registry.admission.append(ServiceAccountAdmission(registry))
    registry.create(SERVICE_ACCOUNTS, "default", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                  "metadata": {"name": "default"}}, WriteOptions())
    assert registry.create(PODS, "default", pod("with-token"), WriteOptions())["spec"]["volumes"]
    registry.update(SERVICE_ACCOUNTS, "default", "default",
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"},
                     "automountServiceAccountToken": False}, WriteOptions())
    assert "volumes" not in registry.create(PODS, "default", pod("without"), WriteOptions())["spec"]
