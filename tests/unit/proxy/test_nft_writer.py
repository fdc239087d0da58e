"""nftables mode through the syncer: RuleSyncer + NftablesWriter against the fake nft (a model of the kernel)."""
from __future__ import annotations

from svcnet.proxy.changes import ChangeTracker
from svcnet.proxy.iptables.tracer import Packet
from svcnet.proxy.nftables import dump_nftables
from svcnet.proxy.nftables.apply import NftablesWriter
from svcnet.proxy.nftables.ruleset import Ruleset
from svcnet.proxy.nftables.tracer import flow, trace
from svcnet.proxy.plan import assemble_plan
from svcnet.proxy.syncer import ProxySettings, RuleSyncer
from svcnet.testing.nft import FakeNft
from tests.unit.proxy.helpers import endpoint, endpoint_slice, port, service

NODE_IP = "192.168.0.106"
SEED_SVC = service("default", "hostnames", "10.102.11.183", port("default", 80))
OTHER_SVC = service("default", "other", "10.96.0.20", port("http", 8080))


def seed_slice(*ips: str) -> dict:
    return endpoint_slice("default", "hostnames", [endpoint(ip) for ip in ips], port("default", 9376))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(families: tuple[str, ...] = ("IPv4",)) -> tuple[ChangeTracker, FakeNft, RuleSyncer, Clock]:
    tracker = ChangeTracker("node-1", families)
    nft = FakeNft()
    clock = Clock()
    settings = ProxySettings("node-1", families=families, cluster_cidrs=("10.244.0.0/16", "fd00:10:244::/56"),
                             node_ips=(NODE_IP,), mode="nftables")
    syncer = RuleSyncer(tracker, None, settings, writer=NftablesWriter(nft, clock=clock), clock=clock)
    return tracker, nft, syncer, clock


def seeded() -> tuple[ChangeTracker, FakeNft, RuleSyncer, Clock]:
    tracker, nft, syncer, clock = make()
    tracker.service_update(None, SEED_SVC)
    tracker.endpoint_slice_update(seed_slice("10.244.1.8", "10.244.1.9", "10.244.1.10"))
    assert syncer.sync().ok
    return tracker, nft, syncer, clock


def reached_endpoints(nft: FakeNft, dst: str = "10.102.11.183", dport: int = 80) -> str:
    ruleset = Ruleset().apply(nft.dump())
    return flow(trace(ruleset, Packet("10.244.2.5", dst, dport, in_interface="cni0"), [NODE_IP]))[0]


def expected_dump(syncer: RuleSyncer) -> str:
    """What a fresh full render of the syncer's current plan writes: the table must equal it."""
    config = syncer.config_for("IPv4")
    state = syncer._families["IPv4"]
    plan = assemble_plan("node-1", config, state.sorted_plans, frozenset(state.plans))
    fresh = FakeNft()
    fresh.run(dump_nftables(plan))
    return fresh.dump()


def test_a_first_sync_writes_the_whole_table_and_the_service_answers():
    _, nft, syncer, _ = seeded()
    assert nft.table_exists("ip")
    assert reached_endpoints(nft) == "10.244.1.10:9376, 10.244.1.8:9376, 10.244.1.9:9376"
    assert nft.dump() == expected_dump(syncer)


def test_a_partial_sync_is_one_small_transaction_touching_only_the_changed_service():
    tracker, nft, syncer, _ = seeded()
    tracker.service_update(None, OTHER_SVC)
    assert syncer.sync().ok
    before = len(nft.history)
    tracker.endpoint_slice_update(seed_slice("10.244.1.8", "10.244.1.9"))
    result = syncer.sync()
    assert result.ok and not result.full
    assert result.changed == frozenset({"default/hostnames"})
    written = [record.text for record in nft.history[before:]]
    assert len(written) == 1
    assert "default/other" not in written[0]
    assert "add table" not in written[0]
    assert reached_endpoints(nft) == "10.244.1.8:9376, 10.244.1.9:9376"
    # The same table as a fresh render, but for the gone endpoint's chain: flushed, deleted a second later.
    stale = "add chain ip kube-proxy endpoint-PYHNPQPZ-default/hostnames/tcp/default__10.244.1.10/9376"
    assert nft.rules(stale.split()[-1]) == ()
    assert [line for line in nft.dump().splitlines() if line != stale] == expected_dump(syncer).splitlines()


def test_a_removed_endpoints_chain_is_deleted_a_second_later_in_its_own_transaction():
    tracker, nft, syncer, clock = seeded()
    tracker.endpoint_slice_update(seed_slice("10.244.1.8", "10.244.1.9"))
    assert syncer.sync().ok
    stale = [c for c in nft.list_chains() if "10.244.1.10" in c]
    assert stale, "the old endpoint chain stays flushed until the delay passed"
    clock.now += 2
    tracker.service_update(None, OTHER_SVC)  # any later sync deletes it
    result = syncer.sync()
    assert result.ok
    assert not [c for c in nft.list_chains() if "10.244.1.10" in c]
    assert any("10.244.1.10" in c for family in result.families for c in family.deleted_chains)


def test_a_failed_transaction_changes_nothing_and_the_next_sync_is_full():
    tracker, nft, syncer, _ = seeded()
    table_before = nft.dump()
    nft.fail_next_runs = 1
    tracker.endpoint_slice_update(seed_slice("10.244.1.8"))
    result = syncer.sync()
    assert not result.ok
    assert nft.dump() == table_before
    retry = syncer.sync()
    assert retry.ok and retry.full
    assert reached_endpoints(nft) == "10.244.1.8:9376"


def test_a_deleted_table_is_noticed_and_rewritten_by_a_full_sync():
    _, nft, syncer, _ = seeded()
    assert not syncer.canary_missing()
    nft.admin("delete table ip kube-proxy")
    assert syncer.canary_missing()
    syncer.forget_kernel_state()
    result = syncer.sync()
    assert result.ok and result.full
    assert reached_endpoints(nft) == "10.244.1.10:9376, 10.244.1.8:9376, 10.244.1.9:9376"


def test_after_a_restart_chains_nobody_owns_any_more_go_stale_and_are_deleted():
    tracker, nft, syncer, clock = seeded()
    tracker.service_update(None, OTHER_SVC)
    assert syncer.sync().ok
    # A new proxy process: same kernel table, nothing known; the other service is gone meanwhile.
    tracker2 = ChangeTracker("node-1", ("IPv4",))
    tracker2.service_update(None, SEED_SVC)
    tracker2.endpoint_slice_update(seed_slice("10.244.1.8", "10.244.1.9", "10.244.1.10"))
    settings = ProxySettings("node-1", cluster_cidrs=("10.244.0.0/16",), node_ips=(NODE_IP,), mode="nftables")
    syncer2 = RuleSyncer(tracker2, None, settings, writer=NftablesWriter(nft, clock=clock), clock=clock)
    assert syncer2.sync().ok
    clock.now += 2
    assert syncer2.sync(force_full=True).ok
    assert not [c for c in nft.list_chains() if "default/other" in c]
    assert reached_endpoints(nft, "10.96.0.20", 8080) != "10.244.1.8:9376"


def test_dual_stack_writes_one_table_per_family():
    tracker, nft, syncer, _ = make(("IPv4", "IPv6"))
    tracker.service_update(None, service("default", "v6", "fd00:10:96::10", port("default", 80),
                                         ip_families=["IPv6"]))
    assert syncer.sync().ok
    assert nft.table_exists("ip") and nft.table_exists("ip6")
    assert "fd00:10:96::10" in nft.dump("ip6")
    assert "fd00:10:96::10" not in nft.dump("ip")
