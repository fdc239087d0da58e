"""The node lifecycle controller: nodes whose agent went quiet become Ready=Unknown and tainted.

The decision is svcnet.core.nodelifecycle.decide; this loop feeds it the Node
and its Lease and writes what it says (status through nodes/status, taints
through a merge patch of the Node).
"""
from __future__ import annotations

import logging

from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import LEASES, NODES, Controller
from svcnet.core import nodelifecycle

log = logging.getLogger("svcnet.controllers.nodelifecycle")

LEASE_NAMESPACE = "kube-node-lease"


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    workers = 1

    def setup(self) -> None:
        self.nodes = self.informers.informer(NODES)
        self.leases = self.informers.informer(LEASES)
        self.nodes.add_handler(**self.enqueue_handlers())
        self.leases.add_handler(on_add=self._lease_changed,
                                on_update=lambda old, new: self._lease_changed(new))

    def _lease_changed(self, lease) -> None:
        md = metadata_of(lease)
        if md.get("namespace") == LEASE_NAMESPACE:
            self.queue.add(md.get("name", ""))

    async def reconcile(self, key: str) -> float | None:
        _, name = split_key(key)
        node = self.nodes.get(None, name)
        if node is None:
            return None
        lease = self.leases.get(LEASE_NAMESPACE, name)
        decision = nodelifecycle.decide(node, lease, self.clock())
        try:
            if decision.status_patch is not None:
                await self.api.patch(NODES, None, name, decision.status_patch, patch_type="merge",
                                     subresource="status")
                await self.events.emit(node, "Normal", "NodeNotReady",
                                       f"Node {name} status is now: NodeNotReady")
            if decision.taints is not None:
                await self.api.patch(NODES, None, name, {"spec": {"taints": decision.taints}},
                                     patch_type="merge")
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        return decision.recheck_after
