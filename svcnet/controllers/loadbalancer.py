"""The LoadBalancer address controller: one address from the pool per type=LoadBalancer Service,
written to status.loadBalancer.ingress, as MetalLB's controller (and k3s's servicelb) do.

The decisions are svcnet.core.loadbalancer's (`holders`, `allocate_families`: one address per
family in spec.ipFamilies, from that family's pool); this loop feeds them the
Service cache and writes the answer through services/status. Its state is what the Services'
status already says, so a restarted controller hands out nothing twice (MetalLB rebuilds its
allocator the same way). The node that answers ARP for the address is the speakers' business
(svcnet.agent.speaker); this controller never looks at nodes.

A Service with spec.loadBalancerClass is another implementation's and is left alone. One leaving
type LoadBalancer gets its status cleared (upstream's service controller does that after
deleting the cloud load balancer), and a freed address lets pending Services try again.
"""
from __future__ import annotations

import logging

from svcnet.api.errors import ApiError
from svcnet.api.objects import spec_of, status_of
from svcnet.client.informer import object_key
from svcnet.controllers.base import SERVICES, Api, Controller, InformerFactory, Obj
from svcnet.core import loadbalancer as lb

log = logging.getLogger("svcnet.controllers.loadbalancer")


class LoadBalancerController(Controller):
    name = "service-lb-controller"
    workers = 1  # one allocator: two workers could give one address to two Services at once

    def __init__(self, api: Api, informers: InformerFactory, *, pool: lb.Pool | lb.Pools, **kw: object) -> None:
        """pool: one pool, or one per family (a dual-stack Service gets an address from each)."""
        super().__init__(api, informers, **kw)  # type: ignore[arg-type]
        self.pools = pool if isinstance(pool, lb.Pools) else lb.Pools((pool,))
        # What this controller wrote and the cache may not show yet: key -> ips.
        self._written: dict[str, tuple[str, ...]] = {}

    def setup(self) -> None:
        self.services = self.informers.informer(SERVICES)
        self.services.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                  on_delete=self._deleted)

    def _deleted(self, svc: Obj) -> None:
        self.enqueue(svc)
        if lb.ingress_ips(svc):
            self._retry_pending()

    def _retry_pending(self) -> None:
        """An address came free: every pending Service of ours tries again."""
        for other in self.services.list():
            if lb.is_ours(other) and not lb.ingress_ips(other):
                self.enqueue(other)

    def _held(self) -> dict[str, str]:
        held = lb.holders(self.services.list(), self.pools)
        for key, ips in self._written.items():
            for ip in ips:
                held.setdefault(ip, key)
        return held

    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key)

    async def _sync(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        svc = self.services.get(namespace, name)
        if svc is None:
            self._written.pop(key, None)
            return None
        if not lb.is_ours(svc):
            self._written.pop(key, None)
            if spec_of(svc).get("type") != "LoadBalancer" and lb.ingress_ips(svc):
                await self._write(svc, None)  # left type LoadBalancer: its address goes back
                self._retry_pending()
            return None
        held = self._held()
        ips: list[str] = []
        for allocation in lb.allocate_families(svc, self.pools, held):
            if allocation.reason:
                await self.events.emit(svc, "Warning" if allocation.ip is None else "Normal",
                                       allocation.reason, allocation.message)
            if allocation.ip is not None:
                ips.append(allocation.ip)
        # An address it held and no longer gets (loadBalancerIP changed) goes back to the pool.
        released = any(held.get(ip) == key and ip not in ips for ip in lb.ingress_ips(svc))
        if ips:
            self._written[key] = tuple(ips)
        else:
            self._written.pop(key, None)
        if ips or released:
            await self._write(svc, ips)
        if released:
            self._retry_pending()
        return None

    async def _write(self, svc: Obj, ips: list[str] | None) -> None:
        wanted = lb.ingress_status(ips)
        if (status_of(svc).get("loadBalancer") or {}) == wanted:
            return
        # A merge patch: ingress null removes the list, a new list replaces it.
        body = {"status": {"loadBalancer": {"ingress": wanted.get("ingress")}}}
        try:
            await self.api.patch(SERVICES, svc["metadata"]["namespace"], svc["metadata"]["name"], body,
                                 patch_type="merge", subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                self._written.pop(object_key(svc), None)
                return
            raise
        log.info("%s: status.loadBalancer.ingress = %s", object_key(svc), ", ".join(ips or ()) or "[]")
