"""Pod traffic leaving the cluster network is masqueraded as the node, as flannel or the bridge
CNI plugin's ipMasq do.

Machines outside the cluster (the `client` namespace, a DNS upstream there)
know only the LAN, never the pod CIDRs, so a reply to a pod address would have
nowhere to go. Each node therefore rewrites the source of its own pods'
packets bound for anything outside the cluster's pod CIDR to the node's
address; pod-to-pod traffic keeps its source (Services see real client IPs).

The rules live in one chain of the node namespace's nat table, jumped to from
POSTROUTING. They are svcnet's (SVCNET-, not KUBE-), so the service proxy's
cleanup never touches them; `svcnet down` removes them with the namespace.
"""
from __future__ import annotations

from dataclasses import dataclass

from svcnet.agent.nodeplan import NodePlan
from svcnet.cluster.topology import TopologyPlan
from svcnet.proxy.model import IPV4, IPV6

CHAIN = "SVCNET-POD-EGRESS"
JUMP_COMMENT = "svcnet: masquerade pod traffic leaving the cluster network"


@dataclass(frozen=True)
class EgressRules:
    family: str
    restore: str  # iptables-restore --noflush input: declares (and so flushes) CHAIN, then fills it
    jump: tuple[str, ...]  # the POSTROUTING rule that sends packets to CHAIN


def egress_rules(plan: TopologyPlan, node: NodePlan) -> list[EgressRules]:
    """The node's egress masquerade rules per IP family (pure)."""
    families = [(IPV4, plan.pod_cidr_v4, node.pod_cidr_v4)]
    if plan.pod_cidr_v6 and node.pod_cidr_v6:
        families.append((IPV6, plan.pod_cidr_v6, node.pod_cidr_v6))
    out = []
    for family, cluster_pods, node_pods in families:
        restore = "\n".join((
            "*nat",
            f":{CHAIN} - [0:0]",
            f'-A {CHAIN} -d {cluster_pods} -m comment --comment "svcnet: pod to pod keeps its source" -j RETURN',
            f'-A {CHAIN} -s {node_pods} -m comment --comment "svcnet: pod to outside the cluster" -j MASQUERADE',
            "COMMIT",
            "",
        ))
        jump = ("-m", "comment", "--comment", JUMP_COMMENT, "-j", CHAIN)
        out.append(EgressRules(family, restore, jump))
    return out


def apply_egress(plan: TopologyPlan) -> None:
    """Write every node's egress rules inside its own namespace (idempotent)."""
    from svcnet.kernel.iptables import NetnsIptables

    for node in plan.nodes:
        backend = NetnsIptables(node.namespace)
        for rules in egress_rules(plan, node):
            backend.restore(rules.family, rules.restore)
            backend.ensure_rule(rules.family, "nat", "POSTROUTING", rules.jump)
