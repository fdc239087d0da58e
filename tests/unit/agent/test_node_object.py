"""The Node status the agent posts says where its kubelet API listens (status.daemonEndpoints)."""
from __future__ import annotations

import datetime as dt

from svcnet.agent.node import HostFacts, NodeIdentity, node_status

FACTS = HostFacts(cpus=2, memory_kib=1024, kernel_version="6.1", os_image="Linux", architecture="amd64")
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def test_the_node_advertises_its_kubelet_port_and_internal_ips() -> None:
    status = node_status(NodeIdentity("node-1", ("192.168.0.106",), ("10.244.1.0/24",)), FACTS, NOW)
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["addresses"] == [{"type": "InternalIP", "address": "192.168.0.106"},
                                   {"type": "Hostname", "address": "node-1"}]


def test_a_node_serving_elsewhere_advertises_that_port() -> None:
    identity = NodeIdentity("node-1", ("192.168.0.106",), (), kubelet_port=10255)
    assert node_status(identity, FACTS, NOW)["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10255}}
