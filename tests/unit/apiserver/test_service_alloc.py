"""Service IP families, ClusterIPs and NodePorts through the registry's write path."""
from __future__ import annotations

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import DeleteOptions, WriteOptions
from svcnet.apiserver.service_alloc import ServiceAllocator
from svcnet.storage.memory import MemoryStore

SERVICES = lookup("", "v1", "services")


def make(store=None, cidrs=("10.96.0.0/12", "fd00:10:96::/112")):
    store = store or MemoryStore()
    alloc = ServiceAllocator(list(cidrs), "30000-32767", reserved_ips=("10.96.0.10",))
    alloc.repair(store)
    reg = build_registry(store, [alloc])
    reg.ensure_system_namespaces()
    return reg, alloc, store


def svc(name="web", **spec):
    body = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 9376}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def create(reg, obj):
    return reg.create(SERVICES, "default", obj, WriteOptions())


def test_cluster_ip_comes_from_the_service_cidr_with_single_stack_defaults():
    reg, _, _ = make()
    spec = create(reg, svc())["spec"]
    assert spec["clusterIP"].startswith("10.") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"


def test_dual_stack_services_get_one_ip_per_family():
    reg, _, _ = make()
    spec = create(reg, svc(ipFamilyPolicy="PreferDualStack"))["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"]
    assert spec["clusterIPs"][1].startswith("fd00:10:96::")


def test_headless_services_get_none():
    reg, _, _ = make()
    spec = create(reg, svc(clusterIP="None"))["spec"]
    assert spec["clusterIP"] == "None" and spec["clusterIPs"] == ["None"]


def test_requested_ip_twice_is_already_allocated_and_nothing_is_stored():
    reg, _, store = make()
    create(reg, svc("a", clusterIP="10.96.0.50"))
    before = store.current_revision()
    with pytest.raises(ApiError) as err:
        create(reg, svc("b", clusterIP="10.96.0.50"))
    assert err.value.code == 422
    assert err.value.causes[0].field == "spec.clusterIPs[0]"
    assert "provided IP is already allocated" in err.value.message
    assert store.current_revision() == before


def test_requested_ip_outside_the_range_is_refused():
    reg, _, _ = make()
    with pytest.raises(ApiError) as err:
        create(reg, svc(clusterIP="192.168.1.1"))
    assert "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12" in err.value.message


def test_node_ports_are_allocated_and_conflicts_refused():
    reg, _, _ = make()
    spec = create(reg, svc("a", type="NodePort"))["spec"]
    port = spec["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    taken = svc("b", type="NodePort")
    taken["spec"]["ports"][0]["nodePort"] = port
    with pytest.raises(ApiError) as err:
        create(reg, taken)
    assert err.value.causes[0].field == "spec.ports[0].nodePort"
    assert f"{port}: provided port is already allocated" in err.value.message


def test_same_service_port_over_two_protocols_shares_one_node_port():
    reg, _, _ = make()
    obj = svc(type="NodePort")
    obj["spec"]["ports"] = [{"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    ports = create(reg, obj)["spec"]["ports"]
    assert ports[0]["nodePort"] == ports[1]["nodePort"]


def test_delete_releases_and_a_failed_write_rolls_back():
    reg, alloc, _ = make()
    ip = create(reg, svc("a", type="NodePort"))["spec"]["clusterIP"]
    reg.delete(SERVICES, "default", "a", DeleteOptions())
    assert not alloc.ranges["IPv4"].is_allocated(ip)
    assert alloc.ports.allocated() == set()
    bad = svc("b", clusterIP="10.96.0.77")
    bad["spec"]["ports"][0]["port"] = 70000  # invalid: the allocation must be undone
    with pytest.raises(ApiError):
        create(reg, bad)
    assert not alloc.ranges["IPv4"].is_allocated("10.96.0.77")


def test_type_change_allocates_and_releases_node_ports():
    reg, alloc, _ = make()
    obj = create(reg, svc())
    obj["spec"]["type"] = "NodePort"
    obj, _ = reg.update(SERVICES, "default", "web", obj, WriteOptions())
    port = obj["spec"]["ports"][0]["nodePort"]
    assert alloc.ports.is_allocated(port)
    obj["spec"]["type"] = "ClusterIP"
    obj, _ = reg.update(SERVICES, "default", "web", obj, WriteOptions())
    assert "nodePort" not in obj["spec"]["ports"][0]
    assert not alloc.ports.is_allocated(port)


def test_changing_the_cluster_ip_is_refused_and_keeps_the_old_one():
    reg, alloc, _ = make()
    obj = create(reg, svc(clusterIP="10.96.0.60"))
    obj["spec"]["clusterIP"] = "10.96.0.61"
    with pytest.raises(ApiError) as err:
        reg.update(SERVICES, "default", "web", obj, WriteOptions())
    assert "may not change once set" in err.value.message
    assert alloc.ranges["IPv4"].is_allocated("10.96.0.60")
    assert not alloc.ranges["IPv4"].is_allocated("10.96.0.61")


def test_repair_after_restart_keeps_what_is_held_and_reports_doubles():
    reg, _, store = make()
    held = create(reg, svc("a", type="NodePort"))["spec"]
    create(reg, svc("b"))
    reg.delete(SERVICES, "default", "b", DeleteOptions())
    _, alloc, _ = make(store)  # a restart: tables rebuilt from storage
    assert alloc.ranges["IPv4"].is_allocated(held["clusterIP"])
    assert alloc.ports.is_allocated(held["ports"][0]["nodePort"])
    assert len(alloc.ranges["IPv4"].allocated()) == 1

    twin = store.get("/registry/core/services/default/a").value
    twin["metadata"]["name"] = "twin"
    store.create("/registry/core/services/default/twin", twin)  # corrupt state written behind our back
    report = ServiceAllocator(["10.96.0.0/12"]).repair(store)
    assert any("assigned to multiple services" in p for p in report.problems)


def test_external_name_services_hold_no_ip():
    reg, alloc, _ = make()
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
           "spec": {"type": "ExternalName", "externalName": "example.com"}}
    spec = create(reg, obj)["spec"]
    assert "clusterIP" not in spec and "ipFamilies" not in spec
    assert alloc.ranges["IPv4"].allocated() == set()


def test_single_stack_cluster_refuses_require_dual_stack():
    reg, _, _ = make(cidrs=("10.96.0.0/12",))
    with pytest.raises(ApiError) as err:
        create(reg, svc(ipFamilyPolicy="RequireDualStack"))
    assert "spec.ipFamilyPolicy" in err.value.message
