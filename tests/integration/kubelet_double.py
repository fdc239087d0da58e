"""Playing kubelet through the API until the node agent exists: node objects and pod status.

Tests use these to do what kubelet would: register Ready nodes, and set a
pod's phase, IP and Ready condition through the status subresource.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any

from tests.integration.apiserver_harness import ApiServerProcess
from tests.waiting import wait_for

NOW = "2026-11-27T08:00:00Z"


def register_node(server: ApiServerProcess, name: str, pod_cidr: str, address: str) -> dict[str, Any]:
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}}
    status, body = server.request("POST", "/api/v1/nodes", node)
    assert status == 201, body
    body["status"] = {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": NOW, "lastTransitionTime": NOW}],
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
    }
    status, body = server.request("PUT", f"/api/v1/nodes/{name}/status", body)
    assert status == 200, body
    return body


def set_pod_status(server: ApiServerProcess, namespace: str, name: str, *, ip: str | None,
                   ready: bool, phase: str = "Running") -> dict[str, Any]:
    """Write status as kubelet would; retried on conflict (the controllers write pods too)."""
    def attempt():
        status, pod = server.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        assert status == 200, pod
        containers = (pod.get("spec") or {}).get("containers") or []
        pod["status"] = {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": NOW},
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": NOW},
                {"type": "ContainersReady", "status": "True" if ready else "False",
                 "lastTransitionTime": NOW},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": NOW},
            ],
            "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "",
                                   "ready": ready, "restartCount": 0, "started": True,
                                   "state": {"running": {"startedAt": NOW}}} for c in containers],
            "startTime": NOW,
        }
        if ip:
            pod["status"]["podIP"] = ip
            pod["status"]["podIPs"] = [{"ip": ip}]
            pod["status"]["hostIP"] = "192.168.0.106"
        status, body = server.request("PUT", f"/api/v1/namespaces/{namespace}/pods/{name}/status", pod)
        if status == 409:
            return None
        assert status == 200, body
        return body

    return wait_for(attempt, timeout=10, what=f"status write for pod {name}")


class FakeKubelet:
    """Marks every pod Running and Ready with the next IP as soon as it exists (and is bound,
    when require_node is set); deletes terminating pods as kubelet finishes them."""

    def __init__(self, server: ApiServerProcess, namespace: str = "default",
                 ip_prefix: str = "10.244.1.", first_ip: int = 2, require_node: bool = False) -> None:
        self.server = server
        self.namespace = namespace
        self.ip_prefix = ip_prefix
        self._ips = itertools.count(first_ip)
        self.require_node = require_node
        self.assigned: dict[str, str] = {}
        self.hold_ready: set[str] = set()  # pod names left unready on purpose
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.sync_once()
            except Exception:  # the server may be restarting; the next pass retries
                pass

    def sync_once(self) -> None:
        status, pods = self.server.request("GET", f"/api/v1/namespaces/{self.namespace}/pods")
        if status != 200:
            return
        for pod in pods["items"]:
            md, spec, st = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
            name = md["name"]
            if md.get("deletionTimestamp"):
                self.server.request("DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{name}",
                                    {"gracePeriodSeconds": 0})
                continue
            if self.require_node and not spec.get("nodeName"):
                continue
            if name in self.hold_ready or (st.get("phase") == "Running" and st.get("podIP")):
                continue
            ip = self.assigned.setdefault(name, f"{self.ip_prefix}{next(self._ips)}")
            set_pod_status(self.server, self.namespace, name, ip=ip, ready=True)
