"""The garbage collector and the pod garbage collector (kube-controller-manager's
garbagecollector and podgc).

GarbageCollector keeps no graph of its own: every collected resource's shared
informer indexes its objects by the uids they name in ownerReferences, so
the caches are the ownership graph. Handlers enqueue the objects an event may
concern (an object with owners, an owner being deleted in foreground or with
orphan, the dependents and owners of a deleted object); reconcile asks
svcnet.core.ownership what to do and does it. An owner the cache lacks is
looked up live before anything is deleted because of it, as upstream does.

PodGarbageCollector sweeps the pod cache: pods bound to a node that is gone
(quarantined, then confirmed by a live GET), pods terminating before they were
scheduled, and terminated pods beyond the threshold are force-deleted.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from svcnet.api.errors import ApiError
from svcnet.api.objects import is_being_deleted, is_pod_terminal, metadata_of, uid_of
from svcnet.api.resources import RESOURCES, Resource
from svcnet.client.informer import Informer
from svcnet.client.workqueue import WorkQueue
from svcnet.controllers.base import NODES, PODS, Api, Controller, InformerFactory, Obj
from svcnet.core import ownership as own

log = logging.getLogger("svcnet.controllers.gc")

OWNER_UID_INDEX = "garbagecollector/owner-uid"

# kube-controller-manager's default --gc-ignored-resources: events never own or belong.
IGNORED_RESOURCES = frozenset({("", "events")})

# Upstream's absentOwnerCache holds 500 owners known to be gone (uids never come back).
ABSENT_OWNER_CACHE_SIZE = 500

# A write lost to a concurrent one (409): look again once the cache has the newer object.
CONFLICT_RETRY_SECONDS = 0.2


def collected_resources() -> tuple[Resource, ...]:
    """Every served kind the collector can watch and delete (upstream: delete+list+watch verbs)."""
    return tuple(r for r in RESOURCES
                 if {"delete", "list", "watch"} <= set(r.verbs) and (r.group, r.plural) not in IGNORED_RESOURCES)


def resource_for(link: own.OwnerLink) -> Resource | None:
    """The served resource an ownerReference points at, by group and kind (any version)."""
    for res in RESOURCES:
        if res.group == link.group and res.kind == link.kind:
            return res
    return None


@dataclass(frozen=True, repr=False)
class Item:
    """One object in the collector's queue: which resource, where, and which incarnation (uid)."""

    resource: Resource
    namespace: str | None
    name: str
    uid: str

    @classmethod
    def of(cls, res: Resource, obj: Obj) -> Item:
        md = metadata_of(obj)
        return cls(res, md.get("namespace") or None, str(md.get("name") or ""), str(md.get("uid") or ""))

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.resource.plural}.{self.resource.group or 'core'} {where}{self.name}"

    def __repr__(self) -> str:  # the work queue logs keys with %r
        return f"<{self} uid={self.uid}>"


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 4

    def __init__(self, api: Api, informers: InformerFactory, *,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(api, informers, clock=clock)
        self.queue: WorkQueue[Item] = WorkQueue(name=self.name)  # type: ignore[assignment]
        self._caches: dict[tuple[str, str], Informer] = {}
        # (namespace looked in, uid): a reference from another namespace must not make a real owner absent.
        self._absent_owners: OrderedDict[tuple[str | None, str], None] = OrderedDict()

    # ------------------------------------------------------------ wiring
    def setup(self) -> None:
        for res in collected_resources():
            informer = self.informers.informer(res)
            with contextlib.suppress(ValueError):  # already there: a second collector on one factory
                informer.add_index(OWNER_UID_INDEX, own.owner_uids)
            informer.add_handler(on_add=functools.partial(self._on_add, res),
                                 on_update=functools.partial(self._on_update, res),
                                 on_delete=functools.partial(self._on_delete, res))
            self._caches[(res.group, res.plural)] = informer

    def _on_add(self, res: Resource, obj: Obj) -> None:
        if own.owner_links(obj) or own.is_orphaning(obj) or own.is_deleting_dependents(obj):
            self.queue.add(Item.of(res, obj))

    def _on_update(self, res: Resource, old: Obj, new: Obj) -> None:
        self._on_add(res, new)
        if own.is_deleting_dependents(new) and not own.is_deleting_dependents(old):
            # Entering foreground deletion: every dependent is now garbage or must let go.
            for dep_res, dep in self._dependents(new):
                self.queue.add(Item.of(dep_res, dep))
        before, after = set(own.owner_links(old)), set(own.owner_links(new))
        for link in before - after:
            # A reference dropped or unblocked: an owner waiting in foreground may be free now.
            self._enqueue_owner(new, link)

    def _on_delete(self, res: Resource, obj: Obj) -> None:
        for dep_res, dep in self._dependents(obj):
            self.queue.add(Item.of(dep_res, dep))
        for link in own.owner_links(obj):
            self._enqueue_owner(obj, link)

    def _enqueue_owner(self, dependent: Obj, link: own.OwnerLink) -> None:
        res = resource_for(link)
        namespace = metadata_of(dependent).get("namespace")
        if res is not None and (namespace or not res.namespaced):
            self.queue.add(Item(res, namespace if res.namespaced else None, link.name, link.uid))

    # ------------------------------------------------------------ lookups
    def _cache(self, res: Resource) -> Informer | None:
        return self._caches.get((res.group, res.plural))

    def _dependents(self, owner: Obj) -> list[tuple[Resource, Obj]]:
        uid = uid_of(owner)
        if not uid:
            return []
        found: list[tuple[Resource, Obj]] = []
        for informer in self._caches.values():
            legal = own.dependents_of(owner, informer.by_index(OWNER_UID_INDEX, uid))
            found.extend((informer.resource, dep) for dep in legal)
        return found

    async def _owner_state(self, item: Item, link: own.OwnerLink) -> own.OwnerState:
        res = resource_for(link)
        if res is None or (res.namespaced and item.namespace is None):
            log.warning("%s: ownerReference to %s %s %s cannot be resolved; leaving it be",
                        item, link.api_version, link.kind, link.name)
            return own.OwnerState.UNRESOLVABLE
        namespace = item.namespace if res.namespaced else None
        if (namespace, link.uid) in self._absent_owners:
            return own.OwnerState.ABSENT
        cache = self._cache(res)
        cached = cache.get(namespace, link.name) if cache is not None else None
        if cached is not None and uid_of(cached) == link.uid:
            return own.owner_state(link, cached)
        # The cache says gone (or was never watching): ask the API server before acting on it.
        try:
            live: Obj | None = await self.api.get(res, namespace, link.name)
        except ApiError as exc:
            if exc.code != 404:
                raise
            live = None
        state = own.owner_state(link, live)
        if state is own.OwnerState.ABSENT:
            self._absent_owners[(namespace, link.uid)] = None
            while len(self._absent_owners) > ABSENT_OWNER_CACHE_SIZE:
                self._absent_owners.popitem(last=False)
        return state

    # ------------------------------------------------------------ reconcile
    async def reconcile(self, item: Item) -> float | None:  # type: ignore[override]
        cache = self._cache(item.resource)
        obj = cache.get(item.namespace, item.name) if cache is not None else None
        if obj is None or uid_of(obj) != item.uid:
            return None  # gone (its delete event already fanned out) or another incarnation
        try:
            await self._collect(item, obj)
        except ApiError as exc:
            if exc.code != 409:
                raise
            log.debug("%s: conflict (%s); looking again", item, exc.message)
            return CONFLICT_RETRY_SECONDS
        return None

    async def _collect(self, item: Item, obj: Obj) -> None:
        if own.is_orphaning(obj):
            await self._orphan_dependents(item, obj)
        elif own.is_deleting_dependents(obj):
            await self._finish_foreground(item, obj)
        elif own.owner_links(obj) and not is_being_deleted(obj):
            states = {link.uid: await self._owner_state(item, link) for link in own.owner_links(obj)}
            decision = own.decide_dependent(obj, states, [d for _, d in self._dependents(obj)])
            await self._carry_out(item, obj, decision)

    async def _carry_out(self, item: Item, obj: Obj, decision: own.DependentDecision) -> None:
        if decision.action == "remove_owner_refs":
            log.info("%s: removing ownerReferences to %s (owners gone or deleting their dependents)",
                     item, ", ".join(decision.remove_uids))
            await self._patch(item, own.remove_owner_refs_patch(obj, decision.remove_uids))
        elif decision.action == "delete":
            if decision.unblock_first:
                patched = await self._patch(item, own.unblock_owner_refs_patch(obj))
                if patched is None:
                    return
                obj = patched
            log.info("%s: deleting (propagationPolicy %s): no live owner is left", item, decision.propagation)
            rv = metadata_of(obj).get("resourceVersion")
            try:
                # Preconditions: delete what was judged, not an object adopted or replaced since.
                await self.api.delete(item.resource, item.namespace, item.name,
                                      propagation_policy=decision.propagation,
                                      preconditions={"uid": item.uid, "resourceVersion": str(rv or "")})
            except ApiError as exc:
                if exc.code != 404:
                    raise

    async def _orphan_dependents(self, item: Item, owner: Obj) -> None:
        for dep_res, dep in self._dependents(owner):
            dep_item = Item.of(dep_res, dep)
            log.info("%s: orphaning %s", item, dep_item)
            await self._patch(dep_item, own.remove_owner_refs_patch(dep, [item.uid]))
        await self._patch(item, own.remove_finalizer_patch(owner, own.ORPHAN_FINALIZER))

    async def _finish_foreground(self, item: Item, owner: Obj) -> None:
        dependents = self._dependents(owner)
        decision = own.decide_foreground_owner(owner, [d for _, d in dependents])
        if decision.remove_finalizer:
            log.info("%s: no blocking dependents left; removing the %s finalizer",
                     item, own.FOREGROUND_FINALIZER)
            await self._patch(item, own.remove_finalizer_patch(owner, own.FOREGROUND_FINALIZER))
            return
        waiting = {uid_of(d) for d in decision.waiting_on}
        for dep_res, dep in dependents:
            if uid_of(dep) in waiting:
                self.queue.add(Item.of(dep_res, dep))

    async def _patch(self, item: Item, body: Obj) -> Obj | None:
        """A merge patch pinned to the resourceVersion it was computed from; None when the object is gone.

        A 409 propagates: reconcile looks again once the cache has caught up.
        """
        try:
            return await self.api.patch(item.resource, item.namespace, item.name, body, patch_type="merge")
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise


# ============================================================== pod GC

# Upstream waits 40 s for a missing node to appear in the informer before its live GET;
# svcnet's informers run beside the API server, so a short wait spares the same GETs.
QUARANTINE_SECONDS = 5.0
CHECK_PERIOD_SECONDS = 20.0  # upstream's gcCheckPeriod
RETRY_SECONDS = 1.0  # after a force-delete that failed (a conflict, say), rather than a whole period
SWEEP = "sweep"


class PodGarbageCollector(Controller):
    name = "podgc"
    workers = 1  # one sweep at a time over the whole pod cache

    def __init__(self, api: Api, informers: InformerFactory, *,
                 clock: Callable[[], dt.datetime] | None = None,
                 quarantine_seconds: float = QUARANTINE_SECONDS,
                 terminated_pod_threshold: int = own.DEFAULT_TERMINATED_POD_THRESHOLD,
                 check_period: float = CHECK_PERIOD_SECONDS) -> None:
        super().__init__(api, informers, clock=clock)
        self.quarantine_seconds = quarantine_seconds
        self.terminated_pod_threshold = terminated_pod_threshold
        self.check_period = check_period
        self._missing_since: dict[str, dt.datetime] = {}

    def setup(self) -> None:
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new))
        self.nodes.add_handler(on_delete=lambda node: self.queue.add(SWEEP))
        self.queue.add(SWEEP)

    def _pod_changed(self, pod: Obj) -> None:
        node = own.node_of(pod)
        if ((node and self.nodes.get(None, node) is None)
                or (is_being_deleted(pod) and not node)
                or (is_pod_terminal(pod) and self.terminated_pod_threshold > 0)):
            self.queue.add(SWEEP)

    async def reconcile(self, key: str) -> float | None:
        now = self.clock()
        pods = self.pods.list()
        doomed: list[tuple[Obj, str, Obj | None]] = []
        for pod in own.terminated_pods_over_threshold(pods, self.terminated_pod_threshold):
            doomed.append((pod, "terminated pods are over the threshold", None))
        for pod in own.unscheduled_terminating_pods(pods):
            doomed.append((pod, "terminating and never scheduled", None))
        known_nodes = [str(metadata_of(n).get("name")) for n in self.nodes.list()]
        quarantine = own.quarantine(pods, known_nodes, self._missing_since, now, self.quarantine_seconds)
        self._missing_since = dict(quarantine.missing_since)
        next_check = [self.check_period]
        if quarantine.next_check is not None:
            next_check.append(quarantine.next_check)
        gone = []
        for node in sorted(quarantine.due):
            if await self._node_exists(node):
                self._missing_since[node] = now  # only the cache was behind: start over
                next_check.append(self.quarantine_seconds)
            else:
                gone.append(node)
        condition = own.disruption_condition(now, "PodGC: node no longer exists")
        for pod in own.pods_on_nodes(pods, gone):
            doomed.append((pod, f"its node {own.node_of(pod)} no longer exists", condition))
        for pod, why, pod_condition in doomed:
            if not await self._force_delete(pod, why, pod_condition):
                next_check.append(RETRY_SECONDS)
        return max(0.0, min(next_check))

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.api.get(NODES, None, name)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    async def _force_delete(self, pod: Obj, why: str, condition: Obj | None = None) -> bool:
        """Mark Failed, then delete with gracePeriodSeconds 0; False when it should be tried again."""
        md = metadata_of(pod)
        namespace, name = md.get("namespace"), str(md.get("name") or "")
        log.info("force-deleting pod %s/%s: %s", namespace, name, why)
        try:
            status_patch = own.failed_status_patch(pod, condition)
            if status_patch is not None:
                # Failed first, as upstream: watchers see how it ended, not a pod Running forever.
                await self.api.patch(PODS, namespace, name, status_patch, patch_type="merge",
                                     subresource="status")
            await self.api.delete(PODS, namespace, name, grace_period_seconds=0,
                                  preconditions={"uid": str(md.get("uid") or "")})
        except ApiError as exc:
            if exc.code != 404:
                log.warning("pod %s/%s not force-deleted (trying again): %s", namespace, name, exc)
                return False
        return True
