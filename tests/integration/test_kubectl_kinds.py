"""`kubectl get` of every kind svcnet serves prints upstream's columns, as the seed shows them."""
from __future__ import annotations

from tests.integration.apiserver_harness import ApiServerProcess

OBJECTS = """
apiVersion: v1
kind: Node
metadata:
  name: 192.168.0.106
  labels: {kubernetes.io/hostname: 192.168.0.106}
spec:
  podCIDR: 10.244.1.0/24
---
apiVersion: v1
kind: Pod
metadata:
  name: hostnames-7c89f997cf-pdg7p
  labels: {app: hostnames}
spec:
  nodeName: 192.168.0.106
  containers:
  - name: hostnames
    image: k8s.gcr.io/serve_hostname
    ports: [{containerPort: 9376}]
---
apiVersion: v1
kind: Endpoints
metadata:
  name: hostnames
subsets:
- addresses:
  - ip: 10.244.1.10
  - ip: 10.244.1.8
  - ip: 10.244.1.9
  ports:
  - name: default
    port: 9376
    protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hostnames-abcde
  labels: {kubernetes.io/service-name: hostnames}
addressType: IPv4
ports: [{name: default, port: 9376, protocol: TCP}]
endpoints:
- addresses: [10.244.1.8]
  conditions: {ready: true}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: hostnames-7c89f997cf
spec:
  replicas: 3
  selector: {matchLabels: {app: hostnames, pod-template-hash: 7c89f997cf}}
  template:
    metadata:
      labels: {app: hostnames, pod-template-hash: 7c89f997cf}
    spec:
      containers: [{name: hostnames, image: k8s.gcr.io/serve_hostname}]
---
apiVersion: v1
kind: Event
metadata:
  name: hostnames.1
involvedObject: {kind: Service, name: hostnames, namespace: default}
reason: Tested
message: an event for describe
type: Normal
count: 1
source: {component: test}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: node-lease
spec:
  holderIdentity: 192.168.0.106
"""


def header(server: ApiServerProcess, *args: str) -> list[str]:
    return server.kubectl("get", *args).stdout.splitlines()


def test_every_kind_prints_upstream_columns(apiserver, tmp_path):
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(OBJECTS)
    apiserver.kubectl("apply", "-f", str(manifest))
    # A pod's status comes from its node's agent, through the status subresource.
    pod = apiserver.kubectl_json("get", "pod", "hostnames-7c89f997cf-pdg7p")
    pod["status"] = {
        "phase": "Running", "podIP": "10.244.1.8", "podIPs": [{"ip": "10.244.1.8"}],
        "hostIP": "192.168.0.106",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "hostnames", "ready": True, "restartCount": 0,
                               "image": "k8s.gcr.io/serve_hostname", "imageID": "",
                               "state": {"running": {"startedAt": "2026-11-27T08:00:00Z"}}}],
    }
    status, body = apiserver.request(
        "PUT", "/api/v1/namespaces/default/pods/hostnames-7c89f997cf-pdg7p/status", pod)
    assert status == 200, body

    pods = header(apiserver, "pod", "-owide")
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                               "NOMINATED", "NODE", "READINESS", "GATES"]
    row = pods[1].split()
    assert row[:4] == ["hostnames-7c89f997cf-pdg7p", "1/1", "Running", "0"]
    assert row[5:] == ["10.244.1.8", "192.168.0.106", "<none>", "<none>"]

    ep = header(apiserver, "ep", "hostnames")
    assert ep[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert ep[1].split()[:2] == ["hostnames", "10.244.1.10:9376,10.244.1.8:9376,10.244.1.9:9376"]

    nodes = header(apiserver, "nodes")
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[0] == "192.168.0.106"

    slices = header(apiserver, "endpointslices")
    assert slices[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert slices[1].split()[:4] == ["hostnames-abcde", "IPv4", "9376", "10.244.1.8"]

    rs = header(apiserver, "rs")
    assert rs[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rs[1].split()[:4] == ["hostnames-7c89f997cf", "3", "0", "0"]

    events = header(apiserver, "events")
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "service/hostnames" in events[1] and "an event for describe" in events[1]

    leases = header(apiserver, "leases")
    assert leases[0].split() == ["NAME", "HOLDER", "AGE"]
    assert leases[1].split()[:2] == ["node-lease", "192.168.0.106"]

    status_of_ns = header(apiserver, "ns", "default")
    assert status_of_ns[1].split()[:2] == ["default", "Active"]


def test_server_side_apply_tracks_managers_and_reports_conflicts(apiserver, tmp_path):
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: k8s.gcr.io/serve_hostname
        ports: [{containerPort: 9376}]
""")
    out = apiserver.kubectl("apply", "--server-side", "-f", str(manifest)).stdout
    assert "deployment.apps/web serverside-applied" in out
    deploy = apiserver.kubectl_json("get", "deploy", "web", "--show-managed-fields")
    managers = {(m["manager"], m["operation"]) for m in deploy["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers

    apiserver.kubectl("scale", "deploy", "web", "--replicas=4")
    manifest.write_text(manifest.read_text().replace("replicas: 2", "replicas: 3"))
    conflict = apiserver.kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr and ".spec.replicas" in conflict.stderr
    assert apiserver.kubectl_json("get", "deploy", "web")["spec"]["replicas"] == 4

    apiserver.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    assert apiserver.kubectl_json("get", "deploy", "web")["spec"]["replicas"] == 3
