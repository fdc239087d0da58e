"""kubectl against the kinds of its default prune allowlist that svcnet added for it (PersistentVolume,
PersistentVolumeClaim, ReplicationController, DaemonSet, Ingress, IngressClass): get's columns,
describe, create/apply/delete, and `kubectl apply --prune -l app=x -f dir/` with the default
allowlist (no --prune-allowlist), which needs every kind on that list to be served.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  labels: {app: x}
spec:
  ingressClassName: nginx
  tls:
  - hosts: [web.example.com]
    secretName: web-tls
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port: {number: 80}
"""

INGRESS_CLASS = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
"""

PV = """\
apiVersion: v1
kind: PersistentVolume
metadata:
  name: vol
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/vol}
"""

PVC = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  labels: {app: x}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 1Gi}
"""

DAEMON_SET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  labels: {app: x}
spec:
  selector:
    matchLabels: {name: agent}
  template:
    metadata:
      labels: {name: agent}
    spec:
      nodeSelector: {role: edge}
      containers:
      - name: agent
        image: busybox
"""

RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
  labels: {app: x}
spec:
  replicas: 0
  selector: {name: web}
  template:
    metadata:
      labels: {name: web}
    spec:
      containers:
      - name: web
        image: nginx
"""

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: x}
data: {mode: fast}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: x}
spec:
  selector: {name: web}
  ports:
  - port: 80
"""


def header(server: ApiServerProcess, *args: str) -> list[str]:
    """The column titles (kubectl pads them with two or more spaces; a title may hold one)."""
    return re.split(r" {2,}", server.kubectl("get", *args).stdout.splitlines()[0].strip())


def test_get_shows_upstreams_columns_for_each_kind(apiserver: ApiServerProcess) -> None:
    server = apiserver
    for manifest in (INGRESS_CLASS, INGRESS, PV, PVC, DAEMON_SET, RC):
        server.kubectl("apply", "-f", "-", input=manifest)
    assert header(server, "ing") == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert server.kubectl("get", "ing", "web", "--no-headers").stdout.split()[:4] == [
        "web", "nginx", "web.example.com", "80,"]
    assert header(server, "ingressclass") == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert header(server, "pv") == ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
                                    "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
    assert header(server, "pvc") == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                                     "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert header(server, "ds") == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                                    "NODE SELECTOR", "AGE"]
    assert server.kubectl("get", "ds", "agent", "--no-headers").stdout.split()[6] == "role=edge"
    assert header(server, "rc") == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert header(server, "rc", "-o", "wide") == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS",
                                                  "IMAGES", "SELECTOR"]
    # Without a binder running, a new volume and claim stay Pending, as upstream before its first sync.
    assert server.kubectl("get", "pvc", "data", "--no-headers").stdout.split()[:2] == ["data", "Pending"]
    for kind, name in (("ing", "web"), ("ingressclass", "nginx"), ("pv", "vol"), ("pvc", "data"),
                       ("ds", "agent"), ("rc", "web")):
        described = server.kubectl("describe", kind, name).stdout
        assert "Name:" in described and name in described, (kind, described)


def test_validation_refuses_with_upstreams_messages(apiserver: ApiServerProcess) -> None:
    server = apiserver
    bad_path = INGRESS.replace("pathType: Prefix", "pathType: Regex")
    result = server.kubectl("apply", "-f", "-", input=bad_path, check=False)
    assert result.returncode != 0
    assert ('spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: '
            '"Exact", "ImplementationSpecific", "Prefix"') in result.stderr
    two_sources = PV.replace("  hostPath: {path: /tmp/vol}", "  hostPath: {path: /tmp/vol}\n"
                                                            "  nfs: {server: nas, path: /x}")
    result = server.kubectl("apply", "-f", "-", input=two_sources, check=False)
    assert "spec.nfs: Forbidden: may not specify more than 1 volume type" in result.stderr
    surge_and_unavailable = DAEMON_SET.replace("spec:\n  selector:", "spec:\n  updateStrategy:\n"
                                               "    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}\n  selector:")
    result = server.kubectl("apply", "-f", "-", input=surge_and_unavailable, check=False)
    assert ("spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: "
            "may not be set when maxUnavailable is non-zero") in result.stderr
    for kind in ("ing", "pv", "ds"):
        assert "No resources found" in server.kubectl("get", kind).stderr


def test_apply_prune_with_the_default_allowlist_deletes_what_left_the_directory(
        apiserver: ApiServerProcess, tmp_path: Path) -> None:
    server = apiserver
    manifests = {"configmap.yaml": CONFIG_MAP, "service.yaml": SERVICE, "ingress.yaml": INGRESS,
                 "pvc.yaml": PVC, "daemonset.yaml": DAEMON_SET, "rc.yaml": RC}
    for name, text in manifests.items():
        (tmp_path / name).write_text(text)
    first = server.kubectl("apply", "--prune", "-l", "app=x", "-f", str(tmp_path)).stdout
    assert "configmap/settings created" in first and "ingress.networking.k8s.io/web created" in first
    (tmp_path / "configmap.yaml").unlink()
    (tmp_path / "ingress.yaml").unlink()
    second = server.kubectl("apply", "--prune", "-l", "app=x", "-f", str(tmp_path)).stdout
    assert "configmap/settings pruned" in second
    assert "ingress.networking.k8s.io/web pruned" in second
    assert server.kubectl("get", "cm", "settings", check=False).returncode != 0
    assert server.kubectl("get", "ing", "web", check=False).returncode != 0
    for kind, name in (("svc", "web"), ("pvc", "data"), ("ds", "agent"), ("rc", "web")):
        server.kubectl("get", kind, name)
    # An object without the label is never pruned, even when it is not in the directory.
    server.kubectl("create", "configmap", "unlabelled")
    server.kubectl("apply", "--prune", "-l", "app=x", "-f", str(tmp_path))
    server.kubectl("get", "cm", "unlabelled")


def test_kubectl_create_ingress_sends_protobuf_that_decodes_to_what_kubectl_prints(apiserver: ApiServerProcess) -> None:
    server = apiserver
    args = ("create", "ingress", "simple", "--class=nginx", "--rule=foo.com/bar*=svc1:8080,tls=my-cert",
            "--rule=/exact=svc2:http", "--default-backend=svc3:80", "--annotation=a=b")
    printed = json.loads(server.kubectl(*args, "--dry-run=client", "-o", "json").stdout)
    assert "ingress.networking.k8s.io/simple created" in server.kubectl(*args).stdout
    stored = server.kubectl_json("get", "ing", "simple")
    assert stored["spec"] == printed["spec"]
    assert stored["metadata"]["annotations"] == {"a": "b"}
    assert stored["status"] == {"loadBalancer": {}}
