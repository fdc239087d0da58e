"""The conntrack fake lists by family and protocol and deletes what a filter matches, as conntrack -D."""
from __future__ import annotations

from svcnet.proxy.conntrack import ConntrackEntry, ConntrackFilter
from svcnet.testing.conntrack import FakeConntrack


def flow(dst: str, dport: int, reply_src: str, protocol: str = "udp") -> ConntrackEntry:
    return ConntrackEntry(protocol, "10.244.2.5", dst, 40000, dport, reply_src, "10.244.2.5", dport, 40000)


def test_entries_are_listed_per_family_and_protocol():
    v4, v6, tcp = flow("10.96.0.10", 53, "10.244.1.21"), flow("fd00::10", 53, "fd00::21"), \
        flow("10.96.0.10", 53, "10.244.1.21", "tcp")
    fake = FakeConntrack([v4, v6, tcp])
    assert fake.list_entries("IPv4") == [v4]
    assert fake.list_entries("IPv6") == [v6]
    assert fake.list_entries("IPv4", "tcp") == [tcp]


def test_a_filter_deletes_only_the_flows_it_names():
    keep, gone, other_port = (flow("10.96.0.10", 53, "10.244.1.22"), flow("10.96.0.10", 53, "10.244.1.21"),
                              flow("10.96.0.11", 5353, "10.244.1.21"))
    fake = FakeConntrack([keep, gone, other_port])
    assert fake.delete("IPv4", ConntrackFilter("10.244.1.21", "10.96.0.10", 53)) == 1
    assert fake.entries == [keep, other_port]
    assert fake.delete("IPv4", ConntrackFilter("10.244.1.21", None, None)) == 1
    assert fake.entries == [keep] and len(fake.deleted_with) == 2
