"""Server-side Table output: columns and cells as kube-apiserver's printers make them."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import RESOURCES, Resource, lookup_kind
from svcnet.apiserver import printers as tables
from svcnet.apiserver.printers.format import human_duration, translate_timestamp_since

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp `delta` before NOW."""
    return (NOW - dt.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def res(api_version: str, kind: str) -> Resource:
    found = lookup_kind(api_version, kind)
    assert found is not None
    return found


POD = res("v1", "Pod")
SERVICE = res("v1", "Service")
ENDPOINTS = res("v1", "Endpoints")
NODE = res("v1", "Node")
NAMESPACE = res("v1", "Namespace")
EVENT = res("v1", "Event")
DEPLOYMENT = res("apps/v1", "Deployment")
REPLICA_SET = res("apps/v1", "ReplicaSet")
STATEFUL_SET = res("apps/v1", "StatefulSet")
ENDPOINT_SLICE = res("discovery.k8s.io/v1", "EndpointSlice")
LEASE = res("coordination.k8s.io/v1", "Lease")


def cells(resource: Resource, obj: dict[str, Any]) -> list[Any]:
    return tables.row_cells(resource, obj, NOW)


# ---------------------------------------------------------------------------
# AGE: duration.HumanDuration and its boundaries
# ---------------------------------------------------------------------------

S, M, H, D = 1, 60, 3600, 86400
Y = 365 * D


@pytest.mark.parametrize(("seconds", "expected"), [
    (-3, "<invalid>"),
    (-2, "<invalid>"),
    (-1.9, "0s"),  # Go truncates -1.9s to -1s: within the tolerated skew
    (-1, "0s"),
    (0, "0s"),
    (0.9, "0s"),
    (59, "59s"),
    (119, "119s"),
    (120, "2m"),
    (121, "2m1s"),
    (4 * M + 29, "4m29s"),  # the seed's pod age
    (9 * M + 59, "9m59s"),
    (10 * M, "10m"),
    (10 * M + 59, "10m"),
    (16 * M + 30, "16m"),
    (179 * M + 59, "179m"),
    (3 * H, "3h"),
    (3 * H + 5 * M + 59, "3h5m"),
    (7 * H + 59 * M, "7h59m"),
    (8 * H, "8h"),
    (47 * H + 59 * M, "47h"),
    (48 * H, "2d"),
    (2 * D + 3 * H + 59 * M, "2d3h"),
    (7 * D + 23 * H, "7d23h"),
    (8 * D, "8d"),
    (2 * Y - H, "729d"),
    (2 * Y, "2y"),
    (2 * Y + 12 * D, "2y12d"),
    (8 * Y - D, "7y364d"),
    (8 * Y, "8y"),
    (8 * Y + 40 * D, "8y"),
    (20 * Y, "20y"),
])
def test_human_duration_matches_upstream_at_each_boundary(seconds: float, expected: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, "<unknown>"),
    ("", "<unknown>"),
    ("not a time", "<unknown>"),
    ("0001-01-01T00:00:00Z", "<unknown>"),  # Go's zero time
    (ago(minutes=16), "16m"),
    ("2024-05-01T11:59:30.123456Z", "29s"),  # MicroTime
    ("2024-05-01T13:00:00+02:00", "60m"),  # an offset other than Z: 11:00Z
])
def test_translate_timestamp_since_handles_unset_and_every_time_form(value: Any, expected: str) -> None:
    assert translate_timestamp_since(value, NOW) == expected


# ---------------------------------------------------------------------------
# Column definitions
# ---------------------------------------------------------------------------

def _columns(resource: Resource) -> list[tuple[str, str, str, int]]:
    return [(c["name"], c["type"], c["format"], c["priority"]) for c in tables.column_definitions(resource)]


@pytest.mark.parametrize(("resource", "expected"), [
    (NAMESPACE, [("Name", "string", "name", 0), ("Status", "string", "", 0), ("Age", "string", "", 0)]),
    (NODE, [("Name", "string", "name", 0), ("Status", "string", "", 0), ("Roles", "string", "", 0),
            ("Age", "string", "", 0), ("Version", "string", "", 0), ("Internal-IP", "string", "", 1),
            ("External-IP", "string", "", 1), ("OS-Image", "string", "", 1),
            ("Kernel-Version", "string", "", 1), ("Container-Runtime", "string", "", 1)]),
    (POD, [("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Status", "string", "", 0),
           ("Restarts", "string", "", 0), ("Age", "string", "", 0), ("IP", "string", "", 1),
           ("Node", "string", "", 1), ("Nominated Node", "string", "", 1),
           ("Readiness Gates", "string", "", 1)]),
    (SERVICE, [("Name", "string", "name", 0), ("Type", "string", "", 0), ("Cluster-IP", "string", "", 0),
               ("External-IP", "string", "", 0), ("Port(s)", "string", "", 0), ("Age", "string", "", 0),
               ("Selector", "string", "", 1)]),
    (ENDPOINTS, [("Name", "string", "name", 0), ("Endpoints", "string", "", 0), ("Age", "string", "", 0)]),
    (EVENT, [("Last Seen", "string", "", 0), ("Type", "string", "", 0), ("Reason", "string", "", 0),
             ("Object", "string", "", 0), ("Subobject", "string", "", 1), ("Source", "string", "", 1),
             ("Message", "string", "", 0), ("First Seen", "string", "", 1), ("Count", "string", "", 1),
             ("Name", "string", "name", 1)]),
    (DEPLOYMENT, [("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Up-to-date", "string", "", 0),
                  ("Available", "string", "", 0), ("Age", "string", "", 0), ("Containers", "string", "", 1),
                  ("Images", "string", "", 1), ("Selector", "string", "", 1)]),
    (REPLICA_SET, [("Name", "string", "name", 0), ("Desired", "integer", "", 0),
                   ("Current", "integer", "", 0), ("Ready", "integer", "", 0), ("Age", "string", "", 0),
                   ("Containers", "string", "", 1), ("Images", "string", "", 1),
                   ("Selector", "string", "", 1)]),
    (STATEFUL_SET, [("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Age", "string", "", 0),
                    ("Containers", "string", "", 1), ("Images", "string", "", 1)]),
    (ENDPOINT_SLICE, [("Name", "string", "name", 0), ("AddressType", "string", "", 0),
                      ("Ports", "string", "", 0), ("Endpoints", "string", "", 0), ("Age", "string", "", 0)]),
    (LEASE, [("Name", "string", "name", 0), ("Holder", "string", "", 0), ("Age", "string", "", 0)]),
])
def test_column_definitions_match_upstream_names_types_formats_priorities(
        resource: Resource, expected: list[tuple[str, str, str, int]]) -> None:
    assert _columns(resource) == expected


def _kubectl_headers(resource: Resource, wide: bool) -> str:
    """What kubectl prints as the header line: upper-cased names, priority>0 only when wide."""
    return " ".join(c["name"].upper() for c in tables.column_definitions(resource)
                    if wide or c["priority"] == 0)


@pytest.mark.parametrize(("resource", "wide", "seed_header"), [
    (POD, True, "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"),
    (ENDPOINTS, False, "NAME ENDPOINTS AGE"),
    (SERVICE, False, "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE"),
    (EVENT, False, "LAST SEEN TYPE REASON OBJECT MESSAGE"),
    (EVENT, True, "LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME"),
    (DEPLOYMENT, False, "NAME READY UP-TO-DATE AVAILABLE AGE"),
])
def test_kubectl_header_line_is_the_seed_header(resource: Resource, wide: bool, seed_header: str) -> None:
    assert _kubectl_headers(resource, wide) == seed_header


def test_every_served_kind_has_one_cell_per_column_and_a_name_column() -> None:
    for resource in RESOURCES:
        columns = tables.column_definitions(resource)
        row = cells(resource, {"metadata": {"name": "x"}})
        assert len(row) == len(columns), resource.kind
        assert [c["name"] for c in columns if c["format"] == "name"] == ["Name"], resource.kind


def test_every_column_has_a_description() -> None:
    for resource in RESOURCES:
        assert all(c["description"] for c in tables.column_definitions(resource)), resource.kind


# ---------------------------------------------------------------------------
# Pod
# ---------------------------------------------------------------------------

def pod(name: str = "hostnames-7c89f997cf-pdg7p", *, phase: str | None = "Running",
        containers: int = 1, init: list[dict[str, Any]] | None = None,
        statuses: list[dict[str, Any]] | None = None, init_statuses: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None, created: str | None = None,
        ip: str | None = "10.244.1.8", node: str | None = "192.168.0.106",
        **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": "42",
                     "labels": {"app": "hostnames"},
                     "creationTimestamp": created or ago(minutes=4, seconds=29)},
        "spec": {"containers": [{"name": f"c{i}", "image": "k8s.gcr.io/serve_hostname"}
                                for i in range(containers)]},
        "status": {},
    }
    if init:
        obj["spec"]["initContainers"] = init
    if node:
        obj["spec"]["nodeName"] = node
    if phase:
        obj["status"]["phase"] = phase
    if ip:
        obj["status"]["podIP"] = ip
        obj["status"]["podIPs"] = [{"ip": ip}]
    if statuses is not None:
        obj["status"]["containerStatuses"] = statuses
    if init_statuses is not None:
        obj["status"]["initContainerStatuses"] = init_statuses
    if conditions is not None:
        obj["status"]["conditions"] = conditions
    for key, value in extra.items():
        section, _, field = key.partition("__")
        obj[section][field] = value
    return obj


RUNNING = {"name": "c0", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": ago(minutes=4)}}}


def running(name: str = "c0", *, ready: bool = True, restarts: int = 0,
            last_finished: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts,
                              "state": {"running": {"startedAt": ago(minutes=1)}}}
    if last_finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                              "finishedAt": last_finished}}
    return status


def waiting(reason: str, name: str = "c0", restarts: int = 0, last_finished: str | None = None) -> dict:
    status: dict[str, Any] = {"name": name, "ready": False, "restartCount": restarts,
                              "state": {"waiting": {"reason": reason}}}
    if last_finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last_finished}}
    return status


def terminated(name: str = "c0", *, exit_code: int = 0, reason: str | None = None,
               signal: int | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


READY_CONDITIONS = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]
SIDECAR = {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
INIT_A = {"name": "init-a", "image": "busybox"}
INIT_B = {"name": "init-b", "image": "busybox"}


@pytest.mark.parametrize(("case", "obj", "ready", "status", "restarts"), [
    ("seed running pod", pod(statuses=[RUNNING], conditions=READY_CONDITIONS), "1/1", "Running", "0"),
    ("pending, unscheduled", pod(phase="Pending", ip=None, node=None), "0/1", "Pending", "0"),
    ("no phase at all", pod(phase=None, ip=None), "0/1", "", "0"),
    ("container creating", pod(phase="Pending", statuses=[waiting("ContainerCreating")]),
     "0/1", "ContainerCreating", "0"),
    ("image does not resolve", pod(phase="Pending", statuses=[waiting("ErrImagePull")]),
     "0/1", "ErrImagePull", "0"),
    ("crash loop shows restarts and when",
     pod(statuses=[waiting("CrashLoopBackOff", restarts=5, last_finished=ago(minutes=5))]),
     "0/1", "CrashLoopBackOff", "5 (5m ago)"),
    ("restarted and running again",
     pod(statuses=[running(restarts=2, last_finished=ago(hours=3, minutes=5))]),
     "1/1", "Running", "2 (3h5m ago)"),
    ("restart count without a last state has no suffix", pod(statuses=[running(restarts=3)]),
     "1/1", "Running", "3"),
    ("two containers, one not ready",
     pod(containers=2, statuses=[running("c0"), running("c1", ready=False)]), "1/2", "Running", "0"),
    ("restarts add up over containers, latest wins",
     pod(containers=2, statuses=[running("c0", restarts=1, last_finished=ago(hours=2)),
                                 running("c1", restarts=2, last_finished=ago(minutes=7))]),
     "2/2", "Running", "3 (7m ago)"),
    ("completed", pod(phase="Succeeded", statuses=[terminated(reason="Completed")]),
     "0/1", "Completed", "0"),
    ("failed without reason shows exit code", pod(phase="Failed", statuses=[terminated(exit_code=137)]),
     "0/1", "ExitCode:137", "0"),
    ("killed by signal", pod(phase="Failed", statuses=[terminated(exit_code=0, signal=9)]),
     "0/1", "Signal:9", "0"),
    ("first container's state wins",
     pod(containers=2, statuses=[waiting("ImagePullBackOff", "c0"), waiting("ErrImagePull", "c1")]),
     "0/2", "ImagePullBackOff", "0"),
    ("one completed, one still running and pod ready",
     pod(containers=2, statuses=[terminated("c0", reason="Completed"), running("c1")],
         conditions=READY_CONDITIONS), "1/2", "Running", "0"),
    ("one completed, one still running, pod not ready",
     pod(containers=2, statuses=[terminated("c0", reason="Completed"), running("c1")],
         conditions=[{"type": "Ready", "status": "False"}]), "1/2", "NotReady", "0"),
    ("evicted uses status.reason", pod(phase="Failed", status__reason="Evicted", ip=None),
     "0/1", "Evicted", "0"),
    ("scheduling gated",
     pod(phase="Pending", ip=None, node=None,
         conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
     "0/1", "SchedulingGated", "0"),
    ("terminating", pod(statuses=[RUNNING], metadata__deletionTimestamp=ago(seconds=10)),
     "1/1", "Terminating", "0"),
    ("terminal pod being deleted keeps its status",
     pod(phase="Succeeded", statuses=[terminated(reason="Completed")],
         metadata__deletionTimestamp=ago(seconds=10)), "0/1", "Completed", "0"),
    ("node lost while deleting", pod(statuses=[RUNNING], status__reason="NodeLost",
                                     metadata__deletionTimestamp=ago(seconds=10)), "1/1", "Unknown", "0"),
    ("init containers not started", pod(phase="Pending", init=[INIT_A, INIT_B],
                                        init_statuses=[waiting("PodInitializing", "init-a"),
                                                       waiting("PodInitializing", "init-b")],
                                        statuses=[waiting("PodInitializing")]),
     "0/1", "Init:0/2", "0"),
    ("second init container running",
     pod(phase="Pending", init=[INIT_A, INIT_B],
         init_statuses=[terminated("init-a", reason="Completed"), running("init-b", ready=False)]),
     "0/1", "Init:1/2", "0"),
    ("init container crash looping",
     pod(phase="Pending", init=[INIT_A],
         init_statuses=[waiting("CrashLoopBackOff", "init-a", restarts=4, last_finished=ago(minutes=1))],
         statuses=[waiting("PodInitializing")]),
     "0/1", "Init:CrashLoopBackOff", "4 (60s ago)"),
    ("init container failed with reason",
     pod(phase="Pending", init=[INIT_A], init_statuses=[terminated("init-a", exit_code=1, reason="Error")]),
     "0/1", "Init:Error", "0"),
    ("init container failed without reason",
     pod(phase="Pending", init=[INIT_A], init_statuses=[terminated("init-a", exit_code=2)]),
     "0/1", "Init:ExitCode:2", "0"),
    ("init container killed by signal",
     pod(phase="Pending", init=[INIT_A], init_statuses=[terminated("init-a", exit_code=1, signal=15)]),
     "0/1", "Init:Signal:15", "0"),
    ("sidecar counts as a container once started",
     pod(init=[SIDECAR], init_statuses=[dict(running("proxy"), started=True)],
         statuses=[running()], conditions=READY_CONDITIONS), "2/2", "Running", "0"),
])
def test_pod_ready_status_restarts_follow_upstream_print_pod(
        case: str, obj: dict, ready: str, status: str, restarts: str) -> None:
    row = cells(POD, obj)
    assert row[1:4] == [ready, status, restarts], case


def test_pod_row_for_the_seed_wide_output() -> None:
    obj = pod(statuses=[RUNNING], conditions=READY_CONDITIONS)
    assert cells(POD, obj) == ["hostnames-7c89f997cf-pdg7p", "1/1", "Running", "0", "4m29s",
                               "10.244.1.8", "192.168.0.106", "<none>", "<none>"]


@pytest.mark.parametrize(("case", "obj", "wide"), [
    ("unscheduled", pod(phase="Pending", ip=None, node=None), ["<none>", "<none>", "<none>", "<none>"]),
    ("podIP only, no podIPs", pod(ip=None, status__podIP="10.244.2.7"),
     ["10.244.2.7", "192.168.0.106", "<none>", "<none>"]),
    ("dual stack shows the first IP", pod(ip=None, status__podIPs=[{"ip": "10.244.1.3"}, {"ip": "fd00::3"}]),
     ["10.244.1.3", "192.168.0.106", "<none>", "<none>"]),
    ("nominated node", pod(phase="Pending", ip=None, node=None, status__nominatedNodeName="node-2"),
     ["<none>", "<none>", "node-2", "<none>"]),
    ("readiness gates",
     pod(spec__readinessGates=[{"conditionType": "example.com/lb"}, {"conditionType": "example.com/fw"}],
         conditions=[{"type": "example.com/lb", "status": "True"},
                     {"type": "example.com/fw", "status": "False"}]),
     ["10.244.1.8", "192.168.0.106", "<none>", "1/2"]),
    ("readiness gate without its condition",
     pod(spec__readinessGates=[{"conditionType": "example.com/lb"}]),
     ["10.244.1.8", "192.168.0.106", "<none>", "0/1"]),
])
def test_pod_wide_cells(case: str, obj: dict, wide: list[str]) -> None:
    assert cells(POD, obj)[5:] == wide, case


def test_pod_age_is_unknown_without_creation_timestamp() -> None:
    obj = pod()
    del obj["metadata"]["creationTimestamp"]
    assert cells(POD, obj)[4] == "<unknown>"


# ---------------------------------------------------------------------------
# Service
# ---------------------------------------------------------------------------

def service(spec: dict[str, Any], status: dict[str, Any] | None = None, name: str = "hostnames") -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=16)},
            "spec": spec, "status": status or {"loadBalancer": {}}}


SEED_PORTS = [{"protocol": "TCP", "port": 80, "targetPort": 9376}]


@pytest.mark.parametrize(("case", "obj", "expected"), [
    ("seed ClusterIP service",
     service({"type": "ClusterIP", "clusterIP": "10.102.11.183", "clusterIPs": ["10.102.11.183"],
              "ports": SEED_PORTS, "selector": {"app": "hostnames"}}),
     ["hostnames", "ClusterIP", "10.102.11.183", "<none>", "80/TCP", "16m", "app=hostnames"]),
    ("NodePort shows both ports",
     service({"type": "NodePort", "clusterIPs": ["10.96.5.5"],
              "ports": [{"protocol": "TCP", "port": 80, "nodePort": 30080}]}),
     ["hostnames", "NodePort", "10.96.5.5", "<none>", "80:30080/TCP", "16m", "<none>"]),
    ("LoadBalancer without ingress is pending",
     service({"type": "LoadBalancer", "clusterIPs": ["10.96.5.6"],
              "ports": [{"protocol": "TCP", "port": 443, "nodePort": 31443}]}),
     ["hostnames", "LoadBalancer", "10.96.5.6", "<pending>", "443:31443/TCP", "16m", "<none>"]),
    ("LoadBalancer ingress sorted, then external IPs",
     service({"type": "LoadBalancer", "clusterIPs": ["10.96.5.6"], "externalIPs": ["198.51.100.9"],
              "ports": [{"protocol": "TCP", "port": 80, "nodePort": 30001}]},
             {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"},
                                           {"ip": "203.0.113.7"}]}}),
     ["hostnames", "LoadBalancer", "10.96.5.6", "203.0.113.7,lb.example.com,198.51.100.9",
      "80:30001/TCP", "16m", "<none>"]),
    ("headless service",
     service({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": SEED_PORTS,
              "selector": {"app": "nginx", "tier": "web"}}),
     ["hostnames", "ClusterIP", "None", "<none>", "80/TCP", "16m", "app=nginx,tier=web"]),
    ("external IPs on a ClusterIP service",
     service({"type": "ClusterIP", "clusterIPs": ["10.96.0.20"], "externalIPs": ["192.168.0.50", "192.168.0.51"],
              "ports": SEED_PORTS}),
     ["hostnames", "ClusterIP", "10.96.0.20", "192.168.0.50,192.168.0.51", "80/TCP", "16m", "<none>"]),
    ("ExternalName",
     service({"type": "ExternalName", "externalName": "db.example.com"}),
     ["hostnames", "ExternalName", "<none>", "db.example.com", "<none>", "16m", "<none>"]),
    ("several ports and protocols",
     service({"type": "ClusterIP", "clusterIPs": ["10.96.0.10", "fd00:10:96::a"],
              "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                        {"name": "metrics", "port": 9153}]}),
     ["hostnames", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP", "16m", "<none>"]),
    ("clusterIP only, type defaulted",
     service({"clusterIP": "10.96.0.1", "ports": [{"port": 443, "protocol": "TCP"}]}),
     ["hostnames", "ClusterIP", "10.96.0.1", "<none>", "443/TCP", "16m", "<none>"]),
])
def test_service_cells(case: str, obj: dict, expected: list[Any]) -> None:
    assert cells(SERVICE, obj) == expected, case


# ---------------------------------------------------------------------------
# Endpoints and EndpointSlices
# ---------------------------------------------------------------------------

def endpoints(subsets: list[dict[str, Any]] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                           "metadata": {"name": "hostnames", "namespace": "default",
                                        "creationTimestamp": ago(minutes=12)}}
    if subsets is not None:
        obj["subsets"] = subsets
    return obj


def addresses(*ips: str) -> list[dict[str, str]]:
    return [{"ip": ip} for ip in ips]


@pytest.mark.parametrize(("case", "subsets", "expected"), [
    ("seed: stored order, sorted as the controller stores it",
     [{"addresses": addresses("10.244.1.10", "10.244.1.8", "10.244.1.9"), "ports": [{"port": 9376}]}],
     "10.244.1.10:9376,10.244.1.8:9376,10.244.1.9:9376"),
    ("printed in stored order, not re-sorted",
     [{"addresses": addresses("10.244.1.8", "10.244.1.9", "10.244.1.10"), "ports": [{"port": 9376}]}],
     "10.244.1.8:9376,10.244.1.9:9376,10.244.1.10:9376"),
    ("no subsets", None, "<none>"),
    ("empty subsets", [], "<none>"),
    ("more than three",
     [{"addresses": addresses("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"),
       "ports": [{"port": 80}]}],
     "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."),
    ("each port of a subset repeats the addresses",
     [{"addresses": addresses("10.0.0.1", "10.0.0.2"), "ports": [{"name": "http", "port": 80},
                                                                  {"name": "https", "port": 443}]}],
     "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
    ("headless without ports lists bare IPs",
     [{"addresses": addresses("10.0.0.1", "10.0.0.2")}], "10.0.0.1,10.0.0.2"),
    ("IPv6 gets brackets",
     [{"addresses": addresses("fd00::5"), "ports": [{"port": 8080}]}], "[fd00::5]:8080"),
    ("only not-ready addresses print nothing",
     [{"notReadyAddresses": addresses("10.0.0.1"), "ports": [{"port": 80}]}], ""),
    ("subsets are walked in order",
     [{"addresses": addresses("10.0.0.1"), "ports": [{"port": 80}]},
      {"addresses": addresses("10.0.0.2", "10.0.0.3", "10.0.0.4"), "ports": [{"port": 81}]}],
     "10.0.0.1:80,10.0.0.2:81,10.0.0.3:81 + 1 more..."),
])
def test_endpoints_cell(case: str, subsets: list | None, expected: str) -> None:
    assert cells(ENDPOINTS, endpoints(subsets)) == ["hostnames", expected, "12m"], case


def endpoint_slice(ports: list[dict[str, Any]] | None, endpoints_: list[dict[str, Any]] | None) -> dict:
    obj: dict[str, Any] = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                           "metadata": {"name": "hostnames-x7k2p", "namespace": "default",
                                        "creationTimestamp": ago(minutes=12)},
                           "addressType": "IPv4"}
    if ports is not None:
        obj["ports"] = ports
    if endpoints_ is not None:
        obj["endpoints"] = endpoints_
    return obj


@pytest.mark.parametrize(("case", "ports", "eps", "expected_ports", "expected_endpoints"), [
    ("seed slice",
     [{"name": "", "protocol": "TCP", "port": 9376}],
     [{"addresses": ["10.244.1.10"], "conditions": {"ready": True}},
      {"addresses": ["10.244.1.8"], "conditions": {"ready": True}},
      {"addresses": ["10.244.1.9"], "conditions": {"ready": False}}],
     "9376", "10.244.1.10,10.244.1.8,10.244.1.9"),
    ("nothing set", None, None, "<unset>", "<unset>"),
    ("port without a number shows its name, or *",
     [{"name": "http"}, {}], [], "http,*", "<unset>"),
    ("more than three of each",
     [{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}],
     [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)],
     "1,2,3 + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."),
])
def test_endpoint_slice_cells(case: str, ports: list | None, eps: list | None,
                              expected_ports: str, expected_endpoints: str) -> None:
    assert cells(ENDPOINT_SLICE, endpoint_slice(ports, eps)) == [
        "hostnames-x7k2p", "IPv4", expected_ports, expected_endpoints, "12m"], case


# ---------------------------------------------------------------------------
# Namespace, Node, Lease
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "expected"), [
    ({"phase": "Active"}, "Active"),
    ({"phase": "Terminating"}, "Terminating"),
    (None, "Active"),  # core/v1 defaulting
])
def test_namespace_cells(status: dict | None, expected: str) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "kube-system", "creationTimestamp": ago(days=2, hours=3)}}
    if status is not None:
        obj["status"] = status
    assert cells(NAMESPACE, obj) == ["kube-system", expected, "2d3h"]


def node(conditions: list[dict[str, str]] | None = None, labels: dict[str, str] | None = None,
         unschedulable: bool = False, info: dict[str, str] | None = None,
         addresses_: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "192.168.0.106", "labels": labels or {},
                         "creationTimestamp": ago(hours=3, minutes=5)},
            "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"conditions": conditions or [], "nodeInfo": info or {},
                       "addresses": addresses_ or []}}


NODE_INFO = {"kubeletVersion": "v1.32.0-svcnet", "osImage": "Ubuntu 24.04 LTS",
             "kernelVersion": "6.8.0-31-generic", "containerRuntimeVersion": "svcnet://0.1.0"}


@pytest.mark.parametrize(("case", "obj", "expected"), [
    ("ready worker, wide fields",
     node([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
          info=NODE_INFO, addresses_=[{"type": "Hostname", "address": "node-1"},
                                      {"type": "InternalIP", "address": "192.168.0.106"}]),
     ["192.168.0.106", "Ready", "<none>", "3h5m", "v1.32.0-svcnet", "192.168.0.106", "<none>",
      "Ubuntu 24.04 LTS", "6.8.0-31-generic", "svcnet://0.1.0"]),
    ("not ready, cordoned, roles sorted from both label forms",
     node([{"type": "Ready", "status": "False"}], unschedulable=True,
          labels={"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "",
                  "kubernetes.io/role": "edge", "node-role.kubernetes.io/": ""},
          addresses_=[{"type": "ExternalIP", "address": "203.0.113.4"}]),
     ["192.168.0.106", "NotReady,SchedulingDisabled", "control-plane,edge,worker", "3h5m", "",
      "<none>", "203.0.113.4", "<unknown>", "<unknown>", "<unknown>"]),
    ("no Ready condition yet",
     node(),
     ["192.168.0.106", "Unknown", "<none>", "3h5m", "", "<none>", "<none>",
      "<unknown>", "<unknown>", "<unknown>"]),
    ("Ready Unknown reads NotReady",
     node([{"type": "Ready", "status": "Unknown"}]),
     ["192.168.0.106", "NotReady", "<none>", "3h5m", "", "<none>", "<none>",
      "<unknown>", "<unknown>", "<unknown>"]),
])
def test_node_cells(case: str, obj: dict, expected: list[Any]) -> None:
    assert cells(NODE, obj) == expected, case


@pytest.mark.parametrize(("spec", "holder"), [
    ({"holderIdentity": "node-1", "leaseDurationSeconds": 40}, "node-1"),
    ({}, ""),
])
def test_lease_cells(spec: dict, holder: str) -> None:
    obj = {"metadata": {"name": "node-1", "namespace": "kube-node-lease",
                        "creationTimestamp": ago(minutes=50)}, "spec": spec}
    assert cells(LEASE, obj) == ["node-1", holder, "50m"]


# ---------------------------------------------------------------------------
# Event
# ---------------------------------------------------------------------------

def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "hostnames-7c89f997cf-pdg7p.17c9a3b2f1e0d4c5", "namespace": "default",
                     "creationTimestamp": ago(minutes=4)},
        "involvedObject": {"kind": "Pod", "name": "hostnames-7c89f997cf-pdg7p", "namespace": "default",
                           "fieldPath": "spec.containers{serve-hostname}"},
        "reason": "Pulled", "type": "Normal",
        "message": "Container image \"k8s.gcr.io/serve_hostname\" already present on machine\n",
        "source": {"component": "kubelet", "host": "192.168.0.106"},
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(("case", "obj", "expected"), [
    ("classic kubelet event",
     event(firstTimestamp=ago(minutes=4, seconds=20), lastTimestamp=ago(minutes=2), count=3),
     ["2m", "Normal", "Pulled", "pod/hostnames-7c89f997cf-pdg7p", "spec.containers{serve-hostname}",
      "kubelet, 192.168.0.106",
      "Container image \"k8s.gcr.io/serve_hostname\" already present on machine",
      "4m20s", 3, "hostnames-7c89f997cf-pdg7p.17c9a3b2f1e0d4c5"]),
    ("no last timestamp falls back to first; no count means one",
     event(firstTimestamp=ago(seconds=30)),
     ["30s", "Normal", "Pulled", "pod/hostnames-7c89f997cf-pdg7p", "spec.containers{serve-hostname}",
      "kubelet, 192.168.0.106",
      "Container image \"k8s.gcr.io/serve_hostname\" already present on machine",
      "30s", 1, "hostnames-7c89f997cf-pdg7p.17c9a3b2f1e0d4c5"]),
    ("events.k8s.io style: eventTime, series, reporting controller",
     event(source={}, eventTime="2024-05-01T11:50:00.000000Z", reportingComponent="svcnet-scheduler",
           reportingInstance="svcnet-scheduler-host", type="Warning", reason="FailedScheduling",
           message="0/2 nodes are available", involvedObject={"kind": "Pod", "name": "web-0"},
           series={"count": 7, "lastObservedTime": "2024-05-01T11:59:00.000000Z"}),
     ["60s", "Warning", "FailedScheduling", "pod/web-0", "", "svcnet-scheduler, svcnet-scheduler-host",
      "0/2 nodes are available", "10m", 7, "hostnames-7c89f997cf-pdg7p.17c9a3b2f1e0d4c5"]),
    ("no times at all, object without a name, no host",
     event(source={"component": "svcnet-controller-manager"}, involvedObject={"kind": "Node"}),
     ["<unknown>", "Normal", "Pulled", "node", "", "svcnet-controller-manager",
      "Container image \"k8s.gcr.io/serve_hostname\" already present on machine",
      "<unknown>", 1, "hostnames-7c89f997cf-pdg7p.17c9a3b2f1e0d4c5"]),
])
def test_event_cells(case: str, obj: dict, expected: list[Any]) -> None:
    assert cells(EVENT, obj) == expected, case


# ---------------------------------------------------------------------------
# Deployment, ReplicaSet, StatefulSet
# ---------------------------------------------------------------------------

TEMPLATE = {"metadata": {"labels": {"app": "hostnames"}},
            "spec": {"containers": [{"name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
                                     "ports": [{"containerPort": 9376}]}]}}
TWO_CONTAINERS = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                          {"name": "log", "image": "busybox"}]}}


def workload(kind: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "hostnames", "namespace": "default", "creationTimestamp": ago(minutes=16)},
            "spec": spec, "status": status or {}}


@pytest.mark.parametrize(("case", "obj", "expected"), [
    ("seed deployment, all up",
     workload("Deployment", {"replicas": 3, "selector": {"matchLabels": {"app": "hostnames"}},
                             "template": TEMPLATE},
              {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
     ["hostnames", "3/3", 3, 3, "16m", "hostnames", "k8s.gcr.io/serve_hostname", "app=hostnames"]),
    ("rolling out, status empty, replicas defaulted to one",
     workload("Deployment", {"selector": {"matchLabels": {"tier": "web", "app": "shop"}},
                             "template": TWO_CONTAINERS}),
     ["hostnames", "0/1", 0, 0, "16m", "web,log", "nginx:1.27,busybox", "app=shop,tier=web"]),
    ("selector with expressions, values sorted",
     workload("Deployment", {"replicas": 2, "template": TEMPLATE, "selector": {
         "matchLabels": {"app": "hostnames"},
         "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "canary"]},
                              {"key": "beta", "operator": "Exists"},
                              {"key": "zone", "operator": "NotIn", "values": ["b"]},
                              {"key": "legacy", "operator": "DoesNotExist"}]}},
              {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}),
     ["hostnames", "1/2", 2, 1, "16m", "hostnames", "k8s.gcr.io/serve_hostname",
      "app=hostnames,beta,env in (canary,prod),!legacy,zone notin (b)"]),
    ("invalid selector operator",
     workload("Deployment", {"replicas": 0, "template": TEMPLATE,
                             "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
     ["hostnames", "0/0", 0, 0, "16m", "hostnames", "k8s.gcr.io/serve_hostname", "<invalid>"]),
])
def test_deployment_cells(case: str, obj: dict, expected: list[Any]) -> None:
    assert cells(DEPLOYMENT, obj) == expected, case


@pytest.mark.parametrize(("case", "obj", "expected"), [
    ("seed replica set",
     workload("ReplicaSet", {"replicas": 3, "template": TEMPLATE, "selector": {
         "matchLabels": {"app": "hostnames", "pod-template-hash": "7c89f997cf"}}},
              {"replicas": 3, "readyReplicas": 2}),
     ["hostnames", 3, 3, 2, "16m", "hostnames", "k8s.gcr.io/serve_hostname",
      "app=hostnames,pod-template-hash=7c89f997cf"]),
    ("scaled to zero, empty selector",
     workload("ReplicaSet", {"replicas": 0, "template": TWO_CONTAINERS, "selector": {}}),
     ["hostnames", 0, 0, 0, "16m", "web,log", "nginx:1.27,busybox", "<none>"]),
    ("invalid selector reads <error>",
     workload("ReplicaSet", {"replicas": 1, "template": TEMPLATE,
                             "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
     ["hostnames", 1, 0, 0, "16m", "hostnames", "k8s.gcr.io/serve_hostname", "<error>"]),
])
def test_replica_set_cells(case: str, obj: dict, expected: list[Any]) -> None:
    assert cells(REPLICA_SET, obj) == expected, case


@pytest.mark.parametrize(("case", "obj", "expected"), [
    ("seed statefulset ready",
     workload("StatefulSet", {"replicas": 3, "serviceName": "hostnames", "template": TEMPLATE},
              {"replicas": 3, "readyReplicas": 3}),
     ["hostnames", "3/3", "16m", "hostnames", "k8s.gcr.io/serve_hostname"]),
    ("starting, replicas defaulted",
     workload("StatefulSet", {"serviceName": "web", "template": TWO_CONTAINERS}),
     ["hostnames", "0/1", "16m", "web,log", "nginx:1.27,busybox"]),
])
def test_stateful_set_cells(case: str, obj: dict, expected: list[Any]) -> None:
    assert cells(STATEFUL_SET, obj) == expected, case


# ---------------------------------------------------------------------------
# The Table itself
# ---------------------------------------------------------------------------

SEED_PODS = [
    pod("hostnames-7c89f997cf-pdg7p", ip="10.244.1.8", statuses=[RUNNING], conditions=READY_CONDITIONS,
        created=ago(minutes=4, seconds=29)),
    pod("hostnames-7c89f997cf-tzmcn", ip="10.244.1.10", statuses=[RUNNING], conditions=READY_CONDITIONS,
        created=ago(minutes=3, seconds=22)),
    pod("hostnames-7c89f997cf-vc4qc", ip="10.244.1.9", statuses=[RUNNING], conditions=READY_CONDITIONS,
        created=ago(minutes=4, seconds=29)),
]


def test_list_table_carries_the_seed_rows_and_list_metadata() -> None:
    table = tables.to_table(POD, SEED_PODS, now=NOW,
                            list_meta={"resourceVersion": "1234", "continue": "", "remainingItemCount": None})
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "1234"}
    assert table["columnDefinitions"] == tables.column_definitions(POD)
    assert [row["cells"] for row in table["rows"]] == [
        ["hostnames-7c89f997cf-pdg7p", "1/1", "Running", "0", "4m29s", "10.244.1.8", "192.168.0.106",
         "<none>", "<none>"],
        ["hostnames-7c89f997cf-tzmcn", "1/1", "Running", "0", "3m22s", "10.244.1.10", "192.168.0.106",
         "<none>", "<none>"],
        ["hostnames-7c89f997cf-vc4qc", "1/1", "Running", "0", "4m29s", "10.244.1.9", "192.168.0.106",
         "<none>", "<none>"],
    ]


def test_list_metadata_keeps_continue_and_remaining_item_count() -> None:
    table = tables.to_table(POD, SEED_PODS[:1], now=NOW,
                            list_meta={"resourceVersion": "99", "continue": "tok", "remainingItemCount": 2})
    assert table["metadata"] == {"resourceVersion": "99", "continue": "tok", "remainingItemCount": 2}


def test_single_object_table_uses_the_objects_resource_version() -> None:
    assert tables.to_table(POD, SEED_PODS[:1], now=NOW)["metadata"] == {"resourceVersion": "42"}


def test_empty_list_table_has_no_rows_but_keeps_columns() -> None:
    table = tables.to_table(SERVICE, [], now=NOW, list_meta={"resourceVersion": "7"})
    assert table["rows"] == []
    assert len(table["columnDefinitions"]) == 7


def test_include_object_metadata_gives_partial_object_metadata() -> None:
    row = tables.to_table(POD, SEED_PODS[:1], now=NOW)["rows"][0]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": SEED_PODS[0]["metadata"]}


def test_partial_object_metadata_is_a_copy() -> None:
    row = tables.to_table(POD, SEED_PODS[:1], now=NOW)["rows"][0]
    row["object"]["metadata"]["labels"]["app"] = "changed"
    assert SEED_PODS[0]["metadata"]["labels"]["app"] == "hostnames"


def test_empty_include_object_means_metadata() -> None:
    row = tables.to_table(POD, SEED_PODS[:1], now=NOW, include_object="")["rows"][0]
    assert row["object"]["kind"] == "PartialObjectMetadata"


def test_include_object_object_embeds_the_full_object_with_its_type() -> None:
    bare = dict(SEED_PODS[0])
    del bare["apiVersion"], bare["kind"]
    row = tables.to_table(POD, [bare], now=NOW, include_object="Object")["rows"][0]
    assert row["object"] == {"apiVersion": "v1", "kind": "Pod", **bare}


def test_include_object_none_sends_null_objects() -> None:
    table = tables.to_table(POD, SEED_PODS, now=NOW, include_object="None")
    assert [row["object"] for row in table["rows"]] == [None, None, None]
    assert '"object": null' in json.dumps(table)


def test_unknown_include_object_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as caught:
        tables.to_table(POD, SEED_PODS, now=NOW, include_object="Everything")
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    assert 'includeObject: Invalid value: "Everything"' in caught.value.message


def test_watch_events_after_the_first_send_null_column_definitions() -> None:
    first = tables.to_table(POD, SEED_PODS[:1], now=NOW)
    later = tables.to_table(POD, SEED_PODS[1:2], now=NOW, include_headers=False)
    assert first["columnDefinitions"] == tables.column_definitions(POD)
    assert later["columnDefinitions"] is None
    assert later["rows"][0]["cells"][0] == "hostnames-7c89f997cf-tzmcn"


@pytest.mark.parametrize(("phase", "reason"), [("Succeeded", "Succeeded"), ("Failed", "Failed")])
def test_finished_pods_carry_a_completed_row_condition(phase: str, reason: str) -> None:
    row = tables.to_table(POD, [pod(phase=phase)], now=NOW)["rows"][0]
    assert [(c["type"], c["status"], c["reason"]) for c in row["conditions"]] == [
        ("Completed", "True", reason)]


def test_running_pods_carry_no_row_conditions() -> None:
    assert "conditions" not in tables.to_table(POD, SEED_PODS[:1], now=NOW)["rows"][0]


def test_kind_without_a_printer_gets_name_and_created_at() -> None:
    # A kind svcnet has no printer for (ConfigMap was one, until it got upstream's).
    widgets = Resource("example.com", "v1", "Widget", "widgets", "widget", True)
    table = tables.to_table(widgets, [{"metadata": {"name": "cfg", "creationTimestamp": ago(hours=1)}}],
                            now=NOW)
    assert [(c["name"], c["type"], c["format"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", "name"), ("Created At", "date", "")]
    assert table["rows"][0]["cells"] == ["cfg", "2024-05-01T11:00:00Z"]


def test_table_is_plain_json() -> None:
    table = tables.to_table(EVENT, [event(count=2, lastTimestamp=ago(minutes=1))], now=NOW,
                            list_meta={"resourceVersion": "5"})
    assert json.loads(json.dumps(table)) == table


def test_naive_now_is_read_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert tables.row_cells(SERVICE, service({"clusterIPs": ["10.96.0.1"]}), naive)[5] == "16m"
