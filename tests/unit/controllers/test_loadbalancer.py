"""The service-lb controller over FakeApi: addresses from the pool into status, pending with an
Event when none fits, released on delete or type change, and state rebuilt after a restart."""
from __future__ import annotations

import functools

from svcnet.controllers.base import EVENTS, SERVICES
from svcnet.controllers.loadbalancer import LoadBalancerController
from svcnet.core.loadbalancer import parse_pool, parse_pools
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.waiting import until

POOL = parse_pool("192.168.0.240/31", "192.168.0.0/24")  # two addresses: .240 and .241
make = functools.partial(LoadBalancerController, pool=POOL)


def lb_service(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                     "ports": [{"port": 80, "targetPort": 9376}], **spec}}


async def ingress(api: FakeApi, name: str) -> list:
    svc = await api.get(SERVICES, "default", name)
    return (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []


async def events_of(api: FakeApi, name: str) -> list[tuple[str, str, str]]:
    items = (await api.list(EVENTS, "default"))["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


async def test_a_load_balancer_service_gets_an_address_with_ip_mode_vip():
    api = FakeApi()
    await api.create(SERVICES, "default", lb_service("web"))
    async with controller_starter(api, make) as start:
        await (await start()).settled()
        assert await ingress(api, "web") == [{"ip": "192.168.0.240", "ipMode": "VIP"}]
        assert ("Normal", "IPAllocated", 'Assigned IP ["192.168.0.240"]') in await events_of(api, "web")


async def test_pool_exhaustion_leaves_the_service_pending_with_a_warning_until_an_address_is_freed():
    api = FakeApi()
    for name in ("a", "b", "c"):
        await api.create(SERVICES, "default", lb_service(name))
    async with controller_starter(api, make) as start:
        running = await start()
        await running.settled()
        got = {name: await ingress(api, name) for name in ("a", "b", "c")}
        pending = [name for name, entries in got.items() if not entries]
        assert len(pending) == 1
        warnings = [e for e in await events_of(api, pending[0]) if e[0] == "Warning"]
        assert warnings and warnings[0][1] == "AllocationFailed"
        assert "no available IPs in pool 192.168.0.240/31" in warnings[0][2]
        freed = next(name for name in got if name not in pending)
        freed_ip = got[freed][0]["ip"]
        await api.delete(SERVICES, "default", freed)

        async def pending_got_it() -> bool:
            return await ingress(api, pending[0]) == [{"ip": freed_ip, "ipMode": "VIP"}]
        await until(pending_got_it)


async def test_load_balancer_ip_is_honoured_and_a_bad_one_is_pending():
    api = FakeApi()
    await api.create(SERVICES, "default", lb_service("fixed", loadBalancerIP="192.168.0.241"))
    await api.create(SERVICES, "default", lb_service("outside", loadBalancerIP="192.168.0.9"))
    async with controller_starter(api, make) as start:
        await (await start()).settled()
        assert await ingress(api, "fixed") == [{"ip": "192.168.0.241", "ipMode": "VIP"}]
        assert await ingress(api, "outside") == []
        assert any(reason == "AllocationFailed" and "outside the pool" in message
                   for _, reason, message in await events_of(api, "outside"))


async def test_a_service_with_a_load_balancer_class_is_left_alone():
    api = FakeApi()
    await api.create(SERVICES, "default", lb_service("theirs", loadBalancerClass="example.com/lb"))
    async with controller_starter(api, make) as start:
        await (await start()).settled()
        assert await ingress(api, "theirs") == []
        assert await events_of(api, "theirs") == []


async def test_changing_type_clears_the_status_and_frees_the_address():
    api = FakeApi()
    await api.create(SERVICES, "default", lb_service("web"))
    async with controller_starter(api, make) as start:
        running = await start()
        await running.settled()
        assert await ingress(api, "web")
        await api.patch(SERVICES, "default", "web", {"spec": {"type": "ClusterIP"}})

        async def cleared() -> bool:
            return await ingress(api, "web") == []
        await until(cleared)
        await api.create(SERVICES, "default", lb_service("next"))

        async def reused() -> bool:
            return await ingress(api, "next") == [{"ip": "192.168.0.240", "ipMode": "VIP"}]
        await until(reused)


async def test_a_restarted_controller_rebuilds_its_allocations_from_status():
    api = FakeApi()
    await api.create(SERVICES, "default", lb_service("first", loadBalancerIP="192.168.0.240"))
    async with controller_starter(api, make) as start:
        first = await start()
        await first.settled()
        await first.stop()
        await api.patch(SERVICES, "default", "first", {"spec": {"loadBalancerIP": None}})
        await api.create(SERVICES, "default", lb_service("second"))
        await (await start()).settled()
        assert await ingress(api, "first") == [{"ip": "192.168.0.240", "ipMode": "VIP"}]
        assert await ingress(api, "second") == [{"ip": "192.168.0.241", "ipMode": "VIP"}]


async def test_a_dual_stack_service_gets_an_address_of_each_family_in_its_order_and_a_missing_pool_warns():
    api = FakeApi()
    pools = parse_pools("192.168.0.240/31,fd00:192:168::f0/127", {4: "192.168.0.0/24", 6: "fd00:192:168::/64"})
    await api.create(SERVICES, "default", lb_service("dual", ipFamilies=["IPv6", "IPv4"],
                                                     ipFamilyPolicy="RequireDualStack"))
    await api.create(SERVICES, "default", lb_service("v6", ipFamilies=["IPv6"]))
    async with controller_starter(api, functools.partial(LoadBalancerController, pool=pools)) as start:
        await (await start()).settled()
        assert await ingress(api, "dual") == [{"ip": "fd00:192:168::f0", "ipMode": "VIP"},
                                              {"ip": "192.168.0.240", "ipMode": "VIP"}]
        assert await ingress(api, "v6") == [{"ip": "fd00:192:168::f1", "ipMode": "VIP"}]
    api = FakeApi()
    await api.create(SERVICES, "default", lb_service("dual", ipFamilies=["IPv4", "IPv6"]))
    async with controller_starter(api, make) as start:  # an IPv4 pool only
        await (await start()).settled()
        assert await ingress(api, "dual") == [{"ip": "192.168.0.240", "ipMode": "VIP"}]
        assert any(kind == "Warning" and reason == "AllocationFailed" and "no IPv6 pool" in message
                   for kind, reason, message in await events_of(api, "dual"))
