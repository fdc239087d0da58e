"""The ServiceCIDR objects' two controllers, run by the API server.

- The default ServiceCIDR (kube-apiserver's pkg/controlplane/controller/defaultservicecidr):
  `kubernetes`, holding the API server's --service-cluster-ip-range values, created at start
  and again whenever it is missing, upgraded from single- to dual-stack when a second range is
  configured, never otherwise changed; Ready=True once its CIDRs match the configuration.
- Every ServiceCIDR's protection (kube-controller-manager's pkg/controller/servicecidrs): the
  finalizer networking.k8s.io/service-cidr-finalizer on each live object and Ready=True; a
  deleted one keeps the finalizer, Ready=False with reason Terminating, while a Service IP it
  holds is in no other ServiceCIDR, and loses it once none is, after a grace period that lets
  allocators notice the deletion.

Upstream counts IPs in use from IPAddress objects; svcnet's allocator keeps them too
(service_alloc.py), but this counts the Services' own clusterIPs, the same set (an IPAddress
exists for each), read through the Registry.
The decisions (which condition, whether a deletion is blocked) are pure functions; the rest
reads and writes through the Registry.
"""
from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

from svcnet.api import jsoncodec, meta, objects
from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver.registry import Registry, WriteOptions

log = logging.getLogger("svcnet.apiserver.servicecidrs")

Obj = dict[str, Any]

SERVICE_CIDRS = lookup("networking.k8s.io", "v1", "servicecidrs")
SERVICES = lookup("", "v1", "services")
DEFAULT_NAME = "kubernetes"
FINALIZER = "networking.k8s.io/service-cidr-finalizer"
READY = "Ready"
TERMINATING = "Terminating"
# How long a deleted ServiceCIDR with nothing in use keeps its finalizer (servicecidrs
# controller's deletionGracePeriod), and how often the default one is checked (its interval).
DELETION_GRACE_SECONDS = 10.0
INTERVAL_SECONDS = 10.0

DEFAULT_MANAGER = "kubernetes-service-cidr-controller"  # the default controller's field manager
CONTROLLER_MANAGER = "service-cidr-controller"  # the servicecidrs controller's apply manager
FINALIZER_MANAGER = "kube-controller-manager"  # its finalizer patches (client user agent)

DEFAULT_READY_MESSAGE = "Kubernetes default Service CIDR is ready"
READY_MESSAGE = "Kubernetes Service CIDR is ready"
IN_USE_MESSAGE = ("There are still IPAddresses referencing the ServiceCIDR, please remove them or "
                  "create a new ServiceCIDR")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# (object's CIDRs, configured CIDRs) already warned about: the check runs every 10 s.
_REPORTED_MISMATCHES: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()


# --------------------------------------------------------------------------- pure decisions

def canonical_cidrs(configured: Iterable[str]) -> list[str]:
    """The configured ranges as the default object holds them (net.IPNet.String(), primary first)."""
    return [str(ipaddress.ip_network(c, strict=False)) for c in configured]


def ready_condition(obj: Obj) -> Obj | None:
    for cond in objects.status_of(obj).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == READY:
            return cond
    return None


def with_ready(obj: Obj, status: str, reason: str, message: str, now: str) -> Obj | None:
    """obj with its Ready condition set, or None when it already says exactly that.

    The transition time moves only when the status does (meta.SetStatusCondition's rule).
    """
    current = ready_condition(obj)
    if current is not None and (current.get("status"), current.get("reason", ""), current.get("message", "")) \
            == (status, reason, message):
        return None
    new = jsoncodec.deepcopy(obj)
    since = current.get("lastTransitionTime") if current and current.get("status") == status else now
    cond = {"lastTransitionTime": since, "message": message, "reason": reason, "status": status, "type": READY}
    status_obj = new.get("status") if isinstance(new.get("status"), dict) else {}
    conditions = [c for c in status_obj.get("conditions") or []
                  if not (isinstance(c, dict) and c.get("type") == READY)]
    new["status"] = {**status_obj, "conditions": [*conditions, cond]}
    return new


def _networks(obj: Obj) -> list[Network]:
    out = []
    for cidr in objects.spec_of(obj).get("cidrs") or []:
        try:
            out.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            continue
    return out


def deletion_blocker(obj: Obj, all_cidrs: list[Obj], in_use: Iterable[str]) -> str | None:
    """An in-use IP only `obj` holds (its deletion would orphan it), or None when it may go.

    As the servicecidrs controller's canDeleteCIDR: a ServiceCIDR whose every range lies in
    another ServiceCIDR never blocks; otherwise each in-use IP inside it must be in another one.
    """
    name = objects.name_of(obj)
    others = [n for o in all_cidrs if objects.name_of(o) != name for n in _networks(o)]
    mine = _networks(obj)
    if all(any(m.version == o.version and m.subnet_of(o) for o in others) for m in mine):
        return None
    for text in in_use:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if any(ip in m for m in mine) and not any(ip in o for o in others):
            return text
    return None


def cluster_ips(services: Iterable[Obj]) -> list[str]:
    """Every ClusterIP the Services hold (what upstream's IPAddress objects record)."""
    ips: list[str] = []
    for svc in services:
        spec = objects.spec_of(svc)
        held = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        ips.extend(str(ip) for ip in held if ip and ip != "None")
    return ips


# ------------------------------------------------------------------------- the two controllers

def _get(registry: Registry, name: str) -> Obj | None:
    try:
        return registry.get(SERVICE_CIDRS, None, name)
    except ApiError as exc:
        if exc.code != 404:
            raise
    return None


def _write_status(registry: Registry, new: Obj, manager: str) -> None:
    registry.update(SERVICE_CIDRS, None, objects.name_of(new), new, WriteOptions(field_manager=manager),
                    subresource="status")


def ensure_default(registry: Registry, configured: Iterable[str]) -> None:
    """Create the `kubernetes` ServiceCIDR when missing, upgrade it to dual-stack, mark it Ready."""
    cidrs = canonical_cidrs(configured)
    current = _get(registry, DEFAULT_NAME)
    if current is None:
        log.info("creating the default ServiceCIDR with CIDRs %s", cidrs)
        current = registry.create(SERVICE_CIDRS, None, {
            "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
            "metadata": {"name": DEFAULT_NAME}, "spec": {"cidrs": cidrs},
        }, WriteOptions(field_manager="kube-apiserver"))
    spec_cidrs = list(objects.spec_of(current).get("cidrs") or [])
    if len(cidrs) == 2 and len(spec_cidrs) == 1 and spec_cidrs[0] == cidrs[0]:
        log.info("updating the default ServiceCIDR from single-stack %s to dual-stack %s", spec_cidrs, cidrs)
        upgraded = jsoncodec.deepcopy(current)
        upgraded["spec"]["cidrs"] = cidrs
        registry.update(SERVICE_CIDRS, None, DEFAULT_NAME, upgraded, WriteOptions(field_manager="kube-apiserver"))
        return
    _sync_default_status(registry, current, cidrs)


def _sync_default_status(registry: Registry, current: Obj, cidrs: list[str]) -> None:
    if objects.metadata_of(current).get("deletionTimestamp"):
        return  # its deletion is the servicecidrs controller's to handle
    spec_cidrs = tuple(objects.spec_of(current).get("cidrs") or [])
    if list(spec_cidrs) != cidrs:
        if (spec_cidrs, tuple(cidrs)) not in _REPORTED_MISMATCHES:  # once, as upstream reports it
            _REPORTED_MISMATCHES.add((spec_cidrs, tuple(cidrs)))
            log.warning("the default ServiceCIDR %s does not match the configured ranges %s; configure "
                        "the ranges to match it or delete it", list(spec_cidrs), cidrs)
        return
    cond = ready_condition(current)
    if cond is not None and cond.get("status") in ("True", "False"):
        return  # set already; a Ready=False from someone else upstream leaves to an administrator
    new = with_ready(current, "True", "", DEFAULT_READY_MESSAGE, meta.rfc3339(registry.clock()))
    if new is not None:
        _write_status(registry, new, DEFAULT_MANAGER)


def sync(registry: Registry, obj: Obj, all_cidrs: list[Obj], in_use: Callable[[], list[str]]) -> float | None:
    """One ServiceCIDR through the servicecidrs controller; seconds until it wants another look.

    in_use gives the IPs Services hold; it is called only for an object being deleted (listing
    every Service on each pass would cost a large cluster for nothing).
    """
    md = objects.metadata_of(obj)
    now = registry.clock()
    if not md.get("deletionTimestamp"):
        if FINALIZER not in (md.get("finalizers") or []):
            obj = jsoncodec.deepcopy(obj)
            meta.metadata(obj).setdefault("finalizers", []).append(FINALIZER)
            obj, _ = registry.update(SERVICE_CIDRS, None, objects.name_of(obj), obj,
                                     WriteOptions(field_manager=FINALIZER_MANAGER))
        new = with_ready(obj, "True", "", READY_MESSAGE, meta.rfc3339(now))
        if new is not None:
            _write_status(registry, new, CONTROLLER_MANAGER)
        return None
    if FINALIZER not in (md.get("finalizers") or []):
        return None
    blocker = deletion_blocker(obj, all_cidrs, in_use())
    if blocker is not None:
        new = with_ready(obj, "False", TERMINATING, IN_USE_MESSAGE, meta.rfc3339(now))
        if new is not None:
            log.info("ServiceCIDR %s stays while %s is in use", objects.name_of(obj), blocker)
            _write_status(registry, new, CONTROLLER_MANAGER)
        return None
    deleted_at = meta.parse_time_or_none(md["deletionTimestamp"]) or now
    remaining = DELETION_GRACE_SECONDS - (now - deleted_at).total_seconds()
    if remaining > 0:
        return remaining
    kept = jsoncodec.deepcopy(obj)
    meta.metadata(kept)["finalizers"] = [f for f in md.get("finalizers") or [] if f != FINALIZER]
    registry.update(SERVICE_CIDRS, None, objects.name_of(obj), kept, WriteOptions(field_manager=FINALIZER_MANAGER))
    return None


def listed(registry: Registry) -> list[Obj]:
    """Every ServiceCIDR object."""
    return registry.list(SERVICE_CIDRS, None).items


def reconcile(registry: Registry, configured: Iterable[str]) -> float:
    """One pass of both controllers over every ServiceCIDR; seconds until the next pass is due."""
    wait = INTERVAL_SECONDS
    try:
        ensure_default(registry, configured)
    except ApiError as exc:  # a conflicting write in between: the next pass retries
        log.info("default ServiceCIDR: %s", exc)
        wait = 1.0
    all_cidrs = listed(registry)

    @functools.cache
    def in_use() -> list[str]:
        return cluster_ips(registry.list(SERVICES, None).items)

    for obj in all_cidrs:
        try:
            again = sync(registry, obj, all_cidrs, in_use)
        except ApiError as exc:
            log.info("ServiceCIDR %s: %s", objects.name_of(obj), exc)
            again = 1.0
        if again is not None:
            wait = min(wait, max(again, 0.05))
    return wait
