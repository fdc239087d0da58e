"""When the store ends its watches (etcd: the history its own watch followed was compacted away),
what the API server built on them does not go silently stale: HTTP watch streams end (clients
watch again, or list again on a 410), and the RBAC policy and the node graph are read again."""
from __future__ import annotations

import asyncio
import json

from aiohttp.test_utils import TestClient

from svcnet.api.resources import lookup
from svcnet.apiserver.authz import StorePolicy
from svcnet.apiserver.nodeauthz import LiveGraph
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions

PODS = lookup("", "v1", "pods")
CLUSTER_ROLES = lookup("rbac.authorization.k8s.io", "v1", "clusterroles")


def end_every_watch(registry: Registry) -> None:
    """What the etcd store does when it cannot resume its watch (EtcdStore._lose_watches)."""
    registry.store._hub.close()  # type: ignore[attr-defined]


def pod(name: str, node: str = "") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **({"nodeName": node} if node else {})}}


async def test_an_http_watch_ends_when_the_store_ends_its_watch(client: TestClient, registry: Registry) -> None:
    listed = await (await client.get("/api/v1/namespaces/default/pods")).json()
    resp = await client.get("/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=300&resourceVersion="
                            + listed["metadata"]["resourceVersion"])
    assert resp.status == 200
    registry.create(PODS, "default", pod("before"), WriteOptions())
    first = json.loads(await asyncio.wait_for(resp.content.readline(), 10))
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "before")
    end_every_watch(registry)
    assert await asyncio.wait_for(resp.content.read(), 10) == b""  # the stream ended, long before its 300 s


def test_the_rbac_policy_is_read_again_after_its_watches_ended(registry: Registry) -> None:
    policy = StorePolicy(registry)
    assert policy.cluster_role("reader") is None
    end_every_watch(registry)
    # Made while nothing watched: a snapshot kept from before would never see it.
    registry.create(CLUSTER_ROLES, None, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                          "metadata": {"name": "reader"}, "rules": []}, WriteOptions())
    assert policy.cluster_role("reader") is not None
    registry.delete(CLUSTER_ROLES, None, "reader", DeleteOptions())  # and the new watches deliver again
    assert policy.cluster_role("reader") is None


def test_the_node_graph_is_rebuilt_after_its_watches_ended(registry: Registry) -> None:
    graph = LiveGraph(registry)
    graph.start()
    registry.create(PODS, "default", pod("web", node="node-1"), WriteOptions())
    assert graph.has_path("node-1", ("pods", "default", "web"))
    end_every_watch(registry)
    registry.delete(PODS, "default", "web", DeleteOptions(grace_period_seconds=0))  # missed by the ended watch
    assert not graph.has_path("node-1", ("pods", "default", "web"))
    graph.stop()
