"""What a DaemonSet needs on each node, decided from plain objects (pkg/controller/daemon), pure.

`plan_daemon_set(ds, nodes, pods, now)` looks at a DaemonSet, every node and the
pods the set owns, and returns the pods to create (one per node) and to delete,
in the order upstream's syncDaemonSet decides them:

- a node runs the daemon pod when the template's nodeSelector and required node
  affinity match it and its NoSchedule/NoExecute taints are tolerated, by the
  template's tolerations plus the ones upstream adds to every daemon pod
  (not-ready and unreachable NoExecute, the pressure and unschedulable
  NoSchedule taints, network-unavailable for host-network pods);
  a pod already there keeps running through an untolerated NoSchedule taint,
  not through a NoExecute one (NodeShouldRunDaemonPod's two answers);
- manage: a node that should run the pod and has none gets one; failed pods
  are deleted; of several running pods the oldest stays; pods on nodes that
  should not run them are deleted;
- a created pod names its node through required node affinity matchFields
  metadata.name (the scheduler binds it), carries the controller-revision-hash
  and pod-template-generation labels;
- RollingUpdate replaces pods of an older template at most maxUnavailable
  nodes at a time (or, with maxSurge, starts the new pod beside the old one
  and deletes the old once the new is available); OnDelete leaves that to the user;
- the status counts of updateDaemonSetStatus.

svcnet serves no ControllerRevisions: the revision is the hash of the template
(as the StatefulSet's, svcnet.core.statefulset.revision_hash), kept on pods.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from svcnet.api import meta
from svcnet.api.objects import (
    annotations_of,
    is_pod_ready,
    labels_of,
    metadata_of,
    name_of,
    spec_of,
    status_of,
)
from svcnet.core import scheduling
from svcnet.core.replicaset import is_pod_available, pod_from_template
from svcnet.core.statefulset import revision_hash

Obj = dict[str, Any]

REVISION_LABEL = "controller-revision-hash"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
# apps/v1 keeps the template generation in this annotation (the strategy bumps it).
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
NODE_NAME_FIELD = "metadata.name"

# AddOrUpdateDaemonPodTolerations: (key, effect) tolerated with operator Exists.
DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")


# ------------------------------------------------------------------ the daemon pod

def template_generation(ds: Obj) -> str:
    return str(annotations_of(ds).get(TEMPLATE_GENERATION_ANNOTATION)
               or metadata_of(ds).get("generation") or 1)


def current_hash(ds: Obj) -> str:
    return revision_hash(spec_of(ds).get("template"), int(status_of(ds).get("collisionCount") or 0))


def add_daemon_tolerations(pod_spec: Obj) -> None:
    """Upstream's tolerations for every daemon pod, replacing any with the same key and effect."""
    wanted = list(DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(HOST_NETWORK_TOLERATION)
    tolerations = [t for t in pod_spec.get("tolerations") or [] if isinstance(t, dict)]
    for key, effect in wanted:
        tolerations = [t for t in tolerations if (t.get("key"), t.get("effect")) != (key, effect)]
        tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    pod_spec["tolerations"] = tolerations


def node_affinity_for(pod_spec: Obj, node_name: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: required affinity is this node, by name."""
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": NODE_NAME_FIELD, "operator": "In", "values": [node_name]}]}]}


def template_pod(ds: Obj) -> Obj:
    """The pod the DaemonSet would make, before a node is chosen (NewPod: template + tolerations)."""
    template = spec_of(ds).get("template") or {}
    pod = {"metadata": copy.deepcopy(metadata_of(template)), "spec": copy.deepcopy(spec_of(template))}
    add_daemon_tolerations(pod["spec"])
    return pod


def pod_for_node(ds: Obj, node_name: str, hash_: str) -> Obj:
    """The pod to create for node_name, as the controller's syncNodes builds it."""
    pod = pod_from_template(ds, spec_of(ds).get("template") or {})
    md = pod["metadata"]
    md["labels"] = {**(md.get("labels") or {}), TEMPLATE_GENERATION_LABEL: template_generation(ds),
                    REVISION_LABEL: hash_}
    add_daemon_tolerations(pod["spec"])
    node_affinity_for(pod["spec"], node_name)
    return pod


def target_node(pod: Obj) -> str:
    """GetTargetNodeName: the bound node, or the one its matchFields affinity names."""
    node = spec_of(pod).get("nodeName")
    if node:
        return str(node)
    required = (((spec_of(pod).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            values = req.get("values") or []
            if req.get("key") == NODE_NAME_FIELD and req.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


@dataclass(frozen=True)
class Fit:
    should_run: bool
    should_continue_running: bool


def node_fit(pod: Obj, node: Obj) -> Fit:
    """NodeShouldRunDaemonPod for the DaemonSet's template pod (template_pod)."""
    wanted_node = spec_of(pod).get("nodeName")
    if wanted_node and wanted_node != name_of(node):
        return Fit(False, False)
    if not scheduling.matches_node_affinity(pod, node):
        return Fit(False, False)
    taints = [t for t in scheduling.effective_taints(node) if t.get("effect") in ("NoSchedule", "NoExecute")]
    tolerations = [t for t in spec_of(pod).get("tolerations") or [] if isinstance(t, dict)]
    untolerated = [t for t in taints if not any(scheduling.tolerates(tol, t) for tol in tolerations)]
    if not untolerated:
        return Fit(True, True)
    return Fit(False, not any(t.get("effect") == "NoExecute" for t in untolerated))


def is_updated(pod: Obj, hash_: str, generation: str) -> bool:
    """IsPodUpdated: the pod carries the current template's generation or hash."""
    labels = labels_of(pod)
    return labels.get(TEMPLATE_GENERATION_LABEL) == generation or labels.get(REVISION_LABEL) == hash_


def _created(pod: Obj) -> tuple[dt.datetime, str]:
    when = meta.parse_time_or_none(metadata_of(pod).get("creationTimestamp"))
    return (when or dt.datetime.min.replace(tzinfo=dt.UTC), name_of(pod))


def _deleting(pod: Obj) -> bool:
    return bool(metadata_of(pod).get("deletionTimestamp"))


# ------------------------------------------------------------------- the plan

@dataclass
class Plan:
    create_on: list[str] = field(default_factory=list)  # node names
    delete: list[Obj] = field(default_factory=list)


def pods_by_node(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        out.setdefault(target_node(pod), []).append(pod)
    for group in out.values():
        group.sort(key=_created)
    return out


def _manage_node(fit: Fit, node_name: str, pods: list[Obj], surge: bool, hash_: str, generation: str,
                 min_ready: int, now: dt.datetime, plan: Plan) -> None:
    """podsShouldBeOnNode for one node."""
    if fit.should_run and not pods:
        plan.create_on.append(node_name)
        return
    if not fit.should_continue_running:
        plan.delete.extend(p for p in pods if not _deleting(p))
        return
    running: list[Obj] = []
    for pod in pods:
        if _deleting(pod):
            continue
        if status_of(pod).get("phase") in ("Failed", "Succeeded"):
            plan.delete.append(pod)
            continue
        running.append(pod)
    if len(running) <= 1:
        return
    if not surge:
        plan.delete.extend(running[1:])  # the oldest stays
        return
    # Surge: once the newest updated pod is available, the other pods go.
    updated = [p for p in running if is_updated(p, hash_, generation)]
    if updated and is_pod_available(updated[-1], min_ready, now):
        plan.delete.extend(p for p in running if p is not updated[-1])


def scaled_value(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent rounding up, as the DaemonSet's update budget does."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return 0
        return math.ceil(percent * total / 100)
    return int(value or 0) if not isinstance(value, bool) else 0


def update_budget(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both zero means one unavailable (upstream's fallback)."""
    rolling = ((spec_of(ds).get("updateStrategy") or {}).get("rollingUpdate") or {})
    surge = scaled_value(rolling.get("maxSurge"), desired)
    unavailable = scaled_value(rolling.get("maxUnavailable"), desired)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _split(pods: Sequence[Obj], hash_: str, generation: str) -> tuple[Obj | None, Obj | None, bool]:
    """findUpdatedPodsOnNode: (new, old, ok); not ok when there are two of a kind."""
    new = old = None
    for pod in pods:
        if _deleting(pod):
            continue
        if is_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def _live(pods: Sequence[Obj]) -> list[Obj]:
    return [p for p in pods if not _deleting(p)]


def _rolling_update(ds: Obj, by_node: Mapping[str, list[Obj]], fits: Mapping[str, Fit], hash_: str,
                    generation: str, now: dt.datetime, plan: Plan) -> None:
    """rollingUpdate: replace old pods within the budget.

    maxSurge 0: delete old pods (manage then creates the new ones) while at most maxUnavailable
    nodes lack an available pod; an old pod that is not available is replaced at once.
    maxSurge > 0: start new pods beside old ones on at most maxSurge nodes at a time (at once
    where the old pod is not available); manage deletes each old pod once its new one is available.
    """
    min_ready = int(spec_of(ds).get("minReadySeconds") or 0)
    surge, max_unavailable = update_budget(ds, sum(1 for f in fits.values() if f.should_run))
    unavailable = 0
    replace_now: list[tuple[str, Obj]] = []
    candidates: list[tuple[str, Obj]] = []
    for node_name in sorted(by_node):
        if node_name not in fits or not fits[node_name].should_run:
            continue
        new, old, ok = _split(by_node[node_name], hash_, generation)
        if not ok or (new is None) == (old is None):
            unavailable += 1  # manage sorts this node out first
            continue
        if new is not None:
            if not is_pod_available(new, min_ready, now):
                unavailable += 1
            continue
        assert old is not None
        if not is_pod_available(old, min_ready, now):
            replace_now.append((node_name, old))
        else:
            candidates.append((node_name, old))
    if surge:
        surging = sum(1 for group in by_node.values() if len(_live(group)) > 1)
        budget = max(0, surge - surging)
        plan.create_on.extend(node for node, _ in replace_now + candidates[:budget])
        return
    remaining = min(max(0, max_unavailable - unavailable), len(candidates))
    plan.delete.extend(pod for _, pod in replace_now + candidates[:remaining])


def plan_daemon_set(ds: Obj, nodes: Iterable[Obj], pods: Iterable[Obj], now: dt.datetime) -> Plan:
    """The creates and deletes of one sync (manage, then the rolling update)."""
    hash_, generation = current_hash(ds), template_generation(ds)
    sample = template_pod(ds)
    by_node = pods_by_node(pods)
    node_list = list(nodes)
    fits = {name_of(n): node_fit(sample, n) for n in node_list}
    strategy = (spec_of(ds).get("updateStrategy") or {})
    surge = strategy.get("type") == "RollingUpdate" and update_budget(ds, sum(
        1 for f in fits.values() if f.should_run))[0] > 0
    min_ready = int(spec_of(ds).get("minReadySeconds") or 0)
    plan = Plan()
    for node_name, fit in fits.items():
        _manage_node(fit, node_name, by_node.get(node_name, []), surge, hash_, generation, min_ready, now, plan)
    # Pods waiting for a node that no longer exists (never bound) go too.
    for node_name, group in by_node.items():
        if node_name not in fits:
            plan.delete.extend(p for p in group if not _deleting(p) and not spec_of(p).get("nodeName"))
    if strategy.get("type") == "RollingUpdate" and not plan.create_on and not plan.delete:
        _rolling_update(ds, by_node, fits, hash_, generation, now, plan)
    return plan


# ------------------------------------------------------------------- status

COUNTS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
          "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable")
OMITTED_WHEN_ZERO = ("observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable")

def daemon_set_status(ds: Obj, nodes: Iterable[Obj], pods: Iterable[Obj], now: dt.datetime) -> Obj:
    """updateDaemonSetStatus's counts over every node."""
    hash_, generation = current_hash(ds), template_generation(ds)
    min_ready = int(spec_of(ds).get("minReadySeconds") or 0)
    sample = template_pod(ds)
    by_node = pods_by_node(p for p in pods if not _deleting(p))
    desired = current = ready = available = updated = misscheduled = 0
    for node in nodes:
        scheduled = by_node.get(name_of(node)) or []
        if node_fit(sample, node).should_run:
            desired += 1
            if not scheduled:
                continue
            current += 1
            first = scheduled[0]
            if is_pod_ready(first):
                ready += 1
                if is_pod_available(first, min_ready, now):
                    available += 1
            if is_updated(first, hash_, generation):
                updated += 1
        elif scheduled:
            misscheduled += 1
    status: Obj = {
        "currentNumberScheduled": current, "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired, "numberReady": ready,
        "observedGeneration": int(metadata_of(ds).get("generation") or 0),
        "updatedNumberScheduled": updated, "numberAvailable": available,
        "numberUnavailable": desired - available,
    }
    for optional in OMITTED_WHEN_ZERO:
        if not status[optional]:
            del status[optional]  # omitempty in the Go type: a zero is not written
    old = status_of(ds)
    for kept in ("collisionCount", "conditions"):
        if old.get(kept) is not None:
            status[kept] = old[kept]
    return status


def status_is_current(ds: Obj, new_status: Obj) -> bool:
    old = status_of(ds)
    return all(int(old.get(k) or 0) == int(new_status.get(k) or 0) for k in COUNTS)
