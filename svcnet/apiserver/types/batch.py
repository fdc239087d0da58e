"""batch/v1 types: Job and CronJob (Kubernetes 1.32's k8s.io/api/batch/v1)."""
from __future__ import annotations

from .dsl import BATCH, define, define_kind

define_kind(BATCH, "Job", "batch", "v1", """
    spec JobSpec
    status JobStatus
""")
define(BATCH, "JobSpec", """
    activeDeadlineSeconds int64
    backoffLimit int32
    backoffLimitPerIndex int32
    completionMode string go=v1.CompletionMode
    completions int32
    managedBy string
    manualSelector bool
    maxFailedIndexes int32
    parallelism int32
    podFailurePolicy PodFailurePolicy
    podReplacementPolicy string go=v1.PodReplacementPolicy
    selector meta.LabelSelector
    successPolicy SuccessPolicy
    suspend bool
    template core.PodTemplateSpec
    ttlSecondsAfterFinished int32
""", required="template")
define(BATCH, "JobStatus", """
    active int32
    completedIndexes string
    completionTime time
    conditions []JobCondition patch=merge key=type list=atomic
    failed int32
    failedIndexes string
    ready int32
    startTime time
    succeeded int32
    terminating int32
    uncountedTerminatedPods UncountedTerminatedPods
""")
define(BATCH, "JobCondition", """
    lastProbeTime time
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.JobConditionType
""", required="type status")
define(BATCH, "UncountedTerminatedPods", """
    failed []string list=set
    succeeded []string list=set
""")
define(BATCH, "PodFailurePolicy", """
    rules []PodFailurePolicyRule list=atomic
""", required="rules")
define(BATCH, "PodFailurePolicyRule", """
    action string go=v1.PodFailurePolicyAction
    onExitCodes PodFailurePolicyOnExitCodesRequirement
    onPodConditions []PodFailurePolicyOnPodConditionsPattern list=atomic
""", required="action")
define(BATCH, "PodFailurePolicyOnExitCodesRequirement", """
    containerName string
    operator string go=v1.PodFailurePolicyOnExitCodesOperator
    values []int32 list=set
""", required="operator values")
define(BATCH, "PodFailurePolicyOnPodConditionsPattern", """
    status string go=v1.ConditionStatus
    type string go=v1.PodConditionType
""", required="type status")
define(BATCH, "SuccessPolicy", """
    rules []SuccessPolicyRule list=atomic
""", required="rules")
define(BATCH, "SuccessPolicyRule", """
    succeededCount int32
    succeededIndexes string
""")
define_kind(BATCH, "CronJob", "batch", "v1", """
    spec CronJobSpec
    status CronJobStatus
""")
define(BATCH, "CronJobSpec", """
    concurrencyPolicy string go=v1.ConcurrencyPolicy
    failedJobsHistoryLimit int32
    jobTemplate JobTemplateSpec
    schedule string
    startingDeadlineSeconds int64
    successfulJobsHistoryLimit int32
    suspend bool
    timeZone string
""", required="schedule jobTemplate")
define(BATCH, "CronJobStatus", """
    active []core.ObjectReference list=atomic
    lastScheduleTime time
    lastSuccessfulTime time
""")
define(BATCH, "JobTemplateSpec", """
    metadata meta.ObjectMeta
    spec JobSpec
""")
