"""kube-proxy's service health server, as decisions (pkg/proxy/healthcheck/service_health.go).

A Service of type LoadBalancer with externalTrafficPolicy Local gets a
healthCheckNodePort from the API server. On every node the proxy serves HTTP on
that port so that a load balancer sends traffic only to nodes that have a ready
endpoint of the Service: any request (any path, any method) is answered with

    {
      "service": {
        "namespace": "default",
        "name": "web"
      },
      "localEndpoints": 1,
      "serviceProxyHealthy": true
    }

(indented with tabs, not spaces as here; no final newline), status 200 when the node has local ready
endpoints and the proxy is healthy, 503 otherwise, and the headers
Content-Type: application/json, X-Content-Type-Options: nosniff and
X-Load-Balancing-Endpoint-Weight: <localEndpoints> (kube-proxy >= 1.28).

What is decided here, with no sockets: which Services need a listener (after
each successful sync, as kube-proxy's SyncServices), on which addresses
(--nodeport-addresses: the node's matching addresses, else every address), how
many local ready endpoints each has (distinct IPs: a pod behind two ports counts
once, as upstream's LocalReadyEndpoints), and the answer. The daemon opens and
closes the sockets this table asks for.

Unlike kube-proxy, which runs one server per IP family (in dual stack both try
the same wildcard port and the second fails), svcnet runs one per node: a
Service's port is taken from its first family, its count is the largest of its
families' counts.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from svcnet.proxy.model import IPV6, EndpointInfo, ServicePortInfo

CONTENT_TYPE = "application/json"
WEIGHT_HEADER = "X-Load-Balancing-Endpoint-Weight"
# Every address of the node: "::" takes IPv4 too (a dual-stack socket, as Go's wildcard listen).
ANY_IPV4 = "0.0.0.0"
ANY_IPV6 = "::"


@dataclass(frozen=True)
class HealthCheckSnapshot:
    """What one sync leaves for the health server: ports and local ready endpoints per "namespace/name"."""

    ports: Mapping[str, int] = field(default_factory=dict)
    local_endpoints: Mapping[str, int] = field(default_factory=dict)
    addresses: tuple[str, ...] = (ANY_IPV4,)


@dataclass(frozen=True)
class Listener:
    """One Service's health check: its port on each address."""

    service: str  # "namespace/name"
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ListenerChanges:
    close: tuple[Listener, ...] = ()
    open: tuple[Listener, ...] = ()


@dataclass(frozen=True)
class ServiceHealthAnswer:
    status: int
    body: str
    headers: tuple[tuple[str, str], ...]


def health_check_port(infos: Iterable[ServicePortInfo]) -> int:
    """The Service's healthCheckNodePort as the proxy reads it (0 unless LoadBalancer + Local)."""
    return next((info.health_check_node_port for info in infos if info.health_check_node_port), 0)


def local_ready_endpoints(endpoints: Iterable[EndpointInfo]) -> int:
    """Distinct IPs of ready endpoints on this node. Terminating ones do not count, even while they still
    serve: a node left with only those must fail the check so the load balancer moves away."""
    return len({ep.ip for ep in endpoints if ep.is_local and ep.ready})


def listen_addresses(nodeport_ips: Iterable[tuple[str, ...] | None], families: Iterable[str]) -> tuple[str, ...]:
    """Where health checks listen: the addresses --nodeport-addresses selects (per family, None when it
    selects every address), or the wildcard when any family takes every address or none matched."""
    chosen: list[str] = []
    for ips in nodeport_ips:
        if ips is None:
            return (ANY_IPV6,) if IPV6 in tuple(families) else (ANY_IPV4,)
        chosen.extend(ip for ip in ips if ip not in chosen)
    # kube-proxy falls back to every address when it cannot find a matching one.
    return tuple(chosen) or ((ANY_IPV6,) if IPV6 in tuple(families) else (ANY_IPV4,))


def merge_families(per_family: Iterable[Mapping[str, tuple[int, int]]]) -> tuple[dict[str, int], dict[str, int]]:
    """(ports, local endpoints) from each family's {service: (port, count)}: first port, largest count."""
    ports: dict[str, int] = {}
    counts: dict[str, int] = {}
    for family in per_family:
        for service, (port, count) in family.items():
            ports.setdefault(service, port)
            counts[service] = max(counts.get(service, 0), count)
    return ports, counts


def health_body(service: str, local_endpoints: int, proxy_healthy: bool) -> str:
    namespace, _, name = service.partition("/")
    return (f'{{\n\t"service": {{\n\t\t"namespace": {json.dumps(namespace)},\n\t\t"name": {json.dumps(name)}\n'
            f'\t}},\n\t"localEndpoints": {local_endpoints},\n'
            f'\t"serviceProxyHealthy": {"true" if proxy_healthy else "false"}\n}}')


class ServiceHealthTable:
    """The open health checks and their counts; what to open and close after a sync."""

    def __init__(self) -> None:
        self._open: dict[str, Listener] = {}
        self._local_endpoints: dict[str, int] = {}

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(self._open[s] for s in sorted(self._open))

    def sync_services(self, ports: Mapping[str, int], addresses: tuple[str, ...]) -> ListenerChanges:
        """Close what is no longer wanted (or moved port or addresses); open what is missing. A listener
        counts as open once `opened` says so: one that failed is tried again after the next sync."""
        close = []
        for service, listener in list(self._open.items()):
            if ports.get(service) != listener.port or listener.addresses != addresses:
                close.append(self._open.pop(service))
                self._local_endpoints.pop(service, None)
        opening = tuple(Listener(service, port, addresses) for service, port in sorted(ports.items())
                        if service not in self._open)
        return ListenerChanges(close=tuple(close), open=opening)

    def opened(self, listener: Listener) -> None:
        self._open[listener.service] = listener

    def sync_endpoints(self, local_endpoints: Mapping[str, int]) -> None:
        """Counts for the open services; one missing from the map has none on this node."""
        self._local_endpoints = {service: local_endpoints.get(service, 0) for service in self._open}

    def answer(self, service: str, proxy_healthy: bool) -> ServiceHealthAnswer | None:
        """The answer to any request on the service's port; None once its listener is closed."""
        if service not in self._open:
            return None
        count = self._local_endpoints.get(service, 0)
        return ServiceHealthAnswer(
            status=200 if count and proxy_healthy else 503,
            body=health_body(service, count, proxy_healthy),
            headers=(("Content-Type", CONTENT_TYPE), ("X-Content-Type-Options", "nosniff"),
                     (WEIGHT_HEADER, str(count))),
        )
