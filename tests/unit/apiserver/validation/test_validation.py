"""Validation: each row is (manifest tweak -> expected field, reason and upstream wording)."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.errors import invalid as invalid_error
from svcnet.apiserver.defaults import apply_defaults
from svcnet.apiserver.validation import validate

DELETE = object()

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hostnames", "namespace": "default"},
           "spec": {"selector": {"app": "hostnames"}, "ports": [{"port": 80, "targetPort": 9376}]}}
TEMPLATE = {"metadata": {"labels": {"app": "hostnames"}},
            "spec": {"containers": [{"name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
                                     "ports": [{"containerPort": 9376}]}]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "hostnames", "namespace": "default"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "hostnames"}}, "template": TEMPLATE}}
REPLICA_SET = {**DEPLOYMENT, "kind": "ReplicaSet"}
STATEFUL_SET = {"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "hostnames", "namespace": "default"},
                "spec": {"serviceName": "hostnames", "replicas": 3,
                         "selector": {"matchLabels": {"app": "hostnames"}}, "template": TEMPLATE}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"name": "http", "containerPort": 80}],
                                "readinessProbe": {"httpGet": {"port": "http"}}}]}}
ENDPOINTS = {"metadata": {"name": "hostnames", "namespace": "default"},
             "subsets": [{"addresses": [{"ip": "10.244.1.10", "nodeName": "node-1"}], "ports": [{"port": 9376}]}]}
SLICE = {"metadata": {"name": "hostnames-abc", "namespace": "default"}, "addressType": "IPv4",
         "endpoints": [{"addresses": ["10.244.1.10"], "conditions": {"ready": True}}],
         "ports": [{"name": "", "port": 9376, "protocol": "TCP"}]}
NAMESPACE = {"metadata": {"name": "team-a"}}
NODE = {"metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}}
EVENT = {"metadata": {"name": "web.1", "namespace": "default"},
         "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started"}
LEASE = {"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
         "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}

BASES = {"Service": SERVICE, "Deployment": DEPLOYMENT, "ReplicaSet": REPLICA_SET, "StatefulSet": STATEFUL_SET,
         "Pod": POD, "Endpoints": ENDPOINTS, "EndpointSlice": SLICE, "Namespace": NAMESPACE, "Node": NODE,
         "Event": EVENT, "Lease": LEASE}


def _set(obj: Any, path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        obj = obj[int(part)] if isinstance(obj, list) else obj.setdefault(part, {})
    last = parts[-1]
    if isinstance(obj, list):
        if int(last) == len(obj):
            obj.append(value)
        else:
            obj[int(last)] = value
    elif value is DELETE:
        obj.pop(last, None)
    else:
        obj[last] = value


def manifest(kind: str, tweaks: dict[str, Any] | None = None) -> dict:
    """The valid base for `kind`, defaulted as the apiserver would, then tweaked."""
    obj = copy.deepcopy(BASES[kind])
    apply_defaults(kind, obj)
    for path, value in (tweaks or {}).items():
        _set(obj, path, value)
    return obj


def causes_of(kind: str, obj: dict, old: dict | None = None) -> list[tuple[str, str, str]]:
    return [(c.field, c.reason, c.message) for c in validate(kind, obj, old)]


@pytest.mark.parametrize("kind", sorted(BASES))
def test_valid_base_manifest_has_no_errors(kind: str) -> None:
    assert validate(kind, manifest(kind)) == []


LONG = "a" * 64
DNS1123_LABEL_HELP = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                      "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
                      "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_HELP = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_HELP = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")

# (kind, tweaks, field, reason, message or None to skip the wording check)
CREATE_CASES = [
    # object metadata
    ("Service", {"metadata.name": DELETE}, "metadata.name", "FieldValueRequired",
     "Required value: name or generateName is required"),
    ("Service", {"metadata.name": "1web"}, "metadata.name", "FieldValueInvalid",
     f'Invalid value: "1web": {DNS1035_HELP}'),
    ("Pod", {"metadata.name": "web.v1"}, None, None, None),
    ("Pod", {"metadata.name": "Web"}, "metadata.name", "FieldValueInvalid", f'Invalid value: "Web": {SUBDOMAIN_HELP}'),
    ("Namespace", {"metadata.name": "team.a"}, "metadata.name", "FieldValueInvalid",
     'Invalid value: "team.a": must not contain dots'),
    ("Namespace", {"metadata.name": LONG}, "metadata.name", "FieldValueInvalid",
     f'Invalid value: "{LONG}": must be no more than 63 characters'),
    ("StatefulSet", {"metadata.name": "web.v1"}, "metadata.name", "FieldValueInvalid",
     'Invalid value: "web.v1": must not contain dots'),
    ("Pod", {"metadata.name": DELETE, "metadata.generateName": "web-"}, "metadata.name", "FieldValueRequired", None),
    ("Pod", {"metadata.generateName": "Web-"}, "metadata.generateName", "FieldValueInvalid", None),
    ("Pod", {"metadata.namespace": DELETE}, "metadata.namespace", "FieldValueRequired", "Required value"),
    ("Pod", {"metadata.namespace": "Bad"}, "metadata.namespace", "FieldValueInvalid", None),
    ("Node", {"metadata.namespace": "default"}, "metadata.namespace", "FieldValueForbidden",
     "Forbidden: not allowed on this type"),
    ("Pod", {"metadata.labels": {"bad key": "x"}}, "metadata.labels", "FieldValueInvalid", None),
    ("Pod", {"metadata.labels": {"app": "a b"}}, "metadata.labels", "FieldValueInvalid", None),
    ("Pod", {"metadata.labels": {"app": LONG}}, "metadata.labels", "FieldValueInvalid",
     f'Invalid value: "{LONG}": must be no more than 63 characters'),
    ("Pod", {"metadata.labels": {"a/b/c": "x"}}, "metadata.labels", "FieldValueInvalid", None),
    ("Pod", {"metadata.annotations": {"Example.COM/Key": "x"}}, None, None, None),
    ("Pod", {"metadata.annotations": {"bad key": "x"}}, "metadata.annotations", "FieldValueInvalid", None),
    ("Pod", {"metadata.annotations": {"big": "x" * 262144}}, "metadata.annotations", "FieldValueTooLong",
     "Too long: may not be more than 262144 bytes"),
    ("Pod", {"metadata.finalizers": ["custom"]}, "metadata.finalizers[0]", "FieldValueInvalid",
     'Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified'),
    ("Pod", {"metadata.finalizers": ["example.com/cleanup"]}, None, None, None),
    # Service
    ("Service", {"spec.ports": []}, "spec.ports", "FieldValueRequired", "Required value"),
    ("Service", {"spec.ports": [], "spec.clusterIP": "None"}, None, None, None),
    ("Service", {"spec.ports.0.port": 70000}, "spec.ports[0].port", "FieldValueInvalid",
     "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("Service", {"spec.ports.0.port": 0}, "spec.ports[0].port", "FieldValueInvalid", None),
    ("Service", {"spec.ports.0.protocol": "ICMP"}, "spec.ports[0].protocol", "FieldValueNotSupported",
     'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ("Service", {"spec.ports": [{"port": 80, "protocol": "TCP", "targetPort": 80, "name": "a"},
                                {"port": 80, "protocol": "TCP", "targetPort": 81, "name": "b"}]},
     "spec.ports[1]", "FieldValueDuplicate", None),
    ("Service", {"spec.ports": [{"port": 53, "protocol": "TCP", "targetPort": 53, "name": "a"},
                                {"port": 53, "protocol": "UDP", "targetPort": 53, "name": "b"}]}, None, None, None),
    ("Service", {"spec.ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                                {"port": 81, "protocol": "TCP", "targetPort": 81, "name": "b"}]},
     "spec.ports[0].name", "FieldValueRequired", "Required value"),
    ("Service", {"spec.ports": [{"port": 80, "protocol": "TCP", "targetPort": 80, "name": "a"},
                                {"port": 81, "protocol": "TCP", "targetPort": 81, "name": "a"}]},
     "spec.ports[1].name", "FieldValueDuplicate", 'Duplicate value: "a"'),
    ("Service", {"spec.ports.0.name": "HTTP"}, "spec.ports[0].name", "FieldValueInvalid",
     f'Invalid value: "HTTP": {DNS1123_LABEL_HELP}'),
    ("Service", {"spec.ports.0.targetPort": 0}, "spec.ports[0].targetPort", "FieldValueInvalid",
     "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("Service", {"spec.ports.0.targetPort": "http"}, None, None, None),
    ("Service", {"spec.ports.0.targetPort": "9376"}, "spec.ports[0].targetPort", "FieldValueInvalid",
     'Invalid value: "9376": must contain at least one letter (a-z)'),
    ("Service", {"spec.ports.0.targetPort": "a-very-long-port-name"}, "spec.ports[0].targetPort",
     "FieldValueInvalid", 'Invalid value: "a-very-long-port-name": must be no more than 15 characters'),
    ("Service", {"spec.type": "Foo"}, "spec.type", "FieldValueNotSupported",
     'Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ("Service", {"spec.ports.0.nodePort": 30080}, "spec.ports[0].nodePort", "FieldValueForbidden",
     "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("Service", {"spec.type": "NodePort", "spec.externalTrafficPolicy": "Cluster", "spec.ports.0.nodePort": 30080},
     None, None, None),
    ("Service", {"spec.type": "NodePort", "spec.externalTrafficPolicy": "Cluster", "spec.ports.0.nodePort": 70000},
     "spec.ports[0].nodePort", "FieldValueInvalid", None),
    ("Service", {"spec.clusterIP": "10.96.0.300"}, "spec.clusterIPs[0]", "FieldValueInvalid",
     'Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ("Service", {"spec.clusterIP": "10.96.0.20"}, None, None, None),
    ("Service", {"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.21"]}, "spec.clusterIPs",
     "FieldValueInvalid", 'Invalid value: []string{"10.96.0.21"}: first value must match `clusterIP`'),
    ("Service", {"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.20", "10.96.0.21"]},
     "spec.clusterIPs", "FieldValueInvalid", None),
    ("Service", {"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.20", "fd00:10:96::20"]},
     None, None, None),
    ("Service", {"spec.clusterIP": "10.96.0.20", "spec.ipFamilies": ["IPv6"]}, "spec.clusterIPs[0]",
     "FieldValueInvalid", 'Invalid value: "10.96.0.20": expected an IPv6 value as indicated by `ipFamilies[0]`'),
    ("Service", {"spec.ipFamilies": ["IPv5"]}, "spec.ipFamilies[0]", "FieldValueNotSupported", None),
    ("Service", {"spec.ipFamilyPolicy": "Dual"}, "spec.ipFamilyPolicy", "FieldValueNotSupported", None),
    ("Service", {"spec.type": "NodePort", "spec.clusterIP": "None"}, "spec.clusterIPs[0]", "FieldValueInvalid",
     'Invalid value: "None": may not be set to \'None\' for NodePort services'),
    ("Service", {"spec.selector": {"app": "a b"}}, "spec.selector", "FieldValueInvalid", None),
    ("Service", {"spec.sessionAffinity": "Sticky"}, "spec.sessionAffinity", "FieldValueNotSupported",
     'Unsupported value: "Sticky": supported values: "ClientIP", "None"'),
    ("Service", {"spec.sessionAffinity": DELETE}, "spec.sessionAffinity", "FieldValueRequired", None),
    ("Service", {"spec.sessionAffinity": "ClientIP"}, "spec.sessionAffinityConfig", "FieldValueRequired",
     "Required value: when session affinity type is ClientIP"),
    ("Service", {"spec.sessionAffinity": "ClientIP",
                 "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "FieldValueInvalid",
     "Invalid value: 0: must be greater than 0 and less than 86400"),
    ("Service", {"spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}, "spec.sessionAffinityConfig",
     "FieldValueForbidden", "Forbidden: must not be set when session affinity is None"),
    ("Service", {"spec.externalTrafficPolicy": "Local"}, "spec.externalTrafficPolicy", "FieldValueInvalid",
     'Invalid value: "Local": may only be set for externally-accessible services'),
    ("Service", {"spec.type": "NodePort"}, "spec.externalTrafficPolicy", "FieldValueRequired", None),
    ("Service", {"spec.type": "NodePort", "spec.externalTrafficPolicy": "Global"}, "spec.externalTrafficPolicy",
     "FieldValueNotSupported", 'Unsupported value: "Global": supported values: "Cluster", "Local"'),
    ("Service", {"spec.internalTrafficPolicy": "Node"}, "spec.internalTrafficPolicy", "FieldValueNotSupported", None),
    ("Service", {"spec.internalTrafficPolicy": DELETE}, "spec.internalTrafficPolicy", "FieldValueRequired", None),
    ("Service", {"spec.type": "LoadBalancer", "spec.externalTrafficPolicy": "Cluster"},
     "allocateLoadBalancerNodePorts", "FieldValueRequired", None),
    ("Service", {"spec.externalIPs": ["127.0.0.1"]}, "spec.externalIPs[0]", "FieldValueInvalid",
     'Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)'),
    ("Service", {"spec.type": "ExternalName", "spec.internalTrafficPolicy": DELETE, "spec.ports": [],
                 "spec.externalName": "example.com."}, None, None, None),
    ("Service", {"spec.type": "ExternalName", "spec.internalTrafficPolicy": DELETE}, "spec.externalName",
     "FieldValueRequired", "Required value"),
    ("Service", {"spec.type": "ExternalName", "spec.internalTrafficPolicy": DELETE, "spec.externalName": "a_b.com"},
     "spec.externalName", "FieldValueInvalid", None),
    ("Service", {"spec.type": "ExternalName", "spec.internalTrafficPolicy": DELETE, "spec.externalName": "a.com",
                 "spec.clusterIP": "10.96.0.9"}, "spec.clusterIPs", "FieldValueForbidden",
     "Forbidden: may not be set for ExternalName services"),
    # Pod
    ("Pod", {"spec.containers": []}, "spec.containers", "FieldValueRequired", "Required value"),
    ("Pod", {"spec.containers.0.name": "Web"}, "spec.containers[0].name", "FieldValueInvalid", None),
    ("Pod", {"spec.containers.0.name": ""}, "spec.containers[0].name", "FieldValueRequired", None),
    ("Pod", {"spec.initContainers": [{"name": "web", "image": "x", "imagePullPolicy": "Always",
                                      "terminationMessagePolicy": "File"}]},
     "spec.containers[0].name", "FieldValueDuplicate", 'Duplicate value: "web"'),
    ("Pod", {"spec.containers.0.image": ""}, "spec.containers[0].image", "FieldValueRequired", "Required value"),
    ("Pod", {"spec.containers.0.image": " nginx"}, "spec.containers[0].image", "FieldValueInvalid", None),
    ("Pod", {"spec.containers.0.ports.0.containerPort": 70000}, "spec.containers[0].ports[0].containerPort",
     "FieldValueInvalid", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("Pod", {"spec.containers.0.ports.0.containerPort": 0}, "spec.containers[0].ports[0].containerPort",
     "FieldValueRequired", None),
    ("Pod", {"spec.containers.0.ports.0.name": "http--x"}, "spec.containers[0].ports[0].name",
     "FieldValueInvalid", 'Invalid value: "http--x": must not contain consecutive hyphens'),
    ("Pod", {"spec.containers.0.ports": [{"name": "a", "containerPort": 80, "protocol": "TCP"},
                                         {"name": "a", "containerPort": 81, "protocol": "TCP"}]},
     "spec.containers[0].ports[1].name", "FieldValueDuplicate", None),
    ("Pod", {"spec.restartPolicy": "Sometimes"}, "spec.restartPolicy", "FieldValueNotSupported",
     'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("Pod", {"spec.dnsPolicy": "Cluster"}, "spec.dnsPolicy", "FieldValueNotSupported",
     'Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'),
    ("Pod", {"spec.dnsPolicy": "None"}, "spec.dnsConfig", "FieldValueRequired",
     "Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ("Pod", {"spec.dnsPolicy": "None", "spec.dnsConfig": {"searches": ["a.b"]}}, "spec.dnsConfig.nameservers",
     "FieldValueRequired", "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"),
    ("Pod", {"spec.dnsPolicy": "None", "spec.dnsConfig": {"nameservers": ["10.96.0.10"]}}, None, None, None),
    ("Pod", {"spec.dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]}},
     "spec.dnsConfig.nameservers", "FieldValueInvalid", None),
    ("Pod", {"spec.hostname": "web_0"}, "spec.hostname", "FieldValueInvalid", None),
    ("Pod", {"spec.subdomain": "hostnames"}, None, None, None),
    ("Pod", {"spec.subdomain": "a.b"}, "spec.subdomain", "FieldValueInvalid", None),
    ("Pod", {"spec.activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds", "FieldValueInvalid", None),
    ("Pod", {"spec.containers.0.readinessProbe.exec": {"command": ["true"]}},
     "spec.containers[0].readinessProbe.httpGet", "FieldValueForbidden",
     "Forbidden: may not specify more than 1 handler type"),
    ("Pod", {"spec.containers.0.readinessProbe.httpGet": DELETE}, "spec.containers[0].readinessProbe",
     "FieldValueRequired", "Required value: must specify a handler type"),
    ("Pod", {"spec.containers.0.readinessProbe.periodSeconds": -1},
     "spec.containers[0].readinessProbe.periodSeconds", "FieldValueInvalid",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("Pod", {"spec.containers.0.readinessProbe.httpGet.scheme": "FTP"},
     "spec.containers[0].readinessProbe.httpGet.scheme", "FieldValueNotSupported", None),
    ("Pod", {"spec.containers.0.livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}},
     "spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid", "Invalid value: 2: must be 1"),
    ("Pod", {"spec.containers.0.imagePullPolicy": "Sometimes"}, "spec.containers[0].imagePullPolicy",
     "FieldValueNotSupported", None),
    ("Pod", {"spec.tolerations": [{"operator": "Equal", "value": "x"}]}, "spec.tolerations[0].operator",
     "FieldValueInvalid", None),
    ("Pod", {"spec.tolerations": [{"key": "k", "operator": "Maybe"}]}, "spec.tolerations[0].operator",
     "FieldValueNotSupported", 'Unsupported value: "Maybe": supported values: "Equal", "Exists"'),
    ("Pod", {"spec.containers.0.ports.0.containerPort": "80"}, "spec.containers[0].ports[0].containerPort",
     "FieldValueInvalid", 'Invalid value: "80": must be an integer'),
    # Deployment / ReplicaSet
    ("Deployment", {"spec.selector": DELETE}, "spec.selector", "FieldValueRequired", "Required value"),
    ("Deployment", {"spec.selector": DELETE}, "spec.template.metadata.labels", "FieldValueInvalid", None),
    ("Deployment", {"spec.selector": {}}, "spec.selector", "FieldValueInvalid",
     "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
     "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"),
    ("Deployment", {"spec.template.metadata.labels": {"app": "other"}}, "spec.template.metadata.labels",
     "FieldValueInvalid", 'Invalid value: map[string]string{"app":"other"}: `selector` does not match template '
                          '`labels`'),
    ("Deployment", {"spec.selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}},
     "spec.selector.matchExpressions[0].operator", "FieldValueInvalid",
     'Invalid value: "Near": not a valid selector operator'),
    ("Deployment", {"spec.selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
     "spec.selector.matchExpressions[0].values", "FieldValueRequired", None),
    ("Deployment", {"spec.replicas": -1}, "spec.replicas", "FieldValueInvalid",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("Deployment", {"spec.template.spec.restartPolicy": "Never"}, "spec.template.spec.restartPolicy",
     "FieldValueNotSupported", 'Unsupported value: "Never": supported values: "Always"'),
    ("Deployment", {"spec.template.spec.containers.0.image": ""}, "spec.template.spec.containers[0].image",
     "FieldValueRequired", None),
    ("Deployment", {"spec.template.metadata.labels": {"app": "hostnames", "bad key": "x"}},
     "spec.template.labels", "FieldValueInvalid", None),
    ("Deployment", {"spec.strategy": {"type": "Canary"}}, "spec.strategy", "FieldValueNotSupported",
     'Unsupported value: apps.DeploymentStrategy{Type:"Canary", '
     'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate"'),
    ("Deployment", {"spec.strategy.rollingUpdate.maxSurge": 0, "spec.strategy.rollingUpdate.maxUnavailable": 0},
     "spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid",
     'Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0'),
    ("Deployment", {"spec.strategy.rollingUpdate.maxUnavailable": "120%"},
     "spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid", None),
    ("Deployment", {"spec.strategy.rollingUpdate.maxSurge": "lots"}, "spec.strategy.rollingUpdate.maxSurge",
     "FieldValueInvalid", None),
    ("Deployment", {"spec.strategy.type": "Recreate"}, "spec.strategy.rollingUpdate", "FieldValueForbidden",
     "Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ("Deployment", {"spec.minReadySeconds": 600}, "spec.progressDeadlineSeconds", "FieldValueInvalid",
     "Invalid value: 600: must be greater than minReadySeconds"),
    ("ReplicaSet", {"spec.selector": {}}, "spec.selector", "FieldValueInvalid", None),
    ("ReplicaSet", {"spec.template.spec.activeDeadlineSeconds": 5}, "spec.template.spec.activeDeadlineSeconds",
     "FieldValueForbidden", "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"),
    # StatefulSet
    ("StatefulSet", {"spec.serviceName": DELETE}, "spec.serviceName", "FieldValueRequired", "Required value"),
    ("StatefulSet", {"spec.serviceName": ""}, "spec.serviceName", "FieldValueRequired", "Required value"),
    ("StatefulSet", {"spec.podManagementPolicy": "Random"}, "spec.podManagementPolicy", "FieldValueInvalid",
     "Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"),
    ("StatefulSet", {"spec.template.metadata.labels": {"app": "x"}}, "spec.template.metadata.labels",
     "FieldValueInvalid", None),
    ("StatefulSet", {"spec.selector": {}}, "spec.selector", "FieldValueInvalid", None),
    ("StatefulSet", {"spec.updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}},
     "spec.updateStrategy.rollingUpdate", "FieldValueInvalid", None),
    ("StatefulSet", {"spec.updateStrategy.rollingUpdate.partition": -1}, "spec.updateStrategy.rollingUpdate.partition",
     "FieldValueInvalid", None),
    ("StatefulSet", {"spec.persistentVolumeClaimRetentionPolicy.whenScaled": "Keep"},
     "spec.persistentVolumeClaimRetentionPolicy.whenScaled", "FieldValueNotSupported",
     'Unsupported value: "Keep": supported values: "Retain", "Delete"'),
    ("StatefulSet", {"spec.template.spec.restartPolicy": "OnFailure"}, "spec.template.spec.restartPolicy",
     "FieldValueNotSupported", None),
    # Endpoints and EndpointSlices
    ("Endpoints", {"subsets.0.addresses.0.ip": "10.244.1"}, "subsets[0].addresses[0].ip", "FieldValueInvalid",
     'Invalid value: "10.244.1": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
    ("Endpoints", {"subsets.0.addresses.0.ip": "169.254.1.1"}, "subsets[0].addresses[0].ip", "FieldValueInvalid",
     'Invalid value: "169.254.1.1": may not be in the link-local range (169.254.0.0/16, fe80::/10)'),
    ("Endpoints", {"subsets.0.addresses": []}, "subsets[0]", "FieldValueRequired",
     "Required value: must specify `addresses` or `notReadyAddresses`"),
    ("Endpoints", {"subsets.0.ports.0.port": 0}, "subsets[0].ports[0].port", "FieldValueInvalid", None),
    ("Endpoints", {"subsets.0.ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "name": "b"}]},
     "subsets[0].ports[0].name", "FieldValueRequired", None),
    ("EndpointSlice", {"addressType": "IP"}, "addressType", "FieldValueNotSupported",
     'Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'),
    ("EndpointSlice", {"endpoints.0.addresses": ["fd00::1"]}, "endpoints[0].addresses[0]", "FieldValueInvalid",
     'Invalid value: "fd00::1": must be a valid IPv4 address'),
    ("EndpointSlice", {"endpoints.0.addresses": []}, "endpoints[0].addresses", "FieldValueRequired",
     "Required value: must contain at least 1 address"),
    ("EndpointSlice", {"addressType": "IPv6", "endpoints.0.addresses": ["fd00::1"]}, None, None, None),
    ("EndpointSlice", {"addressType": "FQDN", "endpoints.0.addresses": ["db.example.com"]}, None, None, None),
    ("EndpointSlice", {"endpoints": [{"addresses": [f"10.0.{i // 250}.{i % 250 + 1}"]} for i in range(1001)]},
     "endpoints", "FieldValueTooMany", "Too many: 1001: must have at most 1000 items"),
    ("EndpointSlice", {"ports": [{"name": f"p{i}", "port": 80, "protocol": "TCP"} for i in range(101)]},
     "ports", "FieldValueTooMany", "Too many: 101: must have at most 100 items"),
    ("EndpointSlice", {"ports": [{"name": "a", "port": 80, "protocol": "TCP"},
                                 {"name": "a", "port": 81, "protocol": "TCP"}]}, "ports[1].name",
     "FieldValueDuplicate", None),
    ("EndpointSlice", {"endpoints.0.hostname": "web.0"}, "endpoints[0].hostname", "FieldValueInvalid", None),
    # Namespace, Node, Event, Lease
    ("Namespace", {"spec.finalizers": ["custom"]}, "spec.finalizers", "FieldValueInvalid", None),
    ("Node", {"spec.podCIDRs": ["10.244.1.0/33"], "spec.podCIDR": "10.244.1.0/33"}, "spec.podCIDRs[0]",
     "FieldValueInvalid", None),
    ("Node", {"spec.taints": [{"key": "k", "effect": "Sometimes"}]}, "spec.taints[0].effect",
     "FieldValueNotSupported", None),
    ("Node", {"spec.taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}]},
     "spec.taints[1]", "FieldValueDuplicate", None),
    ("Event", {"involvedObject.namespace": "other"}, "involvedObject.namespace", "FieldValueInvalid",
     'Invalid value: "other": does not match event.namespace'),
    ("Event", {"metadata.name": "a/b"}, "metadata.name", "FieldValueInvalid", "Invalid value: \"a/b\": may not "
                                                                               "contain '/'"),
    ("Lease", {"spec.leaseDurationSeconds": 0}, "spec.leaseDurationSeconds", "FieldValueInvalid",
     "Invalid value: 0: must be greater than 0"),
    ("Lease", {"spec.leaseTransitions": -1}, "spec.leaseTransitions", "FieldValueInvalid", None),
]


def _case_id(case: tuple) -> str:
    kind, tweaks, field = case[0], case[1], case[2]
    return f"{kind}:{','.join(tweaks)}->{field or 'valid'}"


@pytest.mark.parametrize(("kind", "tweaks", "field", "reason", "message"), CREATE_CASES,
                         ids=[_case_id(c) for c in CREATE_CASES])
def test_create_rule(kind: str, tweaks: dict, field: str | None, reason: str | None, message: str | None) -> None:
    causes = causes_of(kind, manifest(kind, tweaks))
    if field is None:
        assert causes == []
        return
    matching = [c for c in causes if c[0] == field and c[1] == reason]
    assert matching, causes
    if message is not None:
        assert message in [c[2] for c in matching]


# (kind, tweaks on the old object, tweaks on the new object, field, reason, message or None)
UPDATE_CASES = [
    ("Service", {"spec.clusterIP": "10.96.0.20"}, {"spec.clusterIP": "10.96.0.21"}, "spec.clusterIPs[0]",
     "FieldValueInvalid", 'Invalid value: []string{"10.96.0.21"}: may not change once set'),
    ("Service", {"spec.clusterIP": "10.96.0.20"}, {"spec.clusterIP": "10.96.0.20"}, None, None, None),
    ("Service", {"spec.clusterIP": "10.96.0.20"}, {"spec.clusterIP": DELETE}, "spec.clusterIPs[0]",
     "FieldValueInvalid", None),
    ("Service", {"spec.clusterIP": "10.96.0.20"},
     {"spec.type": "ExternalName", "spec.externalName": "a.com", "spec.clusterIP": DELETE,
      "spec.internalTrafficPolicy": DELETE}, None, None, None),
    ("Service", {"spec.type": "ExternalName", "spec.externalName": "a.com", "spec.internalTrafficPolicy": DELETE},
     {"spec.type": "ClusterIP", "spec.externalName": DELETE, "spec.clusterIP": "10.96.0.30",
      "spec.internalTrafficPolicy": "Cluster"}, None, None, None),
    ("Service", {"spec.clusterIP": "10.96.0.20"},
     {"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.20", "fd00:10:96::20"],
      "spec.ipFamilyPolicy": "PreferDualStack"}, None, None, None),
    ("Service", {"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.20", "fd00:10:96::20"]},
     {"spec.clusterIP": "10.96.0.20", "spec.clusterIPs": ["10.96.0.20"]}, "spec.ipFamilyPolicy",
     "FieldValueInvalid", None),
    ("Service", {}, {"metadata.name": "renamed"}, "metadata.name", "FieldValueInvalid",
     'Invalid value: "renamed": field is immutable'),
    ("Service", {"metadata.uid": "u1"}, {"metadata.uid": "u2"}, "metadata.uid", "FieldValueInvalid", None),
    ("Service", {"metadata.uid": "u1"}, {}, None, None, None),
    ("Pod", {}, {"spec.containers.0.image": "nginx:1.26"}, None, None, None),
    ("Pod", {}, {"spec.restartPolicy": "Never"}, "spec", "FieldValueForbidden",
     "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
     "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
     "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"),
    ("Pod", {}, {"spec.containers.0.ports.0.containerPort": 8080}, "spec", "FieldValueForbidden", None),
    ("Pod", {}, {"spec.activeDeadlineSeconds": 30}, None, None, None),
    ("Pod", {"spec.activeDeadlineSeconds": 30}, {"spec.activeDeadlineSeconds": 60}, "spec.activeDeadlineSeconds",
     "FieldValueInvalid", "Invalid value: 60: must be less than or equal to previous value"),
    ("Pod", {"spec.activeDeadlineSeconds": 30}, {"spec.activeDeadlineSeconds": DELETE},
     "spec.activeDeadlineSeconds", "FieldValueInvalid", None),
    ("Pod", {}, {"spec.tolerations.2": {"key": "gpu", "operator": "Exists"}}, None, None, None),
    ("Pod", {}, {"spec.tolerations": []}, "spec.tolerations", "FieldValueForbidden",
     "Forbidden: existing toleration can not be modified except its tolerationSeconds"),
    ("Pod", {}, {"spec.containers": []}, "spec.containers", "FieldValueForbidden",
     "Forbidden: pod updates may not add or remove containers"),
    ("Deployment", {}, {"spec.selector": {"matchLabels": {"app": "other"}},
                        "spec.template.metadata.labels": {"app": "other"}}, "spec.selector", "FieldValueInvalid",
     'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"other"}, '
     'MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable'),
    ("Deployment", {}, {"spec.replicas": 5, "spec.template.spec.containers.0.image": "x:2"}, None, None, None),
    ("ReplicaSet", {}, {"spec.selector": {"matchLabels": {"app": "hostnames", "x": "y"}},
                        "spec.template.metadata.labels": {"app": "hostnames", "x": "y"}},
     "spec.selector", "FieldValueInvalid", None),
    ("StatefulSet", {}, {"spec.replicas": 5, "spec.updateStrategy.rollingUpdate.partition": 2,
                         "spec.template.spec.containers.0.image": "x:2", "spec.minReadySeconds": 3}, None, None, None),
    ("StatefulSet", {}, {"spec.serviceName": "other"}, "spec", "FieldValueForbidden",
     "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
     "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
    ("StatefulSet", {}, {"spec.podManagementPolicy": "Parallel"}, "spec", "FieldValueForbidden", None),
    ("EndpointSlice", {}, {"addressType": "IPv6", "endpoints.0.addresses": ["fd00::1"]}, "addressType",
     "FieldValueInvalid", 'Invalid value: "IPv6": field is immutable'),
    ("Node", {}, {"spec.podCIDR": "10.244.2.0/24", "spec.podCIDRs": ["10.244.2.0/24"]}, "spec.podCIDRs",
     "FieldValueForbidden", 'Forbidden: node updates may not change podCIDR except from "" to valid'),
    ("Node", {"spec": {}}, {}, None, None, None),
    ("Node", {"spec.providerID": "svcnet://node-1"}, {"spec.providerID": "svcnet://node-2"}, "spec.providerID",
     "FieldValueForbidden", None),
]


@pytest.mark.parametrize(("kind", "old_tweaks", "new_tweaks", "field", "reason", "message"), UPDATE_CASES,
                         ids=[f"{c[0]}:{','.join(c[2])}->{c[3] or 'valid'}" for c in UPDATE_CASES])
def test_update_rule(kind: str, old_tweaks: dict, new_tweaks: dict, field: str | None, reason: str | None,
                     message: str | None) -> None:
    old = manifest(kind, old_tweaks)
    new = copy.deepcopy(old)
    for path, value in new_tweaks.items():
        _set(new, path, value)
    causes = causes_of(kind, new, old)
    if field is None:
        assert causes == []
        return
    matching = [c for c in causes if c[0] == field and c[1] == reason]
    assert matching, causes
    if message is not None:
        assert message in [c[2] for c in matching]


def test_statefulset_without_service_name_is_rejected_as_kubectl_shows_it() -> None:
    causes = validate("StatefulSet", manifest("StatefulSet", {"spec.serviceName": DELETE}))
    error = invalid_error("StatefulSet", "hostnames", causes, group="apps")
    assert (error.code, error.message) == (
        422, 'StatefulSet.apps "hostnames" is invalid: spec.serviceName: Required value')


def test_service_port_out_of_range_reads_as_upstream() -> None:
    causes = validate("Service", manifest("Service", {"spec.ports.0.port": 70000}))
    assert invalid_error("Service", "hostnames", causes).message == (
        'Service "hostnames" is invalid: spec.ports[0].port: Invalid value: 70000: '
        "must be between 1 and 65535, inclusive")


def test_deployment_without_selector_reports_both_upstream_errors() -> None:
    causes = causes_of("Deployment", manifest("Deployment", {"spec.selector": DELETE}))
    assert [(c[0], c[1]) for c in causes] == [("spec.selector", "FieldValueRequired"),
                                             ("spec.template.metadata.labels", "FieldValueInvalid")]


def test_validate_never_modifies_the_object() -> None:
    obj = manifest("Service", {"spec.ports.0.port": 70000})
    before = copy.deepcopy(obj)
    validate("Service", obj, copy.deepcopy(obj))
    assert obj == before


@pytest.mark.parametrize("kind", sorted(BASES))
def test_garbage_shapes_do_not_crash_validation(kind: str) -> None:
    for junk in ({"spec": "x", "metadata": {"name": "a", "namespace": "b"}},
                 {"spec": {"ports": "x", "containers": [1], "selector": 3, "template": []}},
                 {}):
        assert isinstance(validate(kind, copy.deepcopy(junk)), list)


def test_unknown_kind_validates_clean() -> None:
    assert validate("Widget", {"metadata": {}}) == []


def test_at_most_one_owner_reference_is_the_controller():
    from svcnet.apiserver.validation import validate

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "default", "ownerReferences": [
               {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
               {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": True}]},
           "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Always",
                                    "terminationMessagePolicy": "File"}],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}
    causes = validate("Pod", pod)
    assert any(c.field == "metadata.ownerReferences" and "Only one reference can have Controller"
               in c.message for c in causes)
    pod["metadata"]["ownerReferences"][1]["controller"] = False
    assert not any(c.field.startswith("metadata.ownerReferences") for c in validate("Pod", pod))
