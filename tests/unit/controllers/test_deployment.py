"""The Deployment controller (with the ReplicaSet controller) over FakeApi: rollouts, scaling, history."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from svcnet.apiserver.defaults import apply_defaults
from svcnet.controllers.base import DEPLOYMENTS, PODS, REPLICASETS
from svcnet.core import deployment as core
from svcnet.testing.api import FakeApi
from tests.unit.controllers.test_replicaset import Harness, replica_set

HASH = "[bcdfghjklmnpqrstvwxz2456789]+"


def deployment(replicas: int = 3, image: str = "k8s.gcr.io/serve_hostname", **spec: Any) -> dict:
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "hostnames", "namespace": "default"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "hostnames"}},
                  "template": {"metadata": {"labels": {"app": "hostnames"}},
                               "spec": {"containers": [{"name": "hostnames", "image": image}]}},
                  **spec}}
    apply_defaults("Deployment", d)
    return d


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with FakeApi() as api:
        h = Harness(api)
        h.kubelet = True
        await h.start()
        yield h
        await h.stop()


async def get(h: Harness) -> dict:
    return await h.api.get(DEPLOYMENTS, "default", "hostnames")


async def change(h: Harness, **spec: Any) -> None:
    d = await get(h)
    for key, value in spec.items():
        if key == "image":
            d["spec"]["template"]["spec"]["containers"][0]["image"] = value
        else:
            d["spec"][key] = value
    await h.api.update(DEPLOYMENTS, "default", d)


def replica_sets(h: Harness) -> dict[str, dict]:
    return {rs["metadata"]["name"]: rs for rs in h.api.objects(REPLICASETS)}


def images(h: Harness) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in h.pods()}


async def test_a_deployment_gets_a_hashed_replica_set_and_pods_named_like_upstream(harness: Harness) -> None:
    created = await harness.api.create(DEPLOYMENTS, "default", deployment())
    await harness.converge()
    (rs,) = replica_sets(harness).values()
    pod_hash = core.compute_hash(created["spec"]["template"])
    assert rs["metadata"]["name"] == f"hostnames-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "hostnames", "pod-template-hash": pod_hash}
    assert rs["metadata"]["labels"] == {"app": "hostnames", "pod-template-hash": pod_hash}
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert rs["metadata"]["annotations"] == {core.REVISION: "1", core.DESIRED_REPLICAS: "3",
                                             core.MAX_REPLICAS: "4"}
    names = [p["metadata"]["name"] for p in harness.pods()]
    assert len(names) == 3 and all(re.fullmatch(rf"hostnames-{pod_hash}-{HASH}", n) for n in names)
    d = await get(harness)
    assert d["metadata"]["annotations"][core.REVISION] == "1"
    status = d["status"]
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                    "availableReplicas")} == {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3}
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("Available", "MinimumReplicasAvailable"), ("Progressing", "NewReplicaSetAvailable")]
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set hostnames-{pod_hash} from 0 to 3") \
        in await harness.events()


async def test_scaling_up_and_down_resizes_the_replica_set(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment())
    await harness.converge()
    for replicas in (5, 2):
        await change(harness, replicas=replicas)
        await harness.converge()
        (rs,) = replica_sets(harness).values()
        assert rs["spec"]["replicas"] == replicas
        assert rs["metadata"]["annotations"][core.DESIRED_REPLICAS] == str(replicas)
        assert len(harness.pods()) == replicas
        assert (await get(harness))["status"]["availableReplicas"] == replicas
    events = await harness.events()
    name = next(iter(replica_sets(harness)))
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 3 to 5") in events
    assert ("Normal", "ScalingReplicaSet", f"Scaled down replica set {name} from 5 to 2") in events


async def test_rolling_update_never_drops_below_max_unavailable(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment(replicas=4))
    await harness.converge()
    harness.lowest_ready = None
    await change(harness, image="registry.k8s.io/serve_hostname")
    await harness.converge()
    assert harness.lowest_ready is not None and harness.lowest_ready >= 3  # 4 - 25% (rounded down)
    assert images(harness) == {"registry.k8s.io/serve_hostname"}
    rss = sorted(replica_sets(harness).values(), key=lambda rs: int(rs["metadata"]["annotations"][core.REVISION]))
    assert [(rs["spec"]["replicas"], rs["metadata"]["annotations"][core.REVISION]) for rs in rss] == [
        (0, "1"), (4, "2")]
    d = await get(harness)
    assert d["metadata"]["annotations"][core.REVISION] == "2"
    assert core.deployment_complete(d, d["status"])


async def test_rollout_waits_for_new_pods_to_turn_ready(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment(replicas=3))
    await harness.converge()
    old = {p["metadata"]["name"] for p in harness.pods()}
    harness.kubelet = False
    await change(harness, image="registry.k8s.io/serve_hostname")
    await harness.converge()
    harness.unready = {p["metadata"]["name"] for p in harness.pods()} - old
    await harness.play_kubelet()  # the new pod runs, but its readiness probe fails
    await harness.converge()
    pods = {p["metadata"]["name"] for p in harness.pods()}
    assert old < pods and len(pods) == 4  # one surge pod; no old pod may go while it is unready
    status = (await get(harness))["status"]
    assert (status["updatedReplicas"], status["availableReplicas"], status["unavailableReplicas"]) == (1, 3, 1)
    assert core.get_condition(status, "Progressing")["reason"] == "ReplicaSetUpdated"


async def test_recreate_removes_every_old_pod_before_creating_new_ones(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment(strategy={"type": "Recreate"}))
    await harness.converge()
    old_rs = next(iter(replica_sets(harness)))
    await change(harness, image="registry.k8s.io/serve_hostname")
    seen_mixed = False
    for _ in range(100):
        await harness.settle()
        if len(images(harness)) > 1:
            seen_mixed = True
        busy = [c for c in harness.controllers if len(c.queue)]
        if not busy:
            break
        for controller in busy:
            key = await controller.queue.get()
            try:
                await controller.reconcile(key)
            finally:
                controller.queue.done(key)
        await harness.play_kubelet()
    await harness.converge()
    assert not seen_mixed
    assert images(harness) == {"registry.k8s.io/serve_hostname"} and len(harness.pods()) == 3
    assert replica_sets(harness)[old_rs]["spec"]["replicas"] == 0


async def test_scaling_mid_rollout_is_proportional(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment(
        replicas=10, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}))
    await harness.converge()
    harness.kubelet = False
    await change(harness, image="registry.k8s.io/serve_hostname")
    await harness.converge()  # new pods never turn ready: the rollout stalls mid-way
    sizes = {rs["metadata"]["annotations"][core.REVISION]: rs["spec"]["replicas"]
             for rs in replica_sets(harness).values()}
    assert sizes == {"1": 8, "2": 5}
    await change(harness, replicas=20)
    await harness.converge()
    sizes = {rs["metadata"]["annotations"][core.REVISION]: rs["spec"]["replicas"]
             for rs in replica_sets(harness).values()}
    assert sizes == {"1": 14, "2": 9}  # 8:5 kept, total 20 + maxSurge 3


async def test_paused_deployment_scales_but_does_not_roll_out(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment())
    await harness.converge()
    await change(harness, paused=True)
    await harness.converge()
    await change(harness, image="registry.k8s.io/serve_hostname", replicas=4)
    await harness.converge()
    assert len(replica_sets(harness)) == 1
    assert images(harness) == {"k8s.gcr.io/serve_hostname"} and len(harness.pods()) == 4
    cond = core.get_condition((await get(harness))["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("Unknown", "DeploymentPaused")
    await change(harness, paused=False)
    await harness.converge()
    assert images(harness) == {"registry.k8s.io/serve_hostname"}


async def test_old_replica_sets_beyond_the_history_limit_are_deleted(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment(revisionHistoryLimit=1))
    await harness.converge()
    for tag in ("v2", "v3", "v4"):
        await change(harness, image=f"serve_hostname:{tag}")
        await harness.converge()
    revisions = sorted(rs["metadata"]["annotations"][core.REVISION] for rs in replica_sets(harness).values())
    assert revisions == ["3", "4"]


async def test_undo_as_kubectl_does_reuses_the_old_replica_set_with_a_new_revision(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment())
    await harness.converge()
    first = next(iter(replica_sets(harness)))
    await change(harness, image="registry.k8s.io/serve_hostname")
    await harness.converge()
    # kubectl rollout undo: the revision-1 template (hash label removed) patched back in.
    template = replica_sets(harness)[first]["spec"]["template"]
    del template["metadata"]["labels"]["pod-template-hash"]
    template["metadata"]["creationTimestamp"] = None
    await harness.api.patch(DEPLOYMENTS, "default", "hostnames",
                            [{"op": "replace", "path": "/spec/template", "value": template}],
                            patch_type="json")
    await harness.converge()
    rss = replica_sets(harness)
    assert len(rss) == 2 and rss[first]["spec"]["replicas"] == 3
    assert rss[first]["metadata"]["annotations"][core.REVISION] == "3"
    assert rss[first]["metadata"]["annotations"][core.REVISION_HISTORY] == "1"
    assert images(harness) == {"k8s.gcr.io/serve_hostname"}


async def test_an_orphan_replica_set_matching_the_selector_is_adopted(harness: Harness) -> None:
    orphan = replica_set("leftover", replicas=0, labels={"app": "hostnames"})
    orphan["metadata"]["labels"] = {"app": "hostnames"}
    await harness.api.create(REPLICASETS, "default", orphan)
    created = await harness.api.create(DEPLOYMENTS, "default", deployment())
    await harness.converge()
    leftover = replica_sets(harness)["leftover"]
    assert leftover["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert len(harness.pods()) == 3


async def test_deployment_status_counts_come_from_its_replica_sets(harness: Harness) -> None:
    await harness.api.create(DEPLOYMENTS, "default", deployment(replicas=2))
    harness.kubelet = False
    await harness.converge()
    status = (await get(harness))["status"]
    assert (status["replicas"], status["readyReplicas"], status["unavailableReplicas"]) == (2, 0, 2)
    assert core.get_condition(status, "Available")["status"] == "False"
    await harness.play_kubelet()
    await harness.converge()
    status = (await get(harness))["status"]
    assert (status["readyReplicas"], status["availableReplicas"], status["unavailableReplicas"]) == (2, 2, 0)
    assert core.get_condition(status, "Available")["status"] == "True"
    pod = harness.pods()[0]
    assert pod["metadata"]["labels"]["pod-template-hash"]
    assert (await harness.api.get(PODS, "default", pod["metadata"]["name"]))["status"]["phase"] == "Running"
