"""What starting in one proxy mode removes of the other (kube-proxy's platformCleanup), and --cleanup.

kube-proxy (cmd/kube-proxy/app/server_linux.go, platformCleanup) removes only
what is certainly not the running mode's: starting in iptables mode it deletes
nftables mode's tables (`ip kube-proxy`, `ip6 kube-proxy`: pkg/proxy/nftables/
cleanup.go deletes each whole table, and a table that is not there is fine);
starting in nftables mode it removes iptables mode's chains and the jumps to
them (svcnet.proxy.iptables.apply.cleanup: every KUBE-* chain and every rule
jumping to one, per family). `--cleanup` (cleanup_and_exit) removes both. An
error in one part is reported and the other parts still run, as upstream logs
and carries on. Pure: functions over the two backends' interfaces
(IptablesBackend; anything with NetnsNft's `delete_table`); the daemon wires
the real adapters or their fakes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from svcnet.kernel.iptables import IptablesError
from svcnet.kernel.nft import FAMILY_IPV4, FAMILY_IPV6, KUBE_PROXY_TABLE, NftError
from svcnet.proxy.iptables.apply import IptablesBackend
from svcnet.proxy.iptables.apply import cleanup as cleanup_iptables_chains
from svcnet.proxy.kpconfig import MODE_IPTABLES, MODE_NFTABLES
from svcnet.proxy.model import IPV4, IPV6

MODES = (MODE_IPTABLES, MODE_NFTABLES)
# nftables mode's tables, by Kubernetes IP family.
NFTABLES_TABLES = {IPV4: (FAMILY_IPV4, KUBE_PROXY_TABLE), IPV6: (FAMILY_IPV6, KUBE_PROXY_TABLE)}


class NftTables(Protocol):
    """What cleanup needs of nftables: delete a table, saying whether it was there."""

    def delete_table(self, family: str, table: str) -> bool: ...


@dataclass(frozen=True)
class CleanupReport:
    removed: tuple[str, ...] = ()  # "nftables ip kube-proxy", "iptables IPv4 nat/KUBE-SERVICES", ...
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def __add__(self, other: CleanupReport) -> CleanupReport:
        return CleanupReport(self.removed + other.removed, self.errors + other.errors)


def cleanup_nftables_mode(nft: NftTables, families: Sequence[str] = (IPV4, IPV6)) -> CleanupReport:
    """Delete nftables mode's table in each family (pkg/proxy/nftables CleanupLeftovers)."""
    report = CleanupReport()
    for family in families:
        nft_family, table = NFTABLES_TABLES[family]
        try:
            if nft.delete_table(nft_family, table):
                report += CleanupReport(removed=(f"nftables {nft_family} {table}",))
        except NftError as exc:
            report += CleanupReport(errors=(f"nftables {nft_family} {table}: {exc}",))
    return report


def cleanup_iptables_mode(iptables: IptablesBackend, families: Sequence[str] = (IPV4, IPV6)) -> CleanupReport:
    """Remove iptables mode's KUBE-* chains and the jumps to them, family by family."""
    report = CleanupReport()
    for family in families:
        try:
            removed = cleanup_iptables_chains(iptables, [family]).get(family, ())
        except (IptablesError, NftError) as exc:
            report += CleanupReport(errors=(f"iptables {family}: {exc}",))
            continue
        report += CleanupReport(removed=tuple(f"iptables {family} {chain}" for chain in removed))
    return report


def cleanup_other_modes(mode: str, *, iptables: IptablesBackend | None, nft: NftTables | None,
                        families: Sequence[str] = (IPV4, IPV6), cleanup_and_exit: bool = False) -> CleanupReport:
    """What kube-proxy removes when it starts in `mode` (or everything, with cleanup_and_exit).

    A backend given as None is not available on this node (no nft, say) and is
    skipped, as upstream skips a family whose nftables it cannot open.
    """
    if mode not in MODES:
        raise ValueError(f"unknown proxy mode {mode!r}: one of {', '.join(MODES)}")
    report = CleanupReport()
    if (mode != MODE_IPTABLES or cleanup_and_exit) and iptables is not None:
        report += cleanup_iptables_mode(iptables, families)
    if (mode == MODE_IPTABLES or cleanup_and_exit) and nft is not None:
        report += cleanup_nftables_mode(nft, families)
    return report
