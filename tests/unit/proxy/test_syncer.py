"""When syncs run (bounded frequency) and what a sync does to the node's rules, against the fake kernel."""
from __future__ import annotations

import asyncio
import copy
import math

import pytest

from svcnet.proxy.changes import ChangeTracker
from svcnet.proxy.conntrack import ConntrackEntry
from svcnet.proxy.iptables.tracer import Packet, reached, trace
from svcnet.proxy.syncer import (
    FULL_SYNC_PERIOD,
    REASON_PERIODIC,
    REASON_REQUESTED,
    REASON_RETRY,
    BoundedFrequencyRunner,
    ProxySettings,
    RuleSyncer,
    SyncSchedule,
    default_families,
)
from svcnet.testing.conntrack import FakeConntrack
from svcnet.testing.iptables import FakeIptables
from tests.unit.proxy.helpers import endpoint, endpoint_slice, port, service

NODE_IP = "192.168.0.106"
SEED_SVC = service("default", "hostnames", "10.102.11.183", port("default", 80))
SEED_IPS = ("10.244.1.8", "10.244.1.9", "10.244.1.10")


def seed_slice(*ips: str) -> dict:
    return endpoint_slice("default", "hostnames", [endpoint(ip) for ip in ips], port("default", 9376))


# --- SyncSchedule: the decision, with explicit times ----------------------------------------------------------

@pytest.mark.parametrize(("steps", "expected"), [
    # (action, time) ... -> the next (time, reason)
    ([], (math.inf, "")),
    ([("request", 0)], (-math.inf, REASON_REQUESTED)),
    ([("request", 0), ("start", 10)], (40, REASON_PERIODIC)),
    ([("start", 10), ("request", 10.2)], (11, REASON_REQUESTED)),
    ([("start", 10), ("request", 10.2), ("request", 10.5), ("request", 10.9)], (11, REASON_REQUESTED)),
    ([("start", 10), ("request", 25)], (25 - 14, REASON_REQUESTED)),
    ([("start", 10), ("retry", 10.1, 0.2)], (11, REASON_RETRY)),
    ([("start", 10), ("retry", 10.1, 5)], (15.1, REASON_RETRY)),
], ids=["idle", "first-request-runs-at-once", "periodic-after-max-interval", "min-interval-holds",
        "burst-coalesces", "late-request-runs-at-once", "retry-respects-min-interval", "retry-delay"])
def test_schedule_decides_when_the_next_sync_runs(steps, expected):
    schedule = SyncSchedule(min_interval=1.0, max_interval=30.0)
    for step in steps:
        if step[0] == "request":
            schedule.request()
        elif step[0] == "start":
            schedule.started(step[1])
        else:
            schedule.retry_after(step[1], step[2])
    when, reason = schedule.next_run()
    assert reason == expected[1]
    assert when == expected[0] or (reason == REASON_REQUESTED and when <= expected[0])


def test_a_started_sync_covers_every_request_before_it():
    schedule = SyncSchedule(min_interval=1.0, max_interval=0)
    schedule.request()
    schedule.retry_after(0, 3)
    schedule.started(0.5)
    assert schedule.next_run() == (math.inf, "")


# --- BoundedFrequencyRunner: the loop, on a fake clock ---------------------------------------------------------

class FakeTime:
    """A clock that only moves when the runner waits: a wait with a timeout jumps to its end."""

    def __init__(self) -> None:
        self.now = 100.0
        self.actions: list = []  # (at time, callable): events a test schedules

    def clock(self) -> float:
        return self.now

    async def wait(self, event: asyncio.Event, timeout: float | None) -> None:
        if event.is_set():
            return
        due = [a for a in self.actions if timeout is None or a[0] <= self.now + timeout]
        if due:
            at, action = min(due, key=lambda a: a[0])
            self.actions.remove((at, action))
            self.now = max(self.now, at)
            action()
            return
        if timeout is None:
            raise _Done
        self.now += timeout


class _Done(Exception):
    pass


async def run_runner(min_interval: float, max_interval: float, fake: FakeTime, until_runs: int,
                     before: list | None = None) -> list[tuple[float, str]]:
    runs: list[tuple[float, str]] = []

    async def fn(reason: str) -> None:
        runs.append((fake.now, reason))
        if len(runs) >= until_runs:
            raise _Done

    runner = BoundedFrequencyRunner(fn, min_interval, max_interval, clock=fake.clock, wait=fake.wait)
    for at, what in before or []:
        fake.actions.append((at, runner.run if what == "run" else (lambda: runner.retry_after(0.5))))
    runner.run()
    with pytest.raises(_Done):
        await runner.loop()
    return runs


async def test_runner_coalesces_a_burst_into_one_sync_after_min_interval():
    fake = FakeTime()
    burst = [(100.1, "run"), (100.2, "run"), (100.3, "run")]
    runs = await run_runner(1.0, 0, fake, until_runs=2, before=burst)
    assert runs == [(100.0, REASON_REQUESTED), (101.0, REASON_REQUESTED)]


async def test_runner_syncs_periodically_without_events():
    runs = await run_runner(1.0, 30.0, FakeTime(), until_runs=3)
    assert runs == [(100.0, REASON_REQUESTED), (130.0, REASON_PERIODIC), (160.0, REASON_PERIODIC)]


async def test_runner_retries_after_a_failure():
    runs = await run_runner(1.0, 30.0, FakeTime(), until_runs=2, before=[(100.2, "retry")])
    assert runs == [(100.0, REASON_REQUESTED), (101.0, REASON_RETRY)]


# --- RuleSyncer against the fake kernel ---------------------------------------------------------------------

def make_syncer(families: tuple[str, ...] = ("IPv4",), conntrack: FakeConntrack | None = None,
                node_ips: tuple[str, ...] = (NODE_IP,)) -> tuple[ChangeTracker, FakeIptables, RuleSyncer]:
    tracker = ChangeTracker("node-1", families)
    fake = FakeIptables([NODE_IP])
    settings = ProxySettings("node-1", families=families, cluster_cidrs=("10.244.0.0/16", "fd00:10:244::/56"),
                             node_ips=node_ips)
    return tracker, fake, RuleSyncer(tracker, fake, settings, conntrack=conntrack)


def seeded() -> tuple[ChangeTracker, FakeIptables, RuleSyncer]:
    tracker, fake, syncer = make_syncer()
    tracker.service_update(None, SEED_SVC)
    tracker.endpoint_slice_update(seed_slice(*SEED_IPS))
    result = syncer.sync()
    assert result.ok and result.full
    return tracker, fake, syncer


def reach(fake: FakeIptables, dst: str = "10.102.11.183", dport: int = 80) -> dict[str, float]:
    return {k: round(v, 6) for k, v in reached(trace(fake.model(), Packet("10.244.2.5", dst, dport))).items()}


def test_first_sync_is_full_and_traffic_reaches_every_endpoint_equally():
    _, fake, _ = seeded()
    assert reach(fake) == {"10.244.1.10:9376": 0.333333, "10.244.1.8:9376": 0.333333, "10.244.1.9:9376": 0.333333}


def test_full_sync_ensures_the_jumps_from_builtin_chains_and_the_canary():
    _, fake, syncer = seeded()
    assert fake.rules("IPv4", "nat", "PREROUTING") == ("-m comment --comment 'kubernetes service portals' "
                                                         "-j KUBE-SERVICES",)
    assert "KUBE-PROXY-CANARY" in fake.chains("IPv4", "mangle")
    assert not syncer.canary_missing()


def test_jumps_are_not_added_twice_on_later_full_syncs():
    _, fake, syncer = seeded()
    result = syncer.sync(reason=REASON_PERIODIC)
    assert result.full and result.families[0].added_jumps == ()
    assert len(fake.rules("IPv4", "nat", "PREROUTING")) == 1


def test_partial_sync_rewrites_only_the_changed_services_chains():
    tracker, fake, syncer = seeded()
    other = service("ns", "other", "10.96.0.50", port("http", 80))
    tracker.service_update(None, other)
    tracker.endpoint_slice_update(endpoint_slice("ns", "other", [endpoint("10.244.2.7")], port("http", 8080)))
    syncer.sync()
    tracker.endpoint_slice_update(seed_slice("10.244.1.8", "10.244.1.9"))
    result = syncer.sync()
    assert result.ok and not result.full and result.changed == {"default/hostnames"}
    text = fake.history[-1].text
    declared = [line for line in text.splitlines() if line.startswith(":KUBE-S")]
    assert declared == [":KUBE-SVC-ODX2UBAZM7RQWOIU - [0:0]", ":KUBE-SEP-XBIWV66JPBUXLYCY - [0:0]",
                        ":KUBE-SEP-ZDT36JFL743NS3VU - [0:0]", ":KUBE-SEP-N6BO7JPFL3IPM3GK - [0:0]"]
    assert "-X KUBE-SEP-N6BO7JPFL3IPM3GK" in text
    assert "10.244.2.7" not in text  # the other service's chains were not touched
    assert reach(fake) == {"10.244.1.8:9376": 0.5, "10.244.1.9:9376": 0.5}
    assert reach(fake, "10.96.0.50") == {"10.244.2.7:8080": 1.0}


def test_partial_sync_leaves_unchanged_top_level_chains_out_of_the_restore():
    tracker, fake, syncer = seeded()
    tracker.endpoint_slice_update(seed_slice("10.244.1.8"))
    syncer.sync()
    text = fake.history[-1].text
    assert "*filter" not in text and ":KUBE-SERVICES" not in text
    assert len(fake.rules("IPv4", "nat", "KUBE-SERVICES")) == 2  # still there, unchanged


def test_a_new_service_rewrites_kube_services():
    tracker, fake, syncer = seeded()
    tracker.service_update(None, service("ns", "new", "10.96.0.60", port("http", 80)))
    tracker.endpoint_slice_update(endpoint_slice("ns", "new", [endpoint("10.244.2.8")], port("http", 80)))
    syncer.sync()
    assert ":KUBE-SERVICES - [0:0]" in fake.history[-1].text
    assert reach(fake, "10.96.0.60") == {"10.244.2.8:80": 1.0}


def test_deleting_the_service_removes_its_chains_and_rejects_nothing():
    tracker, fake, syncer = seeded()
    tracker.service_update(SEED_SVC, None)
    tracker.endpoint_slice_update(seed_slice(*SEED_IPS), removed=True)
    syncer.sync()
    assert not any(c.startswith(("KUBE-SVC-", "KUBE-SEP-")) for c in fake.chains("IPv4", "nat"))
    assert reach(fake) == {}


def test_a_failed_restore_changes_nothing_and_makes_the_next_sync_full():
    tracker, fake, syncer = seeded()
    before = fake.model().dump("nat")
    fake.fail_next_restores = 1
    tracker.endpoint_slice_update(seed_slice("10.244.1.8"))
    failed = syncer.sync()
    assert not failed.ok and not failed.full
    assert fake.model().dump("nat") == before
    retried = syncer.sync(reason=REASON_RETRY)
    assert retried.ok and retried.full
    assert reach(fake) == {"10.244.1.8:9376": 1.0}


def test_the_next_sync_after_a_failure_is_full_even_when_asked_for_normally():
    tracker, fake, syncer = seeded()
    fake.fail_next_restores = 1
    tracker.endpoint_slice_update(seed_slice("10.244.1.8"))
    syncer.sync()
    assert syncer.sync().full


def test_periodic_full_resync_repairs_a_chain_flushed_by_hand():
    _, fake, syncer = seeded()
    fake.flush_chain("IPv4", "nat", "KUBE-SERVICES")
    assert reach(fake) == {}
    assert syncer.sync().changed == frozenset()  # nothing changed: a partial sync has nothing to write
    result = syncer.sync(reason=REASON_PERIODIC)
    assert result.full
    assert len(reach(fake)) == 3


def test_a_flushed_table_is_noticed_by_the_canary_and_rebuilt():
    _, fake, syncer = seeded()
    fake.flush_table("IPv4", "nat")
    fake.flush_table("IPv4", "mangle")
    assert syncer.canary_missing()
    syncer.forget_kernel_state()
    result = syncer.sync()
    assert result.full and len(reach(fake)) == 3
    assert not syncer.canary_missing()


def test_stale_chains_found_in_iptables_save_are_deleted_on_a_full_sync():
    tracker, fake, syncer = seeded()
    fake.ensure_chain("IPv4", "nat", "KUBE-SVC-LEFTOVERFROMBEFORE")
    result = syncer.sync(reason=REASON_PERIODIC)
    assert "KUBE-SVC-LEFTOVERFROMBEFORE" in result.families[0].deleted_chains
    assert "KUBE-SVC-LEFTOVERFROMBEFORE" not in fake.chains("IPv4", "nat")


def test_a_node_address_change_makes_the_next_sync_full():
    tracker, fake, syncer = make_syncer(node_ips=())
    tracker.service_update(None, SEED_SVC)
    syncer.set_node({"status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.106"}]}})
    assert syncer.sync().full
    assert not syncer.sync().full
    assert syncer.set_node({"status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.107"}]}})
    assert syncer.sync().full


def test_render_cache_rerenders_only_the_changed_service():
    tracker, fake, syncer = seeded()
    for i in range(5):
        tracker.service_update(None, service("ns", f"s{i}", f"10.96.1.{i + 1}", port("http", 80)))
    syncer.sync()
    tracker.service_update(None, service("ns", "s9", "10.96.1.99", port("http", 80)))
    result = syncer.sync()
    assert result.families[0].rendered_services == 1


def test_dual_stack_syncs_both_families():
    tracker, fake, syncer = make_syncer(families=("IPv4", "IPv6"))
    svc = service("default", "web", "10.96.0.9", port("http", 80), ipFamilies=["IPv4", "IPv6"],
                  clusterIPs=["10.96.0.9", "fd00:10:96::9"])
    tracker.service_update(None, svc)
    tracker.endpoint_slice_update(endpoint_slice("default", "web", [endpoint("fd00:10:244:1::8")],
                                                 port("http", 8080), address_type="IPv6"))
    result = syncer.sync()
    assert [f.family for f in result.families] == ["IPv4", "IPv6"] and result.ok
    outcome = reached(trace(fake.model("IPv6"), Packet("fd00:10:244:2::5", "fd00:10:96::9", 80)))
    assert outcome == {"[fd00:10:244:1::8]:8080": 1.0}


@pytest.mark.parametrize(("cidrs", "families"), [
    ((), ("IPv4",)),
    (("10.244.0.0/16",), ("IPv4",)),
    (("fd00:10:244::/56",), ("IPv6",)),
    (("fd00:10:244::/56", "10.244.0.0/16"), ("IPv4", "IPv6")),
])
def test_families_follow_the_cluster_cidrs(cidrs, families):
    assert default_families(cidrs) == families


# --- conntrack after syncs -------------------------------------------------------------------------------------

DNS_SVC = service("kube-system", "kube-dns", "10.96.0.10", port("dns", 53, "UDP"))


def dns_slice(*ips: str) -> dict:
    return endpoint_slice("kube-system", "kube-dns", [endpoint(ip) for ip in ips], port("dns", 53, "UDP"))


def udp_entry(dst: str, dport: int, reply_src: str) -> ConntrackEntry:
    return ConntrackEntry("udp", "10.244.2.5", dst, 40000, dport, reply_src, "10.244.2.5", dport, 40000)


def test_removing_a_udp_endpoint_deletes_flows_it_was_answering():
    conntrack = FakeConntrack([udp_entry("10.96.0.10", 53, "10.244.1.20"),
                               udp_entry("10.96.0.10", 53, "10.244.1.21")])
    tracker, fake, syncer = make_syncer(conntrack=conntrack)
    tracker.service_update(None, DNS_SVC)
    tracker.endpoint_slice_update(dns_slice("10.244.1.20", "10.244.1.21"))
    syncer.sync()
    assert len(conntrack.entries) == 2
    tracker.endpoint_slice_update(dns_slice("10.244.1.20"))
    result = syncer.sync()
    assert [e.reply_src for e in conntrack.entries] == ["10.244.1.20"]
    assert [f.reply_src for f in result.families[0].conntrack_filters] == ["10.244.1.21"]


def test_tcp_only_changes_never_touch_conntrack():
    conntrack = FakeConntrack([udp_entry("10.96.0.10", 53, "10.244.9.9")])
    tracker, fake, syncer = make_syncer(conntrack=conntrack)
    tracker.service_update(None, DNS_SVC)
    tracker.endpoint_slice_update(dns_slice("10.244.1.20"))
    syncer.sync()  # full: the stale UDP flow goes
    conntrack.entries.append(udp_entry("10.96.0.10", 53, "10.244.9.8"))
    tracker.service_update(None, SEED_SVC)
    tracker.endpoint_slice_update(seed_slice(*SEED_IPS))
    syncer.sync()
    assert conntrack.deleted_with[-1][1].reply_src == "10.244.9.9"
    assert [e.reply_src for e in conntrack.entries] == ["10.244.9.8"]


def test_tracker_and_settings_must_agree_on_families():
    with pytest.raises(ValueError):
        RuleSyncer(ChangeTracker("n", ("IPv4",)), FakeIptables(), ProxySettings("n", families=("IPv6",)))


def test_unchanged_sync_writes_nothing_but_succeeds():
    tracker, fake, syncer = seeded()
    copy_svc = copy.deepcopy(SEED_SVC)
    copy_svc["metadata"]["labels"] = {"x": "y"}
    tracker.service_update(SEED_SVC, copy_svc)
    restores = len(fake.history)
    result = syncer.sync()
    assert result.ok and result.changed == frozenset()
    assert len(fake.history) == restores  # nothing to write: no iptables-restore at all


def test_in_a_large_cluster_periodic_syncs_are_partial_and_a_full_one_runs_hourly():
    now = [1000.0]
    tracker, fake, _ = make_syncer()
    syncer = RuleSyncer(tracker, fake, ProxySettings("node-1", families=("IPv4",), cluster_cidrs=("10.244.0.0/16",),
                                                     node_ips=(NODE_IP,)), clock=lambda: now[0])
    # Over kube-proxy's large-cluster threshold: 1,001 endpoints.
    tracker.service_update(None, SEED_SVC)
    tracker.endpoint_slice_update(endpoint_slice(
        "default", "hostnames", [endpoint(f"10.244.{1 + i // 250}.{1 + i % 250}") for i in range(1001)],
        port("default", 9376)))
    assert syncer.sync().full
    fake.flush_chain("IPv4", "nat", "KUBE-SERVICES")
    now[0] += 30
    periodic = syncer.sync(reason=REASON_PERIODIC)
    assert not periodic.full and periodic.changed == frozenset()  # seconds of work at scale: not every period
    assert reach(fake) == {}
    now[0] += FULL_SYNC_PERIOD
    hourly = syncer.sync(reason=REASON_PERIODIC)
    assert hourly.full and len(reach(fake)) == 1001


# --- the health check node ports a sync leaves for the service health server --------------------------------------

def lb_local(name: str = "web", health: int = 31500, **spec) -> dict:
    values = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": health}
    values.update(spec)
    return service("default", name, "10.96.0.9", {**port("http", 80), "nodePort": 30080}, **values)


def web_slice(*endpoints: dict) -> dict:
    return endpoint_slice("default", "web", list(endpoints), port("http", 8080))


def test_a_sync_reports_local_ready_endpoints_of_load_balancers_with_local_policy():
    tracker, _, syncer = make_syncer()
    tracker.service_update(None, lb_local())
    tracker.endpoint_slice_update(web_slice(endpoint("10.244.1.5", "node-1"), endpoint("10.244.1.6", "node-1"),
                                            endpoint("10.244.2.5", "node-2"),
                                            endpoint("10.244.1.7", "node-1", ready=False)))
    result = syncer.sync()
    assert dict(result.health_checks.ports) == {"default/web": 31500}
    assert dict(result.health_checks.local_endpoints) == {"default/web": 2}
    assert result.health_checks.addresses == ("0.0.0.0",)


@pytest.mark.parametrize("spec", [
    {"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 0},
    {"externalTrafficPolicy": "Cluster", "healthCheckNodePort": 0},
], ids=["nodeport-local", "lb-cluster"])
def test_services_without_a_health_check_node_port_get_no_listener(spec):
    tracker, _, syncer = make_syncer()
    tracker.service_update(None, lb_local(**spec))
    assert dict(syncer.sync().health_checks.ports) == {}


def test_partial_syncs_follow_endpoints_and_a_deleted_service_goes():
    tracker, _, syncer = make_syncer()
    svc = lb_local()
    tracker.service_update(None, svc)
    tracker.endpoint_slice_update(web_slice(endpoint("10.244.2.5", "node-2")))
    assert dict(syncer.sync().health_checks.local_endpoints) == {"default/web": 0}
    tracker.endpoint_slice_update(web_slice(endpoint("10.244.1.5", "node-1")))
    result = syncer.sync()
    assert not result.full and dict(result.health_checks.local_endpoints) == {"default/web": 1}
    tracker.service_update(svc, None)
    assert dict(syncer.sync().health_checks.ports) == {}


def test_nodeport_addresses_choose_where_health_checks_listen():
    tracker = ChangeTracker("node-1", ("IPv4",))
    settings = ProxySettings("node-1", cluster_cidrs=("10.244.0.0/16",), node_ips=(NODE_IP,),
                             nodeport_addresses=("192.168.0.0/24",))
    syncer = RuleSyncer(tracker, FakeIptables([NODE_IP]), settings)
    tracker.service_update(None, lb_local())
    assert syncer.sync().health_checks.addresses == (NODE_IP,)
