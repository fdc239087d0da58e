"""What a StatefulSet's pods should be: kube-controller-manager's statefulset control loop, pure.

`plan_stateful_set(sts, pods, now=...)` looks at a StatefulSet and the pods it
owns and returns the pod writes to make now and the status to record, in the
order upstream's defaultStatefulSetControl makes them:

- every ordinal in [start, start+replicas) gets a pod `<name>-<ordinal>` with
  hostname = its name and subdomain = spec.serviceName (its DNS identity);
- OrderedReady ("monotonic"): a pod is created only when every lower ordinal
  is Running and Ready (and available after minReadySeconds), one write per
  pass; pods beyond the range are deleted highest first, one at a time, once
  every remaining pod is healthy; Parallel: all of it at once;
- failed or succeeded pods are deleted so the next pass recreates them under
  the same name;
- RollingUpdate replaces pods whose revision is not the update revision, from
  the highest ordinal down to the partition, waiting for each to be healthy
  (with maxUnavailable: several at once, as upstream's MaxUnavailableStatefulSet);
  OnDelete leaves it to the user.

svcnet does not serve ControllerRevisions: a revision is just the name
`<set>-<hash of the pod template>`, kept in status.currentRevision and
status.updateRevision and on each pod's controller-revision-hash label. The
template of an older revision is recovered from a pod still running it.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from svcnet.api import meta
from svcnet.api.objects import (
    annotations_of,
    condition_of,
    controller_ref,
    is_being_deleted,
    labels_of,
    metadata_of,
    name_of,
    namespace_of,
    new_controller_ref,
    spec_of,
    status_of,
)
from svcnet.core.hashing import fnv1_32, safe_encode_string

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
# Set to "false" on a pod, it holds the pod unready for the controller (a debugging hook upstream keeps).
INIT_ANNOTATION = "pod.alpha.kubernetes.io/initialized"

_MEMBER_NAME = re.compile(r"^(.*)-([0-9]+)$")


# ---------------------------------------------------------------- identity

def parent_and_ordinal(pod_name: str) -> tuple[str, int]:
    """("web", 2) for "web-2"; ("", -1) when the name has no ordinal suffix."""
    match = _MEMBER_NAME.match(pod_name)
    if not match:
        return "", -1
    ordinal = int(match.group(2))
    if ordinal >= 2**31:  # upstream parses into an int32
        return match.group(1), -1
    return match.group(1), ordinal


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(name_of(pod))[1]


def is_member_of(sts: Obj, pod: Obj) -> bool:
    """A pod belongs to a StatefulSet by name: `<set>-<ordinal>`."""
    parent, ordinal = parent_and_ordinal(name_of(pod))
    return ordinal >= 0 and parent == name_of(sts)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{name_of(sts)}-{ordinal}"


def start_ordinal(sts: Obj) -> int:
    return int((spec_of(sts).get("ordinals") or {}).get("start") or 0)


def desired_replicas(sts: Obj) -> int:
    replicas = spec_of(sts).get("replicas")
    return 1 if replicas is None else int(replicas)


def identity_matches(sts: Obj, pod: Obj) -> bool:
    """Name, namespace and the identity labels agree with the set (hostname is fixed at creation)."""
    md = metadata_of(pod)
    ordinal = ordinal_of(pod)
    labels = labels_of(pod)
    return (ordinal >= 0 and is_member_of(sts, pod) and md.get("namespace") == namespace_of(sts)
            and labels.get(POD_NAME_LABEL) == md.get("name")
            and labels.get(POD_INDEX_LABEL) == str(ordinal))


def identity_labels(pod: Obj) -> dict[str, str]:
    """The labels updateIdentity sets: the pod's name and its ordinal."""
    return {POD_NAME_LABEL: name_of(pod), POD_INDEX_LABEL: str(ordinal_of(pod))}


# ---------------------------------------------------------------- revisions

def revision_hash(template: Obj | None, collision_count: int = 0) -> str:
    """A short hash of the pod template (and the collision count, as upstream's probe)."""
    # Upstream hashes the JSON of a strategic patch replacing spec.template; the bytes are
    # Go's field order, so the value differs from a real cluster's, the shape does not.
    patch = {"spec": {"template": {**(template or {}), "$patch": "replace"}}}
    data = json.dumps(patch, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode_string(str(fnv1_32(data)))


def revision_name(sts: Obj) -> str:
    """The update revision: `<set>-<hash>` of the current template."""
    collisions = int(status_of(sts).get("collisionCount") or 0)
    prefix = name_of(sts)[:223]  # upstream's ControllerRevisionName keeps names under 253
    return f"{prefix}-{revision_hash(spec_of(sts).get('template'), collisions)}"


def pod_revision(pod: Obj) -> str:
    return labels_of(pod).get(REVISION_LABEL, "")


def template_from_pod(pod: Obj) -> Obj:
    """The pod template a pod was made from, as near as the pod still shows it.

    Without ControllerRevision objects this is where an older revision's
    template survives: in the pods still running it.
    """
    md = metadata_of(pod)
    labels = {k: v for k, v in labels_of(pod).items()
              if k not in (POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL)}
    template_md: Obj = {"labels": labels}
    if md.get("annotations"):
        template_md["annotations"] = copy.deepcopy(md["annotations"])
    spec = copy.deepcopy(spec_of(pod))
    for assigned in ("nodeName", "hostname", "subdomain"):
        spec.pop(assigned, None)  # set by the controller and the scheduler, not the template
    return {"metadata": template_md, "spec": spec}


# --------------------------------------------------------------- pod states

def phase(pod: Obj) -> str:
    return str(status_of(pod).get("phase") or "")


def is_created(pod: Obj) -> bool:
    """Upstream's isCreated: the API server has given the pod a phase."""
    return phase(pod) != ""


def is_failed(pod: Obj) -> bool:
    return phase(pod) == "Failed"


def is_succeeded(pod: Obj) -> bool:
    return phase(pod) == "Succeeded"


def is_terminating(pod: Obj) -> bool:
    return is_being_deleted(pod)


def is_running_and_ready(pod: Obj) -> bool:
    if phase(pod) != "Running":
        return False
    condition = condition_of(pod, "Ready")
    if condition is None or condition.get("status") != "True":
        return False
    annotations = annotations_of(pod)
    return annotations.get(INIT_ANNOTATION, "true").lower() not in ("false", "0", "f")


def is_running_and_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready for at least minReadySeconds (by the Ready condition's lastTransitionTime)."""
    if not is_running_and_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = (condition_of(pod, "Ready") or {}).get("lastTransitionTime")
    if not since:
        return False
    return meta.parse_time(since) + dt.timedelta(seconds=min_ready_seconds) <= now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> float | None:
    """For a ready but not yet available pod, how long until it is; None otherwise."""
    if min_ready_seconds <= 0 or not is_running_and_ready(pod):
        return None
    since = (condition_of(pod, "Ready") or {}).get("lastTransitionTime")
    if not since:
        return None
    remaining = (meta.parse_time(since) + dt.timedelta(seconds=min_ready_seconds) - now).total_seconds()
    return remaining if remaining > 0 else None


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def is_unavailable(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    return (not is_created(pod) or is_terminating(pod)
            or not is_running_and_available(pod, min_ready_seconds, now))


# ---------------------------------------------------------------- new pods

def new_pod(sts: Obj, ordinal: int, template: Obj | None, revision: str) -> Obj:
    """The pod for an ordinal, as GetPodFromTemplate + initIdentity + setPodRevision build it."""
    template = template or {}
    template_md = metadata_of(template)
    name = pod_name(sts, ordinal)
    labels = dict(labels_of(template))
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ordinal)
    labels[REVISION_LABEL] = revision
    md: Obj = {"name": name, "generateName": f"{name_of(sts)}-",
               "namespace": namespace_of(sts), "labels": labels,
               "ownerReferences": [controller_reference(sts)]}
    if template_md.get("annotations"):
        md["annotations"] = dict(template_md["annotations"])
    if template_md.get("finalizers"):
        md["finalizers"] = list(template_md["finalizers"])
    spec = copy.deepcopy(spec_of(template))
    spec["hostname"] = name
    service_name = spec_of(sts).get("serviceName")
    if service_name:
        spec["subdomain"] = service_name
    else:
        spec.pop("subdomain", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


def controller_reference(sts: Obj) -> Obj:
    return new_controller_ref(sts, "apps/v1", "StatefulSet")


# ---------------------------------------------------------------- ownership

def controller_uid(obj: Obj) -> str | None:
    ref = controller_ref(obj)
    return None if ref is None else str(ref.get("uid") or "")


@dataclass(frozen=True)
class Claim:
    """ClaimPods' answer: the set's pods, orphans to adopt, owned pods to release."""

    owned: tuple[Obj, ...]
    adopt: tuple[Obj, ...]
    release: tuple[Obj, ...]


def claim_pods(sts: Obj, pods: Iterable[Obj], selector_matches: Any) -> Claim:
    """Split the namespace's pods as upstream's PodControllerRefManager does.

    selector_matches(labels) -> bool is the set's label selector. Only pods
    named as members are considered (upstream's isMemberOf filter); a set
    being deleted adopts nothing.
    """
    uid = metadata_of(sts).get("uid")
    deleting = is_being_deleted(sts)
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for pod in pods:
        if not is_member_of(sts, pod):
            continue
        labels = labels_of(pod)
        owner = controller_uid(pod)
        if owner == uid:
            if selector_matches(labels) or deleting:
                owned.append(pod)
            else:
                release.append(pod)
        elif owner is None and not deleting and not is_terminating(pod) and selector_matches(labels):
            adopt.append(pod)
    return Claim(tuple(owned), tuple(adopt), tuple(release))


# ----------------------------------------------------------------- the plan

ActionKind = Literal["create", "delete", "relabel"]


@dataclass(frozen=True)
class PodAction:
    """One pod write. `why` says which rule asked for it (for logs and tests)."""

    kind: ActionKind
    name: str
    why: str
    pod: Obj | None = field(default=None, compare=False)  # create: the body; relabel: the labels


@dataclass(frozen=True)
class StatefulSetPlan:
    actions: tuple[PodAction, ...]
    status: Obj
    requeue_after: float | None = None


@dataclass
class _Counts:
    replicas: int = 0
    ready: int = 0
    available: int = 0
    current: int = 0
    updated: int = 0


def _count(pods: Iterable[Obj], min_ready: int, now: dt.datetime, current_rev: str,
           update_rev: str) -> _Counts:
    counts = _Counts()
    for pod in pods:
        if is_created(pod):
            counts.replicas += 1
        if is_running_and_ready(pod):
            counts.ready += 1
            if is_running_and_available(pod, min_ready, now):
                counts.available += 1
        if is_created(pod) and not is_terminating(pod):
            revision = pod_revision(pod)
            if revision == current_rev:
                counts.current += 1
            if revision == update_rev:
                counts.updated += 1
    return counts


def _max_unavailable(value: Any, replicas: int) -> int:
    """intstr maxUnavailable scaled against replicas, rounded down, at least 1 (as upstream)."""
    if value is None:
        return 1
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * replicas // 100
    else:
        scaled = int(value)
    return max(scaled, 1)


def plan_stateful_set(sts: Obj, pods: Iterable[Obj], *, now: dt.datetime,
                      current_template: Obj | None = None) -> StatefulSetPlan:
    """The writes to make now and the status to record, for a set and the pods it owns.

    current_template is the pod template of status.currentRevision when that
    differs from the update revision (None when unknown: missing pods are then
    created at the update revision). The steps run in upstream's order; in
    monotonic (OrderedReady) mode a step that is not done ends the pass.
    """
    p = _start_pass(sts, pods, now, current_template)
    if is_being_deleted(sts) or _update_replicas(p) or _scale_down(p) or p.strategy_type == "OnDelete":
        return _finish(p)
    return _finish(p, _rolling_update(p))


@dataclass
class _Pass:
    """One pass over a set: what it reads once, and the pod actions it decides, in order."""

    sts: Obj
    now: dt.datetime
    min_ready: int
    strategy_type: str
    rolling: Obj | None
    monotonic: bool
    current_rev: str
    update_rev: str
    replicas: list[Obj] = field(default_factory=list)  # one pod per ordinal in range, made up where missing
    unborn: set[str] = field(default_factory=set)  # the names of the made-up ones
    condemned: list[Obj] = field(default_factory=list)  # members beyond the range, highest ordinal first
    actions: list[PodAction] = field(default_factory=list)

    def available(self, pod: Obj) -> bool:
        return is_running_and_available(pod, self.min_ready, self.now)

    def unavailable(self, pod: Obj) -> bool:
        return is_unavailable(pod, self.min_ready, self.now)

    def existing(self) -> list[Obj]:
        """The pods that exist, which the status counts."""
        return [pod for pod in self.replicas if name_of(pod) not in self.unborn] + self.condemned


def _start_pass(sts: Obj, pods: Iterable[Obj], now: dt.datetime, current_template: Obj | None) -> _Pass:
    """Read the set's strategy and revisions, and sort its pods into ordinals and condemned."""
    spec = spec_of(sts)
    strategy = spec.get("updateStrategy") or {}
    update_rev = revision_name(sts)
    p = _Pass(sts=sts, now=now, min_ready=int(spec.get("minReadySeconds") or 0),
              strategy_type=strategy.get("type") or "RollingUpdate", rolling=strategy.get("rollingUpdate"),
              monotonic=spec.get("podManagementPolicy") != "Parallel",
              current_rev=str(status_of(sts).get("currentRevision") or "") or update_rev, update_rev=update_rev)
    if p.current_rev == p.update_rev:
        current_template = spec.get("template") or {}
    start, count = start_ordinal(sts), desired_replicas(sts)
    slots: dict[int, Obj] = {}
    for pod in sorted((m for m in pods if is_member_of(sts, m)), key=ordinal_of):
        ordinal = ordinal_of(pod)
        if start <= ordinal < start + count:
            slots[ordinal] = pod
        else:
            p.condemned.append(pod)
    p.condemned.sort(key=ordinal_of, reverse=True)
    p.unborn = {pod_name(sts, o) for o in range(start, start + count) if o not in slots}
    p.replicas = [slots[o] if o in slots else _missing_pod(p, o, current_template)
                  for o in range(start, start + count)]
    return p


def _missing_pod(p: _Pass, ordinal: int, current_template: Obj | None) -> Obj:
    """A missing ordinal gets a pod at the revision its place in the rollout calls for."""
    if current_template is not None and p.strategy_type == "RollingUpdate":
        start = start_ordinal(p.sts)
        if p.rolling is None:
            below = ordinal < start + int(status_of(p.sts).get("currentReplicas") or 0)
        else:
            below = ordinal < start + int(p.rolling.get("partition") or 0)
        if below:
            return new_pod(p.sts, ordinal, current_template, p.current_rev)
    return new_pod(p.sts, ordinal, spec_of(p.sts).get("template") or {}, p.update_rev)


def _update_replicas(p: _Pass) -> bool:
    """1. Living replicas, in ordinal order; monotonic mode stops at the first one not done.

    Returns whether the pass ends here.
    """
    for pod in p.replicas:
        name = name_of(pod)
        if is_failed(pod) or is_succeeded(pod):
            if not is_terminating(pod):
                p.actions.append(PodAction("delete", name, f"recreate {phase(pod).lower()} pod"))
            if p.monotonic:
                return True
            continue
        if name in p.unborn:
            p.actions.append(PodAction("create", name, "missing ordinal", pod))
            if p.monotonic:
                return True
            continue
        if p.monotonic and (is_terminating(pod) or not is_running_and_ready(pod) or not p.available(pod)):
            return True
        if not identity_matches(p.sts, pod):
            p.actions.append(PodAction("relabel", name, "identity", identity_labels(pod)))
    return False


def _scale_down(p: _Pass) -> bool:
    """2. Condemned pods (beyond the range), highest ordinal first. Returns whether the pass ends here.

    In monotonic mode one goes at a time, and only while the others are healthy:
    the first unavailable pod of the set may itself be deleted.
    """
    first_unavailable = next((pod for pod in [*p.replicas, *reversed(p.condemned)] if p.unavailable(pod)), None)
    for pod in p.condemned:
        if is_terminating(pod):
            if p.monotonic:
                return True
            continue
        if p.monotonic and pod is not first_unavailable and (
                not is_running_and_ready(pod) or not p.available(pod)):
            return True
        p.actions.append(PodAction("delete", name_of(pod), "scale down"))
        if p.monotonic:
            return True
    return False


def _rolling_update(p: _Pass) -> int:
    """3. Rolling update, from the highest ordinal down to the partition.

    Returns the change its deletions make to currentReplicas (0 or negative).
    """
    partition = int((p.rolling or {}).get("partition") or 0)
    if p.rolling is not None and p.rolling.get("maxUnavailable") is not None:
        return _rolling_update_within_budget(p, p.rolling["maxUnavailable"], partition)
    for index in range(len(p.replicas) - 1, partition - 1, -1):
        pod = p.replicas[index]
        if pod_revision(pod) != p.update_rev and not is_terminating(pod):
            p.actions.append(PodAction("delete", name_of(pod), "rolling update"))
            return -1
        if p.unavailable(pod):
            return 0
    return 0


def _rolling_update_within_budget(p: _Pass, max_unavailable: Any, partition: int) -> int:
    """With maxUnavailable: replace as many pods at once as the budget leaves room for."""
    budget = _max_unavailable(max_unavailable, desired_replicas(p.sts))
    unavailable = sum(1 for pod in p.replicas if p.unavailable(pod))
    if unavailable > budget:
        return 0
    deleted = 0
    for index in range(len(p.replicas) - 1, partition - 1, -1):
        if deleted >= budget - unavailable:
            break
        pod = p.replicas[index]
        if pod_revision(pod) != p.update_rev and not is_terminating(pod):
            p.actions.append(PodAction("delete", name_of(pod), "rolling update"))
            deleted += 1
    return -deleted


def _finish(p: _Pass, current_delta: int = 0) -> StatefulSetPlan:
    """The plan: the actions decided, and the status the existing pods add up to."""
    status_in = status_of(p.sts)
    existing = p.existing()
    counts = _count(existing, p.min_ready, p.now, p.current_rev, p.update_rev)
    status: Obj = {
        "observedGeneration": int(metadata_of(p.sts).get("generation") or 0),
        "replicas": counts.replicas,
        "readyReplicas": counts.ready,
        "currentReplicas": counts.current + current_delta,
        "updatedReplicas": counts.updated,
        "availableReplicas": counts.available,
        "currentRevision": p.current_rev,
        "updateRevision": p.update_rev,
        "collisionCount": int(status_in.get("collisionCount") or 0),
    }
    if status_in.get("conditions"):
        status["conditions"] = status_in["conditions"]
    # completeRollingUpdate: every pod updated and ready makes the update revision current.
    if (p.strategy_type == "RollingUpdate" and status["updatedReplicas"] == status["replicas"]
            and status["readyReplicas"] == status["replicas"]):
        status["currentReplicas"] = status["updatedReplicas"]
        status["currentRevision"] = p.update_rev
    requeue = None
    if p.min_ready > 0 and status["readyReplicas"] != status["availableReplicas"]:
        waits = [w for pod in existing if (w := seconds_until_available(pod, p.min_ready, p.now))]
        requeue = min(waits) if waits else float(p.min_ready)
    return StatefulSetPlan(tuple(p.actions), status, requeue)


def status_differs(sts: Obj, status: Mapping[str, Any]) -> bool:
    """Whether writing status would change anything (upstream's inconsistentStatus)."""
    current = status_of(sts)
    return any(current.get(k, _ZERO.get(k)) != v for k, v in status.items())


_ZERO: dict[str, Any] = {"replicas": 0, "readyReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0,
                         "availableReplicas": 0, "observedGeneration": 0, "collisionCount": 0,
                         "currentRevision": "", "updateRevision": ""}
