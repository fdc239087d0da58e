"""Reading Services and EndpointSlices as kube-proxy's change trackers do."""
from __future__ import annotations

import pytest

from svcnet.proxy.model import IPV4, IPV6, ServicePortName, build_model
from tests.unit.proxy.helpers import endpoint, endpoint_slice, port, service


@pytest.mark.parametrize("svc", [
    service("ns", "headless", "None", port("p", 80)),
    service("ns", "unallocated", "", port("p", 80)),
    service("ns", "ext", "", port("p", 80), type="ExternalName", externalName="example.com"),
    service("ns", "other-proxy", "10.96.0.9", port("p", 80),
            labels={"service.kubernetes.io/service-proxy-name": "cilium"}),
])
def test_services_kube_proxy_skips_get_no_service_ports(svc):
    assert build_model([svc], [], "n").service_ports == ()


def test_dual_stack_service_yields_one_port_per_family():
    svc = service("ns", "ds", "10.96.0.5", port("p", 80), ipFamilies=["IPv4", "IPv6"],
                  clusterIPs=["10.96.0.5", "fd00:10:96::5"], externalIPs=["192.0.2.1", "2001:db8::1"])
    v4 = build_model([svc], [], "n", family=IPV4).service_ports[0]
    v6 = build_model([svc], [], "n", family=IPV6).service_ports[0]
    assert (v4.cluster_ip, v4.external_ips) == ("10.96.0.5", ("192.0.2.1",))
    assert (v6.cluster_ip, v6.external_ips) == ("fd00:10:96::5", ("2001:db8::1",))


def test_endpoints_are_deduplicated_sorted_as_strings_and_marked_local():
    slices = [
        endpoint_slice("ns", "s", [endpoint("10.244.1.9"), endpoint("10.244.1.10", node="n")], port("p", 80),
                       suffix="a"),
        endpoint_slice("ns", "s", [endpoint("10.244.1.8"), endpoint("10.244.1.10")], port("p", 80), suffix="b"),
        endpoint_slice("ns", "s", [endpoint("fd00::1")], port("p", 80), suffix="c", address_type="IPv6"),
    ]
    state = build_model([service("ns", "s", "10.96.0.1", port("p", 80))], slices, "n")
    eps = state.endpoints_for(ServicePortName("ns", "s", "p", "TCP"))
    assert [e.address for e in eps] == ["10.244.1.10:80", "10.244.1.8:80", "10.244.1.9:80"]
    assert eps[0].is_local


def test_slice_ports_match_service_ports_by_name_and_protocol():
    slices = [endpoint_slice("ns", "s", [endpoint("10.244.1.2")], port("dns", 53, "UDP"), port("dns", 53))]
    state = build_model([service("ns", "s", "10.96.0.1", port("dns", 53, "UDP"))], slices, "n")
    assert set(state.endpoints) == {ServicePortName("ns", "s", "dns", "UDP"), ServicePortName("ns", "s", "dns", "TCP")}


def test_unnamed_slice_ports_are_ignored_with_a_warning():
    eps = endpoint_slice("ns", "s", [endpoint("10.244.1.2")], port("p", 80))
    del eps["ports"][0]["name"]
    state = build_model([service("ns", "s", "10.96.0.1", port("", 80))], [eps], "n")
    assert state.endpoints == {}
    assert "no name" in state.warnings[0]


def test_session_affinity_defaults_to_three_hours_and_proxy_mode_ingress_is_skipped():
    svc = service("ns", "s", "10.96.0.1", port("p", 80), type="LoadBalancer", sessionAffinity="ClientIP",
                  status={"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}, {"ip": "2.2.2.2", "ipMode": "Proxy"}]}})
    info = build_model([svc], [], "n").service_ports[0]
    assert info.sticky_max_age_seconds == 10800
    assert info.load_balancer_vips == ("1.1.1.1",)
