"""The controller framework: shared informers, a work queue per controller, one manager.

Every controller is level-based, as kube-controller-manager's are: informer
handlers only enqueue keys; reconcile(key) reads the current state from the
informer caches, asks a pure function what should exist, and writes the
difference through the API. A missed event or a restart therefore converges.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from svcnet.api.errors import ApiError
from svcnet.api.resources import Resource, lookup
from svcnet.client.events import EventRecorder
from svcnet.client.informer import Informer, object_key
from svcnet.client.workqueue import WorkQueue, run_workers

log = logging.getLogger("svcnet.controllers")

Obj = dict[str, Any]


def resource(group: str, plural: str) -> Resource:
    res = lookup(group, "v1", plural)
    assert res is not None, plural
    return res


PODS = resource("", "pods")
SERVICES = resource("", "services")
ENDPOINTS = resource("", "endpoints")
EVENTS = resource("", "events")
NODES = resource("", "nodes")
NAMESPACES = resource("", "namespaces")
DEPLOYMENTS = resource("apps", "deployments")
REPLICASETS = resource("apps", "replicasets")
STATEFULSETS = resource("apps", "statefulsets")
ENDPOINTSLICES = resource("discovery.k8s.io", "endpointslices")
LEASES = resource("coordination.k8s.io", "leases")


class Api(Protocol):
    """What controllers need of svcnet.client.rest.ApiClient (FakeApi has the same)."""

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Obj: ...
    async def list(self, resource: Resource, namespace: str | None = None, **kw: Any) -> Obj: ...
    async def create(self, resource: Resource, namespace: str | None, body: Obj, **kw: Any) -> Obj: ...
    async def update(self, resource: Resource, namespace: str | None, body: Obj, **kw: Any) -> Obj: ...
    async def update_status(self, resource: Resource, namespace: str | None, body: Obj,
                            **kw: Any) -> Obj: ...
    async def patch(self, resource: Resource, namespace: str | None, name: str, body: Any,
                    **kw: Any) -> Obj: ...
    async def delete(self, resource: Resource, namespace: str | None, name: str, **kw: Any) -> Any: ...


class InformerFactory:
    """One shared informer per resource, as client-go's SharedInformerFactory."""

    def __init__(self, client: Any, resync_period: float | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[str, Informer] = {}

    def informer(self, res: Resource) -> Informer:
        key = f"{res.group}/{res.plural}"
        if key not in self._informers:
            self._informers[key] = Informer(self.client, res, resync_period=self.resync_period)
        return self._informers[key]

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self._informers.values()))

    async def stop(self) -> None:
        for informer in self._informers.values():
            await informer.stop()


class Controller:
    """Subclasses set `name`, register handlers in setup(), and implement reconcile(key)."""

    name = "controller"
    workers = 2

    def __init__(self, api: Api, informers: InformerFactory, *,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.api = api
        self.informers = informers
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.queue: WorkQueue[str] = WorkQueue(name=self.name)
        self.events = EventRecorder(api, self.name, self.clock)

    def setup(self) -> None:
        """Look up informers and add handlers that enqueue keys."""

    async def reconcile(self, key: str) -> float | None:
        """Make the object named by key converge; return a delay to look again, or None."""
        raise NotImplementedError

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def enqueue_handlers(self) -> dict[str, Callable[..., None]]:
        """Handlers that enqueue the object itself on add, update and delete."""
        return {"on_add": self.enqueue, "on_update": lambda old, new: self.enqueue(new),
                "on_delete": self.enqueue}

    async def run(self) -> None:
        await run_workers(self.queue, self.workers, self.reconcile)

    async def requeue_on_conflict(self, sync: Callable[[str], Awaitable[float | None]], key: str,
                                  delay: float = 0.05) -> float | None:
        """Run sync(key); a 409 means it decided on a stale cache: look again once it caught up."""
        try:
            return await sync(key)
        except ApiError as exc:
            if exc.code != 409:
                raise
            log.debug("%s: %s: %s; retrying", self.name, key, exc.message)
            return delay

    def shutdown(self) -> None:
        self.queue.shutdown()


class ControllerManager:
    """A supervisor component running a set of controllers over one client."""

    def __init__(self, api_factory: Callable[[], Any],
                 controllers: list[Callable[[Api, InformerFactory], Controller]]) -> None:
        self._api_factory = api_factory
        self._controller_factories = controllers
        self.controllers: list[Controller] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._api: Any = None
        self.informers: InformerFactory | None = None

    async def start(self) -> None:
        self._api = self._api_factory()
        if hasattr(self._api, "open"):
            await self._api.open()
        self.informers = InformerFactory(self._api)
        self.controllers = [make(self._api, self.informers) for make in self._controller_factories]
        for controller in self.controllers:
            controller.setup()
        self.informers.start()
        await self.informers.wait_synced()
        for controller in self.controllers:
            self._tasks.append(asyncio.create_task(controller.run(), name=f"ctrl-{controller.name}"))
        log.info("controllers running: %s", ", ".join(c.name for c in self.controllers))

    async def stop(self) -> None:
        for controller in self.controllers:
            controller.shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.informers is not None:
            await self.informers.stop()
        if self._api is not None and hasattr(self._api, "close"):
            await self._api.close()


def owner_reference(owner: Obj, *, controller: bool = True, block: bool = True) -> Obj:
    md = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": md["name"],
            "uid": md["uid"], "controller": controller, "blockOwnerDeletion": block}


