"""coordination.k8s.io/v1 types: Lease."""
from __future__ import annotations

from .dsl import COORDINATION, define, define_kind

define_kind(COORDINATION, "Lease", "coordination.k8s.io", "v1", "spec LeaseSpec")
define(COORDINATION, "LeaseSpec", """
    acquireTime microtime
    holderIdentity string
    leaseDurationSeconds int32
    leaseTransitions int32
    preferredHolder string
    renewTime microtime
    strategy string go=v1.CoordinatedLeaseStrategy
""")


