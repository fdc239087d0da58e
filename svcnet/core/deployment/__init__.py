"""What a Deployment needs, decided from plain objects (kube-controller-manager's deployment controller).

Pure functions over Deployment and ReplicaSet dicts, following upstream's
pkg/controller/deployment (sync.go, rolling.go, recreate.go, progress.go and
util/deployment_util.go), one module per concern:

- replicas: spec arithmetic (replicas, maxSurge, maxUnavailable) and
  ReplicaSet counts and the desired/max-replicas annotations;
- revisions: the pod-template-hash, which ReplicaSet is new (its template
  equals the Deployment's ignoring the hash; named `<deployment>-<hash>`),
  the revision annotations and history, clean-up of old ReplicaSets;
- rollout: rolling update and proportional scaling plans (ScaleSteps in the
  order upstream writes), Recreate's wait for old pods;
- status: counts and the Available/Progressing/ReplicaFailure conditions with
  upstream's reasons and messages (rollout_status).

The controller imports this package and uses the names below.
"""
from __future__ import annotations

from svcnet.core.deployment.replicas import (
    DESIRED_REPLICAS,
    MAX_INT32,
    MAX_REPLICAS,
    active,
    creation_order_key,
    has_progress_deadline,
    has_revision_history_limit,
    is_rolling_update,
    max_surge,
    max_unavailable,
    replicas_annotations,
    replicas_of,
    resolve_fenceposts,
    scaled_replica_set,
    scaled_value,
    total_spec_replicas,
    total_status,
)
from svcnet.core.deployment.revisions import (
    ANNOTATIONS_NOT_COPIED,
    CHANGE_CAUSE,
    LAST_APPLIED,
    MAX_REVISION_HISTORY_CHARS,
    POD_TEMPLATE_HASH,
    REVISION,
    REVISION_HISTORY,
    ROLLBACK_TO,
    compute_hash,
    equal_ignore_hash,
    find_new_replica_set,
    find_old_replica_sets,
    max_revision,
    new_replica_set_annotations,
    replica_set_for,
    replica_sets_to_clean_up,
    revision,
)
from svcnet.core.deployment.rollout import (
    RollingPlan,
    ScaleStep,
    find_active_or_latest,
    is_saturated,
    is_scaling_event,
    new_rs_new_replicas,
    old_pods_running,
    plan_proportional_scale,
    plan_rolling_update,
)
from svcnet.core.deployment.status import (
    AVAILABLE,
    FAILED_RS_CREATE_REASON,
    FOUND_NEW_RS_REASON,
    MINIMUM_REPLICAS_AVAILABLE,
    MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_RS_AVAILABLE_REASON,
    NEW_RS_REASON,
    PAUSED_REASON,
    PROGRESSING,
    REPLICA_FAILURE,
    RESUMED_REASON,
    RS_UPDATED_REASON,
    TIMED_OUT_REASON,
    calculate_status,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    get_condition,
    new_condition,
    paused_condition_update,
    remove_condition,
    replica_failure_condition,
    rollout_status,
    set_condition,
    status_changed,
    stuck_requeue_after,
)

__all__ = [
    "ANNOTATIONS_NOT_COPIED", "AVAILABLE", "CHANGE_CAUSE", "DESIRED_REPLICAS", "FAILED_RS_CREATE_REASON",
    "FOUND_NEW_RS_REASON", "LAST_APPLIED", "MAX_INT32", "MAX_REPLICAS", "MAX_REVISION_HISTORY_CHARS",
    "MINIMUM_REPLICAS_AVAILABLE", "MINIMUM_REPLICAS_UNAVAILABLE", "NEW_RS_AVAILABLE_REASON", "NEW_RS_REASON",
    "PAUSED_REASON", "POD_TEMPLATE_HASH", "PROGRESSING", "REPLICA_FAILURE", "RESUMED_REASON", "REVISION",
    "REVISION_HISTORY", "ROLLBACK_TO", "RS_UPDATED_REASON", "TIMED_OUT_REASON", "RollingPlan", "ScaleStep",
    "active", "calculate_status", "compute_hash", "creation_order_key", "deployment_complete",
    "deployment_progressing", "deployment_timed_out", "equal_ignore_hash", "find_active_or_latest",
    "find_new_replica_set", "find_old_replica_sets", "get_condition", "has_progress_deadline",
    "has_revision_history_limit", "is_rolling_update", "is_saturated", "is_scaling_event", "max_revision",
    "max_surge", "max_unavailable", "new_condition", "new_replica_set_annotations", "new_rs_new_replicas",
    "old_pods_running", "paused_condition_update", "plan_proportional_scale", "plan_rolling_update",
    "remove_condition", "replica_failure_condition", "replica_set_for", "replica_sets_to_clean_up",
    "replicas_annotations", "replicas_of", "resolve_fenceposts", "revision", "rollout_status", "scaled_replica_set",
    "scaled_value", "set_condition", "status_changed", "stuck_requeue_after", "total_spec_replicas",
    "total_status",
]
