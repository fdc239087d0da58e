"""LoadBalancer Services on the nodes' LAN, as MetalLB's layer-2 mode does it (pure decisions).

Three questions, each a pure function over plain objects:

- `parse_pool` / `parse_pools`: which addresses may be handed out (MetalLB's IPAddressPool;
  `svcnet up --lb-pool`, one CIDR per family).
  The LAN's network and broadcast addresses are never handed out (MetalLB's avoidBuggyIPs), nor
  any address a node, the client or the control plane already has.
- `allocate`: the address a Service gets (controller/service/allocator in MetalLB): the one it
  already holds, else spec.loadBalancerIP when it is in the pool and free, else the lowest free
  one; `AllocationFailed` with the reason when none fits. `allocate_families` does that for each
  family in spec.ipFamilies, in order.
- `elect_announcer`: which node answers ARP (NDP for IPv6) for an address (speaker/layer2_controller.go
  ShouldAnnounce): among the eligible nodes, the first by sha256(node + "#" + ip). Every speaker
  computes the same answer from the same caches, so exactly one node announces without talking
  to the others; when that node drops out, the next in the order takes over.

A Service with spec.loadBalancerClass set belongs to another implementation: svcnet leaves it
alone, as upstream cloud controllers and MetalLB do.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.api.meta import parse_time_or_none
from svcnet.api.objects import condition_of, labels_of, name_of, namespace_of, spec_of, status_of

Obj = dict[str, Any]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOCATION_FAILED = "AllocationFailed"  # MetalLB's Warning reason when no address can be given
IP_ALLOCATED = "IPAllocated"  # MetalLB's Normal reason when one is
NODE_ASSIGNED = "nodeAssigned"  # MetalLB speaker's Normal reason: which node announces
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
MAX_POOL_SIZE = 1 << 16  # the pool is kept as a list of addresses
IP_MODE_VIP = "VIP"  # traffic reaches the node with the LB IP as destination; kube-proxy DNATs it


class PoolError(ValueError):
    """A pool that cannot be used: not a CIDR, outside the LAN, or overlapping a node's address."""


@dataclass(frozen=True)
class Pool:
    cidr: str
    addresses: tuple[Address, ...]  # in order: the lowest free one is handed out first

    def __contains__(self, ip: object) -> bool:
        try:
            return ipaddress.ip_address(str(ip)) in self._set
        except ValueError:
            return False

    @functools.cached_property
    def _set(self) -> frozenset[Address]:
        return frozenset(self.addresses)

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.cidr).version


@dataclass(frozen=True)
class Pools:
    """At most one pool per family (`--lb-pool 192.168.0.240/28,fd00:192:168::fff0/124`)."""
    pools: tuple[Pool, ...]

    @property
    def cidr(self) -> str:
        """The pools as the flag names them: comma-separated, IPv4 first."""
        return ",".join(p.cidr for p in self.pools)

    def __contains__(self, ip: object) -> bool:
        return any(ip in pool for pool in self.pools)

    def of_family(self, family: str) -> Pool | None:
        version = 6 if family == "IPv6" else 4
        return next((p for p in self.pools if p.version == version), None)


def parse_pools(cidrs: str, lans: Mapping[int, str] | None = None, taken: Iterable[str] = ()) -> Pools:
    """The pools a comma-separated --lb-pool names, each checked by parse_pool against the LAN of
    its family (`lans`: version -> CIDR); at most one per family, as kube's dual-stack flags."""
    taken = list(taken)
    pools = []
    for cidr in (part.strip() for part in cidrs.split(",")):
        try:
            version = ipaddress.ip_network(cidr, strict=False).version
        except ValueError as exc:
            raise PoolError(f"--lb-pool {cidr!r} is not a CIDR: {exc}") from None
        if any(p.version == version for p in pools):
            raise PoolError(f"--lb-pool {cidrs} has more than one IPv{version} CIDR; give at most one per family")
        lan = None
        if lans is not None:
            lan = lans.get(version)
            if lan is None:
                raise PoolError(f"--lb-pool {cidr}: the nodes' network has no IPv{version} addresses")
        pools.append(parse_pool(cidr, lan, [ip for ip in taken if ipaddress.ip_address(ip).version == version]))
    return Pools(tuple(sorted(pools, key=lambda p: p.version)))


def parse_pool(cidr: str, lan: str | None = None, taken: Iterable[str] = ()) -> Pool:
    """The pool `cidr` names; with `lan`, it must lie inside it (ARP reaches only the LAN) and
    skip the LAN's network and broadcast addresses; `taken` (node, client, control-plane
    addresses) must not be in it."""
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=True)
    except ValueError as exc:
        raise PoolError(f"--lb-pool {cidr!r} is not a CIDR: {exc}") from None
    skip: set[Address] = set()
    if lan is not None:
        lan_net = ipaddress.ip_network(lan)
        if network.version != lan_net.version or not network.subnet_of(lan_net):  # type: ignore[arg-type]
            raise PoolError(f"--lb-pool {cidr} is not inside the nodes' network {lan}: "
                            f"only addresses on the LAN can be announced with ARP or NDP")
        # IPv6 has no broadcast; its all-ones address is skipped all the same (MetalLB's avoidBuggyIPs).
        skip = {lan_net.network_address, lan_net.broadcast_address}
    clashes = sorted(str(ip) for ip in taken if ipaddress.ip_address(ip) in network)
    if clashes:
        raise PoolError(f"--lb-pool {cidr} overlaps addresses in use on the LAN: {', '.join(clashes)}")
    if network.num_addresses > MAX_POOL_SIZE:
        raise PoolError(f"--lb-pool {cidr} has {network.num_addresses} addresses; at most {MAX_POOL_SIZE}")
    addresses = tuple(ip for ip in network if ip not in skip)
    if not addresses:
        raise PoolError(f"--lb-pool {cidr} has no usable address")
    return Pool(str(network), addresses)


# ---- which Services are ours


def is_ours(service: Obj) -> bool:
    """A type=LoadBalancer Service with no loadBalancerClass: the default implementation's."""
    spec = spec_of(service)
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(service: Obj) -> tuple[str, ...]:
    return tuple(entry["ip"] for entry in (status_of(service).get("loadBalancer") or {}).get("ingress") or []
                 if entry.get("ip"))


def service_key(service: Obj) -> str:
    return f"{namespace_of(service)}/{name_of(service)}"


def ingress_status(ips: str | Iterable[str] | None) -> Obj:
    """status.loadBalancer for addresses, in order (for none: cleared)."""
    ips = [ips] if isinstance(ips, str) else list(ips or ())
    return {"ingress": [{"ip": ip, "ipMode": IP_MODE_VIP} for ip in ips]} if ips else {}


# ---- allocation


@dataclass(frozen=True)
class Allocation:
    ip: str | None  # None: the Service stays pending
    reason: str = ""  # an Event reason when something is worth saying
    message: str = ""


def holders(services: Iterable[Obj], pool: Pool) -> dict[str, str]:
    """ip -> the key of the Service holding it, from what Services' status says (how the
    allocator rebuilds its state after a restart, as MetalLB's controller does). When two claim
    one address, the older Service keeps it."""
    held: dict[str, tuple[str, str]] = {}
    for svc in services:
        if not is_ours(svc):
            continue
        created = str((svc.get("metadata") or {}).get("creationTimestamp") or "")
        for ip in ingress_ips(svc):
            if ip in pool and (ip not in held or (created, service_key(svc)) < held[ip]):
                held[ip] = (created, service_key(svc))
    return {ip: key for ip, (_, key) in held.items()}


def _families(service: Obj) -> tuple[str, ...]:
    families = spec_of(service).get("ipFamilies") or ["IPv4"]
    return tuple(families)


def allocate(service: Obj, pool: Pool, held: Mapping[str, str]) -> Allocation:
    """The address `service` should have, given who holds what (`holders`)."""
    key = service_key(service)
    family = "IPv4" if pool.version == 4 else "IPv6"
    if family not in _families(service):
        return Allocation(None, ALLOCATION_FAILED,
                          f"Failed to allocate IP for \"{key}\": the pool {pool.cidr} has no "
                          f"{'/'.join(_families(service))} address")
    wanted = (spec_of(service).get("loadBalancerIP") or "").strip()
    if _version(wanted) not in (0, pool.version):
        wanted = ""  # the deprecated field names one address: it is for its own family's pool only
    mine = [ip for ip in ingress_ips(service) if held.get(ip) == key and ip in pool]
    if wanted:
        if wanted not in pool:
            return Allocation(None, ALLOCATION_FAILED,
                              f"Failed to allocate IP for \"{key}\": \"{wanted}\" is not allowed in config "
                              f"(spec.loadBalancerIP is outside the pool {pool.cidr})")
        holder = held.get(wanted)
        if holder is not None and holder != key:
            return Allocation(None, ALLOCATION_FAILED,
                              f"Failed to allocate IP for \"{key}\": \"{wanted}\" is already in use by {holder}")
        return Allocation(wanted, "" if wanted in mine else IP_ALLOCATED,
                          f"Assigned IP [\"{wanted}\"]")
    if mine:
        return Allocation(mine[0])
    for ip in pool.addresses:
        if str(ip) not in held:
            return Allocation(str(ip), IP_ALLOCATED, f"Assigned IP [\"{ip}\"]")
    return Allocation(None, ALLOCATION_FAILED,
                      f"Failed to allocate IP for \"{key}\": no available IPs in pool {pool.cidr} "
                      f"(all {len(pool.addresses)} are in use)")


def _version(ip: str) -> int:
    """4 or 6; 0 for text that is no address (or none)."""
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return 0


def allocate_families(service: Obj, pools: Pools, held: Mapping[str, str]) -> list[Allocation]:
    """One allocation per family of the Service's spec.ipFamilies, in that order (so the primary
    family's address comes first in status): from that family's pool, or pending with
    AllocationFailed when no pool of that family is configured."""
    key = service_key(service)
    out = []
    for family in _families(service):
        pool = pools.of_family(family)
        if pool is None:
            out.append(Allocation(None, ALLOCATION_FAILED,
                                  f"Failed to allocate IP for \"{key}\": no {family} pool is configured "
                                  f"(--lb-pool {pools.cidr or 'is empty'})"))
        else:
            out.append(allocate(service, pool, held))
    return out


# ---- which node announces


def node_is_ready(node: Obj) -> bool:
    ready = condition_of(node, "Ready")
    return bool(ready) and ready.get("status") == "True"


def can_announce(node: Obj) -> bool:
    """Ready, and not excluded from external load balancers (the label MetalLB honours too)."""
    return node_is_ready(node) and EXCLUDE_LABEL not in labels_of(node)


def serving_nodes(slices: Iterable[Obj]) -> set[str]:
    """Nodes with an endpoint that can serve (ready, or serving and not terminating: upstream's
    EndpointCanServe), from the Service's EndpointSlices."""
    nodes = set()
    for eps in slices:
        for endpoint in eps.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            serving = conditions.get("serving", conditions.get("ready"))
            if (conditions.get("ready") is not False and serving is not False) and endpoint.get("nodeName"):
                nodes.add(endpoint["nodeName"])
    return nodes


def eligible_nodes(service: Obj, live_nodes: Iterable[str], slices: Iterable[Obj]) -> list[str]:
    """Nodes that may announce the Service: live ones (a Ready node whose speaker is alive) with
    at least one serving endpoint somewhere; with externalTrafficPolicy Local only those that
    have one themselves (another node would drop the traffic)."""
    live = sorted(set(live_nodes))
    with_endpoints = serving_nodes(slices)
    if not with_endpoints:
        return []
    if spec_of(service).get("externalTrafficPolicy") == "Local":
        return [n for n in live if n in with_endpoints]
    return live


def announcement_order(ip: str, nodes: Iterable[str]) -> list[str]:
    """Nodes ordered by sha256(node + "#" + ip): the first announces, the next takes over from it."""
    return sorted(nodes, key=lambda node: hashlib.sha256(f"{node}#{ip}".encode()).digest())


def elect_announcer(ip: str, nodes: Iterable[str]) -> str | None:
    order = announcement_order(ip, nodes)
    return order[0] if order else None


# ---- which speakers are alive (MetalLB finds out with memberlist; svcnet's speakers renew a Lease)

SPEAKER_LEASE_PREFIX = "svcnet-speaker-"
SPEAKER_LEASE_NAMESPACE = "kube-system"


def speaker_lease(node: str, renew_time: str, duration_seconds: int) -> Obj:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": SPEAKER_LEASE_PREFIX + node, "namespace": SPEAKER_LEASE_NAMESPACE},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": duration_seconds,
                     "renewTime": renew_time}}


def micro_time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def live_speakers(leases: Iterable[Obj], now: dt.datetime) -> set[str]:
    """Nodes whose speaker renewed its Lease within the Lease's duration."""
    live = set()
    for lease in leases:
        name = name_of(lease)
        spec = spec_of(lease)
        renewed = parse_time_or_none(spec.get("renewTime"))
        if not name.startswith(SPEAKER_LEASE_PREFIX) or renewed is None:
            continue
        if now - renewed <= dt.timedelta(seconds=float(spec.get("leaseDurationSeconds") or 0)):
            live.add(str(spec.get("holderIdentity") or name[len(SPEAKER_LEASE_PREFIX):]))
    return live


@dataclass(frozen=True)
class Announcement:
    ip: str
    service: str  # namespace/name
    node: str  # the node that answers ARP for ip


def announcements(services: Iterable[Obj], nodes: Iterable[Obj], live: set[str],
                  slices_of: Callable[[str], list[Obj]]) -> list[Announcement]:
    """Who announces each LoadBalancer address: for each of our Services' ingress IPs, the
    elected node among Ready nodes with a live speaker (and, with externalTrafficPolicy Local, a
    serving endpoint). slices_of(namespace/name) gives a Service's EndpointSlices."""
    ready = sorted(name_of(n) for n in nodes if can_announce(n))
    # No live speaker at all means the Leases cannot be renewed (the API is away), not that every
    # speaker died: then every Ready node counts, as MetalLB does without memberlist, so the
    # address stays where it was instead of going dark.
    candidates = [n for n in ready if n in live] or ready
    out = []
    for svc in services:
        if not is_ours(svc):
            continue
        # One election per Service (by its first address), so both families of a dual-stack one
        # are answered by the same node, as MetalLB does; IPv6 ones in the form NDP names them.
        ips = [str(ipaddress.ip_address(ip)) for ip in ingress_ips(svc) if _version(ip)]
        if not ips:
            continue
        key = service_key(svc)
        node = elect_announcer(ips[0], eligible_nodes(svc, candidates, slices_of(key)))
        if node is not None:
            out.extend(Announcement(ip, key, node) for ip in ips)
    return out
