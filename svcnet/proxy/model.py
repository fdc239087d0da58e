"""The proxy's view of the cluster: neutral service-port and endpoint values.

kube-proxy never works on Service and EndpointSlice objects directly: its
change trackers turn them into ServicePort and Endpoint infos
(pkg/proxy/serviceport.go, endpoint.go, endpointslicecache.go), one map per IP
family. This module does the same from plain dicts (the objects as the API
serves them), so the plan and every renderer share one reading of the API:

- a Service is skipped when it is ExternalName, headless, has no cluster IP of
  this family, or carries the service-proxy-name / headless labels (kube-proxy's
  informers filter those out);
- each Service port becomes a ServicePortInfo keyed by ServicePortName
  (namespace, name, port name, protocol); externalIPs, LoadBalancer ingress IPs
  (VIP mode only) and loadBalancerSourceRanges are filtered to this family;
- EndpointSlices are grouped by their kubernetes.io/service-name label; each
  slice port gives the endpoints for the service port of the same name and
  protocol; endpoints are deduplicated by "IP:port" (preferring the local copy)
  and sorted by that string, which is the order kube-proxy writes them in
  (so 10.244.1.10 comes before 10.244.1.8).

Nothing here does I/O.
"""
from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svcnet.api.objects import (
    labels_of,
    name_of,
    namespace_of,
    slice_service_key,
    spec_of,
    status_of,
)

Obj = Mapping[str, Any]

IPV4 = "IPv4"
IPV6 = "IPv6"
FAMILIES = (IPV4, IPV6)

LABEL_SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_ZONE = "topology.kubernetes.io/zone"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"

# The apiserver defaults sessionAffinityConfig.clientIP.timeoutSeconds to this.
DEFAULT_STICKY_MAX_AGE_SECONDS = 10800


@dataclass(frozen=True, order=True)
class ServicePortName:
    """One port of one Service: kube-proxy's proxy.ServicePortName."""

    namespace: str
    name: str
    port: str
    protocol: str  # "TCP", "UDP" or "SCTP", as the API spells it

    @property
    def service_key(self) -> str:
        """"namespace/name": what a change tracker reports as changed."""
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        # Upstream's String(): the port name is appended only when there is one.
        return f"{self.namespace}/{self.name}:{self.port}" if self.port else f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePortInfo:
    """What the proxy needs of one service port, in one IP family."""

    name: ServicePortName
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_vips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()  # normalized CIDRs of this family
    session_affinity_client_ip: bool = False
    sticky_max_age_seconds: int = 0
    health_check_node_port: int = 0
    external_policy_local: bool = False
    internal_policy_local: bool = False

    @property
    def protocol(self) -> str:
        return self.name.protocol

    @property
    def externally_accessible(self) -> bool:
        return self.node_port != 0 or bool(self.load_balancer_vips) or bool(self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        # Even with externalTrafficPolicy Local, external traffic from pods and
        # the node short-circuits to the cluster endpoints.
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible)


@dataclass(frozen=True)
class EndpointInfo:
    """One endpoint of one service port: kube-proxy's BaseEndpointInfo."""

    ip: str
    port: int
    node_name: str = ""
    zone: str = ""
    is_local: bool = False
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    zone_hints: frozenset[str] = frozenset()

    @property
    def address(self) -> str:
        """"IP:port", with brackets for IPv6 (Go's net.JoinHostPort)."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    def __str__(self) -> str:
        return self.address


@dataclass(frozen=True)
class ProxyState:
    """Everything one node's proxy knows, for one IP family."""

    family: str
    node_name: str
    node_labels: tuple[tuple[str, str], ...]
    service_ports: tuple[ServicePortInfo, ...]  # sorted by name
    endpoints: Mapping[ServicePortName, tuple[EndpointInfo, ...]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what was ignored, as kube-proxy would log it

    def endpoints_for(self, name: ServicePortName) -> tuple[EndpointInfo, ...]:
        return self.endpoints.get(name, ())

    @property
    def zone(self) -> str:
        return dict(self.node_labels).get(LABEL_ZONE, "")

    def service_keys(self) -> frozenset[str]:
        return frozenset(sp.name.service_key for sp in self.service_ports)


# --- Services ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1 << 17)
def _parse_ip(address: str) -> tuple[str, str] | None:
    """(family, canonical text) of an IP address, or None. Cached: every sync reads every endpoint."""
    text = address.strip()
    try:
        # inet_pton is strict (no leading zeros, four octets) like ipaddress, and much faster.
        return IPV4, socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except OSError:
        pass
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return (IPV6 if ip.version == 6 else IPV4), str(ip)


def ip_family_of(address: str) -> str | None:
    """IPv4, IPv6, or None when the string is not an IP address."""
    parsed = _parse_ip(address) if isinstance(address, str) else None
    return parsed[0] if parsed else None


def _canonical_ip(address: str) -> str:
    parsed = _parse_ip(address)
    if parsed is None:
        raise ValueError(f"{address!r} does not appear to be an IPv4 or IPv6 address")
    return parsed[1]


def cluster_ip_for_family(service: Obj, family: str) -> str:
    """The Service's cluster IP of this family, or "" (upstream GetClusterIPByFamily)."""
    spec = spec_of(service)
    families = spec.get("ipFamilies") or []
    cluster_ips = spec.get("clusterIPs") or []
    if not families:
        ip = spec.get("clusterIP") or ""
        if not ip or ip == "None":
            return ""
        return ip if ip_family_of(ip) == family else ""
    for index, fam in enumerate(families):
        if fam == family and index < len(cluster_ips):
            return cluster_ips[index]
    return ""


def should_skip_service(service: Obj) -> bool:
    """Services kube-proxy never programs: ExternalName, headless, or meant for another proxy."""
    labels = labels_of(service)
    if LABEL_SERVICE_PROXY_NAME in labels or LABEL_HEADLESS in labels:
        return True
    spec = spec_of(service)
    if spec.get("type") == "ExternalName":
        return True
    cluster_ip = spec.get("clusterIP") or ""
    return cluster_ip in ("", "None")


def _externally_accessible_service(spec: Obj) -> bool:
    kind = spec.get("type") or "ClusterIP"
    return kind in ("LoadBalancer", "NodePort") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _source_ranges(spec: Obj, family: str) -> tuple[str, ...]:
    ranges: list[str] = []
    for raw in spec.get("loadBalancerSourceRanges") or []:
        try:
            net = ipaddress.ip_network(str(raw).strip(), strict=False)
        except ValueError:
            continue  # upstream ignores what it cannot parse
        if (net.version == 6) == (family == IPV6):
            ranges.append(str(net))
    return tuple(ranges)


def _vip_mode_ingress_ips(service: Obj, family: str) -> tuple[str, ...]:
    ingress = (status_of(service).get("loadBalancer") or {}).get("ingress") or []
    ips: list[str] = []
    for entry in ingress:
        ip = (entry or {}).get("ip") or ""
        if not ip:
            continue
        # ipMode Proxy: the load balancer delivers to the node itself, so no VIP rules.
        if (entry.get("ipMode") or "VIP") != "VIP":
            continue
        if ip_family_of(ip) == family:
            ips.append(_canonical_ip(ip))
    return tuple(ips)


def service_port_infos(service: Obj, family: str) -> tuple[ServicePortInfo, ...]:
    """The ServicePortInfos of one Service in one family (empty when kube-proxy skips it)."""
    if should_skip_service(service):
        return ()
    cluster_ip = cluster_ip_for_family(service, family)
    if not cluster_ip or cluster_ip == "None" or ip_family_of(cluster_ip) != family:
        return ()
    spec = spec_of(service)
    namespace = namespace_of(service) or "default"
    name = name_of(service)
    external_local = _externally_accessible_service(spec) and spec.get("externalTrafficPolicy") == "Local"
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    client_ip = spec.get("sessionAffinity") == "ClientIP"
    sticky = 0
    if client_ip:
        timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds"))
        sticky = int(timeout) if timeout else DEFAULT_STICKY_MAX_AGE_SECONDS
    external_ips = tuple(_canonical_ip(ip) for ip in spec.get("externalIPs") or [] if ip_family_of(ip) == family)
    health_check = 0
    if spec.get("type") == "LoadBalancer" and external_local:
        health_check = int(spec.get("healthCheckNodePort") or 0)
    common = dict(
        cluster_ip=_canonical_ip(cluster_ip),
        external_ips=external_ips,
        load_balancer_vips=_vip_mode_ingress_ips(service, family),
        load_balancer_source_ranges=_source_ranges(spec, family),
        session_affinity_client_ip=client_ip,
        sticky_max_age_seconds=sticky,
        health_check_node_port=health_check,
        external_policy_local=external_local,
        internal_policy_local=internal_local,
    )
    infos = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        infos.append(ServicePortInfo(
            name=ServicePortName(namespace, name, port.get("name") or "", protocol),
            port=int(port.get("port") or 0),
            node_port=int(port.get("nodePort") or 0),
            **common,
        ))
    return tuple(infos)


# --- EndpointSlices ----------------------------------------------------------------------------------------

def _condition(conditions: Obj, key: str, default: bool) -> bool:
    value = conditions.get(key)
    return default if value is None else bool(value)


def slice_endpoints(
    endpoint_slice: Obj, family: str, node_name: str, warnings: list[str] | None = None,
) -> dict[ServicePortName, list[EndpointInfo]]:
    """The endpoints one slice contributes, per service port (before deduplication)."""
    key, slice_name = slice_service_key(endpoint_slice), name_of(endpoint_slice)
    labels = labels_of(endpoint_slice)
    # a slice without a name is not tracked (the change tracker files slices by name)
    if key is None or not slice_name or LABEL_HEADLESS in labels or LABEL_SERVICE_PROXY_NAME in labels:
        return {}
    if endpoint_slice.get("addressType") not in (IPV4, IPV6):
        return {}  # FQDN slices are not proxied
    namespace, service = key.split("/", 1)
    result: dict[ServicePortName, list[EndpointInfo]] = {}
    for port in endpoint_slice.get("ports") or []:
        if port.get("name") is None:
            if warnings is not None:
                warnings.append(f"EndpointSlice {namespace}/{slice_name}: ignoring a port with no name")
            continue
        number = int(port.get("port") or 0)
        if number == 0:
            if warnings is not None:
                warnings.append(f"EndpointSlice {namespace}/{slice_name}: ignoring port {port['name']!r} "
                                "with no port number")
            continue
        name = ServicePortName(namespace, service, port["name"], port.get("protocol") or "TCP")
        bucket = result.setdefault(name, [])
        for endpoint in endpoint_slice.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            ip = addresses[0]
            if ip_family_of(ip) != family:
                continue
            conditions = endpoint.get("conditions") or {}
            ready = _condition(conditions, "ready", True)
            endpoint_node = endpoint.get("nodeName") or ""
            hints = ((endpoint.get("hints") or {}).get("forZones")) or []
            bucket.append(EndpointInfo(
                ip=_canonical_ip(ip),
                port=number,
                node_name=endpoint_node,
                zone=endpoint.get("zone") or "",
                is_local=bool(node_name) and endpoint_node == node_name,
                ready=ready,
                serving=_condition(conditions, "serving", True),
                terminating=_condition(conditions, "terminating", False),
                zone_hints=frozenset(h.get("name", "") for h in hints if h.get("name")),
            ))
    return result


def merge_endpoints(groups: Iterable[Iterable[EndpointInfo]]) -> tuple[EndpointInfo, ...]:
    """Deduplicate by "IP:port" (a local copy wins) and sort by that string, as upstream does."""
    by_address: dict[str, EndpointInfo] = {}
    for group in groups:
        for endpoint in group:
            if endpoint.address not in by_address or endpoint.is_local:
                by_address[endpoint.address] = endpoint
    return tuple(by_address[a] for a in sorted(by_address))


def endpoints_by_port(
    slices: Iterable[Obj], family: str, node_name: str, warnings: list[str] | None = None,
) -> dict[ServicePortName, tuple[EndpointInfo, ...]]:
    """All slices' endpoints, per service port."""
    collected: dict[ServicePortName, list[list[EndpointInfo]]] = {}
    for endpoint_slice in slices:
        for name, endpoints in slice_endpoints(endpoint_slice, family, node_name, warnings).items():
            collected.setdefault(name, []).append(endpoints)
    merged = {name: merge_endpoints(groups) for name, groups in collected.items()}
    return {name: eps for name, eps in merged.items() if eps}


# --- Nodes -------------------------------------------------------------------------------------------------

def node_addresses(node: Obj | None) -> tuple[str, ...]:
    """The Node's InternalIPs, then ExternalIPs (kube-proxy's choice of node IPs)."""
    addresses = status_of(node).get("addresses") or []
    ordered = sorted(addresses, key=lambda a: {"InternalIP": 0, "ExternalIP": 1}.get(a.get("type"), 2))
    return tuple(str(a["address"]) for a in ordered if a.get("type") in ("InternalIP", "ExternalIP")
                 and ip_family_of(str(a.get("address", ""))) is not None)


# --- the whole state ---------------------------------------------------------------------------------------

def build_model(
    services: Iterable[Obj],
    slices: Iterable[Obj],
    node_name: str,
    node_labels: Mapping[str, str] | None = None,
    *,
    family: str = IPV4,
) -> ProxyState:
    """The proxy state of one node for one IP family, from Service and EndpointSlice dicts."""
    if family not in FAMILIES:
        raise ValueError(f"unknown IP family {family!r}; expected IPv4 or IPv6")
    warnings: list[str] = []
    ports: dict[ServicePortName, ServicePortInfo] = {}
    for service in services:
        for info in service_port_infos(service, family):
            ports[info.name] = info
    endpoints = endpoints_by_port(slices, family, node_name, warnings)
    return ProxyState(
        family=family,
        node_name=node_name,
        node_labels=tuple(sorted((node_labels or {}).items())),
        service_ports=tuple(ports[name] for name in sorted(ports)),
        endpoints=endpoints,
        warnings=tuple(warnings),
    )


def service_cidrs_of(service_cidrs: Iterable[Obj]) -> tuple[str, ...]:
    """Every CIDR of the ServiceCIDR objects (networking.k8s.io/v1), deduplicated, in order.

    kube-proxy's nftables mode takes them all (whatever their status) for its
    check that drops traffic to unallocated cluster IPs; entries that are not a
    CIDR are skipped (the apiserver validates them).
    """
    cidrs: dict[str, None] = {}
    for obj in service_cidrs:
        for cidr in spec_of(obj).get("cidrs") or ():
            try:
                cidrs[str(ipaddress.ip_network(str(cidr), strict=False))] = None
            except ValueError:
                continue
    return tuple(cidrs)

