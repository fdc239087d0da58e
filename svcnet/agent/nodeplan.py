"""The node's network as the agent needs it: its namespace, addresses, pod CIDRs and bridge.

`svcnet.cluster.topology` plans the whole cluster and hands each node's agent
its `NodePlan`; the agent wires pods to the node's bridge from it. The cluster
id and the name prefix every namespace of a cluster shares live here, so both
sides name namespaces the same way without the agent importing the cluster.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CLUSTER_ID_PATTERN = re.compile(r"^[a-z0-9]{1,12}$")
NODE_BRIDGE = "cni0"

# Per-namespace sysctls: DAD off so addresses are usable at once (IPAM guarantees uniqueness).
BASE_SYSCTLS = (("net.ipv6.conf.default.accept_dad", "0"), ("net.ipv6.conf.all.accept_dad", "0"))


def check_cluster_id(cluster_id: str) -> str:
    """Ids are short and dash-free so one cluster's prefix never prefixes another's."""
    if not CLUSTER_ID_PATTERN.match(cluster_id):
        raise ValueError(f"cluster id {cluster_id!r} must be 1-12 lowercase letters or digits")
    return cluster_id


def cluster_prefix(cluster_id: str) -> str:
    return f"svcnet-{check_cluster_id(cluster_id)}-"


@dataclass(frozen=True)
class NodePlan:
    """One node of the cluster network, as `svcnet.cluster.topology.plan_topology` planned it."""

    cluster_id: str
    name: str
    index: int
    namespace: str
    ipv4: str
    ipv6: str | None
    pod_cidr_v4: str
    pod_cidr_v6: str | None
    gateway_v4: str  # cni0's address, every pod's default gateway
    gateway_v6: str | None
    bridge: str = NODE_BRIDGE
    bridge_mac: str = ""
    zone: str = ""  # its topology.kubernetes.io/zone label ("": none), from `svcnet up --zones`
    host: int = 1  # which simulated host (L2 segment) it sits on, from `svcnet up --hosts`
    # Its networks that the overlay's DirectRouting treats as its own (its host's LAN), and the
    # overlay ("vxlan" when the cluster spans several hosts; "": the topology routes pods, host-gw).
    lan_cidrs: tuple[str, ...] = ()
    overlay: str = ""
    overlay_cidrs: tuple[str, ...] = ()  # the cluster's pod CIDRs: routes inside them are the overlay's
    uplink: str = "eth0"
    pod_mtu: int = 0  # the pods' interfaces' MTU (0: the kernel's default); the agent sets it for the overlay

    @property
    def pod_cidrs(self) -> tuple[str, ...]:
        """As Node.spec.podCIDRs: primary (IPv4) first."""
        return (self.pod_cidr_v4,) + ((self.pod_cidr_v6,) if self.pod_cidr_v6 else ())

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.ipv4,) + ((self.ipv6,) if self.ipv6 else ())
