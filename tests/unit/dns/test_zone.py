"""ZoneData: slim copies and incremental updates, each naming what it may have changed."""
from __future__ import annotations

from svcnet.dns.answers import Settings, answer
from svcnet.dns.zone import ZoneData, slim_endpoint_slice, slim_service, zone_from_objects


def svc(name: str, ip: str = "10.96.0.50", ns: str = "default") -> dict:
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def eps(service: str, *ips: str, ready: bool = True) -> dict:
    return {"kind": "EndpointSlice", "metadata": {"name": f"{service}-x", "namespace": "default",
                                                  "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def test_slim_service_keeps_only_what_dns_needs() -> None:
    slim = slim_service(svc("web"))
    assert slim.key == "web.default" and slim.cluster_ips == ("10.96.0.50",) and not slim.headless
    assert slim.ports[0].port == 80


def test_slim_slice_drops_not_ready_endpoints() -> None:
    slim = slim_endpoint_slice(eps("web", "10.244.0.1", ready=False))
    assert slim.addresses == () and slim.service == "web"


def test_service_update_returns_its_tags_and_old_and_new_ips() -> None:
    data = zone_from_objects([svc("web")])
    tags = data.apply("Service", svc("web", "10.96.0.51"))
    assert tags == {"svc:web.default", "ip:10.96.0.50", "ip:10.96.0.51"}
    assert "10.96.0.50" not in data.service_ips and data.service_ips["10.96.0.51"] == {"web.default"}


def test_deleting_a_service_makes_it_nxdomain() -> None:
    data = zone_from_objects([svc("web")])
    assert answer(data, Settings(), "web.default.svc.cluster.local.", 1).rcode == 0
    data.apply("Service", svc("web"), deleted=True)
    assert answer(data, Settings(), "web.default.svc.cluster.local.", 1).rcode == 3


def test_slice_moves_between_updates_without_leaving_stale_addresses() -> None:
    data = zone_from_objects([svc("web")])
    data.apply("EndpointSlice", eps("web", "10.244.0.1"))
    data.apply("EndpointSlice", eps("web", "10.244.0.2"))
    assert set(data.endpoint_ips) == {"10.244.0.2"}
    data.apply("EndpointSlice", eps("web", "10.244.0.2"), deleted=True)
    assert data.endpoints == {} and data.endpoint_ips == {}


def test_namespace_delete_makes_its_names_nxdomain() -> None:
    data = ZoneData(synced=True)
    data.apply("Namespace", {"metadata": {"name": "team"}})
    data.apply("Service", svc("api", ns="team"))
    assert answer(data, Settings(), "api.team.svc.cluster.local.", 1).rcode == 0
    assert data.apply("Namespace", {"metadata": {"name": "team"}}, deleted=True) == {"ns:team"}
    assert answer(data, Settings(), "api.team.svc.cluster.local.", 1).rcode == 3


def test_terminating_pods_are_not_kept() -> None:
    data = ZoneData()
    data.apply("Pod", {"metadata": {"name": "p", "namespace": "default", "deletionTimestamp": "2024-01-01T00:00:00Z"},
                       "status": {"podIP": "10.244.0.9"}})
    assert data.pods_by_ip == {}
