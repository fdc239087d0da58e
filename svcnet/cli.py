"""svcnet: the one entry point. Every role is a subcommand; this module parses flags and dispatches.

Each command imports the module that does its work only when it runs, so a
short-lived role (`svcnet dns` in a pod, `svcnet status`) does not load the
API server or the agent.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from svcnet.config import DEFAULT_DATA_DIR, ApiServerConfig


def _api_config(args: argparse.Namespace) -> ApiServerConfig:
    """The API server's settings from its flags; a refused combination exits 2, as argparse does."""
    problem = _api_flag_problem(args)
    if problem:
        print(f"svcnet {args.command}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return ApiServerConfig(
        data_dir=Path(args.data_dir),
        bind_address=args.bind_address,
        port=args.port,
        insecure=args.insecure,
        storage_dsn=args.storage or "",
        advertise_address=getattr(args, "advertise_address", "") or None,
        advertise_port=getattr(args, "advertise_port", None),
        control_plane_endpoint=getattr(args, "control_plane_endpoint", "") or None,
    )


def _api_flag_problem(args: argparse.Namespace) -> str | None:
    if args.insecure and not is_loopback(args.bind_address):
        # Kubernetes removed its unauthenticated port in 1.20; svcnet keeps it for one machine only.
        return (f"--insecure serves the API over plain HTTP without authentication, so it may only listen "
                f"on a loopback address (127.0.0.0/8, ::1, localhost); got --bind-address {args.bind_address}")
    advertise = getattr(args, "advertise_address", "")
    if advertise:
        from svcnet.apiserver.validation.fields import non_special_ip_errors

        errors = non_special_ip_errors("--advertise-address", advertise)
        if errors:
            return f"--advertise-address: {errors[0].message}"
    if getattr(args, "netns", "") and not advertise:
        return "--netns listens on --advertise-address inside that namespace: give --advertise-address"
    return None


def is_loopback(address: str) -> bool:
    """localhost, 127.0.0.0/8, ::1 or ::ffff:127.x.y.z."""
    if address.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _add_api_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="where state, certificates and the kubeconfig live (default %(default)s)")
    p.add_argument("--bind-address", default="127.0.0.1", help="API server address (default %(default)s)")
    p.add_argument("--port", type=_port, default=6443, help="API server port (default %(default)s)")
    p.add_argument("--storage", default="",
                   help="storage DSN: sqlite:///PATH (default: DATA_DIR/state.db), memory://, or "
                        "etcd://HOST:PORT[,HOST:PORT...][?cacert=PATH&cert=PATH&key=PATH&prefix=/NS]; "
                        "`svcnet up --storage etcd` runs a local etcd under DATA_DIR/etcd (docs/storage.md)")
    p.add_argument("--insecure", action="store_true",
                   help="serve plain HTTP with no authentication (never on a shared machine)")


def _int_between(low: int, high: int, not_a_number: str, out_of_range: str):
    """An argparse type: an integer from low to high. The messages may name {text} / {value}."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(not_a_number.format(text=repr(text))) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(out_of_range.format(value=value))
        return value
    return parse


_port = _int_between(1, 65535, "not a port number: {text}", "port must be 1-65535, got {value}")
_etcd_members = _int_between(1, 7, "not a number: {text}", "1 to 7 members (3 or 5 for a quorum that survives losses)")


def _zones(value: str) -> tuple[str, ...]:
    """`--zones a,b`: each must be a label value, as the zone label's."""
    from svcnet.api.selectors.syntax import label_value_errors

    zones = tuple(z.strip() for z in value.split(","))
    for zone in zones:
        errors = label_value_errors(zone) if zone else ["must not be empty"]
        if errors:
            raise argparse.ArgumentTypeError(f"zone {zone!r}: {errors[0]}")
    return zones


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_apiserver(args: argparse.Namespace) -> int:
    from svcnet.cluster import up

    cfg = _api_config(args)
    _setup_logging(args.verbose)
    return up.run(cfg, netns=args.netns)


def cmd_up(args: argparse.Namespace) -> int:
    from svcnet.cluster import up

    if args.etcd_members != 1:  # a local etcd of that many members: --storage etcd, or nothing
        if args.storage not in ("", "etcd"):
            print("svcnet: --etcd-members runs a local etcd; it does not go with --storage "
                  f"{args.storage!r}", file=sys.stderr)
            return 2
        args.storage = "etcd"
    return up.up(_api_config(args), nodes=args.nodes, resolv_conf=args.resolv_conf, detach=args.detach,
                 timeout=args.timeout, storage=args.storage, setup_logging=lambda: _setup_logging(args.verbose),
                 proxy_mode=args.proxy_mode, zones=args.zones, lb_pool=args.lb_pool, hosts=args.hosts,
                 etcd_members=args.etcd_members, apiservers=args.apiservers)


def cmd_down(args: argparse.Namespace) -> int:
    from svcnet.cluster import up

    return up.down(Path(args.data_dir), args.timeout)


def cmd_controllers(args: argparse.Namespace) -> int:
    from svcnet.controllers import daemon

    _setup_logging(args.verbose)
    names = [n.strip() for n in args.controllers.split(",") if n.strip()] if args.controllers else None
    files = daemon.ControllerFiles() if args.kubeconfig else daemon.ControllerFiles.in_data_dir(Path(args.data_dir))
    if args.service_account_private_key_file:
        files = replace(files, service_account_private_key_file=Path(args.service_account_private_key_file))
    if args.root_ca_file:
        files = replace(files, root_ca_file=Path(args.root_ca_file))
    if args.lb_pool:
        files = replace(files, lb_pool=args.lb_pool)
    if args.cluster_signing_cert_file or args.cluster_signing_key_file:
        files = replace(files, cluster_signing_cert_file=_path_or_none(args.cluster_signing_cert_file),
                        cluster_signing_key_file=_path_or_none(args.cluster_signing_key_file))
    election = daemon.LeaderElection(
        enabled=args.leader_elect, lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline, retry_period=args.leader_elect_retry_period,
        resource_namespace=args.leader_elect_resource_namespace,
        resource_name=args.leader_elect_resource_name)
    return daemon.run(_client_config(args), names, files, election)


def cmd_apiserver_lb(args: argparse.Namespace) -> int:
    import asyncio

    from svcnet.client.loadbalancer import ApiServerLoadBalancer
    from svcnet.kernel import process

    _setup_logging(args.verbose)
    try:
        balancer = ApiServerLoadBalancer(args.listen, args.server, health_interval=args.health_interval)
    except ValueError as exc:
        print(f"svcnet apiserver-lb: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(process.run([balancer], ready_message=f"forwarding {args.listen} to "
                                                              f"{', '.join(args.server)}"))


def _go_bool_flag(text: str) -> bool:
    from svcnet.proxy.flags import go_bool

    return go_bool(text)


def _go_duration_flag(text: str) -> float:
    """A Go duration ("15s", "500ms", "1m"), as kube-controller-manager's duration flags."""
    from svcnet.proxy.flags import go_duration

    seconds = go_duration(text)
    if seconds < 0:
        raise ValueError(text)
    return seconds


_go_bool_flag.__name__ = "boolean"
_go_duration_flag.__name__ = "duration"


def _add_leader_election_flags(p: argparse.ArgumentParser) -> None:
    """component-base's leader-election flags, as kube-controller-manager and kube-scheduler take them."""
    p.add_argument("--leader-elect", nargs="?", const=True, default=True, type=_go_bool_flag, metavar="BOOL",
                   help="run only while holding a Lease, so one of several instances acts (default true)")
    p.add_argument("--leader-elect-lease-duration", default=15.0, type=_go_duration_flag, metavar="DURATION",
                   help="how long standbys wait after the leader's last renewal they saw before taking over "
                        "(default 15s; whole seconds)")
    p.add_argument("--leader-elect-renew-deadline", default=10.0, type=_go_duration_flag, metavar="DURATION",
                   help="how long the leader keeps trying to renew before it stops acting (default 10s)")
    p.add_argument("--leader-elect-retry-period", default=2.0, type=_go_duration_flag, metavar="DURATION",
                   help="how long candidates wait between tries to acquire or renew (default 2s)")
    p.add_argument("--leader-elect-resource-lock", default="leases", choices=["leases"],
                   help="the kind of object elected on (only leases, as upstream today)")
    p.add_argument("--leader-elect-resource-name", default="", metavar="NAME",
                   help="the Lease's name (default: kube-controller-manager for the controllers, "
                        "kube-scheduler for the scheduler)")
    p.add_argument("--leader-elect-resource-namespace", default="kube-system", metavar="NAMESPACE",
                   help="the Lease's namespace (default %(default)s)")


def _path_or_none(value: str) -> Path | None:
    return Path(value) if value else None


def _client_config(args: argparse.Namespace):
    from svcnet.client.config import load_kubeconfig, unix_socket_config

    if args.kubeconfig:
        return load_kubeconfig(args.kubeconfig)
    return unix_socket_config(Path(args.data_dir) / "apiserver.sock")


def cmd_agent(args: argparse.Namespace) -> int:
    from svcnet.agent import daemon
    from svcnet.cluster.supervisor import NodeNotFound, agent_settings

    _setup_logging(args.verbose)
    try:
        node, config, pid_path = agent_settings(Path(args.data_dir), args.node,
                                                cluster_dns=tuple(args.cluster_dns.split(",")),
                                                cluster_domain=args.cluster_domain, resolv_conf=args.resolv_conf)
    except NodeNotFound as exc:
        print(f"svcnet: {exc.args[0]}", file=sys.stderr)
        return 1
    # the cluster CA: the kubelet API's certificate comes from it (signed here with its key, or through a CSR)
    pki_dir = Path(args.data_dir) / "pki"
    speaker_config = None
    if args.lb_speaker_kubeconfig:
        from svcnet.client.config import load_kubeconfig

        speaker_config = load_kubeconfig(args.lb_speaker_kubeconfig)
    overlay_config = None
    if args.overlay_kubeconfig:
        from svcnet.client.config import load_kubeconfig

        overlay_config = load_kubeconfig(args.overlay_kubeconfig)
    return daemon.run(_client_config(args), node, config, pid_path,
                      pki_dir if (pki_dir / "ca.crt").exists() else None, speaker_config, overlay_config)


def _duration(value: str) -> float:
    """A Go duration as kubeadm's --ttl takes it (24h, 90m, 1h30m, 0 for never), in seconds."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", value)
    if value == "0":
        return 0.0
    if not parts or "".join(n + u for n, u in parts) != value:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r} (e.g. 24h, 90m, 1h30m; 0: never expires)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def cmd_token(args: argparse.Namespace) -> int:
    import asyncio
    import datetime as dt

    from svcnet.client.rest import ApiClient
    from svcnet.cluster import join

    async def run() -> int:
        async with ApiClient(_client_config(args), component="svcnet-token") as api:
            if args.token_command == "list":
                secrets = (await api.list(join.SECRETS, "kube-system"))["items"]
                print(join.token_table(secrets, dt.datetime.now(dt.UTC)), end="")
                return 0
            if args.token_command == "delete":
                for token_id in args.tokens:
                    await join.delete_token(api, token_id)
                    print(f'bootstrap token "{token_id.split(".")[0]}" deleted')
                return 0
            ttl = dt.timedelta(seconds=args.ttl) if args.ttl else None
            token = await join.create_token(api, ttl, args.description)
            print(token)
            print(await join.join_command(api, token))
            return 0

    from svcnet.api.errors import ApiError
    from svcnet.client.rest import TransportError

    try:
        return asyncio.run(run())
    except (ApiError, join.JoinError) as exc:
        print(f"svcnet token: {getattr(exc, 'message', exc)}", file=sys.stderr)
    except TransportError as exc:
        print(f"svcnet token: cannot reach the API server ({exc}); is the cluster up?", file=sys.stderr)
    return 1


def cmd_node_join(args: argparse.Namespace) -> int:
    import asyncio

    from svcnet.cluster import join

    data_dir = Path(args.data_dir)
    try:
        if args.host and not args.lan_of:
            return join.error("--host places a node on a host of a simulated cluster: give --lan-of too")
        host = join.SimulatedHost(Path(args.lan_of), data_dir, args.host) if args.lan_of else None
        name = args.name or (host.node.name if host else "")
        if not name:
            return join.error("give --name (the node's name) or --lan-of")
        if host is not None and name != host.node.name:
            return join.error(f"--lan-of: the next node of that LAN is {host.node.name}, not {name}")
        overlay = join.kubeconfig_path(data_dir, join.OVERLAY)
        if host is not None and host.node.overlay and not args.overlay_token_file and not overlay.exists():
            return join.error("the cluster spans several hosts: its nodes run the VXLAN overlay as flannel's "
                              "ServiceAccount; give --overlay-token-file with a token of it (kubectl create token "
                              f"-n {join.OVERLAY_NAMESPACE} {join.OVERLAY_SERVICE_ACCOUNT} --duration 24h)")
        path = asyncio.run(join.bootstrap_identity(args.server, args.token, tuple(args.ca_cert_hash), name, data_dir,
                                                   args.discovery_token_unsafe_skip_ca_verification))
        if args.overlay_token_file:
            join.progress(f"wrote {join.write_overlay_kubeconfig(data_dir, args.server, Path(args.overlay_token_file))}"
                          f" (the overlay's identity: flannel's ServiceAccount)")
    except join.JoinError as exc:
        return join.error(str(exc))
    join.progress(f"wrote {path} (the node's identity: system:node:{name})")
    if host is None:
        return 0
    _setup_logging(args.verbose)
    return join.run_joined_node(data_dir, host)


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
    print("svcnet proxy: usage: svcnet proxy render -f FILE... [--node NAME] [--proxy-mode iptables|nftables]\n"
          "       svcnet proxy run --node NAME --netns NETNS [--data-dir D | --kubeconfig K] ...\n"
          "       svcnet proxy trace -f FILE... --src IP --dst IP --dport PORT [--protocol tcp]\n"
          "       svcnet proxy cleanup --netns NETNS", file=sys.stderr)
    return 2


def cmd_dns(args: argparse.Namespace) -> int:
    from svcnet.dns import daemon as dns_daemon

    return dns_daemon.main(list(args.dns_args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcnet",
                                     description="Kubernetes Service networking on one machine")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_cluster_commands(sub)
    _add_component_commands(sub)
    _add_join_commands(sub)
    # Commands whose own module parses the rest of the line (and answers --help).
    _add_forwarding(sub, "proxy", cmd_proxy, "the service proxy; `svcnet proxy render -f FILE...` prints the "
                                             "rules kube-proxy would write for the Services in FILE")
    _add_forwarding(sub, "dns", cmd_dns, "cluster DNS as CoreDNS's kubernetes plugin answers (`svcnet dns --help`)")
    _add_forwarding(sub, "status", cmd_status, "the cluster at a glance: components, nodes, pods, proxy syncs, DNS")
    _add_forwarding(sub, "walkthrough", cmd_walkthrough, "apply the seed's examples to the running cluster and "
                                                         "show every step of the seed note (--extended: every "
                                                         "other kind of Service, live)")
    return parser


def _add_forwarding(sub: Any, name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, add_help=False)
    p.add_argument(f"{name}_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=func)


def _add_cluster_commands(sub: Any) -> None:
    """up, down, exec and kubeconfig: the cluster as a whole."""
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
    p.add_argument("--proxy-mode", default="iptables", choices=["iptables", "nftables"],
                   help="every node's kube-proxy mode (default %(default)s)")
    p.add_argument("--zones", type=_zones, default=(), metavar="ZONE,...",
                   help="label the nodes topology.kubernetes.io/zone with these zones, round-robin "
                        "(node-1 the first, node-2 the second, ...; default: no zone label)")
    p.add_argument("--hosts", type=int, default=1, metavar="H",
                   help="simulate H hosts: each its own LAN holding its nodes (round-robin), a router between "
                        "them, and pods reaching pods on other hosts through a VXLAN overlay as flannel's "
                        "(default %(default)s: one LAN, pod routes via node IPs)")
    p.add_argument("--lb-pool", default="", metavar="CIDR[,CIDR]",
                   help="addresses on the nodes' LAN for LoadBalancer Services, at most one CIDR per family "
                        "(default: the top /28 of the node network, 192.168.0.240/28, and the top /124 of the "
                        "IPv6 one, fd00:192:168:0:ffff:ffff:ffff:fff0/124); must not hold a node, client, "
                        "control-plane or etcd member address")
    p.add_argument("--etcd-members", type=_etcd_members, default=1, metavar="N",
                   help="with --storage etcd (implied): run a local etcd cluster of N members, each "
                        "supervised, each in its own namespace on the cluster LAN with mutual TLS between "
                        "peers (3 survives losing one; default %(default)s)")
    p.add_argument("--apiservers", type=int, default=1, metavar="N",
                   help="with --storage etcd: run N API servers over the one etcd, as an HA control plane "
                        "(the others as processes on --port + 2.. --port + N, each with its own leader-elected "
                        "controller manager and scheduler), and a load balancer on --port + 1 that the "
                        "kubeconfig, agents and proxies use (default %(default)s)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop what `svcnet up` started")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("exec", help="run a command in a pod: svcnet exec POD [-n NS] [-c C] -- CMD...")
    p.add_argument("pod")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-c", "--container", default=None)
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--kubeconfig", default="")
    p.add_argument("command", nargs="*", help="-- CMD ARGS... (after --, options belong to CMD)")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("kubeconfig", help="print the kubeconfig path (or, with --raw, its content)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--raw", action="store_true", help="print the content instead of the path")
    p.set_defaults(func=cmd_kubeconfig)


def _add_join_commands(sub: Any) -> None:
    """token create|list and node join: nodes joined with a bootstrap token (kubeadm's flow)."""
    p = sub.add_parser("token", help="bootstrap tokens for joining nodes (as kubeadm token)")
    tokens = p.add_subparsers(dest="token_command", required=True, metavar="create|list|delete")
    for name, text in (("create", "create a bootstrap token and print it with the command that joins a node"),
                       ("list", "list the bootstrap tokens"),
                       ("delete", "delete bootstrap tokens (by token or id): they no longer authenticate")):
        q = tokens.add_parser(name, help=text)
        q.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                       help="reach the API through DATA_DIR/apiserver.sock (default %(default)s)")
        q.add_argument("--kubeconfig", default="", help="reach the API with this kubeconfig instead")
        if name == "create":
            q.add_argument("--ttl", type=_duration, default=24 * 3600.0, metavar="DURATION",
                           help="how long the token is valid (e.g. 24h, 90m; 0: never expires; default 24h)")
            q.add_argument("--description", default="", help="a note kept with the token")
        if name == "delete":
            q.add_argument("tokens", nargs="+", metavar="TOKEN|ID")
        q.set_defaults(func=cmd_token)

    p = sub.add_parser("node", help="node commands: `svcnet node join` adds a node with a bootstrap token")
    nodes = p.add_subparsers(dest="node_command", required=True, metavar="join")
    q = nodes.add_parser("join", help="join this machine as a node: discover the cluster with a bootstrap token, "
                                      "get the node's own certificate, run its agent and proxy")
    q.add_argument("--server", required=True, metavar="https://ADDR:PORT", help="the API server to join")
    q.add_argument("--token", required=True, help="a bootstrap token (svcnet token create)")
    q.add_argument("--ca-cert-hash", action="append", default=[], metavar="sha256:HEX",
                   help="the cluster CA's public key hash to trust (kubeadm's --discovery-token-ca-cert-hash)")
    q.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true",
                   help="trust the CA on the token's signature alone (no --ca-cert-hash)")
    q.add_argument("--name", default="", help="the node's name (default with --lan-of: the next node-N)")
    q.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR) + "-node",
                   help="the node's own state: its key, kubeconfigs and pods (default %(default)s)")
    q.add_argument("--lan-of", default="", metavar="DATA_DIR",
                   help="one-machine simulation of another host: the node becomes the next node namespace on the "
                        "LAN of the `svcnet up` cluster in DATA_DIR (only its cluster.json is read)")
    q.add_argument("--host", type=int, default=0, metavar="H",
                   help="with --lan-of of a `svcnet up --hosts` cluster: put the node on host H's LAN "
                        "(default: the host round-robin gives its index)")
    q.add_argument("--overlay-token-file", default="", metavar="FILE",
                   help="a token of the ServiceAccount kube-flannel/flannel, for the VXLAN overlay of a cluster "
                        "on several hosts (kubectl create token -n kube-flannel flannel)")
    q.set_defaults(func=cmd_node_join)


def _add_component_commands(sub: Any) -> None:
    """One component of a `svcnet up` cluster, run alone in the foreground."""
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
    p.add_argument("--lb-speaker-kubeconfig", default="", metavar="FILE",
                   help="also run the LoadBalancer speaker (answers ARP on the node's LAN for the addresses "
                        "this node is elected to announce), reaching the API with this kubeconfig")
    p.add_argument("--overlay-kubeconfig", default="", metavar="FILE",
                   help="the VXLAN overlay's credentials (a node of a several-host cluster runs flannel's part: "
                        "it watches every Node), default: the agent's own")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("apiserver", help="run the API server alone, in the foreground")
    _add_api_flags(p)
    p.add_argument("--advertise-address", default="",
                   help="the IP pods reach the API server on, written as default/kubernetes's endpoint "
                        "(default: --bind-address when it is neither loopback nor unspecified)")
    p.add_argument("--advertise-port", type=_port, default=None, metavar="PORT",
                   help="the port default/kubernetes's endpoints name and --netns's listener uses (default: "
                        "--port); for several API servers on one machine, each on its own --port")
    p.add_argument("--netns", default="", metavar="NAME",
                   help="also listen on --advertise-address inside this network namespace, and dial kubelets "
                        "from it (a further API server of a `svcnet up` cluster, on the cluster's LAN)")
    p.add_argument("--control-plane-endpoint", default="", metavar="HOST:PORT",
                   help="the address cluster-info gives joining nodes, as kubeadm's controlPlaneEndpoint "
                        "(default: this server's advertised address)")
    p.set_defaults(func=cmd_apiserver)

    p = sub.add_parser("controllers", help="run the controllers (and scheduler) against an API server")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="reach svcnet's API server through DATA_DIR/apiserver.sock (default %(default)s)")
    p.add_argument("--kubeconfig", default="", help="reach any Kubernetes API server with this kubeconfig")
    p.add_argument("--controllers", default="",
                   help="comma-separated names to run (default: all): " + ", ".join(
                       ["scheduler", "replicaset", "deployment", "statefulset", "endpointslice",
                        "endpoints", "garbagecollector"]))
    p.add_argument("--service-account-private-key-file", default="",
                   help="sign Secret-based service-account tokens with this PEM key (default with --data-dir: "
                        "DATA_DIR/pki/sa.key; without one the serviceaccount-token controller does not run)")
    p.add_argument("--root-ca-file", default="",
                   help="the CA bundle put in token Secrets' ca.crt (default with --data-dir: DATA_DIR/pki/ca.crt)")
    p.add_argument("--lb-pool", default="", metavar="CIDR[,CIDR]",
                   help="the addresses the service-lb controller gives LoadBalancer Services (as MetalLB's "
                        "IPAddressPool), at most one CIDR per family; without it that controller does not run")
    p.add_argument("--cluster-signing-cert-file", default="", metavar="FILE",
                   help="the CA certificate the csrsigning controller signs with (default with --data-dir: "
                        "DATA_DIR/pki/ca.crt)")
    p.add_argument("--cluster-signing-key-file", default="", metavar="FILE",
                   help="its key (default with --data-dir: DATA_DIR/pki/ca.key); without both, csrsigning does "
                        "not run")
    _add_leader_election_flags(p)
    p.set_defaults(func=cmd_controllers)

    p = sub.add_parser("apiserver-lb", help="a local TCP load balancer in front of several API servers "
                                            "(k3s's agent load balancer): fails over when one stops answering")
    p.add_argument("--listen", default="127.0.0.1:6444", metavar="HOST:PORT",
                   help="where clients connect: point their kubeconfig's server here (default %(default)s)")
    p.add_argument("--server", action="append", required=True, metavar="HOST:PORT",
                   help="an API server, repeated for each; new connections go to the first healthy one")
    p.add_argument("--health-interval", default=5.0, type=_go_duration_flag, metavar="DURATION",
                   help="how often each server is dialled to check it answers (default 5s)")
    p.set_defaults(func=cmd_apiserver_lb)



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
