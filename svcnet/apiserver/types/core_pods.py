"""core/v1 types of a Pod: small shared types, containers, volumes, scheduling, the pod itself
and its template. Declarative data."""
from __future__ import annotations

from .dsl import CORE, define, define_kind

# ---------------------------------------------------------------------------
# core/v1: shared small types

define(CORE, "ObjectReference", """
    apiVersion string
    fieldPath string
    kind string
    name string
    namespace string
    resourceVersion string
    uid string go=types.UID
""", map_type="atomic")
# name: +default="" upstream (k8s.io/api/core/v1 types.go), the imagePullSecrets list-map key
define(CORE, "LocalObjectReference", 'name string default=""', map_type="atomic")
define(CORE, "TypedLocalObjectReference", """
    apiGroup string
    kind string
    name string
""", required="kind name", map_type="atomic")
define(CORE, "TypedObjectReference", """
    apiGroup string
    kind string
    name string
    namespace string
""", required="kind name")
define(CORE, "ObjectFieldSelector", """
    apiVersion string
    fieldPath string
""", required="fieldPath", map_type="atomic")
define(CORE, "ResourceFieldSelector", """
    containerName string
    divisor quantity
    resource string
""", required="resource", map_type="atomic")
define(CORE, "ConfigMapKeySelector", """
    key string
    name string
    optional bool
""", required="key", map_type="atomic")
define(CORE, "SecretKeySelector", """
    key string
    name string
    optional bool
""", required="key", map_type="atomic")
define(CORE, "ResourceRequirements", """
    claims []ResourceClaim list=map keys=name
    limits {}quantity go=v1.ResourceList
    requests {}quantity go=v1.ResourceList
""")
define(CORE, "ResourceClaim", """
    name string
    request string
""", required="name")
define(CORE, "VolumeResourceRequirements", """
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
define(CORE, "Container", _CONTAINER_FIELDS, required="name")
define(CORE, "EphemeralContainer", _CONTAINER_FIELDS + "targetContainerName string\n", required="name")
define(CORE, "ContainerPort", """
    containerPort int32
    hostIP string
    hostPort int32
    name string
    protocol string go=v1.Protocol default=TCP
""", required="containerPort")
define(CORE, "EnvVar", """
    name string
    value string
    valueFrom EnvVarSource
""", required="name")
define(CORE, "EnvVarSource", """
    configMapKeyRef ConfigMapKeySelector
    fieldRef ObjectFieldSelector
    resourceFieldRef ResourceFieldSelector
    secretKeyRef SecretKeySelector
""")
define(CORE, "EnvFromSource", """
    configMapRef ConfigMapEnvSource
    prefix string
    secretRef SecretEnvSource
""")
define(CORE, "ConfigMapEnvSource", """
    name string
    optional bool
""")
define(CORE, "SecretEnvSource", """
    name string
    optional bool
""")
define(CORE, "ContainerResizePolicy", """
    resourceName string go=v1.ResourceName
    restartPolicy string go=v1.ResourceResizeRestartPolicy
""", required="resourceName restartPolicy")
define(CORE, "VolumeMount", """
    mountPath string
    mountPropagation string go=v1.MountPropagationMode
    name string
    readOnly bool
    recursiveReadOnly string go=v1.RecursiveReadOnlyMode
    subPath string
    subPathExpr string
""", required="name mountPath")
define(CORE, "VolumeDevice", """
    devicePath string
    name string
""", required="name devicePath")
_PROBE_HANDLER = """
    exec ExecAction
    grpc GRPCAction
    httpGet HTTPGetAction
    tcpSocket TCPSocketAction
"""
define(CORE, "Probe", _PROBE_HANDLER + """
    failureThreshold int32
    initialDelaySeconds int32
    periodSeconds int32
    successThreshold int32
    terminationGracePeriodSeconds int64
    timeoutSeconds int32
""")
define(CORE, "ExecAction", "command []string list=atomic")
define(CORE, "HTTPGetAction", """
    host string
    httpHeaders []HTTPHeader list=atomic
    path string
    port intstr
    scheme string go=v1.URIScheme
""", required="port")
define(CORE, "HTTPHeader", """
    name string
    value string
""", required="name value")
define(CORE, "TCPSocketAction", """
    host string
    port intstr
""", required="port")
define(CORE, "GRPCAction", """
    port int32
    service string
""", required="port")
define(CORE, "Lifecycle", """
    postStart LifecycleHandler
    preStop LifecycleHandler
""")
define(CORE, "LifecycleHandler", """
    exec ExecAction
    httpGet HTTPGetAction
    sleep SleepAction
    tcpSocket TCPSocketAction
""")
define(CORE, "SleepAction", "seconds int64", required="seconds")
define(CORE, "SecurityContext", """
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
define(CORE, "Capabilities", """
    add []string list=atomic
    drop []string list=atomic
""")
define(CORE, "SELinuxOptions", """
    level string
    role string
    type string
    user string
""")
define(CORE, "WindowsSecurityContextOptions", """
    gmsaCredentialSpec string
    gmsaCredentialSpecName string
    hostProcess bool
    runAsUserName string
""")
define(CORE, "SeccompProfile", """
    localhostProfile string
    type string go=v1.SeccompProfileType
""", required="type")
define(CORE, "AppArmorProfile", """
    localhostProfile string
    type string go=v1.AppArmorProfileType
""", required="type")
define(CORE, "PodSecurityContext", """
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
define(CORE, "Sysctl", """
    name string
    value string
""", required="name value")

# --- volumes

define(CORE, "Volume", """
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
define(CORE, "HostPathVolumeSource", """
    path string
    type string go=v1.HostPathType
""", required="path")
define(CORE, "EmptyDirVolumeSource", """
    medium string go=v1.StorageMedium
    sizeLimit quantity
""")
define(CORE, "KeyToPath", """
    key string
    mode int32
    path string
""", required="key path")
define(CORE, "SecretVolumeSource", """
    defaultMode int32
    items []KeyToPath list=atomic
    optional bool
    secretName string
""")
define(CORE, "ConfigMapVolumeSource", """
    defaultMode int32
    items []KeyToPath list=atomic
    name string
    optional bool
""")
define(CORE, "DownwardAPIVolumeFile", """
    fieldRef ObjectFieldSelector
    mode int32
    path string
    resourceFieldRef ResourceFieldSelector
""", required="path")
define(CORE, "DownwardAPIVolumeSource", """
    defaultMode int32
    items []DownwardAPIVolumeFile list=atomic
""")
define(CORE, "ProjectedVolumeSource", """
    defaultMode int32
    sources []VolumeProjection list=atomic
""")
define(CORE, "VolumeProjection", """
    clusterTrustBundle ClusterTrustBundleProjection
    configMap ConfigMapProjection
    downwardAPI DownwardAPIProjection
    secret SecretProjection
    serviceAccountToken ServiceAccountTokenProjection
""")
define(CORE, "SecretProjection", """
    items []KeyToPath list=atomic
    name string
    optional bool
""")
define(CORE, "ConfigMapProjection", """
    items []KeyToPath list=atomic
    name string
    optional bool
""")
define(CORE, "DownwardAPIProjection", "items []DownwardAPIVolumeFile list=atomic")
define(CORE, "ServiceAccountTokenProjection", """
    audience string
    expirationSeconds int64
    path string
""", required="path")
define(CORE, "ClusterTrustBundleProjection", """
    labelSelector meta.LabelSelector
    name string
    optional bool
    path string
    signerName string
""", required="path")
define(CORE, "PersistentVolumeClaimVolumeSource", """
    claimName string
    readOnly bool
""", required="claimName")
define(CORE, "NFSVolumeSource", """
    path string
    readOnly bool
    server string
""", required="server path")
define(CORE, "CSIVolumeSource", """
    driver string
    fsType string
    nodePublishSecretRef LocalObjectReference
    readOnly bool
    volumeAttributes {}string
""", required="driver")
define(CORE, "EphemeralVolumeSource", "volumeClaimTemplate PersistentVolumeClaimTemplate")
define(CORE, "PersistentVolumeClaimTemplate", """
    metadata meta.ObjectMeta
    spec PersistentVolumeClaimSpec
""", required="spec")
define(CORE, "ImageVolumeSource", """
    pullPolicy string go=v1.PullPolicy
    reference string
""")

# --- scheduling

define(CORE, "Affinity", """
    nodeAffinity NodeAffinity
    podAffinity PodAffinity
    podAntiAffinity PodAntiAffinity
""")
define(CORE, "NodeAffinity", """
    preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm list=atomic
    requiredDuringSchedulingIgnoredDuringExecution NodeSelector
""")
define(CORE, "NodeSelector", "nodeSelectorTerms []NodeSelectorTerm list=atomic",
        required="nodeSelectorTerms", map_type="atomic")
define(CORE, "NodeSelectorTerm", """
    matchExpressions []NodeSelectorRequirement list=atomic
    matchFields []NodeSelectorRequirement list=atomic
""", map_type="atomic")
define(CORE, "NodeSelectorRequirement", """
    key string
    operator string go=v1.NodeSelectorOperator
    values []string list=atomic
""", required="key operator")
define(CORE, "PreferredSchedulingTerm", """
    preference NodeSelectorTerm
    weight int32
""", required="weight preference")
define(CORE, "PodAffinity", """
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm list=atomic
    requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm list=atomic
""")
define(CORE, "PodAntiAffinity", """
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm list=atomic
    requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm list=atomic
""")
define(CORE, "PodAffinityTerm", """
    labelSelector meta.LabelSelector
    matchLabelKeys []string list=atomic
    mismatchLabelKeys []string list=atomic
    namespaceSelector meta.LabelSelector
    namespaces []string list=atomic
    topologyKey string
""", required="topologyKey")
define(CORE, "WeightedPodAffinityTerm", """
    podAffinityTerm PodAffinityTerm
    weight int32
""", required="weight podAffinityTerm")
define(CORE, "Toleration", """
    effect string go=v1.TaintEffect
    key string
    operator string go=v1.TolerationOperator
    tolerationSeconds int64
    value string
""")
define(CORE, "TopologySpreadConstraint", """
    labelSelector meta.LabelSelector
    matchLabelKeys []string list=atomic
    maxSkew int32
    minDomains int32
    nodeAffinityPolicy string go=v1.NodeInclusionPolicy
    nodeTaintsPolicy string go=v1.NodeInclusionPolicy
    topologyKey string
    whenUnsatisfiable string go=v1.UnsatisfiableConstraintAction
""", required="maxSkew topologyKey whenUnsatisfiable")
define(CORE, "HostAlias", """
    hostnames []string list=atomic
    ip string
""", required="ip")
define(CORE, "PodDNSConfig", """
    nameservers []string list=atomic
    options []PodDNSConfigOption list=atomic
    searches []string list=atomic
""")
define(CORE, "PodDNSConfigOption", """
    name string
    value string
""")
define(CORE, "PodReadinessGate", "conditionType string go=v1.PodConditionType",
        required="conditionType")
define(CORE, "PodOS", "name string go=v1.OSName", required="name")
define(CORE, "PodSchedulingGate", "name string", required="name")
define(CORE, "PodResourceClaim", """
    name string
    resourceClaimName string
    resourceClaimTemplateName string
""", required="name")

# --- pods

define(CORE, "PodSpec", """
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
define(CORE, "PodStatus", """
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
define(CORE, "PodCondition", """
    lastProbeTime time
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.PodConditionType
""", required="type status")
define(CORE, "PodIP", "ip string", required="ip")
define(CORE, "HostIP", "ip string", required="ip")
define(CORE, "PodResourceClaimStatus", """
    name string
    resourceClaimName string
""", required="name")
define(CORE, "ContainerStatus", """
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
define(CORE, "ContainerState", """
    running ContainerStateRunning
    terminated ContainerStateTerminated
    waiting ContainerStateWaiting
""")
define(CORE, "ContainerStateWaiting", """
    message string
    reason string
""")
define(CORE, "ContainerStateRunning", "startedAt time")
define(CORE, "ContainerStateTerminated", """
    containerID string
    exitCode int32
    finishedAt time
    message string
    reason string
    signal int32
    startedAt time
""", required="exitCode")
define(CORE, "VolumeMountStatus", """
    mountPath string
    name string
    readOnly bool
    recursiveReadOnly string go=v1.RecursiveReadOnlyMode
""", required="name mountPath")
define_kind(CORE, "Pod", "", "v1", """
    spec PodSpec
    status PodStatus
""")
define(CORE, "PodTemplateSpec", """
    metadata meta.ObjectMeta
    spec PodSpec
""")

