"""An SCTP Service's rules, golden, in both backends, and traced: kube-proxy matches SCTP with its own module
(`-m sctp -p sctp`, `sctp dport`, `meta l4proto sctp`) exactly where TCP and UDP use theirs.

This kernel has no SCTP sockets, so the live test (tests/integration/services/test_service_kinds_live.py) can
only check that these rules are installed; what they do is pinned here. Stale conntrack cleanup is
UDP-only, as upstream's (pkg/proxy/conntrack/cleanup.go): SCTP associations are left alone.
"""
from __future__ import annotations

import pytest

from svcnet.proxy import ProxyConfig, build_model, plan
from svcnet.proxy.conntrack import ConntrackEntry, stale_udp_filters
from svcnet.proxy.iptables.tracer import Packet, reached, trace
from svcnet.proxy.nftables import dump_nftables
from tests.unit.proxy.helpers import (
    CLUSTER_CIDR,
    NODE,
    NODE_IP,
    endpoint,
    endpoint_slice,
    node_model,
    port,
    render,
    service,
)

SCTP_SERVICE = service("default", "sctp-echo", "10.96.100.7", port("echo", 7777, "SCTP", node_port=30777),
                       type="NodePort")
SCTP_SLICE = endpoint_slice("default", "sctp-echo", [endpoint("10.244.1.5", node="node-1"),
                                                     endpoint("10.244.2.6", node="node-2")], port("echo", 9376, "SCTP"))
SVC = "KUBE-SVC-ZWDIH5H2X6PBCJEV"
SEPS = {"10.244.1.5": "KUBE-SEP-5JSTHGPYHY7GTWPN", "10.244.2.6": "KUBE-SEP-VTWDVIF5G3O42PSZ"}


def rule_lines(text: str, *chains: str) -> list[str]:
    return [line for line in text.splitlines() if any(line.startswith(f"-A {c} ") for c in chains)]


def test_iptables_rules_of_an_sctp_service_are_kube_proxys():
    text = render([SCTP_SERVICE], [SCTP_SLICE]).text
    comment = "default/sctp-echo:echo"
    assert rule_lines(text, "KUBE-SERVICES")[0] == (
        f'-A KUBE-SERVICES -m comment --comment "{comment} cluster IP" -m sctp -p sctp -d 10.96.100.7 '
        f"--dport 7777 -j {SVC}")
    assert rule_lines(text, "KUBE-NODEPORTS") == [
        f"-A KUBE-NODEPORTS -m comment --comment {comment} -m sctp -p sctp --dport 30777 "
        "-j KUBE-EXT-ZWDIH5H2X6PBCJEV"]
    assert rule_lines(text, SVC) == [
        f'-A {SVC} -m comment --comment "{comment} cluster IP" -m sctp -p sctp -d 10.96.100.7 --dport 7777 '
        f"! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ",
        f'-A {SVC} -m comment --comment "{comment} -> 10.244.1.5:9376" -m statistic --mode random '
        f"--probability 0.5000000000 -j {SEPS['10.244.1.5']}",
        f'-A {SVC} -m comment --comment "{comment} -> 10.244.2.6:9376" -j {SEPS["10.244.2.6"]}',
    ]
    for ip, chain in SEPS.items():
        assert rule_lines(text, chain) == [
            f"-A {chain} -m comment --comment {comment} -s {ip} -j KUBE-MARK-MASQ",
            f"-A {chain} -m comment --comment {comment} -m sctp -p sctp -j DNAT --to-destination {ip}:9376"]


def test_nftables_rules_of_an_sctp_service_are_kube_proxys():
    config = ProxyConfig(cluster_cidrs=(CLUSTER_CIDR,), node_ips=(NODE_IP,))
    dump = dump_nftables(plan(build_model([SCTP_SERVICE], [SCTP_SLICE], NODE), config)).splitlines()
    chain = "service-4DGJKU2J-default/sctp-echo/sctp/echo"
    assert f"add element ip kube-proxy service-ips {{ 10.96.100.7 . sctp . 7777 : goto {chain} }}" in dump
    assert ("add element ip kube-proxy service-nodeports { sctp . 30777 : goto "
            "external-4DGJKU2J-default/sctp-echo/sctp/echo }") in dump
    assert (f"add rule ip kube-proxy {chain} ip daddr 10.96.100.7 sctp dport 7777 ip saddr != {CLUSTER_CIDR} "
            "jump mark-for-masquerade") in dump
    for ip, hashed in (("10.244.1.5", "GASRLR2V"), ("10.244.2.6", "TO654RSI")):
        assert (f"add rule ip kube-proxy endpoint-{hashed}-default/sctp-echo/sctp/echo__{ip}/9376 "
                f"meta l4proto sctp dnat to {ip}:9376") in dump


def test_sctp_to_the_cluster_ip_reaches_each_endpoint_and_tcp_to_the_same_port_does_not():
    model = node_model(render([SCTP_SERVICE], [SCTP_SLICE]))
    sctp = trace(model, Packet("10.244.1.9", "10.96.100.7", 7777, protocol="sctp", in_interface="cni0"))
    assert reached(sctp) == {"10.244.1.5:9376": pytest.approx(0.5), "10.244.2.6:9376": pytest.approx(0.5)}
    assert reached(trace(model, Packet("10.244.1.9", "10.96.100.7", 7777, in_interface="cni0"))) == {}


def test_stale_conntrack_cleanup_leaves_sctp_flows_alone():
    """The same flow, answered by an address that is no endpoint, is stale for a UDP Service only."""
    def filters(protocol: str) -> list:
        svc = service("default", "echo", "10.96.100.7", port("echo", 7777, protocol))
        eps = endpoint_slice("default", "echo", [endpoint("10.244.1.5")], port("echo", 9376, protocol))
        state = build_model([svc], [eps], NODE)
        flow = ConntrackEntry(protocol.lower(), "10.244.1.9", "10.96.100.7", 40000, 7777,
                              "10.244.3.3", "10.244.1.9", 9376, 40000)
        return stale_udp_filters([flow], state.service_ports, state.endpoints)
    assert [(f.reply_src, f.orig_dst, f.orig_dport) for f in filters("UDP")] == [("10.244.3.3", "10.96.100.7", 7777)]
    assert filters("SCTP") == []
