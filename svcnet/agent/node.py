"""The Node object and its heartbeat, as kubelet registers and renews them.

Pure builders (`node_object`, `node_status`, `node_lease`) make the objects
from a `NodeIdentity` (what the topology planned) and `HostFacts` (what the
machine is); `NodeRegistration` writes them: it creates the Node (or takes
over an existing one), writes its status, renews a Lease in kube-node-lease
every 10 s (kubelet's NodeLease heartbeat, 40 s duration) and writes the
status again when it changes or 5 minutes after the last write (kubelet's
nodeStatusReportFrequency), so lastHeartbeatTime stays fresh without a write
every 10 s.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.agent.kubeletapi import KUBELET_PORT
from svcnet.api.errors import ApiError
from svcnet.api.objects import name_of, status_of, uid_of
from svcnet.api.resources import lookup

log = logging.getLogger("svcnet.agent.node")

Obj = dict[str, Any]

KUBELET_VERSION = "v1.32.0-svcnet"
RUNTIME_VERSION = "svcnet://0.1.0"
# kubelet's default --max-pods (pkg/kubelet/apis/config/v1beta1/defaults.go,
# SetDefaults_KubeletConfiguration). svcnet's agent has no such flag and its real
# limit is the IPs its pod CIDR can lease (253 in a /24), so a node admits as many
# pods as it can address (`pod_capacity`); this is the value for a node without a CIDR.
MAX_PODS = 110


def pod_capacity(pod_cidrs: tuple[str, ...]) -> int:
    """Pods a node can run: the IPv4 pod CIDR's addresses less network, gateway and broadcast."""
    for cidr in pod_cidrs:
        net = ipaddress.ip_network(cidr)
        if net.version == 4:
            return max(0, net.num_addresses - 3)
    return MAX_PODS
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0
STATUS_REPORT_SECONDS = 300.0
# Where the node keeps its runtime state, for `svcnet exec` on this host (kubectl reaches pods
# through the node's kubelet API instead).
RUNTIME_ROOT_ANNOTATION = "svcnet.agent/runtime-root"
LABEL_ZONE = "topology.kubernetes.io/zone"

NODES = lookup("", "v1", "nodes")
LEASES = lookup("coordination.k8s.io", "v1", "leases")
assert NODES is not None and LEASES is not None


@dataclass(frozen=True)
class NodeIdentity:
    name: str
    addresses: tuple[str, ...]  # node IPs, primary family first
    pod_cidrs: tuple[str, ...]
    runtime_root: str = ""
    kubelet_port: int = KUBELET_PORT  # where its kubelet API listens (status.daemonEndpoints)
    zone: str = ""  # labelled topology.kubernetes.io/zone, as kubelet --node-labels would (kind does it so)

    @property
    def max_pods(self) -> int:
        return pod_capacity(self.pod_cidrs)


@dataclass(frozen=True)
class HostFacts:
    cpus: int
    memory_kib: int
    kernel_version: str
    os_image: str
    architecture: str  # GOARCH spelling: amd64, arm64
    machine_id: str = ""
    boot_id: str = ""


_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def host_facts() -> HostFacts:
    """What this machine is (reads /proc and /etc)."""
    memory = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1])
    os_image = "Linux"
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_image = line.partition("=")[2].strip().strip('"')
    machine = platform.machine()
    return HostFacts(os.cpu_count() or 1, memory, platform.release(), os_image, _GOARCH.get(machine, machine),
                     _read("/etc/machine-id"), _read("/proc/sys/kernel/random/boot_id"))


def _time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_object(identity: NodeIdentity, facts: HostFacts) -> Obj:
    """The Node kubelet registers: labels, podCIDR(s) (svcnet plans them; there is no IPAM controller)."""
    metadata: Obj = {
        "name": identity.name,
        "labels": {
            "kubernetes.io/hostname": identity.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": facts.architecture,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": facts.architecture,
        },
        "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
    }
    if identity.zone:
        metadata["labels"][LABEL_ZONE] = identity.zone
    if identity.runtime_root:
        metadata["annotations"][RUNTIME_ROOT_ANNOTATION] = identity.runtime_root
    spec: Obj = {}
    if identity.pod_cidrs:
        spec = {"podCIDR": identity.pod_cidrs[0], "podCIDRs": list(identity.pod_cidrs)}
    return {"apiVersion": "v1", "kind": "Node", "metadata": metadata, "spec": spec}


def _condition(kind: str, ok: bool, reason: str, message: str, now: str,
               previous: Mapping[str, Any] | None) -> Obj:
    status = "True" if ok else "False"
    since = previous.get("lastTransitionTime") if previous and previous.get("status") == status else None
    return {"type": kind, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": since or now,
            "reason": reason, "message": message}


def node_status(identity: NodeIdentity, facts: HostFacts, now: dt.datetime, *, ready: bool = True,
                not_ready_message: str = "", previous: Mapping[str, Any] | None = None) -> Obj:
    """NodeStatus as kubelet's setters build it; transition times are kept from `previous`."""
    stamp = _time(now)
    old = {c.get("type"): c for c in (previous or {}).get("conditions") or []}
    resources = {"cpu": str(facts.cpus), "memory": f"{facts.memory_kib}Ki", "pods": str(identity.max_pods),
                 "ephemeral-storage": "0", "hugepages-2Mi": "0"}
    conditions = [
        _condition("MemoryPressure", False, "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
                   stamp, old.get("MemoryPressure")),
        _condition("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
                   stamp, old.get("DiskPressure")),
        _condition("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available",
                   stamp, old.get("PIDPressure")),
        _condition("Ready", ready, "KubeletReady" if ready else "KubeletNotReady",
                   "kubelet is posting ready status" if ready else not_ready_message, stamp, old.get("Ready")),
    ]
    addresses = [{"type": "InternalIP", "address": ip} for ip in identity.addresses]
    addresses.append({"type": "Hostname", "address": identity.name})
    return {
        "conditions": conditions,
        "addresses": addresses,
        "capacity": resources,
        "allocatable": dict(resources),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": identity.kubelet_port}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    }


def _without_heartbeats(status: Mapping[str, Any]) -> Obj:
    """A status with heartbeat times removed: what decides whether a write is needed before the report period."""
    conditions = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status.get("conditions") or []]
    return {**status, "conditions": conditions}


def node_lease(node: Obj, now: dt.datetime, acquired: str | None = None) -> Obj:
    """The node's Lease in kube-node-lease, owned by its Node (so it goes with it)."""
    name = name_of(node)
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid_of(node)}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": _micro_time(now), **({"acquireTime": acquired} if acquired else {})},
    }


class NodeRegistration:
    """Registers the node and keeps it fresh until stopped."""

    def __init__(self, api: Any, identity: NodeIdentity, facts: HostFacts, *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 renew_seconds: float = LEASE_RENEW_SECONDS) -> None:
        self.api = api
        self.identity = identity
        self.facts = facts
        self.clock = clock
        self.renew_seconds = renew_seconds
        self.node: Obj | None = None
        self._last_status_write: dt.datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> Obj:
        """Create the Node, or take over one of that name (labels, podCIDRs, annotations made current)."""
        wanted = node_object(self.identity, self.facts)
        try:
            node = await self.api.create(NODES, None, wanted)
        except ApiError as exc:
            if exc.code != 409:
                raise
            node = await self.api.get(NODES, None, self.identity.name)
            md = node.setdefault("metadata", {})
            md.setdefault("labels", {}).update(wanted["metadata"]["labels"])
            md.setdefault("annotations", {}).update(wanted["metadata"]["annotations"])
            spec = node.setdefault("spec", {})
            if wanted["spec"] and spec.get("podCIDRs") != wanted["spec"]["podCIDRs"]:
                spec.update(wanted["spec"])  # immutable upstream once set; here the topology is the truth
            node = await self.api.update(NODES, None, node)
        self.node = node
        await self.update_status(force=True)
        await self.renew_lease()
        return self.node

    async def update_status(self, force: bool = False) -> None:
        assert self.node is not None
        now = self.clock()
        previous = status_of(self.node)
        status = node_status(self.identity, self.facts, now, previous=previous)
        stale = self._last_status_write is None or (now - self._last_status_write).total_seconds() >= STATUS_REPORT_SECONDS
        if not force and not stale and _without_heartbeats(status) == _without_heartbeats(previous):
            return
        for _ in range(3):
            try:
                self.node = await self.api.update_status(NODES, None, {**self.node, "status": status})
                self._last_status_write = now
                return
            except ApiError as exc:
                if exc.code != 409:
                    raise
                self.node = await self.api.get(NODES, None, self.identity.name)

    async def renew_lease(self) -> None:
        assert self.node is not None
        now = self.clock()
        name = self.identity.name
        try:
            current = await self.api.get(LEASES, LEASE_NAMESPACE, name)
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self.api.create(LEASES, LEASE_NAMESPACE, node_lease(self.node, now, _micro_time(now)))
            return
        spec = current.setdefault("spec", {})
        spec.update(node_lease(self.node, now)["spec"] | {"acquireTime": spec.get("acquireTime") or _micro_time(now)})
        await self.api.update(LEASES, LEASE_NAMESPACE, current)

    async def heartbeat_forever(self, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        while True:
            await sleep(self.renew_seconds)
            try:
                await self.renew_lease()
                # Compare with the Node as the API has it: the node lifecycle controller may have
                # marked it Unknown while this agent was away (kubelet reads it back too).
                self.node = await self.api.get(NODES, None, self.identity.name)
                await self.update_status()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API may be restarting: the next beat retries
                log.warning("node heartbeat failed: %s", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self.heartbeat_forever(), name="node-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
