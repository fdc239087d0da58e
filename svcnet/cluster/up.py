"""`svcnet up`, `svcnet apiserver` and `svcnet down`: the one list of what `up` starts, and the process around it.

`components` is the whole of `up`, in order; `run` starts them in this process
under the data dir's pid lock and stops them in reverse on a signal;
`start_detached` runs `up` in the background and relays its progress until the
cluster is ready; `down` signals a running `up` and sweeps what a dead one left.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from svcnet.apiserver.daemon import RunningApiServer, external_address
from svcnet.client.config import unix_socket_config
from svcnet.client.rest import ApiClient
from svcnet.cluster import identities, lifecycle
from svcnet.cluster.addons import ClusterDnsAddon
from svcnet.cluster.apiservers import (
    ApiServerPeers,
    BalancedClients,
    check_apiservers,
    peer_summary,
    socket_ready,
    stop_leftover_peers,
)
from svcnet.cluster.etcd import LOCAL_ETCD, EtcdCluster, stop_leftover_etcd
from svcnet.cluster.spec import ClusterSpec, cluster_id_for, load_cluster_spec
from svcnet.cluster.supervisor import AgentSupervisor
from svcnet.cluster.topology import ClientPlan, lb_pool_for
from svcnet.config import ApiServerConfig
from svcnet.controllers import CONTROLLERS as controller_table
from svcnet.controllers import daemon as controllers
from svcnet.kernel import process
from svcnet.kernel.netns import listen_tcp_in_netns, netns_path, socket_in_netns

DETACHED_LOG = "svcnet.log"


def controller_names() -> list[str]:
    return list(controller_table)


class Stage:
    """A component that says what it is starting, for `svcnet up`'s progress."""

    def __init__(self, message: str, component: process.Component) -> None:
        self.message = message
        self.component = component

    async def start(self) -> None:
        print(f"svcnet: {self.message}", flush=True)
        await self.component.start()

    async def stop(self) -> None:
        await self.component.stop()


def next_steps(cfg: ApiServerConfig, nodes: int = 0, apiservers: int = 1) -> str:
    if apiservers > 1:
        first, rest = next_steps(cfg, nodes).split("\n", 1)
        return f"{first}\n  {peer_summary(cfg, apiservers)}\n{rest}"
    if not nodes:
        return (f"svcnet is up: API server at {cfg.url}\n"
                f"  export KUBECONFIG={cfg.kubeconfig_path}\n"
                f"  kubectl get namespaces\n"
                f"Stop it with Ctrl-C or: svcnet down --data-dir {cfg.data_dir}")
    return (f"svcnet is up: {nodes} node(s), API server at {cfg.url}\n"
            f"  export KUBECONFIG={cfg.kubeconfig_path}\n"
            f"  kubectl get nodes -o wide\n"
            f"  kubectl apply -f examples/hostnames.yaml && kubectl get pods -o wide\n"
            f"  svcnet exec --data-dir {cfg.data_dir} POD -- hostname\n"
            f"Stop it with Ctrl-C or: svcnet down --data-dir {cfg.data_dir}")


def components(cfg: ApiServerConfig, *, with_controllers: bool = False, nodes: int = 0,
               resolv_conf: str = "", proxy_mode: str = "iptables",
               zones: tuple[str, ...] = (), lb_pool: str = "", hosts: int = 1,
               etcd_members: int = 1, apiservers: int = 1, netns: str = "") -> list[process.Component]:
    """Everything `svcnet up` starts, in the order it starts them (and stops them backwards).

    lb_pool: the LoadBalancer addresses (default: the top /28 of the node network); the
    controller manager gets it as --lb-pool, and each agent runs the speaker.
    apiservers: more than one runs the others as processes over the same etcd (apiservers.py).
    netns (`svcnet apiserver --netns`, such a further server): also listen on the advertised address there."""
    socket_config = unix_socket_config(cfg.socket_path)

    def api() -> Any:
        return ApiClient(socket_config, component="svcnet-up")

    spec = ClusterSpec(cluster_id_for(cfg.data_dir), nodes,
                       resolv_conf=str(Path(resolv_conf).resolve()) if resolv_conf else None,
                       proxy_mode=proxy_mode, zones=zones, hosts=hosts) if nodes else None
    if spec is not None and cfg.storage_dsn == LOCAL_ETCD:  # each member in a namespace on the LAN
        spec = replace(spec, etcd_members=etcd_members)
    if spec is not None and apiservers > 1:  # API servers 2..N too
        spec = replace(spec, apiservers=apiservers)
    if spec is not None:
        spec = replace(spec, lb_pool=lb_pool_for(spec.plan(), lb_pool or None).cidr)
    cluster_listener = None
    kubelet_socket = None
    if netns and cfg.advertise_address:  # as below, in a namespace another process made
        cluster_listener = partial(listen_tcp_in_netns, netns, cfg.advertise_address, cfg.endpoint_port)
        kubelet_socket = partial(_socket_in, netns_path(netns))
    control_plane = spec.plan().control_plane if spec else None
    if control_plane is not None:
        # As kind's control-plane node: the API also listens on the cluster's LAN, from a socket made in
        # the control-plane namespace, and that address is default/kubernetes's endpoint.
        cfg = replace(cfg, advertise_address=cfg.advertise_address or control_plane.ipv4)
        cluster_listener = partial(listen_tcp_in_netns, control_plane.namespace, control_plane.ipv4, cfg.port)
        # Kubelets listen on the nodes' LAN addresses: the API server dials them from that namespace too.
        kubelet_socket = partial(_socket_in, netns_path(control_plane.namespace))
    stages: list[process.Component] = []
    if cfg.storage_dsn == LOCAL_ETCD:  # `--storage etcd`: run etcd for the user, and store there
        etcd = EtcdCluster(cfg.data_dir, etcd_members, spec.plan().etcd if spec else ())
        cfg = replace(cfg, storage_dsn=etcd.dsn)
        stages.append(Stage(f"starting etcd ({etcd_members} member{'s' if etcd_members > 1 else ''}) at "
                            + ", ".join(f"unix://{spec.client_socket}" for spec in etcd.specs), etcd))
    stages.append(Stage(f"starting the API server at {cfg.url}", RunningApiServer(
        cfg, kubelet_socket=kubelet_socket, cluster_listener=cluster_listener)))
    node_names = [n.name for n in spec.plan().nodes] if spec else []
    stages += component_stages(cfg, api, node_names, with_controllers, lb_pool=spec.lb_pool if spec else None,
                               overlay=bool(spec and spec.hosts > 1),
                               peers=_peer_stages(cfg, api, apiservers, node_names, spec.lb_pool if spec else None,
                                                  spec.plan().apiservers if spec else ()))
    if spec is None:
        return stages
    return [lifecycle.ClusterNetwork(cfg.data_dir, spec), *stages,
            AgentSupervisor(cfg.data_dir, spec),
            lifecycle.NodesReadyGate(api, spec, cfg.data_dir),
            ClusterDnsAddon(api, progress=lambda line: print(line, flush=True)),
            lifecycle.ReadyMarker(cfg.data_dir)]


def manager_controller_names(lb_pool: str | None) -> list[str]:
    """What the controller manager runs: every controller but the scheduler (and service-lb without a pool)."""
    return [name for name in controller_names() if name != "scheduler" and (lb_pool or name != "service-lb")]


def _peer_stages(cfg: ApiServerConfig, api: Callable[[], Any], apiservers: int, nodes: list[str],
                 lb_pool: str | None, on_lan: tuple[ClientPlan, ...] = ()) -> list[process.Component]:
    """API servers 2..N with their controller managers and schedulers, then the load balancer the
    clients use (none with one API server). on_lan: their namespaces on the cluster's LAN, if any."""
    if apiservers <= 1:
        return []
    peers = ApiServerPeers(cfg.data_dir, apiservers, cfg.port, cfg.storage_dsn, manager_controller_names(lb_pool),
                           api, lb_pool=lb_pool, on_lan=on_lan,
                           control_plane_endpoint=external_address(cfg))
    # The other servers first: clients stay off the server that shares `up`'s process while they answer.
    servers = [*peers.servers(), identities.component_server_url(cfg).split("://", 1)[1]]
    return [Stage(f"starting API servers 2-{apiservers} over the same etcd", peers),
            BalancedClients(cfg.data_dir, cfg.port, servers, nodes, cfg.kubeconfig_path)]


def component_stages(cfg: ApiServerConfig, api: Callable[[], Any], nodes: list[str],
                     with_controllers: bool, lb_pool: str | None = None,
                     overlay: bool = False, peers: list[process.Component] | None = None) -> list[process.Component]:
    """Each component's credentials, then the controller manager and the scheduler, each with its own
    identity (kubeadm's controller-manager.conf and scheduler.conf); the agents and proxies started
    later read theirs (kubelet-<node>.conf, kube-proxy.conf). peers: the other API servers' stages,
    which need the credentials and come before this server's controllers (see ApiServerPeers)."""
    if not nodes and not with_controllers:
        return []
    manager_names = manager_controller_names(lb_pool) if with_controllers else []
    stages: list[process.Component] = [identities.ComponentCredentials(
        cfg.data_dir, identities.component_server_url(cfg), nodes, manager_names, api,
        lb_speaker=bool(lb_pool and nodes), overlay=overlay), *(peers or [])]
    if with_controllers:
        files = replace(controllers.ControllerFiles.in_data_dir(cfg.data_dir), lb_pool=lb_pool)
        stages.append(Stage("starting the controllers", identities.WithKubeconfig(
            identities.kubeconfig_path(cfg.data_dir, "controller-manager"),
            lambda config: _one(controllers.elected_components(config, manager_names, files)))))
        stages.append(Stage("starting the scheduler", identities.WithKubeconfig(
            identities.kubeconfig_path(cfg.data_dir, "scheduler"),
            lambda config: _one(controllers.elected_components(config, ["scheduler"])))))
    return stages


def _one(components: list[process.Component]) -> process.Component:
    """The controller manager or the scheduler, each elected on its own Lease as upstream's (one
    instance here, so it wins at once; a second `svcnet controllers` against this API waits)."""
    (component,) = components
    return component


def _socket_in(netns: str, family: int) -> socket.socket:
    return socket_in_netns(netns, family, socket.SOCK_STREAM)


def run(cfg: ApiServerConfig, *, with_controllers: bool = False, nodes: int = 0, resolv_conf: str = "",
        proxy_mode: str = "iptables", zones: tuple[str, ...] = (), lb_pool: str = "", hosts: int = 1,
        etcd_members: int = 1, apiservers: int = 1, netns: str = "") -> int:
    """Run the components in this process, holding the data dir's pid lock, until a signal."""
    lock = process.PidLock(cfg.pid_path)
    try:
        lock.acquire()
    except process.AlreadyRunning as exc:
        print(f"svcnet: {exc}; stop it first with: svcnet down --data-dir {cfg.data_dir}",
              file=sys.stderr)
        return 1
    try:
        stages = components(cfg, with_controllers=with_controllers, nodes=nodes, resolv_conf=resolv_conf,
                            proxy_mode=proxy_mode, zones=zones, lb_pool=lb_pool, hosts=hosts,
                            etcd_members=etcd_members, apiservers=apiservers, netns=netns)
        return asyncio.run(process.run(stages, next_steps(cfg, nodes, apiservers)))
    except (OSError, ValueError) as exc:  # ValueError: a local etcd of another size under the data dir
        print(f"svcnet: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()


def up(cfg: ApiServerConfig, *, nodes: int, resolv_conf: str, detach: bool, timeout: float, storage: str,
       setup_logging: Callable[[], None], proxy_mode: str = "iptables", zones: tuple[str, ...] = (),
       lb_pool: str = "", hosts: int = 1, etcd_members: int = 1, apiservers: int = 1) -> int:
    """`svcnet up`: refuse what would fail part-way, then run in the foreground or start detached."""
    problem = check_apiservers(apiservers, storage)
    if problem:
        print(f"svcnet: {problem}", file=sys.stderr)
        return 2
    if hosts != 1 and not nodes:
        print("svcnet: --hosts needs nodes (--nodes 0 runs no node network)", file=sys.stderr)
        return 2
    if nodes:
        try:  # a usage error, before anything starts (the addresses do not depend on the cluster id)
            etcd_in_namespaces = etcd_members if storage == LOCAL_ETCD else 0
            lb_pool_for(ClusterSpec("check", nodes, hosts=hosts, etcd_members=etcd_in_namespaces,
                                    apiservers=apiservers).plan(),
                        lb_pool or None)
        except ValueError as exc:
            print(f"svcnet: {exc}", file=sys.stderr)
            return 2
    if os.geteuid() != 0:
        print("svcnet: `svcnet up` must run as root (it creates network namespaces); "
              "run it with sudo", file=sys.stderr)
        return 1
    if process.is_locked(cfg.pid_path):
        pid = process.read_pid(cfg.pid_path)
        print(f"svcnet: a cluster is already running from {cfg.data_dir} (pid {pid}); "
              f"use it, or stop it with: svcnet down --data-dir {cfg.data_dir}", file=sys.stderr)
        return 1
    if nodes:
        problems = lifecycle.check_prerequisites(cfg.bind_address, cfg.port, resolv_conf=resolv_conf)
        if problems:
            for problem in problems:
                print(f"svcnet: {problem}", file=sys.stderr)
            return 1
    if not detach:
        setup_logging()
        return run(cfg, with_controllers=True, nodes=nodes, resolv_conf=resolv_conf, proxy_mode=proxy_mode,
                   zones=zones, lb_pool=lb_pool, hosts=hosts, etcd_members=etcd_members, apiservers=apiservers)
    return start_detached(cfg, nodes=nodes, resolv_conf=resolv_conf, timeout=timeout, storage=storage,
                          proxy_mode=proxy_mode, zones=zones, lb_pool=lb_pool, hosts=hosts,
                          etcd_members=etcd_members, apiservers=apiservers)


def start_detached(cfg: ApiServerConfig, *, nodes: int, resolv_conf: str, timeout: float, storage: str,
                   proxy_mode: str = "iptables", zones: tuple[str, ...] = (), lb_pool: str = "",
                   hosts: int = 1, etcd_members: int = 1, apiservers: int = 1) -> int:
    """Start `svcnet up` in the background; relay its progress and return once it is ready."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = cfg.data_dir / DETACHED_LOG
    argv = [sys.executable, "-m", "svcnet", "up", "--data-dir", str(cfg.data_dir),
            "--bind-address", cfg.bind_address, "--port", str(cfg.port), "--nodes", str(nodes),
            "--proxy-mode", proxy_mode]
    if resolv_conf:
        argv += ["--resolv-conf", resolv_conf]
    if zones:
        argv += ["--zones", ",".join(zones)]
    if lb_pool:
        argv += ["--lb-pool", lb_pool]
    if hosts != 1:
        argv += ["--hosts", str(hosts)]
    if cfg.insecure:
        argv.append("--insecure")
    if storage:
        argv += ["--storage", storage]
    if etcd_members != 1:
        argv += ["--etcd-members", str(etcd_members)]
    if apiservers != 1:
        argv += ["--apiservers", str(apiservers)]
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                 start_new_session=True)
    deadline = time.monotonic() + timeout
    print(f"starting svcnet (pid {child.pid}, log {log_path}) ...", flush=True)
    offset = log_path.stat().st_size
    ready_file = cfg.data_dir / "cluster.ready"
    while time.monotonic() < deadline:
        offset = _relay_progress(log_path, offset)
        if child.poll() is not None:
            print(f"svcnet: failed to start (exit {child.returncode}); see {log_path}", file=sys.stderr)
            return 1
        if _ready(cfg) and (not nodes or ready_file.exists()):
            _relay_progress(log_path, offset)
            print(next_steps(cfg, nodes, apiservers))
            return 0
        time.sleep(0.1)
    print(f"svcnet: not ready after {timeout}s; see {log_path}", file=sys.stderr)
    return 1


def _relay_progress(log_path: Path, offset: int) -> int:
    """Print the detached process's progress lines ("svcnet: ...") written since offset."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    complete = data[:data.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if line.startswith("svcnet: "):
            print(line, flush=True)
    return offset + len(complete)


def _ready(cfg: ApiServerConfig) -> bool:
    return cfg.kubeconfig_path.exists() and socket_ready(cfg.socket_path)


def _sweep(data_dir: Path) -> None:
    """What a dead `up` left behind (its other API servers, etcd, agents, pods, namespaces, leases): `down`
    removes it too."""
    for pid in stop_leftover_peers(data_dir):
        print(f"svcnet: stopped an API server or controller process a previous run left (pid {pid})")
    for pid in stop_leftover_etcd(data_dir):
        print(f"svcnet: stopped an etcd member a previous run left (pid {pid})")
    if os.geteuid() != 0 or load_cluster_spec(data_dir) is None:
        return
    asyncio.run(lifecycle.teardown(data_dir))


def down(data_dir: Path, timeout: float) -> int:
    """`svcnet down`: signal the `up` that holds the data dir's pid lock, wait for it, sweep."""
    pid_path = data_dir / "svcnet.pid"
    if not process.is_locked(pid_path):
        print(f"svcnet: nothing is running from {data_dir}")
        _sweep(data_dir)
        return 0
    pid = process.read_pid(pid_path)
    if pid is None or not _is_svcnet_process(pid):
        print(f"svcnet: pid file {pid_path} does not name a svcnet process; not signalling",
              file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The lock goes at the end of `up`'s shutdown; the process itself a moment later.
        if not process.is_locked(pid_path) and not _is_svcnet_process(pid):
            _sweep(data_dir)
            print("svcnet: stopped")
            return 0
        time.sleep(0.1)
    print(f"svcnet: pid {pid} did not stop within {timeout}s", file=sys.stderr)
    return 1


def _is_svcnet_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"svcnet" in part for part in cmdline)
