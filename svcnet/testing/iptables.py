"""The fake of iptables in a node namespace, for tests that run without root.

FakeIptables stands where svcnet.kernel.iptables.NetnsIptables (behind
svcnet.proxy.iptables.apply.IptablesApplier) stands in a node: it implements
the proxy's IptablesBackend over
svcnet.proxy.iptables.ruleset.IptablesModel, one model per IP family, so what
the syncer applies is parsed as iptables-restore would parse it (a bad rule
fails the whole restore and changes nothing), chains must exist to be jumped
to, and packets can be traced through the result. Tests can make restores fail,
and play the administrator who flushes a chain or a whole table.
"""
from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

from svcnet.kernel.iptables import RestoreFailed
from svcnet.proxy.iptables.apply import RestoreRecord
from svcnet.proxy.iptables.ruleset import BUILTIN_CHAINS, Chain, IptablesModel, RestoreError
from svcnet.proxy.model import IPV4, IPV6


def _quote(token: str) -> str:
    return shlex.quote(token) if " " in token else token


class FakeIptables:
    """An IptablesBackend whose kernel is an IptablesModel per family."""

    def __init__(self, local_addresses: Iterable[str] = (), *, mode: str = "nft",
                 random_fully: bool = True) -> None:
        addresses = tuple(local_addresses)
        self.models: dict[str, IptablesModel] = {
            IPV4: IptablesModel.empty([a for a in addresses if ":" not in a]),
            IPV6: IptablesModel.empty([a for a in addresses if ":" in a]),
        }
        self.mode = mode
        self.random_fully = random_fully
        self.history: list[RestoreRecord] = []
        self.fail_next_restores = 0  # make this many restores fail, as a broken kernel would
        self.calls: list[tuple[str, ...]] = []  # every non-restore call, for tests that count them

    # --- IptablesBackend -----------------------------------------------------------------------------------

    def restore(self, family: str, text: str) -> None:
        if self.fail_next_restores > 0:
            self.fail_next_restores -= 1
            self.history.append(RestoreRecord(family, text, False, 0.0, "injected failure"))
            raise RestoreFailed(family, "injected failure")
        try:
            self.models[family] = self.models[family].restore(text)
        except RestoreError as exc:
            lines = text.splitlines()
            line = lines[exc.line_number - 1] if 0 < exc.line_number <= len(lines) else ""
            self.history.append(RestoreRecord(family, text, False, 0.0, str(exc)))
            raise RestoreFailed(family, str(exc), exc.line_number, line) from None
        self.history.append(RestoreRecord(family, text, True, 0.0))

    def save(self, family: str, table: str | None = None) -> str:
        self.calls.append(("save", family, table or ""))
        model = self.models[family]
        lines = []
        for name in [table] if table else list(model.tables):
            chains = model.tables[name]
            lines.append(f"*{name}")
            builtins = [c for c in BUILTIN_CHAINS[name] if c in chains]
            users = sorted(c for c in chains if c not in BUILTIN_CHAINS[name])
            for chain in builtins:
                lines.append(f":{chain} {chains[chain].policy or 'ACCEPT'} [0:0]")
            lines.extend(f":{chain} - [0:0]" for chain in users)
            for chain in [*builtins, *users]:
                lines.extend(f"-A {chain} {rule.text}" for rule in chains[chain].rules)
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def chain_exists(self, family: str, table: str, chain: str) -> bool:
        self.calls.append(("chain_exists", family, table, chain))
        return chain in self.models[family].tables[table]

    def ensure_chain(self, family: str, table: str, chain: str) -> bool:
        self.calls.append(("ensure_chain", family, table, chain))
        if chain in self.models[family].tables[table]:
            return False
        self._command(family, table, f"-N {chain}")
        return True

    def ensure_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool:
        self.calls.append(("ensure_rule", family, table, chain, *args))
        if self._has_rule(family, table, chain, args):
            return False
        self._command(family, table, f"-I {chain} 1 " + " ".join(_quote(a) for a in args))
        return True

    def delete_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool:
        self.calls.append(("delete_rule", family, table, chain, *args))
        if not self._has_rule(family, table, chain, args):
            return False
        self._command(family, table, f"-D {chain} " + " ".join(_quote(a) for a in args))
        return True

    # --- what an administrator (or firewalld) does behind the proxy's back ---------------------------------

    def flush_chain(self, family: str, table: str, chain: str) -> None:
        """`iptables -t TABLE -F CHAIN`."""
        self._command(family, table, f"-F {chain}")

    def flush_table(self, family: str, table: str) -> None:
        """`iptables -t TABLE -F; iptables -t TABLE -X`: every rule and user chain gone."""
        model = self.models[family]
        tables = dict(model.tables)
        tables[table] = {name: Chain(name, chain.policy) for name, chain in model.tables[table].items()
                         if name in BUILTIN_CHAINS[table]}
        self.models[family] = IptablesModel(tables, model.local_addresses)

    # --- inspection ----------------------------------------------------------------------------------------

    def model(self, family: str = IPV4) -> IptablesModel:
        return self.models[family]

    def chains(self, family: str, table: str) -> frozenset[str]:
        return self.models[family].chains(table)

    def rules(self, family: str, table: str, chain: str) -> tuple[str, ...]:
        return self.models[family].rules(table, chain)

    def restores(self, family: str = IPV4) -> list[RestoreRecord]:
        return [r for r in self.history if r.family == family]

    # --- helpers -------------------------------------------------------------------------------------------

    def _has_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool:
        chains = self.models[family].tables[table]
        if chain not in chains:
            return False
        text = " ".join(_quote(a) for a in args)
        return any(rule.text == text for rule in chains[chain].rules)

    def _command(self, family: str, table: str, command: str) -> None:
        self.models[family] = self.models[family].restore(f"*{table}\n{command}\nCOMMIT\n")
