"""Where a pod should run: kube-scheduler's default filters and a spreading score, pure.

`schedule(pod, nodes, usage)` runs the filters upstream's default profile
runs, in its order, and reports the first failure per node as upstream does:

  NodeUnschedulable  "node(s) were unschedulable"
  TaintToleration    "node(s) had untolerated taint {key: value}"  (NoSchedule, NoExecute)
  NodeAffinity       "node(s) didn't match Pod's node affinity/selector"
  NodePorts          "node(s) didn't have free ports for the requested pod ports"
  NodeResourcesFit   "Too many pods", "Insufficient cpu", "Insufficient memory"

A node whose Ready condition is not True counts as carrying the taint the
node lifecycle controller would put on it (node.kubernetes.io/not-ready or
/unreachable, NoSchedule), so the pod sees upstream's message and a pod that
tolerates it may still go there.

Among the nodes that pass, the pod goes to the one with the fewest pods of its
own group (same controller, or the same labels when it has none), then the
fewest pods overall, then the first name: deterministic spreading where
upstream scores PodTopologySpread/LeastAllocated and breaks ties at random.
When nothing fits, the message is upstream's FitError text, preemption
postscript included.

The filters and the score read a node's `NodeUsage` (what its pods add up to:
count, requests, host ports, pods per group), kept up to date pod by pod in an
`Occupancy` as upstream's scheduler cache keeps NodeInfo
(pkg/scheduler/backend/cache/cache.go AddPod/AssumePod/ForgetPod/RemovePod,
pkg/scheduler/framework/types.go NodeInfo.AddPodInfo/RemovePod): placing a pod
costs O(nodes), not O(nodes x pods).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from svcnet.api.objects import (
    condition_of,
    is_pod_terminal,
    labels_of,
    metadata_of,
    name_of,
    owner_references_of,
    spec_of,
    status_of,
)

Obj = dict[str, Any]

DEFAULT_SCHEDULER = "default-scheduler"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"
NO_NODES = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
PREEMPTION_NO_VICTIMS = "No preemption victims found for incoming pod"


# ------------------------------------------------------------------- pods



def needs_scheduling(pod: Obj, scheduler_name: str = DEFAULT_SCHEDULER) -> bool:
    """Unbound, alive, not gated, and ours to place."""
    spec = spec_of(pod)
    return (not spec.get("nodeName") and not metadata_of(pod).get("deletionTimestamp") and not is_pod_terminal(pod)
            and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == scheduler_name
            and not spec.get("schedulingGates"))


def occupies_node(pod: Obj) -> bool:
    """A bound pod that still holds its node's resources (terminal pods do not)."""
    return bool(spec_of(pod).get("nodeName")) and not is_pod_terminal(pod)


# ------------------------------------------------------------------- nodes

def ready_status(node: Obj) -> str:
    condition = condition_of(node, "Ready")
    return "Unknown" if condition is None else str(condition.get("status") or "Unknown")


def effective_taints(node: Obj) -> list[Obj]:
    """The node's taints plus the one the node lifecycle controller would add for readiness."""
    taints = [t for t in spec_of(node).get("taints") or [] if isinstance(t, dict)]
    status = ready_status(node)
    implied = None if status == "True" else TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE
    if implied and not any(t.get("key") == implied and t.get("effect") == "NoSchedule" for t in taints):
        taints.append({"key": implied, "effect": "NoSchedule"})
    return taints


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def _tolerated(pod: Obj, taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in spec_of(pod).get("tolerations") or [] if isinstance(t, dict))


def untolerated_taint(pod: Obj, node: Obj) -> Obj | None:
    """The first NoSchedule/NoExecute taint the pod does not tolerate."""
    for taint in effective_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(pod, taint):
            return taint
    return None


def taint_reason(taint: Obj) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key') or ''}: {taint.get('value') or ''}}}"


# ----------------------------------------------------------- node affinity

def _requirement_matches(requirement: Obj, values_of: Mapping[str, str]) -> bool:
    key = requirement.get("key") or ""
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or []]
    present = key in values_of
    value = values_of.get(key, "")
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def term_matches(term: Obj, node: Obj) -> bool:
    """A NodeSelectorTerm: every expression on labels and every field (metadata.name) matches.

    A term with neither matches nothing, as upstream.
    """
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = labels_of(node)
    node_fields = {"metadata.name": name_of(node)}
    return (all(_requirement_matches(r, labels) for r in expressions)
            and all(_requirement_matches(r, node_fields) for r in fields))


def matches_node_affinity(pod: Obj, node: Obj) -> bool:
    """spec.nodeSelector (every label equal) and required node affinity (any term)."""
    labels = labels_of(node)
    for key, value in (spec_of(pod).get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    affinity = ((spec_of(pod).get("affinity") or {}).get("nodeAffinity") or {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


# ---------------------------------------------------------------- resources

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIX = {None: Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
           "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
           "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
           "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60)}


def parse_quantity(value: Any) -> Fraction:
    """A resource.Quantity ("100m", "1.5Gi", "2", 3) as an exact number; 0 if unreadable."""
    if isinstance(value, int | float):
        return Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return Fraction(0)
    number, exponent, suffix = match.groups()
    base = Fraction(number)
    if exponent is not None:
        return base * Fraction(10) ** int(exponent)
    return base * _SUFFIX[suffix]


def pod_requests(pod: Obj) -> dict[str, Fraction]:
    """Effective requests: the sum over containers, at least any one init container's, plus overhead."""
    def requests(container: Obj) -> dict[str, Fraction]:
        return {k: parse_quantity(v) for k, v in
                ((container.get("resources") or {}).get("requests") or {}).items()}

    spec = spec_of(pod)
    total: Counter[str] = Counter()
    for container in spec.get("containers") or []:
        total.update(requests(container))
    result = dict(total)
    for container in spec.get("initContainers") or []:
        for name, quantity in requests(container).items():
            result[name] = max(result.get(name, Fraction(0)), quantity)
    for name, quantity in (spec.get("overhead") or {}).items():
        result[name] = result.get(name, Fraction(0)) + parse_quantity(quantity)
    return result


def _host_ports(pod: Obj) -> set[tuple[str, str, int]]:
    ports = set()
    for container in spec_of(pod).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                ports.add((port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP",
                           int(port["hostPort"])))
    return ports


def _ports_conflict(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for ip, protocol, port in wanted:
        for used_ip, used_protocol, used_port in used:
            if port == used_port and protocol == used_protocol and (
                    ip == used_ip or "0.0.0.0" in (ip, used_ip)):
                return True
    return False


# -------------------------------------------------------------- node usage

def spread_group(pod: Obj) -> tuple[str, ...]:
    """The group spreading counts a pod in: its namespace, then its controller or its labels."""
    return (str(metadata_of(pod).get("namespace") or ""), *group_of(pod))


@dataclass(frozen=True)
class Footprint:
    """What one pod takes from its node, as the filters and the score count it (upstream's PodInfo)."""

    group: tuple[str, ...]
    requests: Mapping[str, Fraction]
    host_ports: frozenset[tuple[str, str, int]]

    @classmethod
    def of(cls, pod: Obj) -> Footprint:
        return cls(spread_group(pod), pod_requests(pod), frozenset(_host_ports(pod)))


@dataclass
class NodeUsage:
    """The sum of the footprints on one node (upstream's NodeInfo: Pods, Requested, UsedPorts)."""

    pods: int = 0
    groups: Counter[tuple[str, ...]] = field(default_factory=Counter)
    requested: dict[str, Fraction] = field(default_factory=dict)
    host_ports: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    @classmethod
    def of(cls, pods: Iterable[Obj]) -> NodeUsage:
        usage = cls()
        for pod in pods:
            usage.add(Footprint.of(pod))
        return usage

    def add(self, footprint: Footprint) -> None:
        self._apply(footprint, 1)

    def remove(self, footprint: Footprint) -> None:
        self._apply(footprint, -1)

    def _apply(self, footprint: Footprint, sign: int) -> None:
        self.pods += sign
        self.groups[footprint.group] += sign
        if not self.groups[footprint.group]:
            del self.groups[footprint.group]
        for resource, amount in footprint.requests.items():
            total = self.requested.get(resource, Fraction(0)) + sign * amount
            if total:
                self.requested[resource] = total
            else:
                self.requested.pop(resource, None)
        for port in footprint.host_ports:
            self.host_ports[port] += sign
            if not self.host_ports[port]:
                del self.host_ports[port]


NO_USAGE = NodeUsage()  # an empty node; never changed


class Occupancy:
    """Which pod holds which node, and each node's NodeUsage, changed one pod at a time.

    `place(key, node, pod)` records (or moves) a pod: a bound pod the cache shows, or one the
    scheduler assumed bound before the API answered; `remove(key)` takes it off. Each pod's
    footprint is kept, so removing takes off exactly what placing added.
    """

    def __init__(self) -> None:
        self._placed: dict[str, tuple[str, Footprint]] = {}
        self.by_node: dict[str, NodeUsage] = {}

    def place(self, key: str, node: str, pod: Obj) -> None:
        self.remove(key)
        footprint = Footprint.of(pod)
        self._placed[key] = (node, footprint)
        self.by_node.setdefault(node, NodeUsage()).add(footprint)

    def remove(self, key: str) -> None:
        placed = self._placed.pop(key, None)
        if placed is None:
            return
        node, footprint = placed
        usage = self.by_node[node]
        usage.remove(footprint)
        if not usage.pods:
            del self.by_node[node]

    def node_of(self, key: str) -> str | None:
        placed = self._placed.get(key)
        return None if placed is None else placed[0]

    def __len__(self) -> int:
        return len(self._placed)


# ------------------------------------------------------------------ filters

@dataclass(frozen=True)
class NodeVerdict:
    """Why one node cannot take the pod: upstream's reasons, and whether evicting pods could help."""

    node: str
    reasons: tuple[str, ...]
    resolvable: bool  # Unschedulable (preemption might help) vs UnschedulableAndUnresolvable


def filter_node(pod: Obj, node: Obj, usage: NodeUsage) -> NodeVerdict | None:
    """None when the pod fits; otherwise the first failing filter's reasons, in upstream's order."""
    name = name_of(node)
    if spec_of(node).get("unschedulable") and not _tolerated(
            pod, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}):
        return NodeVerdict(name, (REASON_UNSCHEDULABLE,), False)
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return NodeVerdict(name, (taint_reason(taint),), False)
    if not matches_node_affinity(pod, node):
        return NodeVerdict(name, (REASON_AFFINITY,), False)
    wanted_ports = _host_ports(pod)
    if wanted_ports and _ports_conflict(wanted_ports, set(usage.host_ports)):
        return NodeVerdict(name, (REASON_PORTS,), True)
    allocatable = status_of(node).get("allocatable") or {}
    reasons = []
    if "pods" in allocatable and usage.pods + 1 > parse_quantity(allocatable["pods"]):
        reasons.append(REASON_TOO_MANY_PODS)
    wanted = pod_requests(pod)
    for resource in sorted(wanted):
        if not wanted[resource] or resource not in allocatable:
            # svcnet leniency: a node that lists no allocatable amount is not limited by it
            # (upstream reads a missing amount as zero); kubelet always lists cpu, memory, pods.
            continue
        in_use = usage.requested.get(resource, Fraction(0))
        if wanted[resource] > parse_quantity(allocatable[resource]) - in_use:
            reasons.append(f"Insufficient {resource}")
    if reasons:
        return NodeVerdict(name, tuple(reasons), True)
    return None


# ------------------------------------------------------------------ scoring

def group_of(pod: Obj) -> tuple[str, ...]:
    """What spreading counts as "the same kind of pod": its controller, or else its labels."""
    for ref in owner_references_of(pod):
        if ref.get("controller"):
            return ("owner", str(ref.get("uid") or ref.get("name") or ""))
    labels = labels_of(pod)
    return ("labels", *sorted(f"{k}={v}" for k, v in labels.items()))


def spread_key(pod: Obj, node_name: str, usage: NodeUsage) -> tuple[int, int, str]:
    """Fewest pods of the pod's own group (same namespace), then fewest pods, then the first name."""
    return (usage.groups.get(spread_group(pod), 0), usage.pods, node_name)


# ----------------------------------------------------------------- decision

@dataclass(frozen=True)
class Decision:
    """Either a node, or the reason no node fits (upstream's FitError message)."""

    node: str | None
    message: str = ""
    verdicts: tuple[NodeVerdict, ...] = ()


def fit_error_message(pod: Obj, total_nodes: int, verdicts: Iterable[NodeVerdict]) -> str:
    """'0/N nodes are available: <reason histogram>. preemption: 0/N nodes are available: ...'."""
    verdicts = list(verdicts)
    histogram: Counter[str] = Counter()
    for verdict in verdicts:
        histogram.update(verdict.reasons)
    reasons = sorted(f"{count} {reason}" for reason, count in histogram.items())
    message = f"0/{total_nodes} nodes are available: {', '.join(reasons)}."
    if spec_of(pod).get("preemptionPolicy") == "Never":
        return f"{message} preemption: not eligible due to preemptionPolicy=Never."
    # Every pod here has the same priority, so preemption finds no victims where it might help.
    preemption: Counter[str] = Counter(
        PREEMPTION_NO_VICTIMS if v.resolvable else PREEMPTION_NOT_HELPFUL for v in verdicts)
    postscript = sorted(f"{count} {reason}" for reason, count in preemption.items())
    return f"{message} preemption: 0/{total_nodes} nodes are available: {', '.join(postscript)}."


def schedule(pod: Obj, nodes: Iterable[Obj], usage: Mapping[str, NodeUsage]) -> Decision:
    """Pick a node for pod. usage maps node name -> what occupies it (bound or assumed pods)."""
    nodes = sorted(nodes, key=lambda n: name_of(n))
    if not nodes:
        return Decision(None, NO_NODES)
    feasible: list[tuple[tuple[int, int, str], str]] = []
    verdicts: list[NodeVerdict] = []
    for node in nodes:
        name = name_of(node)
        on_node = usage.get(name, NO_USAGE)
        verdict = filter_node(pod, node, on_node)
        if verdict is None:
            feasible.append((spread_key(pod, name, on_node), name))
        else:
            verdicts.append(verdict)
    if feasible:
        return Decision(min(feasible)[1])
    return Decision(None, fit_error_message(pod, len(nodes), verdicts), tuple(verdicts))


def scheduling_view(node: Obj) -> tuple[Any, ...]:
    """The parts of a Node that can change where pods fit (heartbeats are not among them)."""
    status = status_of(node)
    return (labels_of(node), spec_of(node).get("taints") or [],
            bool(spec_of(node).get("unschedulable")), ready_status(node), status.get("allocatable") or {})
