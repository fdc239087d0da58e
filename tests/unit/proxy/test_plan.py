"""Endpoint categorisation and traffic-policy decisions (upstream's topology_test.go cases, in brief)."""
from __future__ import annotations

import pytest

from svcnet.proxy.model import EndpointInfo, ServicePortInfo, ServicePortName
from svcnet.proxy.plan import DROP, REJECT, ProxyConfig, categorize_endpoints, plan_service_port

NAME = ServicePortName("ns", "s", "p", "TCP")


def ep(ip: str, local: bool = False, ready: bool = True, serving: bool = True, terminating: bool = False,
       hints: tuple[str, ...] = ()) -> EndpointInfo:
    return EndpointInfo(ip, 80, is_local=local, ready=ready, serving=serving, terminating=terminating,
                        zone_hints=frozenset(hints))


def info(**kwargs) -> ServicePortInfo:
    return ServicePortInfo(name=NAME, cluster_ip="10.96.0.1", port=80, **kwargs)


def ips(endpoints) -> list[str]:
    return [e.ip for e in endpoints]


@pytest.mark.parametrize("name, svc, endpoints, cluster, local, has_any", [
    ("ready endpoints only", info(), [ep("1"), ep("2", ready=False)], ["1"], [], True),
    ("terminating fallback when none ready", info(),
     [ep("1", ready=False, terminating=True), ep("2", ready=False, serving=False, terminating=True)],
     ["1"], [], True),
    ("nothing usable", info(), [ep("1", ready=False, serving=False)], [], [], False),
    ("internal Local picks local ready", info(internal_policy_local=True),
     [ep("1", local=True), ep("2")], [], ["1"], True),
    ("internal Local, local terminating fallback", info(internal_policy_local=True),
     [ep("1", local=True, ready=False, terminating=True), ep("2")], [], ["1"], True),
    ("external Local keeps cluster endpoints too", info(external_policy_local=True, node_port=30001),
     [ep("1", local=True), ep("2")], ["1", "2"], ["1"], True),
])
def test_categorize_endpoints(name, svc, endpoints, cluster, local, has_any):
    result = categorize_endpoints(tuple(endpoints), svc, zone="")
    assert (ips(result.cluster), ips(result.local), result.has_any) == (cluster, local, has_any), name


def test_zone_hints_restrict_cluster_endpoints_when_every_endpoint_has_one():
    endpoints = (ep("1", hints=("a",)), ep("2", hints=("b",)))
    assert ips(categorize_endpoints(endpoints, info(), zone="a").cluster) == ["1"]
    assert ips(categorize_endpoints(endpoints, info(), zone="c").cluster) == ["1", "2"]
    partial = (ep("1", hints=("a",)), ep("2"))
    assert ips(categorize_endpoints(partial, info(), zone="a").cluster) == ["1", "2"]


@pytest.mark.parametrize("svc, endpoints, internal, external", [
    (info(node_port=30001), [], REJECT, REJECT),
    (info(node_port=30001, external_policy_local=True), [ep("2")], None, DROP),
    (info(internal_policy_local=True), [ep("2")], DROP, None),
    (info(node_port=30001, external_policy_local=True), [ep("1", local=True)], None, None),
])
def test_blocking_decisions(svc, endpoints, internal, external):
    sp = plan_service_port(svc, tuple(endpoints), zone="")
    assert (sp.internal_block, sp.external_block) == (internal, external)


def test_config_rejects_unknown_family_and_bad_mark_bit():
    with pytest.raises(ValueError):
        ProxyConfig(family="IPv5")
    with pytest.raises(ValueError):
        ProxyConfig(masquerade_bit=40)
