"""`svcnet proxy trace`: where would this packet go through the rules kube-proxy writes?

Renders the rules for the Services, EndpointSlices and Node in the given
manifests (as `svcnet proxy render` does), loads them into the iptables model
behind kube-proxy's jumps from the built-in chains (or, with --proxy-mode
nftables, into the nftables model of the `kube-proxy` table, whose base chains
hook in by themselves), and follows the first
packet of a connection: every endpoint it can reach, with its probability and
whether it is masqueraded, or the rule that drops or rejects it.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys

from svcnet.proxy import render_cli
from svcnet.proxy.iptables.jumps import jump_rules_restore_text
from svcnet.proxy.iptables.ruleset import IptablesModel
from svcnet.proxy.iptables.tracer import Outcome, Packet, trace
from svcnet.proxy.kpconfig import MODE_NFTABLES
from svcnet.proxy.nftables.ruleset import Ruleset
from svcnet.proxy.nftables.tracer import trace as nft_trace


def build_parser() -> argparse.ArgumentParser:
    parser = render_cli.build_parser()
    parser.prog = "svcnet proxy trace"
    parser.description = ("Follow a packet through the rules kube-proxy would write for the objects in "
                          "FILE: every endpoint it reaches, how likely, and whether it is masqueraded.")
    parser.add_argument("--src", required=True, help="the packet's source IP")
    parser.add_argument("--dst", required=True, help="the packet's destination IP (a ClusterIP, node IP, ...)")
    parser.add_argument("--dport", required=True, type=int, help="destination port")
    parser.add_argument("--protocol", default="tcp", choices=["tcp", "udp", "sctp"])
    parser.add_argument("--origin", default="remote", choices=["remote", "local"],
                        help="remote: arrives from a pod or the network; local: sent by the node itself")
    parser.add_argument("--in-interface", default="", help="where it arrives (default cni0 for pod "
                                                          "sources, eth0 otherwise)")
    return parser


def describe(outcome: Outcome) -> str:
    share = f"{outcome.probability * 100:6.2f}%"
    if outcome.verdict != "ACCEPT":
        return f"{share}  {outcome.verdict} by {outcome.dropped_by or 'policy'}"
    where = outcome.endpoint or f"{outcome.dst}:{outcome.dport} (not DNATed)"
    return f"{share}  -> {where}  masquerade={'yes' if outcome.masquerade else 'no'}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    for flag in ("src", "dst"):
        try:
            ipaddress.ip_address(getattr(args, flag))
        except ValueError:
            print(f"error: --{flag}: not an IP address: {getattr(args, flag)!r}", file=sys.stderr)
            return 2
    if not 0 < args.dport < 65536:
        print(f"error: --dport: must be 1-65535, got {args.dport}", file=sys.stderr)
        return 2
    try:
        objects = render_cli.load_documents(args.filename)
        settings, _ = render_cli.resolve_settings(args)
        text, notes = render_cli.render(args, objects)
        local = tuple(args.node_ip) or tuple(render_cli.node_addresses_of(
            objects, args.node or settings.hostname_override))
    except render_cli.InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    src = ipaddress.ip_address(args.src)
    cidrs = [ipaddress.ip_network(c, strict=False) for c in settings.cluster_cidrs]
    from_pod = any(src.version == net.version and src in net for net in cidrs)
    packet = Packet(args.src, args.dst, args.dport, protocol=args.protocol, origin=args.origin,
                    in_interface=args.in_interface or ("cni0" if from_pod else "eth0"))
    if settings.mode == MODE_NFTABLES:
        outcomes = nft_trace(Ruleset().apply(text), packet, local)
    else:
        outcomes = trace(IptablesModel.empty(local).restore(jump_rules_restore_text()).restore(text), packet)
    print(f"{args.protocol} {args.src} -> {args.dst}:{args.dport} ({args.origin})")
    for outcome in sorted(outcomes, key=lambda o: (-o.probability, o.endpoint or "")):
        print(describe(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
