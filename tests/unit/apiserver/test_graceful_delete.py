"""A pod's graceful deletion asked for again: only a shorter grace period takes effect
(kube-apiserver 1.32's rest.BeforeDelete), and grace 0 removes a terminating pod at once."""
from __future__ import annotations

import datetime as dt

import pytest

from svcnet.api.resources import lookup
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.apiserver.strategy import shorten_grace_period
from svcnet.storage.memory import MemoryStore

PODS = lookup("", "v1", "pods")
START = dt.datetime(2026, 11, 27, 8, 0, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> Registry:
    reg = Registry(MemoryStore(), clock=clock)
    reg.ensure_system_namespaces()
    return reg


def bound_pod(registry: Registry, name: str = "p", finalizers: list[str] | None = None) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}]}}
    if finalizers:
        pod["metadata"]["finalizers"] = finalizers
    return registry.create(PODS, "default", pod, WriteOptions())


def delete(registry: Registry, grace: int | None = None, **kw) -> tuple[dict, bool]:
    return registry.delete(PODS, "default", "p", DeleteOptions(grace_period_seconds=grace, **kw))


def deletion(obj: dict) -> tuple[str, int]:
    return obj["metadata"]["deletionTimestamp"], obj["metadata"]["deletionGracePeriodSeconds"]


def test_a_shorter_grace_period_moves_the_deletion_timestamp_back(registry, clock):
    bound_pod(registry)
    obj, _ = delete(registry)  # the pod's 30 s
    assert deletion(obj) == ("2026-11-27T08:00:30Z", 30)
    clock.now = START + dt.timedelta(seconds=10)
    obj, gone = delete(registry, 5)
    # Counted from when the deletion started, not from now (1.32 does not move it to now).
    assert not gone and deletion(obj) == ("2026-11-27T08:00:05Z", 5)
    assert deletion(registry.get(PODS, "default", "p")) == ("2026-11-27T08:00:05Z", 5)


@pytest.mark.parametrize("grace", [None, 30, 60])
def test_a_delete_again_without_a_shorter_period_changes_nothing(registry, grace):
    bound_pod(registry)
    first, _ = delete(registry)
    obj, gone = delete(registry, grace)
    assert not gone and deletion(obj) == deletion(first)
    assert registry.get(PODS, "default", "p")["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_grace_zero_removes_a_terminating_pod_at_once(registry):
    bound_pod(registry)
    delete(registry, 20)
    _, gone = delete(registry, 0)  # kubectl delete --force --grace-period=0
    assert gone
    assert registry.store.get(PODS.storage_key("default", "p")) is None


def test_grace_zero_on_a_terminating_pod_held_by_a_finalizer_only_shortens_it(registry):
    bound_pod(registry, finalizers=["example.com/hold"])
    delete(registry)
    obj, gone = delete(registry, 0)
    assert not gone and deletion(obj) == ("2026-11-27T08:00:00Z", 0)
    obj["metadata"]["finalizers"] = []
    registry.update(PODS, "default", "p", obj, WriteOptions())  # the last finalizer goes: so does the pod
    assert registry.store.get(PODS.storage_key("default", "p")) is None


def test_a_negative_grace_period_is_one_second(registry):
    bound_pod(registry)
    obj, gone = delete(registry, -5)
    assert not gone and deletion(obj) == ("2026-11-27T08:00:01Z", 1)
    bound_pod(registry, "q")
    registry.delete(PODS, "default", "q", DeleteOptions())
    obj, _ = registry.delete(PODS, "default", "q", DeleteOptions(grace_period_seconds=-1))
    assert deletion(obj) == ("2026-11-27T08:00:01Z", 1)


def test_a_dry_run_shortening_or_force_delete_writes_nothing(registry):
    bound_pod(registry)
    first, _ = delete(registry)
    obj, gone = delete(registry, 5, dry_run=True)
    assert not gone and deletion(obj) == ("2026-11-27T08:00:05Z", 5)
    _, gone = delete(registry, 0, dry_run=True)
    assert gone
    assert deletion(registry.get(PODS, "default", "p")) == deletion(first)


def test_a_repeated_delete_of_a_pending_graceful_deletion_leaves_its_finalizers(registry):
    bound_pod(registry)
    delete(registry)
    obj, _ = registry.delete(PODS, "default", "p", DeleteOptions("Foreground"))
    assert "finalizers" not in obj["metadata"]


def test_shorten_grace_period_without_a_deletion_period_is_a_no_op():
    md = {"deletionTimestamp": "2026-11-27T08:00:00Z", "deletionGracePeriodSeconds": 0}
    assert not shorten_grace_period(md, 0)
    assert md == {"deletionTimestamp": "2026-11-27T08:00:00Z", "deletionGracePeriodSeconds": 0}
