"""The agent's end of the overlay against the fake kernel: its devices, and its entries converged and repaired."""
from __future__ import annotations

from typing import Any

from svcnet.agent.overlay import converge_overlay, ensure_devices, read_state, vtep_mac
from svcnet.core import overlay as core
from svcnet.kernel import FdbRecord, Link, VxlanDevice
from svcnet.testing.links import FakeNetworkKernel


def link(kernel: FakeNetworkKernel, ns: str, name: str) -> Link:
    found = kernel.get_link(ns, name)
    assert found is not None
    return found


def test_devices_are_flannels_and_pods_get_the_uplinks_mtu_less_50(two_hosts: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, plan = two_hosts
    node = plan.node("node-2")
    macs, pod_mtu = ensure_devices(kernel, node)
    assert pod_mtu == 1450 and macs == {4: "0a:58:c0:a8:01:6b", 6: "0e:58:c0:a8:01:6b"} == {
        4: vtep_mac(node, 4), 6: vtep_mac(node, 6)}
    v4, v6 = link(kernel, node.namespace, "flannel.1"), link(kernel, node.namespace, "flannel-v6.1")
    assert (v4.vxlan, v4.mtu, v4.up) == (VxlanDevice(1, "192.168.1.107", 8472, "eth0"), 1450, True)
    assert (v6.vxlan, v6.mtu, v6.up) == (VxlanDevice(1, "fd00:192:168:1::6b", 8472, "eth0"), 1430, True)
    addresses = {(a.link, a.cidr) for a in kernel.list_addresses(node.namespace)}
    assert {("flannel.1", "10.244.2.0/32"), ("flannel-v6.1", "fd00:10:244:2::/128")} <= addresses
    before = len(kernel.calls)
    assert ensure_devices(kernel, node) == (macs, pod_mtu)
    assert kernel.calls[before:] == []  # made once, then left alone


def test_a_device_with_other_settings_is_made_again(two_hosts: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, plan = two_hosts
    node = plan.node("node-1")
    kernel.add_vxlan(node.namespace, "flannel.1", VxlanDevice(7, "192.168.0.106", 4789, "eth0"))
    ensure_devices(kernel, node)
    assert link(kernel, node.namespace, "flannel.1").vxlan == VxlanDevice(1, "192.168.0.106", 8472, "eth0")


def peers_of(plan: Any, *names: str) -> list[core.OverlayNode]:
    """Each named node as its Node's annotations describe it."""
    out = []
    for name in names:
        node = plan.node(name)
        out.append(core.OverlayNode(name, (core.Lease(node.pod_cidr_v4, node.ipv4, vtep_mac(node, 4)),
                                           core.Lease(node.pod_cidr_v6, node.ipv6, vtep_mac(node, 6)))))
    return out


def test_entries_are_programmed_repaired_and_removed_with_their_node(two_hosts: tuple[FakeNetworkKernel, Any]) -> None:
    kernel, plan = two_hosts
    node = plan.node("node-1")
    ensure_devices(kernel, node)
    everyone = core.plan_overlay("node-1", peers_of(plan, "node-1", "node-2", "node-3"),
                                 local_networks=node.lan_cidrs, direct_routing=True)
    converge_overlay(kernel, node, everyone)
    assert read_state(kernel, node) == everyone
    assert not converge_overlay(kernel, node, everyone)  # converged: nothing to do

    kernel.delete_fdb(node.namespace, FdbRecord("flannel.1", "0a:58:c0:a8:01:6b", "192.168.1.107"))
    repaired = converge_overlay(kernel, node, everyone)
    assert repaired == core.OverlayChanges(add_fdb=(core.FdbEntry("flannel.1", "0a:58:c0:a8:01:6b", "192.168.1.107"),))

    without_node_2 = core.plan_overlay("node-1", peers_of(plan, "node-1", "node-3"),
                                       local_networks=node.lan_cidrs, direct_routing=True)
    converge_overlay(kernel, node, without_node_2)
    assert read_state(kernel, node) == without_node_2
    assert kernel.list_fdb(node.namespace, "flannel.1") == ()
    assert {r.dst for r in kernel.list_routes(node.namespace) if core.inside(r.dst, node.overlay_cidrs)} == {
        "10.244.3.0/24", "fd00:10:244:3::/64"}  # node-3 is on this host: direct routes, kept
