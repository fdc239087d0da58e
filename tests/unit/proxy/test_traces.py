"""Policy checked by where packets go: rendered rules loaded into the iptables model and traced."""
from __future__ import annotations

import pytest

from svcnet.proxy.iptables.tracer import Packet, Recent, reached, trace
from tests.unit.proxy.helpers import (
    NODE,
    NODE_IP,
    endpoint,
    endpoint_slice,
    node_model,
    port,
    render,
    service,
)

SEED_IPS = ("10.244.1.10", "10.244.1.8", "10.244.1.9")
SEED_SERVICE = service("default", "hostnames", "10.102.11.183", port("default", 80, node_port=30080),
                       type="NodePort")
SEED_SLICE = endpoint_slice("default", "hostnames", [endpoint(ip, node="node-2") for ip in SEED_IPS],
                            port("default", 9376))


@pytest.fixture(scope="module")
def seed_model():
    return node_model(render([SEED_SERVICE], [SEED_SLICE]))


def test_pod_to_cluster_ip_reaches_each_endpoint_with_a_third_and_no_masquerade(seed_model):
    outcomes = trace(seed_model, Packet("10.244.2.5", "10.102.11.183", 80, in_interface="cni0"))
    assert reached(outcomes) == {f"{ip}:9376": pytest.approx(1 / 3, abs=1e-9) for ip in SEED_IPS}
    first = next(o for o in outcomes if o.endpoint == "10.244.1.10:9376")
    assert first.probability == pytest.approx(1 / 3, abs=1e-9)
    assert all(not o.masquerade and o.verdict == "ACCEPT" for o in outcomes)


def test_from_outside_the_cluster_cidr_to_cluster_ip_is_masqueraded(seed_model):
    outcomes = trace(seed_model, Packet("192.168.0.50", "10.102.11.183", 80))
    assert set(reached(outcomes)) == {f"{ip}:9376" for ip in SEED_IPS}
    assert all(o.masquerade for o in outcomes)


def test_node_itself_to_cluster_ip_is_masqueraded(seed_model):
    outcomes = trace(seed_model, Packet(NODE_IP, "10.102.11.183", 80, origin="local"))
    assert set(reached(outcomes)) == {f"{ip}:9376" for ip in SEED_IPS}
    assert all(o.masquerade for o in outcomes)


def test_nodeport_from_an_external_client_is_masqueraded(seed_model):
    outcomes = trace(seed_model, Packet("192.168.0.200", NODE_IP, 30080))
    assert reached(outcomes) == {f"{ip}:9376": pytest.approx(1 / 3, abs=1e-9) for ip in SEED_IPS}
    assert all(o.masquerade and o.delivered == "forward" for o in outcomes)


def test_hairpin_pod_reaching_itself_is_masqueraded(seed_model):
    outcomes = trace(seed_model, Packet("10.244.1.8", "10.102.11.183", 80, in_interface="cni0"))
    to_self = [o for o in outcomes if o.endpoint == "10.244.1.8:9376"]
    to_others = [o for o in outcomes if o.endpoint != "10.244.1.8:9376"]
    assert to_self and all(o.masquerade for o in to_self)
    assert to_others and not any(o.masquerade for o in to_others)


def test_cluster_ip_on_another_port_is_not_touched(seed_model):
    outcomes = trace(seed_model, Packet("10.244.2.5", "10.102.11.183", 81))
    assert [(o.verdict, o.dnat) for o in outcomes] == [("ACCEPT", False)]


def test_service_without_endpoints_is_rejected_for_every_destination():
    svc = service("ns", "empty", "10.96.5.5", port("p", 80, node_port=30005), type="LoadBalancer",
                  externalIPs=["192.168.99.11"], status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}})
    model = node_model(render([svc], []))
    for packet in (Packet("10.244.2.5", "10.96.5.5", 80), Packet("192.168.0.9", "192.168.99.11", 80),
                   Packet("192.168.0.9", "1.2.3.4", 80), Packet("192.168.0.9", NODE_IP, 30005)):
        outcomes = trace(model, packet)
        assert [o.verdict for o in outcomes] == ["REJECT"], packet
        assert "has no endpoints" in outcomes[0].dropped_by


def _etp_local(local_ips: tuple[str, ...], remote_ips: tuple[str, ...]):
    svc = service("ns", "lb", "10.96.7.7", port("p", 80, node_port=30007), type="LoadBalancer",
                  externalTrafficPolicy="Local", healthCheckNodePort=32000,
                  status={"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}})
    eps = endpoint_slice("ns", "lb", [endpoint(ip, node=NODE) for ip in local_ips]
                         + [endpoint(ip, node="node-9") for ip in remote_ips], port("p", 8080))
    return node_model(render([svc], [eps]))


def test_external_traffic_policy_local_without_local_endpoints_drops_external_clients():
    model = _etp_local((), ("10.244.9.9",))
    for dst, dport in ((NODE_IP, 30007), ("5.6.7.8", 80)):
        outcomes = trace(model, Packet("192.168.0.200", dst, dport))
        assert [o.verdict for o in outcomes] == ["DROP"], dst
        assert "has no local endpoints" in outcomes[0].dropped_by


def test_external_traffic_policy_local_keeps_the_client_source():
    model = _etp_local(("10.244.1.4",), ("10.244.9.9",))
    outcomes = trace(model, Packet("192.168.0.200", NODE_IP, 30007))
    assert reached(outcomes) == {"10.244.1.4:8080": pytest.approx(1.0)}
    assert not any(o.masquerade for o in outcomes)


def test_external_traffic_policy_local_short_circuits_pod_traffic_to_all_endpoints():
    model = _etp_local((), ("10.244.9.9",))
    outcomes = trace(model, Packet("10.244.1.20", "5.6.7.8", 80, in_interface="cni0"))
    assert reached(outcomes) == {"10.244.9.9:8080": pytest.approx(1.0)}


def test_external_traffic_policy_local_from_the_node_is_masqueraded_and_uses_all_endpoints():
    model = _etp_local((), ("10.244.9.9",))
    outcomes = trace(model, Packet(NODE_IP, NODE_IP, 30007, origin="local"))
    assert reached(outcomes) == {"10.244.9.9:8080": pytest.approx(1.0)}
    assert all(o.masquerade for o in outcomes)


def test_health_check_node_port_is_accepted():
    model = _etp_local((), ("10.244.9.9",))
    outcomes = trace(model, Packet("192.168.0.200", NODE_IP, 32000))
    assert [(o.verdict, o.delivered) for o in outcomes] == [("ACCEPT", "local")]


def test_client_ip_affinity_pins_a_returning_client():
    svc = service("ns", "sticky", "10.96.8.8", port("p", 80), sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    eps = endpoint_slice("ns", "sticky", [endpoint("10.244.1.2"), endpoint("10.244.1.3")], port("p", 80))
    rendered = render([svc], [eps])
    model = node_model(rendered)
    first = trace(model, Packet("10.244.2.5", "10.96.8.8", 80))
    assert reached(first) == {"10.244.1.2:80": pytest.approx(0.5), "10.244.1.3:80": pytest.approx(0.5)}
    chosen = next(o for o in first if o.endpoint == "10.244.1.3:80")
    (recent_list,) = chosen.recent_set
    assert recent_list.startswith("KUBE-SEP-")
    again = trace(model, Packet("10.244.2.5", "10.96.8.8", 80, recent=(Recent(recent_list, "10.244.2.5", 30),)))
    assert reached(again) == {"10.244.1.3:80": pytest.approx(1.0)}
    expired = trace(model, Packet("10.244.2.5", "10.96.8.8", 80, recent=(Recent(recent_list, "10.244.2.5", 601),)))
    assert len(reached(expired)) == 2


def test_terminating_endpoints_serve_when_nothing_is_ready():
    svc = service("ns", "t", "10.96.9.9", port("p", 80))
    eps = endpoint_slice("ns", "t", [endpoint("10.244.1.2", ready=False, serving=True, terminating=True),
                                     endpoint("10.244.1.3", ready=False, serving=False, terminating=True)],
                         port("p", 80))
    outcomes = trace(node_model(render([svc], [eps])), Packet("10.244.2.5", "10.96.9.9", 80))
    assert reached(outcomes) == {"10.244.1.2:80": pytest.approx(1.0)}


def test_load_balancer_source_ranges_admit_listed_clients_and_drop_others():
    svc = service("ns", "fw", "10.96.3.3", port("p", 80, node_port=30003), type="LoadBalancer",
                  loadBalancerSourceRanges=["203.0.113.0/25"],
                  status={"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}})
    eps = endpoint_slice("ns", "fw", [endpoint("10.244.1.2")], port("p", 80))
    model = node_model(render([svc], [eps]))
    allowed = trace(model, Packet("203.0.113.7", "5.6.7.8", 80))
    assert reached(allowed) == {"10.244.1.2:80": pytest.approx(1.0)}
    denied = trace(model, Packet("198.51.100.1", "5.6.7.8", 80))
    assert [o.verdict for o in denied] == ["DROP"]
    assert "traffic not accepted by KUBE-FW-" in denied[0].dropped_by


def test_udp_service_is_dnatted_for_udp_only():
    svc = service("kube-system", "kube-dns", "10.96.0.10", port("dns", 53, "UDP"))
    eps = endpoint_slice("kube-system", "kube-dns", [endpoint("10.244.1.53")], port("dns", 53, "UDP"))
    model = node_model(render([svc], [eps]))
    assert reached(trace(model, Packet("10.244.2.5", "10.96.0.10", 53, protocol="udp"))) == {
        "10.244.1.53:53": pytest.approx(1.0)}
    assert reached(trace(model, Packet("10.244.2.5", "10.96.0.10", 53, protocol="tcp"))) == {}
