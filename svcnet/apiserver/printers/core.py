"""Printers of core/v1 kinds: namespaces, nodes, pods, services, endpoints and events
(pkg/printers/internalversion printNamespace, printNode, printPod, ...)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .columns import AGE, NAME, Column, Printer, wide
from .format import (
    Cell,
    Obj,
    age_cell,
    as_int,
    format_labels,
    get_path,
    join_host_port,
    list_at,
    more_than_three,
    name_cell,
    parse_timestamp,
    since,
    translate_timestamp_since,
)


def _namespace_cells(ns: Obj, now: dt.datetime) -> list[Cell]:
    # core/v1 defaulting fills status.phase with Active.
    phase = str(get_path(ns, "status", "phase", default="") or "Active")
    return [name_cell(ns), phase, age_cell(ns, now)]


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in (get_path(node, "metadata", "labels") or {}).items():
        if key.startswith(_NODE_ROLE_PREFIX) and len(key) > len(_NODE_ROLE_PREFIX):
            roles.add(key[len(_NODE_ROLE_PREFIX):])
        elif key == _NODE_ROLE_LABEL and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, address_type: str) -> str:
    for address in list_at(node, "status", "addresses"):
        if get_path(address, "type") == address_type:
            return str(get_path(address, "address", default=""))
    return "<none>"


def _node_cells(node: Obj, now: dt.datetime) -> list[Cell]:
    ready: Obj | None = None
    for condition in list_at(node, "status", "conditions"):
        if get_path(condition, "type") == "Ready":
            ready = condition  # the last Ready condition wins, as a map keyed by type would
    if ready is None:
        status = ["Unknown"]
    else:
        status = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if get_path(node, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    info = get_path(node, "status", "nodeInfo", default={})
    return [
        name_cell(node),
        ",".join(status),
        _node_roles(node),
        age_cell(node, now),
        str(get_path(info, "kubeletVersion", default="")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        str(get_path(info, "osImage", default="")) or "<unknown>",
        str(get_path(info, "kernelVersion", default="")) or "<unknown>",
        str(get_path(info, "containerRuntimeVersion", default="")) or "<unknown>",
    ]


def _has_true_condition(pod: Obj, condition_type: str) -> bool:
    return any(get_path(c, "type") == condition_type and get_path(c, "status") == "True"
               for c in list_at(pod, "status", "conditions"))


def _terminated_reason(terminated: Obj, prefix: str = "") -> str:
    """A terminated container's reason, or Signal:N / ExitCode:N when it gave none."""
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    signal = as_int(terminated.get("signal"))
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{as_int(terminated.get('exitCode'))}"


@dataclass
class _Restarts:
    """Restart count and the latest finishedAt of a previous container run."""

    count: int = 0
    last: dt.datetime | None = None

    def add(self, status: Obj) -> None:
        self.count += as_int(status.get("restartCount"))
        finished = parse_timestamp(get_path(status, "lastState", "terminated", "finishedAt"))
        if finished is not None and (self.last is None or self.last < finished):
            self.last = finished


def _pod_ready_status_restarts(pod: Obj) -> tuple[int, int, str, _Restarts]:
    """printPod's READY numerator/denominator, STATUS reason and RESTARTS, in upstream's order of rules."""
    spec = get_path(pod, "spec", default={})
    status = get_path(pod, "status", default={})
    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or phase)
    for condition in list_at(status, "conditions"):
        if get_path(condition, "type") == "PodScheduled" and get_path(condition, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {str(get_path(c, "name", default="")): c for c in list_at(spec, "initContainers")}

    def restartable(name: str) -> bool:
        # A sidecar: an init container that keeps running beside the app containers.
        return get_path(init_specs.get(name), "restartPolicy") == "Always"

    total = len(list_at(spec, "containers")) + sum(1 for name in init_specs if restartable(name))
    ready = 0
    all_restarts = _Restarts()
    sidecar_restarts = _Restarts()

    initializing = False
    init_statuses = list_at(status, "initContainerStatuses")
    for index, container in enumerate(init_statuses):
        name = str(container.get("name", ""))
        all_restarts.add(container)
        if restartable(name):
            sidecar_restarts.add(container)
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, dict) and as_int(terminated.get("exitCode")) == 0:
            continue
        if restartable(name) and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            reason = _terminated_reason(terminated, "Init:")
        elif isinstance(waiting, dict) and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    restarts = all_restarts
    if not initializing or _has_true_condition(pod, "Initialized"):
        restarts = sidecar_restarts
        has_running = False
        # Walked backwards so the first container's state has the last word.
        for container in reversed(list_at(status, "containerStatuses")):
            restarts.add(container)
            state = container.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if isinstance(waiting, dict) and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(terminated, dict):
                reason = _terminated_reason(terminated)
            elif container.get("ready") is True and isinstance(state.get("running"), dict):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_true_condition(pod, "Ready") else "NotReady"

    if get_path(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return ready, total, reason, restarts


def _pod_cells(pod: Obj, now: dt.datetime) -> list[Cell]:
    ready, total, reason, restarts = _pod_ready_status_restarts(pod)
    restarts_cell = str(restarts.count)
    if restarts.count != 0 and restarts.last is not None:
        restarts_cell = since(restarts.last, now, f"{restarts.count} (", " ago)")

    status = get_path(pod, "status", default={})
    pod_ips = list_at(status, "podIPs")
    # podIP and podIPs[0] are kept equal by the API; fall back for objects that only set podIP.
    pod_ip = str(get_path(pod_ips[0], "ip", default="")) if pod_ips else str(status.get("podIP") or "")
    gates = list_at(pod, "spec", "readinessGates")
    gates_cell = "<none>"
    if gates:
        conditions = list_at(status, "conditions")
        passing = 0
        for gate in gates:
            for condition in conditions:
                if get_path(condition, "type") == get_path(gate, "conditionType"):
                    if get_path(condition, "status") == "True":
                        passing += 1
                    break  # only the first condition of that type counts
        gates_cell = f"{passing}/{len(gates)}"
    return [
        name_cell(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age_cell(pod, now),
        pod_ip or "<none>",
        str(get_path(pod, "spec", "nodeName", default="")) or "<none>",
        str(status.get("nominatedNodeName") or "") or "<none>",
        gates_cell,
    ]


def _pod_conditions(pod: Obj) -> list[Obj]:
    phase = get_path(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return []


def _load_balancer_ingress(service: Obj) -> list[str]:
    found = set()
    for ingress in list_at(service, "status", "loadBalancer", "ingress"):
        value = get_path(ingress, "ip") or get_path(ingress, "hostname")
        if value:
            found.add(str(value))
    return sorted(found)


def _service_external_ip(service: Obj, service_type: str) -> str:
    external_ips = [str(ip) for ip in list_at(service, "spec", "externalIPs")]
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or "<none>"
    if service_type == "LoadBalancer":
        found = _load_balancer_ingress(service) + external_ips
        return ",".join(found) or "<pending>"
    if service_type == "ExternalName":
        return str(get_path(service, "spec", "externalName", default=""))
    return "<unknown>"


def _service_ports(service: Obj) -> str:
    pieces = []
    for port in list_at(service, "spec", "ports"):
        number = as_int(get_path(port, "port"))
        protocol = get_path(port, "protocol", default="TCP")  # core/v1 defaults protocol to TCP
        node_port = as_int(get_path(port, "nodePort"))
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_cells(service: Obj, now: dt.datetime) -> list[Cell]:
    spec = get_path(service, "spec", default={})
    service_type = str(spec.get("type") or "ClusterIP")  # core/v1 default
    cluster_ips = list_at(spec, "clusterIPs")
    # clusterIPs[0] mirrors clusterIP; headless Services hold "None" there.
    cluster_ip = str(cluster_ips[0]) if cluster_ips else str(spec.get("clusterIP") or "<none>")
    return [
        name_cell(service),
        service_type,
        cluster_ip,
        _service_external_ip(service, service_type),
        _service_ports(service),
        age_cell(service, now),
        format_labels(spec.get("selector")),
    ]


def format_endpoints(endpoints: Obj) -> str:
    """The ENDPOINTS cell: ip:port for each ready address x port in stored order, at most three."""
    subsets = list_at(endpoints, "subsets")
    if not subsets:
        return "<none>"
    shown: list[str] = []
    total = 0
    for subset in subsets:
        addresses = [str(get_path(a, "ip", default="")) for a in list_at(subset, "addresses")]
        ports = list_at(subset, "ports")
        # Headless Services may have no ports: then the bare IPs are listed.
        port_numbers: list[Any] = [get_path(p, "port") for p in ports] if ports else [None]
        for port in port_numbers:
            total += len(addresses)
            for ip in addresses:
                if len(shown) == 3:
                    break
                shown.append(ip if port is None else join_host_port(ip, port))
    return more_than_three(shown, total)


def _endpoints_cells(endpoints: Obj, now: dt.datetime) -> list[Cell]:
    return [name_cell(endpoints), format_endpoints(endpoints), age_cell(endpoints, now)]


def _event_source(event: Obj) -> str:
    component = get_path(event, "source", "component") or get_path(event, "reportingComponent") or ""
    host = get_path(event, "source", "host") or get_path(event, "reportingInstance") or ""
    return f"{component}, {host}" if host else str(component)


def _event_cells(event: Obj, now: dt.datetime) -> list[Cell]:
    first_seen = translate_timestamp_since(event.get("firstTimestamp"), now)
    if parse_timestamp(event.get("firstTimestamp")) is None:
        first_seen = translate_timestamp_since(event.get("eventTime"), now)
    last_seen = translate_timestamp_since(event.get("lastTimestamp"), now)
    if parse_timestamp(event.get("lastTimestamp")) is None:
        last_seen = first_seen
    count = as_int(event.get("count"))
    series = event.get("series")
    if isinstance(series, dict):
        last_seen = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = as_int(series.get("count"))
    elif count == 0:
        count = 1  # events.k8s.io singletons carry no count
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last_seen,
        str(event.get("type") or ""),
        str(event.get("reason") or ""),
        target,
        str(involved.get("fieldPath") or ""),
        _event_source(event),
        str(event.get("message") or "").strip(),
        first_seen,
        count,
        name_cell(event),
    ]


# core/v1 kinds: their columns and cells.
CORE_PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "Namespace"): Printer((
        NAME,
        Column("Status", "string", "The lifecycle phase of the namespace."),
        AGE,
    ), _namespace_cells),
    ("", "Node"): Printer((
        NAME,
        Column("Status", "string", "Whether the node is Ready, and whether scheduling is disabled."),
        Column("Roles", "string", "Roles taken from the node's node-role.kubernetes.io/ labels."),
        AGE,
        Column("Version", "string", "The kubelet version the node reports."),
        wide("Internal-IP", "The node's first InternalIP address."),
        wide("External-IP", "The node's first ExternalIP address."),
        wide("OS-Image", "The operating system image the node reports."),
        wide("Kernel-Version", "The kernel version the node reports."),
        wide("Container-Runtime", "The container runtime and version the node reports."),
    ), _node_cells),
    ("", "Pod"): Printer((
        NAME,
        Column("Ready", "string", "Ready containers out of all containers in the pod."),
        Column("Status", "string", "The pod's phase or the most telling container state."),
        Column("Restarts", "string", "Container restarts, and how long ago the latest one was."),
        AGE,
        wide("IP", "The pod's first IP address."),
        wide("Node", "The node the pod is bound to."),
        wide("Nominated Node", "The node the scheduler nominated through preemption."),
        wide("Readiness Gates", "Readiness gates whose condition is True, out of all gates."),
    ), _pod_cells, _pod_conditions),
    ("", "Service"): Printer((
        NAME,
        Column("Type", "string", "How the service is exposed."),
        Column("Cluster-IP", "string", "The virtual IP inside the cluster; None for headless services."),
        Column("External-IP", "string", "Addresses outside the cluster that reach the service."),
        Column("Port(s)", "string", "Service ports, with node ports, and protocols."),
        AGE,
        wide("Selector", "Labels of the pods the service sends traffic to."),
    ), _service_cells),
    ("", "Endpoints"): Printer((
        NAME,
        Column("Endpoints", "string", "Ready addresses and ports behind the service."),
        AGE,
    ), _endpoints_cells),
    ("", "Event"): Printer((
        Column("Last Seen", "string", "Time since the event last happened."),
        Column("Type", "string", "Normal or Warning."),
        Column("Reason", "string", "A short machine-readable reason for the event."),
        Column("Object", "string", "The object the event is about."),
        wide("Subobject", "The part of the object the event is about, such as a container."),
        wide("Source", "The component, and host, that reported the event."),
        Column("Message", "string", "A human-readable description of the event."),
        wide("First Seen", "Time since the event first happened."),
        wide("Count", "How many times the event has happened."),
        Column("Name", "string", NAME.description, priority=1, format="name"),
    ), _event_cells),
}
