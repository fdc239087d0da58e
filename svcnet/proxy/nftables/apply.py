"""nftables mode's half of a sync: render the plan as one nft transaction and run it in the node.

The syncer (svcnet.proxy.syncer.RuleSyncer) plans; this writer spells each
family's plan with render_nftables and hands the text to `nft -f -` through an
NftBackend (svcnet.kernel.nft.NetnsNft, or svcnet.testing.nft.FakeNft), as
kube-proxy's nftables proxier does in syncProxyRules:

- after a restart (or a failed transaction) nothing about the kernel's table
  is trusted: the sync is full, and the chains and sets the table holds are
  listed first, so service chains nobody owns any more go stale and are
  deleted, as upstream lists chains on a full sync;
- stale chains are deleted in a transaction of their own before the sync's
  (render_nftables says which and when); if that fails the chains stay and
  the next sync tries again, the sync itself goes on (upstream logs it);
- a failed sync transaction changed nothing (nft applies all of it or none),
  so the state is forgotten and the next sync is full.

The canary of nftables mode is the table itself: when someone deletes it the
daemon's monitor sees it missing and asks for a full sync.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from svcnet.kernel.nft import FAMILY_IPV4, FAMILY_IPV6, KUBE_PROXY_TABLE, NftError
from svcnet.proxy.model import IPV6
from svcnet.proxy.nftables.render import NftablesState, NftRenderCache, render_nftables
from svcnet.proxy.plan import Plan
from svcnet.proxy.syncer import FamilyStates, FamilySync

log = logging.getLogger("svcnet.proxy.nftables")


class NftBackend(Protocol):
    """What the writer needs of nft in the node's namespace."""

    def run(self, text: str) -> None: ...  # one atomic transaction; raises NftError
    def list_names(self, kind: str, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> tuple[str, ...]: ...
    def table_exists(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> bool: ...


def nft_family_of(family: str) -> str:
    return FAMILY_IPV6 if family == IPV6 else FAMILY_IPV4


@dataclass
class _NftFamily:
    previous: NftablesState | None = None  # None: unknown, list the table at the next (full) sync
    cache: NftRenderCache = field(default_factory=NftRenderCache)


class NftablesWriter(FamilyStates[_NftFamily]):
    """nftables mode: one `nft -f -` transaction per family and sync (plus one for stale chains when due)."""

    random_fully = True  # nft's masquerade always has fully-random; the plan's flag is iptables'

    def __init__(self, nft: NftBackend, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(_NftFamily)
        self.nft = nft
        self.clock = clock

    def write(self, plan: Plan, *, full: bool, changed: frozenset[str] | None) -> FamilySync:
        family = plan.family
        state = self._state(family)
        misses_before = state.cache.misses
        try:
            kernel_chains = kernel_sets = None
            if state.previous is None:
                nft_family = nft_family_of(family)
                kernel_chains = self.nft.list_names("chain", nft_family)
                kernel_sets = self.nft.list_names("set", nft_family)
            now = self.clock()
            sync = render_nftables(plan, previous=state.previous, changed=None if full else changed,
                                   now=now, cache=state.cache, kernel_chains=kernel_chains,
                                   kernel_sets=kernel_sets)
            deleted = self._delete_stale(family, sync.cleanup, sync.deleted_chains)
            self.nft.run(sync.text)
        except NftError as exc:
            log.error("%s sync failed (%s): %s", family, "full" if full else "partial", exc)
            state.previous = None
            return FamilySync(family, full, False, error=str(exc))
        state.previous = sync.state if deleted else sync.cleanup_failed(now)
        return FamilySync(family, sync.full, True, restore_bytes=len(sync.text), nat_rules=sync.operations,
                          rendered_services=state.cache.misses - misses_before,
                          deleted_chains=sync.deleted_chains if deleted else ())

    def _delete_stale(self, family: str, text: str, chains: Sequence[str]) -> bool:
        if not text:
            return True
        try:
            self.nft.run(text)
        except NftError as exc:
            log.warning("%s: could not delete %d stale chain(s), will retry: %s", family, len(chains), exc)
            return False
        return True

    def canary_missing(self, families: Sequence[str]) -> bool:
        try:
            return not all(self.nft.table_exists(nft_family_of(family)) for family in families)
        except NftError as exc:
            log.warning("cannot check the kube-proxy table: %s", exc)
            return False
