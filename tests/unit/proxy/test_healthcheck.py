"""kube-proxy's service health server as decisions: which listeners, where, and what they answer."""
from __future__ import annotations

import json

import pytest

from svcnet.proxy.healthcheck import (
    Listener,
    ServiceHealthTable,
    health_body,
    health_check_port,
    listen_addresses,
    local_ready_endpoints,
    merge_families,
)
from svcnet.proxy.model import EndpointInfo, ServicePortInfo, ServicePortName


def ep(ip: str, port: int = 8080, local: bool = True, ready: bool = True, terminating: bool = False) -> EndpointInfo:
    return EndpointInfo(ip, port, node_name="node-1" if local else "node-2", is_local=local, ready=ready,
                        serving=ready or terminating, terminating=terminating)


def test_the_body_is_kube_proxys_tab_indented_json_without_a_final_newline():
    assert health_body("default/web", 2, True) == (
        '{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "web"\n\t},\n'
        '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')
    assert json.loads(health_body("ns/x", 0, False)) == {
        "service": {"namespace": "ns", "name": "x"}, "localEndpoints": 0, "serviceProxyHealthy": False}


@pytest.mark.parametrize(("endpoints", "count"), [
    ([], 0),
    ([ep("10.244.1.5"), ep("10.244.1.6")], 2),
    ([ep("10.244.1.5", 80), ep("10.244.1.5", 443)], 1),  # one pod behind two ports counts once
    ([ep("10.244.2.5", local=False)], 0),  # another node's endpoint
    ([ep("10.244.1.5", ready=False)], 0),
    ([ep("10.244.1.5", ready=False, terminating=True), ep("10.244.1.6")], 1),  # terminating: serving, not counted
], ids=["none", "two-pods", "one-pod-two-ports", "remote", "not-ready", "terminating"])
def test_local_endpoints_are_distinct_ready_ips_on_this_node(endpoints, count):
    assert local_ready_endpoints(endpoints) == count


def info(health: int) -> ServicePortInfo:
    return ServicePortInfo(ServicePortName("default", "web", "http", "TCP"), "10.96.0.9", 80,
                           health_check_node_port=health)


def test_the_port_is_the_services_health_check_node_port_when_the_proxy_read_one():
    assert health_check_port([info(0), info(31234)]) == 31234
    assert health_check_port([info(0)]) == 0


@pytest.mark.parametrize(("nodeport_ips", "families", "addresses"), [
    ([None], ["IPv4"], ("0.0.0.0",)),
    ([None, None], ["IPv4", "IPv6"], ("::",)),  # one dual-stack wildcard socket
    ([("192.168.0.106",), ("fd00::106",)], ["IPv4", "IPv6"], ("192.168.0.106", "fd00::106")),
    ([("192.168.0.106", "127.0.0.1")], ["IPv4"], ("192.168.0.106", "127.0.0.1")),
    ([()], ["IPv4"], ("0.0.0.0",)),  # nothing matched --nodeport-addresses: every address, as kube-proxy
], ids=["all-v4", "all-dual", "node-ips", "with-loopback", "no-match"])
def test_listeners_honour_nodeport_addresses(nodeport_ips, families, addresses):
    assert listen_addresses(nodeport_ips, families) == addresses


def test_families_merge_to_the_first_port_and_the_largest_count():
    ports, counts = merge_families([{"default/web": (31000, 1)}, {"default/web": (31000, 2), "default/v6": (32000, 0)}])
    assert ports == {"default/web": 31000, "default/v6": 32000}
    assert counts == {"default/web": 2, "default/v6": 0}


def opened(table: ServiceHealthTable, ports: dict[str, int], addresses=("0.0.0.0",)) -> tuple:
    changes = table.sync_services(ports, addresses)
    for listener in changes.open:
        table.opened(listener)
    return changes


def test_new_services_are_opened_and_kept_ones_left_alone():
    table = ServiceHealthTable()
    changes = opened(table, {"default/web": 31000})
    assert changes.open == (Listener("default/web", 31000, ("0.0.0.0",)),) and changes.close == ()
    changes = opened(table, {"default/web": 31000, "default/api": 31001})
    assert [listener.service for listener in changes.open] == ["default/api"] and changes.close == ()


@pytest.mark.parametrize(("second", "closed", "reopened"), [
    ({}, ["default/web"], []),
    ({"default/web": 31999}, ["default/web"], [("default/web", 31999)]),
], ids=["service-gone", "port-changed"])
def test_gone_or_moved_services_are_closed(second, closed, reopened):
    table = ServiceHealthTable()
    opened(table, {"default/web": 31000})
    changes = opened(table, second)
    assert [listener.service for listener in changes.close] == closed
    assert [(listener.service, listener.port) for listener in changes.open] == reopened


def test_changed_addresses_reopen_every_listener():
    table = ServiceHealthTable()
    opened(table, {"default/web": 31000})
    changes = opened(table, {"default/web": 31000}, ("192.168.0.106",))
    assert [listener.addresses for listener in changes.close] == [("0.0.0.0",)]
    assert [listener.addresses for listener in changes.open] == [("192.168.0.106",)]


def test_a_listener_that_failed_to_open_is_tried_again_after_the_next_sync():
    table = ServiceHealthTable()
    first = table.sync_services({"default/web": 31000}, ("0.0.0.0",))  # never confirmed as opened
    assert table.answer("default/web", True) is None
    assert table.sync_services({"default/web": 31000}, ("0.0.0.0",)).open == first.open


@pytest.mark.parametrize(("count", "proxy_healthy", "status"), [
    (2, True, 200), (0, True, 503), (2, False, 503), (0, False, 503),
])
def test_the_answer_is_200_only_with_local_endpoints_and_a_healthy_proxy(count, proxy_healthy, status):
    table = ServiceHealthTable()
    opened(table, {"default/web": 31000})
    table.sync_endpoints({"default/web": count})
    answer = table.answer("default/web", proxy_healthy)
    assert answer is not None and answer.status == status
    assert json.loads(answer.body) == {"service": {"namespace": "default", "name": "web"},
                                       "localEndpoints": count, "serviceProxyHealthy": proxy_healthy}
    assert answer.headers == (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"),
                              ("X-Load-Balancing-Endpoint-Weight", str(count)))


def test_a_service_missing_from_the_endpoint_counts_has_none_and_a_closed_one_no_answer():
    table = ServiceHealthTable()
    opened(table, {"default/web": 31000, "default/api": 31001})
    table.sync_endpoints({"default/web": 1})
    answer = table.answer("default/api", True)
    assert answer is not None and answer.status == 503
    assert table.answer("default/other", True) is None
