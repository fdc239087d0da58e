"""The node lifecycle controller over FakeApi: a node whose lease goes stale is marked."""
from __future__ import annotations

import asyncio
import datetime as dt

from svcnet.controllers.base import LEASES, NODES, InformerFactory
from svcnet.controllers.nodelifecycle import NodeLifecycleController
from svcnet.testing.api import FakeApi

NOW = dt.datetime(2026, 11, 27, 9, 0, 0, tzinfo=dt.UTC)


async def test_stale_lease_marks_the_node_unknown_and_tainted():
    api = FakeApi(clock=lambda: NOW - dt.timedelta(minutes=5))  # registered 5 minutes ago
    await api.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                                   "status": {"conditions": [{"type": "Ready", "status": "True",
                                                              "lastHeartbeatTime": "2026-11-27T08:58:00Z"}]}})
    await api.create(LEASES, "kube-node-lease", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "renewTime": "2026-11-27T08:58:00.000000Z"}})
    informers = InformerFactory(api)
    controller = NodeLifecycleController(api, informers, clock=lambda: NOW)
    controller.setup()
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(controller.run())
    try:
        async def marked() -> dict:
            while True:
                obj = await api.get(NODES, None, "node-1")
                ready = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"][0]
                if ready["status"] == "Unknown" and obj.get("spec", {}).get("taints"):
                    return obj
                await asyncio.sleep(0.01)

        obj = await asyncio.wait_for(marked(), 5)
        assert {t["effect"] for t in obj["spec"]["taints"]} == {"NoSchedule", "NoExecute"}
    finally:
        controller.shutdown()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
