"""Validation of DaemonSets, ReplicationControllers, PersistentVolumes, claims, Ingresses and
IngressClasses, worded as kube-apiserver words it (validated after defaulting, as upstream)."""
from __future__ import annotations

import copy

from svcnet.apiserver.defaults import apply_defaults
from svcnet.apiserver.validation import validate

TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def defaulted(kind: str, obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    return obj


def messages(kind: str, obj: dict, old: dict | None = None) -> list[str]:
    return [f"{c.field}: {c.message}" for c in validate(kind, defaulted(kind, obj), old)]


def daemon_set(**spec) -> dict:
    return {"metadata": {"name": "ds", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": copy.deepcopy(TEMPLATE), **spec}}


def test_a_daemon_set_is_defaulted_as_upstream_and_valid():
    ds = defaulted("DaemonSet", daemon_set())
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert validate("DaemonSet", ds) == []


def test_daemon_set_rolling_update_needs_exactly_one_budget():
    both = daemon_set(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})
    assert messages("DaemonSet", both) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"]
    neither = daemon_set(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})
    assert messages("DaemonSet", neither) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]
    assert messages("DaemonSet", daemon_set(updateStrategy={"type": "Sometimes"})) == [
        'spec.updateStrategy: Unsupported value: "Sometimes": supported values: "OnDelete", "RollingUpdate"']


def test_daemon_set_template_must_restart_always_and_match_the_selector():
    ds = daemon_set()
    ds["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    ds["spec"]["template"]["metadata"]["labels"] = {"app": "y"}
    assert messages("DaemonSet", ds) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"y"}: '
        '`selector` does not match template `labels`',
        'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"']


def test_daemon_set_selector_is_immutable():
    old = defaulted("DaemonSet", daemon_set())
    new = daemon_set(selector={"matchLabels": {"app": "x", "tier": "t"}})
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "t"
    assert any(m.startswith("spec.selector: Invalid value") and m.endswith("field is immutable")
               for m in messages("DaemonSet", new, old))


def rc(**spec) -> dict:
    return {"metadata": {"name": "rc", "namespace": "default"}, "spec": {"template": copy.deepcopy(TEMPLATE), **spec}}


def test_a_replication_controllers_selector_and_labels_default_to_the_templates():
    obj = defaulted("ReplicationController", rc())
    assert obj["spec"]["selector"] == {"app": "x"} and obj["metadata"]["labels"] == {"app": "x"}
    assert obj["spec"]["replicas"] == 1
    assert validate("ReplicationController", obj) == []


def test_a_replication_controller_selector_must_match_its_template():
    assert messages("ReplicationController", rc(selector={"app": "y"})) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
        'selector does not match template labels']
    assert messages("ReplicationController", rc(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]


def pv(**spec) -> dict:
    base = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}
    return {"metadata": {"name": "pv"}, "spec": {**base, **spec}}


def test_a_persistent_volume_is_defaulted_and_needs_capacity_modes_and_one_source():
    obj = defaulted("PersistentVolume", pv())
    assert obj["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and obj["spec"]["volumeMode"] == "Filesystem"
    assert validate("PersistentVolume", obj) == []
    assert messages("PersistentVolume", pv(accessModes=[])) == ["spec.accessModes: Required value"]
    assert messages("PersistentVolume", pv(accessModes=["ReadWriteSometimes"])) == [
        'spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: '
        '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"']
    assert messages("PersistentVolume", pv(capacity={"storage": "0"})) == [
        'spec.capacity[storage]: Invalid value: "0": must be greater than zero']
    assert messages("PersistentVolume", pv(nfs={"server": "nas", "path": "/x"})) == [
        "spec.nfs: Forbidden: may not specify more than 1 volume type"]
    no_source = pv()
    del no_source["spec"]["hostPath"]
    assert messages("PersistentVolume", no_source) == ["spec: Required value: must specify a volume type"]
    nfs = pv(nfs={"server": "nas", "path": "relative"})
    del nfs["spec"]["hostPath"]
    assert messages("PersistentVolume", nfs) == ['spec.nfs.path: Invalid value: "relative": must be an absolute path']
    local = pv(local={"path": "/mnt/disk"})
    del local["spec"]["hostPath"]
    assert messages("PersistentVolume", local) == ["spec.nodeAffinity: Required value: Local volume requires node affinity"]
    csi = pv(csi={"driver": "d"})
    del csi["spec"]["hostPath"]
    assert messages("PersistentVolume", csi) == ["spec.csi.volumeHandle: Required value"]


def pvc(**spec) -> dict:
    base = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return {"metadata": {"name": "c", "namespace": "default"}, "spec": {**base, **spec}}


def test_a_claim_needs_modes_and_a_storage_request_and_keeps_its_spec():
    assert messages("PersistentVolumeClaim", pvc()) == []
    assert messages("PersistentVolumeClaim", pvc(accessModes=[])) == [
        "spec.accessModes: Required value: at least 1 access mode is required"]
    assert messages("PersistentVolumeClaim", pvc(resources={})) == ["spec.resources[storage]: Required value"]
    old = defaulted("PersistentVolumeClaim", pvc())
    assert messages("PersistentVolumeClaim", pvc(volumeName="pv"), old) == []  # the binder's write
    assert messages("PersistentVolumeClaim", pvc(accessModes=["ReadWriteMany"]), old) == [
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims"]


def ingress(**spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def path(path_value: str = "/", path_type: str = "Prefix", backend: dict | None = None) -> dict:
    return {"path": path_value, "pathType": path_type,
            "backend": {"service": {"name": "web", "port": {"number": 80}}} if backend is None else backend}


def rule(*paths: dict, host: str = "web.example.com") -> dict:
    return {"host": host, "http": {"paths": list(paths)}}


def test_an_ingress_needs_a_backend_or_rules_and_valid_paths():
    assert messages("Ingress", ingress(rules=[rule(path())])) == []
    assert messages("Ingress", ingress()) == [
        'spec: Invalid value: "": either `defaultBackend` or `rules` must be specified']
    assert messages("Ingress", ingress(rules=[rule(path("api"))])) == [
        'spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path']
    assert messages("Ingress", ingress(rules=[rule(path("/a//b", "Exact"))])) == [
        "spec.rules[0].http.paths[0].path: Invalid value: \"/a//b\": must not contain '//'"]
    assert messages("Ingress", ingress(rules=[rule(path(path_type=""))])) == [
        "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]
    assert messages("Ingress", ingress(rules=[rule(path(), host="10.0.0.1")])) == [
        'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address']
    assert messages("Ingress", ingress(rules=[rule(path(), host="*.example.com")])) == []


def test_an_ingress_backend_names_a_service_with_one_port_or_a_resource():
    both_ports = path(backend={"service": {"name": "web", "port": {"number": 80, "name": "http"}}})
    assert messages("Ingress", ingress(rules=[rule(both_ports)])) == [
        'spec.rules[0].http.paths[0].backend: Invalid value: "": cannot set both port name & port number']
    no_port = path(backend={"service": {"name": "web"}})
    assert messages("Ingress", ingress(rules=[rule(no_port)])) == [
        "spec.rules[0].http.paths[0].backend: Required value: port name or number is required"]
    neither = path(backend={})
    assert messages("Ingress", ingress(rules=[rule(neither)])) == [
        'spec.rules[0].http.paths[0].backend: Invalid value: "": resource or service backend is required']


def test_an_ingress_class_names_a_domain_prefixed_controller_that_never_changes():
    good = {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}
    assert messages("IngressClass", good) == []
    bad = {"metadata": {"name": "nginx"}, "spec": {"controller": "nginx"}}
    assert messages("IngressClass", bad) == [
        'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")']
    moved = {"metadata": {"name": "nginx"}, "spec": {"controller": "example.com/other"}}
    assert messages("IngressClass", moved, good) == [
        'spec.controller: Invalid value: "example.com/other": field is immutable']
