"""The nftables renderer against kube-proxy's own expected output and sync behaviour.

Expected rulesets are upstream's (pkg/proxy/nftables/proxier_test.go), written as our fixtures
for the version matched (kubernetes/kubernetes b0f823e6, ~v1.33: see
svcnet/proxy/nftables/objects.py) and compared as upstream's assertNFTablesTransactionEqual does.
Transactions are run through svcnet.testing.nft.FakeNft, which applies them as the kernel
would (all or nothing, ENOENT/EEXIST/EBUSY), so each sync's text is checked by what it leaves
behind, as upstream checks its fake's dump after each syncProxyRules.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from svcnet.proxy import ProxyConfig, build_model, plan
from svcnet.proxy.model import IPV4, IPV6
from svcnet.proxy.nftables import NftablesState, NftRenderCache, dump_nftables, render_nftables
from svcnet.proxy.nftables.ruleset import sorted_for_comparison
from svcnet.testing.nft import FakeNft
from tests.unit.proxy.helpers import endpoint, endpoint_slice, port, service
from tests.unit.proxy.test_render_iptables import OVERALL_SERVICES, OVERALL_SLICES

FIXTURES = Path(__file__).parent / "fixtures" / "nftables"


# --- upstream's comparison ------------------------------------------------------------------------------------------

def assert_nft_equal(expected: str, result: str) -> None:
    """upstream's assertNFTablesTransactionEqual: equal up to the order of non-rule lines."""
    assert sorted_for_comparison(result) == sorted_for_comparison(expected)


def commands(text: str) -> int:
    """knftables' NumOperations: the commands a transaction holds."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))


# --- upstream's fake proxier ---------------------------------------------------------------------------------------

def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def upstream_config(family: str = IPV4, **overrides: Any) -> ProxyConfig:
    """NewFakeProxier's settings: pod CIDR, Service CIDR, node IP and --nodeport-addresses per family."""
    values: dict[str, Any] = dict(
        family=family,
        cluster_cidrs=("10.0.0.0/8", "fd00:10::/64"),
        node_ips=("192.168.0.2", "2001:db8::1"),
        nodeport_addresses=("192.168.0.2/32", "2001:db8::1/128"),
        service_cidrs=("172.30.0.0/16", "fd00:10:96::/112"),
    )
    values.update(overrides)
    return ProxyConfig(**values)


def upstream_plan(services: list[dict], slices: list[dict], family: str = IPV4, **overrides: Any):
    config = upstream_config(family, **overrides)
    return plan(build_model(services, slices, "test-node", family=family), config)


class Proxier:
    """Syncs plans into the fake nft (svcnet.testing.nft) as kube-proxy would, keeping the state between syncs."""

    def __init__(self, family: str = "ip") -> None:
        self.family = family
        self.nft = FakeNft()
        self.state: NftablesState | None = None
        self.cache = NftRenderCache()
        self.now = 100.0
        self.operations = -1
        self.last = None

    def sync(self, current, changed: set[str] | None = None):
        result = render_nftables(current, previous=self.state, changed=changed, now=self.now, cache=self.cache)
        if result.cleanup:
            self.nft.run(result.cleanup)
        self.nft.run(result.text)
        self.operations = commands(result.text)
        self.state = result.state
        self.last = result
        return result

    def age_stale_chains(self) -> None:
        self.now += 2.0

    def dump(self) -> str:
        return self.nft.dump(self.family)


def assert_dump(proxier: Proxier, expected: str) -> None:
    assert_nft_equal(expected, proxier.dump())


# --- TestOverallNFTablesRules ------------------------------------------------------------------------------------

def test_overall_rules_match_upstreams_six_services():
    current = upstream_plan(OVERALL_SERVICES, OVERALL_SLICES)
    assert_nft_equal(fixture("base-ipv4.nft") + fixture("overall.nft"), dump_nftables(current))


def test_a_full_sync_transaction_builds_exactly_the_dumped_table():
    current = upstream_plan(OVERALL_SERVICES, OVERALL_SLICES)
    proxier = Proxier()
    result = proxier.sync(current)
    assert result.full
    assert proxier.dump() == dump_nftables(current)


def test_the_dump_adds_every_object_before_referring_to_it():
    nft = FakeNft()
    nft.run(dump_nftables(upstream_plan(OVERALL_SERVICES, OVERALL_SLICES)))
    assert_nft_equal(fixture("base-ipv4.nft") + fixture("overall.nft"), nft.dump())


def test_a_full_sync_after_a_failure_rebuilds_the_same_table():
    current = upstream_plan(OVERALL_SERVICES, OVERALL_SLICES)
    proxier = Proxier()
    first = proxier.sync(current)
    again = proxier.sync(current, changed=None)
    assert again.full
    assert "delete chain" not in again.text  # base chains are re-created only once per process
    assert "delete chain" in first.text
    assert proxier.dump() == dump_nftables(current)


# --- TestSyncProxyRulesRepeated ----------------------------------------------------------------------------------

def _svc(ns: str, name: str, ip: str, port_name: str, number: int) -> dict:
    return service(ns, name, ip, port(port_name, number))


def _eps(ns: str, name: str, port_name: str, number: int, *ips: str) -> dict:
    return endpoint_slice(ns, name, [endpoint(ip) for ip in ips], port(port_name, number))


def _block(text: str) -> str:
    return textwrap.dedent(text)


SVC1 = _block("""
    add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 }
    add chain ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80
    add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 ip saddr 10.0.1.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80 meta l4proto tcp dnat to 10.0.1.1:80
    add element ip kube-proxy cluster-ips { 172.30.0.41 }
    add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
    """)
SVC2 = _block("""
    add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
    add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 ip daddr 172.30.0.42 tcp dport 8080 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080 numgen random mod 1 vmap { 0 : goto endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 }
    add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080
    add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 ip saddr 10.0.2.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080 meta l4proto tcp dnat to 10.0.2.1:8080
    add element ip kube-proxy cluster-ips { 172.30.0.42 }
    add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 8080 : goto service-MHHHYRWA-ns2/svc2/tcp/p8080 }
    """)
SVC2_FLUSHED = _block("""
    add chain ip kube-proxy service-MHHHYRWA-ns2/svc2/tcp/p8080
    add chain ip kube-proxy endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080
    """)
SVC3_HEAD = _block("""
    add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
    add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add element ip kube-proxy cluster-ips { 172.30.0.43 }
    add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
    """)
SVC3_EP = {
    "10.0.3.1": "endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80",
    "10.0.3.2": "endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80",
    "10.0.3.3": "endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80",
}


def svc3(*ips: str) -> str:
    entries = " , ".join(f"{i} : goto {SVC3_EP[ip]}" for i, ip in enumerate(ips))
    lines = [SVC3_HEAD, f"add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod {len(ips)} "
                        f"vmap {{ {entries} }}"]
    for ip in ips:
        chain = SVC3_EP[ip]
        lines += [f"add chain ip kube-proxy {chain}",
                  f"add rule ip kube-proxy {chain} ip saddr {ip} jump mark-for-masquerade",
                  f"add rule ip kube-proxy {chain} meta l4proto tcp dnat to {ip}:80"]
    return "\n".join(lines) + "\n"


SVC4_NO_ENDPOINTS = _block("""
    add element ip kube-proxy cluster-ips { 172.30.0.44 }
    add element ip kube-proxy no-endpoint-services { 172.30.0.44 . tcp . 80 comment "ns4/svc4:p80" : goto reject-chain }
    """)
SVC4 = _block("""
    add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
    add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 }
    add chain ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80
    add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 ip saddr 10.0.4.1 jump mark-for-masquerade
    add rule ip kube-proxy endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80 meta l4proto tcp dnat to 10.0.4.1:80
    add element ip kube-proxy cluster-ips { 172.30.0.44 }
    add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
    """)
SVC3_EMPTIED = _block("""
    add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
    add chain ip kube-proxy endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80
    add chain ip kube-proxy endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80
    add element ip kube-proxy cluster-ips { 172.30.0.43 }
    add element ip kube-proxy no-endpoint-services { 172.30.0.43 . tcp . 80 comment "ns3/svc3:p80" : goto reject-chain }
    """)


@dataclass
class Cluster:
    """Services and slices by "namespace/name", edited step by step as upstream's test does."""

    services: dict[str, dict] = field(default_factory=dict)
    slices: dict[str, dict] = field(default_factory=dict)

    def plan(self):
        return upstream_plan(list(self.services.values()), list(self.slices.values()))


def test_sync_proxy_rules_repeated():
    base = fixture("base-ipv4.nft")
    proxier = Proxier()
    cluster = Cluster()
    cluster.services["ns1/svc1"] = _svc("ns1", "svc1", "172.30.0.41", "p80", 80)
    cluster.services["ns2/svc2"] = _svc("ns2", "svc2", "172.30.0.42", "p8080", 8080)
    cluster.slices["ns1/svc1"] = _eps("ns1", "svc1", "p80", 80, "10.0.1.1")
    cluster.slices["ns2/svc2"] = _eps("ns2", "svc2", "p8080", 8080, "10.0.2.1")
    proxier.sync(cluster.plan())
    assert_dump(proxier, base + SVC1 + SVC2)

    # Add a new service and its endpoints.
    cluster.services["ns3/svc3"] = _svc("ns3", "svc3", "172.30.0.43", "p80", 80)
    cluster.slices["ns3/svc3"] = _eps("ns3", "svc3", "p80", 80, "10.0.3.1")
    proxier.sync(cluster.plan(), {"ns3/svc3"})
    assert_dump(proxier, base + SVC1 + SVC2 + svc3("10.0.3.1"))
    # 2 elements; add+flush of 2 chains and 2 rules in each.
    assert proxier.operations == 10

    # Delete a service: its chains are flushed, not deleted yet.
    del cluster.services["ns2/svc2"]
    proxier.sync(cluster.plan(), {"ns2/svc2"})
    assert_dump(proxier, base + SVC1 + SVC2_FLUSHED + svc3("10.0.3.1"))
    assert proxier.operations == 4  # 2 elements deleted, 2 chains flushed

    # Once they are old enough, a sync deletes them in a transaction of its own.
    proxier.age_stale_chains()
    result = proxier.sync(cluster.plan(), set())
    assert_dump(proxier, base + SVC1 + svc3("10.0.3.1"))
    assert result.deleted_chains == ("endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080",
                                     "service-MHHHYRWA-ns2/svc2/tcp/p8080")
    assert proxier.operations == 0

    # Add a service, sync, then add its endpoints.
    cluster.services["ns4/svc4"] = _svc("ns4", "svc4", "172.30.0.44", "p80", 80)
    proxier.sync(cluster.plan(), {"ns4/svc4"})
    assert_dump(proxier, base + SVC1 + svc3("10.0.3.1") + SVC4_NO_ENDPOINTS)
    assert proxier.operations == 2
    cluster.slices["ns4/svc4"] = _eps("ns4", "svc4", "p80", 80, "10.0.4.1")
    proxier.sync(cluster.plan(), {"ns4/svc4"})
    assert_dump(proxier, base + SVC1 + svc3("10.0.3.1") + SVC4)
    assert proxier.operations == 10  # 1 element added, 1 deleted; 2 chains added+flushed, 4 rules

    # Change an endpoint: the old endpoint chain is flushed, not deleted yet.
    cluster.slices["ns3/svc3"] = _eps("ns3", "svc3", "p80", 80, "10.0.3.2")
    proxier.sync(cluster.plan(), {"ns3/svc3"})
    assert_dump(proxier, base + SVC1 + svc3("10.0.3.2") + f"add chain ip kube-proxy {SVC3_EP['10.0.3.1']}\n" + SVC4)
    assert proxier.operations == 9

    # Add an endpoint once the old chain has aged: it goes, the new chains come.
    proxier.age_stale_chains()
    cluster.slices["ns3/svc3"] = _eps("ns3", "svc3", "p80", 80, "10.0.3.2", "10.0.3.3")
    proxier.sync(cluster.plan(), {"ns3/svc3"})
    with_two = base + SVC1 + svc3("10.0.3.2", "10.0.3.3") + SVC4
    assert_dump(proxier, with_two)
    assert proxier.operations == 12

    # Empty a service's endpoints: its chains are flushed, not deleted.
    cluster.slices["ns3/svc3"] = _eps("ns3", "svc3", "p80", 80)
    proxier.sync(cluster.plan(), {"ns3/svc3"})
    assert_dump(proxier, base + SVC1 + SVC3_EMPTIED + SVC4)
    assert proxier.operations == 5
    assert set(proxier.state.stale_chains) == {
        "service-4AT6LBPK-ns3/svc3/tcp/p80", SVC3_EP["10.0.3.2"], SVC3_EP["10.0.3.3"]}

    # Restore them at once: the chains are refilled and no longer stale.
    cluster.slices["ns3/svc3"] = _eps("ns3", "svc3", "p80", 80, "10.0.3.2", "10.0.3.3")
    proxier.sync(cluster.plan(), {"ns3/svc3"})
    assert_dump(proxier, with_two)
    assert proxier.operations == 14
    assert not proxier.state.stale_chains

    # Empty and restore after the chains aged: deleted first, then created again.
    cluster.slices["ns3/svc3"] = _eps("ns3", "svc3", "p80", 80)
    proxier.sync(cluster.plan(), {"ns3/svc3"})
    proxier.age_stale_chains()
    cluster.slices["ns3/svc3"] = _eps("ns3", "svc3", "p80", 80, "10.0.3.2", "10.0.3.3")
    result = proxier.sync(cluster.plan(), {"ns3/svc3"})
    assert len(result.deleted_chains) == 3
    assert_dump(proxier, with_two)

    # A sync with no changes writes nothing.
    proxier.sync(cluster.plan(), set())
    assert_dump(proxier, with_two)
    assert proxier.operations == 0


# --- IPv6, the seed Service, policies -----------------------------------------------------------------------------

def rules_of(text: str, chain: str) -> list[str]:
    head = re.compile(rf"^add rule ip6? kube-proxy {re.escape(chain)} ")
    return [head.sub("", line) for line in text.splitlines() if head.match(line)]


def test_ipv6_uses_the_ip6_table_and_ipv6_addresses():
    svc = service("ns1", "svc1", "fd00:10:96::41", port("p80", 80))
    eps = endpoint_slice("ns1", "svc1", [endpoint("fd00:10:180::1")], port("p80", 80), address_type="IPv6")
    expected = fixture("base-ipv6.nft") + _block("""
        add chain ip6 kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
        add rule ip6 kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip6 daddr fd00:10:96::41 tcp dport 80 ip6 saddr != fd00:10::/64 jump mark-for-masquerade
        add rule ip6 kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80 }
        add chain ip6 kube-proxy endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80
        add rule ip6 kube-proxy endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80 ip6 saddr fd00:10:180::1 jump mark-for-masquerade
        add rule ip6 kube-proxy endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80 meta l4proto tcp dnat to [fd00:10:180::1]:80
        add element ip6 kube-proxy cluster-ips { fd00:10:96::41 }
        add element ip6 kube-proxy service-ips { fd00:10:96::41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
        """)
    current = upstream_plan([svc], [eps], family=IPV6)
    assert_nft_equal(expected, dump_nftables(current))
    proxier = Proxier("ip6")
    proxier.sync(current)
    assert_dump(proxier, expected)


SEED_SERVICE = service("default", "hostnames", "10.102.11.183", port("default", 80), selector={"app": "hostnames"})
SEED_SLICE = endpoint_slice(
    "default", "hostnames",
    [endpoint(ip, node="192.168.0.106") for ip in ("10.244.1.8", "10.244.1.10", "10.244.1.9")],
    port("default", 9376),
)
SEED_CHAIN = "service-PM2QQW4D-default/hostnames/tcp/default"
SEED_ENDPOINTS = {  # in kube-proxy's order: by "IP:port" as a string
    "10.244.1.10": "endpoint-PYHNPQPZ-default/hostnames/tcp/default__10.244.1.10/9376",
    "10.244.1.8": "endpoint-DPWU2QOI-default/hostnames/tcp/default__10.244.1.8/9376",
    "10.244.1.9": "endpoint-BLRG5C6U-default/hostnames/tcp/default__10.244.1.9/9376",
}


def seed_plan(**overrides: Any):
    config = ProxyConfig(**{"cluster_cidrs": ("10.244.0.0/16",), "node_ips": ("192.168.0.106",), **overrides})
    return plan(build_model([SEED_SERVICE], [SEED_SLICE], "192.168.0.106"), config)


def test_seed_service_renders_the_seed_chains_exactly():
    dump = dump_nftables(seed_plan())
    entries = " , ".join(f"{i} : goto {chain}" for i, chain in enumerate(SEED_ENDPOINTS.values()))
    assert rules_of(dump, SEED_CHAIN) == [
        "ip daddr 10.102.11.183 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 3 vmap {{ {entries} }}",
    ]
    for ip, chain in SEED_ENDPOINTS.items():
        assert rules_of(dump, chain) == [f"ip saddr {ip} jump mark-for-masquerade",
                                         f"meta l4proto tcp dnat to {ip}:9376"]
    assert (f"add element ip kube-proxy service-ips {{ 10.102.11.183 . tcp . 80 : goto {SEED_CHAIN} }}"
            in dump.splitlines())


def test_without_nodeport_addresses_nodeports_match_every_local_address_but_localhost():
    dump = dump_nftables(seed_plan())
    assert rules_of(dump, "services")[1] == (
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports")
    assert rules_of(dump, "nodeport-endpoints-check") == [
        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"]
    assert "nodeport-ips" not in dump
    # A full sync makes sure the set is gone: "add" first so the "delete" cannot fail.
    text = render_nftables(seed_plan()).text.splitlines()
    assert text.index("delete set ip kube-proxy nodeport-ips") == text.index(
        'add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }') + 1


def test_without_service_cidrs_unallocated_cluster_ips_are_not_dropped():
    assert rules_of(dump_nftables(seed_plan()), "cluster-ips-check") == [
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"']
    several = dump_nftables(seed_plan(service_cidrs=("10.96.0.0/16", "fd00::/108", "10.97.0.0/16")))
    assert rules_of(several, "cluster-ips-check")[1] == (
        'ip daddr { 10.96.0.0/16,10.97.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"')


LOCAL_SVC = service("ns1", "svc1", "172.30.0.41", port("p80", 80, node_port=3001), type="NodePort",
                    externalTrafficPolicy="Local")
LOCAL_SLICE = endpoint_slice("ns1", "svc1", [endpoint("10.180.0.1", node="test-node"), endpoint("10.180.1.1")],
                             port("p80", 80))
CLUSTER_CHAIN = "service-ULMVA6XW-ns1/svc1/tcp/p80"
LOCAL_CHAIN = "local-ULMVA6XW-ns1/svc1/tcp/p80"
EXTERNAL_CHAIN = "external-ULMVA6XW-ns1/svc1/tcp/p80"


@pytest.mark.parametrize(("overrides", "masquerade", "short_circuit"), [
    ({}, "ip saddr != 10.0.0.0/8 ", "ip saddr 10.0.0.0/8"),
    ({"masquerade_all": True}, "", "ip saddr 10.0.0.0/8"),
    ({"cluster_cidrs": ()}, None, None),
    ({"detect_local_mode": "NodeCIDR", "node_pod_cidrs": ("10.0.1.0/24",)}, "ip saddr != 10.0.1.0/24 ",
     "ip saddr 10.0.1.0/24"),
    ({"detect_local_mode": "BridgeInterface", "bridge_interface": "cbr0"}, "iifname != cbr0 ", "iifname cbr0"),
    ({"detect_local_mode": "InterfaceNamePrefix", "interface_name_prefix": "veth"}, "iifname != veth* ",
     "iifname veth*"),
], ids=["cluster-cidr", "masquerade-all", "no-detector", "node-cidr", "bridge", "interface-prefix"])
def test_detect_local_modes_shape_masquerade_and_short_circuit(overrides, masquerade, short_circuit):
    dump = dump_nftables(upstream_plan([LOCAL_SVC], [LOCAL_SLICE], **overrides))
    masq_rules = [r for r in rules_of(dump, CLUSTER_CHAIN) if "mark-for-masquerade" in r]
    assert masq_rules == ([] if masquerade is None else
                          [f"ip daddr 172.30.0.41 tcp dport 80 {masquerade}jump mark-for-masquerade"])
    pod_rule = [f"{short_circuit} goto {CLUSTER_CHAIN} comment \"short-circuit pod traffic\""]
    assert rules_of(dump, EXTERNAL_CHAIN) == (pod_rule if short_circuit else []) + [
        'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'fib saddr type local goto {CLUSTER_CHAIN} comment "short-circuit local traffic"',
        f"goto {LOCAL_CHAIN}",
    ]


def test_local_policy_chain_dispatches_to_this_nodes_endpoints_only():
    dump = dump_nftables(upstream_plan([LOCAL_SVC], [LOCAL_SLICE]))
    assert rules_of(dump, LOCAL_CHAIN) == [
        "numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }"]
    assert rules_of(dump, CLUSTER_CHAIN)[1].startswith("numgen random mod 2 vmap")
    assert f"add element ip kube-proxy service-nodeports {{ tcp . 3001 : goto {EXTERNAL_CHAIN} }}" in dump


def test_internal_traffic_policy_local_without_local_endpoints_drops_cluster_ip_traffic():
    svc = service("ns1", "svc1", "172.30.0.41", port("p80", 80), internalTrafficPolicy="Local")
    eps = endpoint_slice("ns1", "svc1", [endpoint("10.180.1.1")], port("p80", 80))
    dump = dump_nftables(upstream_plan([svc], [eps]))
    assert ('add element ip kube-proxy no-endpoint-services { 172.30.0.41 . tcp . 80 comment "ns1/svc1:p80" '
            ': drop }') in dump
    assert "service-ips {" not in dump.replace("add map ip kube-proxy service-ips {", "")


def test_firewall_lets_the_nodes_own_load_balancer_traffic_back_in():
    svc = service("ns1", "svc1", "172.30.0.41", port("p80", 80, node_port=3001), type="LoadBalancer",
                  loadBalancerSourceRanges=["192.168.0.0/24", " 203.0.113.0/25"],
                  status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8"}]}})
    eps = endpoint_slice("ns1", "svc1", [endpoint("10.180.0.1")], port("p80", 80))
    dump = dump_nftables(upstream_plan([svc], [eps]))
    assert rules_of(dump, "firewall-ULMVA6XW-ns1/svc1/tcp/p80") == [
        "ip saddr != { 192.168.0.0/24 , 203.0.113.0/25 , 1.2.3.4 , 5.6.7.8 } drop"]
    for ip in ("1.2.3.4", "5.6.7.8"):
        assert (f"add element ip kube-proxy firewall-ips {{ {ip} . tcp . 80 : goto "
                f"firewall-ULMVA6XW-ns1/svc1/tcp/p80 }}") in dump


def test_udp_services_dnat_udp():
    svc = service("ns1", "svc1", "172.30.0.41", port("dns", 53, protocol="UDP"))
    eps = endpoint_slice("ns1", "svc1", [endpoint("10.180.0.1")], port("dns", 53, protocol="UDP"))
    dump = dump_nftables(upstream_plan([svc], [eps]))
    assert rules_of(dump, "endpoint-4QX6ZOJM-ns1/svc1/udp/dns__10.180.0.1/53")[-1] == (
        "meta l4proto udp dnat to 10.180.0.1:53")
    assert ("add element ip kube-proxy service-ips { 172.30.0.41 . udp . 53 : goto "
            "service-7T5VOJIX-ns1/svc1/udp/dns }") in dump


# --- partial syncs, the cache, stale chains ----------------------------------------------------------------------

def many_services(count: int, changed_endpoint: str = "10.1.0.1") -> Cluster:
    cluster = Cluster()
    for i in range(count):
        name = f"svc{i}"
        cluster.services[f"ns/{name}"] = _svc("ns", name, f"172.30.{i >> 8}.{i & 255}", "p80", 80)
        first = changed_endpoint if i == 0 else f"10.2.{i >> 8}.{i & 255}"
        cluster.slices[f"ns/{name}"] = _eps("ns", name, "p80", 80, first, f"10.3.{i >> 8}.{i & 255}")
    return cluster


def test_a_partial_sync_touches_only_the_changed_service():
    proxier = Proxier()
    cluster = many_services(3)
    proxier.sync(cluster.plan())
    misses = proxier.cache.misses
    changed = many_services(3, changed_endpoint="10.1.0.2")
    result = proxier.sync(changed.plan(), {"ns/svc0"})
    assert not result.full
    assert result.text and all("ns/svc0/" in line or "172.30.0.0 " in line for line in result.text.splitlines())
    assert proxier.cache.misses == misses + 1  # only svc0 was rendered again
    stale = "add chain ip kube-proxy endpoint-3X3OW6CK-ns/svc0/tcp/p80__10.1.0.1/80\n"  # flushed, not yet deleted
    assert_dump(proxier, dump_nftables(changed.plan()) + stale)


def test_a_one_endpoint_change_costs_the_same_at_any_number_of_services():
    operations = []
    for count in (10, 400):
        proxier = Proxier()
        proxier.sync(many_services(count).plan())
        proxier.sync(many_services(count, changed_endpoint="10.1.0.2").plan(), {"ns/svc0"})
        operations.append(proxier.operations)
    assert operations[0] == operations[1] == 13  # 3 chains added+flushed, 6 rules, 1 old chain flushed


def test_stale_chains_are_deleted_only_a_second_after_their_last_flush():
    proxier = Proxier()
    cluster = many_services(2)
    proxier.sync(cluster.plan())
    del cluster.services["ns/svc1"]
    proxier.sync(cluster.plan(), {"ns/svc1"})
    gone = sorted(proxier.state.stale_chains)
    assert len(gone) == 3

    proxier.now += 0.5  # still there: flushed again, and the clock starts again (as upstream)
    result = proxier.sync(cluster.plan(), set())
    assert result.cleanup == ""
    assert result.text.splitlines() == [f"flush chain ip kube-proxy {chain}" for chain in gone]
    proxier.now += 0.9
    assert proxier.sync(cluster.plan(), set()).cleanup == ""
    proxier.now += 1.1
    result = proxier.sync(cluster.plan(), set())
    assert result.cleanup.splitlines() == [f"delete chain ip kube-proxy {chain}" for chain in gone]
    assert result.deleted_chains == tuple(gone)
    assert not proxier.state.stale_chains
    assert_dump(proxier, dump_nftables(cluster.plan()))


def test_unused_affinity_sets_are_deleted_at_once():
    proxier = Proxier()
    current = upstream_plan(OVERALL_SERVICES, OVERALL_SLICES)
    proxier.sync(current)
    without_svc5 = upstream_plan([s for s in OVERALL_SERVICES if s["metadata"]["name"] != "svc5"], OVERALL_SLICES)
    result = proxier.sync(without_svc5, {"ns5/svc5"})
    assert "delete set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80" in result.text.splitlines()
    assert "affinity-" not in proxier.dump()


def test_after_a_restart_chains_left_by_the_old_proxy_go_stale():
    proxier = Proxier()
    old = "service-OLDOLDOL-ns9/gone/tcp/p80"
    proxier.nft.run(f"add table ip kube-proxy\nadd chain ip kube-proxy {old}\nadd rule ip kube-proxy {old} drop\n")
    proxier.state = NftablesState.existing(IPV4, chains=[old, "services"], sets=["cluster-ips"])
    result = proxier.sync(seed_plan())
    assert f"flush chain ip kube-proxy {old}" in result.text.splitlines()
    assert proxier.state.stale_chains == {old: proxier.now}
    proxier.age_stale_chains()
    assert proxier.sync(seed_plan(), set()).deleted_chains == (old,)
    assert old not in proxier.dump()


def test_a_state_of_the_other_family_is_refused():
    ipv6_state = NftablesState(family=IPV6)
    with pytest.raises(ValueError, match="previous state is for IPv6"):
        render_nftables(seed_plan(), previous=ipv6_state, changed=set())


def test_a_bad_service_cidr_is_refused():
    with pytest.raises(ValueError, match="10.96.0.0/99"):
        dump_nftables(seed_plan(service_cidrs=("10.96.0.0/99",)))


# --- the real nft, in a throwaway namespace ------------------------------------------------------------------------

@pytest.fixture
def scratch_netns():
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        pytest.skip("needs root, nft and ip to make a throwaway network namespace")
    from svcnet.kernel.netns import create_netns, delete_netns

    name = f"svcnet-nftr-{secrets.token_hex(3)}"
    create_netns(name)
    try:
        yield name
    finally:
        delete_netns(name)


def _nft(netns: str, text: str, *args: str) -> None:
    from svcnet.kernel.netns import run_command_in_netns

    result = run_command_in_netns(netns, ["nft", *args, "-f", "-"], input=text.encode())
    assert result.returncode == 0, result.stderr.decode() + text


def test_real_nft_accepts_dumps_and_a_sequence_of_syncs(scratch_netns):
    ipv6 = upstream_plan([service("ns1", "s", "fd00:10:96::41", port("p80", 80))],
                         [endpoint_slice("ns1", "s", [endpoint("fd00:10:180::1")], port("p80", 80),
                                         address_type="IPv6")], family=IPV6)
    for current in (upstream_plan(OVERALL_SERVICES, OVERALL_SLICES), ipv6):
        _nft(scratch_netns, dump_nftables(current), "-c")
    variants = upstream_plan(OVERALL_SERVICES, OVERALL_SLICES, detect_local_mode="InterfaceNamePrefix",
                             interface_name_prefix="veth", nodeport_addresses=())
    _nft(scratch_netns, dump_nftables(variants), "-c")

    state = None
    steps = [(upstream_plan(OVERALL_SERVICES, OVERALL_SLICES), None, 100.0),
             (upstream_plan(OVERALL_SERVICES[:3], OVERALL_SLICES), {"ns4/svc4", "ns5/svc5", "ns6/svc6"}, 100.0),
             (upstream_plan(OVERALL_SERVICES[:3], OVERALL_SLICES), set(), 102.0),
             (upstream_plan(OVERALL_SERVICES, OVERALL_SLICES), None, 103.0)]
    for current, changed, now in steps:
        result = render_nftables(current, previous=state, changed=changed, now=now)
        if result.cleanup:
            _nft(scratch_netns, result.cleanup)
        _nft(scratch_netns, result.text)
        state = result.state
    assert result.full and not state.stale_chains


def test_two_services_sharing_an_external_ip_and_port_do_not_delete_it_for_each_other():
    def shared(name: str, ip: str) -> dict:
        return service("ns1", name, ip, port("p80", 80), externalIPs=["192.168.99.11"])

    slices = [endpoint_slice("ns1", n, [endpoint(ip)], port("p80", 80))
              for n, ip in (("a", "10.180.0.1"), ("b", "10.180.0.2"))]
    proxier = Proxier()
    proxier.sync(upstream_plan([shared("a", "172.30.0.41"), shared("b", "172.30.0.42")], slices))
    key = ("service-ips", "192.168.99.11 . tcp . 80")
    assert proxier.state.claims[key] == ("ns1/a", "ns1/b")
    assert "ns1/b/" in proxier.state.elements[key][0]  # the later one wins, as in a kube-proxy sync
    proxier.sync(upstream_plan([shared("a", "172.30.0.41")], slices), {"ns1/b"})
    assert proxier.state.elements[key][0] == "goto external-VZNH3DV3-ns1/a/tcp/p80"
    assert "add element ip kube-proxy service-ips { 192.168.99.11 . tcp . 80 : goto external-VZNH3DV3-ns1/a/tcp/p80 }" \
        in proxier.dump().splitlines()


def test_a_kernel_listing_corrects_what_the_state_believes():
    proxier = Proxier()
    cluster = many_services(2)
    proxier.sync(cluster.plan())
    del cluster.services["ns/svc1"]
    proxier.sync(cluster.plan(), {"ns/svc1"})
    believed = sorted(proxier.state.stale_chains)
    # Someone deleted one stale chain by hand and left another chain behind.
    proxier.nft.run(f"delete chain ip kube-proxy {believed[0]}\nadd chain ip kube-proxy service-X/y\n")
    listed = [c for c in proxier.nft.list_chains() if c != believed[0]]
    result = render_nftables(cluster.plan(), previous=proxier.state, changed=None, now=proxier.now,
                             kernel_chains=listed)
    proxier.nft.run(result.text)  # would fail flushing the chain that is gone
    assert f"flush chain ip kube-proxy {believed[0]}" not in result.text
    assert "flush chain ip kube-proxy service-X/y" in result.text
    assert set(result.state.stale_chains) == {*believed[1:], "service-X/y"}


def test_chains_a_failed_cleanup_left_behind_are_tried_again_later():
    proxier = Proxier()
    cluster = many_services(2)
    proxier.sync(cluster.plan())
    del cluster.services["ns/svc1"]
    proxier.sync(cluster.plan(), {"ns/svc1"})
    proxier.age_stale_chains()
    result = render_nftables(cluster.plan(), previous=proxier.state, changed=set(), now=proxier.now)
    assert result.deleted_chains and not result.state.stale_chains
    kept = result.cleanup_failed(proxier.now)  # say a chain was still referred to
    assert set(kept.stale_chains) == set(result.deleted_chains)
    later = render_nftables(cluster.plan(), previous=kept, changed=set(), now=proxier.now + 2)
    assert later.deleted_chains == result.deleted_chains


def test_the_cache_renders_again_when_node_wide_settings_change():
    cache = NftRenderCache()
    render_nftables(seed_plan(), cache=cache)
    render_nftables(seed_plan(), cache=cache)
    assert (cache.misses, cache.hits) == (1, 1)
    result = render_nftables(seed_plan(masquerade_all=True), cache=cache)
    assert cache.misses == 2
    assert f"add rule ip kube-proxy {SEED_CHAIN} ip daddr 10.102.11.183 tcp dport 80 jump mark-for-masquerade" \
        in result.text.splitlines()


def test_names_are_hash_prefixed_readable_and_cut_at_nfts_limit():
    from svcnet.proxy.model import EndpointInfo, ServicePortName
    from svcnet.proxy.nftables import names

    name = ServicePortName("ns1", "svc1", "p80", "TCP")
    assert names.cluster_policy_chain(name) == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert names.local_policy_chain(name) == "local-ULMVA6XW-ns1/svc1/tcp/p80"
    assert names.affinity_set(name, EndpointInfo("10.180.0.1", 80)) == "affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    long = ServicePortName("n" * 63, "s" * 63, "p" * 63, "SCTP")
    chain = names.endpoint_chain(long, EndpointInfo("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 65535))
    assert len(chain) == len("endpoint-") + 240 and chain.endswith("...")
    assert names.is_service_chain(chain) and not names.is_service_chain("service-endpoints-check")


def test_a_service_with_two_ports_keeps_its_cluster_ip_while_one_port_remains():
    two = service("ns1", "svc1", "172.30.0.41", port("p80", 80), port("p443", 443))
    one = service("ns1", "svc1", "172.30.0.41", port("p80", 80))
    eps = endpoint_slice("ns1", "svc1", [endpoint("10.180.0.1")], port("p80", 80), port("p443", 443))
    proxier = Proxier()
    proxier.sync(upstream_plan([two], [eps]))
    assert proxier.dump().count("add element ip kube-proxy cluster-ips { 172.30.0.41 }") == 1
    result = proxier.sync(upstream_plan([one], [eps]), {"ns1/svc1"})
    assert "cluster-ips" not in result.text
    assert "delete element ip kube-proxy service-ips { 172.30.0.41 . tcp . 443 }" in result.text.splitlines()
    assert_dump(proxier, dump_nftables(upstream_plan([one], [eps])) + _block("""
        add chain ip kube-proxy service-VIFYDI4B-ns1/svc1/tcp/p443
        add chain ip kube-proxy endpoint-B2LI6PSC-ns1/svc1/tcp/p443__10.180.0.1/443
        """))
