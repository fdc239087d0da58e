"""Pod sandbox networking, as the bridge CNI plugin with host-local IPAM does it.

A pod gets its own namespace `svcnet-<id>-pod-<short uid>` holding `lo` (up)
and `eth0`, one end of a veth whose other end, `veth<short uid>`, is a port of
its node's `cni0` bridge with hairpin mode on (so a pod can reach itself
through its Service's VIP). eth0 carries the pod's leased IPv4 (and IPv6)
address and default routes via the bridge's addresses.

Setup and teardown are idempotent and converge: a half-made sandbox is
completed by the next setup and removed by teardown, which also frees the
lease. `list_pod_networks` finds the sandboxes of a node after an agent restart.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from svcnet.agent.ipam import LeaseStore, PodLease
from svcnet.agent.nodeplan import BASE_SYSCTLS, NodePlan, cluster_prefix
from svcnet.kernel import NamespaceNotFound, NetworkKernel, Route
from svcnet.kernel.converge import LinkSpec, NamespaceSpec, converge

POD_INTERFACE = "eth0"
SHORT_ID_LENGTH = 10  # "veth" + 10 = 14 characters, inside Linux's 15


@dataclass(frozen=True)
class PodNetwork:
    netns_name: str
    netns_path: str
    ipv4: str
    ipv6: str | None
    gateway: str
    gateway_v6: str | None
    host_veth: str
    pod_uid: str | None = None  # None when found in the kernel with no lease to name it

    @property
    def ips(self) -> tuple[str, ...]:
        """As Pod.status.podIPs: IPv4 first."""
        return (self.ipv4,) + ((self.ipv6,) if self.ipv6 else ())


def pod_short_id(pod_uid: str) -> str:
    """The start of the uid (so names match `kubectl get pod -o jsonpath={.metadata.uid}`), or a hash of it."""
    compact = pod_uid.replace("-", "").lower()
    if len(compact) >= SHORT_ID_LENGTH and re.fullmatch(r"[0-9a-f]+", compact):
        return compact[:SHORT_ID_LENGTH]
    return hashlib.sha256(pod_uid.encode()).hexdigest()[:SHORT_ID_LENGTH]


def pod_namespace_prefix(cluster_id: str) -> str:
    return cluster_prefix(cluster_id) + "pod-"


def pod_namespace(cluster_id: str, pod_uid: str) -> str:
    return pod_namespace_prefix(cluster_id) + pod_short_id(pod_uid)


def host_veth_name(pod_uid: str) -> str:
    return "veth" + pod_short_id(pod_uid)


def pod_namespace_specs(node: NodePlan, netns: str, host_veth: str, lease: PodLease) -> tuple[NamespaceSpec, ...]:
    """The pod's namespace, and its port on the node's bridge (the only thing in the node spec)."""
    prefix4 = ipaddress.ip_network(node.pod_cidr_v4).prefixlen
    addresses = (f"{lease.ipv4}/{prefix4}",)
    routes = [Route(dst="0.0.0.0/0", via=node.gateway_v4)]
    if lease.ipv6 and node.pod_cidr_v6 and node.gateway_v6:
        addresses += (f"{lease.ipv6}/{ipaddress.ip_network(node.pod_cidr_v6).prefixlen}",)
        routes.append(Route(dst="::/0", via=node.gateway_v6))
    pod = NamespaceSpec(
        name=netns,
        links=(
            LinkSpec(name="lo", kind="loopback"),
            LinkSpec(name=POD_INTERFACE, kind="veth", peer_namespace=node.namespace, peer_name=host_veth,
                     addresses=addresses, mtu=node.pod_mtu or None),
        ),
        routes=tuple(routes),
        sysctls=BASE_SYSCTLS,
    )
    port = NamespaceSpec(
        name=node.namespace,
        # Both ends take the overlay's MTU, as the bridge CNI plugin given flannel's FLANNEL_MTU does.
        links=(LinkSpec(name=host_veth, kind="veth", peer_namespace=netns, peer_name=POD_INTERFACE,
                        master=node.bridge, hairpin=True, mtu=node.pod_mtu or None),),
        prune_routes=False,  # the node's own routes belong to the topology
        prune_addresses=False,  # nor its addresses: so the node's (growing) address list is never read here
    )
    return (pod, port)


def setup_pod_network(kernel: NetworkKernel, node: NodePlan, pod_uid: str, leases: LeaseStore) -> PodNetwork:
    """Create (or complete) the pod's network; the same pod always gets the same lease. On failure nothing is left."""
    if node.namespace not in kernel.list_namespaces():
        raise NamespaceNotFound(f"node namespace {node.namespace} does not exist: set up the cluster network first")
    netns = pod_namespace(node.cluster_id, pod_uid)
    host_veth = host_veth_name(pod_uid)
    lease = leases.allocate(pod_uid, netns)
    try:
        converge(kernel, pod_namespace_specs(node, netns, host_veth, lease))
    except BaseException:
        teardown_pod_network(kernel, node, pod_uid, leases)
        raise
    return PodNetwork(netns_name=netns, netns_path=kernel.namespace_path(netns), ipv4=lease.ipv4,
                      ipv6=lease.ipv6, gateway=node.gateway_v4, gateway_v6=node.gateway_v6,
                      host_veth=host_veth, pod_uid=pod_uid)


def teardown_pod_network(kernel: NetworkKernel, node: NodePlan, pod_uid: str, leases: LeaseStore) -> None:
    """Remove the pod's veth and namespace and free its lease. Safe to repeat.

    The host end is deleted explicitly: a namespace whose processes are still
    alive outlives its /run/netns name, and its veth would stay on the bridge.
    """
    namespaces = set(kernel.list_namespaces())
    if node.namespace in namespaces:
        kernel.delete_link(node.namespace, host_veth_name(pod_uid))
    kernel.delete_namespace(pod_namespace(node.cluster_id, pod_uid))
    leases.release(pod_uid)


def list_pod_networks(kernel: NetworkKernel, node: NodePlan,
                      leases: LeaseStore | None = None) -> tuple[PodNetwork, ...]:
    """Pod sandboxes wired to this node's bridge, read back from the kernel (and named from the leases)."""
    prefix = pod_namespace_prefix(node.cluster_id)
    namespaces = set(kernel.list_namespaces())
    if node.namespace not in namespaces:
        return ()
    uid_by_netns = {lease.netns: lease.pod_uid for lease in leases.load().leases} if leases else {}
    found = []
    for link in kernel.list_links(node.namespace):
        if link.kind != "veth" or not link.name.startswith("veth") or link.master != node.bridge:
            continue
        netns = prefix + link.name[len("veth"):]
        if netns not in namespaces:
            continue
        ips = [a for a in kernel.list_addresses(netns)
               if a.link == POD_INTERFACE and not ipaddress.ip_interface(a.cidr).ip.is_link_local]
        ipv4 = next((a.ip for a in ips if a.version == 4), None)
        if ipv4 is None:
            continue  # half-made: no address yet; setup or teardown will settle it
        found.append(PodNetwork(
            netns_name=netns, netns_path=kernel.namespace_path(netns), ipv4=ipv4,
            ipv6=next((a.ip for a in ips if a.version == 6), None), gateway=node.gateway_v4,
            gateway_v6=node.gateway_v6, host_veth=link.name, pod_uid=uid_by_netns.get(netns)))
    return tuple(sorted(found, key=lambda p: p.netns_name))


def release_leaked_leases(kernel: NetworkKernel, cluster_id: str, leases: LeaseStore) -> tuple[PodLease, ...]:
    """After a restart: free leases whose pod namespace is gone (a host reboot, a crash mid-teardown)."""
    prefix = pod_namespace_prefix(cluster_id)
    return leases.release_missing(name for name in kernel.list_namespaces() if name.startswith(prefix))
