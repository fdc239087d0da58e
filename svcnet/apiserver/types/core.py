"""core/v1 types besides the Pod's: namespaces, nodes, services, endpoints, events and
persistent volumes and their claims, replication controllers."""
from __future__ import annotations

from .dsl import CORE, define, define_kind

# --- namespaces and nodes

define_kind(CORE, "Namespace", "", "v1", """
    spec NamespaceSpec
    status NamespaceStatus
""")
define(CORE, "NamespaceSpec", "finalizers []string list=atomic")
define(CORE, "NamespaceStatus", """
    conditions []NamespaceCondition patch=merge key=type list=map keys=type
    phase string go=v1.NamespacePhase
""")
define(CORE, "NamespaceCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.NamespaceConditionType
""", required="type status")
define_kind(CORE, "Node", "", "v1", """
    spec NodeSpec
    status NodeStatus
""")
define(CORE, "NodeSpec", """
    externalID string
    podCIDR string
    podCIDRs []string patch=merge list=set
    providerID string
    taints []Taint list=atomic
    unschedulable bool
""")
define(CORE, "Taint", """
    effect string go=v1.TaintEffect
    key string
    timeAdded time
    value string
""", required="key effect")
define(CORE, "NodeStatus", """
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
define(CORE, "NodeAddress", """
    address string
    type string go=v1.NodeAddressType
""", required="type address")
define(CORE, "NodeCondition", """
    lastHeartbeatTime time
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.NodeConditionType
""", required="type status")
define(CORE, "NodeDaemonEndpoints", "kubeletEndpoint DaemonEndpoint")
# Upstream's json tag really is the capitalised "Port".
define(CORE, "DaemonEndpoint", "Port int32", required="Port")
define(CORE, "NodeSystemInfo", """
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
define(CORE, "ContainerImage", """
    names []string list=atomic
    sizeBytes int64
""")
define(CORE, "AttachedVolume", """
    devicePath string
    name string go=v1.UniqueVolumeName
""", required="name devicePath")
define(CORE, "NodeRuntimeHandler", """
    features NodeRuntimeHandlerFeatures
    name string
""")
define(CORE, "NodeRuntimeHandlerFeatures", """
    recursiveReadOnlyMounts bool
    userNamespaces bool
""")
define(CORE, "NodeFeatures", "supplementalGroupsPolicy bool")

# --- services, endpoints, events

define_kind(CORE, "Service", "", "v1", """
    spec ServiceSpec
    status ServiceStatus
""")
define(CORE, "ServiceSpec", """
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
define(CORE, "ServicePort", """
    appProtocol string
    name string
    nodePort int32
    port int32
    protocol string go=v1.Protocol default=TCP
    targetPort intstr
""", required="port")
define(CORE, "SessionAffinityConfig", "clientIP ClientIPConfig")
define(CORE, "ClientIPConfig", "timeoutSeconds int32")
define(CORE, "ServiceStatus", """
    conditions []meta.Condition patch=merge key=type list=map keys=type
    loadBalancer LoadBalancerStatus
""")
define(CORE, "LoadBalancerStatus", "ingress []LoadBalancerIngress list=atomic")
define(CORE, "LoadBalancerIngress", """
    hostname string
    ip string
    ipMode string go=v1.LoadBalancerIPMode
    ports []PortStatus list=atomic
""")
define(CORE, "PortStatus", """
    error string
    port int32
    protocol string go=v1.Protocol
""", required="port protocol")
define_kind(CORE, "Endpoints", "", "v1", "subsets []EndpointSubset list=atomic")
define(CORE, "EndpointSubset", """
    addresses []EndpointAddress list=atomic
    notReadyAddresses []EndpointAddress list=atomic
    ports []EndpointPort list=atomic
""")
define(CORE, "EndpointAddress", """
    hostname string
    ip string
    nodeName string
    targetRef ObjectReference
""", required="ip", map_type="atomic")
define(CORE, "EndpointPort", """
    appProtocol string
    name string
    port int32
    protocol string go=v1.Protocol
""", required="port", map_type="atomic")
define_kind(CORE, "Event", "", "v1", """
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
define(CORE, "EventSource", """
    component string
    host string
""")
define(CORE, "EventSeries", """
    count int32
    lastObservedTime microtime
""")

# --- persistent volume claims (served, and StatefulSet templates)

define_kind(CORE, "PersistentVolumeClaim", "", "v1", """
    spec PersistentVolumeClaimSpec
    status PersistentVolumeClaimStatus
""")
define(CORE, "PersistentVolumeClaimSpec", """
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
define(CORE, "PersistentVolumeClaimStatus", """
    accessModes []string list=atomic
    allocatedResourceStatuses {}string maptype=granular
    allocatedResources {}quantity go=v1.ResourceList
    capacity {}quantity go=v1.ResourceList
    conditions []PersistentVolumeClaimCondition patch=merge key=type list=map keys=type
    currentVolumeAttributesClassName string
    phase string go=v1.PersistentVolumeClaimPhase
""")
define(CORE, "PersistentVolumeClaimCondition", """
    lastProbeTime time
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.PersistentVolumeClaimConditionType
""", required="type status")


# --- persistent volumes (the sources svcnet describes: hostPath, local, nfs, csi)

define_kind(CORE, "PersistentVolume", "", "v1", """
    spec PersistentVolumeSpec
    status PersistentVolumeStatus
""")
define(CORE, "PersistentVolumeSpec", """
    accessModes []string list=atomic
    capacity {}quantity go=v1.ResourceList
    claimRef ObjectReference
    csi CSIPersistentVolumeSource
    hostPath HostPathVolumeSource
    local LocalVolumeSource
    mountOptions []string list=atomic
    nfs NFSVolumeSource
    nodeAffinity VolumeNodeAffinity
    persistentVolumeReclaimPolicy string go=v1.PersistentVolumeReclaimPolicy
    storageClassName string
    volumeAttributesClassName string
    volumeMode string go=v1.PersistentVolumeMode
""")
define(CORE, "LocalVolumeSource", """
    fsType string
    path string
""", required="path")
define(CORE, "CSIPersistentVolumeSource", """
    controllerExpandSecretRef SecretReference
    controllerPublishSecretRef SecretReference
    driver string
    fsType string
    nodeExpandSecretRef SecretReference
    nodePublishSecretRef SecretReference
    nodeStageSecretRef SecretReference
    readOnly bool
    volumeAttributes {}string
    volumeHandle string
""", required="driver volumeHandle")
define(CORE, "SecretReference", """
    name string
    namespace string
""", map_type="atomic")
define(CORE, "VolumeNodeAffinity", "required NodeSelector")
define(CORE, "PersistentVolumeStatus", """
    lastPhaseTransitionTime time
    message string
    phase string go=v1.PersistentVolumePhase
    reason string
""")

# --- replication controllers

define_kind(CORE, "ReplicationController", "", "v1", """
    spec ReplicationControllerSpec
    status ReplicationControllerStatus
""")
define(CORE, "ReplicationControllerSpec", """
    minReadySeconds int32
    replicas int32
    selector {}string maptype=atomic
    template PodTemplateSpec
""")
define(CORE, "ReplicationControllerStatus", """
    availableReplicas int32
    conditions []ReplicationControllerCondition patch=merge key=type list=map keys=type
    fullyLabeledReplicas int32
    observedGeneration int64
    readyReplicas int32
    replicas int32
""", required="replicas")
define(CORE, "ReplicationControllerCondition", """
    lastTransitionTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.ReplicationControllerConditionType
""", required="type status")
