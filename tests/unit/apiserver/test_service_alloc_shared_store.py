"""Two API servers over one store: ClusterIPs and NodePorts stay unique across them.

Each "server" is what the daemon builds (a ServiceAllocator repaired from the store and a
Registry over it) and both share one store object, as two kube-apiservers share one etcd:
the same revisions and watches.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver import alloc_state
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import DeleteOptions, WriteOptions
from svcnet.apiserver.service_alloc import REPAIRS_BEFORE_LEAK_CLEANUP, ServiceAllocator
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore
from tests.threads import run_at_once

SERVICES = lookup("", "v1", "services")


def server(store, cidr: str = "10.96.0.0/22", ports: str = "30000-32767"):
    alloc = ServiceAllocator([cidr], ports)
    alloc.repair(store)
    reg = build_registry(store, [alloc])
    reg.ensure_system_namespaces()
    return reg, alloc


def service(name: str, node_port: bool = False, **spec: Any) -> dict[str, Any]:
    body = {"selector": {"app": name}, "ports": [{"port": 80}], **spec}
    if node_port:
        body["type"] = "NodePort"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def create(reg, obj) -> dict[str, Any]:
    return reg.create(SERVICES, "default", obj, WriteOptions())["spec"]


def stored_ports(store, alloc: ServiceAllocator) -> set[int]:
    bits = alloc_state.read_ports(store, str(alloc.ports), alloc.ports.size)[0]
    return {alloc.ports.low + i for i in range(alloc.ports.size) if bits >> i & 1}


@pytest.mark.parametrize("driver", ["memory", "sqlite"])
def test_500_services_created_alternately_through_two_servers_at_once_get_distinct_ips_and_ports(
        driver: str, tmp_path: Path):
    store = MemoryStore() if driver == "memory" else SqliteStore(str(tmp_path / "state.db"))
    servers = [server(store), server(store)]  # a /22: 1022 addresses, so random picks meet
    count, workers = 500, 4
    created: dict[str, dict[str, Any]] = {}

    def work(worker: int) -> None:
        for i in range(worker, count, workers):
            reg, _ = servers[i % 2]  # alternately through both
            created[f"s{i}"] = create(reg, service(f"s{i}", node_port=i % 2 == 0))

    run_at_once(work, workers)
    ips = [spec["clusterIP"] for spec in created.values()]
    ports = [spec["ports"][0]["nodePort"] for spec in created.values() if spec.get("type") == "NodePort"]
    assert len(ips) == count and len(set(ips)) == count
    assert len(ports) == count // 2 and len(set(ports)) == count // 2
    # The store holds the same truth: one IPAddress per Service, every NodePort in the snapshot.
    ip_objects = store.list(alloc_state.IP_ADDRESS_PREFIX).records
    assert {rec.value["metadata"]["name"] for rec in ip_objects} == set(ips)
    assert stored_ports(store, servers[0][1]) == set(ports)
    store.close()


def test_what_one_server_gives_back_the_other_can_hand_out():
    store = MemoryStore()
    (a, _), (b, b_alloc) = server(store, "10.96.0.0/29", "30000-30001"), \
        server(store, "10.96.0.0/29", "30000-30001")
    specs = [create(a, service(f"s{i}", node_port=i < 2)) for i in range(6)]  # every address, both ports
    with pytest.raises(ApiError) as full:
        create(b, service("late"))
    assert "range is full" in full.value.message
    with pytest.raises(ApiError) as no_port:
        create(b, service("late", node_port=True, clusterIP="None"))
    assert "failed to allocate a nodePort" in no_port.value.message

    a.delete(SERVICES, "default", "s0", DeleteOptions())  # NodePort and address freed on a
    late = create(b, service("late", node_port=True))
    assert late["clusterIP"] == specs[0]["clusterIP"]
    assert late["ports"][0]["nodePort"] == specs[0]["ports"][0]["nodePort"]
    assert b_alloc.ranges["IPv4"].is_allocated(late["clusterIP"])


def test_an_address_or_port_asked_for_by_name_is_refused_on_the_other_server():
    store = MemoryStore()
    (a, _), (b, _) = server(store), server(store)
    create(a, service("first", node_port=True, clusterIP="10.96.0.50"))
    port = a.get(SERVICES, "default", "first")["spec"]["ports"][0]["nodePort"]
    with pytest.raises(ApiError) as ip_taken:
        create(b, service("second", clusterIP="10.96.0.50"))
    assert "provided IP is already allocated" in ip_taken.value.message
    twin = service("third", node_port=True)
    twin["spec"]["ports"][0]["nodePort"] = port
    with pytest.raises(ApiError) as port_taken:
        create(b, twin)
    assert "provided port is already allocated" in port_taken.value.message
    # Refused writes leave nothing behind (the third's address was taken, then given back).
    assert [rec.key for rec in store.list(alloc_state.IP_ADDRESS_PREFIX).records] == [
        alloc_state.ip_key("10.96.0.50")]
    assert stored_ports(store, a.admission[0]) == {port}


def test_a_failed_write_gives_its_address_and_port_back_in_the_store():
    store = MemoryStore()
    reg, alloc = server(store)
    bad = service("bad", node_port=True, clusterIP="10.96.0.77")
    bad["spec"]["ports"][0]["port"] = 70000  # invalid: the allocation must be undone
    with pytest.raises(ApiError):
        create(reg, bad)
    assert store.list(alloc_state.IP_ADDRESS_PREFIX).records == []
    assert stored_ports(store, alloc) == set()


def test_dry_run_writes_nothing_to_the_store():
    store = MemoryStore()
    reg, _ = server(store)
    before = store.current_revision()
    spec = reg.create(SERVICES, "default", service("dry", node_port=True), WriteOptions(dry_run=True))["spec"]
    assert spec["clusterIP"] and spec["ports"][0]["nodePort"]
    assert store.current_revision() == before


def test_repair_makes_missing_ipaddresses_and_removes_leaked_ones_after_the_grace_period():
    store = MemoryStore()
    reg, _ = server(store)
    ip = create(reg, service("kept"))["clusterIP"]
    store.delete(alloc_state.ip_key(ip))  # data from before IPAddress objects
    now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    old = alloc_state.ip_address_object("10.96.0.90", "default", "gone", "2026-12-07T11:58:00Z")
    fresh = alloc_state.ip_address_object("10.96.0.91", "default", "in-flight", "2026-12-07T11:59:30Z")
    store.create(alloc_state.ip_key("10.96.0.90"), old)
    store.create(alloc_state.ip_key("10.96.0.91"), fresh)

    restarted = ServiceAllocator(["10.96.0.0/22"])
    restarted.clock = lambda: now
    report = restarted.repair(store)
    names = {rec.value["metadata"]["name"] for rec in store.list(alloc_state.IP_ADDRESS_PREFIX).records}
    assert names == {ip, "10.96.0.91"}  # made for the Service; the old leak gone; the fresh one kept
    assert store.get(alloc_state.ip_key(ip)).value["spec"]["parentRef"]["name"] == "kept"
    assert report.problems == []
    assert restarted.ranges["IPv4"].is_allocated("10.96.0.91")  # held until its grace period ends
    assert not restarted.ranges["IPv4"].is_allocated("10.96.0.90")


def test_a_leaked_node_port_is_freed_only_after_repeated_repairs():
    store = MemoryStore()
    reg, alloc = server(store)
    port = create(reg, service("web", node_port=True))["ports"][0]["nodePort"]
    store.delete("/registry/core/services/default/web")  # the Service gone, its port still set
    for _ in range(REPAIRS_BEFORE_LEAK_CLEANUP - 1):
        alloc.repair(store)
        assert port in stored_ports(store, alloc)
    alloc.repair(store)
    assert port not in stored_ports(store, alloc)


def test_a_server_whose_watch_broke_reads_the_store_before_calling_the_range_full():
    store = MemoryStore()
    (a, _), (b, b_alloc) = server(store, "10.96.0.0/29"), server(store, "10.96.0.0/29")
    specs = [create(a, service(f"s{i}")) for i in range(6)]  # every address
    b_alloc._feed.drain(b_alloc._hold_ip, b_alloc._release_ip_here)  # b has heard of all six
    b_alloc._feed.stop()  # and hears no more of what a does
    a.delete(SERVICES, "default", "s3", DeleteOptions())
    assert b_alloc.ranges["IPv4"].is_allocated(specs[3]["clusterIP"])  # b's table is behind
    assert create(b, service("late"))["clusterIP"] == specs[3]["clusterIP"]
    with pytest.raises(ApiError) as full:
        create(b, service("later"))
    assert "range is full" in full.value.message


def test_a_server_whose_watch_the_store_ended_reads_the_addresses_again_and_follows_them_anew():
    """The store ends every watch (etcd: the history it followed was compacted away): the next
    Service write reads the IPAddress objects again and watches from there, not from a table that
    misses what the other server did meanwhile."""
    store = MemoryStore()
    (a, _), (b, b_alloc) = server(store, "10.96.0.0/29"), server(store, "10.96.0.0/29")
    specs = [create(a, service(f"s{i}")) for i in range(3)]
    create(b, service("b0"))  # b's table has a's three
    store._hub.close()  # what EtcdStore._lose_watches does
    a.delete(SERVICES, "default", "s1", DeleteOptions())  # missed by b's ended watch
    assert b_alloc.ranges["IPv4"].is_allocated(specs[1]["clusterIP"])
    create(b, service("b1"))
    b1 = b.get(SERVICES, "default", "b1")["spec"]["clusterIP"]
    assert b1 == specs[1]["clusterIP"] or not b_alloc.ranges["IPv4"].is_allocated(specs[1]["clusterIP"])
    later = create(a, service("s9"))  # and b's new watch hears of a's writes again
    b_alloc._feed.drain(b_alloc._hold_ip, b_alloc._release_ip_here)
    assert b_alloc.ranges["IPv4"].is_allocated(later["clusterIP"])
