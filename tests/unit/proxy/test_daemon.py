"""`svcnet proxy run|cleanup`: flags, and the daemon wired to a fake API and a fake kernel."""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest

from svcnet.client.events import EVENTS
from svcnet.controllers.base import ENDPOINTSLICES, NODES, SERVICES
from svcnet.proxy import daemon
from svcnet.proxy.daemon import ProxyDaemon, UsageError, build_parser, config_from_args, parse_duration
from svcnet.proxy.iptables.tracer import Packet, reached, trace
from svcnet.proxy.metrics import parse_samples
from svcnet.proxy.syncer import ProxySettings
from svcnet.testing.api import FakeApi
from svcnet.testing.iptables import FakeIptables
from tests.unit.proxy.helpers import endpoint, endpoint_slice, port, service

# --- flags -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("0", 0.0), ("2.5", 2.5),
])
def test_durations_are_read_as_kube_proxy_flags_are(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "s", "-1s", "1s2"])
def test_bad_durations_are_rejected(text):
    with pytest.raises(UsageError):
        parse_duration(text)


def args(*argv: str):
    return build_parser().parse_args(["run", "--netns", "svcnet-x-node-1", *argv])


def test_run_flags_become_settings():
    cfg = config_from_args(args("--node", "node-1", "--cluster-cidr", "10.244.0.0/16", "--min-sync-period",
                                "250ms", "--sync-period", "1m", "--metrics-bind-address", "127.0.0.1:10249"))
    assert cfg.settings.node_name == "node-1" and cfg.settings.families == ("IPv4",)
    assert (cfg.min_sync_period, cfg.sync_period) == (0.25, 60.0)
    assert cfg.metrics_address == ("127.0.0.1", 10249)


def test_a_node_proxy_serves_metrics_and_health_on_kube_proxys_addresses_by_default():
    cfg = config_from_args(args("--node", "node-1"))
    assert cfg.metrics_address == ("127.0.0.1", 10249)
    assert cfg.healthz_address == ("0.0.0.0", 10256)


@pytest.mark.parametrize(("text", "address"), [
    ("", None), ("0", None), ("0.0.0.0:9100", ("0.0.0.0", 9100)), ("192.168.0.5", ("192.168.0.5", 10249)),
    ("[::1]:9000", ("::1", 9000)), ("::", ("::", 10249)),
])
def test_bind_address_flags_take_kube_proxys_forms(text, address):
    assert daemon.parse_bind_address("--metrics-bind-address", text, 10249) == address


@pytest.mark.parametrize("text", ["localhost:10249", "1.2.3.4:x", "1.2.3.4:0", "1.2.3.4:70000", ":10249"])
def test_bad_bind_addresses_are_usage_errors(text):
    with pytest.raises(UsageError):
        config_from_args(args("--node", "n", "--healthz-bind-address", text))


def test_without_a_namespace_metrics_and_health_are_off_unless_asked_for():
    parsed = args("--node", "node-1")
    parsed.netns = ""
    cfg = config_from_args(parsed)
    assert (cfg.metrics_address, cfg.healthz_address) == (None, None)


def test_default_cluster_cidrs_are_dual_stack():
    cfg = config_from_args(args("--node", "node-1"))
    assert cfg.settings.families == ("IPv4", "IPv6")


@pytest.mark.parametrize("argv", [
    (),  # no --node
    ("--node", "n", "--cluster-cidr", "10.244.0.0/33"),
    ("--node", "n", "--node-ip", "nope"),
    ("--node", "n", "--min-sync-period", "10s", "--sync-period", "1s"),
    ("--node", "n", "--nodeport-addresses", "bad"),
])
def test_bad_run_flags_are_usage_errors(argv):
    with pytest.raises(UsageError):
        config_from_args(args(*argv))


def test_netns_is_required_so_rules_never_go_to_the_host_namespace(capsys):
    assert daemon.main(["run", "--node", "node-1"]) == 2
    assert "--netns" in capsys.readouterr().err


def test_cleanup_of_a_namespace_that_does_not_exist_is_a_no_op(capsys):
    assert daemon.main(["--cleanup", "--netns", "svcnet-doesnotexist-node-1"]) == 0
    assert "does not exist" in capsys.readouterr().err


def test_run_cleanup_flag_runs_cleanup(monkeypatch):
    seen = []
    monkeypatch.setattr(daemon, "run_cleanup", lambda netns: seen.append(netns) or 0)
    assert daemon.main(["run", "--cleanup", "--netns", "svcnet-x-node-1"]) == 0
    assert seen == ["svcnet-x-node-1"]


def write_config(tmp_path, text: str) -> str:
    path = tmp_path / "kube-proxy.yaml"
    path.write_text("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" + text)
    return str(path)


def test_kube_proxy_flags_reach_the_settings():
    cfg = config_from_args(args("--hostname-override", "node-1", "--proxy-mode", "nftables", "--detect-local-mode",
                                "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth",
                                "--iptables-masquerade-bit", "12", "--masquerade-all", "--iptables-sync-period", "1m",
                                "--iptables-min-sync-period", "2s", "--iptables-localhost-nodeports=false"))
    s = cfg.settings
    assert (s.node_name, s.mode, s.detect_local_mode, s.interface_name_prefix) == (
        "node-1", "nftables", "InterfaceNamePrefix", "veth")
    assert s.masquerade_all and not s.localhost_nodeports and s.nodeport_addresses == ("primary",)
    assert s.masquerade_bit == 14  # --iptables-masquerade-bit is the iptables mode's, as upstream
    assert (cfg.min_sync_period, cfg.sync_period) == (2.0, 60.0)
    assert config_from_args(args("--node", "n", "--no-localhost-nodeports")).settings.localhost_nodeports is False
    assert config_from_args(args("--node", "n", "--iptables-masquerade-bit", "12")).settings.masquerade_bit == 12


def test_a_config_file_configures_the_daemon(tmp_path):
    path = write_config(tmp_path, "hostnameOverride: node-1\nclusterCIDR: 10.200.0.0/16\nbindAddress: 192.168.0.5\n"
                                  "metricsBindAddress: 0.0.0.0:9100\nclientConnection: {kubeconfig: /etc/kp.conf}\n"
                                  "iptables: {syncPeriod: 1m, minSyncPeriod: 100ms, masqueradeBit: 10}\n")
    cfg = config_from_args(args("--config", path))
    s = cfg.settings
    assert (s.node_name, s.cluster_cidrs, s.families, s.node_ips) == (
        "node-1", ("10.200.0.0/16",), ("IPv4",), ("192.168.0.5",))
    assert (s.mode, s.masquerade_bit, cfg.min_sync_period, cfg.sync_period) == ("iptables", 10, 0.1, 60.0)
    assert (cfg.metrics_address, cfg.healthz_address) == (("0.0.0.0", 9100), ("0.0.0.0", 10256))
    assert cfg.kubeconfig == "/etc/kp.conf"


def test_a_bad_config_file_makes_the_daemon_exit_1_as_kube_proxy(tmp_path, capsys):
    path = write_config(tmp_path, "iptables: {masqueradeBit: 99}\n")
    assert daemon.main(["run", "--node", "n", "--netns", "svcnet-x-node-1", "--config", path]) == 1
    assert "MasqueradeBit: Invalid value: 99" in capsys.readouterr().err
    assert daemon.main(["run", "--node", "n", "--netns", "svcnet-x-node-1", "--config", str(tmp_path / "no")]) == 1


def test_node_cidr_mode_takes_the_nodes_pod_cidrs():
    from svcnet.proxy.changes import ChangeTracker
    from svcnet.proxy.syncer import RuleSyncer

    settings = ProxySettings(node_name="node-1", detect_local_mode="NodeCIDR")
    syncer = RuleSyncer(ChangeTracker("node-1", settings.families), FakeIptables(), settings)
    node = {**NODE, "spec": {"podCIDRs": ["10.244.1.0/24"]}}
    assert syncer.set_node(node) is True
    assert syncer.config_for("IPv4").node_pod_cidrs == ("10.244.1.0/24",)
    assert syncer.set_node(node) is False
    assert syncer.set_node({**NODE, "spec": {"podCIDRs": ["10.244.7.0/24"]}}) is True
    # ClusterCIDR mode does not read them, so a change is no reason to resync.
    cluster = RuleSyncer(ChangeTracker("node-1", settings.families), FakeIptables(), ProxySettings(node_name="node-1"))
    cluster.set_node(NODE)
    assert cluster.set_node(node) is False and cluster.config_for("IPv4").node_pod_cidrs == ()


# --- the daemon, with FakeApi and FakeIptables --------------------------------------------------------------------

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.106"}]}}
SVC = service("default", "hostnames", "10.102.11.183", port("default", 80))


def seed_slice(*ips: str) -> dict:
    return endpoint_slice("default", "hostnames", [endpoint(ip) for ip in ips], port("default", 9376))


def reach(fake: FakeIptables) -> dict[str, float]:
    return {k: round(v, 6) for k, v in
            reached(trace(fake.model(), Packet("10.244.2.5", "10.102.11.183", 80))).items()}


@contextlib.asynccontextmanager
async def running(api: FakeApi, fake: FakeIptables, listen=None) -> AsyncIterator[ProxyDaemon]:
    settings = ProxySettings("node-1", cluster_cidrs=("10.244.0.0/16",))
    proxy = ProxyDaemon(api, fake, settings, min_sync_period=0, sync_period=3600, monitor_interval=3600,
                        listen=listen)
    stop = asyncio.Event()
    task = asyncio.create_task(proxy.run(stop))
    try:
        yield proxy
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until(proxy: ProxyDaemon, condition) -> None:
    await asyncio.wait_for(proxy.wait_until(condition), 10)


async def test_daemon_programs_rules_once_its_node_exists():
    async with FakeApi() as api:
        fake = FakeIptables(["192.168.0.106"])
        await api.create(SERVICES, "default", SVC)
        await api.create(ENDPOINTSLICES, "default", seed_slice("10.244.1.8", "10.244.1.9"))
        async with running(api, fake) as proxy:
            await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in proxy._informers)), 10)
            assert fake.history == []  # no Node yet: nothing is written
            await api.create(NODES, None, NODE)
            await until(proxy, lambda: len(reach(fake)) == 2)
            assert proxy.last_result is not None and proxy.last_result.full


async def test_daemon_applies_endpoint_changes_as_partial_syncs():
    async with FakeApi() as api:
        fake = FakeIptables(["192.168.0.106"])
        await api.create(NODES, None, NODE)
        await api.create(SERVICES, "default", SVC)
        created = await api.create(ENDPOINTSLICES, "default", seed_slice("10.244.1.8", "10.244.1.9"))
        async with running(api, fake) as proxy:
            await until(proxy, lambda: len(reach(fake)) == 2)
            created["endpoints"] = created["endpoints"][:1]
            await api.update(ENDPOINTSLICES, "default", created)
            await until(proxy, lambda: reach(fake) == {"10.244.1.8:9376": 1.0})
            assert proxy.last_result is not None and not proxy.last_result.full
            assert proxy.last_result.changed == {"default/hostnames"}


async def test_daemon_removes_its_rules_when_the_node_is_deleted():
    async with FakeApi() as api:
        fake = FakeIptables(["192.168.0.106"])
        await api.create(NODES, None, NODE)
        await api.create(SERVICES, "default", SVC)
        await api.create(ENDPOINTSLICES, "default", seed_slice("10.244.1.8"))
        async with running(api, fake) as proxy:
            await until(proxy, lambda: len(reach(fake)) == 1)
            await api.delete(NODES, None, "node-1")
            await until(proxy, lambda: not any(c.startswith("KUBE-") for t in ("nat", "filter", "mangle")
                                               for c in fake.chains("IPv4", t)))
            assert not proxy.node_present
            await api.create(NODES, None, NODE)  # back again: everything is rewritten
            await until(proxy, lambda: len(reach(fake)) == 1)


async def test_health_is_ok_after_the_first_sync_and_metrics_count_it():
    async with FakeApi() as api:
        fake = FakeIptables(["192.168.0.106"])
        await api.create(NODES, None, NODE)
        await api.create(SERVICES, "default", SVC)
        async with running(api, fake) as proxy:
            await until(proxy, lambda: proxy.initial_sync_done.is_set())
            answer = proxy.healthz()
            assert answer.status == 200 and json.loads(answer.body)["nodeEligible"] is True
            samples = parse_samples(proxy.metrics.render())
            assert samples["kubeproxy_sync_proxy_rules_duration_seconds_count"] >= 1
            assert samples['kubeproxy_sync_proxy_rules_iptables_total{table="nat"}'] > 0
            assert samples["kubeproxy_sync_proxy_rules_service_changes_total"] == 1
            assert samples['kubeproxy_proxy_healthz_total{code="200"}'] == 1


async def test_a_deleted_node_fails_healthz_and_livez_stays_ok():
    async with FakeApi() as api:
        fake = FakeIptables(["192.168.0.106"])
        await api.create(NODES, None, NODE)
        async with running(api, fake) as proxy:
            await until(proxy, lambda: proxy.initial_sync_done.is_set())
            await api.delete(NODES, None, "node-1")
            await until(proxy, lambda: not proxy.node_present)
            answer = proxy.healthz()
            assert answer.status == 503 and json.loads(answer.body)["nodeEligible"] is False
            assert proxy.livez().status == 200


async def test_the_http_servers_answer_as_kube_proxys_metrics_and_health_servers():
    from aiohttp import ClientSession

    async with FakeApi() as api:
        fake = FakeIptables(["192.168.0.106"])
        await api.create(NODES, None, NODE)
        async with running(api, fake) as proxy:
            await until(proxy, lambda: proxy.initial_sync_done.is_set())
            metrics_sock = socket.create_server(("127.0.0.1", 0))
            health_sock = socket.create_server(("127.0.0.1", 0))
            servers = [await daemon.serve_http(proxy, metrics_sock, metrics=True, health=False),
                       await daemon.serve_http(proxy, health_sock, metrics=False, health=True)]
            metrics_url = f"http://127.0.0.1:{metrics_sock.getsockname()[1]}"
            health_url = f"http://127.0.0.1:{health_sock.getsockname()[1]}"
            try:
                async with ClientSession() as http:
                    async with http.get(f"{metrics_url}/metrics") as r:
                        assert r.status == 200
                        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                        assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds " in await r.text()
                    async with http.get(f"{metrics_url}/healthz") as r:
                        assert (r.status, await r.text()) == (200, "ok")
                    async with http.get(f"{metrics_url}/proxyMode") as r:
                        assert await r.text() == "iptables"
                    async with http.get(f"{health_url}/healthz") as r:
                        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
                        assert set(json.loads(await r.text())) == {"lastUpdated", "currentTime", "nodeEligible"}
                    async with http.get(f"{health_url}/livez") as r:
                        assert r.status == 200 and set(json.loads(await r.text())) == {"lastUpdated", "currentTime"}
                    async with http.get(f"{health_url}/metrics") as r:
                        assert r.status == 404
            finally:
                for server in servers:
                    await server.cleanup()
                metrics_sock.close()
                health_sock.close()


class LoopbackListen:
    """The node's health check ports, bound on loopback at free ports: {(address, health port): real port}."""

    def __init__(self) -> None:
        self.bound: dict[tuple[str, int], int] = {}
        self.refuse: set[int] = set()

    def __call__(self, host: str, port: int) -> socket.socket:
        if port in self.refuse:
            raise OSError(98, "Address already in use")
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        self.bound[host, port] = sock.getsockname()[1]
        return sock

    def url(self, port: int, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.bound['0.0.0.0', port]}{path}"


LB_LOCAL = service("default", "web", "10.96.0.9", port("http", 80, node_port=30080), type="LoadBalancer",
                   externalTrafficPolicy="Local", healthCheckNodePort=31500)


def web_slice(*endpoints: dict) -> dict:
    return endpoint_slice("default", "web", list(endpoints), port("http", 8080))


async def test_the_health_check_node_port_answers_with_the_nodes_local_endpoints():
    from aiohttp import ClientSession

    listen = LoopbackListen()
    async with FakeApi() as api:
        await api.create(NODES, None, NODE)
        await api.create(SERVICES, "default", LB_LOCAL)
        created = await api.create(ENDPOINTSLICES, "default", web_slice(endpoint("10.244.1.5", "node-1"),
                                                                         endpoint("10.244.2.5", "node-2")))
        async with running(api, FakeIptables(["192.168.0.106"]), listen) as proxy, ClientSession() as http:
            await until(proxy, lambda: ("0.0.0.0", 31500) in listen.bound)
            async with http.get(listen.url(31500, "/any/path")) as r:
                assert r.status == 200
                assert (r.headers["Content-Type"], r.headers["X-Content-Type-Options"],
                        r.headers["X-Load-Balancing-Endpoint-Weight"]) == ("application/json", "nosniff", "1")
                assert await r.text() == ('{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "web"\n\t},'
                                          '\n\t"localEndpoints": 1,\n\t"serviceProxyHealthy": true\n}')
            created["endpoints"] = created["endpoints"][1:]  # only node-2's pod is left
            await api.update(ENDPOINTSLICES, "default", created)
            await until(proxy, lambda: proxy.last_result is not None and proxy.last_result.changed is not None)
            async with http.head(listen.url(31500)) as r:
                assert r.status == 503 and r.headers["X-Load-Balancing-Endpoint-Weight"] == "0"
            async with http.post(listen.url(31500, "/healthz")) as r:
                assert json.loads(await r.text())["localEndpoints"] == 0


async def test_a_health_check_closes_with_its_service_and_a_failed_one_is_retried():
    from aiohttp import ClientConnectionError, ClientSession

    listen = LoopbackListen()
    listen.refuse.add(31500)
    async with FakeApi() as api:
        await api.create(NODES, None, NODE)
        svc = await api.create(SERVICES, "default", LB_LOCAL)
        async with running(api, FakeIptables(["192.168.0.106"]), listen) as proxy, ClientSession() as http:
            await until(proxy, lambda: proxy.initial_sync_done.is_set())
            assert proxy.service_health is not None and proxy.service_health.table.listeners == ()
            assert proxy._events is not None
            await asyncio.wait_for(proxy._events.flush(), 10)
            [event] = api.objects(EVENTS)
            assert (event["type"], event["reason"], event["involvedObject"]["name"]) == (
                "Warning", "FailedToStartServiceHealthcheck", "web")
            assert event["message"].startswith('node node-1 failed to start healthcheck "default/web" on port 31500')
            listen.refuse.clear()  # the port is free now: the next sync opens it
            await api.create(SERVICES, "default", service("default", "other", "10.96.0.10", port("http", 80)))
            await until(proxy, lambda: ("0.0.0.0", 31500) in listen.bound)
            async with http.get(listen.url(31500)) as r:
                assert r.status == 503
            await api.delete(SERVICES, "default", svc["metadata"]["name"])
            await until(proxy, lambda: proxy.service_health.table.listeners == ())
            with pytest.raises(ClientConnectionError):
                async with http.get(listen.url(31500)):
                    pass


async def test_a_failed_restore_is_retried_as_a_full_sync():
    async with FakeApi() as api:
        fake = FakeIptables(["192.168.0.106"])
        fake.fail_next_restores = 1
        await api.create(NODES, None, NODE)
        await api.create(SERVICES, "default", SVC)
        await api.create(ENDPOINTSLICES, "default", seed_slice("10.244.1.8"))
        async with running(api, fake) as proxy:
            await until(proxy, lambda: len(reach(fake)) == 1)
            assert proxy.metrics.restore_failures == 1
            assert [r.ok for r in proxy.results][:2] == [False, True] and proxy.results[1].full


def test_svcnet_proxy_with_flags_first_runs_the_proxy_as_kube_proxy_is_run(monkeypatch) -> None:
    from svcnet import cli
    from svcnet.proxy import daemon

    seen: list[list[str]] = []
    monkeypatch.setattr(daemon, "main", lambda argv: seen.append(list(argv)) or 0)
    assert cli.main(["proxy", "--node", "node-1", "--netns", "ns1"]) == 0
    assert cli.main(["proxy", "--cleanup", "--netns", "ns1"]) == 0
    assert cli.main(["proxy", "run", "--node", "node-1", "--netns", "ns1"]) == 0
    assert seen == [["run", "--node", "node-1", "--netns", "ns1"], ["--cleanup", "--netns", "ns1"],
                    ["run", "--node", "node-1", "--netns", "ns1"]]


# --- nfacct counters, with FakeNfacct -----------------------------------------------------------------------------

def test_iptables_mode_creates_the_nfacct_counters_and_counts_with_them():
    from svcnet.testing.nfacct import FakeNfacct

    nfacct = FakeNfacct()
    settings = daemon.enable_nfacct(nfacct, ProxySettings("node-1"))
    assert settings.nfacct_counters is True
    assert set(nfacct.counters) == {"ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"}
    # Created once: a second start finds them.
    assert daemon.enable_nfacct(nfacct, ProxySettings("node-1")).nfacct_counters is True
    assert [c for c, _ in nfacct.requests].count("add") == 2


def test_without_nfacct_or_outside_iptables_mode_rules_do_without_counters():
    from svcnet.testing.nfacct import FakeNfacct

    assert daemon.enable_nfacct(None, ProxySettings("node-1")).nfacct_counters is False
    refusing = FakeNfacct()
    refusing.fail_with = 1  # EPERM
    assert daemon.enable_nfacct(refusing, ProxySettings("node-1")).nfacct_counters is False
    untouched = FakeNfacct()
    assert daemon.enable_nfacct(untouched, ProxySettings("node-1", mode="nftables")).nfacct_counters is False
    assert untouched.requests == []


async def test_the_daemon_writes_the_nfacct_rules_when_the_counters_exist():
    from svcnet.testing.nfacct import FakeNfacct

    fake = FakeIptables(["192.168.0.106"])
    async with FakeApi() as api:
        await api.create(NODES, None, NODE)
        await api.create(SERVICES, "default", {**SVC, "spec": {
            **SVC["spec"], "type": "NodePort", "ports": [{**SVC["spec"]["ports"][0], "nodePort": 30080}]}})
        await api.create(ENDPOINTSLICES, "default", seed_slice("10.244.1.8"))
        settings = daemon.enable_nfacct(FakeNfacct(), ProxySettings("node-1", cluster_cidrs=("10.244.0.0/16",)))
        proxy = ProxyDaemon(api, fake, settings, min_sync_period=0, sync_period=3600, monitor_interval=3600)
        stop = asyncio.Event()
        task = asyncio.create_task(proxy.run(stop))
        try:
            await until(proxy, lambda: proxy.last_result is not None and proxy.last_result.ok)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert ("-m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP"
            in " ".join(fake.rules("IPv4", "filter", "KUBE-FORWARD")))
    assert any("-m nfacct --nfacct-name localhost_nps_accepted_pkts" in rule
               for rule in fake.rules("IPv4", "nat", "KUBE-NODEPORTS"))


async def test_proxy_mode_answers_the_configured_mode():
    from aiohttp import ClientSession

    async with FakeApi() as api:
        proxy = ProxyDaemon(api, FakeIptables(), ProxySettings("node-1", mode="nftables"))
        sock = socket.create_server(("127.0.0.1", 0))
        server = await daemon.serve_http(proxy, sock, metrics=True, health=False)
        try:
            async with ClientSession() as http, http.get(
                    f"http://127.0.0.1:{sock.getsockname()[1]}/proxyMode") as r:
                assert await r.text() == "nftables"
        finally:
            await server.cleanup()
            sock.close()
