"""networking.k8s.io/v1 types: ServiceCIDR (the Service IP ranges kube-proxy's nftables mode watches)."""
from __future__ import annotations

from .dsl import NETWORKING, define, define_kind

define_kind(NETWORKING, "ServiceCIDR", "networking.k8s.io", "v1", """
    spec ServiceCIDRSpec
    status ServiceCIDRStatus
""")
define(NETWORKING, "ServiceCIDRSpec", "cidrs []string list=atomic")
define(NETWORKING, "ServiceCIDRStatus",
       "conditions []meta.Condition patch=merge key=type list=map keys=type")
