"""default/kubernetes and its endpoints, kept by the API server over the real registry."""
from __future__ import annotations

import pytest

from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import (
    build_registry,
    ensure_kubernetes_endpoints,
    ensure_kubernetes_service,
    kubernetes_endpoint_ip,
)
from svcnet.config import ApiServerConfig
from svcnet.storage.memory import MemoryStore

ENDPOINTS = lookup("", "v1", "endpoints")
SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
SERVICES = lookup("", "v1", "services")


@pytest.mark.parametrize(("advertise", "bind", "expected"), [
    ("192.0.2.10", "127.0.0.1", "192.0.2.10"),
    (None, "192.0.2.20", "192.0.2.20"),
    (None, "127.0.0.1", None),  # loopback fails Endpoints validation: no endpoint, as upstream cannot
    (None, "0.0.0.0", None),
    ("2001:db8::1", "::", "2001:db8::1"),
])
def test_the_endpoint_is_the_advertised_or_a_specific_bind_address(advertise, bind, expected):
    assert kubernetes_endpoint_ip(ApiServerConfig(advertise_address=advertise, bind_address=bind)) == expected


def test_the_service_and_endpoints_are_created_once_and_corrected_when_they_drift():
    store = MemoryStore()
    registry = build_registry(store)
    registry.ensure_system_namespaces()
    cfg = ApiServerConfig(advertise_address="192.0.2.10", port=6443)
    ensure_kubernetes_service(registry, cfg)
    ensure_kubernetes_endpoints(registry, cfg)
    assert registry.get(SERVICES, "default", "kubernetes")["spec"]["clusterIP"] == "10.96.0.1"
    assert registry.get(ENDPOINTS, "default", "kubernetes")["subsets"] == [
        {"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    assert registry.get(SLICES, "default", "kubernetes")["endpoints"][0]["addresses"] == ["192.0.2.10"]

    revision = store.current_revision()
    ensure_kubernetes_service(registry, cfg)
    ensure_kubernetes_endpoints(registry, cfg)
    assert store.current_revision() == revision  # nothing unchanged is written

    moved = ApiServerConfig(advertise_address="2001:db8::1", port=6443)
    ensure_kubernetes_endpoints(registry, moved)
    assert registry.get(ENDPOINTS, "default", "kubernetes")["subsets"][0]["addresses"] == [{"ip": "2001:db8::1"}]
    moved_slice = registry.get(SLICES, "default", "kubernetes")
    assert moved_slice["addressType"] == "IPv6" and moved_slice["endpoints"][0]["addresses"] == ["2001:db8::1"]
