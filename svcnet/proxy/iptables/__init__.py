"""The iptables backend: chain names and the iptables-restore renderer (pure)."""
from svcnet.proxy.iptables.render import (
    JumpRule,
    RenderCache,
    RenderedRules,
    RenderedState,
    ServiceRules,
    jump_rules,
    jump_rules_restore_text,
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
