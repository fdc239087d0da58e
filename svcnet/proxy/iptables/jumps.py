"""The jumps from the built-in chains into kube-proxy's chains (PREROUTING -> KUBE-SERVICES, ...).

They are not part of the restore input: kube-proxy ensures them one by one on
full syncs (`iptables -C` then `-I`: svcnet.proxy.iptables.apply.ensure_jump_rules),
so other programs' rules in those chains survive. For a fresh table or the
rules model, `jump_rules_restore_text` writes them as iptables-restore input.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from svcnet.proxy.iptables import names


@dataclass(frozen=True)
class JumpRule:
    """A rule kube-proxy ensures (prepends if missing) in a built-in chain."""

    table: str
    chain: str  # built-in chain: INPUT, FORWARD, OUTPUT, PREROUTING, POSTROUTING
    target: str  # the svcnet chain it jumps to
    comment: str = ""
    extra: tuple[str, ...] = ()

    def args(self) -> tuple[str, ...]:
        """The rule as iptables arguments (for `iptables -t T -C/-I CHAIN ARGS...`)."""
        comment = ("-m", "comment", "--comment", self.comment) if self.comment else ()
        return (*self.extra, *comment, "-j", self.target)

    def restore_args(self) -> str:
        """The same arguments quoted for iptables-restore input."""
        return " ".join(f'"{a}"' if " " in a else a for a in self.args())


_CT_NEW = ("-m", "conntrack", "--ctstate", "NEW")
_PORTALS = "kubernetes service portals"
_EXTERNAL_PORTALS = "kubernetes externally-visible service portals"
_LB_FIREWALL = "kubernetes load balancer firewall"

_JUMP_RULES = (
    JumpRule(names.TABLE_FILTER, "INPUT", names.KUBE_EXTERNAL_SERVICES, _EXTERNAL_PORTALS, _CT_NEW),
    JumpRule(names.TABLE_FILTER, "FORWARD", names.KUBE_EXTERNAL_SERVICES, _EXTERNAL_PORTALS, _CT_NEW),
    JumpRule(names.TABLE_FILTER, "INPUT", names.KUBE_NODEPORTS, "kubernetes health check service ports"),
    JumpRule(names.TABLE_FILTER, "FORWARD", names.KUBE_SERVICES, _PORTALS, _CT_NEW),
    JumpRule(names.TABLE_FILTER, "OUTPUT", names.KUBE_SERVICES, _PORTALS, _CT_NEW),
    JumpRule(names.TABLE_FILTER, "FORWARD", names.KUBE_FORWARD, "kubernetes forwarding rules"),
    JumpRule(names.TABLE_FILTER, "INPUT", names.KUBE_PROXY_FIREWALL, _LB_FIREWALL, _CT_NEW),
    JumpRule(names.TABLE_FILTER, "OUTPUT", names.KUBE_PROXY_FIREWALL, _LB_FIREWALL, _CT_NEW),
    JumpRule(names.TABLE_FILTER, "FORWARD", names.KUBE_PROXY_FIREWALL, _LB_FIREWALL, _CT_NEW),
    JumpRule(names.TABLE_NAT, "OUTPUT", names.KUBE_SERVICES, _PORTALS),
    JumpRule(names.TABLE_NAT, "PREROUTING", names.KUBE_SERVICES, _PORTALS),
    JumpRule(names.TABLE_NAT, "POSTROUTING", names.KUBE_POSTROUTING, "kubernetes postrouting rules"),
    # kubelet's own chain; kube-proxy ensures it too but never deletes it.
    JumpRule(names.TABLE_FILTER, "INPUT", names.KUBE_FIREWALL),
    JumpRule(names.TABLE_FILTER, "OUTPUT", names.KUBE_FIREWALL),
)


def jump_rules() -> tuple[JumpRule, ...]:
    """The jumps to ensure, in kube-proxy's order; each is prepended, so the last ends up first."""
    return _JUMP_RULES


def jump_rules_restore_text(rules: Iterable[JumpRule] = _JUMP_RULES) -> str:
    """The jumps and their target chains as iptables-restore input (for a fresh table or a model).

    Declaring a chain flushes it, so this is for setting up before the first sync;
    a live proxy ensures chains and jumps with `iptables -N` / `-C` / `-I` instead.
    """
    lines: list[str] = []
    rules = list(rules)
    for table in (names.TABLE_FILTER, names.TABLE_NAT):
        in_table = [r for r in rules if r.table == table]
        if not in_table:
            continue
        lines.append(f"*{table}")
        for target in dict.fromkeys(r.target for r in in_table):
            lines.append(f":{target} - [0:0]")
        lines.extend(f"-I {r.chain} 1 {r.restore_args()}" for r in in_table)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"
