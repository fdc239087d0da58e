"""svcnet: the one entry point. Every role is a subcommand."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from svcnet.cluster import supervisor
from svcnet.config import DEFAULT_DATA_DIR, ApiServerConfig


def _api_config(args: argparse.Namespace) -> ApiServerConfig:
    return ApiServerConfig(
        data_dir=Path(args.data_dir),
        bind_address=args.bind_address,
        port=args.port,
        insecure=args.insecure,
        storage_dsn=args.storage or "",
    )


def _add_api_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="where state, certificates and the kubeconfig live (default %(default)s)")
    p.add_argument("--bind-address", default="127.0.0.1", help="API server address (default %(default)s)")
    p.add_argument("--port", type=_port, default=6443, help="API server port (default %(default)s)")
    p.add_argument("--storage", default="",
                   help="storage DSN: sqlite:///PATH (default: DATA_DIR/state.db) or memory://")
    p.add_argument("--insecure", action="store_true",
                   help="serve plain HTTP with no authentication (never on a shared machine)")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _next_steps(cfg: ApiServerConfig, nodes: int = 0) -> str:
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


class _Stage:
    """A component that says what it is starting, for `svcnet up`'s progress."""

    def __init__(self, message: str, component) -> None:
        self.message = message
        self.component = component

    async def start(self) -> None:
        print(f"svcnet: {self.message}", flush=True)
        await self.component.start()

    async def stop(self) -> None:
        await self.component.stop()


def _controller_manager(client_config, names: list[str] | None):
    from svcnet import controllers
    from svcnet.client.rest import ApiClient
    from svcnet.controllers.base import ControllerManager

    classes = controllers.load(names)
    return ControllerManager(lambda: ApiClient(client_config, component="controller-manager"), classes)


def _run_foreground(cfg: ApiServerConfig, print_ready: bool, with_controllers: bool = False,
                    nodes: int = 0, resolv_conf: str = "") -> int:
    from svcnet.apiserver.server import RunningApiServer
    from svcnet.client.config import unix_socket_config

    lock = supervisor.PidLock(cfg.pid_path)
    try:
        lock.acquire()
    except supervisor.AlreadyRunning as exc:
        print(f"svcnet: {exc}; stop it first with: svcnet down --data-dir {cfg.data_dir}",
              file=sys.stderr)
        return 1
    try:
        components: list = [_Stage(f"starting the API server at {cfg.url}", RunningApiServer(cfg))]
        if with_controllers:
            components.append(_Stage("starting the controllers",
                                     _controller_manager(unix_socket_config(cfg.socket_path), None)))
        if nodes:
            from svcnet.client.rest import ApiClient
            from svcnet.cluster import lifecycle as cluster

            spec = cluster.ClusterSpec(cluster.cluster_id_for(cfg.data_dir), nodes,
                                       resolv_conf=str(Path(resolv_conf).resolve()) if resolv_conf else None)
            components.insert(0, cluster.ClusterNetwork(cfg.data_dir, spec))
            components.append(cluster.AgentSupervisor(cfg.data_dir, spec))
            components.append(cluster.NodesReadyGate(
                lambda: ApiClient(unix_socket_config(cfg.socket_path), component="svcnet-up"), spec, cfg.data_dir))
            from svcnet.cluster.addons import ClusterDnsAddon

            components.append(ClusterDnsAddon(
                lambda: ApiClient(unix_socket_config(cfg.socket_path), component="svcnet-up"), cfg.data_dir,
                progress=lambda line: print(line, flush=True)))
            components.append(cluster.ReadyMarker(cfg.data_dir))
        return asyncio.run(supervisor.run(components, _next_steps(cfg, nodes) if print_ready else None))
    except OSError as exc:
        print(f"svcnet: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()


def cmd_apiserver(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose)
    return _run_foreground(_api_config(args), print_ready=True)


def cmd_up(args: argparse.Namespace) -> int:
    cfg = _api_config(args)
    if os.geteuid() != 0:
        print("svcnet: `svcnet up` must run as root (it creates network namespaces); "
              "run it with sudo", file=sys.stderr)
        return 1
    if supervisor.is_locked(cfg.pid_path):
        pid = supervisor.read_pid(cfg.pid_path)
        print(f"svcnet: a cluster is already running from {cfg.data_dir} (pid {pid}); "
              f"use it, or stop it with: svcnet down --data-dir {cfg.data_dir}", file=sys.stderr)
        return 1
    if args.nodes:
        from svcnet.cluster.lifecycle import check_prerequisites

        problems = check_prerequisites(cfg.bind_address, cfg.port, resolv_conf=args.resolv_conf)
        if problems:
            for problem in problems:
                print(f"svcnet: {problem}", file=sys.stderr)
            return 1
    if not args.detach:
        _setup_logging(args.verbose)
        return _run_foreground(cfg, print_ready=True, with_controllers=True, nodes=args.nodes,
                               resolv_conf=args.resolv_conf)
    return _start_detached(cfg, args)


def _start_detached(cfg: ApiServerConfig, args: argparse.Namespace) -> int:
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = cfg.data_dir / "svcnet.log"
    argv = [sys.executable, "-m", "svcnet", "up", "--data-dir", str(cfg.data_dir),
            "--bind-address", cfg.bind_address, "--port", str(cfg.port), "--nodes", str(args.nodes)]
    if args.resolv_conf:
        argv += ["--resolv-conf", args.resolv_conf]
    if cfg.insecure:
        argv.append("--insecure")
    if args.storage:
        argv += ["--storage", args.storage]
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                 start_new_session=True)
    deadline = time.monotonic() + args.timeout
    print(f"starting svcnet (pid {child.pid}, log {log_path}) ...", flush=True)
    offset = log_path.stat().st_size
    ready_file = cfg.data_dir / "cluster.ready"
    while time.monotonic() < deadline:
        offset = _relay_progress(log_path, offset)
        if child.poll() is not None:
            print(f"svcnet: failed to start (exit {child.returncode}); see {log_path}", file=sys.stderr)
            return 1
        if _ready(cfg) and (not args.nodes or ready_file.exists()):
            _relay_progress(log_path, offset)
            print(_next_steps(cfg, args.nodes))
            return 0
        time.sleep(0.1)
    print(f"svcnet: not ready after {args.timeout}s; see {log_path}", file=sys.stderr)
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
    import http.client
    import socket

    if not cfg.socket_path.exists() or not cfg.kubeconfig_path.exists():
        return False
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(str(cfg.socket_path))
        conn = http.client.HTTPConnection("localhost")
        conn.sock = sock
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def cmd_controllers(args: argparse.Namespace) -> int:
    from svcnet.client.config import load_kubeconfig, unix_socket_config

    _setup_logging(args.verbose)
    if args.kubeconfig:
        client_config = load_kubeconfig(args.kubeconfig)
    else:
        client_config = unix_socket_config(Path(args.data_dir) / "apiserver.sock")
    names = [n.strip() for n in args.controllers.split(",") if n.strip()] if args.controllers else None
    try:
        manager = _controller_manager(client_config, names)
    except ValueError as exc:
        print(f"svcnet: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(supervisor.run([manager]))


def _sweep(data_dir: Path) -> None:
    """What a dead `up` left behind (agents, pods, namespaces, leases): `down` removes it too."""
    from svcnet.cluster import lifecycle as cluster

    if os.geteuid() != 0 or cluster.load_cluster_spec(data_dir) is None:
        return
    asyncio.run(cluster.teardown(data_dir))


def cmd_down(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    pid_path = data_dir / "svcnet.pid"
    if not supervisor.is_locked(pid_path):
        print(f"svcnet: nothing is running from {data_dir}")
        _sweep(data_dir)
        return 0
    pid = supervisor.read_pid(pid_path)
    if pid is None or not _is_svcnet_process(pid):
        print(f"svcnet: pid file {pid_path} does not name a svcnet process; not signalling",
              file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not supervisor.is_locked(pid_path):
            _sweep(data_dir)
            print("svcnet: stopped")
            return 0
        time.sleep(0.1)
    print(f"svcnet: pid {pid} did not stop within {args.timeout}s", file=sys.stderr)
    return 1


def _is_svcnet_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"svcnet" in part for part in cmdline)


def _client_config(args: argparse.Namespace):
    from svcnet.client.config import load_kubeconfig, unix_socket_config

    if args.kubeconfig:
        return load_kubeconfig(args.kubeconfig)
    return unix_socket_config(Path(args.data_dir) / "apiserver.sock")


def cmd_agent(args: argparse.Namespace) -> int:
    from svcnet.agent.kubelet import AgentConfig, AgentProcess, read_node_resolv_conf
    from svcnet.cluster import lifecycle as cluster

    _setup_logging(args.verbose)
    data_dir = Path(args.data_dir)
    spec = cluster.load_cluster_spec(data_dir)
    if spec is None:
        print(f"svcnet: no cluster in {data_dir} ({data_dir / 'cluster.json'} is missing): "
              f"create it with svcnet up", file=sys.stderr)
        return 1
    try:
        node = spec.plan().node(args.node)
    except KeyError as exc:
        print(f"svcnet: {exc.args[0]}", file=sys.stderr)
        return 1
    config = AgentConfig(node_name=node.name, runtime_root=cluster.runtime_root(data_dir, node.name),
                         lease_path=cluster.lease_path(data_dir, node.name),
                         cluster_dns=tuple(args.cluster_dns.split(",")), cluster_domain=args.cluster_domain,
                         node_resolv_conf=read_node_resolv_conf(args.resolv_conf or spec.resolv_conf))
    lock = supervisor.PidLock(cluster.agent_pid_path(data_dir, node.name))
    try:
        lock.acquire()
    except supervisor.AlreadyRunning as exc:
        print(f"svcnet: the agent for {node.name}: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(supervisor.run([AgentProcess(_client_config(args), node, config)]))
    finally:
        lock.release()


def cmd_exec(args: argparse.Namespace) -> int:
    from svcnet.cluster import exec_cli

    command = list(args.command)
    return exec_cli.main(_client_config(args), Path(args.data_dir), args.namespace, args.pod,
                         args.container, command)


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    path = Path(args.data_dir) / "kubeconfig"
    if not path.exists():
        print(f"svcnet: no kubeconfig at {path}: start svcnet first (svcnet up)", file=sys.stderr)
        return 1
    if args.raw:
        sys.stdout.write(path.read_text())
    else:
        print(path)
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    rest = list(args.proxy_args)
    if rest[:1] == ["render"]:
        from svcnet.proxy import render_cli

        return render_cli.main(rest[1:])
    if rest[:1] == ["trace"]:
        from svcnet.proxy import trace_cli

        return trace_cli.main(rest[1:])
    if rest[:1] in (["run"], ["cleanup"]) or (rest and rest[0].startswith("--") and rest[0] != "--help"):
        from svcnet.proxy import daemon

        # Flags first is how kube-proxy itself is run: `svcnet proxy --node N ...` is `run`
        # (and `svcnet proxy --cleanup --netns NS` is `cleanup`, which daemon.main works out).
        return daemon.main(rest if rest[:1] in (["run"], ["cleanup"]) or "--cleanup" in rest else ["run", *rest])
    print("svcnet proxy: usage: svcnet proxy render -f FILE... [--node NAME] [--mode iptables]\n"
          "       svcnet proxy run --node NAME --netns NETNS [--data-dir D | --kubeconfig K] ...\n"
          "       svcnet proxy trace -f FILE... --src IP --dst IP --dport PORT [--protocol tcp]\n"
          "       svcnet proxy cleanup --netns NETNS", file=sys.stderr)
    return 2


def cmd_dns(args: argparse.Namespace) -> int:
    from svcnet.dns import cli as dns_cli

    return dns_cli.main(list(args.dns_args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcnet",
                                     description="Kubernetes Service networking on one machine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("up", help="start the cluster (everything svcnet has) in one process")
    _add_api_flags(p)
    p.add_argument("-d", "--detach", action="store_true",
                   help="run in the background and return once the API is ready")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    p.add_argument("--nodes", type=int, default=2,
                   help="how many nodes (network namespaces with an agent each); 0: API and controllers only "
                        "(default %(default)s)")
    p.add_argument("--resolv-conf", default="", metavar="FILE",
                   help="the nodes' resolv.conf, as kubelet's --resolv-conf: what dnsPolicy Default pods "
                        "(the cluster DNS pods, hence its upstreams) get (default: the host's /etc/resolv.conf)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("agent", help="run the node agent (kubelet) for one node of a `svcnet up` cluster")
    p.add_argument("--node", required=True, help="the node's name (node-1, node-2, ...)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="the cluster's data dir: cluster.json, the API socket, the node's state (default %(default)s)")
    p.add_argument("--kubeconfig", default="", help="reach the API with this kubeconfig instead of the socket")
    p.add_argument("--cluster-dns", default="10.96.0.10", help="nameserver(s) for ClusterFirst pods, comma-separated")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--resolv-conf", default="", metavar="FILE",
                   help="resolv.conf for dnsPolicy Default pods, as kubelet's flag (default: the cluster's "
                        "--resolv-conf, else the host's /etc/resolv.conf)")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("exec", help="run a command in a pod: svcnet exec POD [-n NS] [-c C] -- CMD...")
    p.add_argument("pod")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-c", "--container", default=None)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--kubeconfig", default="")
    p.add_argument("command", nargs="*", help="-- CMD ARGS... (after --, options belong to CMD)")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("apiserver", help="run the API server alone, in the foreground")
    _add_api_flags(p)
    p.set_defaults(func=cmd_apiserver)

    p = sub.add_parser("controllers", help="run the controllers (and scheduler) against an API server")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="reach svcnet's API server through DATA_DIR/apiserver.sock (default %(default)s)")
    p.add_argument("--kubeconfig", default="", help="reach any Kubernetes API server with this kubeconfig")
    p.add_argument("--controllers", default="",
                   help="comma-separated names to run (default: all): " + ", ".join(
                       ["scheduler", "replicaset", "deployment", "statefulset", "endpointslice",
                        "endpoints", "garbagecollector"]))
    p.set_defaults(func=cmd_controllers)

    p = sub.add_parser("down", help="stop what `svcnet up` started")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("proxy", help="the service proxy; `svcnet proxy render -f FILE...` prints the "
                                     "rules kube-proxy would write for the Services in FILE",
                       add_help=False)
    p.add_argument("proxy_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_proxy)

    p = sub.add_parser("dns", help="cluster DNS as CoreDNS's kubernetes plugin answers "
                                   "(`svcnet dns --help`)", add_help=False)
    p.add_argument("dns_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_dns)

    p = sub.add_parser("status", help="the cluster at a glance: components, nodes, pods, proxy syncs, DNS",
                       add_help=False)
    p.add_argument("status_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("walkthrough", help="apply the seed's examples to the running cluster and show "
                                           "every step of the seed note", add_help=False)
    p.add_argument("walkthrough_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_walkthrough)

    p = sub.add_parser("kubeconfig", help="print the kubeconfig path (or, with --raw, its content)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--raw", action="store_true", help="print the content instead of the path")
    p.set_defaults(func=cmd_kubeconfig)
    return parser


def cmd_status(args: argparse.Namespace) -> int:
    from svcnet.cluster import status

    return status.main(list(args.status_args))


def cmd_walkthrough(args: argparse.Namespace) -> int:
    from svcnet.cluster import walkthrough

    return walkthrough.main(list(args.walkthrough_args))


# Commands with their own parsers: everything after the name is theirs (argparse's REMAINDER
# would refuse a first argument that looks like an option, such as --help).
_DELEGATED = {"dns": ("dns_args", cmd_dns), "proxy": ("proxy_args", cmd_proxy),
              "walkthrough": ("walkthrough_args", cmd_walkthrough), "status": ("status_args", cmd_status)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _DELEGATED:
        field, func = _DELEGATED[argv[0]]
        return int(func(argparse.Namespace(**{field: argv[1:]})) or 0)
    # `svcnet exec POD [flags] -- CMD ARGS`: everything after "--" is the command's, options included.
    after: list[str] | None = None
    subcommand = next((a for a in argv if not a.startswith("-")), None)
    if subcommand == "exec" and "--" in argv:
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if after is not None:
        args.command = [*args.command, *after]
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
