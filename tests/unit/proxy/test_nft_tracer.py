"""Packets traced through upstream's TestOverallNFTablesRules ruleset, with upstream's packet-flow expectations.

Node IPs 192.168.0.2 (the only NodePort address), 192.168.1.2, 192.168.99.11;
pods 10.0.0.0/8; external clients 203.0.113.2 (allowed by svc5's source range
203.0.113.0/25) and 203.0.113.130 (blocked), as upstream's conventions say.
"""
from __future__ import annotations

import pytest

from svcnet.proxy.iptables.tracer import Recent
from svcnet.proxy.nftables.ruleset import Ruleset
from svcnet.proxy.nftables.tracer import Packet, flow, reached, trace
from svcnet.testing.nft import FakeNft
from tests.unit.proxy.nft_fixtures import NODE_IPS, OVERALL, creation_order

CLIENT = "203.0.113.2"
BLOCKED = "203.0.113.130"
NODE = "192.168.0.2"
AFFINITY = "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    nft = FakeNft()
    nft.run(creation_order(OVERALL))
    return nft.ruleset


FLOWS = [
    # (name, source, destination, port, expected output, masquerade)
    ("pod to ClusterIP", "10.0.0.2", "172.30.0.41", 80, "10.180.0.1:80", False),
    ("external to ClusterIP", CLIENT, "172.30.0.41", 80, "10.180.0.1:80", True),
    ("hairpin to ClusterIP", "10.180.0.1", "172.30.0.41", 80, "10.180.0.1:80", True),
    ("ClusterIP on a port it does not serve", "10.0.0.2", "172.30.0.41", 443, "REJECT", False),
    ("unallocated ClusterIP", "10.0.0.2", "172.30.0.50", 80, "DROP", False),
    ("pod to Local-policy LB ClusterIP", "10.0.0.2", "172.30.0.42", 80, "10.180.0.2:80", False),
    ("pod to Local-policy LB IP short-circuits", "10.0.0.2", "1.2.3.4", 80, "10.180.0.2:80", False),
    ("external to Local-policy LB IP without local endpoints", CLIENT, "1.2.3.4", 80, "DROP", False),
    ("external to Local-policy externalIP without local endpoints", CLIENT, "192.168.99.22", 80, "DROP", False),
    ("external to Local-policy NodePort without local endpoints", CLIENT, NODE, 3001, "DROP", False),
    ("external to NodePort", CLIENT, NODE, 3003, "10.180.0.3:80", True),
    ("pod to NodePort", "10.0.0.2", NODE, 3003, "10.180.0.3:80", True),
    ("NodePort on an address not in nodePortAddresses", CLIENT, "192.168.1.2", 3003, "ACCEPT", False),
    ("pod to ClusterIP with two endpoints", "10.0.0.2", "172.30.0.44", 80, "10.180.0.4:80, 10.180.0.5:80", False),
    ("external to externalIP", CLIENT, "192.168.99.33", 80, "10.180.0.4:80, 10.180.0.5:80", True),
    ("allowed source to LB with source ranges", CLIENT, "5.6.7.8", 80, "10.180.0.3:80", True),
    ("blocked source to LB with source ranges", BLOCKED, "5.6.7.8", 80, "DROP", False),
    ("NodePort bypasses LoadBalancerSourceRanges", BLOCKED, NODE, 3002, "10.180.0.3:80", True),
    ("pod to ClusterIP without endpoints", "10.0.0.2", "172.30.0.46", 80, "REJECT", False),
    ("external to ClusterIP without endpoints", CLIENT, "172.30.0.46", 80, "REJECT", False),
]


@pytest.mark.parametrize(("name", "src", "dst", "port", "output", "masq"), FLOWS, ids=[f[0] for f in FLOWS])
def test_packet_flows_through_upstreams_overall_ruleset(ruleset: Ruleset, name: str, src: str, dst: str,
                                                        port: int, output: str, masq: bool) -> None:
    outcomes = trace(ruleset, Packet(src, dst, port), NODE_IPS)
    assert flow(outcomes) == (output, masq), [o.path for o in outcomes]
    assert sum(o.probability for o in outcomes) == pytest.approx(1.0)


def test_numgen_splits_the_first_packet_evenly_and_traverses_the_chains_in_hook_order(ruleset: Ruleset) -> None:
    outcomes = trace(ruleset, Packet("10.0.0.2", "172.30.0.44", 80), NODE_IPS)
    assert reached(outcomes) == pytest.approx({"10.180.0.4:80": 0.5, "10.180.0.5:80": 0.5})
    chains = [step.split()[-1] for step in outcomes[0].path]
    assert chains[:3] == ["filter-prerouting", "firewall-check", "nat-prerouting"]
    assert chains[-2:] == ["nat-postrouting", "masquerading"]
    assert all(o.delivered == "forward" for o in outcomes)


def test_masquerade_mark_is_set_then_cleared_when_masquerading(ruleset: Ruleset) -> None:
    [outcome] = trace(ruleset, Packet(CLIENT, "172.30.0.41", 80), NODE_IPS)
    assert outcome.masquerade and outcome.mark == 0  # 0x4000 set in mark-for-masquerade, xor-ed off before it
    [inside] = trace(ruleset, Packet("10.0.0.2", "172.30.0.41", 80), NODE_IPS)
    assert not inside.masquerade and inside.mark == 0


def test_traffic_from_the_node_itself_is_masqueraded(ruleset: Ruleset) -> None:
    outcomes = trace(ruleset, Packet(NODE, "172.30.0.41", 80, origin="local"), NODE_IPS)
    assert flow(outcomes) == ("10.180.0.1:80", True)
    assert outcomes[0].delivered == "out"


def test_at_v1_33_the_node_itself_is_dropped_at_a_local_policy_ip_without_local_endpoints(ruleset: Ruleset) -> None:
    # The matched proxier (b0f823e6) checks no-endpoint-services from filter-output before DNAT, so the
    # node's own connection to svc2's LoadBalancer IP (Local policy, no endpoint here) is dropped; later
    # upstream versions moved that check so host traffic short-circuits to the Cluster endpoints.
    [outcome] = trace(ruleset, Packet(NODE, "1.2.3.4", 80, origin="local"), NODE_IPS)
    assert outcome.verdict == "DROP" and outcome.dropped_by.startswith("service-endpoints-check:")


def test_rejected_and_dropped_packets_name_the_rule(ruleset: Ruleset) -> None:
    [rejected] = trace(ruleset, Packet("10.0.0.2", "172.30.0.46", 80), NODE_IPS)
    assert rejected.verdict == "REJECT" and rejected.dropped_by == "reject-chain: reject"
    [dropped] = trace(ruleset, Packet(BLOCKED, "5.6.7.8", 80), NODE_IPS)
    assert dropped.dropped_by == "firewall-HVFWP5L3-ns5/svc5/tcp/p80: ip saddr != { 203.0.113.0/25 } drop"


def test_session_affinity_records_the_source_in_the_endpoints_set(ruleset: Ruleset) -> None:
    [first] = trace(ruleset, Packet(CLIENT, "172.30.0.45", 80), NODE_IPS)
    assert first.recent_set == {AFFINITY} and first.endpoint == "10.180.0.3:80"


TWO_WITH_AFFINITY = """
    add table ip t
    add chain ip t pre { type nat hook prerouting priority -100 ; }
    add set ip t aff-a { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }
    add set ip t aff-b { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }
    add chain ip t ep-a
    add chain ip t ep-b
    add rule ip t ep-a update @aff-a { ip saddr }
    add rule ip t ep-a meta l4proto tcp dnat to 10.1.0.1:80
    add rule ip t ep-b update @aff-b { ip saddr }
    add rule ip t ep-b meta l4proto tcp dnat to 10.1.0.2:80
    add rule ip t pre ip saddr @aff-a goto ep-a
    add rule ip t pre ip saddr @aff-b goto ep-b
    add rule ip t pre numgen random mod 2 vmap { 0 : goto ep-a , 1 : goto ep-b }
"""


@pytest.mark.parametrize(("age", "expected"), [
    (None, {"10.1.0.1:80": 0.5, "10.1.0.2:80": 0.5}),
    (30, {"10.1.0.2:80": 1.0}),
    (61, {"10.1.0.1:80": 0.5, "10.1.0.2:80": 0.5}),  # older than the set's timeout: forgotten
])
def test_a_source_in_an_affinity_set_skips_the_random_choice_until_it_times_out(age: int | None,
                                                                                 expected: dict) -> None:
    recent = () if age is None else (Recent("aff-b", CLIENT, age),)
    outcomes = trace(Ruleset().apply(TWO_WITH_AFFINITY), Packet(CLIENT, "10.96.0.1", 80, recent=recent), ())
    assert reached(outcomes) == pytest.approx(expected)


def test_udp_does_not_match_a_tcp_port(ruleset: Ruleset) -> None:
    outcomes = trace(ruleset, Packet("10.0.0.2", "172.30.0.41", 80, protocol="udp"), NODE_IPS)
    assert flow(outcomes) == ("REJECT", False)


def test_the_tracer_follows_priorities_not_the_order_chains_were_written() -> None:
    # A firewall chain at a priority after DNAT sees the endpoint, not the LB IP, so it no longer drops.
    late = OVERALL.replace("filter-prerouting { type filter hook prerouting priority -110 ; }",
                           "filter-prerouting { type filter hook prerouting priority -90 ; }")
    assert late != OVERALL
    ruleset = Ruleset().apply(creation_order(late))
    assert flow(trace(ruleset, Packet(BLOCKED, "5.6.7.8", 80), NODE_IPS)) == ("10.180.0.3:80", True)


def test_an_unknown_expression_is_an_error_not_a_guess() -> None:
    text = ("add table ip t\nadd chain ip t c { type filter hook prerouting priority 0 ; }\n"
            "add rule ip t c ip dscp cs1 drop\n")
    with pytest.raises(NotImplementedError, match="dscp"):
        trace(Ruleset().apply(text), Packet(CLIENT, "10.0.0.1", 80), NODE_IPS)


def test_ipv6_packets_meet_ip6_tables_only() -> None:
    text = """
        add table ip6 kube-proxy
        add chain ip6 kube-proxy nat-prerouting { type nat hook prerouting priority dstnat ; }
        add chain ip6 kube-proxy endpoint
        add map ip6 kube-proxy service-ips { type ipv6_addr . inet_proto . inet_service : verdict ; }
        add rule ip6 kube-proxy nat-prerouting ip6 daddr . meta l4proto . th dport vmap @service-ips
        add rule ip6 kube-proxy endpoint meta l4proto tcp dnat to [fd00:10::5]:8080
        add element ip6 kube-proxy service-ips { fd00:10:96::1 . tcp . 80 : goto endpoint }
        add table ip other
        add chain ip other drop-all { type filter hook prerouting priority -200 ; }
        add rule ip other drop-all drop
    """
    outcomes = trace(Ruleset().apply(text), Packet("fd00:10::9", "fd00:10:96::1", 80), ())
    assert flow(outcomes) == ("[fd00:10::5]:8080", False)


FIREWALL_BY_SET = """
    add table ip t
    add chain ip t pre { type filter hook prerouting priority -110 ; }
    add set ip t firewall { type ipv4_addr . inet_proto . inet_service ; }
    add set ip t firewall-allow { type ipv4_addr . inet_proto . inet_service . ipv4_addr ; flags interval ; }
    add chain ip t firewall-allow-check
    add rule ip t firewall-allow-check ip daddr . meta l4proto . th dport . ip saddr @firewall-allow return
    add rule ip t firewall-allow-check drop
    add rule ip t pre ip daddr . meta l4proto . th dport @firewall jump firewall-allow-check
    add element ip t firewall { 5.6.7.8 . tcp . 80 }
    add element ip t firewall-allow { 5.6.7.8 . tcp . 80 . 203.0.113.0/25 }
"""


@pytest.mark.parametrize(("src", "port", "verdict"), [
    (CLIENT, 80, "ACCEPT"), (BLOCKED, 80, "DROP"), (BLOCKED, 443, "ACCEPT"),
])
def test_concatenated_set_lookups_with_a_cidr_component(src: str, port: int, verdict: str) -> None:
    # The shape of kube-proxy's earlier firewall (helpers_test.go's example ruleset).
    [outcome] = trace(Ruleset().apply(FIREWALL_BY_SET), Packet(src, "5.6.7.8", port), ())
    assert outcome.verdict == verdict


def test_once_a_nat_chain_translated_the_packet_later_nat_chains_of_that_hook_are_skipped() -> None:
    text = """
        add table ip a
        add chain ip a first { type nat hook prerouting priority -100 ; }
        add rule ip a first meta l4proto tcp dnat to 10.1.0.1:80
        add table ip b
        add chain ip b second { type nat hook prerouting priority -50 ; }
        add rule ip b second meta l4proto tcp dnat to 10.9.9.9:80
        add chain ip b filter { type filter hook prerouting priority -40 ; }
        add rule ip b filter ip daddr 10.1.0.1 drop
    """
    [outcome] = trace(Ruleset().apply(text), Packet(CLIENT, "10.96.0.1", 80), ())
    assert outcome.verdict == "DROP" and outcome.dst == "10.1.0.1"
    assert [step.split()[-1] for step in outcome.path] == ["first", "filter"]
