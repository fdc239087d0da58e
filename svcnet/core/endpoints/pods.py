"""What a Service's pods contribute to its endpoints, shared by EndpointSlices and Endpoints.

Both controllers ask the same questions of a pod: does it count at all (it
has an IP and has not finished; terminating only if asked), which of its IPs
belong to which family, does it get a hostname (its subdomain names the
Service), which port number does a Service port's targetPort resolve to on
it, and what targetRef points back at it. The answers live here once.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from svcnet.api.objects import is_being_deleted, is_pod_terminal, metadata_of, spec_of, status_of

Obj = dict[str, Any]
PortTuple = tuple[str, int, str, str]  # (name, port, protocol, appProtocol)

# On the endpoints of a Service without a cluster IP (headless), slices and Endpoints alike.
LABEL_HEADLESS = "service.kubernetes.io/headless"


# ------------------------------------------------------------------ which pods

def pod_ips(pod: Mapping[str, Any]) -> list[str]:
    """status.podIPs, or podIP alone (the API server fills podIPs from podIP the same way)."""
    status = status_of(pod)
    ips = [str(entry.get("ip")) for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def should_pod_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """Upstream's ShouldPodBeInEndpoints: not terminal, has an IP, terminating only if asked."""
    if is_pod_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not is_being_deleted(pod)


def sorted_pods(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods by name: both controllers walk them in this order, so their output is stable."""
    return sorted(pods, key=lambda p: str(metadata_of(p).get("name")))


# -------------------------------------------------------------- what a pod shows

def should_set_hostname(pod: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    hostname = spec_of(pod).get("hostname")
    return bool(hostname) and spec_of(pod).get("subdomain") == metadata_of(service).get("name") \
        and metadata_of(pod).get("namespace") == metadata_of(service).get("namespace")


def pod_target_ref(pod: Mapping[str, Any]) -> Obj:
    """The targetRef an endpoint address carries back to its pod."""
    md = metadata_of(pod)
    return {"kind": "Pod", "namespace": md.get("namespace"), "name": md.get("name"), "uid": md.get("uid")}


def is_ipv6(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return ":" in ip


def normal_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


# ------------------------------------------------------------------- ports

def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The pod's port for a Service port: a number as is; a name looked up in the containers.

    Named ports are searched in the containers, then in sidecars (init
    containers with restartPolicy Always); the protocol must match too.
    """
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if target is None:
        return None
    protocol = service_port.get("protocol") or "TCP"
    spec = spec_of(pod)
    containers = list(spec.get("containers") or [])
    containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def endpoint_port(service_port: Mapping[str, Any], number: int) -> Obj:
    """The endpoint port for a Service port that resolved to number on a pod."""
    port: Obj = {"name": service_port.get("name") or "", "port": number,
                 "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("appProtocol") is not None:
        port["appProtocol"] = service_port["appProtocol"]
    return port


def port_tuple(port: Mapping[str, Any]) -> PortTuple:
    return (str(port.get("name") or ""), int(port.get("port") or 0), str(port.get("protocol") or "TCP"),
            str(port.get("appProtocol") or ""))


# ------------------------------------------------------------------ the Service

def service_ip_set(service: Mapping[str, Any]) -> bool:
    return spec_of(service).get("clusterIP") not in (None, "", "None")


def set_headless_label(labels: dict[str, str], service: Mapping[str, Any]) -> None:
    """Mark endpoint labels headless when the Service has no cluster IP, unmark them otherwise."""
    if service_ip_set(service):
        labels.pop(LABEL_HEADLESS, None)
    else:
        labels[LABEL_HEADLESS] = ""
