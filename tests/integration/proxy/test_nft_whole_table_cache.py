"""With iptables-nft, asking for the whole-table cache (`-S` first) applies exactly the same rules.

Two throwaway namespaces get the same syncs, one through the adapter as it is
(which adds `-S` to the big full restore), one with the switch turned off; their
nat tables must then save identically. Both namespaces are deleted afterwards.
"""
from __future__ import annotations

import contextlib
import copy
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from svcnet.kernel.iptables import NetnsIptables
from svcnet.kernel.netns import create_netns, delete_netns, run_command_in_netns
from svcnet.proxy.changes import ChangeTracker
from svcnet.proxy.iptables.apply import IptablesApplier
from svcnet.proxy.syncer import ProxySettings, RuleSyncer
from tests.integration.netns.conftest import (  # noqa: F401  (the session safety net is a fixture)
    _delete_this_sessions_namespaces,
    requires_root,
    session_prefix,
)

pytestmark = [
    requires_root,
    pytest.mark.skipif(shutil.which("iptables-nft-restore") is None, reason="needs iptables-nft"),
]

SERVICES = 300  # 3,300 chains in 13,000 lines: the adapter switches to the whole-table cache
ENDPOINTS = 10


def objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    services, slices = [], []
    for i in range(SERVICES):
        name = f"svc-{i:04d}"
        services.append({"kind": "Service", "metadata": {"namespace": "default", "name": name},
                         "spec": {"clusterIP": f"10.96.{i >> 8}.{i & 255}",
                                  "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        endpoints = [{"addresses": [f"10.244.{n >> 8}.{n & 255}"], "conditions": {"ready": True},
                      "nodeName": "node-1"} for n in range(i * ENDPOINTS, (i + 1) * ENDPOINTS)]
        slices.append({"kind": "EndpointSlice",
                       "metadata": {"namespace": "default", "name": f"{name}-x",
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4", "endpoints": endpoints,
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    return services, slices


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str]]:
    names = (f"{session_prefix()}-nftc-a", f"{session_prefix()}-nftc-b")
    try:
        for name in names:
            create_netns(name)
        yield names
    finally:
        for name in names:
            with contextlib.suppress(Exception):
                delete_netns(name)


def nat_rules(netns: str) -> list[str]:
    result = run_command_in_netns(netns, ["iptables-nft-save", "-t", "nat"])
    assert result.returncode == 0, result.stderr.decode()
    return [line for line in result.stdout.decode().splitlines() if not line.startswith("#")]


def test_whole_table_cache_applies_the_same_rules_as_chain_by_chain(two_namespaces: tuple[str, str]) -> None:
    services, slices = objects()
    syncers = []
    for netns, switch in zip(two_namespaces, (True, False), strict=True):
        backend = IptablesApplier(NetnsIptables(netns, mode="nft"))
        backend.whole_table_cache = switch and backend.whole_table_cache
        tracker = ChangeTracker("node-1")
        for service in services:
            tracker.service_update(None, service)
        for endpoint_slice in slices:
            tracker.endpoint_slice_update(endpoint_slice)
        syncer = RuleSyncer(tracker, backend, ProxySettings("node-1", cluster_cidrs=("10.244.0.0/16",)))
        result = syncer.sync()
        assert result.ok and result.full, result.error
        syncers.append((syncer, tracker, backend))

    with_switch, without = syncers[0][2], syncers[1][2]
    assert with_switch.history[-1].whole_table_cache == ("nat",)
    assert without.history[-1].whole_table_cache == ()
    assert with_switch.history[-1].text == without.history[-1].text
    first = nat_rules(two_namespaces[0])
    assert len(first) > SERVICES * ENDPOINTS * 3 and first == nat_rules(two_namespaces[1])

    # A one-endpoint partial sync afterwards: sent as it is, same result in both.
    shrunk = copy.deepcopy(slices[7])
    shrunk["endpoints"] = shrunk["endpoints"][:-1]
    for syncer, tracker, _ in syncers:
        tracker.endpoint_slice_update(shrunk)
        result = syncer.sync()
        assert result.ok and not result.full, result.error
    assert with_switch.history[-1].whole_table_cache == ()
    assert nat_rules(two_namespaces[0]) == nat_rules(two_namespaces[1]) != first
