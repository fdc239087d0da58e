"""GarbageCollector and PodGarbageCollector over FakeApi and real informers."""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from svcnet.api import errors
from svcnet.api.resources import lookup
from svcnet.controllers.base import InformerFactory, owner_reference
from svcnet.controllers.gc import GarbageCollector, PodGarbageCollector, collected_resources
from svcnet.testing.api import FakeApi
from tests.waiting import until

Obj = dict[str, Any]

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
EVENTS = lookup("", "v1", "events")
NAMESPACES = lookup("", "v1", "namespaces")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
REPLICASETS = lookup("apps", "v1", "replicasets")
assert PODS and NODES and EVENTS and DEPLOYMENTS and REPLICASETS

NS = "default"


class RecordingApi(FakeApi):
    """FakeApi that also writes down every delete with its options, for the tests to assert on.

    The propagationPolicy itself is the registry's: it puts the GC finalizer on the object.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deletes: list[tuple[str, str | None, str, str | None, int | None]] = []

    async def delete(self, resource, namespace, name, *, propagation_policy=None,
                     grace_period_seconds=None, **kwargs):
        self.deletes.append((resource.plural, namespace, name, propagation_policy, grace_period_seconds))
        return await super().delete(resource, namespace, name, propagation_policy=propagation_policy,
                                    grace_period_seconds=grace_period_seconds, **kwargs)



async def settle(api: FakeApi) -> None:
    """Let informers and workers run until the API has been quiet for a while (no writes).

    Fixtures settle before stopping informers: FakeApi.watch waits with
    asyncio.wait_for, which on Python 3.11 swallows a cancel that lands as an
    event arrives, and Informer.stop() then waits forever.
    """
    quiet, last = 0, api.resource_version
    while quiet < 50:
        await asyncio.sleep(0.002)
        quiet, last = (quiet + 1, last) if api.resource_version == last else (0, api.resource_version)


# -------------------------------------------------------------------- objects

def deployment(name: str) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}}}


def replicaset(name: str, *owners: Obj, finalizers: tuple[str, ...] = ()) -> Obj:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                   "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}}}
    if owners:
        rs["metadata"]["ownerReferences"] = _references(owners)
    if finalizers:
        rs["metadata"]["finalizers"] = list(finalizers)
    return rs


def pod(name: str, *owners: Obj, node: str = "", block: bool = True, finalizers: tuple[str, ...] = (),
        phase: str | None = None) -> Obj:
    p: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
              "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}
    if owners:
        p["metadata"]["ownerReferences"] = _references(owners, block)
    if finalizers:
        p["metadata"]["finalizers"] = list(finalizers)
    if node:
        p["spec"]["nodeName"] = node
    if phase:
        p["status"] = {"phase": phase}
    return p


def _references(owners: tuple[Obj, ...], block: bool = True) -> list[Obj]:
    """The first owner is the controller: the server refuses two controller references."""
    return [owner_reference(o, controller=i == 0, block=block) for i, o in enumerate(owners)]


def names(api: FakeApi, resource) -> list[str]:
    return [o["metadata"]["name"] for o in api.objects(resource)]


def stored(api: FakeApi, resource, name: str) -> Obj | None:
    return next((o for o in api.objects(resource) if o["metadata"]["name"] == name), None)


def owner_uids(obj: Obj | None) -> list[str]:
    assert obj is not None
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]


# ------------------------------------------------------------------- fixtures

def ticking_clock() -> Callable[[], dt.datetime]:
    """A minute passes at every look: objects created in turn have increasing creationTimestamps."""
    minutes = itertools.count()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return lambda: start + dt.timedelta(minutes=next(minutes))


@pytest.fixture
async def api() -> AsyncIterator[RecordingApi]:
    async with RecordingApi(clock=ticking_clock()) as fake:
        yield fake


@pytest.fixture
async def start_gc(api: RecordingApi):
    running: list[tuple[GarbageCollector, InformerFactory, asyncio.Task[None]]] = []

    async def start() -> GarbageCollector:
        factory = InformerFactory(api)
        gc = GarbageCollector(api, factory)
        gc.setup()
        factory.start()
        await factory.wait_synced()
        running.append((gc, factory, asyncio.create_task(gc.run())))
        return gc

    yield start
    await settle(api)  # see settle()
    for gc, factory, task in running:
        gc.shutdown()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await factory.stop()


# ------------------------------------------------------------ what is watched

# Served for kubectl's default prune allowlist, and collected like every other kind.
PRUNE_ALLOWLIST_PLURALS = {"daemonsets", "replicationcontrollers", "persistentvolumes", "persistentvolumeclaims",
                           "ingresses", "ingressclasses"}


def test_every_deletable_kind_but_events_is_collected():
    plurals = {r.plural for r in collected_resources()}
    assert PRUNE_ALLOWLIST_PLURALS <= plurals
    assert plurals - PRUNE_ALLOWLIST_PLURALS == {"namespaces", "nodes", "pods", "services", "endpoints", "deployments",
                       "replicasets", "statefulsets", "endpointslices", "leases", "servicecidrs",
                       "configmaps", "secrets", "serviceaccounts", "roles", "clusterroles", "rolebindings",
                       "clusterrolebindings", "jobs", "cronjobs", "certificatesigningrequests"}


# ----------------------------------------------------------------- background

async def test_deleting_a_deployment_collects_its_replicaset_and_their_pods(api, start_gc):
    await start_gc()
    deploy = await api.create(DEPLOYMENTS, NS, deployment("web"))
    rs = await api.create(REPLICASETS, NS, replicaset("web-1", deploy))
    for i in range(3):
        await api.create(PODS, NS, pod(f"web-1-{i}", rs))
    await settle(api)
    assert len(names(api, PODS)) == 3  # owners alive: nothing collected

    await api.delete(DEPLOYMENTS, NS, "web")
    await until(lambda: not names(api, REPLICASETS) and not names(api, PODS))
    assert ("replicasets", NS, "web-1", "Background", None) in api.deletes


async def test_a_dependent_of_an_owner_replaced_under_the_same_name_is_collected(api, start_gc):
    old = await api.create(DEPLOYMENTS, NS, deployment("web"))
    await api.create(REPLICASETS, NS, replicaset("web-1", old))
    await api.delete(DEPLOYMENTS, NS, "web")
    await api.create(DEPLOYMENTS, NS, deployment("web"))  # same name, new uid
    await start_gc()
    await until(lambda: not names(api, REPLICASETS))
    assert names(api, DEPLOYMENTS) == ["web"]


async def test_garbage_left_while_the_collector_was_down_is_collected_on_start(api, start_gc):
    rs = await api.create(REPLICASETS, NS, replicaset("web-1"))
    await api.create(PODS, NS, pod("web-1-a", rs))
    await api.delete(REPLICASETS, NS, "web-1")
    await start_gc()
    await until(lambda: not names(api, PODS))


async def test_a_dependent_with_another_live_owner_only_loses_the_dead_reference(api, start_gc):
    await start_gc()
    first = await api.create(REPLICASETS, NS, replicaset("first"))
    second = await api.create(REPLICASETS, NS, replicaset("second"))
    await api.create(PODS, NS, pod("shared", first, second))
    await api.delete(REPLICASETS, NS, "first")
    await until(lambda: owner_uids(stored(api, PODS, "shared")) == [second["metadata"]["uid"]])
    await settle(api)
    assert names(api, PODS) == ["shared"]


async def test_an_owner_the_caches_do_not_hold_is_looked_up_live_before_deleting(api, start_gc):
    # Events are not watched: only a live GET can tell that this owner exists.
    event = await api.create(EVENTS, NS, {"apiVersion": "v1", "kind": "Event",
                                          "metadata": {"name": "ev", "namespace": NS}})
    await start_gc()
    await api.create(PODS, NS, pod("kept", event))
    await settle(api)
    assert names(api, PODS) == ["kept"]

    await api.delete(EVENTS, NS, "ev")
    await api.patch(PODS, NS, "kept", {"metadata": {"labels": {"poke": "1"}}})  # an event to react to
    await until(lambda: not names(api, PODS))


async def test_an_owner_in_another_namespace_owns_nothing_here(api, start_gc):
    for namespace in ("a", "b"):
        await api.create(NAMESPACES, None, {"metadata": {"name": namespace}})
    await start_gc()
    theirs = replicaset("web-1")
    theirs["metadata"]["namespace"] = "b"
    rs = await api.create(REPLICASETS, "b", theirs)
    stray, own_pod = pod("stray", rs), pod("own", rs)
    stray["metadata"]["namespace"] = "a"
    own_pod["metadata"]["namespace"] = "b"
    await api.create(PODS, "a", stray)
    await until(lambda: names(api, PODS) == [])  # the owner does not exist in namespace a
    await api.create(PODS, "b", own_pod)  # the same uid, looked up where it lives, is alive
    await settle(api)
    assert names(api, PODS) == ["own"]


async def test_a_reference_to_a_kind_svcnet_does_not_serve_never_deletes(api, start_gc):
    await start_gc()
    p = pod("job-pod")
    p["metadata"]["ownerReferences"] = [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "name": "j",
                                         "uid": "job-uid", "controller": True}]
    await api.create(PODS, NS, p)
    await settle(api)
    assert names(api, PODS) == ["job-pod"]


# --------------------------------------------------------------------- orphan

async def test_orphan_deletion_lets_the_dependents_go_then_the_owner(api, start_gc):
    await start_gc()
    rs = await api.create(REPLICASETS, NS, replicaset("web-1"))
    other = await api.create(REPLICASETS, NS, replicaset("other"))
    await api.create(PODS, NS, pod("a", rs))
    await api.create(PODS, NS, pod("b", rs, other))
    await api.delete(REPLICASETS, NS, "web-1", propagation_policy="Orphan")
    await until(lambda: names(api, REPLICASETS) == ["other"])
    await settle(api)
    assert names(api, PODS) == ["a", "b"]
    assert owner_uids(stored(api, PODS, "a")) == []
    assert owner_uids(stored(api, PODS, "b")) == [other["metadata"]["uid"]]


# ----------------------------------------------------------------- foreground

async def test_foreground_owner_stays_until_its_blocking_dependents_are_gone(api, start_gc):
    await start_gc()
    rs = await api.create(REPLICASETS, NS, replicaset("web-1"))
    for name in ("a", "b"):  # a finalizer of their own keeps them around once deleted
        await api.create(PODS, NS, pod(name, rs, finalizers=("example.com/hold",)))
    await api.delete(REPLICASETS, NS, "web-1", propagation_policy="Foreground")
    await until(lambda: all(p["metadata"].get("deletionTimestamp") for p in api.objects(PODS)))
    await settle(api)
    held = stored(api, REPLICASETS, "web-1")
    assert held is not None and held["metadata"]["finalizers"] == ["foregroundDeletion"]

    await api.patch(PODS, NS, "a", {"metadata": {"finalizers": None}})
    await settle(api)
    assert stored(api, REPLICASETS, "web-1") is not None  # b still blocks
    await api.patch(PODS, NS, "b", {"metadata": {"finalizers": None}})
    await until(lambda: not names(api, REPLICASETS))
    assert not names(api, PODS)


async def test_foreground_deletion_cascades_down_a_chain(api, start_gc):
    await start_gc()
    deploy = await api.create(DEPLOYMENTS, NS, deployment("web"))
    rs = await api.create(REPLICASETS, NS, replicaset("web-1", deploy))
    await api.create(PODS, NS, pod("web-1-a", rs))
    await api.delete(DEPLOYMENTS, NS, "web", propagation_policy="Foreground")
    await until(lambda: not names(api, DEPLOYMENTS))
    assert not names(api, REPLICASETS) and not names(api, PODS)
    # The ReplicaSet has dependents of its own, so it was deleted in foreground too.
    assert ("replicasets", NS, "web-1", "Foreground", None) in api.deletes


async def test_a_non_blocking_dependent_does_not_hold_a_foreground_owner(api, start_gc):
    await start_gc()
    rs = await api.create(REPLICASETS, NS, replicaset("web-1"))
    await api.create(PODS, NS, pod("loose", rs, block=False, finalizers=("example.com/hold",)))
    await api.delete(REPLICASETS, NS, "web-1", propagation_policy="Foreground")
    await until(lambda: not names(api, REPLICASETS))
    held = stored(api, PODS, "loose")
    assert held is not None and held["metadata"].get("deletionTimestamp")  # collected all the same


async def test_a_dependent_with_a_live_owner_stops_blocking_a_foreground_owner(api, start_gc):
    await start_gc()
    rs = await api.create(REPLICASETS, NS, replicaset("web-1"))
    other = await api.create(REPLICASETS, NS, replicaset("other"))
    await api.create(PODS, NS, pod("shared", rs, other))
    await api.delete(REPLICASETS, NS, "web-1", propagation_policy="Foreground")
    await until(lambda: names(api, REPLICASETS) == ["other"])
    assert owner_uids(stored(api, PODS, "shared")) == [other["metadata"]["uid"]]


# ====================================================================== pod GC

class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
async def podgc(api: RecordingApi):
    """A PodGarbageCollector with synced informers; the test calls reconcile() itself."""
    factories: list[InformerFactory] = []

    async def start(**kwargs: Any) -> tuple[PodGarbageCollector, Clock]:
        clock = Clock()
        factory = InformerFactory(api)
        controller = PodGarbageCollector(api, factory, clock=clock, **kwargs)
        controller.setup()
        factory.start()
        await factory.wait_synced()
        factories.append(factory)
        return controller, clock

    yield start
    await settle(api)  # see settle()
    for factory in factories:
        await factory.stop()


async def register(api: FakeApi, name: str) -> None:
    await api.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})


async def test_pods_of_a_vanished_node_are_failed_then_force_deleted_after_quarantine(api, podgc):
    await register(api, "n1")
    await api.create_with_status(PODS, NS, pod("lost", node="ghost", phase="Running"))
    await api.create_with_status(PODS, NS, pod("fine", node="n1", phase="Running"))
    controller, clock = await podgc(quarantine_seconds=40)
    seeded = len(api.actions)  # the pods' statuses were written after their creates

    assert await controller.reconcile("sweep") == 20  # ghost quarantined; the regular pass comes first
    assert names(api, PODS) == ["fine", "lost"]
    clock.advance(40)
    await controller.reconcile("sweep")
    assert names(api, PODS) == ["fine"]
    assert ("pods", NS, "lost", None, 0) in api.deletes
    status_writes = [a for a in api.actions[seeded:] if a.subresource == "status" and a.name == "lost"]
    assert len(status_writes) == 1  # marked Failed before the delete


async def test_quarantine_shorter_than_the_check_period_sets_the_next_sweep(api, podgc):
    await api.create(PODS, NS, pod("lost", node="ghost"))
    controller, _ = await podgc(quarantine_seconds=5)
    assert await controller.reconcile("sweep") == 5


async def test_a_node_only_the_cache_misses_is_confirmed_live_and_its_pods_kept(api, podgc):
    controller, clock = await podgc(quarantine_seconds=40)
    await controller.informers.informer(NODES).stop()  # the node cache falls behind from here
    await register(api, "late")
    await api.create(PODS, NS, pod("p", node="late"))
    await until(lambda: controller.pods.get(NS, "p"))
    await controller.reconcile("sweep")
    clock.advance(40)
    await controller.reconcile("sweep")
    assert names(api, PODS) == ["p"]
    assert api.deletes == []


async def test_a_terminating_pod_that_was_never_scheduled_is_force_deleted(api, podgc):
    await api.create(PODS, NS, pod("stuck", finalizers=("example.com/hold",)))
    await api.delete(PODS, NS, "stuck")  # held by its finalizer: terminating, unbound
    controller, _ = await podgc()
    api.deletes.clear()
    await controller.reconcile("sweep")
    assert api.deletes == [("pods", NS, "stuck", None, 0)]


async def test_terminated_pods_beyond_the_threshold_go_oldest_first(api, podgc):
    await register(api, "n1")
    await api.create_with_status(PODS, NS, pod("running", node="n1", phase="Running"))  # oldest, but not done
    for name in ("c-oldest", "a-middle", "b-newest"):
        await api.create_with_status(PODS, NS, pod(name, node="n1", phase="Succeeded"))
    controller, _ = await podgc(terminated_pod_threshold=2)
    await controller.reconcile("sweep")
    assert names(api, PODS) == ["a-middle", "b-newest", "running"]


async def test_pod_gc_ignores_a_delete_that_lost_the_race(api, podgc, monkeypatch):
    await api.create(PODS, NS, pod("stuck", finalizers=("example.com/hold",)))
    await api.delete(PODS, NS, "stuck")
    controller, _ = await podgc()

    async def gone(*args: Any, **kwargs: Any) -> Obj:
        raise errors.not_found("pods", "stuck", "")

    monkeypatch.setattr(api, "delete", gone)
    await controller.reconcile("sweep")  # no exception: the pod is gone either way
