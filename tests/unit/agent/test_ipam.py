"""Pod IP leases: order of hand-out, no address twice, release, leak repair, and the file surviving restarts."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from svcnet.agent import ipam
from svcnet.agent.ipam import IpamError, LeaseStore, LeaseTable, PodLease

CIDR4, CIDR6 = "10.244.1.0/24", "fd00:10:244:1::/64"


def table(cidr4: str = CIDR4, cidr6: str | None = CIDR6) -> LeaseTable:
    return ipam.new_table(cidr4, cidr6)


def allocate_many(t: LeaseTable, uids: list[str]) -> tuple[LeaseTable, list[PodLease]]:
    leases = []
    for uid in uids:
        t, lease = ipam.allocate(t, uid, f"ns-{uid}")
        leases.append(lease)
    return t, leases


def test_first_lease_is_dot_2_with_the_same_host_number_in_ipv6() -> None:
    t = table()
    _, lease = ipam.allocate(t, "uid-a", "ns-a")
    assert lease == PodLease(pod_uid="uid-a", netns="ns-a", ipv4="10.244.1.2", ipv6="fd00:10:244:1::2")
    assert lease.ips == ("10.244.1.2", "fd00:10:244:1::2")
    assert (t.gateway_v4, t.gateway_v6) == ("10.244.1.1", "fd00:10:244:1::1")


def test_leases_go_upward_from_dot_2() -> None:
    _, leases = allocate_many(table(), ["a", "b", "c"])
    assert [x.ipv4 for x in leases] == ["10.244.1.2", "10.244.1.3", "10.244.1.4"]


def test_ipv4_only_table_gives_no_ipv6() -> None:
    _, lease = ipam.allocate(table(cidr6=None), "a", "ns-a")
    assert (lease.ipv4, lease.ipv6, lease.ips) == ("10.244.1.2", None, ("10.244.1.2",))


def test_the_same_pod_gets_its_existing_lease_back() -> None:
    t, first = ipam.allocate(table(), "a", "ns-a")
    t2, again = ipam.allocate(t, "a", "ns-a")
    assert again == first and t2 == t


def test_a_released_address_is_not_handed_out_again_at_once() -> None:
    t, _ = allocate_many(table(), ["a", "b"])
    t, released = ipam.release(t, "a")
    assert released is not None and released.ipv4 == "10.244.1.2"
    _, lease = ipam.allocate(t, "c", "ns-c")
    assert lease.ipv4 == "10.244.1.4"


def test_hand_out_wraps_round_to_freed_addresses_and_skips_gateway_and_broadcast() -> None:
    t = table("10.0.0.0/29", None)  # usable .2-.6
    t, leases = allocate_many(t, ["a", "b", "c", "d", "e"])
    assert [x.ipv4 for x in leases] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    t, _ = ipam.release(t, "c")
    _, lease = ipam.allocate(t, "f", "ns-f")
    assert lease.ipv4 == "10.0.0.4"


def test_exhausted_range_is_an_error_that_says_so() -> None:
    t, _ = allocate_many(table("10.0.0.0/30", None), ["a"])  # only .2 is usable
    with pytest.raises(IpamError, match="no free address in 10.0.0.0/30"):
        ipam.allocate(t, "b", "ns-b")


def test_a_namespace_leased_to_another_pod_is_refused() -> None:
    t, _ = ipam.allocate(table(), "a", "ns-shared")
    with pytest.raises(IpamError, match="already leased to pod a"):
        ipam.allocate(t, "b", "ns-shared")


def test_releasing_an_unknown_pod_changes_nothing() -> None:
    t, _ = allocate_many(table(), ["a"])
    assert ipam.release(t, "zzz") == (t, None)


def test_release_missing_frees_leases_whose_namespace_is_gone() -> None:
    t, _ = allocate_many(table(), ["a", "b", "c"])
    t, leaked = ipam.release_missing(t, {"ns-b"})
    assert [x.pod_uid for x in leaked] == ["a", "c"]
    assert [x.pod_uid for x in t.leases] == ["b"]


@pytest.mark.parametrize("cidr4, cidr6, message", [
    ("10.0.0.0/31", None, "too small"),
    ("10.0.0.0/24", "fd00::/124", "smaller than"),
])
def test_tables_that_cannot_work_are_refused(cidr4: str, cidr6: str | None, message: str) -> None:
    with pytest.raises(IpamError, match=message):
        ipam.new_table(cidr4, cidr6)


def test_random_allocate_and_release_never_leases_one_address_twice() -> None:
    rng = random.Random(7)
    t = table("10.0.0.0/27", "fd00::/64")
    live: set[str] = set()
    for step in range(2000):
        if live and (rng.random() < 0.45 or len(live) >= 29):
            uid = rng.choice(sorted(live))
            t, _ = ipam.release(t, uid)
            live.discard(uid)
        else:
            uid = f"pod-{step}"
            t, _ = ipam.allocate(t, uid, f"ns-{uid}")
            live.add(uid)
        v4 = [x.ipv4 for x in t.leases]
        v6 = [x.ipv6 for x in t.leases]
        assert len(set(v4)) == len(v4) and len(set(v6)) == len(v6)
        assert {x.pod_uid for x in t.leases} == live


def test_json_round_trip_keeps_leases_and_position() -> None:
    t, _ = allocate_many(table(), ["a", "b"])
    t, _ = ipam.release(t, "a")
    assert ipam.table_from_json(json.loads(json.dumps(ipam.table_to_json(t)))) == t


# ---- the lease file


def test_store_survives_a_restart_without_handing_out_an_address_twice(tmp_path: Path) -> None:
    path = tmp_path / "ipam" / "node-1.json"
    before = LeaseStore(path, CIDR4, CIDR6)
    first = [before.allocate(uid, f"ns-{uid}") for uid in ("a", "b")]
    after = LeaseStore(path, CIDR4, CIDR6)  # a restarted agent
    assert after.allocate("a", "ns-a") == first[0]
    third = after.allocate("c", "ns-c")
    assert third.ipv4 not in {x.ipv4 for x in first}
    assert [x.pod_uid for x in LeaseStore(path, CIDR4, CIDR6).load().leases] == ["a", "b", "c"]


def test_stores_sharing_a_file_see_each_others_writes(tmp_path: Path) -> None:
    """A store keeps the table it last read or wrote; another process's write replaces the file and
    must be read, never answered from the kept table (two agents, or `svcnet down`, on one node)."""
    path = tmp_path / "node-1.json"
    one, other = LeaseStore(path, CIDR4, CIDR6), LeaseStore(path, CIDR4, CIDR6)
    a = one.allocate("a", "ns-a")
    b = other.allocate("b", "ns-b")
    c = one.allocate("c", "ns-c")
    assert len({a.ipv4, b.ipv4, c.ipv4}) == 3
    other.release("a")
    assert [lease.pod_uid for lease in one.load().leases] == ["b", "c"]
    path.write_text(path.read_text().replace('"ns-b"', '"ns-b2"'))  # edited in place (the same inode)
    assert one.load().lease_for("b").netns == "ns-b2"


def test_store_file_is_readable_json_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "node-1.json"
    store = LeaseStore(path, CIDR4, CIDR6)
    store.allocate("a", "svcnet-x-pod-a")
    store.release("zzz")
    data = json.loads(path.read_text())
    assert data["podCIDRs"] == [CIDR4, CIDR6]
    assert data["leases"] == [{"podUID": "a", "netns": "svcnet-x-pod-a", "ips": ["10.244.1.2", "fd00:10:244:1::2"]}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-1.json", "node-1.json.lock"]


def test_store_without_a_file_is_empty(tmp_path: Path) -> None:
    assert LeaseStore(tmp_path / "none.json", CIDR4).load().leases == ()


def test_store_release_missing_frees_leaked_leases(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "l.json", CIDR4)
    store.allocate("a", "ns-a")
    store.allocate("b", "ns-b")
    assert [x.pod_uid for x in store.release_missing(["ns-b"])] == ["a"]
    assert [x.pod_uid for x in store.load().leases] == ["b"]


def test_store_refuses_a_file_for_another_pod_cidr(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    LeaseStore(path, CIDR4).allocate("a", "ns-a")
    with pytest.raises(IpamError, match="is for pod CIDRs 10.244.1.0/24"):
        LeaseStore(path, "10.244.2.0/24").allocate("b", "ns-b")


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    ('{"version": 99}', "version 99"),
    ('{"version": 1, "podCIDRs": []}', "malformed"),
])
def test_store_refuses_a_damaged_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "l.json"
    path.write_text(content)
    with pytest.raises(IpamError, match=message):
        LeaseStore(path, CIDR4).allocate("a", "ns-a")
