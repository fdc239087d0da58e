"""A Deployment's revisions: template hashes, which ReplicaSet is new, revision history.

The new ReplicaSet is the one whose pod template equals the Deployment's,
ignoring the `pod-template-hash` label; a new one is named
`<deployment>-<hash>`. Each ReplicaSet carries its revision number in the
`deployment.kubernetes.io/revision` annotation; rolling back to an older one
gives it the next number and remembers the old ones in revision-history. Old
empty ReplicaSets beyond revisionHistoryLimit are cleaned up.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from svcnet.api import jsoncodec
from svcnet.api.objects import annotations_of, is_being_deleted, metadata_of, spec_of
from svcnet.core.deployment.replicas import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    annotated_int,
    creation_order_key,
    has_revision_history_limit,
    replicas_annotations,
    replicas_of,
    status_int,
)
from svcnet.core.hashing import fnv1a_32, safe_encode_string
from svcnet.core.replicaset import controller_ref_to

Obj = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Annotations a Deployment does not pass on to its ReplicaSets (and kubectl rollout undo keeps).
ANNOTATIONS_NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                                    MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000  # kube-controller-manager's default cap on revision-history


# ------------------------------------------------------------------------ hash

def compute_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The pod-template-hash: FNV-32a of the template, plus collisionCount, safe-encoded.

    Upstream hashes a spew dump of the Go struct, which JSON cannot reproduce;
    svcnet hashes the template's canonical JSON instead, so values differ from a
    real cluster's while keeping their shape and stability.
    """
    canonical = json.dumps(jsoncodec.without_nulls(dict(template)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = fnv1a_32(canonical.encode())
    if collision_count is not None:
        # Upstream writes the uint32 little-endian into an 8-byte buffer: four zero bytes follow.
        h = fnv1a_32((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0", h)
    return safe_encode_string(str(h))



def _without_hash(template: Mapping[str, Any]) -> Obj:
    copied = jsoncodec.without_nulls(dict(template))
    labels = metadata_of(copied).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            copied["metadata"].pop("labels")
    return copied


def equal_ignore_hash(t1: Mapping[str, Any], t2: Mapping[str, Any]) -> bool:
    return _without_hash(t1) == _without_hash(t2)


# ------------------------------------------------------------------- revisions

def revision(rs: Obj) -> int | None:
    """The revision annotation as an int; None when missing or not a number."""
    return annotated_int(rs, REVISION)


def max_revision(rss: Iterable[Obj]) -> int:
    return max((r for r in (revision(rs) for rs in rss) if r is not None), default=0)


def find_new_replica_set(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (ignoring the hash label)."""
    template = spec_of(d).get("template") or {}
    for rs in sorted(rss, key=creation_order_key):
        if equal_ignore_hash(spec_of(rs).get("template") or {}, template):
            return rs
    return None


def find_old_replica_sets(d: Obj, rss: Sequence[Obj]) -> list[Obj]:
    new_rs = find_new_replica_set(d, rss)
    new_uid = metadata_of(new_rs).get("uid") if new_rs else None
    return [rs for rs in rss if new_rs is None or metadata_of(rs).get("uid") != new_uid]


def _with_hash_label(labels: Mapping[str, str] | None, pod_hash: str) -> dict[str, str]:
    out = dict(labels or {})
    out[POD_TEMPLATE_HASH] = pod_hash
    return out


def replica_set_for(d: Obj, pod_hash: str, replicas: int, new_revision: str) -> Obj:
    """The new ReplicaSet for d: `<name>-<hash>`, the hash in its selector, labels and template."""
    spec = spec_of(d)
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = _with_hash_label(template["metadata"].get("labels"), pod_hash)
    selector = copy.deepcopy(spec.get("selector") or {})
    selector["matchLabels"] = _with_hash_label(selector.get("matchLabels"), pod_hash)
    rs: Obj = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{metadata_of(d)['name']}-{pod_hash}", "namespace": metadata_of(d).get("namespace"),
                     "labels": dict(template["metadata"]["labels"]),
                     "ownerReferences": [controller_ref_to(d)]},
        "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }
    annotations = new_replica_set_annotations(d, rs, new_revision, exists=False)
    if annotations:
        rs["metadata"]["annotations"] = annotations
    return rs


def new_replica_set_annotations(d: Obj, rs: Obj, new_revision: str, exists: bool,
                                history_limit: int = MAX_REVISION_HISTORY_CHARS) -> dict[str, str]:
    """The annotations rs should carry as d's new ReplicaSet (SetNewReplicaSetAnnotations)."""
    annotations = dict(annotations_of(rs))
    for key, value in annotations_of(d).items():
        if key not in ANNOTATIONS_NOT_COPIED:
            annotations[key] = value
    old_text = annotations.get(REVISION)
    try:
        old_revision = int(old_text) if old_text is not None else 0
    except ValueError:
        return annotations  # upstream leaves an unparsable revision alone
    if old_revision < int(new_revision):
        annotations[REVISION] = new_revision
        if old_text is not None:
            # Rolling back to this ReplicaSet: remember the revisions it had.
            history = annotations.get(REVISION_HISTORY, "")
            if not history:
                annotations[REVISION_HISTORY] = old_text
            else:
                revisions = history.split(",")
                total = len(history) + len(old_text) + 1
                start = 0
                while total > history_limit and start < len(revisions):
                    total -= len(revisions[start]) + 1
                    start += 1
                if total <= history_limit:
                    annotations[REVISION_HISTORY] = ",".join([*revisions[start:], old_text])
    if not exists:
        annotations.update(replicas_annotations(d))
    return annotations


def replica_sets_to_clean_up(d: Obj, old_rss: Sequence[Obj]) -> list[Obj]:
    """Old, empty ReplicaSets beyond revisionHistoryLimit, oldest revision first."""
    if not has_revision_history_limit(d):
        return []
    cleanable = [rs for rs in old_rss if not is_being_deleted(rs)]
    surplus = len(cleanable) - int(spec_of(d)["revisionHistoryLimit"])
    if surplus <= 0:
        return []
    cleanable.sort(key=lambda rs: (revision(rs) or 0, *creation_order_key(rs)))
    doomed = []
    for rs in cleanable[:surplus]:
        if (status_int(rs, "replicas") != 0 or replicas_of(rs) != 0
                or int(metadata_of(rs).get("generation") or 0) > status_int(rs, "observedGeneration")):
            continue
        doomed.append(rs)
    return doomed
