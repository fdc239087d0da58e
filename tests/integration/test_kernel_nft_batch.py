"""Transactions sent as netlink batches (svcnet.kernel.nft_batch) leave the kernel's table exactly as `nft -f`.

Two throwaway namespaces get the same transactions: one through `nft -f`
only, the other through NetnsNft's batch path (with `nft -f` for what the
batch vocabulary leaves out). After every step `nft list table` and
`nft -j list table` (handles included) must read the same in both.
"""
from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.kernel.netns import create_netns, delete_netns, run_command_in_netns
from svcnet.kernel.nft import NetnsNft, NftTransactionFailed
from svcnet.proxy.changes import ChangeTracker
from svcnet.proxy.model import IPV4, IPV6
from svcnet.proxy.nftables.apply import NftablesWriter
from svcnet.proxy.syncer import ProxySettings, RuleSyncer
from tests.integration.netns.conftest import (  # noqa: F401  (the session safety net is a fixture)
    _delete_this_sessions_namespaces,
    requires_root,
    session_prefix,
)
from tests.unit.kernel.test_nft_batch import FIREWALL, FIREWALL_2, FORMS, FORMS_2
from tests.unit.proxy.nft_fixtures import OVERALL, creation_order

pytestmark = [requires_root, pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")]

_counter = itertools.count(1)


@pytest.fixture
def pair() -> Iterator[tuple[NetnsNft, NetnsNft]]:
    """(nft -f only, batches) in two fresh namespaces."""
    names = [f"{session_prefix()}-nftb{next(_counter)}" for _ in range(2)]
    created = []
    try:
        for name in names:
            create_netns(name)
            created.append(name)
        yield NetnsNft(names[0], direct=False), NetnsNft(names[1])
    finally:
        for name in created:
            delete_netns(name)


def listings(nft: NetnsNft, family: str = "ip") -> tuple[str, str]:
    text = nft.list_table(family)
    as_json = run_command_in_netns(nft.netns, ["nft", "-j", "list", "table", family, "kube-proxy"]).stdout
    return text, as_json


def assert_same_tables(plain: NetnsNft, batched: NetnsNft, families: tuple[str, ...] = ("ip",)) -> None:
    for family in families:
        assert listings(batched, family) == listings(plain, family)


def test_hand_written_partial_sync_lines_build_the_table_nft_builds(pair: tuple[NetnsNft, NetnsNft]) -> None:
    plain, batched = pair
    for nft in pair:
        nft.run(creation_order(OVERALL))
    assert batched.direct_runs == 0  # a full ruleset is outside the batch vocabulary
    more = ("add chain ip kube-proxy zz\n"
            'add rule ip kube-proxy zz ip daddr 10.0.0.1 goto xx comment "short-circuit pod traffic"\n'
            "add element ip kube-proxy no-endpoint-nodeports { udp . 30053 : drop }\n"
            "add element ip kube-proxy service-nodeports { tcp . 30080 : goto xx }\n"
            "delete element ip kube-proxy service-ips { 10.9.9.9 . tcp . 80 }\n"
            "flush chain ip kube-proxy zz\n"
            "delete chain ip kube-proxy zz\n")
    for text in (FORMS, FORMS_2, FIREWALL, "add table ip6 kube-proxy\n", FIREWALL_2, more):
        for nft in pair:
            nft.run(text)
        assert_same_tables(plain, batched)
    assert_same_tables(plain, batched, ("ip", "ip6"))
    assert batched.direct_runs == 5 and batched.nft_runs == 2


def test_a_refused_batch_changes_nothing_and_fails_as_nft_says(pair: tuple[NetnsNft, NetnsNft]) -> None:
    plain, batched = pair
    for nft in pair:
        nft.run(creation_order(OVERALL))
    before = listings(batched)
    bad = "add chain ip kube-proxy fresh\nadd rule ip kube-proxy fresh jump no-such-chain\n"
    with pytest.raises(NftTransactionFailed) as plain_error:
        plain.run(bad)
    with pytest.raises(NftTransactionFailed) as batched_error:
        batched.run(bad)
    assert (batched_error.value.errno_name, batched_error.value.line_number) == ("ENOENT", 2)
    assert (plain_error.value.errno_name, plain_error.value.line_number) == ("ENOENT", 2)
    assert listings(batched) == before and batched.direct_runs == 0


def service(name: str, ip: str, family: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ipFamilies": [family],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                               {"name": "dns", "port": 53, "protocol": "UDP"}], **spec}}


def endpoint_slice(name: str, addresses: list[str], family: str) -> dict[str, Any]:
    return {"kind": "EndpointSlice",
            "metadata": {"namespace": "default", "name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
            "addressType": family,
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": "node-1"}
                          for a in addresses],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}


def test_the_renderers_partial_syncs_leave_the_same_tables_in_both_families(
        pair: tuple[NetnsNft, NetnsNft]) -> None:
    now = [1000.0]
    syncers, trackers = [], []
    for nft in pair:
        tracker = ChangeTracker("node-1", families=(IPV4, IPV6))
        settings = ProxySettings("node-1", families=(IPV4, IPV6), cluster_cidrs=("10.244.0.0/16", "fd00:10::/64"),
                                 node_ips=("192.168.0.106", "fd00::106"), mode="nftables")
        syncers.append(RuleSyncer(tracker, None, settings, writer=NftablesWriter(nft, clock=lambda: now[0])))
        trackers.append(tracker)
    v4 = [f"10.244.0.{i}" for i in range(2, 6)]
    v6 = [f"fd00:10::{i:x}" for i in range(2, 6)]
    sticky = {"sessionAffinity": "ClientIP",
              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}
    local_node_port = {"type": "NodePort", "externalTrafficPolicy": "Local",
                       "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}
    objects = [(service("web", "10.96.0.10", "IPv4", **sticky), endpoint_slice("web", v4, "IPv4")),
               (service("web6", "fd00:96::10", "IPv6", **sticky), endpoint_slice("web6", v6, "IPv6")),
               (service("np", "10.96.0.30", "IPv4", **local_node_port), endpoint_slice("np", v4[:2], "IPv4"))]
    changes = [
        lambda t: [t.service_update(None, s) or t.endpoint_slice_update(e) for s, e in objects],
        lambda t: t.endpoint_slice_update({**objects[0][1], "endpoints": objects[0][1]["endpoints"][:3]}),
        lambda t: t.endpoint_slice_update({**objects[1][1], "endpoints": objects[1][1]["endpoints"][1:]}),
        lambda t: t.endpoint_slice_update({**objects[2][1], "endpoints": objects[2][1]["endpoints"][:1]}),
        lambda t: [t.service_update(None, service("db", "10.96.0.20", "IPv4")),
                   t.endpoint_slice_update(endpoint_slice("db", ["10.244.1.9"], "IPv4"))],
        lambda t: t.service_update(objects[0][0], None),  # its chains go stale
        lambda t: None,  # a second later they are deleted
    ]
    for change in changes:
        for tracker, syncer in zip(trackers, syncers, strict=True):
            change(tracker)
            result = syncer.sync()
            assert result.ok, result.error
        assert_same_tables(*pair, families=("ip", "ip6"))
        now[0] += 2.0
    plain, batched = pair
    assert batched.nft_runs == 2 and batched.direct_runs >= 4  # only the first (full) syncs ran nft
    assert plain.direct_runs == 0
    assert "service-" in plain.list_table("ip6") and "10.96.0.20" in plain.list_table("ip")
    assert "update @affinity-" in plain.list_table("ip6") and "fib saddr type local" in plain.list_table("ip")


def without_handles(listing: str) -> object:
    """`nft -j list table` less the handles (a cold start in steps creates the same objects in the same
    order, but all chains before the first rule, so rules and anonymous sets get other handles)."""
    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "handle"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(json.loads(listing))


@pytest.fixture
def cold_pair() -> Iterator[tuple[NetnsNft, NetnsNft]]:
    names = [f"{session_prefix()}-nftc{next(_counter)}" for _ in range(2)]
    created = []
    try:
        for name in names:
            create_netns(name)
            created.append(name)
        yield NetnsNft(names[0], direct=False), NetnsNft(names[1], cold_start_min_vmaps=1)
    finally:
        for name in created:
            delete_netns(name)


def test_a_cold_start_in_steps_builds_the_table_one_nft_f_builds(cold_pair: tuple[NetnsNft, NetnsNft]) -> None:
    plain, stepped = cold_pair
    text = creation_order(OVERALL)
    for nft in cold_pair:
        nft.run(text)
    assert stepped.direct_runs == 1 and stepped.nft_runs == 0  # it did go in steps
    (plain_text, plain_json), (stepped_text, stepped_json) = listings(plain), listings(stepped)
    assert stepped_text == plain_text
    assert without_handles(stepped_json) == without_handles(plain_json)


def test_the_renderers_first_full_sync_in_steps_builds_the_same_tables(cold_pair: tuple[NetnsNft, NetnsNft]) -> None:
    for nft in cold_pair:
        tracker = ChangeTracker("node-1", families=(IPV4, IPV6))
        settings = ProxySettings("node-1", families=(IPV4, IPV6), cluster_cidrs=("10.244.0.0/16", "fd00:10::/64"),
                                 node_ips=("192.168.0.106", "fd00::106"), mode="nftables")
        syncer = RuleSyncer(tracker, None, settings, writer=NftablesWriter(nft))
        sticky = {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}
        for i in range(20):
            spec = sticky if i % 3 == 0 else {}
            tracker.service_update(None, service(f"s{i}", f"10.96.1.{i}", "IPv4", **spec))
            tracker.endpoint_slice_update(endpoint_slice(f"s{i}", [f"10.244.2.{i}", f"10.244.3.{i}"], "IPv4"))
            tracker.service_update(None, service(f"v{i}", f"fd00:96::1:{i:x}", "IPv6", **spec))
            tracker.endpoint_slice_update(endpoint_slice(f"v{i}", [f"fd00:10::2:{i:x}"], "IPv6"))
        result = syncer.sync()
        assert result.ok and result.full, result.error
    plain, stepped = cold_pair
    assert stepped.direct_runs == 2 and stepped.nft_runs == 0
    for family in ("ip", "ip6"):
        (plain_text, plain_json), (stepped_text, stepped_json) = listings(plain, family), listings(stepped, family)
        assert stepped_text == plain_text
        assert without_handles(stepped_json) == without_handles(plain_json)


def test_existence_names_and_counters_read_over_netlink_match_nfts_listing(pair: tuple[NetnsNft, NetnsNft]) -> None:
    plain, netlink = pair
    assert netlink.netlink_reads and not plain.netlink_reads
    for family in ("ip", "ip6"):
        assert netlink.table_exists(family) is plain.table_exists(family) is False
        assert netlink.list_chains(family) == () and netlink.list_counters(family) == {}
    for nft in pair:
        nft.run(creation_order(OVERALL))
        nft.run("add counter ip kube-proxy packets-a\nadd counter ip kube-proxy packets-b\n"
                "add table ip other\nadd chain ip other theirs\nadd set ip other theirs { type ipv4_addr ; }\n")
    assert netlink.table_exists() and netlink.table_exists("ip", "other") and not netlink.table_exists("ip6")
    for kind in ("chain", "set", "map", "counter"):
        for table in ("kube-proxy", "other"):
            assert netlink.list_names(kind, "ip", table) == plain.list_names(kind, "ip", table), (kind, table)
    assert "services" in netlink.list_chains() and "theirs" not in netlink.list_chains()
    assert netlink.list_counters() == plain.list_counters() == {"packets-a": (0, 0), "packets-b": (0, 0)}
