"""`svcnet proxy render`: print the rules kube-proxy would write for some manifests, without a cluster.

    svcnet proxy render -f FILE... [--node NAME] [--mode iptables] [--family ipv4|ipv6]
                        [--cluster-cidr CIDR]... [--node-ip IP]... [--masquerade-all]
                        [--nodeport-addresses CIDR,...]

Reads Services, EndpointSlices and Nodes from YAML or JSON manifests ("-" is
stdin; multi-document files and `kind: List` work; other kinds are ignored,
Endpoints with a note, since kube-proxy reads only EndpointSlices) and prints
the iptables-restore input for the node: the endpoints whose nodeName is that
node are its local ones, and the Node object, when given, supplies its topology
labels and addresses. Bad input is reported on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from svcnet.api.objects import labels_of, name_of, namespace_of, spec_of
from svcnet.proxy import flags
from svcnet.proxy.iptables import render_iptables
from svcnet.proxy.model import IPV4, IPV6, build_model, ip_family_of, node_addresses
from svcnet.proxy.plan import ProxyConfig, plan

# svcnet's pod network (DESIGN.md); traffic to a cluster IP from outside it is masqueraded.
DEFAULT_CLUSTER_CIDRS = ("10.244.0.0/16",)

Obj = Mapping[str, Any]


class InputError(Exception):
    """The manifests or flags cannot be rendered; the message says why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svcnet proxy render",
        description="Print the iptables-restore input kube-proxy (and svcnet's proxy) would apply "
                    "on a node for the Services and EndpointSlices in the given manifests.")
    parser.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                        help="manifest file (YAML or JSON, may hold several documents); '-' for stdin")
    parser.add_argument("--node", default="", help="the node to render for (its endpoints are local)")
    parser.add_argument("--family", default="ipv4", choices=["ipv4", "ipv6"], help="IP family (default ipv4)")
    add_policy_flags(parser)
    return parser


def add_policy_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags that shape the rules, shared by `proxy render`/`trace` and the daemon (`proxy run`)."""
    parser.add_argument("--mode", default="iptables", choices=["iptables"], help="proxy mode (default iptables)")
    parser.add_argument("--cluster-cidr", action="append", metavar="CIDR[,CIDR]",
                        help="pod network(s): traffic from outside is masqueraded; repeat (or comma-join) "
                             f"for dual-stack; '' for none (default {','.join(DEFAULT_CLUSTER_CIDRS)})")
    parser.add_argument("--node-ip", action="append", default=[], metavar="IP",
                        help="the node's address(es) (default: from the Node object)")
    parser.add_argument("--masquerade-all", action="store_true", help="SNAT all traffic to cluster IPs")
    parser.add_argument("--nodeport-addresses", default="", metavar="CIDR,...",
                        help="only node addresses in these CIDRs (or 'primary') accept NodePorts")


def load_documents(paths: Iterable[str], stdin_text: str | None = None) -> list[tuple[str, Obj]]:
    """(source, object) for every object in the files, `kind: List` items unpacked."""
    objects: list[tuple[str, Obj]] = []
    for path in paths:
        if path == "-":
            text = stdin_text if stdin_text is not None else sys.stdin.read()
            source = "<stdin>"
        else:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise InputError(f"{path}: {exc.strerror or exc}") from None
            source = path
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise InputError(f"{source}: not valid YAML: {exc}") from None
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict):
                raise InputError(f"{source}: expected an object with apiVersion and kind, got "
                                 f"{type(document).__name__}")
            if document.get("kind") == "List" or str(document.get("kind", "")).endswith("List"):
                items = document.get("items") or []
                if not isinstance(items, list):
                    raise InputError(f"{source}: {document.get('kind')}.items must be a list")
                objects.extend((source, item) for item in items if item is not None)
            else:
                objects.append((source, document))
    return objects


def _describe(obj: Obj) -> str:
    return f"{obj.get('kind')} {namespace_of(obj) or 'default'}/{name_of(obj) or '?'}"


def _check_ip(source: str, obj: Obj, field: str, value: Any) -> None:
    if not isinstance(value, str) or ip_family_of(value) is None:
        raise InputError(f"{source}: {_describe(obj)}: {field}: invalid IP address {value!r}")


def _check_port(source: str, obj: Obj, field: str, value: Any, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 65535:
        raise InputError(f"{source}: {_describe(obj)}: {field}: must be a port number 1-65535, got {value!r}")


def validate(source: str, obj: Obj) -> None:
    """The checks the apiserver would have made on the fields the proxy reads."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise InputError(f"{source}: {obj.get('kind')}: metadata.name is required")
    kind = obj.get("kind")
    if kind == "Service":
        spec = spec_of(obj)
        for index, ip in enumerate(spec.get("clusterIPs") or []):
            if ip != "None":
                _check_ip(source, obj, f"spec.clusterIPs[{index}]", ip)
        cluster_ip = spec.get("clusterIP")
        if cluster_ip not in (None, "", "None"):
            _check_ip(source, obj, "spec.clusterIP", cluster_ip)
        for index, ip in enumerate(spec.get("externalIPs") or []):
            _check_ip(source, obj, f"spec.externalIPs[{index}]", ip)
        for index, port in enumerate(spec.get("ports") or []):
            if not isinstance(port, dict):
                raise InputError(f"{source}: {_describe(obj)}: spec.ports[{index}] must be an object")
            _check_port(source, obj, f"spec.ports[{index}].port", port.get("port"))
            _check_port(source, obj, f"spec.ports[{index}].nodePort", port.get("nodePort"), required=False)
            if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                raise InputError(f"{source}: {_describe(obj)}: spec.ports[{index}].protocol: "
                                 f"must be TCP, UDP or SCTP, got {port.get('protocol')!r}")
        for index, cidr in enumerate(spec.get("loadBalancerSourceRanges") or []):
            try:
                ipaddress.ip_network(str(cidr).strip(), strict=False)
            except ValueError:
                raise InputError(f"{source}: {_describe(obj)}: spec.loadBalancerSourceRanges[{index}]: "
                                 f"invalid CIDR {cidr!r}") from None
    elif kind == "EndpointSlice":
        address_type = obj.get("addressType")
        if address_type not in ("IPv4", "IPv6", "FQDN"):
            raise InputError(f"{source}: {_describe(obj)}: addressType: must be IPv4, IPv6 or FQDN, "
                             f"got {address_type!r}")
        for index, endpoint in enumerate(obj.get("endpoints") or []):
            if not isinstance(endpoint, dict) or not endpoint.get("addresses"):
                raise InputError(f"{source}: {_describe(obj)}: endpoints[{index}].addresses is required")
            if address_type != "FQDN":
                for j, ip in enumerate(endpoint["addresses"]):
                    _check_ip(source, obj, f"endpoints[{index}].addresses[{j}]", ip)
        for index, port in enumerate(obj.get("ports") or []):
            if not isinstance(port, dict):
                raise InputError(f"{source}: {_describe(obj)}: ports[{index}] must be an object")
            _check_port(source, obj, f"ports[{index}].port", port.get("port"), required=False)


def node_addresses_of(objects: list[tuple[str, Obj]], node_name: str) -> list[str]:
    """The addresses of the node render() renders for (named, or the only Node given)."""
    nodes = {obj["metadata"]["name"]: obj for _, obj in objects if obj.get("kind") == "Node"}
    if not node_name and len(nodes) == 1:
        node_name = next(iter(nodes))
    return list(node_addresses(nodes.get(node_name, {})))


def render(args: argparse.Namespace, objects: list[tuple[str, Obj]]) -> tuple[str, list[str]]:
    """(iptables-restore text, notes for stderr)."""
    notes: list[str] = []
    services: list[Obj] = []
    slices: list[Obj] = []
    nodes: dict[str, Obj] = {}
    for source, obj in objects:
        kind = obj.get("kind")
        if kind in ("Service", "EndpointSlice", "Node"):
            validate(source, obj)
        if kind == "Service":
            services.append(obj)
            spec = spec_of(obj)
            if spec.get("type") != "ExternalName" and not spec.get("clusterIP") and not spec.get("clusterIPs"):
                notes.append(f"{source}: {_describe(obj)} has no clusterIP yet (the apiserver allocates one); "
                             "it gets no rules")
        elif kind == "EndpointSlice":
            slices.append(obj)
        elif kind == "Node":
            nodes[obj["metadata"]["name"]] = obj
        elif kind == "Endpoints":
            notes.append(f"{source}: ignoring {_describe(obj)}: kube-proxy reads EndpointSlices only")

    node_name = args.node
    if not node_name and len(nodes) == 1:
        node_name = next(iter(nodes))
    node = nodes.get(node_name, {})
    node_labels = labels_of(node)

    family = IPV6 if args.family == "ipv6" else IPV4
    try:
        cidrs = flags.cluster_cidrs(args.cluster_cidr, DEFAULT_CLUSTER_CIDRS)
        node_ips = flags.node_ips(args.node_ip) or node_addresses(node)
        nodeport_addresses = flags.nodeport_addresses(args.nodeport_addresses)
    except flags.FlagError as exc:
        raise InputError(str(exc)) from None

    state = build_model(services, slices, node_name, node_labels, family=family)
    notes.extend(state.warnings)
    config = ProxyConfig(family=family, cluster_cidrs=tuple(cidrs), node_ips=node_ips,
                         masquerade_all=args.masquerade_all, nodeport_addresses=nodeport_addresses)
    return render_iptables(plan(state, config)).text, notes


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return int(exc.code or 0)
    try:
        text, notes = render(args, load_documents(args.filename))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
