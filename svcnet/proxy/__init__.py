"""The service proxy: cluster view -> plan (policy) -> rules (per backend) -> apply.

model.build_model() reads Services and EndpointSlices into neutral service-port
and endpoint values; plan.plan() decides per service port what must happen on
this node; iptables.render_iptables() spells the plan as iptables-restore
input; changes.ChangeTracker records events between syncs and says which
services changed (for partial syncs). All of it is pure; applying rules to a
node's network namespace lives elsewhere.
"""
from svcnet.proxy.changes import ChangeTracker, SyncInput
from svcnet.proxy.model import (
    IPV4,
    IPV6,
    EndpointInfo,
    ProxyState,
    ServicePortInfo,
    ServicePortName,
    build_model,
)
from svcnet.proxy.plan import Plan, ProxyConfig, ServicePortPlan, plan

__all__ = [
    "IPV4",
    "IPV6",
    "ChangeTracker",
    "EndpointInfo",
    "Plan",
    "ProxyConfig",
    "ProxyState",
    "ServicePortInfo",
    "ServicePortName",
    "ServicePortPlan",
    "SyncInput",
    "build_model",
    "plan",
]
