"""The VXLAN overlay's pure core: what a node publishes, what it programs for its peers, and the changes."""
from __future__ import annotations

import json
from typing import Any

import pytest

from svcnet.core import overlay as ov


def node(name: str, index: int, public: str, *, mac: str | None = None, public6: str | None = None,
         mac6: str | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Node as the API returns it, with the annotations its overlay agent published."""
    notes = annotations if annotations is not None else ov.node_annotations(
        public, mac or f"0a:58:00:00:00:{index:02x}", public6, mac6)
    cidrs = [f"10.244.{index}.0/24"] + ([f"fd00:10:244:{index:x}::/64"] if public6 else [])
    return {"metadata": {"name": name, "annotations": notes}, "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}}


def peers(*nodes: dict[str, Any]) -> list[ov.OverlayNode]:
    return [p for p in map(ov.overlay_node, nodes) if p is not None]


def test_annotations_are_flannels_keys_and_backend_data_format() -> None:
    notes = ov.node_annotations("192.168.1.107", "0A:58:C0:A8:01:6B", "fd00:192:168:1::6b", "0e:58:c0:a8:01:6b")
    assert notes == {
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/backend-data": '{"VNI":1,"VtepMAC":"0a:58:c0:a8:01:6b"}',
        "flannel.alpha.coreos.com/public-ip": "192.168.1.107",
        "flannel.alpha.coreos.com/backend-v6-data": '{"VNI":1,"VtepMAC":"0e:58:c0:a8:01:6b"}',
        "flannel.alpha.coreos.com/public-ipv6": "fd00:192:168:1::6b",
    }


def test_a_node_is_read_back_from_its_annotations_and_pod_cidrs() -> None:
    parsed = ov.overlay_node(node("node-2", 2, "192.168.1.107", mac="0a:58:c0:a8:01:6b",
                                  public6="fd00:192:168:1::6b", mac6="0e:58:c0:a8:01:6b"))
    assert parsed == ov.OverlayNode("node-2", (
        ov.Lease("10.244.2.0/24", "192.168.1.107", "0a:58:c0:a8:01:6b"),
        ov.Lease("fd00:10:244:2::/64", "fd00:192:168:1::6b", "0e:58:c0:a8:01:6b")))


@pytest.mark.parametrize("annotations", [
    {},  # not annotated yet
    {ov.ANN_BACKEND_TYPE: "host-gw", ov.ANN_PUBLIC_IP: "192.168.1.107",
     ov.ANN_BACKEND_DATA: '{"VNI":1,"VtepMAC":"0a:58:c0:a8:01:6b"}'},  # another backend: flannel ignores it
    {ov.ANN_BACKEND_TYPE: "vxlan", ov.ANN_PUBLIC_IP: "192.168.1.107", ov.ANN_BACKEND_DATA: "{not json"},
    {ov.ANN_BACKEND_TYPE: "vxlan", ov.ANN_PUBLIC_IP: "192.168.1.107",
     ov.ANN_BACKEND_DATA: '{"VNI":2,"VtepMAC":"0a:58:c0:a8:01:6b"}'},  # another VNI is another network
    {ov.ANN_BACKEND_TYPE: "vxlan", ov.ANN_PUBLIC_IP: "192.168.1.107", ov.ANN_BACKEND_DATA: '{"VNI":1,"VtepMAC":"zz"}'},
    {ov.ANN_BACKEND_TYPE: "vxlan", ov.ANN_PUBLIC_IP: "fd00::1",  # an IPv6 address as the IPv4 public IP
     ov.ANN_BACKEND_DATA: '{"VNI":1,"VtepMAC":"0a:58:c0:a8:01:6b"}'},
    {ov.ANN_BACKEND_TYPE: "vxlan", ov.ANN_PUBLIC_IP: "192.168.1.107",
     ov.ANN_BACKEND_DATA: json.dumps({"VNI": 1, "VtepMAC": "0a:58:c0:a8:01:6b", "pad": "x" * 2000})},
])
def test_a_node_without_a_usable_vxlan_lease_is_not_a_peer(annotations: dict[str, str]) -> None:
    assert ov.overlay_node(node("node-2", 2, "192.168.1.107", annotations=annotations)) is None


def test_each_remote_node_gets_a_route_via_its_vtep_address_a_neighbour_and_an_fdb_entry() -> None:
    state = ov.plan_overlay("node-1", peers(node("node-1", 1, "192.168.0.106"),
                                            node("node-2", 2, "192.168.1.107", mac="0a:58:c0:a8:01:6b")))
    assert state == ov.OverlayState(
        routes=frozenset({ov.OverlayRoute("10.244.2.0/24", "10.244.2.0", "flannel.1", onlink=True)}),
        neighbours=frozenset({ov.Neighbour("flannel.1", "10.244.2.0", "0a:58:c0:a8:01:6b")}),
        fdb=frozenset({ov.FdbEntry("flannel.1", "0a:58:c0:a8:01:6b", "192.168.1.107")}))


def test_ipv6_peers_go_over_flannel_v6_and_only_for_the_families_this_node_runs() -> None:
    nodes = peers(node("node-2", 2, "192.168.1.107", public6="fd00:192:168:1::6b", mac6="0e:58:c0:a8:01:6b"))
    both = ov.plan_overlay("node-1", nodes)
    assert ov.OverlayRoute("fd00:10:244:2::/64", "fd00:10:244:2::", "flannel-v6.1", onlink=True) in both.routes
    assert ov.FdbEntry("flannel-v6.1", "0e:58:c0:a8:01:6b", "fd00:192:168:1::6b") in both.fdb
    v4_only = ov.plan_overlay("node-1", nodes, versions=(4,))
    assert {r.dev for r in v4_only.routes} == {"flannel.1"}


def test_direct_routing_routes_same_lan_peers_via_their_node_ip_and_tunnels_the_rest() -> None:
    nodes = peers(node("node-2", 2, "192.168.1.107"), node("node-3", 3, "192.168.0.108"))
    state = ov.plan_overlay("node-1", nodes, local_networks=("192.168.0.0/24",), direct_routing=True)
    assert state.routes == {ov.OverlayRoute("10.244.3.0/24", "192.168.0.108"),
                            ov.OverlayRoute("10.244.2.0/24", "10.244.2.0", "flannel.1", onlink=True)}
    assert {f.dst for f in state.fdb} == {"192.168.1.107"}  # no VXLAN entries for the direct peer
    tunnelled = ov.plan_overlay("node-1", nodes, local_networks=("192.168.0.0/24",), direct_routing=False)
    assert {f.dst for f in tunnelled.fdb} == {"192.168.1.107", "192.168.0.108"}  # flannel's default


def test_two_nodes_claiming_one_pod_cidr_the_first_by_name_wins() -> None:
    clash = node("node-9", 2, "192.168.1.109", mac="0a:58:00:00:00:99")
    state = ov.plan_overlay("node-1", peers(clash, node("node-2", 2, "192.168.1.107")))
    assert {f.dst for f in state.fdb} == {"192.168.1.107"}


def test_changes_remove_a_gone_nodes_entries_route_first_and_add_routes_last() -> None:
    two = peers(node("node-2", 2, "192.168.1.107"), node("node-4", 4, "192.168.1.109"))
    have = ov.plan_overlay("node-1", two)
    want = ov.plan_overlay("node-1", two[:1])
    changes = ov.overlay_changes(want, have)
    assert changes == ov.OverlayChanges(
        delete_routes=(ov.OverlayRoute("10.244.4.0/24", "10.244.4.0", "flannel.1", onlink=True),),
        delete_neighbours=(ov.Neighbour("flannel.1", "10.244.4.0", "0a:58:00:00:00:04"),),
        delete_fdb=(ov.FdbEntry("flannel.1", "0a:58:00:00:00:04", "192.168.1.109"),))
    assert not ov.overlay_changes(want, want)
    assert ov.overlay_changes(have, want).add_routes == changes.delete_routes


def test_a_peer_that_moved_is_replaced_not_deleted() -> None:
    before = ov.plan_overlay("node-1", peers(node("node-2", 2, "192.168.1.107", mac="0a:58:00:00:00:02")))
    after = ov.plan_overlay("node-1", peers(node("node-2", 2, "192.168.1.117", mac="0a:58:00:00:00:12")))
    changes = ov.overlay_changes(after, before)
    assert changes.delete_routes == ()  # same destination: replaced in place by add_routes
    assert changes.delete_neighbours == ()  # same (device, address): replaced by add_neighbours
    assert changes.add_neighbours == (ov.Neighbour("flannel.1", "10.244.2.0", "0a:58:00:00:00:12"),)
    assert changes.delete_fdb == (ov.FdbEntry("flannel.1", "0a:58:00:00:00:02", "192.168.1.107"),)
    assert changes.add_fdb == (ov.FdbEntry("flannel.1", "0a:58:00:00:00:12", "192.168.1.117"),)


def test_mtu_is_the_uplinks_less_the_encapsulation() -> None:
    assert ov.overlay_mtu(1500) == 1450  # flannel's FLANNEL_MTU
    assert ov.overlay_mtu(1500, 6) == 1430
    with pytest.raises(ValueError, match="too little"):
        ov.overlay_mtu(600)


def test_inside_tells_which_routes_lie_in_the_pod_cidrs() -> None:
    assert ov.inside("10.244.2.0/24", ("10.244.0.0/16", "fd00:10:244::/56"))
    assert ov.inside("fd00:10:244:2::/64", ("10.244.0.0/16", "fd00:10:244::/56"))
    assert not ov.inside("10.0.0.0/8", ("10.244.0.0/16",))
    assert not ov.inside("192.168.1.0/24", ("10.244.0.0/16",))
