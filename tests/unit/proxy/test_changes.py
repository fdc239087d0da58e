"""The change tracker reports only changes the proxy cares about, and knows when to sync in full."""
from __future__ import annotations

import copy

from svcnet.proxy.changes import ChangeTracker
from tests.unit.proxy.helpers import endpoint, endpoint_slice, port, service

SVC = service("ns", "web", "10.96.0.7", port("http", 80))
SLICE = endpoint_slice("ns", "web", [endpoint("10.244.1.2")], port("http", 8080))


def synced_tracker() -> ChangeTracker:
    tracker = ChangeTracker("node-1")
    tracker.service_update(None, SVC)
    tracker.endpoint_slice_update(SLICE)
    first = tracker.checkout()
    assert first.full  # nothing written yet
    return tracker


def test_first_sync_is_full_and_later_ones_name_the_changed_service():
    tracker = synced_tracker()
    assert not tracker.pending
    scaled = copy.deepcopy(SLICE)
    scaled["endpoints"].append(endpoint("10.244.1.3"))
    assert tracker.endpoint_slice_update(scaled)
    sync = tracker.checkout()
    assert sync.changed == frozenset({"ns/web"})
    assert [s["endpoints"] for s in sync.slices] == [scaled["endpoints"]]


def test_irrelevant_service_edits_are_not_changes():
    tracker = synced_tracker()
    relabelled = copy.deepcopy(SVC)
    relabelled["metadata"]["labels"] = {"team": "a"}
    assert not tracker.service_update(SVC, relabelled)
    assert tracker.checkout().changed == frozenset()


def test_a_change_undone_before_the_sync_leaves_nothing_pending():
    tracker = synced_tracker()
    moved = copy.deepcopy(SVC)
    moved["spec"]["ports"][0]["port"] = 81
    assert tracker.service_update(SVC, moved)
    assert not tracker.service_update(moved, SVC)


def test_deleting_a_service_and_its_slice_is_a_change():
    tracker = synced_tracker()
    tracker.service_update(SVC, None)
    tracker.endpoint_slice_update(SLICE, removed=True)
    sync = tracker.checkout()
    assert sync.changed == frozenset({"ns/web"}) and sync.services == () and sync.slices == ()


def test_topology_label_change_and_failed_apply_force_a_full_sync():
    tracker = synced_tracker()
    tracker.node_update({"metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "a"}}})
    assert tracker.checkout().full
    tracker.node_update({"metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "a", "x": "y"}}})
    assert not tracker.checkout().full
    tracker.force_full_sync()
    assert tracker.checkout().full


def test_trigger_times_and_udp_cleanup_are_reported_for_changed_services():
    tracker = ChangeTracker("node-1")
    tracker.checkout()
    dns = service("kube-system", "kube-dns", "10.96.0.10", port("dns", 53, "UDP"))
    eps = endpoint_slice("kube-system", "kube-dns", [endpoint("10.244.1.53")], port("dns", 53, "UDP"))
    eps["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": "2024-01-01T00:00:00Z"}
    tracker.service_update(None, dns)
    tracker.endpoint_slice_update(eps)
    sync = tracker.checkout()
    assert sync.trigger_times == {"kube-system/kube-dns": ("2024-01-01T00:00:00Z",)}
    assert sync.conntrack_cleanup_required


def test_slices_without_a_service_label_are_ignored():
    tracker = synced_tracker()
    stray = copy.deepcopy(SLICE)
    del stray["metadata"]["labels"]
    assert not tracker.endpoint_slice_update(stray)
