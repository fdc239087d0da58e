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

from svcnet.config import DEFAULT_DATA_DIR, ApiServerConfig
from svcnet.runtime import supervisor


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


def _next_steps(cfg: ApiServerConfig) -> str:
    return (f"svcnet is up: API server at {cfg.url}\n"
            f"  export KUBECONFIG={cfg.kubeconfig_path}\n"
            f"  kubectl get namespaces\n"
            f"Stop it with Ctrl-C or: svcnet down --data-dir {cfg.data_dir}")


def _controller_manager(client_config, names: list[str] | None):
    from svcnet import controllers
    from svcnet.client.rest import ApiClient
    from svcnet.controllers.base import ControllerManager

    classes = controllers.load(names)
    return ControllerManager(lambda: ApiClient(client_config, component="controller-manager"), classes)


def _run_foreground(cfg: ApiServerConfig, print_ready: bool, with_controllers: bool = False) -> int:
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
        components = [RunningApiServer(cfg)]
        if with_controllers:
            components.append(_controller_manager(unix_socket_config(cfg.socket_path), None))
        return asyncio.run(supervisor.run(components, _next_steps(cfg) if print_ready else None))
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
    if not args.detach:
        _setup_logging(args.verbose)
        return _run_foreground(cfg, print_ready=True, with_controllers=True)
    return _start_detached(cfg, args)


def _start_detached(cfg: ApiServerConfig, args: argparse.Namespace) -> int:
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = cfg.data_dir / "svcnet.log"
    argv = [sys.executable, "-m", "svcnet", "up", "--data-dir", str(cfg.data_dir),
            "--bind-address", cfg.bind_address, "--port", str(cfg.port)]
    if cfg.insecure:
        argv.append("--insecure")
    if args.storage:
        argv += ["--storage", args.storage]
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                 start_new_session=True)
    deadline = time.monotonic() + args.timeout
    print(f"starting svcnet (pid {child.pid}, log {log_path}) ...", flush=True)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"svcnet: failed to start (exit {child.returncode}); see {log_path}", file=sys.stderr)
            return 1
        if _ready(cfg):
            print(_next_steps(cfg))
            return 0
        time.sleep(0.1)
    print(f"svcnet: not ready after {args.timeout}s; see {log_path}", file=sys.stderr)
    return 1


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


def cmd_down(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    pid_path = data_dir / "svcnet.pid"
    if not supervisor.is_locked(pid_path):
        print(f"svcnet: nothing is running from {data_dir}")
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
    print("svcnet proxy: usage: svcnet proxy render -f FILE... [--node NAME] [--mode iptables]",
          file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcnet",
                                     description="Kubernetes Service networking on one machine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("up", help="start the cluster (everything svcnet has) in one process")
    _add_api_flags(p)
    p.add_argument("-d", "--detach", action="store_true",
                   help="run in the background and return once the API is ready")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    p.set_defaults(func=cmd_up)

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

    p = sub.add_parser("kubeconfig", help="print the kubeconfig path (or, with --raw, its content)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--raw", action="store_true", help="print the content instead of the path")
    p.set_defaults(func=cmd_kubeconfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
