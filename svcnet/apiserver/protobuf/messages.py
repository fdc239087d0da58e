"""Tables of field number -> (JSON name, kind, nested message) for the messages kubectl's typed
clients send, written from upstream's generated.proto files. Declarative data."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    STRING = "string"
    INT = "int"  # int32 and int64 alike: JSON has one number type
    BOOL = "bool"
    BYTES = "bytes"  # base64 in JSON, as encoding/json writes []byte
    MESSAGE = "message"
    INLINE = "inline"  # an embedded Go struct: its fields sit in the parent's JSON object
    STRING_MAP = "map<string,string>"
    BYTES_MAP = "map<string,bytes>"  # values base64 in JSON (Secret.data, ConfigMap.binaryData)
    QUANTITY_MAP = "map<string,Quantity>"
    TIME = "Time"
    QUANTITY = "Quantity"
    INT_OR_STRING = "IntOrString"
    FIELDS_V1 = "FieldsV1"


SCALARS = (Kind.STRING, Kind.INT, Kind.BOOL, Kind.BYTES)


@dataclass(frozen=True)
class FieldSpec:
    json_name: str
    kind: Kind
    message: str = ""  # MESSAGE and INLINE: the nested message's table name
    repeated: bool = False
    keep_zero: bool = False  # a Go pointer or a field without omitempty: zero still shows in JSON


def _s(name: str, keep: bool = False) -> FieldSpec:
    return FieldSpec(name, Kind.STRING, keep_zero=keep)


def _i(name: str, keep: bool = False) -> FieldSpec:
    return FieldSpec(name, Kind.INT, keep_zero=keep)


def _b(name: str, keep: bool = False) -> FieldSpec:
    return FieldSpec(name, Kind.BOOL, keep_zero=keep)


def _m(name: str, message: str) -> FieldSpec:
    return FieldSpec(name, Kind.MESSAGE, message)


def _list(name: str, message: str) -> FieldSpec:
    return FieldSpec(name, Kind.MESSAGE, message, repeated=True)


def _strings(name: str) -> FieldSpec:
    return FieldSpec(name, Kind.STRING, repeated=True)


def _ints(name: str) -> FieldSpec:
    return FieldSpec(name, Kind.INT, repeated=True)


def _map(name: str) -> FieldSpec:
    return FieldSpec(name, Kind.STRING_MAP)


def _quantities(name: str) -> FieldSpec:
    return FieldSpec(name, Kind.QUANTITY_MAP)


def _time(name: str) -> FieldSpec:
    return FieldSpec(name, Kind.TIME)


def _ios(name: str) -> FieldSpec:
    return FieldSpec(name, Kind.INT_OR_STRING)


def _inline(message: str) -> FieldSpec:
    return FieldSpec("", Kind.INLINE, message)


# Field numbers from k8s.io/apimachinery meta/v1 and k8s.io/api core/v1, apps/v1 generated.proto.
MESSAGES: dict[str, dict[int, FieldSpec]] = {
    # ---- meta/v1
    "ObjectMeta": {
        1: _s("name"), 2: _s("generateName"), 3: _s("namespace"), 4: _s("selfLink"), 5: _s("uid"),
        6: _s("resourceVersion"), 7: _i("generation"), 8: _time("creationTimestamp"),
        9: _time("deletionTimestamp"), 10: _i("deletionGracePeriodSeconds", keep=True),
        11: _map("labels"), 12: _map("annotations"), 13: _list("ownerReferences", "OwnerReference"),
        14: _strings("finalizers"), 17: _list("managedFields", "ManagedFieldsEntry"),
    },
    "OwnerReference": {
        5: _s("apiVersion", keep=True), 1: _s("kind", keep=True), 3: _s("name", keep=True),
        4: _s("uid", keep=True), 6: _b("controller", keep=True), 7: _b("blockOwnerDeletion", keep=True),
    },
    "ManagedFieldsEntry": {
        1: _s("manager"), 2: _s("operation"), 3: _s("apiVersion"), 4: _time("time"),
        6: _s("fieldsType"), 7: FieldSpec("fieldsV1", Kind.FIELDS_V1), 8: _s("subresource"),
    },
    "LabelSelector": {1: _map("matchLabels"), 2: _list("matchExpressions", "LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: _s("key", keep=True), 2: _s("operator", keep=True), 3: _strings("values")},
    "Condition": {
        1: _s("type", keep=True), 2: _s("status", keep=True), 3: _i("observedGeneration"),
        4: _time("lastTransitionTime"), 5: _s("reason", keep=True), 6: _s("message", keep=True),
    },
    # ---- core/v1 Namespace
    "Namespace": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "NamespaceSpec"),
                  3: _m("status", "NamespaceStatus")},
    "NamespaceSpec": {1: _strings("finalizers")},
    "NamespaceStatus": {1: _s("phase"), 2: _list("conditions", "NamespaceCondition")},
    "NamespaceCondition": {1: _s("type", keep=True), 2: _s("status", keep=True),
                           4: _time("lastTransitionTime"), 5: _s("reason"), 6: _s("message")},
    # ---- core/v1 Pod
    "Pod": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "PodSpec"), 3: _m("status", "PodStatus")},
    "PodTemplateSpec": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "PodSpec")},
    "PodSpec": {
        20: _list("initContainers", "Container"), 2: _list("containers", "Container"),
        3: _s("restartPolicy"), 4: _i("terminationGracePeriodSeconds", keep=True),
        5: _i("activeDeadlineSeconds", keep=True), 6: _s("dnsPolicy"), 7: _map("nodeSelector"),
        8: _s("serviceAccountName"), 9: _s("serviceAccount"),
        21: _b("automountServiceAccountToken", keep=True), 10: _s("nodeName"), 11: _b("hostNetwork"),
        12: _b("hostPID"), 13: _b("hostIPC"), 27: _b("shareProcessNamespace", keep=True),
        14: _m("securityContext", "PodSecurityContext"),
        15: _list("imagePullSecrets", "LocalObjectReference"), 16: _s("hostname"), 17: _s("subdomain"),
        19: _s("schedulerName"), 22: _list("tolerations", "Toleration"),
        23: _list("hostAliases", "HostAlias"), 24: _s("priorityClassName"), 25: _i("priority", keep=True),
        26: _m("dnsConfig", "PodDNSConfig"), 28: _list("readinessGates", "PodReadinessGate"),
        29: _s("runtimeClassName", keep=True), 30: _b("enableServiceLinks", keep=True),
        31: _s("preemptionPolicy", keep=True), 32: _quantities("overhead"),
        35: _b("setHostnameAsFQDN", keep=True), 36: _m("os", "PodOS"), 37: _b("hostUsers", keep=True),
        38: _list("schedulingGates", "PodSchedulingGate"), 40: _m("resources", "ResourceRequirements"),
    },
    "Container": {
        1: _s("name", keep=True), 2: _s("image"), 3: _strings("command"), 4: _strings("args"),
        5: _s("workingDir"), 6: _list("ports", "ContainerPort"), 19: _list("envFrom", "EnvFromSource"),
        7: _list("env", "EnvVar"), 8: _m("resources", "ResourceRequirements"),
        23: _list("resizePolicy", "ContainerResizePolicy"), 24: _s("restartPolicy", keep=True),
        10: _m("livenessProbe", "Probe"), 11: _m("readinessProbe", "Probe"), 22: _m("startupProbe", "Probe"),
        12: _m("lifecycle", "Lifecycle"), 13: _s("terminationMessagePath"),
        20: _s("terminationMessagePolicy"), 14: _s("imagePullPolicy"),
        15: _m("securityContext", "SecurityContext"), 16: _b("stdin"), 17: _b("stdinOnce"), 18: _b("tty"),
    },
    "ContainerPort": {1: _s("name"), 2: _i("hostPort"), 3: _i("containerPort", keep=True),
                      4: _s("protocol"), 5: _s("hostIP")},
    "ContainerResizePolicy": {1: _s("resourceName", keep=True), 2: _s("restartPolicy", keep=True)},
    "EnvVar": {1: _s("name", keep=True), 2: _s("value"), 3: _m("valueFrom", "EnvVarSource")},
    "EnvVarSource": {1: _m("fieldRef", "ObjectFieldSelector"),
                     2: _m("resourceFieldRef", "ResourceFieldSelector"),
                     3: _m("configMapKeyRef", "ConfigMapKeySelector"),
                     4: _m("secretKeyRef", "SecretKeySelector")},
    "EnvFromSource": {1: _s("prefix"), 2: _m("configMapRef", "ConfigMapEnvSource"),
                      3: _m("secretRef", "SecretEnvSource")},
    "ObjectFieldSelector": {1: _s("apiVersion"), 2: _s("fieldPath", keep=True)},
    "ResourceFieldSelector": {1: _s("containerName"), 2: _s("resource", keep=True),
                              3: FieldSpec("divisor", Kind.QUANTITY)},
    "LocalObjectReference": {1: _s("name")},
    "ConfigMapKeySelector": {1: _inline("LocalObjectReference"), 2: _s("key", keep=True),
                             3: _b("optional", keep=True)},
    "SecretKeySelector": {1: _inline("LocalObjectReference"), 2: _s("key", keep=True),
                          3: _b("optional", keep=True)},
    "ConfigMapEnvSource": {1: _inline("LocalObjectReference"), 2: _b("optional", keep=True)},
    "SecretEnvSource": {1: _inline("LocalObjectReference"), 2: _b("optional", keep=True)},
    "ResourceRequirements": {1: _quantities("limits"), 2: _quantities("requests"),
                             3: _list("claims", "ResourceClaim")},
    "ResourceClaim": {1: _s("name", keep=True), 2: _s("request")},
    "Probe": {1: _inline("ProbeHandler"), 2: _i("initialDelaySeconds"), 3: _i("timeoutSeconds"),
              4: _i("periodSeconds"), 5: _i("successThreshold"), 6: _i("failureThreshold"),
              7: _i("terminationGracePeriodSeconds", keep=True)},
    "ProbeHandler": {1: _m("exec", "ExecAction"), 2: _m("httpGet", "HTTPGetAction"),
                     3: _m("tcpSocket", "TCPSocketAction"), 4: _m("grpc", "GRPCAction")},
    "Lifecycle": {1: _m("postStart", "LifecycleHandler"), 2: _m("preStop", "LifecycleHandler"),
                  3: _s("stopSignal", keep=True)},
    "LifecycleHandler": {1: _m("exec", "ExecAction"), 2: _m("httpGet", "HTTPGetAction"),
                         3: _m("tcpSocket", "TCPSocketAction"), 4: _m("sleep", "SleepAction")},
    "ExecAction": {1: _strings("command")},
    "HTTPGetAction": {1: _s("path"), 2: _ios("port"), 3: _s("host"), 4: _s("scheme"),
                      5: _list("httpHeaders", "HTTPHeader")},
    "HTTPHeader": {1: _s("name", keep=True), 2: _s("value", keep=True)},
    "TCPSocketAction": {1: _ios("port"), 2: _s("host")},
    "GRPCAction": {1: _i("port", keep=True), 2: _s("service", keep=True)},
    "SleepAction": {1: _i("seconds", keep=True)},
    "SecurityContext": {
        1: _m("capabilities", "Capabilities"), 2: _b("privileged", keep=True),
        3: _m("seLinuxOptions", "SELinuxOptions"), 4: _i("runAsUser", keep=True),
        8: _i("runAsGroup", keep=True), 5: _b("runAsNonRoot", keep=True),
        6: _b("readOnlyRootFilesystem", keep=True), 7: _b("allowPrivilegeEscalation", keep=True),
        9: _s("procMount", keep=True), 11: _m("seccompProfile", "SeccompProfile"),
        12: _m("appArmorProfile", "AppArmorProfile"),
    },
    "PodSecurityContext": {
        1: _m("seLinuxOptions", "SELinuxOptions"), 2: _i("runAsUser", keep=True),
        6: _i("runAsGroup", keep=True), 3: _b("runAsNonRoot", keep=True), 4: _ints("supplementalGroups"),
        12: _s("supplementalGroupsPolicy", keep=True), 5: _i("fsGroup", keep=True),
        7: _list("sysctls", "Sysctl"), 9: _s("fsGroupChangePolicy", keep=True),
        10: _m("seccompProfile", "SeccompProfile"), 11: _m("appArmorProfile", "AppArmorProfile"),
        13: _s("seLinuxChangePolicy", keep=True),
    },
    "Capabilities": {1: _strings("add"), 2: _strings("drop")},
    "SELinuxOptions": {1: _s("user"), 2: _s("role"), 3: _s("type"), 4: _s("level")},
    "SeccompProfile": {1: _s("type", keep=True), 2: _s("localhostProfile", keep=True)},
    "AppArmorProfile": {1: _s("type", keep=True), 2: _s("localhostProfile", keep=True)},
    "Sysctl": {1: _s("name", keep=True), 2: _s("value", keep=True)},
    "Toleration": {1: _s("key"), 2: _s("operator"), 3: _s("value"), 4: _s("effect"),
                   5: _i("tolerationSeconds", keep=True)},
    "HostAlias": {1: _s("ip", keep=True), 2: _strings("hostnames")},
    "PodDNSConfig": {1: _strings("nameservers"), 2: _strings("searches"),
                     3: _list("options", "PodDNSConfigOption")},
    "PodDNSConfigOption": {1: _s("name"), 2: _s("value", keep=True)},
    "PodReadinessGate": {1: _s("conditionType", keep=True)},
    "PodSchedulingGate": {1: _s("name", keep=True)},
    "PodOS": {1: _s("name", keep=True)},
    "PodStatus": {
        1: _s("phase"), 2: _list("conditions", "PodCondition"), 3: _s("message"), 4: _s("reason"),
        11: _s("nominatedNodeName"), 5: _s("hostIP"), 16: _list("hostIPs", "HostIP"), 6: _s("podIP"),
        12: _list("podIPs", "PodIP"), 7: _time("startTime"), 9: _s("qosClass"),
        17: _i("observedGeneration"),
    },
    "PodCondition": {1: _s("type", keep=True), 7: _i("observedGeneration"), 2: _s("status", keep=True),
                     3: _time("lastProbeTime"), 4: _time("lastTransitionTime"), 5: _s("reason"),
                     6: _s("message")},
    "PodIP": {1: _s("ip")},
    "HostIP": {1: _s("ip")},
    # ---- core/v1 Service
    "Service": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "ServiceSpec"),
                3: _m("status", "ServiceStatus")},
    "ServiceSpec": {
        1: _list("ports", "ServicePort"), 2: _map("selector"), 3: _s("clusterIP"),
        18: _strings("clusterIPs"), 4: _s("type"), 5: _strings("externalIPs"), 7: _s("sessionAffinity"),
        8: _s("loadBalancerIP"), 9: _strings("loadBalancerSourceRanges"), 10: _s("externalName"),
        11: _s("externalTrafficPolicy"), 12: _i("healthCheckNodePort"), 13: _b("publishNotReadyAddresses"),
        14: _m("sessionAffinityConfig", "SessionAffinityConfig"), 19: _strings("ipFamilies"),
        17: _s("ipFamilyPolicy", keep=True), 20: _b("allocateLoadBalancerNodePorts", keep=True),
        21: _s("loadBalancerClass", keep=True), 22: _s("internalTrafficPolicy", keep=True),
        23: _s("trafficDistribution", keep=True),
    },
    "ServicePort": {1: _s("name"), 2: _s("protocol"), 6: _s("appProtocol", keep=True),
                    3: _i("port", keep=True), 4: _ios("targetPort"), 5: _i("nodePort")},
    "SessionAffinityConfig": {1: _m("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: _i("timeoutSeconds", keep=True)},
    "ServiceStatus": {1: _m("loadBalancer", "LoadBalancerStatus"), 2: _list("conditions", "Condition")},
    "LoadBalancerStatus": {1: _list("ingress", "LoadBalancerIngress")},
    "LoadBalancerIngress": {1: _s("ip"), 2: _s("hostname"), 3: _s("ipMode", keep=True),
                            4: _list("ports", "PortStatus")},
    "PortStatus": {1: _i("port", keep=True), 2: _s("protocol", keep=True), 3: _s("error", keep=True)},
    # ---- core/v1 ConfigMap, Secret and ServiceAccount (Go pointers: immutable, automount...)
    "ConfigMap": {1: _m("metadata", "ObjectMeta"), 4: _b("immutable", keep=True), 2: _map("data"),
                  3: FieldSpec("binaryData", Kind.BYTES_MAP)},
    "Secret": {1: _m("metadata", "ObjectMeta"), 5: _b("immutable", keep=True),
               2: FieldSpec("data", Kind.BYTES_MAP), 4: _map("stringData"), 3: _s("type")},
    "ServiceAccount": {1: _m("metadata", "ObjectMeta"), 2: _list("secrets", "ObjectReference"),
                       3: _list("imagePullSecrets", "LocalObjectReference"),
                       4: _b("automountServiceAccountToken", keep=True)},
    "ObjectReference": {1: _s("kind"), 2: _s("namespace"), 3: _s("name"), 4: _s("uid"), 5: _s("apiVersion"),
                        6: _s("resourceVersion"), 7: _s("fieldPath")},
    # ---- apps/v1 Deployment and ReplicaSet
    "Deployment": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "DeploymentSpec"),
                   3: _m("status", "DeploymentStatus")},
    "DeploymentSpec": {
        1: _i("replicas", keep=True), 2: _m("selector", "LabelSelector"), 3: _m("template", "PodTemplateSpec"),
        4: _m("strategy", "DeploymentStrategy"), 5: _i("minReadySeconds"),
        6: _i("revisionHistoryLimit", keep=True), 7: _b("paused"),
        9: _i("progressDeadlineSeconds", keep=True),
    },
    "DeploymentStrategy": {1: _s("type"), 2: _m("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: _ios("maxUnavailable"), 2: _ios("maxSurge")},
    "DeploymentStatus": {
        1: _i("observedGeneration"), 2: _i("replicas"), 3: _i("updatedReplicas"), 7: _i("readyReplicas"),
        4: _i("availableReplicas"), 5: _i("unavailableReplicas"), 9: _i("terminatingReplicas", keep=True),
        6: _list("conditions", "DeploymentCondition"), 8: _i("collisionCount", keep=True),
    },
    "DeploymentCondition": {1: _s("type", keep=True), 2: _s("status", keep=True),
                            6: _time("lastUpdateTime"), 7: _time("lastTransitionTime"),
                            4: _s("reason"), 5: _s("message")},
    "ReplicaSet": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "ReplicaSetSpec"),
                   3: _m("status", "ReplicaSetStatus")},
    "ReplicaSetSpec": {1: _i("replicas", keep=True), 4: _i("minReadySeconds"),
                       2: _m("selector", "LabelSelector"), 3: _m("template", "PodTemplateSpec")},
    "ReplicaSetStatus": {1: _i("replicas", keep=True), 2: _i("fullyLabeledReplicas"), 4: _i("readyReplicas"),
                         5: _i("availableReplicas"), 7: _i("terminatingReplicas", keep=True),
                         3: _i("observedGeneration"), 6: _list("conditions", "ReplicaSetCondition")},
    "ReplicaSetCondition": {1: _s("type", keep=True), 2: _s("status", keep=True),
                            3: _time("lastTransitionTime"), 4: _s("reason"), 5: _s("message")},
    # ---- rbac/v1
    "PolicyRule": {1: _strings("verbs"), 2: _strings("apiGroups"), 3: _strings("resources"),
                   4: _strings("resourceNames"), 5: _strings("nonResourceURLs")},
    "AggregationRule": {1: _list("clusterRoleSelectors", "LabelSelector")},
    "Role": {1: _m("metadata", "ObjectMeta"), 2: _list("rules", "PolicyRule")},
    "ClusterRole": {1: _m("metadata", "ObjectMeta"), 2: _list("rules", "PolicyRule"),
                    3: _m("aggregationRule", "AggregationRule")},
    "RoleRef": {1: _s("apiGroup", keep=True), 2: _s("kind", keep=True), 3: _s("name", keep=True)},
    "Subject": {1: _s("kind", keep=True), 2: _s("apiGroup"), 3: _s("name", keep=True), 4: _s("namespace")},
    "RoleBinding": {1: _m("metadata", "ObjectMeta"), 2: _list("subjects", "Subject"), 3: _m("roleRef", "RoleRef")},
    "ClusterRoleBinding": {1: _m("metadata", "ObjectMeta"), 2: _list("subjects", "Subject"),
                           3: _m("roleRef", "RoleRef")},
    # ---- authorization/v1 (status is the server's answer: a client's is not read)
    "ResourceAttributes": {1: _s("namespace"), 2: _s("verb"), 3: _s("group"), 4: _s("version"), 5: _s("resource"),
                           6: _s("subresource"), 7: _s("name"), 8: _m("fieldSelector", "FieldSelectorAttributes"),
                           9: _m("labelSelector", "LabelSelectorAttributes")},
    "FieldSelectorAttributes": {1: _s("rawSelector"), 2: _list("requirements", "FieldSelectorRequirement")},
    "FieldSelectorRequirement": {1: _s("key", keep=True), 2: _s("operator", keep=True), 3: _strings("values")},
    "LabelSelectorAttributes": {1: _s("rawSelector"), 2: _list("requirements", "LabelSelectorRequirement")},
    "NonResourceAttributes": {1: _s("path"), 2: _s("verb")},
    "SelfSubjectAccessReviewSpec": {1: _m("resourceAttributes", "ResourceAttributes"),
                                    2: _m("nonResourceAttributes", "NonResourceAttributes")},
    "SubjectAccessReviewSpec": {1: _m("resourceAttributes", "ResourceAttributes"),
                                2: _m("nonResourceAttributes", "NonResourceAttributes"), 3: _s("user"),
                                4: _strings("groups"), 6: _s("uid")},
    "SelfSubjectAccessReview": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "SelfSubjectAccessReviewSpec")},
    "SubjectAccessReview": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "SubjectAccessReviewSpec")},
    "LocalSubjectAccessReview": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "SubjectAccessReviewSpec")},
    "SelfSubjectRulesReview": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: _s("namespace")},
    # ---- authentication/v1
    "SelfSubjectReview": {1: _m("metadata", "ObjectMeta")},
    "BoundObjectReference": {1: _s("kind"), 2: _s("apiVersion"), 3: _s("name"), 4: _s("uid")},
    "TokenRequestSpec": {1: _strings("audiences"), 4: _i("expirationSeconds", keep=True),
                         3: _m("boundObjectRef", "BoundObjectReference")},
    "TokenRequest": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "TokenRequestSpec")},
    "TokenReviewSpec": {1: _s("token"), 2: _strings("audiences")},
    "TokenReview": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "TokenReviewSpec")},
    # ---- batch/v1 (kubectl create job / create cronjob send these); pointers keep their zero values
    "Job": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "JobSpec"), 3: _m("status", "JobStatus")},
    "JobSpec": {
        1: _i("parallelism", keep=True), 2: _i("completions", keep=True), 3: _i("activeDeadlineSeconds", keep=True),
        11: _m("podFailurePolicy", "PodFailurePolicy"), 16: _m("successPolicy", "SuccessPolicy"),
        7: _i("backoffLimit", keep=True), 12: _i("backoffLimitPerIndex", keep=True),
        13: _i("maxFailedIndexes", keep=True), 4: _m("selector", "LabelSelector"),
        5: _b("manualSelector", keep=True), 6: _m("template", "PodTemplateSpec"),
        8: _i("ttlSecondsAfterFinished", keep=True), 9: _s("completionMode", keep=True),
        10: _b("suspend", keep=True), 14: _s("podReplacementPolicy", keep=True), 15: _s("managedBy", keep=True),
    },
    "JobStatus": {
        1: _list("conditions", "JobCondition"), 2: _time("startTime"), 3: _time("completionTime"),
        4: _i("active"), 5: _i("succeeded"), 6: _i("failed"), 11: _i("terminating", keep=True),
        7: _s("completedIndexes"), 10: _s("failedIndexes", keep=True),
        8: _m("uncountedTerminatedPods", "UncountedTerminatedPods"), 9: _i("ready", keep=True),
    },
    "JobCondition": {1: _s("type", keep=True), 2: _s("status", keep=True), 3: _time("lastProbeTime"),
                     4: _time("lastTransitionTime"), 5: _s("reason"), 6: _s("message")},
    "UncountedTerminatedPods": {1: _strings("succeeded"), 2: _strings("failed")},
    "PodFailurePolicy": {1: _list("rules", "PodFailurePolicyRule")},
    "PodFailurePolicyRule": {1: _s("action", keep=True),
                             2: _m("onExitCodes", "PodFailurePolicyOnExitCodesRequirement"),
                             3: _list("onPodConditions", "PodFailurePolicyOnPodConditionsPattern")},
    "PodFailurePolicyOnExitCodesRequirement": {1: _s("containerName", keep=True), 2: _s("operator", keep=True),
                                               3: _ints("values")},
    "PodFailurePolicyOnPodConditionsPattern": {1: _s("type", keep=True), 2: _s("status")},
    "SuccessPolicy": {1: _list("rules", "SuccessPolicyRule")},
    "SuccessPolicyRule": {1: _s("succeededIndexes", keep=True), 2: _i("succeededCount", keep=True)},
    "JobTemplateSpec": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "JobSpec")},
    "CronJob": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "CronJobSpec"), 3: _m("status", "CronJobStatus")},
    "CronJobSpec": {
        1: _s("schedule", keep=True), 8: _s("timeZone", keep=True), 2: _i("startingDeadlineSeconds", keep=True),
        3: _s("concurrencyPolicy"), 4: _b("suspend", keep=True), 5: _m("jobTemplate", "JobTemplateSpec"),
        6: _i("successfulJobsHistoryLimit", keep=True), 7: _i("failedJobsHistoryLimit", keep=True),
    },
    "CronJobStatus": {1: _list("active", "ObjectReference"), 4: _time("lastScheduleTime"),
                      5: _time("lastSuccessfulTime")},
}

# (apiVersion, kind) -> top-level message: the kinds svcnet serves that typed clients send.
TOP_LEVEL: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Pod"): "Pod",
    ("v1", "Service"): "Service",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("apps/v1", "Deployment"): "Deployment",
    ("apps/v1", "ReplicaSet"): "ReplicaSet",
    **{("rbac.authorization.k8s.io/v1", kind): kind
       for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")},
    **{("authorization.k8s.io/v1", kind): kind
       for kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview",
                    "SelfSubjectRulesReview")},
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
}



# ---- networking.k8s.io/v1 Ingress (`kubectl create ingress`), from networking/v1 generated.proto
MESSAGES.update({
    "Ingress": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "IngressSpec"), 3: _m("status", "IngressStatus")},
    "IngressSpec": {4: _s("ingressClassName", keep=True), 1: _m("defaultBackend", "IngressBackend"),
                    2: _list("tls", "IngressTLS"), 3: _list("rules", "IngressRule")},
    "IngressBackend": {4: _m("service", "IngressServiceBackend"), 3: _m("resource", "TypedLocalObjectReference")},
    "IngressServiceBackend": {1: _s("name", keep=True), 2: _m("port", "ServiceBackendPort")},
    "ServiceBackendPort": {1: _s("name"), 2: _i("number")},
    "TypedLocalObjectReference": {1: _s("apiGroup", keep=True), 2: _s("kind", keep=True), 3: _s("name", keep=True)},
    "IngressTLS": {1: _strings("hosts"), 2: _s("secretName")},
    # IngressRuleValue is embedded in IngressRule (json ",inline"): its http sits beside host.
    "IngressRule": {1: _s("host"), 2: _inline("IngressRuleValue")},
    "IngressRuleValue": {1: _m("http", "HTTPIngressRuleValue")},
    "HTTPIngressRuleValue": {1: _list("paths", "HTTPIngressPath")},
    "HTTPIngressPath": {1: _s("path"), 3: _s("pathType", keep=True), 2: _m("backend", "IngressBackend")},
    "IngressStatus": {1: _m("loadBalancer", "IngressLoadBalancerStatus")},
    "IngressLoadBalancerStatus": {1: _list("ingress", "IngressLoadBalancerIngress")},
    "IngressLoadBalancerIngress": {1: _s("ip"), 2: _s("hostname"), 4: _list("ports", "IngressPortStatus")},
    "IngressPortStatus": {1: _i("port", keep=True), 2: _s("protocol", keep=True), 3: _s("error", keep=True)},
})
TOP_LEVEL[("networking.k8s.io/v1", "Ingress")] = "Ingress"


# ---- certificates.k8s.io/v1 CertificateSigningRequest (`kubectl certificate approve|deny` sends it), from
# certificates/v1 generated.proto. spec.extra (map<string, ExtraValue>) is left out: the approval and status
# subresources keep the stored spec, and a create records the requester's own.
MESSAGES.update({
    "CertificateSigningRequest": {1: _m("metadata", "ObjectMeta"), 2: _m("spec", "CertificateSigningRequestSpec"),
                                  3: _m("status", "CertificateSigningRequestStatus")},
    "CertificateSigningRequestSpec": {1: FieldSpec("request", Kind.BYTES), 7: _s("signerName", keep=True),
                                      8: _i("expirationSeconds", keep=True), 5: _strings("usages"),
                                      2: _s("username"), 3: _s("uid"), 4: _strings("groups")},
    "CertificateSigningRequestStatus": {1: _list("conditions", "CertificateSigningRequestCondition"),
                                        2: FieldSpec("certificate", Kind.BYTES)},
    "CertificateSigningRequestCondition": {1: _s("type", keep=True), 6: _s("status", keep=True), 2: _s("reason"),
                                           3: _s("message"), 4: _time("lastUpdateTime"),
                                           5: _time("lastTransitionTime")},
})
TOP_LEVEL[("certificates.k8s.io/v1", "CertificateSigningRequest")] = "CertificateSigningRequest"
