"""The fake of nftables in a node namespace, for tests that run without root.

FakeNft stands where svcnet.kernel.nft.NetnsNft stands in a node, with the same
methods, over a svcnet.proxy.nftables.ruleset.Ruleset: what the proxy applies
is parsed and checked as the kernel would (a missing chain, a chain still
jumped to, an element already there with another verdict fail the whole
transaction with nft's error and change nothing), and the result can be
dumped in knftables' text form and traced (svcnet.proxy.nftables.tracer).
Tests can make transactions fail, and play the administrator who deletes a
chain or the whole table behind the proxy's back.
"""
from __future__ import annotations

from dataclasses import dataclass

from svcnet.kernel.nft import (
    FAMILY_IPV4,
    KUBE_PROXY_TABLE,
    LISTABLE,
    NftNotFound,
    NftSupport,
    NftTransactionFailed,
)
from svcnet.proxy.nftables.ruleset import Ruleset, Table, TransactionError


@dataclass(frozen=True)
class TransactionRecord:
    """One transaction given to the fake, and whether it was applied."""

    text: str
    ok: bool
    error: str = ""


class FakeNft:
    """An in-memory nftables with NetnsNft's interface."""

    def __init__(self, *, version: tuple[int, int, int] = (1, 0, 6), kernel: tuple[int, int] = (6, 1)) -> None:
        self.ruleset = Ruleset()
        self.history: list[TransactionRecord] = []
        self.fail_next_runs = 0  # make this many transactions fail, as a broken kernel would
        self.version = version
        self.kernel = kernel

    # --- NetnsNft's interface -------------------------------------------------------------------------------

    def run(self, text: str) -> None:
        if self.fail_next_runs > 0:
            self.fail_next_runs -= 1
            self.history.append(TransactionRecord(text, False, "injected failure"))
            raise NftTransactionFailed("injected failure")
        try:
            self.ruleset = self.ruleset.apply(text)
        except TransactionError as exc:
            self.history.append(TransactionRecord(text, False, str(exc)))
            raise NftTransactionFailed(exc.reason, line_number=exc.line_number, line=exc.line,
                                       errno_name=exc.errno) from None
        self.history.append(TransactionRecord(text, True))

    def check(self, text: str) -> None:
        try:
            self.ruleset.apply(text)
        except TransactionError as exc:
            raise NftTransactionFailed(exc.reason, line_number=exc.line_number, line=exc.line,
                                       errno_name=exc.errno) from None

    def list_table(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> str:
        """The table in knftables' `add ...` form (real nft prints its own format: both are for people)."""
        return self._table(family, table).dump()

    def table_exists(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> bool:
        return self.ruleset.table(family, table) is not None

    def list_names(self, kind: str, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE,
                   ) -> tuple[str, ...]:
        if kind not in LISTABLE:
            raise ValueError(f"cannot list {kind!r}: one of {', '.join(LISTABLE)}")
        found = self.ruleset.table(family, table)
        if found is None:
            return ()
        objects = {"chain": found.chains, "set": found.sets, "map": found.maps, "counter": found.counters}[kind]
        return tuple(sorted(objects))

    def list_counters(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE,
                      ) -> dict[str, tuple[int, int]]:
        found = self.ruleset.table(family, table)
        if found is None:
            return {}
        return {name: (c.packets, c.bytes) for name, c in sorted(found.counters.items())}

    def list_chains(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> tuple[str, ...]:
        return self.list_names("chain", family, table)

    def delete_table(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> bool:
        if not self.table_exists(family, table):
            return False
        self.run(f"delete table {family} {table}\n")
        return True

    def close(self) -> None:
        """Nothing to close (NetnsNft closes its netlink socket)."""

    def support(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE, *,
                skip_kernel_version_check: bool = False) -> NftSupport:
        supported = self.version >= (1, 0, 1) and (self.kernel >= (5, 13) or skip_kernel_version_check)
        return NftSupport(supported, "" if supported else "fake configured as unsupported", self.version,
                          self.kernel)

    # --- inspection ------------------------------------------------------------------------------------------

    def dump(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> str:
        """knftables' fake Dump: "" when the table does not exist."""
        return self.ruleset.dump(family, table)

    def table(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> Table:
        return self._table(family, table)

    def rules(self, chain: str, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> tuple[str, ...]:
        return tuple(rule.text for rule in self._table(family, table).chains[chain].rules)

    def transactions(self, *, applied_only: bool = False) -> list[str]:
        return [r.text for r in self.history if r.ok or not applied_only]

    def count(self, counter: str, packets: int, bytes: int = 0, family: str = FAMILY_IPV4,
              table: str = KUBE_PROXY_TABLE) -> None:
        """Make a named counter have counted this much (as traffic would)."""
        changed = self._table(family, table).copy()  # earlier Rulesets share the table: leave them alone
        changed.counters[counter].packets, changed.counters[counter].bytes = packets, bytes
        self.ruleset = Ruleset({**self.ruleset.tables, (family, table): changed}, self.ruleset.next_handle)

    # --- what an administrator does behind the proxy's back -----------------------------------------------

    def admin(self, text: str) -> None:
        """Apply `text` outside the proxy's history (e.g. `delete chain ...`, `flush map ...`)."""
        self.ruleset = self.ruleset.apply(text)

    def _table(self, family: str, table: str) -> Table:
        found = self.ruleset.table(family, table)
        if found is None:
            raise NftNotFound(f"no table {family} {table}")
        return found

