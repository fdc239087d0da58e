"""Server-side defaulting: each table row is (kind, manifest, path, expected value)."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.apiserver.defaults import apply_defaults, image_tag


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj.get(part) if isinstance(obj, dict) else None
    return obj


def _defaulted(kind: str, obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    return obj


POD = {"metadata": {"name": "p", "namespace": "default"},
       "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}],
                                "livenessProbe": {"httpGet": {"port": 80}},
                                "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 3}}]}}
SERVICE = {"metadata": {"name": "s", "namespace": "default"},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP",
                                                                        "targetPort": "dns"}]}}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}
DEPLOYMENT = {"metadata": {"name": "d", "namespace": "default"},
              "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}}
STATEFUL_SET = {"metadata": {"name": "s", "namespace": "default"},
                "spec": {"serviceName": "s", "selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}}


@pytest.mark.parametrize(("kind", "obj", "path", "expected"), [
    ("Namespace", {"metadata": {"name": "team"}}, "status.phase", "Active"),
    ("Namespace", {"metadata": {"name": "team"}}, "spec.finalizers", ["kubernetes"]),
    ("Namespace", {"metadata": {"name": "team"}, "spec": {"finalizers": []}}, "spec.finalizers", []),
    ("Namespace", {"metadata": {"name": "team"}}, "metadata.labels", {"kubernetes.io/metadata.name": "team"}),
    ("Node", {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}}}, "status.allocatable", {"cpu": "4"}),
    ("Pod", POD, "spec.restartPolicy", "Always"),
    ("Pod", POD, "spec.dnsPolicy", "ClusterFirst"),
    ("Pod", POD, "spec.terminationGracePeriodSeconds", 30),
    ("Pod", POD, "spec.schedulerName", "default-scheduler"),
    ("Pod", POD, "spec.securityContext", {}),
    ("Pod", POD, "spec.enableServiceLinks", True),
    ("Pod", POD, "spec.serviceAccountName", "default"),
    ("Pod", POD, "spec.serviceAccount", "default"),
    ("Pod", POD, "spec.priority", 0),
    ("Pod", POD, "spec.preemptionPolicy", "PreemptLowerPriority"),
    ("Pod", POD, "spec.tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]),
    ("Pod", POD, "spec.containers.0.imagePullPolicy", "Always"),
    ("Pod", POD, "spec.containers.0.terminationMessagePath", "/dev/termination-log"),
    ("Pod", POD, "spec.containers.0.terminationMessagePolicy", "File"),
    ("Pod", POD, "spec.containers.0.resources", {}),
    ("Pod", POD, "spec.containers.0.ports.0.protocol", "TCP"),
    ("Pod", POD, "spec.containers.0.livenessProbe", {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10,
        "successThreshold": 1, "failureThreshold": 3}),
    ("Pod", POD, "spec.containers.0.readinessProbe.periodSeconds", 3),
    ("Service", SERVICE, "spec.type", "ClusterIP"),
    ("Service", SERVICE, "spec.sessionAffinity", "None"),
    ("Service", SERVICE, "spec.internalTrafficPolicy", "Cluster"),
    ("Service", SERVICE, "spec.externalTrafficPolicy", None),
    ("Service", SERVICE, "spec.ports.0.protocol", "TCP"),
    ("Service", SERVICE, "spec.ports.0.targetPort", 80),
    ("Service", SERVICE, "spec.ports.1.targetPort", "dns"),
    ("Service", SERVICE, "spec.ports.1.protocol", "UDP"),
    ("Service", SERVICE, "spec.clusterIP", None),
    ("Service", SERVICE, "spec.ipFamilyPolicy", None),
    ("Service", {"spec": {"type": "NodePort", "ports": [{"port": 80}]}}, "spec.externalTrafficPolicy", "Cluster"),
    ("Service", {"spec": {"type": "LoadBalancer"}}, "spec.allocateLoadBalancerNodePorts", True),
    ("Service", {"spec": {"externalIPs": ["1.2.3.4"]}}, "spec.externalTrafficPolicy", "Cluster"),
    ("Service", {"spec": {"type": "ExternalName", "externalName": "x.com"}}, "spec.internalTrafficPolicy", None),
    ("Service", {"spec": {"sessionAffinity": "ClientIP"}}, "spec.sessionAffinityConfig",
     {"clientIP": {"timeoutSeconds": 10800}}),
    ("Service", {"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}},
     "spec.sessionAffinityConfig", None),
    ("Endpoints", {"subsets": [{"ports": [{"port": 80}]}]}, "subsets.0.ports.0.protocol", "TCP"),
    ("EndpointSlice", {"addressType": "IPv4", "ports": [{"port": 80}]}, "ports.0", {"port": 80, "name": "",
                                                                                    "protocol": "TCP"}),
    ("EndpointSlice", {"endpoints": [{"addresses": ["10.0.0.1"]}]}, "endpoints.0", {"addresses": ["10.0.0.1"]}),
    ("Deployment", DEPLOYMENT, "spec.replicas", 1),
    ("Deployment", DEPLOYMENT, "spec.strategy", {"type": "RollingUpdate",
                                                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
    ("Deployment", {"spec": {"strategy": {"type": "Recreate"}}}, "spec.strategy", {"type": "Recreate"}),
    ("Deployment", DEPLOYMENT, "spec.revisionHistoryLimit", 10),
    ("Deployment", DEPLOYMENT, "spec.progressDeadlineSeconds", 600),
    ("Deployment", DEPLOYMENT, "spec.template.spec.restartPolicy", "Always"),
    ("Deployment", DEPLOYMENT, "spec.template.spec.containers.0.imagePullPolicy", "IfNotPresent"),
    ("Deployment", DEPLOYMENT, "spec.template.spec.enableServiceLinks", None),
    ("Deployment", DEPLOYMENT, "spec.template.spec.tolerations", None),
    ("ReplicaSet", DEPLOYMENT, "spec.replicas", 1),
    ("ReplicaSet", DEPLOYMENT, "spec.template.spec.dnsPolicy", "ClusterFirst"),
    ("StatefulSet", STATEFUL_SET, "spec.replicas", 1),
    ("StatefulSet", STATEFUL_SET, "spec.podManagementPolicy", "OrderedReady"),
    ("StatefulSet", STATEFUL_SET, "spec.updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    ("StatefulSet", {"spec": {"updateStrategy": {"type": "OnDelete"}}}, "spec.updateStrategy", {"type": "OnDelete"}),
    ("StatefulSet", STATEFUL_SET, "spec.revisionHistoryLimit", 10),
    ("StatefulSet", STATEFUL_SET, "spec.persistentVolumeClaimRetentionPolicy",
     {"whenDeleted": "Retain", "whenScaled": "Retain"}),
    ("StatefulSet", STATEFUL_SET, "spec.template.spec.schedulerName", "default-scheduler"),
    ("Event", {"reason": "x"}, "type", None),
    ("Lease", {"spec": {}}, "spec", {}),
])
def test_apply_defaults_sets_upstream_default(kind: str, obj: dict, path: str, expected: Any) -> None:
    assert _get(_defaulted(kind, obj), path) == expected


@pytest.mark.parametrize(("kind", "obj", "path"), [
    ("Pod", {"spec": {"restartPolicy": "Never", "containers": []}}, "spec.restartPolicy"),
    ("Pod", {"spec": {"terminationGracePeriodSeconds": 0}}, "spec.terminationGracePeriodSeconds"),
    ("Pod", {"spec": {"enableServiceLinks": False}}, "spec.enableServiceLinks"),
    ("Pod", {"spec": {"serviceAccountName": "robot"}}, "spec.serviceAccountName"),
    ("Service", {"spec": {"type": "NodePort", "externalTrafficPolicy": "Local"}}, "spec.externalTrafficPolicy"),
    ("Deployment", {"spec": {"replicas": 0}}, "spec.replicas"),
    ("Deployment", {"spec": {"revisionHistoryLimit": 0}}, "spec.revisionHistoryLimit"),
    ("StatefulSet", {"spec": {"podManagementPolicy": "Parallel"}}, "spec.podManagementPolicy"),
])
def test_apply_defaults_keeps_values_the_user_set(kind: str, obj: dict, path: str) -> None:
    assert _get(_defaulted(kind, obj), path) == _get(obj, path)


@pytest.mark.parametrize(("image", "policy"), [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    ("localhost:5000/busybox", "Always"),
    ("localhost:5000/busybox:1.0", "IfNotPresent"),
    ("busybox@sha256:abc", "IfNotPresent"),
    ("k8s.gcr.io/serve_hostname", "Always"),
])
def test_image_pull_policy_follows_the_image_tag(image: str, policy: str) -> None:
    pod = _defaulted("Pod", {"spec": {"containers": [{"name": "c", "image": image}]}})
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_image_tag_of_registry_with_port_and_no_tag_is_latest() -> None:
    assert image_tag("registry:5000/team/app") == "latest"


def test_existing_not_ready_toleration_is_not_duplicated() -> None:
    mine = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 10}
    pod = _defaulted("Pod", {"spec": {"containers": [], "tolerations": [mine]}})
    keys = [t["key"] for t in pod["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    assert pod["spec"]["tolerations"][0]["tolerationSeconds"] == 10


def test_host_network_pod_gets_host_ports_equal_to_container_ports() -> None:
    pod = _defaulted("Pod", {"spec": {"hostNetwork": True,
                                      "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 53}]}]}})
    assert pod["spec"]["containers"][0]["ports"][0]["hostPort"] == 53


def test_pod_requests_default_to_limits() -> None:
    pod = _defaulted("Pod", {"spec": {"containers": [{"name": "c", "image": "x",
                                                      "resources": {"limits": {"cpu": "1"}}}]}})
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1"}


def test_defaulting_twice_changes_nothing() -> None:
    for kind, obj in (("Pod", POD), ("Service", SERVICE), ("Deployment", DEPLOYMENT), ("StatefulSet", STATEFUL_SET)):
        once = _defaulted(kind, obj)
        assert _defaulted(kind, once) == once


def test_unknown_kind_is_left_untouched() -> None:
    assert _defaulted("ConfigMap", {"data": {}}) == {"data": {}}


def test_secret_type_defaults_to_opaque_and_an_explicit_one_stays():
    assert _defaulted("Secret", {"metadata": {"name": "s"}})["type"] == "Opaque"
    assert _defaulted("Secret", {"type": "kubernetes.io/tls"})["type"] == "kubernetes.io/tls"


def test_secret_string_data_is_merged_into_data_winning_and_never_kept():
    secret = _defaulted("Secret", {"data": {"a": "b2xk", "b": "Yg=="}, "stringData": {"a": "new", "c": ""}})
    assert secret["data"] == {"a": "bmV3", "b": "Yg==", "c": ""}
    assert "stringData" not in secret
    assert "stringData" not in _defaulted("Secret", {"stringData": {}})
