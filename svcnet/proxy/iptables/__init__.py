"""The iptables backend: chain names and the iptables-restore renderer (pure)."""
from svcnet.proxy.iptables.render import (
    JumpRule,
    RenderedRules,
    RenderedState,
    jump_rules,
    jump_rules_restore_text,
    render_iptables,
)

__all__ = [
    "JumpRule",
    "RenderedRules",
    "RenderedState",
    "jump_rules",
    "jump_rules_restore_text",
    "render_iptables",
]
