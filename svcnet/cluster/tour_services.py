"""`svcnet walkthrough --extended`: every kind of Service at work on the running cluster, one numbered step each.

The seed's tour (`svcnet walkthrough`) shows a ClusterIP and a NodePort Service.
This second tour shows the rest of the Service API, each step with the commands
a user would type (kubectl, curl and nslookup from a pod or from the client
namespace, iptables or nft in a node) and their real output: see STEPS.

Three serve_hostname pods are the tour's backends for every step: tour-1a and
tour-1b on node-1, tour-2 on node-2; tour-1b serves on 9377 instead of 9376,
with the same port name `web`, so each Service that targets `web` shows named
target ports at work. Every object a step uses is applied at the start (so the
pods all start together), and deleted when the step ends; the tour's pods go
at the end, so the tour can run again on the same cluster.

A step is a `Step`: a title, the objects it needs (YAML, labelled
`svcnet-tour: services`) and a function that shows it. Another step (say, a
LoadBalancer Service once the cluster has a load balancer) is one more Step in
STEPS, or one passed to `ServicesTour(..., steps=...)`.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from svcnet.api.objects import is_pod_ready, name_of
from svcnet.cluster.spec import load_cluster_spec
from svcnet.cluster.walkthrough import Walkthrough, WalkthroughError
from svcnet.config import DEFAULT_DATA_DIR

TOUR_LABEL = "svcnet-tour=services"
TOUR_PODS = "app=tour"
LEFTOVER_KINDS = "deployments,pods,services,endpoints,endpointslices"  # what a tour that was cut short may leave
POD_NAMES = ("tour-1a", "tour-1b", "tour-2")
CURL_TIMEOUT_EXIT = 28  # curl's "operation timed out": the packet was dropped (a refused connection is 7)
ZONE_LABEL = "topology.kubernetes.io/zone"
LOOP_LIMIT_SECONDS = 180  # the rolling update's curl loop, at most (it stops as soon as the update is over)
ROLLING_PRESTOP_SECONDS = 5  # long enough for every proxy to drop a deleted pod before it stops serving

# Answers every GET with the address the connection came from (the externalTrafficPolicy step).
CLIENT_IP_SERVER = (
    "import http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = self.client_address[0].encode() + b'\\n'\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args): pass\n"
    "http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()\n")
# A pod spec's `containers:` (YAML flow style, one line): CLIENT_IP_SERVER, Ready once it listens on 8080.
CLIENT_IP_CONTAINERS = (f'[{{name: clientip, image: busybox, command: ["python3", "-c", {json.dumps(CLIENT_IP_SERVER)}], '
                        'readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}}]')


def backend_pod(name: str, node: str, port: int) -> str:
    # args replace the image's cmd (--udp, which also answers datagrams), so a port of its own restates it.
    args = f'\n    args: ["-port={port}", "--udp"]' if port != 9376 else ""
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: tour, node: {node}, svcnet-tour: services}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: hostnames
    image: registry.k8s.io/serve_hostname{args}
    ports:
    - {{name: web, containerPort: {port}}}
    - {{name: echo, containerPort: {port}, protocol: UDP}}
    readinessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1}}
"""


TOUR_PODS_YAML = "---\n".join([backend_pod("tour-1a", "node-1", 9376), backend_pod("tour-1b", "node-1", 9377),
                               backend_pod("tour-2", "node-2", 9376)])


@dataclass(frozen=True)
class Step:
    title: str
    objects: str  # YAML applied before the steps run and deleted when this step ends ("" for none)
    show: Callable[[ServicesTour], None]


class ServicesTour(Walkthrough):
    def __init__(self, data_dir: Path, examples: Path, steps: Sequence[Step] | None = None) -> None:
        super().__init__(data_dir, examples)
        self.steps = list(STEPS if steps is None else steps)
        self.mode = ""

    # ---- what the steps share
    def kubectl(self, *args: str, show: bool = True, check: bool = True) -> str:
        """As the seed tour's, but the command is shown quoted as a shell needs it (jsonpath, selectors)."""
        return self.run(["kubectl", *args], shlex.join(["kubectl", *args]) if show else None, check=check)

    def kubectl_in(self, pod: str, script: str, check: bool = False) -> str:
        """`kubectl exec POD -- sh -c SCRIPT`, shown as the user would type it."""
        return self.run(["kubectl", "exec", pod, "--", "sh", "-c", script],
                        show=f"kubectl exec {pod} -- sh -c {shlex.quote(script)}", check=check)

    def in_node_sh(self, node: int, script: str) -> str:
        """A shell pipeline in a node's namespace (iptables-save | grep ...), shown as typed there."""
        return self.in_node(node, "sh", "-c", script, show=script)

    def in_client(self, script: str, show: bool = True) -> str:
        ns = self.plan.client.namespace
        return self.in_namespace(ns, "the client namespace, outside the cluster", "sh", "-c", script,
                                 show=script if show else None)

    def node_ip(self, node: int) -> str:
        return self.plan.nodes[node].ipv4

    def cluster_ip(self, service: str) -> str:
        return self.kubectl_json("get", "svc", service)["spec"]["clusterIP"]

    def answers(self, pod: str, url: str, count: int) -> set[str]:
        """The hostnames that answered count curls from pod (not shown: for waiting on the rules)."""
        script = f"for i in $(seq {count}); do curl -s --max-time 1 {url}; echo; done"
        out = self.run(["kubectl", "exec", pod, "--", "sh", "-c", script])
        return {line.strip() for line in out.splitlines() if line.strip()}

    def wait_answers(self, pod: str, url: str, want: set[str], count: int = 20) -> None:
        """Until curls from pod reach exactly the pods in want (every node's proxy has synced)."""
        self.wait_for(f"curl {url} from {pod} to reach {sorted(want)}",
                      lambda: self.answers(pod, url, count) == want, timeout=60)

    def curl_counts(self, pod: str, url: str, count: int = 20) -> str:
        return self.kubectl_in(pod, f"for i in $(seq {count}); do curl -s {url}; echo; done | sort | uniq -c")

    def ready_endpoints(self, service: str) -> list[dict]:
        slices = self.kubectl_json("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}")
        return [e for s in slices["items"] for e in s.get("endpoints") or [] if e["conditions"].get("ready")]

    def delete(self, objects: str) -> None:
        """Without waiting for pods to stop: the next run waits for them instead (start)."""
        self.run(["kubectl", "delete", "-f", "-", "--ignore-not-found", "--wait=false"], input=objects, check=True)

    # ---- the tour
    def main(self) -> None:
        if len(self.plan.nodes) < 2:
            # Every step contrasts node-1 with node-2 (a pod there or not, a zone each).
            raise WalkthroughError(f"svcnet walkthrough --extended: needs two nodes, this cluster has "
                                   f"{len(self.plan.nodes)}: start one with svcnet up --nodes 2")
        self.mode = self.in_node(0, "curl", "-s", "--max-time", "2", "127.0.0.1:10249/proxyMode", show=None).strip()
        try:
            self.start()
            for number, step in enumerate(self.steps, start=1):
                print(f"== {number}. {step.title}\n")
                try:
                    step.show(self)
                finally:
                    if step.objects:
                        self.delete(step.objects)
        finally:
            # Whatever is left: the tour's pods, and a step's objects if the tour stopped before that step ended.
            self.run(["kubectl", "delete", LEFTOVER_KINDS, "-l", TOUR_LABEL, "--wait=false"], check=True)
        print("The tour's objects are deleted; run it again with: svcnet walkthrough --extended"
              + ("" if self.data_dir == DEFAULT_DATA_DIR else f" --data-dir {self.data_dir}"))

    def start(self) -> None:
        """A previous tour's objects gone, then every step's objects applied and the three pods Ready."""
        self.run(["kubectl", "delete", LEFTOVER_KINDS, "-l", TOUR_LABEL, "--wait=false"], check=True)
        self.wait_for("a previous tour's pods to go", lambda: not self.kubectl_json(
            "get", "pods", "-l", TOUR_LABEL)["items"], timeout=120)
        print(f"== 0. the tour's pods: serve_hostname on both nodes ({self.mode} mode)\n")
        objects = "---\n".join([TOUR_PODS_YAML, *(s.objects for s in self.steps if s.objects)])
        self.run(["kubectl", "apply", "-f", "-"], input=objects, check=True)
        self.ready_pods(TOUR_PODS, len(POD_NAMES))
        self.kubectl("get", "pods", "-l", TOUR_PODS, "-o",
                     "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP,"
                     "PORT:.spec.containers[0].ports[0].containerPort,PORT-NAME:.spec.containers[0].ports[0].name")


def pod_ready(tour: ServicesTour, name: str) -> bool:
    pods = tour.kubectl_json("get", "pods", "--field-selector", f"metadata.name={name}")["items"]
    return bool(pods) and is_pod_ready(pods[0])


# ---- 1. externalTrafficPolicy: Local

ETP_OBJECTS = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: clientip
  labels: {{app: clientip, svcnet-tour: services}}
spec:
  nodeSelector: {{kubernetes.io/hostname: node-1}}
  containers: {CLIENT_IP_CONTAINERS}
---
apiVersion: v1
kind: Service
metadata:
  name: etp-local
  labels: {{svcnet-tour: services}}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/none   # no load balancer takes it: the health check port is the point here
  externalTrafficPolicy: Local
  selector: {{app: clientip}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: etp-cluster
  labels: {{svcnet-tour: services}}
spec:
  type: NodePort
  selector: {{app: clientip}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def external_traffic_policy(tour: ServicesTour) -> None:
    print("A pod that answers with the address it sees the request come from, on node-1 only, behind two\n"
          "Services: etp-local (externalTrafficPolicy: Local) and etp-cluster (the default, Cluster).\n")
    tour.wait_for("the clientip pod Ready", lambda: pod_ready(tour, "clientip"), timeout=120)
    tour.kubectl("get", "svc", "etp-local", "etp-cluster")
    tour.run(["sh", "-c", "kubectl describe svc etp-local | grep -E 'Traffic Policy|HealthCheck'"],
             show="kubectl describe svc etp-local | grep -E 'Traffic Policy|HealthCheck'")
    local = tour.kubectl_json("get", "svc", "etp-local")["spec"]
    cluster = tour.kubectl_json("get", "svc", "etp-cluster")["spec"]
    local_port, cluster_port = local["ports"][0]["nodePort"], cluster["ports"][0]["nodePort"]
    health = local["healthCheckNodePort"]
    node1, node2 = tour.node_ip(0), tour.node_ip(1)
    tour.wait_for("node-1's health check to say 200 and node-2's 503", lambda: tour.in_client(
        f"curl -s -o /dev/null -w '%{{http_code}} ' {node1}:{health}; "
        f"curl -s -o /dev/null -w '%{{http_code}}' {node2}:{health}", show=False) == "200 503", timeout=60)
    print("Local: through node-1 (it has the pod) the pod sees the client's own address; node-2 has no pod\n"
          "of it and drops the connection (curl times out, exit 28: no SNAT to another node).\n")
    tour.in_client(f"curl -s {node1}:{local_port}")
    tour.in_client(f"curl -s --max-time 1 {node2}:{local_port}; echo \"exit $?\"")
    print("Cluster: node-2 forwards to the pod on node-1 and masquerades: the pod sees node-2's address.\n")
    tour.wait_for("etp-cluster through node-2", lambda: tour.in_client(
        f"curl -s --max-time 1 {node2}:{cluster_port}", show=False).strip(), timeout=30)
    tour.in_client(f"curl -s {node2}:{cluster_port}")
    print("The health check nodePort a load balancer asks: 200 where the Service has local endpoints,\n"
          "503 where it has none (kube-proxy's service health server, on every node).\n")
    for node in (node1, node2):
        tour.in_client(f"curl -s -w '\\nHTTP %{{http_code}}\\n' {node}:{health}")
    if tour.mode == "nftables":
        tour.in_node_sh(1, "nft list map ip kube-proxy no-endpoint-nodeports")
    else:
        tour.in_node_sh(1, "iptables-save -t filter | grep 'default/etp-local has no local endpoints'")


# ---- 2. sessionAffinity: ClientIP

AFFINITY_OBJECTS = """\
apiVersion: v1
kind: Service
metadata:
  name: sticky
  labels: {svcnet-tour: services}
spec:
  selector: {app: tour}
  ports: [{name: http, port: 80, targetPort: web}]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
"""


def session_affinity(tour: ServicesTour) -> None:
    ip = tour.cluster_ip("sticky")
    tour.wait_for("sticky to answer", lambda: tour.answers("tour-2", ip, 1) != {""}, timeout=60)
    tour.wait_for("sticky's rules on both nodes", lambda: len(tour.ready_endpoints("sticky")) == 3, timeout=30)
    print("sessionAffinity: ClientIP, timeoutSeconds 60: every connection from one client goes to the pod\n"
          "that took its first one (another client may get another pod).\n")
    tour.curl_counts("tour-2", ip)
    tour.curl_counts("tour-1a", ip)
    print("The memory is in the client's node: "
          + ("a set per endpoint whose elements time out (nft), looked up before the random choice.\n"
             if tour.mode == "nftables" else
             "an xt_recent list per endpoint (`-m recent`), checked before the\nrandom choice "
             "(--rcheck --seconds 60) and set by the endpoint's chain (--set).\n"))
    if tour.mode == "nftables":
        affinity_sets_nftables(tour)
    else:
        affinity_lists_iptables(tour)


def affinity_lists_iptables(tour: ServicesTour) -> None:
    rules = tour.in_node_sh(1, "iptables-save -t nat | grep -- '-A KUBE-SVC-.*default/sticky:http ->'")
    chains = sorted(set(re.findall(r"--name (KUBE-SEP-\w+)", rules)))
    client = tour.kubectl_json("get", "pod", "tour-2")["status"]["podIP"]
    remembered = [c for c in chains if client in tour.in_node(1, "cat", f"/proc/net/xt_recent/{c}", show=None)]
    for chain in remembered:
        tour.in_node_sh(1, f"cat /proc/net/xt_recent/{chain}")


def affinity_sets_nftables(tour: ServicesTour) -> None:
    table = tour.in_node(1, "nft", "list", "table", "ip", "kube-proxy", show=None)
    sets = sorted(set(re.findall(r"set (affinity-\S+-default/sticky/tcp/http__\S+) \{", table)))
    client = tour.kubectl_json("get", "pod", "tour-2")["status"]["podIP"]
    for name in sets:
        listing = tour.in_node(1, "nft", "list", "set", "ip", "kube-proxy", name, show=None)
        if client in listing:
            tour.in_node_sh(1, f"nft list set ip kube-proxy {name}")
    service = next((line.split()[1] for line in table.splitlines()
                    if line.strip().startswith("chain service-") and "default/sticky/tcp/http" in line), None)
    if service:
        tour.in_node_sh(1, f"nft list chain ip kube-proxy {service}")


# ---- 3. internalTrafficPolicy: Local

ITP_OBJECTS = """\
apiVersion: v1
kind: Service
metadata:
  name: itp-local
  labels: {svcnet-tour: services}
spec:
  internalTrafficPolicy: Local
  selector: {app: tour}
  ports: [{name: http, port: 80, targetPort: web}]
---
apiVersion: v1
kind: Service
metadata:
  name: itp-node-1
  labels: {svcnet-tour: services}
spec:
  internalTrafficPolicy: Local
  selector: {app: tour, node: node-1}
  ports: [{name: http, port: 80, targetPort: web}]
"""


def internal_traffic_policy(tour: ServicesTour) -> None:
    everywhere, node1_only = tour.cluster_ip("itp-local"), tour.cluster_ip("itp-node-1")
    tour.wait_answers("tour-1a", everywhere, {"tour-1a", "tour-1b"})
    tour.wait_answers("tour-2", everywhere, {"tour-2"}, count=3)
    tour.wait_for("itp-node-1 to answer from node-1", lambda: tour.answers("tour-1a", node1_only, 1) != {""},
                  timeout=30)
    print("internalTrafficPolicy: Local: a pod's connection to the ClusterIP goes only to endpoints on its own\n"
          "node. itp-local selects all three pods: node-1's pods reach node-1's two, tour-2 only itself.\n")
    tour.curl_counts("tour-1a", everywhere)
    tour.curl_counts("tour-2", everywhere)
    print("itp-node-1 selects node-1's pods only: from node-2 it is dropped (not rejected), curl times out.\n")
    tour.kubectl_in("tour-2", f"curl -sS --max-time 1 {node1_only} 2>&1; echo \"exit $?\"")
    if tour.mode == "nftables":
        tour.in_node_sh(1, "nft list map ip kube-proxy no-endpoint-services")
    else:
        tour.in_node_sh(1, "iptables-save | grep 'default/itp-node-1:http has no local endpoints'")


# ---- 4. topology hints: trafficDistribution: PreferClose

TOPOLOGY_OBJECTS = """\
apiVersion: v1
kind: Service
metadata:
  name: close
  labels: {svcnet-tour: services}
spec:
  trafficDistribution: PreferClose
  selector: {app: tour}
  ports: [{name: http, port: 80, targetPort: web}]
"""


def topology_hints(tour: ServicesTour) -> None:
    tour.kubectl("get", "nodes", "-L", ZONE_LABEL)
    nodes = tour.kubectl_json("get", "nodes")["items"]
    zones = {n["metadata"].get("labels", {}).get(ZONE_LABEL) for n in nodes}
    if None in zones or len(zones) < 2:
        print(f"These nodes are not in zones ({ZONE_LABEL} unset), so the EndpointSlice controller gives\n"
              "no hints and every endpoint serves every node. Start a cluster with zones to see them:\n"
              "    svcnet down && svcnet up --zones a,b && svcnet walkthrough --extended\n")
        return
    ip = tour.cluster_ip("close")
    tour.wait_for("a zone hint on every endpoint of close", lambda: all(
        (e.get("hints") or {}).get("forZones") for e in tour.ready_endpoints("close")) and len(
        tour.ready_endpoints("close")) == 3, timeout=30)
    print("trafficDistribution: PreferClose: the EndpointSlice controller hints each endpoint for its own zone,\n"
          "and each node's proxy keeps the endpoints hinted for its zone.\n")
    tour.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=close", "-o",
                 "jsonpath={range .items[*].endpoints[*]}{.targetRef.name}{\"\\t\"}{.nodeName}{\"\\tzone=\"}{.zone}"
                 "{\"\\thints=\"}{.hints.forZones[*].name}{\"\\n\"}{end}")
    tour.wait_answers("tour-1a", ip, {"tour-1a", "tour-1b"})
    tour.wait_answers("tour-2", ip, {"tour-2"}, count=3)
    tour.curl_counts("tour-1a", ip)
    tour.curl_counts("tour-2", ip)


# ---- 5. named targetPort, and a Service with two ports

MULTI_PORT_OBJECTS = """\
apiVersion: v1
kind: Service
metadata:
  name: multi
  labels: {svcnet-tour: services}
spec:
  selector: {app: tour}
  ports:
  - {name: http, port: 80, targetPort: web}
  - {name: http-alt, port: 8080, targetPort: web}
"""


def named_ports(tour: ServicesTour) -> None:
    ip = tour.cluster_ip("multi")
    every = set(POD_NAMES)
    for port in (80, 8080):
        tour.wait_answers("tour-2", f"{ip}:{port}", every, count=30)
    print("Both ports of multi target the port named web: 9376 on tour-1a and tour-2, 9377 on tour-1b.\n"
          "The EndpointSlice controller groups endpoints by their resolved ports, so tour-1b has its own slice.\n")
    tour.kubectl("get", "svc", "multi")
    tour.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=multi")
    for port in (80, 8080):
        tour.curl_counts("tour-2", f"{ip}:{port}", count=30)


# ---- 6. a UDP Service

UDP_OBJECTS = """\
apiVersion: v1
kind: Service
metadata:
  name: udp-echo
  labels: {svcnet-tour: services}
spec:
  selector: {app: tour}
  ports: [{name: echo, port: 5353, targetPort: echo, protocol: UDP}]
"""


def udp_service(tour: ServicesTour) -> None:
    ip = tour.cluster_ip("udp-echo")
    print("serve_hostname answers each datagram with its hostname. bash's /dev/udp opens a UDP socket, so each\n"
          "loop turn is a new flow (a new source port), balanced anew.\n")
    tour.kubectl("get", "svc", "udp-echo")
    probe = (f'for i in $(seq 30); do bash -c "exec 3<>/dev/udp/{ip}/5353; echo >&3; '
             f'timeout 1 dd bs=64 count=1 <&3 2>/dev/null"; echo; done')
    tour.wait_for("udp-echo to answer from every pod", lambda: {line.strip() for line in tour.run(
        ["kubectl", "exec", "tour-1a", "--", "sh", "-c", probe]).splitlines()} >= set(POD_NAMES), timeout=60)
    tour.kubectl_in("tour-1a", f"{probe} | sort | uniq -c")
    tour.in_node_sh(0, f"conntrack -L -p udp --orig-dst {ip} 2>/dev/null | head -3")


# ---- 7. ExternalName

EXTERNAL_NAME_OBJECTS = """\
apiVersion: v1
kind: Service
metadata:
  name: ext
  labels: {svcnet-tour: services}
spec: {type: ExternalName, externalName: www.example.org}
---
apiVersion: v1
kind: Service
metadata:
  name: api-alias
  labels: {svcnet-tour: services}
spec: {type: ExternalName, externalName: kubernetes.default.svc.cluster.local}
"""


def external_name(tour: ServicesTour) -> None:
    print("No cluster IP and no rules: the cluster DNS answers the Service's name with a CNAME to\n"
          "spec.externalName and, as CoreDNS, adds the target's addresses: looked up in the cluster zone\n"
          "for a cluster name (api-alias), through the DNS's upstream for any other (ext).\n")
    tour.kubectl("get", "svc", "ext", "api-alias")
    alias = ["kubectl", "exec", "tour-1a", "--", "dig", "+noall", "+answer", "api-alias.default.svc.cluster.local"]
    tour.wait_for("api-alias in the cluster DNS", lambda: "CNAME" in tour.run(alias), timeout=30)
    tour.kubectl(*alias[1:])
    out = tour.kubectl("exec", "tour-1a", "--", "nslookup", "ext.default.svc.cluster.local", check=False)
    if "canonical name" not in out:
        print("No answer: the DNS's upstream (the nodes' resolv.conf, `svcnet up --resolv-conf`) could not\n"
              "resolve www.example.org, and CoreDNS leaves out a CNAME whose target it cannot look up.\n")


# ---- 8. a Service without a selector: a hand-made EndpointSlice, and Endpoints mirrored to one

OUTSIDE_PORT = 8080


def selectorless_objects(client_ip: str) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: outside
  labels: {{svcnet-tour: services}}
spec:
  ports: [{{name: http, port: 80, targetPort: {OUTSIDE_PORT}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: outside-1
  labels: {{kubernetes.io/service-name: outside, svcnet-tour: services}}
addressType: IPv4
ports: [{{name: http, port: {OUTSIDE_PORT}, protocol: TCP}}]
endpoints: [{{addresses: ["{client_ip}"]}}]
---
apiVersion: v1
kind: Service
metadata:
  name: legacy
  labels: {{svcnet-tour: services}}
spec:
  ports: [{{name: http, port: 80, targetPort: {OUTSIDE_PORT}}}]
---
apiVersion: v1
kind: Endpoints
metadata:
  name: legacy
  labels: {{svcnet-tour: services}}
subsets:
- addresses: [{{ip: "{client_ip}"}}]
  ports: [{{name: http, port: {OUTSIDE_PORT}, protocol: TCP}}]
"""


def selectorless(tour: ServicesTour) -> None:
    client_ip = tour.plan.client.ipv4
    objects = selectorless_objects(client_ip)
    print(f"A web server outside the cluster, in the client namespace ({client_ip}:{OUTSIDE_PORT}), and two\n"
          "Services without a selector pointing at it: outside with a hand-made EndpointSlice, legacy with\n"
          "a hand-written Endpoints object that the endpointslicemirroring controller copies into a slice.\n")
    with tempfile.TemporaryDirectory(prefix="svcnet-tour-") as root:
        (Path(root) / "index.html").write_text("hello from outside the cluster\n")
        server = start_web_server(tour, root, client_ip)
        try:
            print(f"$ cat outside.yaml\n{objects}")
            tour.run(["kubectl", "apply", "-f", "-"], show="kubectl apply -f outside.yaml", input=objects)
            tour.wait_for("both Services to reach the web server", lambda: all(
                "hello" in tour.run(["kubectl", "exec", "tour-1a", "--", "curl", "-s", "--max-time", "1",
                                     f"http://{name}/"]) for name in ("outside", "legacy")), timeout=60)
            tour.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name in (outside,legacy)",
                         "-L", "endpointslice.kubernetes.io/managed-by")
            tour.kubectl("exec", "tour-1a", "--", "curl", "-s", "http://outside/")
            tour.kubectl("exec", "tour-1a", "--", "curl", "-s", "http://legacy.default.svc.cluster.local/")
        finally:
            tour.delete(objects)
            server.terminate()
            server.wait(timeout=10)


def start_web_server(tour: ServicesTour, root: str, address: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "http.server", str(OUTSIDE_PORT), "--bind", address, "--directory", root]
    print(f"$ {' '.join(['python3', *argv[1:]])} &    # in the client namespace\n")
    return subprocess.Popen(["ip", "netns", "exec", tour.plan.client.namespace, *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---- 9. publishNotReadyAddresses

NOT_READY_OBJECTS = """\
apiVersion: v1
kind: Pod
metadata:
  name: never-ready
  labels: {app: never-ready, svcnet-tour: services}
spec:
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata:
  name: unready-published
  labels: {svcnet-tour: services}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: never-ready}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: unready-hidden
  labels: {svcnet-tour: services}
spec:
  clusterIP: None
  selector: {app: never-ready}
  ports: [{port: 80}]
"""


def publish_not_ready(tour: ServicesTour) -> None:
    def published() -> bool:
        ep = tour.kubectl_json("get", "ep", "unready-published")
        return bool((ep.get("subsets") or [{}])[0].get("addresses"))
    tour.wait_for("never-ready published", published, timeout=60)
    print("A pod whose readiness probe always fails, behind two headless Services; unready-published has\n"
          "publishNotReadyAddresses: true, so its endpoint is ready (that is what publishing means) and DNS\n"
          "answers with the pod; unready-hidden lists it as not ready, and DNS has no address for it.\n")
    tour.kubectl("get", "pod", "never-ready", "-o", "wide")
    tour.kubectl("get", "ep", "unready-published", "unready-hidden")
    tour.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=unready-published", "-o",
                 "jsonpath={.items[0].endpoints[0].conditions}{\"\\n\"}")
    tour.wait_for("the published address in DNS", lambda: tour.run(
        ["kubectl", "exec", "tour-1a", "--", "dig", "+short", "unready-published.default.svc.cluster.local"]
    ).strip(), timeout=30)
    tour.kubectl("exec", "tour-1a", "--", "dig", "+short", "unready-published.default.svc.cluster.local")
    tour.kubectl_in("tour-1a", "dig unready-hidden.default.svc.cluster.local | grep status")


# ---- 10. a rolling update under curl: terminating endpoints

ROLLING_OBJECTS = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rolling
  labels: {{svcnet-tour: services}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: rolling}}}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata: {{labels: {{app: rolling, svcnet-tour: services}}}}
    spec:
      containers:
      - name: hostnames
        image: registry.k8s.io/serve_hostname:v1.4
        readinessProbe: {{tcpSocket: {{port: 9376}}, periodSeconds: 1}}
        lifecycle: {{preStop: {{sleep: {{seconds: {ROLLING_PRESTOP_SECONDS}}}}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: rolling
  labels: {{svcnet-tour: services}}
spec:
  selector: {{app: rolling}}
  ports: [{{port: 80, targetPort: 9376}}]
"""
ENDPOINT_CONDITIONS = ("jsonpath={range .items[*].endpoints[*]}{.targetRef.name}{\"\\t\"}{.conditions}{\"\\n\"}"
                       "{end}")


def rolling_update(tour: ServicesTour) -> None:
    tour.wait_for("rolling's two endpoints", lambda: len(tour.ready_endpoints("rolling")) == 2, timeout=120)
    ip = tour.cluster_ip("rolling")
    tour.wait_for("rolling to answer from tour-2", lambda: tour.answers("tour-2", ip, 1) != {""}, timeout=60)
    print(f"Deployment rolling (2 pods, maxSurge 1, maxUnavailable 0, a readiness probe, and a preStop sleep\n"
          f"of {ROLLING_PRESTOP_SECONDS} s so a deleted pod serves until every proxy has dropped it). tour-2 "
          "curls its Service\nin a loop, a new connection each time, while the Deployment rolls to a new image.\n")
    with tempfile.TemporaryDirectory(prefix="svcnet-tour-") as tmp:
        log, stop = Path(tmp) / "curl.log", Path(tmp) / "stop"
        loop = (f"until [ -e {stop} ]; do if out=$(curl -sS --max-time 2 {ip} 2>&1); then echo \"ok $out\"; "
                f"else echo \"fail $out\"; fi; done > {log}")
        # `timeout`: the loop ends on its own should the stop file never come (the tour interrupted).
        print(f"$ kubectl exec tour-2 -- timeout {LOOP_LIMIT_SECONDS} sh -c {shlex.quote(loop)} &\n")
        curl_loop = subprocess.Popen(["kubectl", "exec", "tour-2", "--", "timeout", str(LOOP_LIMIT_SECONDS),
                                      "sh", "-c", loop], env=tour.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            tour.wait_for("the loop's first answers", lambda: log.exists() and log.stat().st_size > 0, timeout=30)
            roll_out(tour)
        finally:
            stop.touch()
            try:
                curl_loop.wait(timeout=30)
            except subprocess.TimeoutExpired:
                curl_loop.kill()
                raise
        tour.run(["sh", "-c", f"sort {log} | uniq -c"], show=f"sort {log.name} | uniq -c    # what the loop saw")
        tour.run(["sh", "-c", f"grep -c '^fail' {log}"], show=f"grep -c '^fail' {log.name}    # failed requests")


def roll_out(tour: ServicesTour) -> None:
    """The new image, the endpoints while old pods terminate, and the wait until they are gone."""
    old = {name_of(p) for p in tour.kubectl_json("get", "pods", "-l", "app=rolling")["items"]}
    tour.kubectl("set", "image", "deploy/rolling", "hostnames=registry.k8s.io/serve_hostname:v1.5")

    def terminating() -> bool:
        slices = tour.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=rolling")
        return any(e["conditions"].get("terminating") for s in slices["items"] for e in s.get("endpoints") or [])
    tour.wait_for("an old pod's endpoint terminating", terminating, timeout=60)
    print("An old pod in its preStop sleep: still serving, terminating, no longer ready (new connections go to\n"
          "ready endpoints; terminating ones are used only when none is ready).\n")
    tour.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=rolling", "-o", ENDPOINT_CONDITIONS)
    tour.kubectl("rollout", "status", "deploy/rolling", "--timeout=50s")

    def old_gone() -> bool:
        return not old & {name_of(p) for p in tour.kubectl_json("get", "pods", "-l", "app=rolling")["items"]}
    tour.wait_for("the old pods to finish", old_gone, timeout=60)


# ---- 11. a LoadBalancer Service

LOAD_BALANCER_OBJECTS = """\
apiVersion: v1
kind: Service
metadata:
  name: lb
  labels: {svcnet-tour: services}
spec:
  type: LoadBalancer
  selector: {app: tour}
  ports: [{name: http, port: 80, targetPort: web}]
"""


def load_balancer(tour: ServicesTour) -> None:
    # A cluster started before LoadBalancer support has no pool in its spec.
    spec = load_cluster_spec(tour.data_dir)
    pool = spec.lb_pool if spec is not None else None
    if not pool:
        print("This cluster has no LoadBalancer pool, so EXTERNAL-IP stays <pending>. A cluster started with\n"
              "`svcnet up` (default pool: the top /28 of the node network) or `svcnet up --lb-pool CIDR` has one.\n")
        tour.kubectl("get", "svc", "lb")
        return
    print(f"The service-lb controller gives the Service an address from the pool ({pool}); one node's speaker\n"
          "answers ARP for it on the LAN, so the client namespace reaches it directly.\n")

    def address() -> str:
        ingress = (tour.kubectl_json("get", "svc", "lb").get("status") or {}).get("loadBalancer", {}).get("ingress")
        return (ingress or [{}])[0].get("ip", "")
    ip = tour.wait_for("an address for lb", address, timeout=30)
    tour.kubectl("get", "svc", "lb")
    tour.wait_for("lb to answer the client from every pod", lambda: {line.strip() for line in tour.in_client(
        f"for i in $(seq 20); do curl -s --max-time 1 {ip}; echo; done", show=False).splitlines()} >= set(POD_NAMES),
        timeout=60)
    tour.in_client(f"for i in $(seq 20); do curl -s {ip}; echo; done | sort | uniq -c")
    events = tour.run(["sh", "-c", "kubectl describe svc lb | sed -n '/Events/,$p'"],
                      show="kubectl describe svc lb | sed -n '/Events/,$p'")
    announcer = re.findall(r'announcing from node "([^"]+)"', events)
    tour.in_client(f"ip neigh show {ip}")
    names = [n.name for n in tour.plan.nodes]
    if announcer and announcer[-1] in names:  # the client's ARP entry for the address is that node's LAN MAC
        tour.in_node_sh(names.index(announcer[-1]), "ip link show eth0")


# The tour, in order: one Step per feature; a new one is one more entry. A step that needs more of the cluster
# than every `svcnet up` gives (zones; a load balancer pool) checks for it and says how to get it.
STEPS: list[Step] = [
    Step("externalTrafficPolicy: Local keeps the client's address; the health check nodePort",
         ETP_OBJECTS, external_traffic_policy),
    Step("sessionAffinity: ClientIP", AFFINITY_OBJECTS, session_affinity),
    Step("internalTrafficPolicy: Local", ITP_OBJECTS, internal_traffic_policy),
    Step("topology hints: trafficDistribution: PreferClose", TOPOLOGY_OBJECTS, topology_hints),
    Step("a named targetPort, on a Service with two ports", MULTI_PORT_OBJECTS, named_ports),
    Step("a UDP Service", UDP_OBJECTS, udp_service),
    Step("ExternalName: a CNAME from the cluster DNS", EXTERNAL_NAME_OBJECTS, external_name),
    Step("Services without a selector: a hand-made EndpointSlice, and mirrored Endpoints", "", selectorless),
    Step("publishNotReadyAddresses", NOT_READY_OBJECTS, publish_not_ready),
    Step("a rolling update under curl: terminating endpoints", ROLLING_OBJECTS, rolling_update),
    Step("a LoadBalancer Service: an address from the pool, answered on the LAN", LOAD_BALANCER_OBJECTS,
         load_balancer),
]
