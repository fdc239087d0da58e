"""Chain names are kube-proxy's hashes, so the seed's names come out exactly."""
from __future__ import annotations

import pytest

from svcnet.proxy.iptables import names
from svcnet.proxy.model import EndpointInfo, ServicePortName

SEED = ServicePortName("default", "hostnames", "default", "TCP")


def test_seed_service_chain_name():
    assert names.cluster_policy_chain(SEED) == "KUBE-SVC-ODX2UBAZM7RQWOIU"


@pytest.mark.parametrize("ip, chain", [
    ("10.244.1.10", "KUBE-SEP-N6BO7JPFL3IPM3GK"),
    ("10.244.1.8", "KUBE-SEP-XBIWV66JPBUXLYCY"),
    ("10.244.1.9", "KUBE-SEP-ZDT36JFL743NS3VU"),
])
def test_seed_endpoint_chain_names(ip, chain):
    assert names.endpoint_chain(SEED, EndpointInfo(ip, 9376)) == chain


@pytest.mark.parametrize("make, expected", [
    (names.cluster_policy_chain, "KUBE-SVC-GNZBNJ2PO5MGZ6GT"),
    (names.local_policy_chain, "KUBE-SVL-GNZBNJ2PO5MGZ6GT"),
    (names.external_chain, "KUBE-EXT-GNZBNJ2PO5MGZ6GT"),
    (names.firewall_chain, "KUBE-FW-GNZBNJ2PO5MGZ6GT"),
])
def test_policy_chains_share_one_hash(make, expected):
    assert make(ServicePortName("ns2", "svc2", "p80", "TCP")) == expected


def test_unnamed_port_and_protocol_change_the_hash():
    unnamed = ServicePortName("ns", "svc", "", "TCP")
    assert str(unnamed) == "ns/svc"
    assert names.cluster_policy_chain(unnamed) != names.cluster_policy_chain(ServicePortName("ns", "svc", "", "UDP"))


def test_service_chain_prefixes_are_recognised():
    assert names.is_service_chain("KUBE-SEP-N6BO7JPFL3IPM3GK")
    assert not names.is_service_chain("KUBE-SERVICES")
    assert not names.is_service_chain("KUBE-MARK-MASQ")
