"""The iptables backend: chain names, the jumps from the built-in chains and the iptables-restore renderer (pure)."""
from svcnet.proxy.iptables.jumps import JumpRule, jump_rules, jump_rules_restore_text
from svcnet.proxy.iptables.render import (
    RenderCache,
    RenderedRules,
    RenderedState,
    ServiceRules,
    render_iptables,
    render_service_rules,
)

__all__ = [
    "JumpRule",
    "RenderCache",
    "RenderedRules",
    "RenderedState",
    "ServiceRules",
    "jump_rules",
    "jump_rules_restore_text",
    "render_iptables",
    "render_service_rules",
]
