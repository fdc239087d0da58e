"""The labels, annotations and finalizer that tie a batch/v1 Job to its pods (k8s.io/api/batch/v1's
well-known keys), and the selector the API server generates for a Job without manualSelector."""
from __future__ import annotations

from typing import Any

from svcnet.api.objects import child

Obj = dict[str, Any]

JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
# The unprefixed keys older clusters set; upstream still writes both.
LEGACY_JOB_NAME = "job-name"
LEGACY_CONTROLLER_UID = "controller-uid"

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label of Indexed pods
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
CRONJOB_SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def generate_selector(job: Obj, uid: str) -> None:
    """What the job strategy does on create when manualSelector is not true: label the template
    with the job's name and uid (both key generations) unless the user set them, and select on
    the uid. Conflicting user values are left for validation to refuse."""
    name = str(child(job, "metadata").get("name") or "")
    spec = child(job, "spec")
    labels = child(child(child(spec, "template"), "metadata"), "labels")
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, name)
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, uid)
    child(child(spec, "selector"), "matchLabels").setdefault(CONTROLLER_UID, uid)
