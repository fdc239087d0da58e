"""The cluster as DNS sees it: slim copies of Services, EndpointSlices, Pods, Namespaces.

Like CoreDNS's object package, only the fields DNS needs are kept (memory grows
with the cluster). `ZoneData` is updated one watch event at a time; every update
returns the *tags* of the names whose answers may have changed, so the answer
table (svcnet.dns.table) drops only those:

- "svc:<name>.<namespace>"  answers about one Service (its own name, SRV, endpoints)
- "ns:<namespace>"           everything under a namespace (namespace created/deleted)
- "pods:<namespace>"         pod records of a namespace (verified mode)
- "ip:<address>"             PTR answers for an address
- "apex"                     the NS answer and ns.dns.<zone> (they follow kube-dns's endpoints)

No I/O: objects are the dicts the API sends.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from svcnet.api.objects import (
    LABEL_SERVICE_NAME,
    is_being_deleted,
    labels_of,
    name_of,
    namespace_of,
    spec_of,
    status_of,
)

Obj = dict[str, Any]

SERVICE_NAME_LABEL = LABEL_SERVICE_NAME
LAST_CHANGE_TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"
# Namespaces a Kubernetes API server always has.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Port:
    name: str
    protocol: str
    port: int  # -1: the object declares no ports (CoreDNS's sentinel; no SRV for it)


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    type: str
    cluster_ips: tuple[str, ...]  # ("None",) for headless
    external_name: str
    ports: tuple[Port, ...]
    external_ips: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def headless(self) -> bool:
        return not self.cluster_ips or self.cluster_ips[0] == "None"


@dataclass(frozen=True)
class Address:
    ip: str
    hostname: str
    target_name: str


@dataclass(frozen=True)
class Endpoints:
    """One EndpointSlice, ready addresses only, as CoreDNS keeps it."""

    name: str
    namespace: str
    service: str
    ports: tuple[Port, ...]
    addresses: tuple[Address, ...]

    @property
    def service_key(self) -> str:
        return f"{self.service}.{self.namespace}"


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    ip: str


# ------------------------------------------------------------------ slimming

def slim_service(obj: Obj) -> Service:
    spec = spec_of(obj)
    cluster_ips = tuple(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    if spec.get("type") == "ExternalName" and not cluster_ips:
        cluster_ips = ("",)
    ports = tuple(Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP"), int(p.get("port") or 0))
                  for p in spec.get("ports") or []) or (Port("", "", -1),)
    status_lb = (status_of(obj).get("loadBalancer") or {}).get("ingress") or []
    external_ips = tuple(spec.get("externalIPs") or ()) + tuple(
        i.get("ip") or i.get("hostname") or "" for i in status_lb)
    return Service(name=name_of(obj), namespace=namespace_of(obj) or "default",
                   type=str(spec.get("type") or "ClusterIP"), cluster_ips=cluster_ips or ("",),
                   external_name=str(spec.get("externalName") or ""), ports=ports,
                   external_ips=external_ips)


def _ready(conditions: Obj) -> bool:
    # An unset ready condition means "unknown", which consumers treat as ready (API docs, CoreDNS).
    ready = conditions.get("ready")
    return True if ready is None else bool(ready)


def slim_endpoint_slice(obj: Obj) -> Endpoints:
    ports = tuple(Port(str(p.get("name") or ""), str(p.get("protocol") or ""),
                       int(p["port"]) if p.get("port") is not None else -1)
                  for p in obj.get("ports") or []) or (Port("", "", -1),)
    addresses: list[Address] = []
    for ep in obj.get("endpoints") or []:
        if not _ready(ep.get("conditions") or {}):
            continue
        target = (ep.get("targetRef") or {}).get("name") or ""
        for ip in ep.get("addresses") or []:
            addresses.append(Address(str(ip), str(ep.get("hostname") or ""),
                                     target if len(target) < 64 else ""))
    return Endpoints(name=name_of(obj), namespace=namespace_of(obj) or "default",
                     service=str(labels_of(obj).get(SERVICE_NAME_LABEL) or ""),
                     ports=ports, addresses=tuple(addresses))


def slim_pod(obj: Obj) -> Pod | None:
    """None for pods DNS ignores: terminating ones (CoreDNS drops them) and those without an IP."""
    if is_being_deleted(obj):
        return None
    ip = str(status_of(obj).get("podIP") or "")
    if not ip:
        return None
    return Pod(name_of(obj), namespace_of(obj) or "default", ip)


# --------------------------------------------------------------------- store

@dataclass
class ZoneData:
    """Everything answers.py reads, with the indexes CoreDNS's controller keeps."""

    services: dict[str, Service] = field(default_factory=dict)  # "name.namespace"
    endpoints: dict[str, dict[str, Endpoints]] = field(default_factory=dict)  # service key -> slice
    pods_by_ip: dict[str, dict[str, Pod]] = field(default_factory=dict)  # ip -> "ns/name" -> Pod
    namespaces: set[str] = field(default_factory=set)
    service_ips: dict[str, set[str]] = field(default_factory=dict)  # ip -> service keys
    endpoint_ips: dict[str, set[str]] = field(default_factory=dict)  # ip -> service keys
    synced: bool = False
    serial: int = 0  # SOA serial: unix time of the last change, as CoreDNS's Modified()
    generation: int = 0  # counts changes (the serial moves once a second): what the cache checks
    _slice_owner: dict[str, str] = field(default_factory=dict)  # "ns/slice" -> service key
    _pod_keys: dict[str, Pod] = field(default_factory=dict)  # "ns/name" -> Pod

    # ----------------------------------------------------------- reads
    def endpoints_of(self, service_key: str) -> Iterable[Endpoints]:
        return (self.endpoints.get(service_key) or {}).values()

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self.namespaces

    # ---------------------------------------------------------- writes
    def touch(self, now: float | None = None) -> None:
        self.serial = int(time.time() if now is None else now)
        self.generation += 1

    def set_service(self, obj: Obj, deleted: bool = False) -> set[str]:
        svc = slim_service(obj)
        tags = {f"svc:{svc.key}"}
        old = self.services.pop(svc.key, None)
        if old is not None:
            tags |= self._unindex_ips(self.service_ips, old.cluster_ips + old.external_ips, svc.key)
        if not deleted:
            self.services[svc.key] = svc
            tags |= self._index_ips(self.service_ips, svc.cluster_ips + svc.external_ips, svc.key)
        if svc.name == "kube-dns" or (old is not None and old.name == "kube-dns"):
            tags.add("apex")
        return tags

    def set_endpoint_slice(self, obj: Obj, deleted: bool = False) -> set[str]:
        eps = slim_endpoint_slice(obj)
        slice_key = f"{eps.namespace}/{eps.name}"
        tags: set[str] = {"apex"} if self._touches_apex(eps) else set()
        owner = self._slice_owner.pop(slice_key, None)
        if owner is not None:
            old = self.endpoints.get(owner, {}).pop(slice_key, None)
            if not self.endpoints.get(owner):
                self.endpoints.pop(owner, None)
            tags.add(f"svc:{owner}")
            if old is not None:
                tags |= self._unindex_ips(self.endpoint_ips, tuple(a.ip for a in old.addresses), owner)
        if not deleted and eps.service:
            key = eps.service_key
            self.endpoints.setdefault(key, {})[slice_key] = eps
            self._slice_owner[slice_key] = key
            tags.add(f"svc:{key}")
            tags |= self._index_ips(self.endpoint_ips, tuple(a.ip for a in eps.addresses), key)
        return tags

    def set_pod(self, obj: Obj, deleted: bool = False) -> set[str]:
        namespace = namespace_of(obj) or "default"
        key = f"{namespace}/{name_of(obj)}"
        tags = {f"pods:{namespace}"}
        old = self._pod_keys.pop(key, None)
        if old is not None:
            by_ip = self.pods_by_ip.get(old.ip, {})
            by_ip.pop(key, None)
            if not by_ip:
                self.pods_by_ip.pop(old.ip, None)
        pod = None if deleted else slim_pod(obj)
        if pod is not None:
            self._pod_keys[key] = pod
            self.pods_by_ip.setdefault(pod.ip, {})[key] = pod
        return tags

    def set_namespace(self, obj: Obj, deleted: bool = False) -> set[str]:
        name = name_of(obj)
        if deleted:
            self.namespaces.discard(name)
        else:
            self.namespaces.add(name)
        return {f"ns:{name}"}

    def apply(self, kind: str, obj: Obj, deleted: bool = False) -> set[str]:
        """One object of kind Service/EndpointSlice/Pod/Namespace added, changed or deleted."""
        setter = {"Service": self.set_service, "EndpointSlice": self.set_endpoint_slice,
                  "Pod": self.set_pod, "Namespace": self.set_namespace}.get(kind)
        if setter is None:
            return set()
        tags = setter(obj, deleted)
        self.touch()
        return tags

    # ---------------------------------------------------------- helpers
    def _touches_apex(self, eps: Endpoints) -> bool:
        return eps.service == "kube-dns"

    @staticmethod
    def _index_ips(index: dict[str, set[str]], ips: Iterable[str], key: str) -> set[str]:
        tags = set()
        for ip in ips:
            if ip and ip != "None":
                index.setdefault(ip, set()).add(key)
                tags.add(f"ip:{ip}")
        return tags

    @staticmethod
    def _unindex_ips(index: dict[str, set[str]], ips: Iterable[str], key: str) -> set[str]:
        tags = set()
        for ip in ips:
            keys = index.get(ip)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[ip]
                tags.add(f"ip:{ip}")
        return tags


KINDS = ("Namespace", "Service", "EndpointSlice", "Pod")


def zone_from_objects(objects: Iterable[Obj], *, implicit_namespaces: bool = True,
                      serial: int | None = None) -> ZoneData:
    """A synced ZoneData from a set of objects (manifests, tests).

    implicit_namespaces: the namespaces any API server has, plus every namespace an
    object lives in (the server would have refused it otherwise).
    """
    data = ZoneData()
    for obj in objects:
        kind = obj.get("kind")
        if kind in KINDS:
            data.apply(str(kind), obj)
            if implicit_namespaces:
                ns = namespace_of(obj)
                if ns:
                    data.namespaces.add(ns)
    if implicit_namespaces:
        data.namespaces.update(SYSTEM_NAMESPACES)
    data.synced = True
    data.serial = int(time.time()) if serial is None else serial
    return data
