"""Server-side Table output (meta.k8s.io/v1 Table), as kube-apiserver prints it.

kubectl 1.32 asks for `as=Table` on every `get` and prints the columns the
server sends, so these printers decide what `kubectl get` shows. Columns,
cell values and their types follow kube-apiserver's internal printers
(pkg/printers/internalversion); the server always generates the wide form
and kubectl hides priority>0 columns unless `-o wide`.

Pure: `now` is passed in, nothing here reads a clock.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from svcnet.api import errors, jsoncodec
from svcnet.api.resources import Resource

Obj = dict[str, Any]
Cell = str | int

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

# ---------------------------------------------------------------------------
# Time: duration.HumanDuration and translateTimestampSince
# ---------------------------------------------------------------------------

_MICROS_PER_SECOND = 1_000_000


def human_duration(delta: dt.timedelta) -> str:
    """Two or three significant figures of a duration: "4m29s", "16m", "3h5m", "2d3h", "3y12d".

    Up to one second in the future still reads "0s" (clock skew between
    machines); further in the future is "<invalid>".
    """
    micros = delta // dt.timedelta(microseconds=1)
    # Go converts to whole seconds by truncating toward zero, not flooring.
    seconds = -((-micros) // _MICROS_PER_SECOND) if micros < 0 else micros // _MICROS_PER_SECOND
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An RFC 3339 Time or MicroTime, or None for missing, unparsable or Go's zero time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if parsed.year <= 1:  # 0001-01-01T00:00:00Z is Go's zero time: "never"
        return None
    return parsed


def translate_timestamp_since(value: Any, now: dt.datetime) -> str:
    """How long ago a timestamp was, or "<unknown>" when it is unset."""
    when = parse_timestamp(value)
    if when is None:
        return "<unknown>"
    return human_duration(_aware(now) - when)


def _aware(now: dt.datetime) -> dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------
# Small formatters shared by several kinds
# ---------------------------------------------------------------------------


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    """obj[path0][path1]..., tolerating missing keys and nulls anywhere."""
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def _list(obj: Any, *path: str) -> list[Any]:
    value = _get(obj, *path)
    return value if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: sorted k=v pairs, or "<none>"."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


class _BadSelector(ValueError):
    """A label selector that LabelSelectorAsSelector would reject."""


def _label_selector_string(selector: Any) -> str:
    """LabelSelectorAsSelector(...).String(): requirements sorted by key; "" selects all or nothing."""
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = []
    match_labels = selector.get("matchLabels") or {}
    for key, value in match_labels.items():
        requirements.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key = str(expr.get("key", ""))
        operator = expr.get("operator")
        values = sorted(str(v) for v in expr.get("values") or [])
        if operator in ("In", "NotIn"):
            if not values:
                raise _BadSelector(f"{operator} needs values")
            word = "in" if operator == "In" else "notin"
            requirements.append((key, f"{key} {word} ({','.join(values)})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            raise _BadSelector(f"{operator!r} is not a valid label selector operator")
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: the selector string, "<none>" when empty, "<error>" when invalid."""
    try:
        text = _label_selector_string(selector)
    except _BadSelector:
        return "<error>"
    return text or "<none>"


def _join_host_port(host: str, port: Any) -> str:
    """net.JoinHostPort: IPv6 literals get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _container_cells(containers: list[Any]) -> tuple[str, str]:
    """The CONTAINERS and IMAGES cells: every template container on one line."""
    names = ",".join(str(_get(c, "name", default="")) for c in containers)
    images = ",".join(str(_get(c, "image", default="")) for c in containers)
    return names, images


def _template_containers(obj: Obj) -> list[Any]:
    return _list(obj, "spec", "template", "spec", "containers")


def _replicas(obj: Obj) -> int:
    # apps/v1 defaulting sets spec.replicas to 1 when it is left out.
    return _int(_get(obj, "spec", "replicas"), 1)


def _age(obj: Obj, now: dt.datetime) -> str:
    return translate_timestamp_since(_get(obj, "metadata", "creationTimestamp"), now)


def _name(obj: Obj) -> str:
    return str(_get(obj, "metadata", "name", default=""))


def _more_than_three(items: list[str], total: int) -> str:
    """The "a,b,c + N more..." shape shared by the endpoint printers."""
    shown = ",".join(items)
    return f"{shown} + {total - 3} more..." if total > 3 else shown


# ---------------------------------------------------------------------------
# Per-kind cells
# ---------------------------------------------------------------------------


def _namespace_cells(ns: Obj, now: dt.datetime) -> list[Cell]:
    # core/v1 defaulting fills status.phase with Active.
    phase = str(_get(ns, "status", "phase", default="") or "Active")
    return [_name(ns), phase, _age(ns, now)]


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in (_get(node, "metadata", "labels") or {}).items():
        if key.startswith(_NODE_ROLE_PREFIX) and len(key) > len(_NODE_ROLE_PREFIX):
            roles.add(key[len(_NODE_ROLE_PREFIX):])
        elif key == _NODE_ROLE_LABEL and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, address_type: str) -> str:
    for address in _list(node, "status", "addresses"):
        if _get(address, "type") == address_type:
            return str(_get(address, "address", default=""))
    return "<none>"


def _node_cells(node: Obj, now: dt.datetime) -> list[Cell]:
    ready: Obj | None = None
    for condition in _list(node, "status", "conditions"):
        if _get(condition, "type") == "Ready":
            ready = condition  # the last Ready condition wins, as a map keyed by type would
    if ready is None:
        status = ["Unknown"]
    else:
        status = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if _get(node, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    info = _get(node, "status", "nodeInfo", default={})
    return [
        _name(node),
        ",".join(status),
        _node_roles(node),
        _age(node, now),
        str(_get(info, "kubeletVersion", default="")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        str(_get(info, "osImage", default="")) or "<unknown>",
        str(_get(info, "kernelVersion", default="")) or "<unknown>",
        str(_get(info, "containerRuntimeVersion", default="")) or "<unknown>",
    ]


def _has_true_condition(pod: Obj, condition_type: str) -> bool:
    return any(_get(c, "type") == condition_type and _get(c, "status") == "True"
               for c in _list(pod, "status", "conditions"))


def _terminated_reason(terminated: Obj, prefix: str = "") -> str:
    """A terminated container's reason, or Signal:N / ExitCode:N when it gave none."""
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    signal = _int(terminated.get("signal"))
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{_int(terminated.get('exitCode'))}"


@dataclass
class _Restarts:
    """Restart count and the latest finishedAt of a previous container run."""

    count: int = 0
    last: dt.datetime | None = None

    def add(self, status: Obj) -> None:
        self.count += _int(status.get("restartCount"))
        finished = parse_timestamp(_get(status, "lastState", "terminated", "finishedAt"))
        if finished is not None and (self.last is None or self.last < finished):
            self.last = finished


def _pod_ready_status_restarts(pod: Obj) -> tuple[int, int, str, _Restarts]:
    """printPod's READY numerator/denominator, STATUS reason and RESTARTS, in upstream's order of rules."""
    spec = _get(pod, "spec", default={})
    status = _get(pod, "status", default={})
    phase = str(status.get("phase") or "")
    reason = str(status.get("reason") or phase)
    for condition in _list(status, "conditions"):
        if _get(condition, "type") == "PodScheduled" and _get(condition, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {str(_get(c, "name", default="")): c for c in _list(spec, "initContainers")}

    def restartable(name: str) -> bool:
        # A sidecar: an init container that keeps running beside the app containers.
        return _get(init_specs.get(name), "restartPolicy") == "Always"

    total = len(_list(spec, "containers")) + sum(1 for name in init_specs if restartable(name))
    ready = 0
    all_restarts = _Restarts()
    sidecar_restarts = _Restarts()

    initializing = False
    init_statuses = _list(status, "initContainerStatuses")
    for index, container in enumerate(init_statuses):
        name = str(container.get("name", ""))
        all_restarts.add(container)
        if restartable(name):
            sidecar_restarts.add(container)
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, dict) and _int(terminated.get("exitCode")) == 0:
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
        for container in reversed(_list(status, "containerStatuses")):
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

    if _get(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return ready, total, reason, restarts


def _pod_cells(pod: Obj, now: dt.datetime) -> list[Cell]:
    ready, total, reason, restarts = _pod_ready_status_restarts(pod)
    restarts_cell = str(restarts.count)
    if restarts.count != 0 and restarts.last is not None:
        restarts_cell = f"{restarts.count} ({human_duration(_aware(now) - restarts.last)} ago)"

    status = _get(pod, "status", default={})
    pod_ips = _list(status, "podIPs")
    # podIP and podIPs[0] are kept equal by the API; fall back for objects that only set podIP.
    pod_ip = str(_get(pod_ips[0], "ip", default="")) if pod_ips else str(status.get("podIP") or "")
    gates = _list(pod, "spec", "readinessGates")
    gates_cell = "<none>"
    if gates:
        conditions = _list(status, "conditions")
        passing = 0
        for gate in gates:
            for condition in conditions:
                if _get(condition, "type") == _get(gate, "conditionType"):
                    if _get(condition, "status") == "True":
                        passing += 1
                    break  # only the first condition of that type counts
        gates_cell = f"{passing}/{len(gates)}"
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(pod, now),
        pod_ip or "<none>",
        str(_get(pod, "spec", "nodeName", default="")) or "<none>",
        str(status.get("nominatedNodeName") or "") or "<none>",
        gates_cell,
    ]


def _pod_conditions(pod: Obj) -> list[Obj]:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]
    return []


def _load_balancer_ingress(service: Obj) -> list[str]:
    found = set()
    for ingress in _list(service, "status", "loadBalancer", "ingress"):
        value = _get(ingress, "ip") or _get(ingress, "hostname")
        if value:
            found.add(str(value))
    return sorted(found)


def _service_external_ip(service: Obj, service_type: str) -> str:
    external_ips = [str(ip) for ip in _list(service, "spec", "externalIPs")]
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or "<none>"
    if service_type == "LoadBalancer":
        found = _load_balancer_ingress(service) + external_ips
        return ",".join(found) or "<pending>"
    if service_type == "ExternalName":
        return str(_get(service, "spec", "externalName", default=""))
    return "<unknown>"


def _service_ports(service: Obj) -> str:
    pieces = []
    for port in _list(service, "spec", "ports"):
        number = _int(_get(port, "port"))
        protocol = _get(port, "protocol", default="TCP")  # core/v1 defaults protocol to TCP
        node_port = _int(_get(port, "nodePort"))
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_cells(service: Obj, now: dt.datetime) -> list[Cell]:
    spec = _get(service, "spec", default={})
    service_type = str(spec.get("type") or "ClusterIP")  # core/v1 default
    cluster_ips = _list(spec, "clusterIPs")
    # clusterIPs[0] mirrors clusterIP; headless Services hold "None" there.
    cluster_ip = str(cluster_ips[0]) if cluster_ips else str(spec.get("clusterIP") or "<none>")
    return [
        _name(service),
        service_type,
        cluster_ip,
        _service_external_ip(service, service_type),
        _service_ports(service),
        _age(service, now),
        format_labels(spec.get("selector")),
    ]


def format_endpoints(endpoints: Obj) -> str:
    """The ENDPOINTS cell: ip:port for each ready address x port in stored order, at most three."""
    subsets = _list(endpoints, "subsets")
    if not subsets:
        return "<none>"
    shown: list[str] = []
    total = 0
    for subset in subsets:
        addresses = [str(_get(a, "ip", default="")) for a in _list(subset, "addresses")]
        ports = _list(subset, "ports")
        # Headless Services may have no ports: then the bare IPs are listed.
        port_numbers: list[Any] = [_get(p, "port") for p in ports] if ports else [None]
        for port in port_numbers:
            total += len(addresses)
            for ip in addresses:
                if len(shown) == 3:
                    break
                shown.append(ip if port is None else _join_host_port(ip, port))
    return _more_than_three(shown, total)


def _endpoints_cells(endpoints: Obj, now: dt.datetime) -> list[Cell]:
    return [_name(endpoints), format_endpoints(endpoints), _age(endpoints, now)]


def _slice_ports(slice_: Obj) -> str:
    ports = _list(slice_, "ports")
    shown = []
    for port in ports[:3]:
        number = _get(port, "port")
        if isinstance(number, int):
            shown.append(str(number))
        elif _get(port, "name") is not None:
            shown.append(str(_get(port, "name")))
        else:
            shown.append("*")
    return _more_than_three(shown, len(ports)) or "<unset>"


def _slice_endpoints(slice_: Obj) -> str:
    addresses = [str(a) for e in _list(slice_, "endpoints") for a in _list(e, "addresses")]
    return _more_than_three(addresses[:3], len(addresses)) or "<unset>"


def _endpoint_slice_cells(slice_: Obj, now: dt.datetime) -> list[Cell]:
    return [
        _name(slice_),
        str(_get(slice_, "addressType", default="")),
        _slice_ports(slice_),
        _slice_endpoints(slice_),
        _age(slice_, now),
    ]


def _event_source(event: Obj) -> str:
    component = _get(event, "source", "component") or _get(event, "reportingComponent") or ""
    host = _get(event, "source", "host") or _get(event, "reportingInstance") or ""
    return f"{component}, {host}" if host else str(component)


def _event_cells(event: Obj, now: dt.datetime) -> list[Cell]:
    first_seen = translate_timestamp_since(event.get("firstTimestamp"), now)
    if parse_timestamp(event.get("firstTimestamp")) is None:
        first_seen = translate_timestamp_since(event.get("eventTime"), now)
    last_seen = translate_timestamp_since(event.get("lastTimestamp"), now)
    if parse_timestamp(event.get("lastTimestamp")) is None:
        last_seen = first_seen
    count = _int(event.get("count"))
    series = event.get("series")
    if isinstance(series, dict):
        last_seen = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
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
        _name(event),
    ]


def _deployment_cells(deployment: Obj, now: dt.datetime) -> list[Cell]:
    status = _get(deployment, "status", default={})
    try:
        selector = _label_selector_string(_get(deployment, "spec", "selector"))
    except _BadSelector:
        selector = "<invalid>"
    names, images = _container_cells(_template_containers(deployment))
    return [
        _name(deployment),
        f"{_int(status.get('readyReplicas'))}/{_replicas(deployment)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(deployment, now),
        names,
        images,
        selector,
    ]


def _replica_set_cells(replica_set: Obj, now: dt.datetime) -> list[Cell]:
    status = _get(replica_set, "status", default={})
    names, images = _container_cells(_template_containers(replica_set))
    return [
        _name(replica_set),
        _replicas(replica_set),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(replica_set, now),
        names,
        images,
        format_label_selector(_get(replica_set, "spec", "selector")),
    ]


def _stateful_set_cells(stateful_set: Obj, now: dt.datetime) -> list[Cell]:
    ready = _int(_get(stateful_set, "status", "readyReplicas"))
    names, images = _container_cells(_template_containers(stateful_set))
    return [
        _name(stateful_set),
        f"{ready}/{_replicas(stateful_set)}",
        _age(stateful_set, now),
        names,
        images,
    ]


def _lease_cells(lease: Obj, now: dt.datetime) -> list[Cell]:
    return [_name(lease), str(_get(lease, "spec", "holderIdentity", default="")), _age(lease, now)]


def _default_cells(obj: Obj, now: dt.datetime) -> list[Cell]:
    created = parse_timestamp(_get(obj, "metadata", "creationTimestamp"))
    stamp = created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else ""
    return [_name(obj), stamp]


# ---------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One TableColumnDefinition. priority 0 shows by default; 1 only with `-o wide`."""

    name: str
    type: str
    description: str
    priority: int = 0
    format: str = ""

    def to_dict(self) -> Obj:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


@dataclass(frozen=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Callable[[Obj, dt.datetime], list[Cell]]
    conditions: Callable[[Obj], list[Obj]] | None = None


def _wide(name: str, description: str) -> Column:
    return Column(name, "string", description, priority=1)


NAME = Column("Name", "string", "The object's name, unique within its namespace and kind.", format="name")
AGE = Column("Age", "string", "Time since the object was created (metadata.creationTimestamp).")
CONTAINERS = _wide("Containers", "Names of the containers in the pod template.")
IMAGES = _wide("Images", "Images of the containers in the pod template.")

PRINTERS: dict[tuple[str, str], Printer] = {
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
        _wide("Internal-IP", "The node's first InternalIP address."),
        _wide("External-IP", "The node's first ExternalIP address."),
        _wide("OS-Image", "The operating system image the node reports."),
        _wide("Kernel-Version", "The kernel version the node reports."),
        _wide("Container-Runtime", "The container runtime and version the node reports."),
    ), _node_cells),
    ("", "Pod"): Printer((
        NAME,
        Column("Ready", "string", "Ready containers out of all containers in the pod."),
        Column("Status", "string", "The pod's phase or the most telling container state."),
        Column("Restarts", "string", "Container restarts, and how long ago the latest one was."),
        AGE,
        _wide("IP", "The pod's first IP address."),
        _wide("Node", "The node the pod is bound to."),
        _wide("Nominated Node", "The node the scheduler nominated through preemption."),
        _wide("Readiness Gates", "Readiness gates whose condition is True, out of all gates."),
    ), _pod_cells, _pod_conditions),
    ("", "Service"): Printer((
        NAME,
        Column("Type", "string", "How the service is exposed."),
        Column("Cluster-IP", "string", "The virtual IP inside the cluster; None for headless services."),
        Column("External-IP", "string", "Addresses outside the cluster that reach the service."),
        Column("Port(s)", "string", "Service ports, with node ports, and protocols."),
        AGE,
        _wide("Selector", "Labels of the pods the service sends traffic to."),
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
        _wide("Subobject", "The part of the object the event is about, such as a container."),
        _wide("Source", "The component, and host, that reported the event."),
        Column("Message", "string", "A human-readable description of the event."),
        _wide("First Seen", "Time since the event first happened."),
        _wide("Count", "How many times the event has happened."),
        Column("Name", "string", NAME.description, priority=1, format="name"),
    ), _event_cells),
    ("apps", "Deployment"): Printer((
        NAME,
        Column("Ready", "string", "Ready pods out of desired pods."),
        Column("Up-to-date", "string", "Pods that run the current pod template."),
        Column("Available", "string", "Pods that have been ready for at least minReadySeconds."),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "The label query over the deployment's pods."),
    ), _deployment_cells),
    ("apps", "ReplicaSet"): Printer((
        NAME,
        Column("Desired", "integer", "The number of pods wanted."),
        Column("Current", "integer", "The number of pods that exist."),
        Column("Ready", "integer", "The number of ready pods."),
        AGE,
        CONTAINERS,
        IMAGES,
        _wide("Selector", "The label query over the replica set's pods."),
    ), _replica_set_cells),
    ("apps", "StatefulSet"): Printer((
        NAME,
        Column("Ready", "string", "Ready pods out of desired pods."),
        AGE,
        CONTAINERS,
        IMAGES,
    ), _stateful_set_cells),
    ("discovery.k8s.io", "EndpointSlice"): Printer((
        NAME,
        Column("AddressType", "string", "The kind of addresses in the slice: IPv4, IPv6 or FQDN."),
        Column("Ports", "string", "The ports every endpoint in the slice serves."),
        Column("Endpoints", "string", "Addresses of the endpoints in the slice."),
        AGE,
    ), _endpoint_slice_cells),
    ("coordination.k8s.io", "Lease"): Printer((
        NAME,
        Column("Holder", "string", "The identity that holds the lease."),
        AGE,
    ), _lease_cells),
}

# What kube-apiserver's default table convertor shows for kinds without a printer.
DEFAULT_PRINTER = Printer((
    NAME,
    Column("Created At", "date", "When the object was created."),
), _default_cells)


def printer_for(resource: Resource) -> Printer:
    return PRINTERS.get((resource.group, resource.kind), DEFAULT_PRINTER)


def column_definitions(resource: Resource) -> list[Obj]:
    """The columnDefinitions of a resource's Table, every priority included."""
    return [column.to_dict() for column in printer_for(resource).columns]


def row_cells(resource: Resource, obj: Obj, now: dt.datetime) -> list[Cell]:
    """One object's cells, one per column of column_definitions(resource)."""
    return printer_for(resource).cells(obj, now)


# ---------------------------------------------------------------------------
# The Table
# ---------------------------------------------------------------------------


def check_include_object(value: str) -> str:
    """Validate ?includeObject=; "" means Metadata. Raises 400 as kube-apiserver does."""
    if value == "":
        return "Metadata"
    if value not in INCLUDE_OBJECT_VALUES:
        raise errors.bad_request(
            f'includeObject: Invalid value: "{value}": must be \'Metadata\', \'Object\', \'None\', or empty')
    return value


def partial_object_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION,
            "metadata": jsoncodec.deepcopy(obj.get("metadata") or {})}


def _row_object(resource: Resource, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
    return partial_object_metadata(obj)


def _table_metadata(objects: list[Obj], list_meta: dict[str, Any] | None) -> Obj:
    if list_meta is None:
        # A single object (a get, a watch event): the Table carries its resourceVersion.
        rv = _get(objects[0], "metadata", "resourceVersion") if len(objects) == 1 else None
        return {"resourceVersion": str(rv)} if rv else {}
    meta: Obj = {}
    if list_meta.get("resourceVersion"):
        meta["resourceVersion"] = str(list_meta["resourceVersion"])
    if list_meta.get("continue"):
        meta["continue"] = str(list_meta["continue"])
    if list_meta.get("remainingItemCount") is not None:
        meta["remainingItemCount"] = int(list_meta["remainingItemCount"])
    return meta


def to_table(
    resource: Resource,
    objects: Iterable[Obj],
    *,
    include_object: str = "Metadata",
    now: dt.datetime,
    list_meta: dict[str, Any] | None = None,
    include_headers: bool = True,
) -> Obj:
    """A meta.k8s.io/v1 Table of `objects`, rows in the order given.

    include_object: "None" | "Metadata" (a PartialObjectMetadata per row) | "Object".
    list_meta: the list's resourceVersion/continue/remainingItemCount; leave it
    None for a single object, whose own resourceVersion is then used.
    include_headers=False sends columnDefinitions as null: kube-apiserver does
    this for every watch event after the first, and kubectl reuses the
    columns it already has.
    """
    include_object = check_include_object(include_object)
    items = list(objects)
    printer = printer_for(resource)
    rows = []
    with jsoncodec.building_many():
        for obj in items:
            row: Obj = {"cells": printer.cells(obj, now)}
            conditions = printer.conditions(obj) if printer.conditions else []
            if conditions:
                row["conditions"] = conditions
            row["object"] = _row_object(resource, obj, include_object)
            rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": _table_metadata(items, list_meta),
        "columnDefinitions": [c.to_dict() for c in printer.columns] if include_headers else None,
        "rows": rows,
    }
