"""Type definitions for every Kubernetes type svcnet serves, in a compact DSL.

One definition feeds three readers: the OpenAPI v3 documents (openapi.py), the
strategic-merge-patch code (through the x-kubernetes-* extensions those
documents carry) and the strict field checker (fieldcheck below). Field names,
list semantics (patchStrategy/patchMergeKey, listType/listMapKeys, mapType) and
`required` follow upstream's Go types for Kubernetes 1.32.

A struct body is one field per line: `name type [option=value ...]`.

Types: string int32 int64 bool double quantity intstr time microtime object,
`[]T` (list), `{}T` (map of string to T), `Name` (struct in the same package) or
`pkg.Name` (meta., core., apps., autoscaling., discovery., coordination.,
version.). `object` is free-form JSON (RawExtension-like).

Options: patch=merge|retainKeys|merge,retainKeys  key=<patchMergeKey>
list=atomic|set|map  keys=a,b (listMapKeys)  maptype=atomic|granular
go=<Go type> (the Go type named in decode errors, e.g. v1.Protocol).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

from svcnet.api.errors import ApiError, Cause, bad_request
from svcnet.api.resources import Resource, Subresource, group_versions

# OpenAPI schema-name prefixes, as upstream names its definitions.
CORE = "io.k8s.api.core.v1"
APPS = "io.k8s.api.apps.v1"
AUTOSCALING = "io.k8s.api.autoscaling.v1"
DISCOVERY = "io.k8s.api.discovery.v1"
COORDINATION = "io.k8s.api.coordination.v1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
VERSION = "io.k8s.apimachinery.pkg.version"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"
FIELDS_V1 = f"{META}.FieldsV1"
PATCH = f"{META}.Patch"

_PACKAGES = {
    "core": CORE, "apps": APPS, "autoscaling": AUTOSCALING, "discovery": DISCOVERY,
    "coordination": COORDINATION, "meta": META, "version": VERSION,
}

SCALARS = frozenset({"string", "int32", "int64", "bool", "double"})
# Types with their own component schema and their own JSON decoding upstream.
SPECIAL = {
    "quantity": QUANTITY, "intstr": INT_OR_STRING, "time": TIME, "microtime": MICRO_TIME,
    "object": RAW_EXTENSION, "fieldsv1": FIELDS_V1,
}


@dataclass(frozen=True)
class TypeRef:
    """A field type: kind is scalar name, 'special', 'struct', 'list' or 'map'."""

    kind: str
    name: str = ""  # scalar/special name, or full schema name for a struct
    elem: TypeRef | None = None
    go: str = ""  # Go type string used in decode errors, when it differs from the default


@dataclass(frozen=True)
class Field:
    name: str
    type: TypeRef
    patch_strategy: str = ""
    patch_merge_key: str = ""
    list_type: str = ""
    list_map_keys: tuple[str, ...] = ()
    map_type: str = ""


@dataclass(frozen=True)
class Struct:
    name: str  # full schema name, e.g. io.k8s.api.core.v1.PodSpec
    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    map_type: str = ""
    gvks: tuple[tuple[str, str, str], ...] = ()  # (group, version, kind)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[1]

    @property
    def go_name(self) -> str:
        """How Go's reflect prints the type: last package element + type name."""
        package, short = self.name.rsplit(".", 1)
        return f"{package.rsplit('.', 1)[1]}.{short}"

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


# ---------------------------------------------------------------------------
# The DSL reader.

_STRUCTS: dict[str, Struct] = {}


def _parse_type(token: str, package: str, go: str) -> TypeRef:
    if token.startswith("[]"):
        return TypeRef("list", elem=_parse_type(token[2:], package, ""), go=go)
    if token.startswith("{}"):
        return TypeRef("map", elem=_parse_type(token[2:], package, ""), go=go)
    if token in SCALARS:
        return TypeRef(token, token, go=go)
    if token in SPECIAL:
        return TypeRef("special", token, go=go)
    if "." in token:
        prefix, short = token.split(".", 1)
        return TypeRef("struct", f"{_PACKAGES[prefix]}.{short}", go=go)
    return TypeRef("struct", f"{package}.{token}", go=go)


def _parse_field(line: str, package: str) -> Field:
    name, type_token, *options = line.split()
    opts = dict(o.split("=", 1) for o in options)
    unknown = set(opts) - {"patch", "key", "list", "keys", "maptype", "go"}
    if unknown:
        raise ValueError(f"unknown option {unknown} in {line!r}")
    return Field(
        name=name,
        type=_parse_type(type_token, package, opts.get("go", "")),
        patch_strategy=opts.get("patch", ""),
        patch_merge_key=opts.get("key", ""),
        list_type=opts.get("list", ""),
        list_map_keys=tuple(opts["keys"].split(",")) if "keys" in opts else (),
        map_type=opts.get("maptype", ""),
    )


def _define(package: str, short: str, body: str, *, required: str = "", map_type: str = "",
            kind: tuple[str, str] | None = None) -> None:
    """Declare a struct; kind=(group, version) marks a top-level kind with its GVK."""
    fields = tuple(_parse_field(line.strip(), package) for line in body.strip().splitlines()
                   if line.strip() and not line.strip().startswith("#"))
    gvks = ((kind[0], kind[1], short),) if kind else ()
    name = f"{package}.{short}"
    if name in _STRUCTS:
        raise ValueError(f"{name} defined twice")
    _STRUCTS[name] = Struct(name, fields, tuple(required.split()), map_type, gvks)


_TYPE_META = """
    apiVersion string
    kind string
"""


def _kind(package: str, short: str, group: str, version: str, body: str, *, required: str = "",
          with_list: bool = True) -> None:
    """A top-level kind (TypeMeta inlined, as Go's json does) and, usually, its List."""
    _define(package, short, _TYPE_META + "metadata meta.ObjectMeta\n" + body,
            required=required, kind=(group, version))
    if with_list:
        _define(package, short + "List", _TYPE_META + f"""
            items []{short}
            metadata meta.ListMeta
        """, required="items", kind=(group, version))


# ---------------------------------------------------------------------------
# meta/v1

_define(META, "ObjectMeta", """
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
_define(META, "ListMeta", """
    continue string
    remainingItemCount int64
    resourceVersion string
    selfLink string
""")
_define(META, "OwnerReference", """
    apiVersion string
    blockOwnerDeletion bool
    controller bool
    kind string
    name string
    uid string
""", required="apiVersion kind name uid", map_type="atomic")
_define(META, "ManagedFieldsEntry", """
    apiVersion string
    fieldsType string
    fieldsV1 fieldsv1
    manager string
    operation string go=v1.ManagedFieldsOperationType
    subresource string
    time time
""")
_define(META, "LabelSelector", """
    matchExpressions []LabelSelectorRequirement list=atomic
    matchLabels {}string
""", map_type="atomic")
# Upstream really tags `key` with patchStrategy=merge/patchMergeKey=key.
_define(META, "LabelSelectorRequirement", """
    key string patch=merge key=key
    operator string go=v1.LabelSelectorOperator
    values []string list=atomic
""", required="key operator")
_define(META, "Condition", """
    lastTransitionTime time
    message string
    observedGeneration int64
    reason string
    status string go=v1.ConditionStatus
    type string
""", required="type status lastTransitionTime reason message")
_define(META, "Status", _TYPE_META + """
    code int32
    details StatusDetails
    message string
    metadata ListMeta
    reason string go=v1.StatusReason
    status string
""", kind=("", "v1"))
_define(META, "StatusDetails", """
    causes []StatusCause list=atomic
    group string
    kind string
    name string
    retryAfterSeconds int32
    uid string go=types.UID
""")
_define(META, "StatusCause", """
    field string
    message string
    reason string go=v1.CauseType
""")
_define(META, "Preconditions", """
    resourceVersion string
    uid string go=types.UID
""")
_define(META, "DeleteOptions", _TYPE_META + """
    dryRun []string list=atomic
    gracePeriodSeconds int64
    ignoreStoreReadErrorWithClusterBreakingPotential bool
    orphanDependents bool
    preconditions Preconditions
    propagationPolicy string go=v1.DeletionPropagation
""")
_define(META, "WatchEvent", """
    object object
    type string
""", required="type object")
# Discovery documents, described so /openapi/v3/api and /apis are complete.
_define(META, "APIVersions", _TYPE_META + """
    serverAddressByClientCIDRs []ServerAddressByClientCIDR list=atomic
    versions []string list=atomic
""", required="versions serverAddressByClientCIDRs", kind=("", "v1"))
_define(META, "ServerAddressByClientCIDR", """
    clientCIDR string
    serverAddress string
""", required="clientCIDR serverAddress")
_define(META, "APIGroupList", _TYPE_META + """
    groups []APIGroup list=atomic
""", required="groups", kind=("", "v1"))
_define(META, "APIGroup", _TYPE_META + """
    name string
    preferredVersion GroupVersionForDiscovery
    serverAddressByClientCIDRs []ServerAddressByClientCIDR list=atomic
    versions []GroupVersionForDiscovery list=atomic
""", required="name versions", kind=("", "v1"))
_define(META, "GroupVersionForDiscovery", """
    groupVersion string
    version string
""", required="groupVersion version")
_define(META, "APIResourceList", _TYPE_META + """
    groupVersion string
    resources []APIResource list=atomic
""", required="groupVersion resources", kind=("", "v1"))
_define(META, "APIResource", """
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
_define(VERSION, "Info", """
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

# ---------------------------------------------------------------------------
# core/v1: shared small types

_define(CORE, "ObjectReference", """
    apiVersion string
    fieldPath string
    kind string
    name string
    namespace string
    resourceVersion string
    uid string go=types.UID
""", map_type="atomic")
_define(CORE, "LocalObjectReference", "name string", map_type="atomic")
_define(CORE, "TypedLocalObjectReference", """
    apiGroup string
    kind string
    name string
""", required="kind name", map_type="atomic")
_define(CORE, "TypedObjectReference", """
    apiGroup string
    kind string
    name string
    namespace string
""", required="kind name")
_define(CORE, "ObjectFieldSelector", """
    apiVersion string
    fieldPath string
""", required="fieldPath", map_type="atomic")
_define(CORE, "ResourceFieldSelector", """
    containerName string
    divisor quantity
    resource string
""", required="resource", map_type="atomic")
_define(CORE, "ConfigMapKeySelector", """
    key string
    name string
    optional bool
""", required="key", map_type="atomic")
_define(CORE, "SecretKeySelector", """
    key string
    name string
    optional bool
""", required="key", map_type="atomic")
_define(CORE, "ResourceRequirements", """
    claims []ResourceClaim list=map keys=name
    limits {}quantity go=v1.ResourceList
    requests {}quantity go=v1.ResourceList
""")
_define(CORE, "ResourceClaim", """
    name string
    request string
""", required="name")
_define(CORE, "VolumeResourceRequirements", """
    limits {}quantity go=v1.ResourceList
    requests {}quantity go=v1.ResourceList
""")

# --- containers

_CONTAINER_FIELDS = """
    args []string list=atomic
    command []string list=atomic
    env []EnvVar patch=merge key=name list=map keys=name
    envFrom []EnvFromSource list=atomic
    image string
    imagePullPolicy string go=v1.PullPolicy
    lifecycle Lifecycle
    livenessProbe Probe
    name string
    ports []ContainerPort patch=merge key=containerPort list=map keys=containerPort,protocol
    readinessProbe Probe
    resizePolicy []ContainerResizePolicy list=atomic
    resources ResourceRequirements
    restartPolicy string go=v1.ContainerRestartPolicy
    securityContext SecurityContext
    startupProbe Probe
    stdin bool
    stdinOnce bool
    terminationMessagePath string
    terminationMessagePolicy string go=v1.TerminationMessagePolicy
    tty bool
    volumeDevices []VolumeDevice patch=merge key=devicePath list=map keys=devicePath
    volumeMounts []VolumeMount patch=merge key=mountPath list=map keys=mountPath
    workingDir string
"""
_define(CORE, "Container", _CONTAINER_FIELDS, required="name")
_define(CORE, "EphemeralContainer", _CONTAINER_FIELDS + "targetContainerName string\n", required="name")
_define(CORE, "ContainerPort", """
    containerPort int32
    hostIP string
    hostPort int32
    name string
    protocol string go=v1.Protocol
""", required="containerPort")
_define(CORE, "EnvVar", """
    name string
    value string
    valueFrom EnvVarSource
""", required="name")
_define(CORE, "EnvVarSource", """
    configMapKeyRef ConfigMapKeySelector
    fieldRef ObjectFieldSelector
    resourceFieldRef ResourceFieldSelector
    secretKeyRef SecretKeySelector
""")
_define(CORE, "EnvFromSource", """
    configMapRef ConfigMapEnvSource
    prefix string
    secretRef SecretEnvSource
""")
_define(CORE, "ConfigMapEnvSource", """
    name string
    optional bool
""")
_define(CORE, "SecretEnvSource", """
    name string
    optional bool
""")
_define(CORE, "ContainerResizePolicy", """
    resourceName string go=v1.ResourceName
    restartPolicy string go=v1.ResourceResizeRestartPolicy
""", required="resourceName restartPolicy")
_define(CORE, "VolumeMount", """
    mountPath string
    mountPropagation string go=v1.MountPropagationMode
    name string
    readOnly bool
    recursiveReadOnly string go=v1.RecursiveReadOnlyMode
    subPath string
    subPathExpr string
""", required="name mountPath")
_define(CORE, "VolumeDevice", """
    devicePath string
    name string
""", required="name devicePath")
_PROBE_HANDLER = """
    exec ExecAction
    grpc GRPCAction
    httpGet HTTPGetAction
    tcpSocket TCPSocketAction
"""
_define(CORE, "Probe", _PROBE_HANDLER + """
    failureThreshold int32
    initialDelaySeconds int32
    periodSeconds int32
    successThreshold int32
    terminationGracePeriodSeconds int64
    timeoutSeconds int32
""")
_define(CORE, "ExecAction", "command []string list=atomic")
_define(CORE, "HTTPGetAction", """
    host string
    httpHeaders []HTTPHeader list=atomic
    path string
    port intstr
    scheme string go=v1.URIScheme
""", required="port")
_define(CORE, "HTTPHeader", """
    name string
    value string
""", required="name value")
_define(CORE, "TCPSocketAction", """
    host string
    port intstr
""", required="port")
_define(CORE, "GRPCAction", """
    port int32
    service string
""", required="port")
_define(CORE, "Lifecycle", """
    postStart LifecycleHandler
    preStop LifecycleHandler
""")
_define(CORE, "LifecycleHandler", """
    exec ExecAction
    httpGet HTTPGetAction
    sleep SleepAction
    tcpSocket TCPSocketAction
""")
_define(CORE, "SleepAction", "seconds int64", required="seconds")
_define(CORE, "SecurityContext", """
    allowPrivilegeEscalation bool
    appArmorProfile AppArmorProfile
    capabilities Capabilities
    privileged bool
    procMount string go=v1.ProcMountType
    readOnlyRootFilesystem bool
    runAsGroup int64
    runAsNonRoot bool
    runAsUser int64
    seLinuxOptions SELinuxOptions
    seccompProfile SeccompProfile
    windowsOptions WindowsSecurityContextOptions
""")
_define(CORE, "Capabilities", """
    add []string list=atomic
    drop []string list=atomic
""")
_define(CORE, "SELinuxOptions", """
    level string
    role string
    type string
    user string
""")
_define(CORE, "WindowsSecurityContextOptions", """
    gmsaCredentialSpec string
    gmsaCredentialSpecName string
    hostProcess bool
    runAsUserName string
""")
_define(CORE, "SeccompProfile", """
    localhostProfile string
    type string go=v1.SeccompProfileType
""", required="type")
_define(CORE, "AppArmorProfile", """
    localhostProfile string
    type string go=v1.AppArmorProfileType
""", required="type")
_define(CORE, "PodSecurityContext", """
    appArmorProfile AppArmorProfile
    fsGroup int64
    fsGroupChangePolicy string go=v1.PodFSGroupChangePolicy
    runAsGroup int64
    runAsNonRoot bool
    runAsUser int64
    seLinuxChangePolicy string go=v1.PodSELinuxChangePolicy
    seLinuxOptions SELinuxOptions
    seccompProfile SeccompProfile
    supplementalGroups []int64 list=atomic
    supplementalGroupsPolicy string go=v1.SupplementalGroupsPolicy
    sysctls []Sysctl list=atomic
    windowsOptions WindowsSecurityContextOptions
""")
_define(CORE, "Sysctl", """
    name string
    value string
""", required="name value")

# --- volumes

_define(CORE, "Volume", """
    configMap ConfigMapVolumeSource
    csi CSIVolumeSource
    downwardAPI DownwardAPIVolumeSource
    emptyDir EmptyDirVolumeSource
    ephemeral EphemeralVolumeSource
    hostPath HostPathVolumeSource
    image ImageVolumeSource
    name string
    nfs NFSVolumeSource
    persistentVolumeClaim PersistentVolumeClaimVolumeSource
    projected ProjectedVolumeSource
    secret SecretVolumeSource
""", required="name")
_define(CORE, "HostPathVolumeSource", """
    path string
    type string go=v1.HostPathType
""", required="path")
_define(CORE, "EmptyDirVolumeSource", """
    medium string go=v1.StorageMedium
    sizeLimit quantity
""")
_define(CORE, "KeyToPath", """
    key string
    mode int32
    path string
""", required="key path")
_define(CORE, "SecretVolumeSource", """
    defaultMode int32
    items []KeyToPath list=atomic
    optional bool
    secretName string
""")
_define(CORE, "ConfigMapVolumeSource", """
    defaultMode int32
    items []KeyToPath list=atomic
    name string
    optional bool
""")
_define(CORE, "DownwardAPIVolumeFile", """
    fieldRef ObjectFieldSelector
    mode int32
    path string
    resourceFieldRef ResourceFieldSelector
""", required="path")
_define(CORE, "DownwardAPIVolumeSource", """
    defaultMode int32
    items []DownwardAPIVolumeFile list=atomic
""")
_define(CORE, "ProjectedVolumeSource", """
    defaultMode int32
    sources []VolumeProjection list=atomic
""")
_define(CORE, "VolumeProjection", """
    clusterTrustBundle ClusterTrustBundleProjection
    configMap ConfigMapProjection
    downwardAPI DownwardAPIProjection
    secret SecretProjection
    serviceAccountToken ServiceAccountTokenProjection
""")
_define(CORE, "SecretProjection", """
    items []KeyToPath list=atomic
    name string
    optional bool
""")
_define(CORE, "ConfigMapProjection", """
    items []KeyToPath list=atomic
    name string
    optional bool
""")
_define(CORE, "DownwardAPIProjection", "items []DownwardAPIVolumeFile list=atomic")
_define(CORE, "ServiceAccountTokenProjection", """
    audience string
    expirationSeconds int64
    path string
""", required="path")
_define(CORE, "ClusterTrustBundleProjection", """
    labelSelector meta.LabelSelector
    name string
    optional bool
    path string
    signerName string
""", required="path")
_define(CORE, "PersistentVolumeClaimVolumeSource", """
    claimName string
    readOnly bool
""", required="claimName")
_define(CORE, "NFSVolumeSource", """
    path string
    readOnly bool
    server string
""", required="server path")
_define(CORE, "CSIVolumeSource", """
    driver string
    fsType string
    nodePublishSecretRef LocalObjectReference
    readOnly bool
    volumeAttributes {}string
""", required="driver")
_define(CORE, "EphemeralVolumeSource", "volumeClaimTemplate PersistentVolumeClaimTemplate")
_define(CORE, "PersistentVolumeClaimTemplate", """
    metadata meta.ObjectMeta
    spec PersistentVolumeClaimSpec
""", required="spec")
_define(CORE, "ImageVolumeSource", """
    pullPolicy string go=v1.PullPolicy
    reference string
""")

# --- scheduling

_define(CORE, "Affinity", """
    nodeAffinity NodeAffinity
    podAffinity PodAffinity
    podAntiAffinity PodAntiAffinity
""")
_define(CORE, "NodeAffinity", """
    preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm list=atomic
    requiredDuringSchedulingIgnoredDuringExecution NodeSelector
""")
_define(CORE, "NodeSelector", "nodeSelectorTerms []NodeSelectorTerm list=atomic",
        required="nodeSelectorTerms", map_type="atomic")
_define(CORE, "NodeSelectorTerm", """
    matchExpressions []NodeSelectorRequirement list=atomic
    matchFields []NodeSelectorRequirement list=atomic
""", map_type="atomic")
_define(CORE, "NodeSelectorRequirement", """
    key string
    operator string go=v1.NodeSelectorOperator
    values []string list=atomic
""", required="key operator")
_define(CORE, "PreferredSchedulingTerm", """
    preference NodeSelectorTerm
    weight int32
""", required="weight preference")
_define(CORE, "PodAffinity", """
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm list=atomic
    requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm list=atomic
""")
_define(CORE, "PodAntiAffinity", """
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm list=atomic
    requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm list=atomic
""")
_define(CORE, "PodAffinityTerm", """
    labelSelector meta.LabelSelector
    matchLabelKeys []string list=atomic
    mismatchLabelKeys []string list=atomic
    namespaceSelector meta.LabelSelector
    namespaces []string list=atomic
    topologyKey string
""", required="topologyKey")
_define(CORE, "WeightedPodAffinityTerm", """
    podAffinityTerm PodAffinityTerm
    weight int32
""", required="weight podAffinityTerm")
_define(CORE, "Toleration", """
    effect string go=v1.TaintEffect
    key string
    operator string go=v1.TolerationOperator
    tolerationSeconds int64
    value string
""")
_define(CORE, "TopologySpreadConstraint", """
    labelSelector meta.LabelSelector
    matchLabelKeys []string list=atomic
    maxSkew int32
    minDomains int32
    nodeAffinityPolicy string go=v1.NodeInclusionPolicy
    nodeTaintsPolicy string go=v1.NodeInclusionPolicy
    topologyKey string
    whenUnsatisfiable string go=v1.UnsatisfiableConstraintAction
""", required="maxSkew topologyKey whenUnsatisfiable")
_define(CORE, "HostAlias", """
    hostnames []string list=atomic
    ip string
""", required="ip")
_define(CORE, "PodDNSConfig", """
    nameservers []string list=atomic
    options []PodDNSConfigOption list=atomic
    searches []string list=atomic
""")
_define(CORE, "PodDNSConfigOption", """
    name string
    value string
""")
_define(CORE, "PodReadinessGate", "conditionType string go=v1.PodConditionType",
        required="conditionType")
_define(CORE, "PodOS", "name string go=v1.OSName", required="name")
_define(CORE, "PodSchedulingGate", "name string", required="name")
_define(CORE, "PodResourceClaim", """
    name string
    resourceClaimName string
    resourceClaimTemplateName string
""", required="name")

# --- pods

_define(CORE, "PodSpec", """
    activeDeadlineSeconds int64
    affinity Affinity
    automountServiceAccountToken bool
    containers []Container patch=merge key=name list=map keys=name
    dnsConfig PodDNSConfig
    dnsPolicy string go=v1.DNSPolicy
    enableServiceLinks bool
    ephemeralContainers []EphemeralContainer patch=merge key=name list=map keys=name
    hostAliases []HostAlias patch=merge key=ip list=map keys=ip
    hostIPC bool
    hostNetwork bool
    hostPID bool
    hostUsers bool
    hostname string
    imagePullSecrets []LocalObjectReference patch=merge key=name list=map keys=name
    initContainers []Container patch=merge key=name list=map keys=name
    nodeName string
    nodeSelector {}string maptype=atomic
    os PodOS
    overhead {}quantity go=v1.ResourceList
    preemptionPolicy string go=v1.PreemptionPolicy
    priority int32
    priorityClassName string
    readinessGates []PodReadinessGate list=atomic
    resourceClaims []PodResourceClaim patch=merge,retainKeys key=name list=map keys=name
    resources ResourceRequirements
    restartPolicy string go=v1.RestartPolicy
    runtimeClassName string
    schedulerName string
    schedulingGates []PodSchedulingGate patch=merge key=name list=map keys=name
    securityContext PodSecurityContext
    serviceAccount string
    serviceAccountName string
    setHostnameAsFQDN bool
    shareProcessNamespace bool
    subdomain string
    terminationGracePeriodSeconds int64
    tolerations []Toleration list=atomic
    topologySpreadConstraints []TopologySpreadConstraint patch=merge key=topologyKey list=map keys=topologyKey,whenUnsatisfiable
    volumes []Volume patch=merge,retainKeys key=name list=map keys=name
""", required="containers")
_define(CORE, "PodStatus", """
    conditions []PodCondition patch=merge key=type list=map keys=type
    containerStatuses []ContainerStatus list=atomic
    ephemeralContainerStatuses []ContainerStatus list=atomic
    hostIP string
    hostIPs []HostIP patch=merge key=ip list=atomic
    initContainerStatuses []ContainerStatus list=atomic
    message string
    nominatedNodeName string
    phase string go=v1.PodPhase
    podIP string
    podIPs []PodIP patch=merge key=ip list=map keys=ip
    qosClass string go=v1.PodQOSClass
    reason string
    resize string go=v1.PodResizeStatus
    resourceClaimStatuses []PodResourceClaimStatus patch=merge,retainKeys key=name list=map keys=name
    startTime time
""")
_define(CORE, "PodCondition", """
    lastProbeTime time
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.PodConditionType
""", required="type status")
_define(CORE, "PodIP", "ip string", required="ip")
_define(CORE, "HostIP", "ip string", required="ip")
_define(CORE, "PodResourceClaimStatus", """
    name string
    resourceClaimName string
""", required="name")
_define(CORE, "ContainerStatus", """
    allocatedResources {}quantity go=v1.ResourceList
    containerID string
    image string
    imageID string
    lastState ContainerState
    name string
    ready bool
    resources ResourceRequirements
    restartCount int32
    started bool
    state ContainerState
    volumeMounts []VolumeMountStatus patch=merge key=mountPath list=map keys=mountPath
""", required="name ready restartCount image imageID")
_define(CORE, "ContainerState", """
    running ContainerStateRunning
    terminated ContainerStateTerminated
    waiting ContainerStateWaiting
""")
_define(CORE, "ContainerStateWaiting", """
    message string
    reason string
""")
_define(CORE, "ContainerStateRunning", "startedAt time")
_define(CORE, "ContainerStateTerminated", """
    containerID string
    exitCode int32
    finishedAt time
    message string
    reason string
    signal int32
    startedAt time
""", required="exitCode")
_define(CORE, "VolumeMountStatus", """
    mountPath string
    name string
    readOnly bool
    recursiveReadOnly string go=v1.RecursiveReadOnlyMode
""", required="name mountPath")
_kind(CORE, "Pod", "", "v1", """
    spec PodSpec
    status PodStatus
""")
_define(CORE, "PodTemplateSpec", """
    metadata meta.ObjectMeta
    spec PodSpec
""")

# --- namespaces and nodes

_kind(CORE, "Namespace", "", "v1", """
    spec NamespaceSpec
    status NamespaceStatus
""")
_define(CORE, "NamespaceSpec", "finalizers []string list=atomic")
_define(CORE, "NamespaceStatus", """
    conditions []NamespaceCondition patch=merge key=type list=map keys=type
    phase string go=v1.NamespacePhase
""")
_define(CORE, "NamespaceCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.NamespaceConditionType
""", required="type status")
_kind(CORE, "Node", "", "v1", """
    spec NodeSpec
    status NodeStatus
""")
_define(CORE, "NodeSpec", """
    externalID string
    podCIDR string
    podCIDRs []string patch=merge list=set
    providerID string
    taints []Taint list=atomic
    unschedulable bool
""")
_define(CORE, "Taint", """
    effect string go=v1.TaintEffect
    key string
    timeAdded time
    value string
""", required="key effect")
_define(CORE, "NodeStatus", """
    addresses []NodeAddress patch=merge key=type list=map keys=type
    allocatable {}quantity go=v1.ResourceList
    capacity {}quantity go=v1.ResourceList
    conditions []NodeCondition patch=merge key=type list=map keys=type
    daemonEndpoints NodeDaemonEndpoints
    features NodeFeatures
    images []ContainerImage list=atomic
    nodeInfo NodeSystemInfo
    phase string go=v1.NodePhase
    runtimeHandlers []NodeRuntimeHandler list=atomic
    volumesAttached []AttachedVolume list=atomic
    volumesInUse []string list=atomic
""")
_define(CORE, "NodeAddress", """
    address string
    type string go=v1.NodeAddressType
""", required="type address")
_define(CORE, "NodeCondition", """
    lastHeartbeatTime time
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.NodeConditionType
""", required="type status")
_define(CORE, "NodeDaemonEndpoints", "kubeletEndpoint DaemonEndpoint")
# Upstream's json tag really is the capitalised "Port".
_define(CORE, "DaemonEndpoint", "Port int32", required="Port")
_define(CORE, "NodeSystemInfo", """
    architecture string
    bootID string
    containerRuntimeVersion string
    kernelVersion string
    kubeProxyVersion string
    kubeletVersion string
    machineID string
    operatingSystem string
    osImage string
    systemUUID string
""", required="machineID systemUUID bootID kernelVersion osImage containerRuntimeVersion "
             "kubeletVersion kubeProxyVersion operatingSystem architecture")
_define(CORE, "ContainerImage", """
    names []string list=atomic
    sizeBytes int64
""")
_define(CORE, "AttachedVolume", """
    devicePath string
    name string go=v1.UniqueVolumeName
""", required="name devicePath")
_define(CORE, "NodeRuntimeHandler", """
    features NodeRuntimeHandlerFeatures
    name string
""")
_define(CORE, "NodeRuntimeHandlerFeatures", """
    recursiveReadOnlyMounts bool
    userNamespaces bool
""")
_define(CORE, "NodeFeatures", "supplementalGroupsPolicy bool")

# --- services, endpoints, events

_kind(CORE, "Service", "", "v1", """
    spec ServiceSpec
    status ServiceStatus
""")
_define(CORE, "ServiceSpec", """
    allocateLoadBalancerNodePorts bool
    clusterIP string
    clusterIPs []string list=atomic
    externalIPs []string list=atomic
    externalName string
    externalTrafficPolicy string go=v1.ServiceExternalTrafficPolicy
    healthCheckNodePort int32
    internalTrafficPolicy string go=v1.ServiceInternalTrafficPolicy
    ipFamilies []string list=atomic
    ipFamilyPolicy string go=v1.IPFamilyPolicy
    loadBalancerClass string
    loadBalancerIP string
    loadBalancerSourceRanges []string list=atomic
    ports []ServicePort patch=merge key=port list=map keys=port,protocol
    publishNotReadyAddresses bool
    selector {}string maptype=atomic
    sessionAffinity string go=v1.ServiceAffinity
    sessionAffinityConfig SessionAffinityConfig
    trafficDistribution string
    type string go=v1.ServiceType
""")
_define(CORE, "ServicePort", """
    appProtocol string
    name string
    nodePort int32
    port int32
    protocol string go=v1.Protocol
    targetPort intstr
""", required="port")
_define(CORE, "SessionAffinityConfig", "clientIP ClientIPConfig")
_define(CORE, "ClientIPConfig", "timeoutSeconds int32")
_define(CORE, "ServiceStatus", """
    conditions []meta.Condition patch=merge key=type list=map keys=type
    loadBalancer LoadBalancerStatus
""")
_define(CORE, "LoadBalancerStatus", "ingress []LoadBalancerIngress list=atomic")
_define(CORE, "LoadBalancerIngress", """
    hostname string
    ip string
    ipMode string go=v1.LoadBalancerIPMode
    ports []PortStatus list=atomic
""")
_define(CORE, "PortStatus", """
    error string
    port int32
    protocol string go=v1.Protocol
""", required="port protocol")
_kind(CORE, "Endpoints", "", "v1", "subsets []EndpointSubset list=atomic")
_define(CORE, "EndpointSubset", """
    addresses []EndpointAddress list=atomic
    notReadyAddresses []EndpointAddress list=atomic
    ports []EndpointPort list=atomic
""")
_define(CORE, "EndpointAddress", """
    hostname string
    ip string
    nodeName string
    targetRef ObjectReference
""", required="ip", map_type="atomic")
_define(CORE, "EndpointPort", """
    appProtocol string
    name string
    port int32
    protocol string go=v1.Protocol
""", required="port", map_type="atomic")
_kind(CORE, "Event", "", "v1", """
    action string
    count int32
    eventTime microtime
    firstTimestamp time
    involvedObject ObjectReference
    lastTimestamp time
    message string
    reason string
    related ObjectReference
    reportingComponent string
    reportingInstance string
    series EventSeries
    source EventSource
    type string
""", required="metadata involvedObject")
_define(CORE, "EventSource", """
    component string
    host string
""")
_define(CORE, "EventSeries", """
    count int32
    lastObservedTime microtime
""")

# --- persistent volume claims (only as StatefulSet templates)

_kind(CORE, "PersistentVolumeClaim", "", "v1", """
    spec PersistentVolumeClaimSpec
    status PersistentVolumeClaimStatus
""", with_list=False)
_define(CORE, "PersistentVolumeClaimSpec", """
    accessModes []string list=atomic
    dataSource TypedLocalObjectReference
    dataSourceRef TypedObjectReference
    resources VolumeResourceRequirements
    selector meta.LabelSelector
    storageClassName string
    volumeAttributesClassName string
    volumeMode string go=v1.PersistentVolumeMode
    volumeName string
""")
_define(CORE, "PersistentVolumeClaimStatus", """
    accessModes []string list=atomic
    allocatedResourceStatuses {}string maptype=granular
    allocatedResources {}quantity go=v1.ResourceList
    capacity {}quantity go=v1.ResourceList
    conditions []PersistentVolumeClaimCondition patch=merge key=type list=map keys=type
    currentVolumeAttributesClassName string
    phase string go=v1.PersistentVolumeClaimPhase
""")
_define(CORE, "PersistentVolumeClaimCondition", """
    lastProbeTime time
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.PersistentVolumeClaimConditionType
""", required="type status")

# ---------------------------------------------------------------------------
# apps/v1

_kind(APPS, "Deployment", "apps", "v1", """
    spec DeploymentSpec
    status DeploymentStatus
""")
_define(APPS, "DeploymentSpec", """
    minReadySeconds int32
    paused bool
    progressDeadlineSeconds int32
    replicas int32
    revisionHistoryLimit int32
    selector meta.LabelSelector
    strategy DeploymentStrategy patch=retainKeys
    template core.PodTemplateSpec
""", required="selector template")
_define(APPS, "DeploymentStrategy", """
    rollingUpdate RollingUpdateDeployment
    type string go=v1.DeploymentStrategyType
""")
_define(APPS, "RollingUpdateDeployment", """
    maxSurge intstr
    maxUnavailable intstr
""")
_define(APPS, "DeploymentStatus", """
    availableReplicas int32
    collisionCount int32
    conditions []DeploymentCondition patch=merge key=type list=map keys=type
    observedGeneration int64
    readyReplicas int32
    replicas int32
    unavailableReplicas int32
    updatedReplicas int32
""")
_define(APPS, "DeploymentCondition", """
    lastTransitionTime time
    lastUpdateTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.DeploymentConditionType
""", required="type status")
_kind(APPS, "ReplicaSet", "apps", "v1", """
    spec ReplicaSetSpec
    status ReplicaSetStatus
""")
_define(APPS, "ReplicaSetSpec", """
    minReadySeconds int32
    replicas int32
    selector meta.LabelSelector
    template core.PodTemplateSpec
""", required="selector")
_define(APPS, "ReplicaSetStatus", """
    availableReplicas int32
    conditions []ReplicaSetCondition patch=merge key=type list=map keys=type
    fullyLabeledReplicas int32
    observedGeneration int64
    readyReplicas int32
    replicas int32
""", required="replicas")
_define(APPS, "ReplicaSetCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.ReplicaSetConditionType
""", required="type status")
_kind(APPS, "StatefulSet", "apps", "v1", """
    spec StatefulSetSpec
    status StatefulSetStatus
""")
_define(APPS, "StatefulSetSpec", """
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
_define(APPS, "StatefulSetOrdinals", "start int32")
_define(APPS, "StatefulSetPersistentVolumeClaimRetentionPolicy", """
    whenDeleted string go=v1.PersistentVolumeClaimRetentionPolicyType
    whenScaled string go=v1.PersistentVolumeClaimRetentionPolicyType
""")
_define(APPS, "StatefulSetUpdateStrategy", """
    rollingUpdate RollingUpdateStatefulSetStrategy
    type string go=v1.StatefulSetUpdateStrategyType
""")
_define(APPS, "RollingUpdateStatefulSetStrategy", """
    maxUnavailable intstr
    partition int32
""")
_define(APPS, "StatefulSetStatus", """
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
_define(APPS, "StatefulSetCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.StatefulSetConditionType
""", required="type status")

# core/v1 Binding: the body of pods/binding (how the scheduler sets spec.nodeName)
_kind(CORE, "Binding", "", "v1", """
    target ObjectReference
""", required="target", with_list=False)

# core/v1 PodExecOptions: what pods/exec reads from its query string (a kind with no metadata)
_define(CORE, "PodExecOptions", _TYPE_META + """
    command []string list=atomic
    container string
    stderr bool
    stdin bool
    stdout bool
    tty bool
""", required="command", kind=("", "v1"))

# ---------------------------------------------------------------------------
# autoscaling/v1 Scale, discovery.k8s.io/v1, coordination.k8s.io/v1

_kind(AUTOSCALING, "Scale", "autoscaling", "v1", """
    spec ScaleSpec
    status ScaleStatus
""", with_list=False)
_define(AUTOSCALING, "ScaleSpec", "replicas int32")
_define(AUTOSCALING, "ScaleStatus", """
    replicas int32
    selector string
""", required="replicas")

_kind(DISCOVERY, "EndpointSlice", "discovery.k8s.io", "v1", """
    addressType string go=v1.AddressType
    endpoints []Endpoint list=atomic
    ports []EndpointPort list=atomic
""", required="addressType endpoints")
_define(DISCOVERY, "Endpoint", """
    addresses []string list=set
    conditions EndpointConditions
    deprecatedTopology {}string
    hints EndpointHints
    hostname string
    nodeName string
    targetRef core.ObjectReference
    zone string
""", required="addresses")
_define(DISCOVERY, "EndpointConditions", """
    ready bool
    serving bool
    terminating bool
""")
_define(DISCOVERY, "EndpointHints", "forZones []ForZone list=atomic")
_define(DISCOVERY, "ForZone", "name string", required="name")
_define(DISCOVERY, "EndpointPort", """
    appProtocol string
    name string
    port int32
    protocol string go=v1.Protocol
""", map_type="atomic")

_kind(COORDINATION, "Lease", "coordination.k8s.io", "v1", "spec LeaseSpec")
_define(COORDINATION, "LeaseSpec", """
    acquireTime microtime
    holderIdentity string
    leaseDurationSeconds int32
    leaseTransitions int32
    preferredHolder string
    renewTime microtime
    strategy string go=v1.CoordinatedLeaseStrategy
""")


# ---------------------------------------------------------------------------
# Lookups

def struct(name: str) -> Struct:
    """The struct with this full schema name (KeyError if svcnet does not describe it)."""
    return _STRUCTS[name]


def all_structs() -> dict[str, Struct]:
    return dict(_STRUCTS)


_GROUP_PACKAGE = {"": CORE, "apps": APPS, "autoscaling": AUTOSCALING, "discovery.k8s.io": DISCOVERY,
                  "coordination.k8s.io": COORDINATION}


def kind_schema_name(group: str, version: str, kind: str) -> str:
    """Schema name of a kind, e.g. ('apps', 'v1', 'Deployment') -> io.k8s.api.apps.v1.Deployment."""
    del version  # every group svcnet serves has exactly one version, v1
    name = f"{_GROUP_PACKAGE[group]}.{kind}"
    if name not in _STRUCTS:
        raise KeyError(name)
    return name


def subresource_gvk(resource: Resource, sub: Subresource) -> tuple[str, str, str]:
    """(group, version, kind) a subresource answers with.

    resources.py's status entries carry group "" even for apps kinds; a
    subresource whose kind is the parent's own kind (status) answers in the
    parent's group-version, as upstream's deployments/status does.
    """
    if sub.kind == resource.kind:
        return resource.group, resource.version, resource.kind
    return sub.group, sub.version, sub.kind


@cache
def gvk_schema_names() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> schema name, for every struct that is a kind."""
    out: dict[tuple[str, str, str], str] = {}
    for s in _STRUCTS.values():
        for gvk in s.gvks:
            out[gvk] = s.name
    return out


def _check_references() -> None:
    """Fail at import if a definition names a struct nobody defined (a DSL typo)."""
    def walk(t: TypeRef, where: str) -> None:
        if t.kind == "struct" and t.name not in _STRUCTS:
            raise ValueError(f"{where} refers to undefined {t.name}")
        if t.elem is not None:
            walk(t.elem, where)

    for s in _STRUCTS.values():
        for f in s.fields:
            walk(f.type, f"{s.name}.{f.name}")
            if f.list_map_keys and f.list_type != "map":
                raise ValueError(f"{s.name}.{f.name}: keys= needs list=map")
        for r in s.required:
            if s.field(r) is None:
                raise ValueError(f"{s.name}: required {r} is not a field")


_check_references()


def _add_shared_kind_gvks() -> None:
    """DeleteOptions and WatchEvent are registered in every served group-version upstream."""
    gvs = [("", "v1")] + [(g, v) for g, v in group_versions() if g] + [("autoscaling", "v1")]
    for short in ("DeleteOptions", "WatchEvent"):
        s = _STRUCTS[f"{META}.{short}"]
        _STRUCTS[s.name] = Struct(s.name, s.fields, s.required, s.map_type,
                                  tuple((g, v, short) for g, v in gvs))


_add_shared_kind_gvks()


# ---------------------------------------------------------------------------
# Strict field checking, shaped like kube-apiserver's JSON decoding.
#
# Upstream decodes a request body into the Go struct with sigs.k8s.io/json. A
# value of the wrong JSON type is a decode error ("json: cannot unmarshal ...")
# whatever fieldValidation says; unknown and duplicate fields are "strict"
# errors that fieldValidation turns into a 400 (Strict), warnings (Warn, the
# default) or nothing (Ignore). The walk below reproduces both, with upstream's
# wording: strict paths carry list indices ("spec.containers[0].foo"), type
# error paths do not ("ServicePort.spec.ports.port").

FIELD_VALIDATION_IGNORE = "Ignore"
FIELD_VALIDATION_WARN = "Warn"
FIELD_VALIDATION_STRICT = "Strict"

# The decoder stops collecting strict errors after this many (sigs.k8s.io/json).
_MAX_STRICT_ERRORS = 100

_QUANTITY_FORMAT = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY_FORMAT_ERROR = f"quantities must match the regular expression '{_QUANTITY_FORMAT}'"
_QUANTITY_NUMERIC_ERROR = "unable to parse numeric part of quantity"
_QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"
_QUANTITY_SUFFIXES = frozenset({"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
                                "n", "u", "m", "k", "M", "G", "T", "P", "E"})

_GO_SPECIAL = {"quantity": "resource.Quantity", "intstr": "intstr.IntOrString", "time": "v1.Time",
               "microtime": "v1.MicroTime", "object": "runtime.RawExtension", "fieldsv1": "v1.FieldsV1"}
_GO_SCALAR = {"double": "float64"}
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class Finding:
    """One problem found in a body: an unknown field or a value of the wrong type.

    fatal marks errors upstream's decoder returns at once (from a type's own
    UnmarshalJSON: Quantity, IntOrString, Time), which win over earlier ones.
    """

    kind: str  # "unknown" | "type"
    path: str  # strict-style path, with list indices
    message: str
    fatal: bool = False


def go_type(t: TypeRef) -> str:
    """The Go type string reflect prints for a field type (pointers already stripped)."""
    if t.go:
        return t.go
    if t.kind == "struct":
        return _STRUCTS[t.name].go_name
    if t.kind == "special":
        return _GO_SPECIAL[t.name]
    if t.kind == "list":
        assert t.elem is not None
        return "[]" + go_type(t.elem)
    if t.kind == "map":
        assert t.elem is not None
        return "map[string]" + go_type(t.elem)
    return _GO_SCALAR.get(t.name, t.name)


def _json_kind(value: object) -> str:
    """How Go's decoder names a JSON value that did not fit."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number_literal(value: int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class _Walker:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def _type_error(self, value_desc: str, type_name: str, path: str, go_fields: tuple[str, ...],
                    go_struct: str, fatal: bool = False) -> None:
        if go_fields:
            where = f"Go struct field {go_struct}.{'.'.join(go_fields)}"
        else:
            where = "Go value"
        self.findings.append(Finding(
            "type", path, f"json: cannot unmarshal {value_desc} into {where} of type {type_name}", fatal))

    def walk(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...], go_struct: str) -> None:
        if value is None:  # null decodes to the zero value everywhere, silently
            return
        if t.kind == "struct":
            self._struct(t, value, path, go_fields, go_struct)
        elif t.kind == "list":
            assert t.elem is not None
            if not isinstance(value, list):
                self._type_error(_json_kind(value), go_type(t), path, go_fields, go_struct)
                return
            for i, item in enumerate(value):
                self.walk(t.elem, item, f"{path}[{i}]", go_fields, go_struct)
        elif t.kind == "map":
            assert t.elem is not None
            if not isinstance(value, dict):
                self._type_error(_json_kind(value), go_type(t), path, go_fields, go_struct)
                return
            for key, item in value.items():
                self.walk(t.elem, item, _join(path, key), go_fields, go_struct)
        elif t.kind == "special":
            self._special(t, value, path, go_fields, go_struct)
        else:
            self._scalar(t, value, path, go_fields, go_struct)

    def _struct(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...],
                go_struct: str) -> None:
        s = _STRUCTS[t.name]
        if not isinstance(value, dict):
            self._type_error(_json_kind(value), go_type(t), path, go_fields, go_struct)
            return
        fields = _fields_by_name(s)
        for key, item in value.items():
            f = fields.get(key)  # JSON keys match field names case-sensitively upstream
            if f is None:
                self.findings.append(Finding("unknown", _join(path, key), ""))
                continue
            self.walk(f.type, item, _join(path, key), (*go_fields, key), s.short_name)

    def _scalar(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...],
                go_struct: str) -> None:
        name = go_type(t)
        if t.kind == "string":
            if not isinstance(value, str):
                self._type_error(_json_kind(value), name, path, go_fields, go_struct)
        elif t.kind == "bool":
            if not isinstance(value, bool):
                self._type_error(_json_kind(value), name, path, go_fields, go_struct)
        elif t.kind == "double":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._type_error(_json_kind(value), name, path, go_fields, go_struct)
        else:  # int32 / int64
            self._integer(t.kind, name, value, path, go_fields, go_struct)

    def _integer(self, kind: str, name: str, value: object, path: str, go_fields: tuple[str, ...],
                 go_struct: str, fatal: bool = False) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._type_error(_json_kind(value), name, path, go_fields, go_struct, fatal)
            return
        low, high = _INT_RANGE[kind]
        # Go parses the literal itself: "1.0" is not an integer, and overflow is an error.
        if isinstance(value, float) or not low <= value <= high:
            self._type_error(f"number {_number_literal(value)}", name, path, go_fields, go_struct, fatal)

    def _special(self, t: TypeRef, value: object, path: str, go_fields: tuple[str, ...],
                 go_struct: str) -> None:
        if t.name == "intstr":
            # IntOrString.UnmarshalJSON: a string is a string, anything else decodes as int32.
            if not isinstance(value, str):
                self._integer("int32", "int32", value, path, go_fields, go_struct, fatal=True)
        elif t.name == "quantity":
            problem = quantity_error(_quantity_text(value))
            if problem:
                self.findings.append(Finding("type", path, problem, fatal=True))
        elif t.name in ("time", "microtime"):
            if not isinstance(value, str):
                self._type_error(_json_kind(value), "string", path, go_fields, go_struct, fatal=True)
                return
            problem = time_parse_error(value, micro=t.name == "microtime")
            if problem:
                self.findings.append(Finding("type", path, problem, fatal=True))
        # object / fieldsv1 hold any JSON


# Struct.field as a dict per struct, for the checker's walk; the Struct is kept to notice a
# redefinition under the same name.
_FIELD_INDEX: dict[str, tuple[Struct, dict[str, Field]]] = {}


def _fields_by_name(s: Struct) -> dict[str, Field]:
    cached = _FIELD_INDEX.get(s.name)
    if cached is not None and cached[0] is s:
        return cached[1]
    index: dict[str, Field] = {}
    for f in s.fields:
        index.setdefault(f.name, f)  # the first of a repeated name wins, as Struct.field
    _FIELD_INDEX[s.name] = (s, index)
    return index


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _quantity_text(value: object) -> str:
    """The text Quantity.UnmarshalJSON hands to ParseQuantity."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_literal(value)
    return "{" if isinstance(value, dict) else "["  # never a valid quantity


def quantity_error(text: str) -> str:
    """The error resource.ParseQuantity gives for text, or '' if it parses."""
    if text == "0":
        return ""
    if not re.match(_QUANTITY_FORMAT, text):
        return _QUANTITY_FORMAT_ERROR
    m = re.match(r"^([+-]?)([0-9]*)(\.[0-9]*)?([eEinumkKMGTP]*)([-+]?[0-9]*)$", text)
    if m is None:
        return _QUANTITY_FORMAT_ERROR
    letters, exponent = m.group(4), m.group(5)
    suffix = letters + exponent
    if suffix not in _QUANTITY_SUFFIXES and not re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        return _QUANTITY_SUFFIX_ERROR
    if not (m.group(2) or (m.group(3) or "")[1:]):
        return _QUANTITY_NUMERIC_ERROR
    return ""


_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def time_parse_error(value: str, micro: bool = False) -> str:
    """The error Go's time.Parse gives for an RFC 3339 (or RFC3339Micro) string, or ''.

    Walks the layout element by element as Go does, so the message names the
    element that failed, e.g. `parsing time "2024-1-02" as "...": cannot parse
    "1-02" as "01"`.
    """
    layout = _RFC3339_MICRO if micro else _RFC3339
    rest = value

    def bad(elem: str) -> str:
        return (f"parsing time {_go_quote(value)} as {_go_quote(layout)}: "
                f"cannot parse {_go_quote(rest)} as {_go_quote(elem)}")

    def digits(n: int, fixed: bool) -> int | None:
        nonlocal rest
        if not rest[:1].isdigit():
            return None
        if not fixed and not rest[1:2].isdigit():
            number, rest = int(rest[0]), rest[1:]
            return number
        if len(rest) < n or not rest[:n].isdigit():
            return None
        number, rest = int(rest[:n]), rest[n:]
        return number

    fields: dict[str, int] = {}
    steps = [("2006", 4, True), ("-", 0, True), ("01", 2, True), ("-", 0, True), ("02", 2, True),
             ("T", 0, True), ("15", 2, False), (":", 0, True), ("04", 2, True), (":", 0, True),
             ("05", 2, True)]
    for elem, width, fixed in steps:
        if width == 0:
            if not rest.startswith(elem):
                return bad(elem)
            rest = rest[len(elem):]
            continue
        number = digits(width, fixed)
        if number is None:
            return bad(elem)
        fields[elem] = number
        limits = {"01": (1, 12, "month"), "15": (0, 23, "hour"), "04": (0, 59, "minute"),
                  "05": (0, 59, "second")}
        if elem in limits and not limits[elem][0] <= number <= limits[elem][1]:
            return f"parsing time {_go_quote(value)}: {limits[elem][2]} out of range"
    if micro:
        if len(rest) < 7 or rest[0] not in ".," or not rest[1:7].isdigit():
            return bad(".000000")
        rest = rest[7:]
    elif len(rest) >= 2 and rest[0] in ".," and rest[1].isdigit():
        # Go accepts fractional seconds the layout does not mention.
        rest = rest[1:]
        while rest[:1].isdigit():
            rest = rest[1:]
    if rest.startswith("Z"):
        rest = rest[1:]
    elif (len(rest) >= 6 and rest[0] in "+-" and rest[3] == ":" and rest[1:3].isdigit()
          and rest[4:6].isdigit()):
        if int(rest[1:3]) > 24:
            return f"parsing time {_go_quote(value)}: time zone offset hour out of range"
        if int(rest[4:6]) > 60:
            return f"parsing time {_go_quote(value)}: time zone offset minute out of range"
        rest = rest[6:]
    else:
        return bad("Z07:00")
    if rest:
        return f"parsing time {_go_quote(value)}: extra text: {_go_quote(rest)}"
    year, month, day = fields["2006"], fields["01"], fields["02"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    if not 1 <= day <= days:
        return f"parsing time {_go_quote(value)}: day out of range"
    return ""


# What a body is checked against: a Resource (optionally with a subresource) or a schema name.
Target = Resource | str


def _root_type(target: Target, subresource: str | None = None) -> Struct:
    """The struct a request body decodes into."""
    if isinstance(target, Resource):
        if subresource:
            sub = target.subresource(subresource)
            if sub is None:
                raise KeyError(f"{target.plural}/{subresource}")
            return _STRUCTS[kind_schema_name(*subresource_gvk(target, sub))]
        return _STRUCTS[kind_schema_name(target.group, target.version, target.kind)]
    if isinstance(target, str):
        return _STRUCTS[target]
    raise TypeError(f"cannot check fields of {target!r}")


def findings(target: Target, obj: object, subresource: str | None = None) -> list[Finding]:
    """Every unknown field and wrongly typed value in obj, in document order."""
    root = _root_type(target, subresource)
    walker = _Walker()
    ref = TypeRef("struct", root.name)
    if not isinstance(obj, dict):
        walker._type_error(_json_kind(obj), root.go_name, "", (), "")
    else:
        walker.walk(ref, obj, "", (), root.short_name)
    return walker.findings


def unknown_fields(target: Target, obj: object, subresource: str | None = None) -> list[str]:
    """Paths of fields the type does not have, as upstream prints them (spec.containers[0].foo)."""
    return [f.path for f in findings(target, obj, subresource) if f.kind == "unknown"]


def type_errors(target: Target, obj: object, subresource: str | None = None) -> list[str]:
    """Messages for values of the wrong JSON type, worded like Go's json decoder, in document order.

    Upstream reports only one of them: see decode_error.
    """
    return [f.message for f in findings(target, obj, subresource) if f.kind == "type"]


def decode_error(target: Target, obj: object, subresource: str | None = None) -> str | None:
    """The single decode error upstream would report: the first one a type's own decoder
    returns (it aborts decoding), else the first wrongly typed plain value."""
    return _decode_error_of(findings(target, obj, subresource))


def _decode_error_of(found: list[Finding]) -> str | None:
    errors = [f for f in found if f.kind == "type"]
    for f in errors:
        if f.fatal:
            return f.message
    return errors[0].message if errors else None


def strict_errors(target: Target, obj: object, duplicate_paths: tuple[str, ...] | list[str] = (),
                  subresource: str | None = None) -> list[str]:
    """The strict-decoding messages (`unknown field "x"`, `duplicate field "y"`), deduplicated."""
    return _strict_errors_of(findings(target, obj, subresource), duplicate_paths)


def _strict_errors_of(found: list[Finding], duplicate_paths: tuple[str, ...] | list[str]) -> list[str]:
    messages = [f'unknown field "{f.path}"' for f in found if f.kind == "unknown"]
    messages += [f'duplicate field "{p}"' for p in duplicate_paths]
    return list(dict.fromkeys(messages))[:_MAX_STRICT_ERRORS]


def check_fields(target: Target, obj: object, subresource: str | None = None) -> list[Cause]:
    """Every finding as an errors.Cause (field = strict path).

    Upstream sends no causes for decode errors (the Status has only a message);
    these are for svcnet's own logs and tests. Type errors use the real cause
    type FieldValueTypeInvalid; unknown fields use FieldValueInvalid.
    """
    causes = []
    for f in findings(target, obj, subresource):
        if f.kind == "unknown":
            causes.append(Cause(f.path, f'unknown field "{f.path}"', "FieldValueInvalid"))
        else:
            causes.append(Cause(f.path, f.message, "FieldValueTypeInvalid"))
    return causes


def field_validation(target: Target, obj: object, directive: str = "",
                     duplicate_paths: tuple[str, ...] | list[str] = (),
                     subresource: str | None = None) -> tuple[ApiError | None, list[str]]:
    """Decide a write body as kube-apiserver does: (ApiError or None, warnings).

    directive is the fieldValidation query parameter; empty means Warn, the
    upstream default. A type error is a 400 whatever the directive. With
    unknown/duplicate fields, Strict gives a 400 whose message lists them all,
    Warn returns them as warnings (one Warning header each), Ignore drops them.
    """
    root = _root_type(target, subresource)
    found = findings(target, obj, subresource)  # one walk serves both questions
    error = _decode_error_of(found)
    if error is not None:
        return bad_request(_cannot_handle(root, obj, error)), []
    strict = _strict_errors_of(found, duplicate_paths)
    if not strict or directive == FIELD_VALIDATION_IGNORE:
        return None, []
    if directive in ("", FIELD_VALIDATION_WARN):
        return None, strict
    return bad_request(_cannot_handle(root, obj, "strict decoding error: " + ", ".join(strict))), []


def _cannot_handle(root: Struct, obj: object, detail: str) -> str:
    """transformDecodeError's wording; kind/version come from the body, defaulted from the URL."""
    kind = root.short_name
    version = root.gvks[0][1] if root.gvks else "v1"
    if isinstance(obj, dict):
        if isinstance(obj.get("kind"), str) and obj["kind"]:
            kind = obj["kind"]
        if isinstance(obj.get("apiVersion"), str) and obj["apiVersion"]:
            version = obj["apiVersion"].rsplit("/", 1)[-1]
    return f'{kind} in version "{version}" cannot be handled as a {root.short_name}: {detail}'


class _Pairs(list):
    """A JSON object as its key/value pairs, duplicates kept (json object_pairs_hook)."""


class _RepeatedKey(Exception):
    """A JSON object named a key twice: its path needs the slower, path-keeping parse."""


def _dict_of_unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _RepeatedKey
    return out


def load_json_strict(text: str | bytes) -> tuple[object, list[str]]:
    """Parse JSON, returning (value, paths of duplicated keys) as sigs.k8s.io/json reports them.

    Python's json keeps the last of duplicate keys silently, like Go; this also
    says which keys were duplicated, so Strict can reject them. The last value
    wins, as upstream.
    """
    try:
        # Bodies almost never repeat a key: then one plain parse is the whole answer.
        return json.loads(text, object_pairs_hook=_dict_of_unique_pairs), []
    except _RepeatedKey:
        pass
    raw = json.loads(text, object_pairs_hook=_Pairs)
    duplicates: list[str] = []

    def build(value: object, path: str) -> object:
        if isinstance(value, _Pairs):
            out: dict[str, object] = {}
            for key, item in value:
                child = _join(path, key)
                if key in out:
                    duplicates.append(child)
                out[key] = build(item, child)
            return out
        if isinstance(value, list):
            return [build(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return value

    return build(raw, ""), duplicates
