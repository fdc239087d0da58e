"""apps/v1 types: Deployment, ReplicaSet, StatefulSet, DaemonSet."""
from __future__ import annotations

from .dsl import APPS, define, define_kind

# ---------------------------------------------------------------------------
# apps/v1

define_kind(APPS, "Deployment", "apps", "v1", """
    spec DeploymentSpec
    status DeploymentStatus
""")
define(APPS, "DeploymentSpec", """
    minReadySeconds int32
    paused bool
    progressDeadlineSeconds int32
    replicas int32
    revisionHistoryLimit int32
    selector meta.LabelSelector
    strategy DeploymentStrategy patch=retainKeys
    template core.PodTemplateSpec
""", required="selector template")
define(APPS, "DeploymentStrategy", """
    rollingUpdate RollingUpdateDeployment
    type string go=v1.DeploymentStrategyType
""")
define(APPS, "RollingUpdateDeployment", """
    maxSurge intstr
    maxUnavailable intstr
""")
define(APPS, "DeploymentStatus", """
    availableReplicas int32
    collisionCount int32
    conditions []DeploymentCondition patch=merge key=type list=map keys=type
    observedGeneration int64
    readyReplicas int32
    replicas int32
    unavailableReplicas int32
    updatedReplicas int32
""")
define(APPS, "DeploymentCondition", """
    lastTransitionTime time
    lastUpdateTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.DeploymentConditionType
""", required="type status")
define_kind(APPS, "ReplicaSet", "apps", "v1", """
    spec ReplicaSetSpec
    status ReplicaSetStatus
""")
define(APPS, "ReplicaSetSpec", """
    minReadySeconds int32
    replicas int32
    selector meta.LabelSelector
    template core.PodTemplateSpec
""", required="selector")
define(APPS, "ReplicaSetStatus", """
    availableReplicas int32
    conditions []ReplicaSetCondition patch=merge key=type list=map keys=type
    fullyLabeledReplicas int32
    observedGeneration int64
    readyReplicas int32
    replicas int32
""", required="replicas")
define(APPS, "ReplicaSetCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.ReplicaSetConditionType
""", required="type status")
define_kind(APPS, "StatefulSet", "apps", "v1", """
    spec StatefulSetSpec
    status StatefulSetStatus
""")
define(APPS, "StatefulSetSpec", """
    minReadySeconds int32
    ordinals StatefulSetOrdinals
    persistentVolumeClaimRetentionPolicy StatefulSetPersistentVolumeClaimRetentionPolicy
    podManagementPolicy string go=v1.PodManagementPolicyType
    replicas int32
    revisionHistoryLimit int32
    selector meta.LabelSelector
    serviceName string
    template core.PodTemplateSpec
    updateStrategy StatefulSetUpdateStrategy
    volumeClaimTemplates []core.PersistentVolumeClaim list=atomic
""", required="selector template serviceName")
define(APPS, "StatefulSetOrdinals", "start int32")
define(APPS, "StatefulSetPersistentVolumeClaimRetentionPolicy", """
    whenDeleted string go=v1.PersistentVolumeClaimRetentionPolicyType
    whenScaled string go=v1.PersistentVolumeClaimRetentionPolicyType
""")
define(APPS, "StatefulSetUpdateStrategy", """
    rollingUpdate RollingUpdateStatefulSetStrategy
    type string go=v1.StatefulSetUpdateStrategyType
""")
define(APPS, "RollingUpdateStatefulSetStrategy", """
    maxUnavailable intstr
    partition int32
""")
define(APPS, "StatefulSetStatus", """
    availableReplicas int32
    collisionCount int32
    conditions []StatefulSetCondition patch=merge key=type list=map keys=type
    currentReplicas int32
    currentRevision string
    observedGeneration int64
    readyReplicas int32
    replicas int32
    updateRevision string
    updatedReplicas int32
""", required="replicas")
define(APPS, "StatefulSetCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.StatefulSetConditionType
""", required="type status")

define_kind(APPS, "DaemonSet", "apps", "v1", """
    spec DaemonSetSpec
    status DaemonSetStatus
""")
define(APPS, "DaemonSetSpec", """
    minReadySeconds int32
    revisionHistoryLimit int32
    selector meta.LabelSelector
    template core.PodTemplateSpec
    updateStrategy DaemonSetUpdateStrategy
""", required="selector template")
define(APPS, "DaemonSetUpdateStrategy", """
    rollingUpdate RollingUpdateDaemonSet
    type string go=v1.DaemonSetUpdateStrategyType
""")
define(APPS, "RollingUpdateDaemonSet", """
    maxSurge intstr
    maxUnavailable intstr
""")
define(APPS, "DaemonSetStatus", """
    collisionCount int32
    conditions []DaemonSetCondition patch=merge key=type list=map keys=type
    currentNumberScheduled int32
    desiredNumberScheduled int32
    numberAvailable int32
    numberMisscheduled int32
    numberReady int32
    numberUnavailable int32
    observedGeneration int64
    updatedNumberScheduled int32
""", required="currentNumberScheduled numberMisscheduled desiredNumberScheduled numberReady")
define(APPS, "DaemonSetCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.DaemonSetConditionType
""", required="type status")
