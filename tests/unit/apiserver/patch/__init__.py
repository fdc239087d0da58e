"""Hand-made OpenAPI v3 components shaped like kube-apiserver's /openapi/v3 output, trimmed to
the fields the patch tests touch (merge keys, list types and map types as upstream has them)."""
from __future__ import annotations

from typing import Any

from svcnet.apiserver.patch import SchemaResolver

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
POD = CORE + "Pod"
SERVICE = CORE + "Service"
DEPLOYMENT = APPS + "Deployment"


def ref(name: str, **extra: Any) -> dict[str, Any]:
    """A property referring to a component, wrapped in allOf as /openapi/v3 does."""
    return {"allOf": [{"$ref": "#/components/schemas/" + name}], **extra}


def struct(name: str) -> dict[str, Any]:
    """A non-pointer struct field: upstream gives it default {}."""
    return ref(name, default={})


def string_map(**extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string", "default": ""}, **extra}


def keyed_list(item: str, merge_key: str, keys: list[str], strategy: str = "merge") -> dict[str, Any]:
    return {"type": "array", "items": struct(item), "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": keys, "x-kubernetes-patch-merge-key": merge_key,
            "x-kubernetes-patch-strategy": strategy}


def atomic_list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "x-kubernetes-list-type": "atomic"}


STRING = {"type": "string"}
INT = {"type": "integer", "format": "int32"}

SCHEMAS: dict[str, Any] = {
    META + "ObjectMeta": {"type": "object", "properties": {
        "name": STRING, "namespace": STRING, "uid": STRING, "resourceVersion": STRING,
        "generation": {"type": "integer", "format": "int64"},
        "creationTimestamp": ref(META + "Time"),
        "labels": string_map(), "annotations": string_map(),
        "finalizers": {"type": "array", "items": {"type": "string", "default": ""},
                       "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
        "ownerReferences": keyed_list(META + "OwnerReference", "uid", ["uid"]),
        "managedFields": atomic_list(struct(META + "ManagedFieldsEntry")),
    }},
    META + "Time": {"type": "string", "format": "date-time"},
    META + "ManagedFieldsEntry": {"type": "object", "properties": {
        "manager": STRING, "operation": STRING, "apiVersion": STRING, "time": ref(META + "Time"),
        "fieldsType": STRING, "fieldsV1": {"type": "object"}, "subresource": STRING}},
    META + "OwnerReference": {"type": "object", "required": ["apiVersion", "kind", "name", "uid"],
                              "properties": {"apiVersion": STRING, "kind": STRING, "name": STRING,
                                             "uid": STRING, "controller": {"type": "boolean"}},
                              "x-kubernetes-map-type": "atomic"},
    META + "LabelSelector": {"type": "object", "properties": {
        "matchLabels": string_map(),
        "matchExpressions": atomic_list({"type": "object"})}, "x-kubernetes-map-type": "atomic"},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string",
                                                        "x-kubernetes-int-or-string": True},
    POD: {"type": "object", "properties": {
        "apiVersion": STRING, "kind": STRING, "metadata": struct(META + "ObjectMeta"),
        "spec": struct(CORE + "PodSpec"), "status": struct(CORE + "PodStatus")}},
    CORE + "PodSpec": {"type": "object", "required": ["containers"], "properties": {
        "containers": keyed_list(CORE + "Container", "name", ["name"]),
        "initContainers": keyed_list(CORE + "Container", "name", ["name"]),
        "volumes": keyed_list(CORE + "Volume", "name", ["name"], "merge,retainKeys"),
        "tolerations": atomic_list(struct(CORE + "Toleration")),
        "nodeSelector": string_map(**{"x-kubernetes-map-type": "atomic"}),
        "restartPolicy": STRING, "dnsPolicy": STRING, "schedulerName": STRING,
        "terminationGracePeriodSeconds": {"type": "integer", "format": "int64"}}},
    CORE + "Container": {"type": "object", "required": ["name"], "properties": {
        "name": STRING, "image": STRING, "imagePullPolicy": STRING,
        "args": atomic_list({"type": "string", "default": ""}),
        "command": atomic_list({"type": "string", "default": ""}),
        "ports": keyed_list(CORE + "ContainerPort", "containerPort", ["containerPort", "protocol"]),
        "env": keyed_list(CORE + "EnvVar", "name", ["name"]),
        "volumeMounts": keyed_list(CORE + "VolumeMount", "mountPath", ["mountPath"]),
        "resources": struct(CORE + "ResourceRequirements"),
        "terminationMessagePath": STRING}},
    CORE + "ContainerPort": {"type": "object", "required": ["containerPort"], "properties": {
        "containerPort": INT, "name": STRING, "hostPort": INT,
        "protocol": {"type": "string", "default": "TCP"}}},
    CORE + "EnvVar": {"type": "object", "required": ["name"], "properties": {
        "name": STRING, "value": STRING, "valueFrom": ref(CORE + "EnvVarSource")}},
    CORE + "EnvVarSource": {"type": "object", "properties": {"fieldRef": {"type": "object"}}},
    CORE + "VolumeMount": {"type": "object", "required": ["name", "mountPath"], "properties": {
        "name": STRING, "mountPath": STRING, "readOnly": {"type": "boolean"}}},
    CORE + "Volume": {"type": "object", "required": ["name"], "properties": {
        "name": STRING, "emptyDir": ref(CORE + "EmptyDirVolumeSource"),
        "configMap": ref(CORE + "ConfigMapVolumeSource")}},
    CORE + "EmptyDirVolumeSource": {"type": "object", "properties": {"medium": STRING}},
    CORE + "ConfigMapVolumeSource": {"type": "object", "properties": {"name": STRING}},
    CORE + "ResourceRequirements": {"type": "object", "properties": {
        "limits": string_map(), "requests": string_map()}},
    CORE + "Toleration": {"type": "object", "properties": {
        "key": STRING, "operator": STRING, "value": STRING, "effect": STRING}},
    CORE + "PodStatus": {"type": "object", "properties": {
        "phase": STRING, "podIP": STRING,
        "conditions": keyed_list(CORE + "PodCondition", "type", ["type"])}},
    CORE + "PodCondition": {"type": "object", "required": ["type", "status"], "properties": {
        "type": STRING, "status": STRING}},
    SERVICE: {"type": "object", "properties": {
        "apiVersion": STRING, "kind": STRING, "metadata": struct(META + "ObjectMeta"),
        "spec": struct(CORE + "ServiceSpec"), "status": struct(CORE + "ServiceStatus")}},
    CORE + "ServiceSpec": {"type": "object", "properties": {
        "ports": keyed_list(CORE + "ServicePort", "port", ["port", "protocol"]),
        "selector": string_map(**{"x-kubernetes-map-type": "atomic"}),
        "clusterIP": STRING, "clusterIPs": atomic_list({"type": "string", "default": ""}),
        "type": STRING}},
    CORE + "ServicePort": {"type": "object", "required": ["port"], "properties": {
        "name": STRING, "port": INT, "protocol": {"type": "string", "default": "TCP"},
        "targetPort": ref("io.k8s.apimachinery.pkg.util.intstr.IntOrString"), "nodePort": INT}},
    CORE + "ServiceStatus": {"type": "object", "properties": {"loadBalancer": {"type": "object"}}},
    DEPLOYMENT: {"type": "object", "properties": {
        "apiVersion": STRING, "kind": STRING, "metadata": struct(META + "ObjectMeta"),
        "spec": struct(APPS + "DeploymentSpec"), "status": struct(APPS + "DeploymentStatus")}},
    APPS + "DeploymentSpec": {"type": "object", "required": ["selector", "template"], "properties": {
        "replicas": INT, "minReadySeconds": INT,
        "selector": ref(META + "LabelSelector"),
        "template": struct(CORE + "PodTemplateSpec"),
        "strategy": ref(APPS + "DeploymentStrategy", default={},
                        **{"x-kubernetes-patch-strategy": "retainKeys"})}},
    APPS + "DeploymentStrategy": {"type": "object", "properties": {
        "type": STRING, "rollingUpdate": ref(APPS + "RollingUpdateDeployment")}},
    APPS + "RollingUpdateDeployment": {"type": "object", "properties": {
        "maxSurge": ref("io.k8s.apimachinery.pkg.util.intstr.IntOrString"),
        "maxUnavailable": ref("io.k8s.apimachinery.pkg.util.intstr.IntOrString")}},
    APPS + "DeploymentStatus": {"type": "object", "properties": {"replicas": INT, "readyReplicas": INT}},
    CORE + "PodTemplateSpec": {"type": "object", "properties": {
        "metadata": struct(META + "ObjectMeta"), "spec": struct(CORE + "PodSpec")}},
}

RESOLVER = SchemaResolver({"components": {"schemas": SCHEMAS}})
