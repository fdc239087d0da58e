"""`svcnet proxy render`: print the rules kube-proxy would write for some manifests, without a cluster.

    svcnet proxy render -f FILE... [--node|--hostname-override NAME] [--proxy-mode iptables|nftables]
                        [--family ipv4|ipv6] [--config KUBE-PROXY-CONFIG.yaml] [--node-ip IP]...
                        [kube-proxy's flags: --cluster-cidr CIDR[,CIDR] --detect-local-mode MODE
                         --pod-bridge-interface NAME --pod-interface-name-prefix PREFIX
                         --iptables-masquerade-bit N --masquerade-all --nodeport-addresses CIDR,... ...]

Reads Services, EndpointSlices and Nodes from YAML or JSON manifests ("-" is
stdin; multi-document files and `kind: List` work; other kinds are ignored,
Endpoints with a note, since kube-proxy reads only EndpointSlices) and prints
the ruleset for the node: iptables-restore input in iptables mode, the nftables
transaction (one `add ...` line per object, as kube-proxy's tests dump it) in
nftables mode. The endpoints whose nodeName is that node are its local ones,
and the Node object, when given, supplies its topology labels, addresses and
podCIDRs (for --detect-local-mode NodeCIDR). kube-proxy's flags and its
KubeProxyConfiguration file (--config) mean what they mean to kube-proxy
(svcnet.proxy.kpconfig). Bad input is reported on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from svcnet.api.objects import labels_of, name_of, namespace_of, spec_of
from svcnet.proxy import flags, kpconfig
from svcnet.proxy.iptables import render_iptables
from svcnet.proxy.model import IPV4, IPV6, build_model, ip_family_of, node_addresses, service_cidrs_of
from svcnet.proxy.nftables import dump_nftables
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
    parser.add_argument("--node", "--hostname-override", dest="node", default="",
                        help="the node to render for (its endpoints are local)")
    parser.add_argument("--family", default="ipv4", choices=["ipv4", "ipv6"], help="IP family (default ipv4)")
    add_policy_flags(parser)
    return parser


def add_policy_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                     default_cluster_cidrs: Sequence[str] = DEFAULT_CLUSTER_CIDRS) -> None:
    """The flags that shape the rules, shared by `proxy render`/`trace` and the daemon (`proxy run`):
    kube-proxy's own (svcnet.proxy.kpconfig), and --node-ip."""
    kpconfig.add_kube_proxy_flags(parser, default_cluster_cidrs)
    parser.add_argument("--node-ip", action="append", default=[], metavar="IP",
                        help="the node's address(es) (default: from the Node object)")


def read_config_file(path: str | None) -> str | None:
    """The text of --config FILE (None without one); InputError when it cannot be read."""
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            data = file.read(kpconfig.MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"--config {path}: {exc.strerror or exc}") from None
    if len(data) > kpconfig.MAX_CONFIG_BYTES:
        raise InputError(f"--config {path}: larger than {kpconfig.MAX_CONFIG_BYTES} bytes: not a {kpconfig.KIND}")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InputError(f"--config {path}: not UTF-8 text") from None


def resolve_settings(args: argparse.Namespace, default_cluster_cidrs: Sequence[str] = DEFAULT_CLUSTER_CIDRS,
                     ) -> tuple[kpconfig.KubeProxySettings, list[str]]:
    """kube-proxy's configuration from the flags and --config; InputError says what is wrong."""
    text = read_config_file(getattr(args, "config", None))
    try:
        return kpconfig.resolve(args, default_cluster_cidrs, text)
    except flags.FlagError as exc:
        raise InputError(str(exc)) from None
    except kpconfig.ConfigError as exc:
        raise InputError(f"--config {args.config}: {exc}") from None


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
    """(the ruleset's text in the proxy mode's form, notes for stderr)."""
    settings, notes = resolve_settings(args)
    services, slices, nodes = _sort_objects(objects, notes)
    node_name = args.node or settings.hostname_override
    if not node_name and len(nodes) == 1:
        node_name = next(iter(nodes))
    node = nodes.get(node_name, {})
    family = IPV6 if args.family == "ipv6" else IPV4
    try:
        node_ips = flags.node_ips(args.node_ip) or node_addresses(node)
    except flags.FlagError as exc:
        raise InputError(str(exc)) from None
    state = build_model(services, slices, node_name, labels_of(node), family=family)
    notes.extend(state.warnings)
    config = proxy_config(settings, family, node_ips, node_pod_cidrs(node))
    if settings.mode == kpconfig.MODE_NFTABLES:
        cidrs = service_cidrs_of(obj for _, obj in objects if obj.get("kind") == "ServiceCIDR")
        return dump_nftables(plan(state, replace(config, service_cidrs=cidrs))), notes
    return render_iptables(plan(state, config)).text, notes


def proxy_config(settings: kpconfig.KubeProxySettings, family: str, node_ips: tuple[str, ...],
                 pod_cidrs: tuple[str, ...]) -> ProxyConfig:
    """The plan's settings for one family, from kube-proxy's configuration."""
    return ProxyConfig(
        family=family, cluster_cidrs=settings.cluster_cidrs, node_ips=node_ips,
        masquerade_bit=settings.masquerade_bit, masquerade_all=settings.masquerade_all,
        nodeport_addresses=settings.nodeport_addresses, localhost_nodeports=settings.localhost_nodeports,
        detect_local_mode=settings.detect_local_mode, node_pod_cidrs=pod_cidrs,
        bridge_interface=settings.bridge_interface, interface_name_prefix=settings.interface_name_prefix,
        conntrack_tcp_be_liberal=settings.conntrack_tcp_be_liberal)


def node_pod_cidrs(node: Obj | None) -> tuple[str, ...]:
    """The Node's spec.podCIDRs (or the older single spec.podCIDR): NodeCIDR mode's local pods."""
    spec = spec_of(node) if node else {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return tuple(str(c) for c in cidrs if isinstance(c, str))


def _sort_objects(objects: list[tuple[str, Obj]], notes: list[str],
                  ) -> tuple[list[Obj], list[Obj], dict[str, Obj]]:
    """(Services, EndpointSlices, Nodes by name), each checked; notes about what is left out."""
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
    return services, slices, nodes


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
