"""The node's pod egress masquerade rules (pure)."""
from __future__ import annotations

from svcnet.cluster.egress import CHAIN, egress_rules
from svcnet.cluster.topology import plan_topology


def test_pods_leaving_the_cluster_network_are_masqueraded_and_pod_to_pod_is_not() -> None:
    plan = plan_topology("abc", 2)
    v4, v6 = egress_rules(plan, plan.nodes[1])
    lines = v4.restore.splitlines()
    assert lines[:2] == ["*nat", f":{CHAIN} - [0:0]"] and lines[-1] == "COMMIT"
    # RETURN for the whole cluster pod CIDR comes before MASQUERADE of this node's pods.
    assert lines[2].startswith(f"-A {CHAIN} -d 10.244.0.0/16 ") and lines[2].endswith("-j RETURN")
    assert lines[3].startswith(f"-A {CHAIN} -s 10.244.2.0/24 ") and lines[3].endswith("-j MASQUERADE")
    assert v4.jump[-2:] == ("-j", CHAIN)
    assert "-d fd00:10:244::/56" in v6.restore and "-s fd00:10:244:2::/64" in v6.restore


def test_an_ipv4_only_cluster_has_only_ipv4_rules() -> None:
    plan = plan_topology("abc", 1, node_cidr_v6=None, pod_cidr_v6=None)
    assert [r.family for r in egress_rules(plan, plan.nodes[0])] == ["IPv4"]
