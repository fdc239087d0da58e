"""Rulesets in knftables' text form, as upstream's nftables proxier tests expect them.

OVERALL is the output kube-proxy's TestOverallNFTablesRules (pkg/proxy/nftables/
proxier_test.go) expects: its base rules plus six Services (ClusterIP svc1,
LoadBalancer with Local policy and an externalIP svc2, NodePort svc3,
externalIP svc4 with two endpoints, LoadBalancer with source ranges and
affinity svc5, ClusterIP without endpoints svc6). Node IP 192.168.0.2, pods
10.0.0.0/8, Service CIDR 172.30.0.0/16. Behaviour we match, kept as our fixture.
"""
from __future__ import annotations

from pathlib import Path

NODE_IPS = ("192.168.0.2", "192.168.1.2", "192.168.99.11")

FIXTURES = Path(__file__).parent / "fixtures" / "nftables"

# The same text the renderer's conformance test compares with (tests/unit/proxy/test_render_nftables.py):
# upstream's expected output at the commit we match (b0f823e6, ~v1.33).
BASE = (FIXTURES / "base-ipv4.nft").read_text()
SERVICES = (FIXTURES / "overall.nft").read_text()
OVERALL = BASE + SERVICES


def creation_order(text: str) -> str:
    """The same lines reordered so that every object exists before it is used (as `nft -f` needs):
    tables, then chains/sets/maps, then rules, then elements."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    rank = {"table": 0, "chain": 1, "set": 1, "map": 1, "rule": 2, "element": 3}
    return "\n".join(sorted(lines, key=lambda line: rank[line.split()[1]])) + "\n"
