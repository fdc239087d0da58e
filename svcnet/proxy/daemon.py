"""`svcnet proxy run|cleanup`: the node's service proxy (kube-proxy, iptables mode) as a process.

    svcnet proxy run --node|--hostname-override NAME --netns NSNAME [--data-dir D | --kubeconfig K]
                     [--config KUBE-PROXY-CONFIG.yaml] [--node-ip IP]... [-v]
                     [kube-proxy's flags: --proxy-mode iptables|nftables --cluster-cidr CIDR[,CIDR]
                      --detect-local-mode MODE --iptables-masquerade-bit N --masquerade-all
                      --nodeport-addresses CIDR,... --iptables-min-sync-period 1s --iptables-sync-period 30s
                      --metrics-bind-address IP:PORT --healthz-bind-address IP:PORT ...]
    svcnet proxy cleanup --netns NSNAME          (also: run --cleanup, or --cleanup alone)

kube-proxy's flags and its KubeProxyConfiguration file mean what they mean to
kube-proxy (svcnet.proxy.kpconfig); svcnet's older names (--mode, --sync-period,
--min-sync-period, --node, --no-localhost-nodeports) are aliases.

It watches Services, EndpointSlices and its own Node through the Kubernetes API
(list+watch, resuming, re-listing on 410), so it runs unchanged against
svcnet's API server or a real cluster's. Events only update the change tracker
and ask the bounded-frequency runner for a sync; the sync plans, renders and
applies the rules inside the node's network namespace (never the host's).

It programs rules while its Node object exists: at start it waits for the Node,
and when the Node is deleted it removes everything it wrote (as --cleanup does)
and waits for the Node to come back. Stopping the process (SIGTERM) leaves the
rules in place, so Services keep working while the proxy restarts; established
connections and their conntrack entries survive the restart.

Metrics and health, as kube-proxy serves them on a node, with sockets made inside
the node's namespace: /metrics on 127.0.0.1:10249 and /healthz, /livez on
0.0.0.0:10256 unless --metrics-bind-address / --healthz-bind-address say
otherwise ("" or 0 turns one off). The metrics and health answers themselves
are svcnet.proxy.metrics.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from svcnet.api.objects import name_of, namespace_of
from svcnet.client.events import EventQueue, EventRecorder
from svcnet.kernel import KernelError
from svcnet.kernel.conntrack import ConntrackTool
from svcnet.kernel.iptables import IptablesError, NetnsIptables
from svcnet.kernel.nfacct import Nfacct, NfacctError, ensure, open_nfacct, read_packets
from svcnet.kernel.nft import NetnsNft, NftError
from svcnet.proxy import flags, kpconfig, render_cli
from svcnet.proxy.changes import ChangeTracker
from svcnet.proxy.cleanup import MODE_NFTABLES, cleanup_nftables_mode, cleanup_other_modes
from svcnet.proxy.conntrack import Conntrack, ConntrackTable
from svcnet.proxy.healthcheck import ANY_IPV4, ANY_IPV6, HealthCheckSnapshot, Listener, ServiceHealthTable
from svcnet.proxy.iptables.apply import IptablesApplier, IptablesBackend, cleanup
from svcnet.proxy.metrics import (
    METRICS_CONTENT_TYPE,
    NFACCT_METRICS,
    HealthAnswer,
    ProxyHealth,
    ProxyMetrics,
    node_eligible,
    outcome_of,
    stamp_now,
)
from svcnet.proxy.model import service_cidrs_of
from svcnet.proxy.nftables.apply import NftablesWriter, nft_family_of
from svcnet.proxy.syncer import (
    BoundedFrequencyRunner,
    ProxySettings,
    RuleSyncer,
    RuleWriter,
    SyncResult,
    default_families,
)

log = logging.getLogger("svcnet.proxy")

DEFAULT_CLUSTER_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")
# kube-proxy's ports: metrics on the node's loopback, health (for load balancers) on every address.
DEFAULT_METRICS_ADDRESS = "127.0.0.1:10249"
DEFAULT_HEALTHZ_ADDRESS = "0.0.0.0:10256"
EXIT_USAGE = 2
# kube-proxy's escape hatch for kernels older than 5.13 that have what nftables mode needs.
SKIP_KERNEL_CHECK_ENV = "KUBE_PROXY_NFTABLES_SKIP_KERNEL_VERSION_CHECK"


UsageError = flags.FlagError  # bad flags; the message says which


# --- flags -----------------------------------------------------------------------------------------------------

parse_duration = flags.parse_duration  # Go durations ("1s", "500ms", "1m30s"); a bare number is seconds


def parse_bind_address(flag: str, text: str, default_port: int) -> tuple[str, int] | None:
    """kube-proxy's IP[:PORT] bind flags: "" (or "0") turns the server off; an IP alone takes the default port."""
    value = text.strip()
    if value in ("", "0"):
        return None
    try:
        return str(ipaddress.ip_address(value.strip("[]"))), default_port
    except ValueError:
        pass
    host, sep, port = value.rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]")) if sep else None
    except ValueError:
        ip = None
    if ip is None or (ip.version == 6 and not host.startswith("[")) or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise UsageError(f"{flag}: {text!r} is not IP or IP:PORT (e.g. 127.0.0.1:10249, [::]:10256)")
    return str(ip), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcnet proxy",
                                     description="The service proxy of one node (kube-proxy) as a process.")
    sub = parser.add_subparsers(dest="command", metavar="run|cleanup")

    run = sub.add_parser("run", help="watch the API and keep the node's rules in sync")
    run.add_argument("--node", "--hostname-override", dest="node", required=False, default="",
                     help="this node's name (its Node object; kube-proxy's --hostname-override)")
    run.add_argument("--netns", required=True, help="the node's network namespace (rules go there only)")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--data-dir", help="reach svcnet's API server through DATA_DIR/apiserver.sock")
    source.add_argument("--kubeconfig", help="reach any Kubernetes API server with this kubeconfig")
    render_cli.add_policy_flags(run, DEFAULT_CLUSTER_CIDRS)
    run.add_argument("--no-localhost-nodeports", dest="iptables_localhost_nodeports", action="store_const",
                     const=False, help="do not accept NodePort connections to 127.0.0.1 "
                                       "(--iptables-localhost-nodeports=false)")
    run.add_argument("--cleanup", action="store_true", help="remove the proxy's rules from --netns and exit")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="debug logging (includes every iptables-restore input)")

    clean = sub.add_parser("cleanup", help="remove every rule and chain the proxy wrote, then exit")
    clean.add_argument("--netns", required=True, help="the node's network namespace")
    clean.add_argument("-v", "--verbose", action="store_true")
    return parser


class ConfigFileError(Exception):
    """--config names a file kube-proxy would refuse (kube-proxy exits 1 then, not 2)."""


@dataclass(frozen=True)
class DaemonConfig:
    netns: str
    settings: ProxySettings
    min_sync_period: float
    sync_period: float
    kubeconfig: str | None = None
    data_dir: str | None = None
    metrics_address: tuple[str, int] | None = None
    healthz_address: tuple[str, int] | None = None


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """The daemon's configuration: kube-proxy's (flags, or --config FILE) and svcnet's own flags."""
    try:
        text = render_cli.read_config_file(args.config)
        kp, notes = kpconfig.resolve(args, DEFAULT_CLUSTER_CIDRS, text)
    except render_cli.InputError as exc:
        raise ConfigFileError(str(exc)) from None
    except kpconfig.ConfigError as exc:
        raise ConfigFileError(f"--config {args.config}: {exc}") from None
    for note in notes:
        log.warning("%s", note)
    if not kp.hostname_override:
        raise UsageError("--node (kube-proxy's --hostname-override) is required")
    node_ips = flags.node_ips(args.node_ip)
    if not node_ips and kp.bind_address not in ("0.0.0.0", "::"):
        node_ips = (kp.bind_address,)  # kube-proxy's bindAddress: the node's primary IP
    settings = ProxySettings(
        node_name=kp.hostname_override, families=default_families(kp.cluster_cidrs), cluster_cidrs=kp.cluster_cidrs,
        node_ips=node_ips, masquerade_all=kp.masquerade_all, masquerade_bit=kp.masquerade_bit,
        nodeport_addresses=kp.nodeport_addresses, localhost_nodeports=kp.localhost_nodeports,
        conntrack_tcp_be_liberal=kp.conntrack_tcp_be_liberal, mode=kp.mode, detect_local_mode=kp.detect_local_mode,
        bridge_interface=kp.bridge_interface, interface_name_prefix=kp.interface_name_prefix,
    )
    return DaemonConfig(
        netns=args.netns, settings=settings, min_sync_period=kp.min_sync_period, sync_period=kp.sync_period,
        kubeconfig=(kp.kubeconfig if text is not None else "") or args.kubeconfig, data_dir=args.data_dir,
        metrics_address=_bind_address(args, "--metrics-bind-address", kp.metrics_bind_address,
                                      DEFAULT_METRICS_ADDRESS),
        healthz_address=_bind_address(args, "--healthz-bind-address", kp.healthz_bind_address,
                                      DEFAULT_HEALTHZ_ADDRESS),
    )


def _bind_address(args: argparse.Namespace, flag: str, text: str | None, default: str) -> tuple[str, int] | None:
    """The address; unset, kube-proxy's default when the proxy serves a node namespace, else off."""
    if text is None:
        text = default if getattr(args, "netns", None) else ""
    return parse_bind_address(flag, text, int(default.rpartition(":")[2]))


# --- the daemon --------------------------------------------------------------------------------------------------

def _api_resources() -> tuple[Any, Any, Any]:
    from svcnet.api.resources import lookup

    services = lookup("", "v1", "services")
    slices = lookup("discovery.k8s.io", "v1", "endpointslices")
    nodes = lookup("", "v1", "nodes")
    assert services is not None and slices is not None and nodes is not None
    return services, slices, nodes


class ProxyDaemon:
    """Informers -> ChangeTracker -> BoundedFrequencyRunner -> RuleSyncer, for one node."""

    def __init__(self, client: Any, backend: IptablesBackend | None, settings: ProxySettings, *,
                 min_sync_period: float = 1.0, sync_period: float = 30.0,
                 conntrack: Conntrack | None = None, monitor_interval: float | None = None,
                 clock: Any = time.monotonic, writer: RuleWriter | None = None,
                 remove_rules: Callable[[], object] | None = None,
                 listen: Callable[[str, int], socket.socket] | None = None) -> None:
        self.client = client
        self.backend = backend
        self.settings = settings
        self.tracker = ChangeTracker(settings.node_name, settings.families)
        self.syncer = RuleSyncer(self.tracker, backend, settings, conntrack=conntrack, writer=writer)
        # What deleting the Node removes: the running mode's rules (iptables mode's chains by default).
        self.remove_rules = remove_rules or partial(cleanup, backend, settings.families)
        self.runner = BoundedFrequencyRunner(self._sync, min_sync_period, sync_period, clock=clock)
        self.sync_period = sync_period
        self.min_sync_period = min_sync_period
        self.monitor_interval = monitor_interval if monitor_interval is not None else max(
            min_sync_period, min(sync_period / 2 if sync_period else 5.0, 5.0))
        self.metrics = ProxyMetrics(started_at=time.time())
        # kube-proxy's health timeout: two sync periods (30 s each by default).
        self.health = ProxyHealth(timeout=2 * (sync_period or 30.0))
        # The health check node ports of externalTrafficPolicy Local Services (none without `listen`).
        self.service_health = ServiceHealthServer(
            listen, lambda: self.health.healthy(self.clock()),
            on_failure=self._health_check_failed) if listen is not None else None
        self._events: EventQueue | None = None  # made with the first event
        self.clock = clock
        self.node_present = False
        self.initial_sync_done = asyncio.Event()
        self.last_result: SyncResult | None = None
        self.results: list[SyncResult] = []  # the last few, newest last (tests, debugging)
        self._informers: list[Any] = []
        self._synced = asyncio.Condition()
        self._kernel = asyncio.Lock()  # one sync or cleanup at a time touches the namespace

    # --- event handlers: record, ask for a sync, nothing else ------------------------------------------------

    def _changed(self, pending: bool) -> None:
        if pending and self.node_present:
            self.health.queued(self.clock())
            self.metrics.queued(time.time())
            self.runner.run()

    def on_service(self, old: dict | None, new: dict | None) -> None:
        service = new or old
        self.metrics.service_changed(f"{namespace_of(service)}/{name_of(service)}")
        self._changed(self.tracker.service_update(old, new))

    def on_slice(self, endpoint_slice: dict, removed: bool = False) -> None:
        self.metrics.endpoints_changed()
        self._changed(self.tracker.endpoint_slice_update(endpoint_slice, removed=removed))

    def on_service_cidrs(self, service_cidrs: list[dict]) -> None:
        """The ServiceCIDRs changed: their ranges bound nftables mode's check for unallocated cluster IPs."""
        if self.syncer.set_service_cidrs(service_cidrs_of(service_cidrs)):
            self._changed(True)  # a new config: the next sync is full

    def _service_cidr_informer(self) -> Any:
        from svcnet.api.resources import lookup
        from svcnet.client.informer import Informer

        resource = lookup("networking.k8s.io", "v1", "servicecidrs")
        assert resource is not None
        informer = Informer(self.client, resource)

        def changed(*_: object) -> None:
            self.on_service_cidrs(informer.list())

        informer.add_handler(on_add=changed, on_update=changed, on_delete=changed)
        return informer

    def on_node(self, node: dict | None) -> None:
        name = name_of(node)
        if name != self.settings.node_name:
            return
        self.tracker.node_update(node)
        self.health.node_eligible = node_eligible(node)
        if self.syncer.set_node(node):
            self.tracker.force_full_sync()
        if not self.node_present:
            log.info("node %s is present: programming its rules", name)
            self.node_present = True
            self.tracker.force_full_sync()
        self._changed(self.tracker.pending)

    async def on_node_deleted(self, node: dict) -> None:
        if name_of(node) != self.settings.node_name or not self.node_present:
            return
        log.info("node %s was deleted: removing its rules", self.settings.node_name)
        self.node_present = False
        self.health.node_eligible = False
        self.health.updated(stamp_now())  # nothing left to program: no change waits any more
        try:
            async with self._kernel:
                await asyncio.to_thread(self.remove_rules)
        except (IptablesError, NftError) as exc:
            log.error("cleanup after node deletion failed: %s", exc)
        self.syncer.forget_kernel_state()
        async with self._synced:
            self._synced.notify_all()

    def _health_check_failed(self, listener: Listener, error: Exception) -> None:
        """kube-proxy's Warning Event on the Service when its health check port cannot be opened; queued and
        written in the background (EventQueue, as client-go's recorder), so a slow or absent API server never
        holds up a sync."""
        if self._events is None:
            recorder = EventRecorder(self.client, "kube-proxy", lambda: dt.datetime.now(dt.UTC))
            self._events = EventQueue(recorder.emit, time.monotonic)
        namespace, _, name = listener.service.partition("/")
        # As upstream, the reference names the Service but carries no real uid: the proxy keeps none.
        service = {"kind": "Service", "apiVersion": "v1",
                   "metadata": {"namespace": namespace, "name": name, "uid": listener.service}}
        message = (f"node {self.settings.node_name} failed to start healthcheck {json.dumps(listener.service)} "
                   f"on port {listener.port}: {error}")
        self._events.emit(service, "Warning", "FailedToStartServiceHealthcheck", message)

    # --- syncing ---------------------------------------------------------------------------------------------

    async def _sync(self, reason: str) -> None:
        if not self.node_present:
            return
        sync_input = self.tracker.checkout(include_objects=False)  # on the loop: handlers run here too
        self.health.checked_out()
        self.metrics.changes_taken()
        async with self._kernel:
            result = await asyncio.to_thread(self.syncer.apply, sync_input, reason=reason)
        self.last_result = result
        self.results = [*self.results[-15:], result]
        self.metrics.record(outcome_of(result), time.time())
        if result.ok:
            self.health.updated(stamp_now())
            if self.service_health is not None:
                await self.service_health.sync(result.health_checks)
        async with self._synced:
            self._synced.notify_all()
        if result.ok:
            self.initial_sync_done.set()
            log.info("synced %s (%s, %s) in %.3fs%s", "all services" if result.full else
                     f"{len(result.changed or ())} changed service(s)", "full" if result.full else "partial",
                     reason, result.seconds, "".join(
                         f"; {f.family}: {f.nat_rules_total} nat rules, {f.restore_bytes} bytes restored"
                         for f in result.families))
        else:
            log.error("sync failed (%s); retrying with a full sync: %s", reason, result.error)
            self.health.queued(self.clock())  # what the failed sync took still waits (and keeps its age)
            self.runner.retry_after(self.min_sync_period or 1.0)

    async def wait_until(self, condition: Any) -> None:
        """Return once condition() holds, checking now and after every sync or cleanup (tests; callers)."""
        async with self._synced:
            while not condition():
                await self._synced.wait()

    async def _monitor(self) -> None:
        """kube-proxy's canary: a vanished KUBE-PROXY-CANARY means the tables were flushed; resync all."""
        while True:
            await asyncio.sleep(self.monitor_interval)
            if not self.node_present or not self.initial_sync_done.is_set():
                continue
            if await asyncio.to_thread(self.syncer.canary_missing):
                log.warning("canary chain is gone: iptables was flushed; resyncing everything")
                self.syncer.forget_kernel_state()
                self.runner.run()

    def healthz(self) -> HealthAnswer:
        """kube-proxy's /healthz: 503 once a queued change waited two sync periods, or the Node is going."""
        answer = self.health.healthz(self.clock(), stamp_now())
        self.metrics.answered("healthz", answer.status)
        return answer

    def livez(self) -> HealthAnswer:
        """kube-proxy's /livez: as /healthz, whatever the Node's state."""
        answer = self.health.livez(self.clock(), stamp_now())
        self.metrics.answered("livez", answer.status)
        return answer

    async def run(self, stop: asyncio.Event) -> None:
        from svcnet.client.informer import Informer

        services, slices, nodes = _api_resources()
        service_informer = Informer(self.client, services)
        slice_informer = Informer(self.client, slices)
        node_informer = Informer(self.client, nodes, field_selector=f"metadata.name={self.settings.node_name}")
        service_informer.add_handler(on_add=lambda o: self.on_service(None, o),
                                     on_update=self.on_service, on_delete=lambda o: self.on_service(o, None))
        slice_informer.add_handler(on_add=self.on_slice, on_update=lambda _old, new: self.on_slice(new),
                                   on_delete=lambda o: self.on_slice(o, removed=True))
        tasks: set[asyncio.Task[Any]] = set()

        def node_deleted(node: dict) -> None:
            task = asyncio.create_task(self.on_node_deleted(node))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        node_informer.add_handler(on_add=self.on_node, on_update=lambda _old, new: self.on_node(new),
                                  on_delete=node_deleted)
        self._informers = [service_informer, slice_informer, node_informer]
        if self.settings.mode == MODE_NFTABLES:
            self._informers.append(self._service_cidr_informer())
        for informer in self._informers:
            informer.start()
        runner_task: asyncio.Task[None] | None = None
        monitor_task: asyncio.Task[None] | None = None
        try:
            # kube-proxy does not program anything before both caches are complete.
            synced = asyncio.ensure_future(asyncio.gather(*(i.wait_synced() for i in self._informers)))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                synced.cancel()
                return
            stopped.cancel()
            # As kube-proxy's sync loop starting: the rules count as current until a change waits too long.
            self.health.updated(stamp_now())
            self.metrics.queued(time.time())
            if not self.node_present:
                log.info("waiting for Node %s to exist", self.settings.node_name)
            self._changed(True)
            runner_task = asyncio.create_task(self.runner.loop(), name="proxy-sync")
            monitor_task = asyncio.create_task(self._monitor(), name="proxy-canary")
            done, _ = await asyncio.wait({runner_task, monitor_task, asyncio.ensure_future(stop.wait())},
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not runner_task and task is not monitor_task:
                    continue
                task.result()  # a crashed loop brings the process down with its traceback
        finally:
            for task in (runner_task, monitor_task, *tasks):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            for informer in self._informers:
                await informer.stop()
            if self.service_health is not None:
                await self.service_health.close()
            if self._events is not None:
                self._events.cancel()


# --- HTTP: metrics and health ------------------------------------------------------------------------------------

async def serve_http(daemon: ProxyDaemon, sock: socket.socket, *, metrics: bool, health: bool) -> Any:
    """Serve on a listening socket the caller made (inside the node's namespace): kube-proxy's metrics
    server (/metrics, /proxyMode and a plain /healthz) and/or its health server (/healthz, /livez)."""
    from aiohttp import web

    nosniff = {"X-Content-Type-Options": "nosniff"}

    def plain(text: str) -> web.Response:
        return web.Response(body=text.encode(), headers={"Content-Type": "text/plain; charset=utf-8", **nosniff})

    def answer(result: HealthAnswer) -> web.Response:
        return web.Response(body=result.body.encode(), status=result.status,
                            headers={"Content-Type": result.content_type, **nosniff})

    async def metrics_text(_: web.Request) -> web.Response:
        return web.Response(body=daemon.metrics.render().encode(),
                            headers={"Content-Type": METRICS_CONTENT_TYPE, **nosniff})

    async def proxy_mode(_: web.Request) -> web.Response:
        return plain(daemon.settings.mode)  # kube-proxy answers with its --proxy-mode

    async def ping(_: web.Request) -> web.Response:
        return plain("ok")

    async def healthz(_: web.Request) -> web.Response:
        return answer(daemon.healthz())

    async def livez(_: web.Request) -> web.Response:
        return answer(daemon.livez())

    app = web.Application()
    if health:
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/livez", livez)
    if metrics:
        app.router.add_get("/metrics", metrics_text)
        app.router.add_get("/proxyMode", proxy_mode)
        if not health:
            app.router.add_get("/healthz", ping)  # the metrics server's own liveness, as kube-proxy's
    app_runner = web.AppRunner(app, access_log=None)
    await app_runner.setup()
    await web.SockSite(app_runner, sock).start()
    return app_runner


class ServiceHealthServer:
    """The sockets of kube-proxy's service health server: the listeners ServiceHealthTable asks for, each
    answering with the table's answer for its Service. `listen` binds inside the node's namespace."""

    def __init__(self, listen: Callable[[str, int], socket.socket], proxy_healthy: Callable[[], bool], *,
                 on_failure: Callable[[Listener, Exception], None] | None = None) -> None:
        self.table = ServiceHealthTable()
        self._listen = listen
        self._proxy_healthy = proxy_healthy
        self._on_failure = on_failure
        self._runners: dict[str, Any] = {}

    async def sync(self, snapshot: HealthCheckSnapshot) -> None:
        """After a successful sync: close and open listeners, then take the new endpoint counts."""
        changes = self.table.sync_services(snapshot.ports, snapshot.addresses)
        for listener in changes.close:
            log.info("closing health check of %s on port %d", listener.service, listener.port)
            runner = self._runners.pop(listener.service, None)
            if runner is not None:
                await runner.cleanup()
        for listener in changes.open:
            await self._open(listener)
        self.table.sync_endpoints(snapshot.local_endpoints)

    async def _open(self, listener: Listener) -> None:
        sockets: list[socket.socket] = []
        try:
            for address in listener.addresses:
                sockets.append(await asyncio.to_thread(self._bind, address, listener.port))
        except (OSError, KernelError) as exc:
            for sock in sockets:
                sock.close()
            # As kube-proxy: logged, and tried again after the next sync.
            log.error("failed to start health check of %s on port %d: %s", listener.service, listener.port, exc)
            if self._on_failure is not None:
                self._on_failure(listener, exc)
            return
        self._runners[listener.service] = await self._serve(listener.service, sockets)
        self.table.opened(listener)
        log.info("serving health check of %s on %s port %d", listener.service, ", ".join(listener.addresses),
                 listener.port)

    def _bind(self, address: str, port: int) -> socket.socket:
        try:
            return self._listen(address, port)
        except OSError:
            if address != ANY_IPV6:
                raise
            return self._listen(ANY_IPV4, port)  # no IPv6 in the namespace: every IPv4 address

    async def _serve(self, service: str, sockets: list[socket.socket]) -> Any:
        from aiohttp import web

        async def answer(_: web.Request) -> web.StreamResponse:
            result = self.table.answer(service, self._proxy_healthy())
            if result is None:
                return web.Response(status=200)
            return web.Response(body=result.body.encode(), status=result.status, headers=dict(result.headers))

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", answer)  # any path and method, as upstream's handler
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        return runner

    async def close(self) -> None:
        for runner in self._runners.values():
            await runner.cleanup()
        self._runners.clear()
        self.table = ServiceHealthTable()


def open_listeners(cfg: DaemonConfig, listen: Callable[[str, int], socket.socket],
                   ) -> list[tuple[socket.socket, bool, bool]]:
    """(socket, serves metrics, serves health) per address; one socket when both flags name the same one."""
    wanted: dict[tuple[str, int], tuple[bool, bool]] = {}
    if cfg.metrics_address:
        wanted[cfg.metrics_address] = (True, False)
    if cfg.healthz_address:
        wanted[cfg.healthz_address] = (cfg.healthz_address == cfg.metrics_address, True)
    opened: list[tuple[socket.socket, bool, bool]] = []
    try:
        for (host, port), (metrics, health) in wanted.items():
            opened.append((listen(host, port), metrics, health))
    except BaseException:
        for sock, _, _ in opened:
            sock.close()
        raise
    return opened


# --- entry points ------------------------------------------------------------------------------------------------

def _client_config(cfg: DaemonConfig) -> Any:
    from svcnet.client.config import load_kubeconfig, unix_socket_config
    from svcnet.config import DEFAULT_DATA_DIR

    if cfg.kubeconfig:
        return load_kubeconfig(cfg.kubeconfig)
    return unix_socket_config(Path(cfg.data_dir or DEFAULT_DATA_DIR) / "apiserver.sock")


def enable_nfacct(nfacct: Nfacct | None, settings: ProxySettings) -> ProxySettings:
    """kube-proxy's iptables mode with nfacct: create the counters, and count with them in the rules
    (nfacct_counters) once they all exist; without nfacct, or when one cannot be made, rules without."""
    if nfacct is None or settings.mode != kpconfig.MODE_IPTABLES:
        return settings
    try:
        for counter, _, _ in NFACCT_METRICS:
            ensure(nfacct, counter)
    except NfacctError as exc:
        log.error("cannot create nfacct counter (%s): the rules do without, the metrics stay unset", exc)
        return settings
    return replace(settings, nfacct_counters=True)


def _conntrack_liberal(netns: str, settings: ProxySettings) -> ProxySettings:
    """As kube-proxy: --conntrack-tcp-be-liberal sets nf_conntrack_tcp_be_liberal (in the node's namespace),
    and the INVALID-drop rule is left out whenever that sysctl is on, whoever set it."""
    from svcnet.kernel.sysctl import read_sysctl, write_sysctl

    key = "net.netfilter.nf_conntrack_tcp_be_liberal"
    try:
        if settings.conntrack_tcp_be_liberal:
            write_sysctl(netns, key, "1")
        liberal = read_sysctl(netns, key) == "1"
    except KernelError as exc:
        log.error("cannot set %s in %s: %s", key, netns, exc)
        return settings
    return replace(settings, conntrack_tcp_be_liberal=liberal)


def _mode_backends(cfg: DaemonConfig, iptables: IptablesBackend) -> dict[str, Any]:
    """The running mode's writer and rule removal, after removing what the other mode left (platformCleanup).

    nftables mode needs nft and a kernel kube-proxy supports (else NftError, and the proxy exits 1 as
    kube-proxy does); iptables mode removes nftables mode's tables only where nft is installed.
    """
    families = cfg.settings.families
    nft = NetnsNft(cfg.netns)
    if cfg.settings.mode == MODE_NFTABLES:
        for family in families:
            support = nft.support(nft_family_of(family),
                                  skip_kernel_version_check=bool(os.environ.get(SKIP_KERNEL_CHECK_ENV)))
            if not support.supported:
                raise NftError(f"nftables mode is not supported in {cfg.netns}: {support.reason}")
        report = cleanup_other_modes(MODE_NFTABLES, iptables=iptables, nft=None, families=families)
        parts: dict[str, Any] = {"writer": NftablesWriter(nft),
                                 "remove_rules": partial(cleanup_nftables_mode, nft, families)}
    else:
        report = cleanup_other_modes(cfg.settings.mode, iptables=None,
                                     nft=nft if shutil.which("nft") else None, families=families)
        parts = {}
    for removed in report.removed:
        log.info("removed what the other proxy mode left: %s", removed)
    for error in report.errors:
        log.warning("cleaning up the other proxy mode: %s", error)
    return parts


async def run_proxy(cfg: DaemonConfig, backend: IptablesBackend | None = None,
                    conntrack: Conntrack | None = None,
                    listen: Callable[[str, int], socket.socket] | None = None,
                    nfacct: Nfacct | None = None) -> int:
    from svcnet.client.rest import ApiClient
    from svcnet.kernel.netns import listen_tcp_in_netns, netns_path

    mode_parts: dict[str, Any] = {}
    if backend is None:
        if not Path(netns_path(cfg.netns)).exists():
            log.error("network namespace %s does not exist", cfg.netns)
            return 1
        iptables = NetnsIptables(cfg.netns)
        backend = IptablesApplier(iptables)
        conntrack = ConntrackTable(ConntrackTool(iptables.runner))
        log.info("iptables %s backend (%s) in %s; --random-fully %s", iptables.mode,
                 ".".join(map(str, iptables.version.version)), cfg.netns,
                 "supported" if iptables.random_fully else "not supported")
        if cfg.settings.mode == kpconfig.MODE_IPTABLES:
            nfacct = open_nfacct(cfg.netns)
        cfg = replace(cfg, settings=_conntrack_liberal(cfg.netns, cfg.settings))
        try:
            mode_parts = _mode_backends(cfg, backend)
        except NftError as exc:
            log.error("%s", exc)
            return 1
    settings = enable_nfacct(nfacct, cfg.settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient(_client_config(cfg), component="proxy") as client:
        listen_in_node = listen or partial(listen_tcp_in_netns, cfg.netns)
        daemon = ProxyDaemon(client, backend, settings, min_sync_period=cfg.min_sync_period,
                             sync_period=cfg.sync_period, conntrack=conntrack, listen=listen_in_node, **mode_parts)
        if nfacct is not None and settings.mode == kpconfig.MODE_IPTABLES:
            daemon.metrics.nfacct_packets = partial(read_packets, nfacct, [c for c, _, _ in NFACCT_METRICS])
        try:
            # As kube-proxy on a node: the ports are the node's, so the sockets live in its namespace.
            listeners = open_listeners(cfg, listen_in_node)
        except (OSError, KernelError) as exc:
            log.error("cannot serve metrics/health in %s: %s", cfg.netns, exc)
            return 1
        http = []
        try:
            for sock, metrics, health in listeners:
                http.append(await serve_http(daemon, sock, metrics=metrics, health=health))
                host, port = sock.getsockname()[:2]
                log.info("serving %s on %s:%d in %s", " and ".join(
                    w for w, on in (("/metrics", metrics), ("/healthz, /livez", health)) if on), host, port,
                    cfg.netns)
            await daemon.run(stop)
        finally:
            for app_runner in http:
                await app_runner.cleanup()
            for sock, _, _ in listeners:
                sock.close()
    log.info("stopped; rules stay in place")
    return 0


def run_cleanup(netns: str, backend: IptablesBackend | None = None,
                families: Sequence[str] = ("IPv4", "IPv6"), nft: Any = None) -> int:
    """kube-proxy's --cleanup: remove both modes' rules (iptables chains and jumps, nftables tables)."""
    from svcnet.kernel.netns import netns_path

    if backend is None:
        if not Path(netns_path(netns)).exists():
            print(f"svcnet proxy cleanup: network namespace {netns} does not exist; nothing to clean",
                  file=sys.stderr)
            return 0
        backend = IptablesApplier(NetnsIptables(netns))
        nft = NetnsNft(netns) if shutil.which("nft") else None
    report = cleanup_other_modes(MODE_NFTABLES, iptables=backend, nft=nft, families=families,
                                 cleanup_and_exit=True)
    for error in report.errors:
        print(f"svcnet proxy cleanup: {error}", file=sys.stderr)
    print(f"svcnet proxy cleanup: removed {len(report.removed)} chain(s) and table(s) from {netns}")
    return 0 if report.ok else 1


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("run", "cleanup", "-h", "--help") and "--cleanup" in argv:
        argv = ["cleanup", *[a for a in argv if a != "--cleanup"]]  # kube-proxy's `--cleanup`
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error
        return int(exc.code or 0)
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose)
    try:
        if args.command == "cleanup" or args.cleanup:
            return run_cleanup(args.netns)
        cfg = config_from_args(args)
    except UsageError as exc:
        print(f"svcnet proxy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigFileError as exc:
        print(f"svcnet proxy: {exc}", file=sys.stderr)
        return 1
    except IptablesError as exc:
        print(f"svcnet proxy: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(run_proxy(cfg))
    except IptablesError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
