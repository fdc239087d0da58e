"""meta/v1 types (ObjectMeta, Status, DeleteOptions, discovery documents) and version.Info."""
from __future__ import annotations

from .dsl import META, TYPE_META, VERSION, define

# ---------------------------------------------------------------------------
# meta/v1

define(META, "ObjectMeta", """
    annotations {}string
    creationTimestamp time
    deletionGracePeriodSeconds int64
    deletionTimestamp time
    finalizers []string patch=merge list=set
    generateName string
    generation int64
    labels {}string
    managedFields []ManagedFieldsEntry list=atomic
    name string
    namespace string
    ownerReferences []OwnerReference patch=merge key=uid list=map keys=uid
    resourceVersion string
    selfLink string
    uid string
""")
define(META, "ListMeta", """
    continue string
    remainingItemCount int64
    resourceVersion string
    selfLink string
""")
define(META, "OwnerReference", """
    apiVersion string
    blockOwnerDeletion bool
    controller bool
    kind string
    name string
    uid string
""", required="apiVersion kind name uid", map_type="atomic")
define(META, "ManagedFieldsEntry", """
    apiVersion string
    fieldsType string
    fieldsV1 fieldsv1
    manager string
    operation string go=v1.ManagedFieldsOperationType
    subresource string
    time time
""")
define(META, "LabelSelector", """
    matchExpressions []LabelSelectorRequirement list=atomic
    matchLabels {}string
""", map_type="atomic")
# Upstream really tags `key` with patchStrategy=merge/patchMergeKey=key.
define(META, "LabelSelectorRequirement", """
    key string patch=merge key=key
    operator string go=v1.LabelSelectorOperator
    values []string list=atomic
""", required="key operator")
define(META, "Condition", """
    lastTransitionTime time
    message string
    observedGeneration int64
    reason string
    status string go=v1.ConditionStatus
    type string
""", required="type status lastTransitionTime reason message")
define(META, "Status", TYPE_META + """
    code int32
    details StatusDetails
    message string
    metadata ListMeta
    reason string go=v1.StatusReason
    status string
""", kind=("", "v1"))
define(META, "StatusDetails", """
    causes []StatusCause list=atomic
    group string
    kind string
    name string
    retryAfterSeconds int32
    uid string go=types.UID
""")
define(META, "StatusCause", """
    field string
    message string
    reason string go=v1.CauseType
""")
define(META, "Preconditions", """
    resourceVersion string
    uid string go=types.UID
""")
define(META, "DeleteOptions", TYPE_META + """
    dryRun []string list=atomic
    gracePeriodSeconds int64
    ignoreStoreReadErrorWithClusterBreakingPotential bool
    orphanDependents bool
    preconditions Preconditions
    propagationPolicy string go=v1.DeletionPropagation
""")
define(META, "WatchEvent", """
    object object
    type string
""", required="type object")
# Discovery documents, described so /openapi/v3/api and /apis are complete.
define(META, "APIVersions", TYPE_META + """
    serverAddressByClientCIDRs []ServerAddressByClientCIDR list=atomic
    versions []string list=atomic
""", required="versions serverAddressByClientCIDRs", kind=("", "v1"))
define(META, "ServerAddressByClientCIDR", """
    clientCIDR string
    serverAddress string
""", required="clientCIDR serverAddress")
define(META, "APIGroupList", TYPE_META + """
    groups []APIGroup list=atomic
""", required="groups", kind=("", "v1"))
define(META, "APIGroup", TYPE_META + """
    name string
    preferredVersion GroupVersionForDiscovery
    serverAddressByClientCIDRs []ServerAddressByClientCIDR list=atomic
    versions []GroupVersionForDiscovery list=atomic
""", required="name versions", kind=("", "v1"))
define(META, "GroupVersionForDiscovery", """
    groupVersion string
    version string
""", required="groupVersion version")
define(META, "APIResourceList", TYPE_META + """
    groupVersion string
    resources []APIResource list=atomic
""", required="groupVersion resources", kind=("", "v1"))
define(META, "APIResource", """
    categories []string list=atomic
    group string
    kind string
    name string
    namespaced bool
    shortNames []string list=atomic
    singularName string
    storageVersionHash string
    verbs []string
    version string
""", required="name singularName namespaced kind verbs")
define(VERSION, "Info", """
    buildDate string
    compiler string
    gitCommit string
    gitTreeState string
    gitVersion string
    goVersion string
    major string
    minor string
    platform string
""", required="major minor gitVersion gitCommit gitTreeState buildDate goVersion compiler platform")

