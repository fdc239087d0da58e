"""ClusterIPs from ServiceCIDR objects beyond the configured ranges (upstream's
MultiCIDRServiceAllocator), through the registry's write path."""
from __future__ import annotations

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import DeleteOptions, WriteOptions
from svcnet.apiserver.service_alloc import ServiceAllocator
from svcnet.storage.memory import MemoryStore

SERVICES = lookup("", "v1", "services")
SERVICE_CIDRS = lookup("networking.k8s.io", "v1", "servicecidrs")


def make(cidrs=("10.96.0.0/29",), store=None):
    store = store or MemoryStore()
    alloc = ServiceAllocator(list(cidrs))
    alloc.repair(store)
    reg = build_registry(store, [alloc])
    reg.ensure_system_namespaces()
    return reg, alloc, store


def service_cidr(name: str, *cidrs: str, ready: str | None = "True", deleting: bool = False) -> dict:
    md: dict = {"name": name}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"conditions": [{"type": "Ready", "status": ready}]} if ready else {}
    return {"metadata": md, "spec": {"cidrs": list(cidrs)}, "status": status}


def create(reg, name: str, cluster_ip: str | None = None) -> str:
    spec = {"selector": {"app": name}, "ports": [{"port": 80}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    obj = reg.create(SERVICES, "default", {"metadata": {"name": name}, "spec": spec}, WriteOptions())
    return obj["spec"]["clusterIP"]


def refusal(reg, name: str, cluster_ip: str | None = None) -> str:
    with pytest.raises(ApiError) as info:
        create(reg, name, cluster_ip)
    return info.value.message


def test_a_requested_ip_in_a_ready_servicecidr_is_allocated() -> None:
    reg, alloc, _ = make()
    assert "provided IP is not in the valid range" in refusal(reg, "a", "10.200.0.5")
    alloc.set_service_cidrs([service_cidr("extra", "10.200.0.0/24")])
    assert create(reg, "a", "10.200.0.5") == "10.200.0.5"
    assert "provided IP is already allocated" in refusal(reg, "b", "10.200.0.5")


def test_random_picks_move_to_the_servicecidrs_once_the_configured_range_is_full() -> None:
    reg, alloc, _ = make()
    alloc.set_service_cidrs([service_cidr("extra", "10.200.0.0/30")])
    ips = [create(reg, f"s{i}") for i in range(8)]  # 6 hosts in 10.96.0.0/29, 2 in 10.200.0.0/30
    assert sorted(ips[:6]) == [f"10.96.0.{i}" for i in range(1, 7)]
    assert sorted(ips[6:]) == ["10.200.0.1", "10.200.0.2"]
    assert "range is full" in refusal(reg, "s8")


def test_overlapping_ranges_never_hand_out_one_address_twice() -> None:
    reg, alloc, _ = make()
    alloc.set_service_cidrs([service_cidr("wider", "10.96.0.0/28")])
    ips = [create(reg, f"s{i}") for i in range(14)]  # 10.96.0.1-.14, whichever range gives them
    assert sorted(ips, key=lambda ip: int(ip.rsplit(".", 1)[1])) == [f"10.96.0.{i}" for i in range(1, 15)]
    assert "range is full" in refusal(reg, "s14")


@pytest.mark.parametrize("cidr", [
    service_cidr("extra", "10.200.0.0/24", ready="False"),
    service_cidr("extra", "10.200.0.0/24", deleting=True),
])
def test_a_servicecidr_not_ready_or_being_deleted_takes_no_allocation(cidr: dict) -> None:
    reg, alloc, _ = make()
    alloc.set_service_cidrs([cidr])
    assert "provided IP is not in the valid range" in refusal(reg, "a", "10.200.0.5")


def test_a_servicecidr_without_a_ready_condition_counts_as_ready() -> None:
    reg, alloc, _ = make()
    alloc.set_service_cidrs([service_cidr("extra", "10.200.0.0/24", ready=None)])
    assert create(reg, "a", "10.200.0.5") == "10.200.0.5"


def test_the_configured_range_stops_while_its_servicecidr_is_being_deleted() -> None:
    reg, alloc, _ = make()
    alloc.set_service_cidrs([service_cidr("kubernetes", "10.96.0.0/29", deleting=True)])
    assert "range is full" in refusal(reg, "a")
    assert "provided IP is not in the valid range" in refusal(reg, "a", "10.96.0.3")
    alloc.set_service_cidrs([service_cidr("kubernetes", "10.96.0.0/29", deleting=True),
                             service_cidr("extra", "10.200.0.0/30")])
    assert create(reg, "a").startswith("10.200.0.")


def test_a_deleted_service_gives_its_servicecidr_address_back() -> None:
    reg, alloc, _ = make()
    alloc.set_service_cidrs([service_cidr("extra", "10.200.0.0/24")])
    create(reg, "a", "10.200.0.5")
    reg.delete(SERVICES, "default", "a", DeleteOptions())
    assert create(reg, "b", "10.200.0.5") == "10.200.0.5"


def test_repair_counts_addresses_held_in_stored_servicecidrs() -> None:
    reg, alloc, store = make()
    reg.create(SERVICE_CIDRS, None, {"metadata": {"name": "extra"}, "spec": {"cidrs": ["10.200.0.0/24"]}},
               WriteOptions())
    alloc.set_service_cidrs(reg.list(SERVICE_CIDRS, None).items)
    create(reg, "a", "10.200.0.5")

    restarted = ServiceAllocator(["10.96.0.0/29"])
    report = restarted.repair(store)
    assert report.problems == []
    assert report.allocated_ips == 1
    reg2 = build_registry(store, [restarted])
    assert "provided IP is already allocated" in refusal(reg2, "b", "10.200.0.5")


def test_a_wider_servicecidr_never_picks_the_reserved_kube_dns_address_at_random() -> None:
    store = MemoryStore()
    alloc = ServiceAllocator(["10.96.0.0/29"], reserved_ips=("10.96.0.10",))
    alloc.repair(store)
    reg = build_registry(store, [alloc])
    reg.ensure_system_namespaces()
    alloc.set_service_cidrs([service_cidr("wider", "10.96.0.0/28")])
    ips = {create(reg, f"s{i}") for i in range(13)}  # every host of the /28 but .10
    assert "10.96.0.10" not in ips
    assert create(reg, "kube-dns", "10.96.0.10") == "10.96.0.10"
