"""Tables of PersistentVolumes, claims, ReplicationControllers, DaemonSets, Ingresses and IngressClasses,
with kube-apiserver's columns and cells."""
from __future__ import annotations

import datetime as dt

from svcnet.api.resources import lookup_kind
from svcnet.apiserver import printers as tables

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
CREATED = "2024-05-01T11:00:00Z"


def table(api_version: str, kind: str, obj: dict) -> tuple[list[str], list]:
    res = lookup_kind(api_version, kind)
    assert res is not None
    md = {"name": "x", "creationTimestamp": CREATED, **obj.pop("metadata", {})}
    out = tables.to_table(res, [{"metadata": md, **obj}], now=NOW)
    return [c["name"] for c in out["columnDefinitions"]], out["rows"][0]["cells"]


def test_persistent_volume_shows_capacity_modes_policy_phase_and_claim():
    columns, cells = table("v1", "PersistentVolume", {
        "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "slow", "volumeMode": "Filesystem",
                 "claimRef": {"namespace": "default", "name": "data"}},
        "status": {"phase": "Bound"}})
    assert columns == ["Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim", "StorageClass",
                       "VolumeAttributesClass", "Reason", "Age", "VolumeMode"]
    assert cells == ["x", "5Gi", "RWO,RWX", "Retain", "Bound", "default/data", "slow", "<unset>", "", "60m",
                     "Filesystem"]
    deleting = table("v1", "PersistentVolume", {"metadata": {"deletionTimestamp": CREATED},
                                                "spec": {}, "status": {"phase": "Bound"}})[1]
    assert deleting[4] == "Terminating"


def test_a_claims_capacity_and_modes_show_once_it_names_a_volume():
    pending = table("v1", "PersistentVolumeClaim", {
        "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Pending"}})
    assert pending == (["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass",
                        "VolumeAttributesClass", "Age", "VolumeMode"],
                       ["x", "Pending", "", "", "", "", "<unset>", "60m", "<unset>"])
    bound = table("v1", "PersistentVolumeClaim", {
        "spec": {"volumeName": "pv1", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOncePod"], "capacity": {"storage": "1Gi"}}})[1]
    assert bound == ["x", "Bound", "pv1", "1Gi", "RWOP", "", "<unset>", "60m", "Filesystem"]


def test_replication_controller_counts_and_its_plain_selector():
    assert table("v1", "ReplicationController", {
        "spec": {"replicas": 3, "selector": {"app": "web"},
                 "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"replicas": 2, "readyReplicas": 1}}) == (
        ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"],
        ["x", 3, 2, 1, "60m", "web", "nginx", "app=web"])


def test_daemon_set_counts_and_node_selector():
    assert table("apps/v1", "DaemonSet", {
        "spec": {"selector": {"matchLabels": {"app": "a"}},
                 "template": {"spec": {"nodeSelector": {"role": "edge"},
                                       "containers": [{"name": "a", "image": "busybox"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 1, "numberAvailable": 2}}) == (
        ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age",
         "Containers", "Images", "Selector"],
        ["x", 3, 3, 2, 1, 2, "role=edge", "60m", "a", "busybox", "app=a"])


def test_ingress_shows_class_hosts_address_and_ports():
    rules = [{"host": h} for h in ("a.example", "", "b.example", "c.example", "d.example")]
    columns, cells = table("networking.k8s.io/v1", "Ingress", {
        "spec": {"ingressClassName": "nginx", "rules": rules, "tls": [{"hosts": ["a.example"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.0.10"}, {"hostname": "lb.example"}]}}})
    assert columns == ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    # formatHosts skips empty hosts but counts rules: three shown, "+ 2 more" for five rules less three.
    assert cells == ["x", "nginx", "a.example,b.example,c.example + 2 more...", "192.168.0.10,lb.example", "80, 443", "60m"]
    assert table("networking.k8s.io/v1", "Ingress", {"spec": {}})[1] == ["x", "<none>", "*", "", "80", "60m"]


def test_ingress_class_shows_its_controller_and_parameters():
    assert table("networking.k8s.io/v1", "IngressClass", {
        "spec": {"controller": "k8s.io/ingress-nginx",
                 "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}) == (
        ["Name", "Controller", "Parameters", "Age"],
        ["x", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/p", "60m"])
