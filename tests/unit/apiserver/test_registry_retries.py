"""Writes that interleave (the HTTP handlers run several at once): a write that lands between a
request's read and its write is a conflict, retried when the request named no resourceVersion,
as kube-apiserver's GuaranteedUpdate retries, and answered 409 when it did."""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.storage.memory import MemoryStore

LEASES = lookup("coordination.k8s.io", "v1", "leases")
KEY = LEASES.storage_key("default", "cm")


class InterleavingStore(MemoryStore):
    """Right after the registry reads KEY, another writer changes it (`times` times)."""

    def __init__(self) -> None:
        super().__init__()
        self.times = 0
        self.reads = 0

    def get(self, key: str):
        record = super().get(key)
        if key == KEY and record is not None:
            self.reads += 1
            if self.times:
                self.times -= 1
                value = dict(record.value)
                value["spec"] = {"holderIdentity": f"other-{self.reads}"}
                super().update(key, value)
        return record


@pytest.fixture
def registry() -> Registry:
    reg = build_registry(InterleavingStore())
    reg.ensure_system_namespaces()
    reg.create(LEASES, "default", lease("creator"), WriteOptions())
    return reg


def lease(holder: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "cm", **meta},
            "spec": {"holderIdentity": holder}}


def test_an_update_without_a_resource_version_is_retried_and_replaces_what_is_stored(registry) -> None:
    registry.store.times = 2
    obj, created = registry.update(LEASES, "default", "cm", lease("me"), WriteOptions())
    assert not created and obj["spec"] == {"holderIdentity": "me"}
    assert registry.store.reads == 3  # two conflicts, then the write
    assert registry.get(LEASES, "default", "cm")["spec"] == {"holderIdentity": "me"}


def test_an_update_naming_a_resource_version_is_a_conflict(registry) -> None:
    rv = registry.get(LEASES, "default", "cm")["metadata"]["resourceVersion"]
    registry.store.times = 1
    with pytest.raises(ApiError) as err:
        registry.update(LEASES, "default", "cm", lease("me", resourceVersion=rv), WriteOptions())
    assert err.value.code == 409
    assert registry.get(LEASES, "default", "cm")["spec"]["holderIdentity"].startswith("other-")  # the other write stands


def test_an_update_gives_up_after_five_conflicts(registry) -> None:
    registry.store.times = 5
    with pytest.raises(ApiError) as err:
        registry.update(LEASES, "default", "cm", lease("me"), WriteOptions())
    assert err.value.code == 409 and err.value.reason == "Conflict"


def test_a_delete_without_a_resource_version_precondition_is_retried(registry) -> None:
    registry.store.times = 1
    _, gone = registry.delete(LEASES, "default", "cm", DeleteOptions())
    assert gone
    with pytest.raises(ApiError) as err:
        registry.get(LEASES, "default", "cm")
    assert err.value.code == 404


def test_a_delete_with_a_resource_version_precondition_is_a_conflict(registry) -> None:
    rv = registry.get(LEASES, "default", "cm")["metadata"]["resourceVersion"]
    registry.store.times = 1
    with pytest.raises(ApiError) as err:
        registry.delete(LEASES, "default", "cm", DeleteOptions(precondition_rv=rv))
    assert err.value.code == 409
    assert registry.get(LEASES, "default", "cm")["spec"]["holderIdentity"].startswith("other-")  # the other write stands
