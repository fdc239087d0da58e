"""`svcnet dns`: the cluster DNS process, one process or several SO_REUSEPORT workers.

    svcnet dns --listen ADDR:PORT [--metrics ADDR:PORT] [--kubeconfig K | --data-dir D]
               [--from FILE...] [--zone cluster.local ...] [--upstream IP[:PORT] ... | --upstream none]
               [--ttl 5] [--pods insecure|verified|disabled] [--workers N] [--pod-ip IP]
               [--cache-ttl 30] [--bufsize 1232] [--log-queries]
    svcnet dns --corefile FILE [--listen ADDR] [--kubeconfig K | --data-dir D | --from FILE...]
               [--workers N] [--pod-ip IP]
    svcnet dns --corefile-configmap kube-system/coredns ...   (the Corefile from a ConfigMap)

With --corefile the Corefile configures everything the flags would (zones, upstreams,
TTLs, cache, ports, the metrics/health/ready addresses); --listen gives only the
address to bind (CoreDNS binds every address). See svcnet.dns.reload.

Workers: with N > 1 the parent forks N workers that each bind the same UDP and
TCP port with SO_REUSEPORT (the kernel spreads clients across them). Each worker
runs its own informers and zone, exactly as several CoreDNS replicas do: they
converge independently within a watch event's latency; with --from they load
the same files and are identical. The parent serves /metrics (the workers'
counters summed from snapshots they write every second), /health and /ready
(every worker synced), and stops every worker when one dies or on SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from svcnet.client.config import (
    SERVICE_ACCOUNT_DIR,
    ClientConfig,
    in_cluster_config,
    load_kubeconfig,
    unix_socket_config,
)
from svcnet.config import DEFAULT_DATA_DIR
from svcnet.dns import names
from svcnet.dns.answers import Settings
from svcnet.dns.forward import Forwarder, parse_resolv_conf, parse_upstream, split_host_port
from svcnet.dns.metrics import Metrics, read_snapshots, render
from svcnet.dns.plugins import CorefileConfig
from svcnet.dns.reload import CorefileServer, CorefileSource, FileCorefile, configmap_source, load_config
from svcnet.dns.resolver import Resolver
from svcnet.dns.server import DnsServer
from svcnet.dns.wire import BUFSIZE_DEFAULT, BUFSIZE_MAX, BUFSIZE_MIN
from svcnet.dns.zone import ZoneData, zone_from_objects

log = logging.getLogger("svcnet.dns")
SNAPSHOT_INTERVAL = 1.0


@dataclass(frozen=True)
class DnsConfig:
    host: str
    port: int
    metrics: tuple[str, int] | None
    settings: Settings
    upstreams: tuple[tuple[str, int], ...]
    manifests: tuple[str, ...]
    kubeconfig: str | None
    data_dir: str | None
    workers: int
    cache_ttl: int
    log_queries: bool
    bufsize: int = BUFSIZE_DEFAULT
    corefile: str | None = None
    corefile_config: CorefileConfig | None = None
    corefile_text: str = ""
    corefile_configmap: str | None = None


def _listen_address(text: str, default_port: int) -> tuple[str, int]:
    """ADDR:PORT, [ADDR]:PORT or ADDR; ":PORT" listens on every IPv4 address."""
    host, port = split_host_port(text, default_port)
    return host or "0.0.0.0", port


def bufsize(text: str) -> int:
    """--bufsize: an integer from 512 to 4096, as CoreDNS's bufsize plugin accepts (setup.go parse)."""
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not BUFSIZE_MIN <= size <= BUFSIZE_MAX:
        raise argparse.ArgumentTypeError(f"{size} is outside {BUFSIZE_MIN}-{BUFSIZE_MAX} (RFC 6891)")
    return size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="svcnet dns", description="Cluster DNS, answering as CoreDNS's "
                                "kubernetes plugin does, forwarding the rest upstream.")
    p.add_argument("--listen", default="0.0.0.0:53", help="ADDR:PORT for UDP and TCP (default %(default)s)")
    p.add_argument("--metrics", default=None, help="ADDR:PORT for /metrics, /health, /ready")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", help="watch the API server this kubeconfig names")
    source.add_argument("--data-dir", help="watch svcnet's API server through DATA_DIR/apiserver.sock")
    p.add_argument("--from", dest="manifests", nargs="+", default=[], metavar="FILE",
                   help="serve the objects in these manifests instead of watching an API server")
    p.add_argument("--zone", dest="zones", action="append", default=None,
                   help="cluster zone (repeatable; default cluster.local)")
    p.add_argument("--upstream", action="append", default=None,
                   help="upstream resolver IP[:PORT] (repeatable; default: /etc/resolv.conf; 'none' to "
                        "answer REFUSED outside the zones)")
    p.add_argument("--ttl", type=int, default=5, help="TTL of cluster answers (default %(default)s)")
    p.add_argument("--pods", choices=("insecure", "verified", "disabled"), default="insecure",
                   help="pod records a-b-c-d.<ns>.pod.<zone> (default %(default)s, as kubeadm's Corefile)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: one per core)")
    p.add_argument("--pod-ip", action="append", default=None,
                   help="this server's own address(es): decide the apex NS answer (default: $POD_IP, "
                        "the listen address, or the source address towards the Service network)")
    p.add_argument("--cache-ttl", type=int, default=30, help="cap on forwarded answers' cache TTL")
    p.add_argument("--bufsize", type=bufsize, default=BUFSIZE_DEFAULT,
                   help="largest UDP reply in bytes: a client's bigger EDNS size is clamped to it, bigger "
                        "answers are truncated with TC set (CoreDNS's bufsize plugin; %(default)s, 512-4096)")
    p.add_argument("--log-queries", action="store_true", help="log every query (CoreDNS's log plugin)")
    corefile = p.add_mutually_exclusive_group()
    corefile.add_argument("--corefile", help="configure from this CoreDNS Corefile (re-read as its reload "
                                             "plugin says)")
    corefile.add_argument("--corefile-configmap", metavar="NS/NAME[:KEY]",
                          help="configure from a ConfigMap's Corefile (e.g. kube-system/coredns), read from the "
                               "API server the other flags name")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _local_ips(args: argparse.Namespace, host: str) -> tuple[str, ...]:
    if args.pod_ip:
        return tuple(args.pod_ip)
    if os.environ.get("POD_IP"):
        return tuple(ip.strip() for ip in os.environ["POD_IP"].split(",") if ip.strip())
    if not ipaddress.ip_address(host).is_unspecified:
        return (host,)
    # The address the kernel would pick towards the Service network: inside a pod, the pod's IP.
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.96.0.1", 53))
        return (probe.getsockname()[0],)
    return ("127.0.0.1",)


def config_from_args(args: argparse.Namespace) -> DnsConfig:
    host, port = _listen_address(args.listen, 53)
    metrics = _listen_address(args.metrics, 9153) if args.metrics else None
    zones = tuple(names.normalize(z) for z in (args.zones or ["cluster.local"]))
    if args.upstream and [u.lower() for u in args.upstream] == ["none"]:
        upstreams: tuple[tuple[str, int], ...] = ()
    elif args.upstream:
        upstreams = tuple(parse_upstream(u) for u in args.upstream)
    else:
        try:
            upstreams = tuple((ip, 53) for ip in parse_resolv_conf(Path("/etc/resolv.conf").read_text()))
        except OSError:
            upstreams = ()
    workers = args.workers or os.cpu_count() or 1
    if port == 0:
        workers = 1  # each worker would get a port of its own
    settings = Settings(zones=zones, ttl=args.ttl, pods=args.pods, local_ips=_local_ips(args, host))
    corefile_config, corefile_text = None, ""
    if args.corefile or args.corefile_configmap:
        source = _corefile_source(args.corefile, args.corefile_configmap, args.kubeconfig, args.data_dir)
        corefile_text = asyncio.run(_first_read(source))
        corefile_config = load_config(corefile_text, os.environ)
        metrics = None
        if port == 0 or any(p == 0 for p in corefile_config.ports):
            workers = 1
    return DnsConfig(host=host, port=port, metrics=metrics, settings=settings, upstreams=upstreams,
                     manifests=tuple(args.manifests), kubeconfig=args.kubeconfig, data_dir=args.data_dir,
                     workers=max(1, workers), cache_ttl=args.cache_ttl, log_queries=args.log_queries,
                     bufsize=args.bufsize, corefile=args.corefile, corefile_config=corefile_config,
                     corefile_text=corefile_text, corefile_configmap=args.corefile_configmap)


def _corefile_source(path: str | None, configmap: str | None, kubeconfig: str | None,
                     data_dir: str | None) -> CorefileSource:
    if configmap:
        return configmap_source(configmap, client_config(kubeconfig, data_dir))
    return FileCorefile(path or "")


async def _first_read(source: CorefileSource) -> str:
    """The Corefile to start with; a ConfigMap that cannot be read is a start-up error, as a missing file."""
    try:
        return await source.read()
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - the API's errors: not found, forbidden, unreachable
        raise ValueError(f"cannot read the Corefile from {source.name}: {exc}") from exc


def client_config(kubeconfig: str | None, data_dir: str | None, environ: Mapping[str, str] | None = None,
                  account_dir: Path = SERVICE_ACCOUNT_DIR) -> ClientConfig:
    """--kubeconfig; else --data-dir's socket; else, in a pod with a service-account token mounted, the
    in-cluster config (as CoreDNS's kubernetes plugin: KUBERNETES_SERVICE_HOST/PORT, the token and
    ca.crt); else the default data dir's socket."""
    env = os.environ if environ is None else environ
    if kubeconfig:
        return load_kubeconfig(kubeconfig)
    in_cluster = (not data_dir and env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT")
                  and (account_dir / "token").exists())
    if in_cluster:
        return in_cluster_config(env, account_dir)
    return unix_socket_config(Path(data_dir or DEFAULT_DATA_DIR) / "apiserver.sock")


# ------------------------------------------------------------------ HTTP side

async def start_http(host: str, port: int, snapshots, ready, paths: tuple[str, ...] = ("/metrics", "/health",
                                                                                      "/ready")) -> object:
    from aiohttp import web

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(text=render(snapshots()), content_type="text/plain", charset="utf-8")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def readiness(_: web.Request) -> web.Response:
        return web.Response(text="OK") if ready() else web.Response(status=503, text="not synced")

    app = web.Application()
    handlers = {"/metrics": metrics_handler, "/health": health, "/ready": readiness}
    for path in paths:
        app.router.add_get(path, handlers[path])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or None, port).start()
    return runner


def http_sites(cfg: DnsConfig) -> list[tuple[str, int, tuple[str, ...]]]:
    """(host, port, paths) to serve: --metrics, or the Corefile's prometheus, health and ready plugins
    (each on its own address; plugins naming the same address share it)."""
    if cfg.corefile_config is None:
        return [(cfg.metrics[0], cfg.metrics[1], ("/metrics", "/health", "/ready"))] if cfg.metrics else []
    c = cfg.corefile_config
    wanted = [(c.prometheus, "/metrics"), (c.health[0] if c.health else None, "/health"), (c.ready, "/ready")]
    sites: dict[tuple[str, int], tuple[str, ...]] = {}
    for address, path in wanted:
        if address is not None:
            host, port = split_host_port(address, 0)
            sites[(host, port)] = sites.get((host, port), ()) + (path,)
    return [(host, port, paths) for (host, port), paths in sites.items()]


async def start_sites(cfg: DnsConfig, snapshots, ready) -> list[object]:
    return [await start_http(host, port, snapshots, ready, paths) for host, port, paths in http_sites(cfg)]


# --------------------------------------------------------------------- worker

async def run_worker(cfg: DnsConfig, index: int, metrics_dir: Path | None) -> int:
    metrics = Metrics(server=f"dns://{cfg.host}:{cfg.port}")
    if cfg.manifests:
        from svcnet.dns.source import load_manifests
        data = zone_from_objects(load_manifests(cfg.manifests))
    else:
        data = ZoneData()
    try:
        serving = await _start_serving(cfg, data, metrics)
    except OSError as exc:
        print(f"svcnet dns: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    source = None
    tasks: list[asyncio.Task] = []
    if not cfg.manifests:
        source = await _watch_cluster(cfg, data, serving)
        tasks.append(asyncio.create_task(source.wait_synced()))
    runners: list[object] = []
    if metrics_dir is None:
        runners = await start_sites(cfg, lambda: [metrics.snapshot()], lambda: data.synced)
    if metrics_dir is not None:
        tasks.append(asyncio.create_task(_write_snapshots(metrics, metrics_dir / f"worker-{index}.json")))
    # Everything loaded so far lives as long as the process: keep the collector from rescanning it
    # (full collections over a big zone stall the hot path for milliseconds).
    gc.collect()
    gc.freeze()
    if index == 0:
        print(f"svcnet dns: listening on {cfg.host}:{_ports(serving)} (udp, tcp), "
              f"{cfg.workers} worker(s)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    lameduck = cfg.corefile_config.health[1] if cfg.corefile_config and cfg.corefile_config.health else 0.0
    if lameduck:
        log.info("health: going into lameduck mode for %ss", lameduck)
        await asyncio.sleep(lameduck)  # health's lameduck: keep answering while clients move away
    for task in tasks:
        task.cancel()
    if source is not None:
        await source.stop()
    await serving.stop()
    for runner in runners:
        await runner.cleanup()  # type: ignore[attr-defined]
    return 0


class _FlagServing:
    """The flags' configuration: one Resolver, one forwarder, one port."""

    def __init__(self, cfg: DnsConfig, data: ZoneData, metrics: Metrics) -> None:
        self.forwarder = None
        if cfg.upstreams:
            self.forwarder = Forwarder(cfg.upstreams, metrics, own_addresses=[(cfg.host, cfg.port)],
                                       cache_max_ttl=cfg.cache_ttl)
        self.resolver = Resolver(cfg.settings, data, self.forwarder, metrics, log_queries=cfg.log_queries,
                                 bufsize=cfg.bufsize)
        self.resolver.zone_changed(None)
        self.server = DnsServer(self.resolver, cfg.host, cfg.port, reuse_port=cfg.workers > 1)
        self.metrics = metrics

    async def start(self) -> None:
        await self.server.start()
        if self.forwarder is not None:
            await self.forwarder.start()

    def zone_changed(self, tags: set[str] | None = None) -> None:
        self.resolver.zone_changed(tags)

    async def stop(self) -> None:
        if self.forwarder is not None:
            await self.forwarder.stop()
        await self.server.stop()


async def _start_serving(cfg: DnsConfig, data: ZoneData, metrics: Metrics) -> _FlagServing | CorefileServer:
    if cfg.corefile_config is None:
        serving: _FlagServing | CorefileServer = _FlagServing(cfg, data, metrics)
    else:
        source = _corefile_source(cfg.corefile, cfg.corefile_configmap, cfg.kubeconfig, cfg.data_dir)
        serving = CorefileServer(source, cfg.corefile_text, cfg.corefile_config, data,
                                 metrics, host=cfg.host, local_ips=cfg.settings.local_ips, env=os.environ,
                                 reuse_port=cfg.workers > 1)
    await serving.start()
    return serving


def _ports(serving: _FlagServing | CorefileServer) -> str:
    if isinstance(serving, _FlagServing):
        return str(serving.server.port)
    return ",".join(str(server.port) for server in serving.servers.values())


async def _watch_cluster(cfg: DnsConfig, data: ZoneData, serving: _FlagServing | CorefileServer):
    from svcnet.dns.source import ApiSource
    # A Corefile may switch to `pods verified` on reload: pods are watched whenever one is served.
    watch_pods = cfg.corefile_config is not None or cfg.settings.pods == "verified"
    source = ApiSource(client_config(cfg.kubeconfig, cfg.data_dir), data, serving,  # type: ignore[arg-type]
                       watch_pods=watch_pods)
    await source.start()
    return source


async def _write_snapshots(metrics: Metrics, path: Path) -> None:
    while True:
        with contextlib.suppress(OSError):
            metrics.write_snapshot(path)
        await asyncio.sleep(SNAPSHOT_INTERVAL)


# --------------------------------------------------------------------- parent

def _run_child(cfg: DnsConfig, index: int, metrics_dir: Path) -> None:
    code = 1
    try:
        code = asyncio.run(run_worker(cfg, index, metrics_dir))
    except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
        logging.getLogger("svcnet.dns").exception("worker %d failed", index)
    finally:
        os._exit(code)


async def run_parent(cfg: DnsConfig, pids: list[int], metrics_dir: Path) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> bool:
        snaps = read_snapshots(metrics_dir)
        return len(snaps) == len(pids) and all(s.get("ready") for s in snaps)

    runners = await start_sites(cfg, lambda: read_snapshots(metrics_dir), ready)
    exit_code = 0
    alive = set(pids)
    while alive and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
        for pid in list(alive):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                alive.discard(pid)
                log.error("worker %d exited (%s); stopping", pid, status)
                exit_code = 1
                stop.set()
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in alive:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    for runner in runners:
        await runner.cleanup()  # type: ignore[attr-defined]
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
    except OSError as exc:
        print(f"svcnet dns: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:  # CorefileError among them: CoreDNS's message, naming the line
        print(f"svcnet dns: {exc}", file=sys.stderr)
        return 2
    if cfg.workers == 1:
        return asyncio.run(run_worker(cfg, 0, None))
    metrics_dir = Path(tempfile.mkdtemp(prefix="svcnet-dns-metrics-"))
    pids = []
    try:
        for index in range(cfg.workers):
            pid = os.fork()
            if pid == 0:
                _run_child(cfg, index, metrics_dir)
            pids.append(pid)
        return asyncio.run(run_parent(cfg, pids, metrics_dir))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
