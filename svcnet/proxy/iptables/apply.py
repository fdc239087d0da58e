"""How rendered rules reach iptables in a node: the proxy's side of the iptables seam.

`IptablesBackend` is the seam: what the proxy needs of iptables in one node
namespace (restore an iptables-restore input, read iptables-save, and the
`-N` / `-C` / `-I` / `-D` / `-S` calls kube-proxy makes outside the restore).
On the proxy's side of it sit the syncer and the policy written here once, as
functions over that interface (which jumps to ensure, the canary, what cleanup
removes). On the other side: in a node, `IptablesApplier` over the kernel
adapter svcnet.kernel.iptables.NetnsIptables (which runs the binaries and
decides nothing); in tests, svcnet.testing.iptables.FakeIptables.

iptables-nft's chain-by-chain cache (1.8.5 and later) costs a restore that
names n chains in m lines about m*n/2 string compares: with --noflush it
collects every chain name a table block uses (declared, appended to, jumped
to) in a sorted linked list, walking the list for each line, then asks the
kernel for those chains one request each. A full sync at 1,000 Services x 10
endpoints names 11,000 chains in 43,000 lines: 4-8 s, and 2,000 Services
take 15-60 s. One command that names no chain switches it to fetching the
whole table in one dump. `-S` (print the table's rules: read-only) is such a
command; its cost is a dump of the table, so `IptablesApplier.restore` prepends
it to a block only when `wants_whole_table_cache` says the chain-by-chain way
would cost more (full syncs: yes; a one-service partial sync: no). The rules
applied are the same either way. iptables-legacy and older iptables-nft are
left as they are.
"""
from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from svcnet.kernel.iptables import MODE_NFT, NetnsIptables, RestoreFailed
from svcnet.proxy.iptables import names
from svcnet.proxy.iptables.jumps import jump_rules
from svcnet.proxy.model import IPV4, IPV6

log = logging.getLogger("svcnet.proxy.apply")

# kube-proxy creates its canary in these tables; if one vanishes, someone flushed iptables.
CANARY_TABLES = ("mangle", "nat", "filter")
# Tables cleanup looks in for KUBE-* chains.
CLEANUP_TABLES = ("mangle", "nat", "filter")
OWNED_CHAIN_PREFIX = "KUBE-"
# iptables-nft from this version on fetches only the chains a restore names (see the module docstring).
NFT_CHAIN_LIST_CACHE_MIN_VERSION = (1, 8, 5)
# A command naming no chain: iptables-nft then fetches the whole table at once. Read-only.
WHOLE_TABLE_CACHE_COMMAND = "-S"
# Measured with iptables 1.8.9 on kernel 6.18: one step of the chain-name list walk costs
# about 18 ns, dumping one rule of the table about 7 us, so one dumped rule is worth ~400 steps.
LIST_STEPS_PER_DUMPED_RULE = 400
# Below this many list steps (~20 ms) the chain-by-chain way is never worth replacing.
MIN_LIST_STEPS = 1_000_000


# --- iptables-nft's chain cache (pure) ---------------------------------------------------------------------

@dataclass(frozen=True)
class BlockShape:
    """One `*table` ... `COMMIT` block of a restore input, as iptables-nft's cache sees it."""

    table: str
    start: int  # index of the `*table` line
    lines: int  # commands and chain declarations in the block
    declared: int  # `:CHAIN` lines
    rules: int  # `-A`/`-I`/... lines


def restore_blocks(lines: Sequence[str]) -> list[BlockShape]:
    """The table blocks of an iptables-restore input (given as its lines)."""
    blocks: list[BlockShape] = []
    table: str | None = None
    start = declared = rules = 0
    for index, line in enumerate(lines):
        if line.startswith("*"):
            table, start, declared, rules = line[1:].strip(), index, 0, 0
        elif table is None:
            continue
        elif line.startswith(":"):
            declared += 1
        elif line.startswith("-"):
            rules += 1
        elif line.strip() == "COMMIT":
            blocks.append(BlockShape(table, start, declared + rules, declared, rules))
            table = None
    return blocks


def chain_names(lines: Sequence[str]) -> set[str]:
    """Every chain a block's lines name: declared, written to, or jumped to (targets included)."""
    found: set[str] = set()
    for line in lines:
        if line.startswith(":"):
            found.add(line[1:].split(" ", 1)[0])
        elif line.startswith("-"):
            parts = line.split(" ", 2)
            if len(parts) > 1:
                found.add(parts[1])
            target = _TARGET.search(line)
            if target is not None:
                found.add(target.group(1))
    return found


def wants_whole_table_cache(lines: int, chains: int, table_rules: int) -> bool:
    """Whether fetching the whole table beats iptables-nft's chain-by-chain cache for one block.

    `lines` commands naming `chains` distinct chains cost about lines*chains/2 steps of
    its sorted name list; the whole table costs a dump of `table_rules` rules.
    """
    steps = lines * chains // 2
    return steps > MIN_LIST_STEPS and steps > table_rules * LIST_STEPS_PER_DUMPED_RULE


def with_whole_table_cache(text: str, table_rules: Callable[[str, int], int]) -> tuple[str, tuple[str, ...]]:
    """The restore input with `-S` first in each block that wants the whole-table cache.

    table_rules(table, rules_in_block) estimates the rules the kernel holds in that table.
    Returns the (possibly unchanged) input and the tables whose blocks were changed.
    """
    lines = text.splitlines()
    chosen: list[BlockShape] = []
    for block in restore_blocks(lines):
        estimate = table_rules(block.table, block.rules)
        if not wants_whole_table_cache(block.lines, block.declared + 2 * block.rules, estimate):
            continue  # not worth it even if every line named new chains
        # Cheap bounds before counting names exactly: at least the declared ones, at most two per rule more.
        if not wants_whole_table_cache(block.lines, block.declared, estimate):
            body = lines[block.start + 1:block.start + 1 + block.lines]
            if not wants_whole_table_cache(block.lines, len(chain_names(body)), estimate):
                continue
        chosen.append(block)
    if not chosen:
        return text, ()
    for block in reversed(chosen):
        lines.insert(block.start + 1, WHOLE_TABLE_CACHE_COMMAND)
    return "\n".join(lines) + "\n", tuple(block.table for block in chosen)


# --- the interface ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestoreRecord:
    """One restore as the applier (or the fake) ran it: for logs, tests and the benchmark."""

    family: str
    text: str  # the input as rendered (without the `-S` the applier may add for iptables-nft)
    ok: bool
    seconds: float
    error: str = ""
    whole_table_cache: tuple[str, ...] = ()  # tables whose block got `-S` (see with_whole_table_cache)


class IptablesBackend(Protocol):
    """What the proxy needs of iptables in one node namespace (the seam: see the module docstring)."""

    mode: str
    random_fully: bool

    def restore(self, family: str, text: str) -> None: ...  # --noflush; raises RestoreFailed
    def save(self, family: str, table: str | None = None) -> str: ...  # None: every table
    def ensure_chain(self, family: str, table: str, chain: str) -> bool: ...  # True if it was created
    def ensure_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool: ...
    def delete_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool: ...
    def chain_exists(self, family: str, table: str, chain: str) -> bool: ...


class IptablesApplier:
    """The proxy's IptablesBackend in a node: the kernel adapter, plus the whole-table cache and a history.

    Every call goes to the adapter; a restore is first given `-S` in the blocks
    where `with_whole_table_cache` says it pays (iptables-nft 1.8.5 and later
    only), and each one is recorded in `history` (for `-v` logs and the benchmark).
    """

    def __init__(self, iptables: NetnsIptables, *, history_size: int = 16) -> None:
        self.iptables = iptables
        self.mode = iptables.mode
        self.random_fully = iptables.random_fully
        self.history: deque[RestoreRecord] = deque(maxlen=history_size)
        # Only iptables-nft with the chain-by-chain cache needs the whole-table switch.
        self.whole_table_cache = (self.mode == MODE_NFT
                                  and iptables.version.version >= NFT_CHAIN_LIST_CACHE_MIN_VERSION)
        self._table_rules: dict[tuple[str, str], int] = {}  # (family, table) -> rules there, last known

    def __repr__(self) -> str:
        return f"IptablesApplier({self.iptables!r})"

    def restore(self, family: str, text: str) -> None:
        sent, whole = text, ()
        if self.whole_table_cache:
            sent, whole = with_whole_table_cache(
                text, lambda table, rules: self._table_rules.get((family, table), rules))
        started = time.perf_counter()
        try:
            printed = self.iptables.restore(family, sent)
        except RestoreFailed as error:
            seconds = time.perf_counter() - started
            self.history.append(RestoreRecord(family, text, False, seconds, str(error), whole))
            log.debug("iptables-restore input (%s, failed):\n--- restore input begin ---\n%s"
                      "--- restore input end ---", family, sent)
            raise
        seconds = time.perf_counter() - started
        self.history.append(RestoreRecord(family, text, True, seconds, whole_table_cache=whole))
        if whole:
            # `-S` printed the tables as they were; with what was written that bounds their size now.
            listed = printed.count("\n-A ") + printed.startswith("-A ")
            for block in restore_blocks(text.splitlines()):
                if block.table in whole:
                    self._table_rules[(family, block.table)] = max(block.rules, listed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("iptables-restore input (%s, %d bytes, %.3fs%s):\n--- restore input begin ---\n%s"
                      "--- restore input end ---", family, len(sent), seconds,
                      ", whole-table cache" if whole else "", sent)

    def save(self, family: str, table: str | None = None) -> str:
        return self.iptables.save(family, table)

    def chain_exists(self, family: str, table: str, chain: str) -> bool:
        return self.iptables.chain_exists(family, table, chain)

    def ensure_chain(self, family: str, table: str, chain: str) -> bool:
        return self.iptables.ensure_chain(family, table, chain)

    def ensure_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool:
        return self.iptables.ensure_rule(family, table, chain, args)

    def delete_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool:
        return self.iptables.delete_rule(family, table, chain, args)


# --- policy over the interface (the same against the applier and the fake) ----------------------------------------

def ensure_jump_rules(backend: IptablesBackend, family: str) -> tuple[str, ...]:
    """Ensure each jump from a built-in chain (and its target chain), as kube-proxy does on full syncs.

    Returns the rules that were missing and have been prepended.
    """
    added = []
    for rule in jump_rules():
        backend.ensure_chain(family, rule.table, rule.target)
        if backend.ensure_rule(family, rule.table, rule.chain, rule.args()):
            added.append(f"-t {rule.table} -I {rule.chain} {rule.restore_args()}")
    return tuple(added)


def ensure_canary(backend: IptablesBackend, family: str) -> None:
    for table in CANARY_TABLES:
        backend.ensure_chain(family, table, names.KUBE_PROXY_CANARY)


def canary_present(backend: IptablesBackend, family: str) -> bool:
    """False once a table was flushed and its chains deleted behind our back."""
    return all(backend.chain_exists(family, table, names.KUBE_PROXY_CANARY) for table in CANARY_TABLES)


@dataclass(frozen=True)
class SavedTable:
    name: str
    chains: tuple[str, ...]
    rules: tuple[tuple[str, str], ...]  # (chain, rule text after "-A CHAIN ")


def parse_save(text: str) -> dict[str, SavedTable]:
    """iptables-save output by table: declared chains and rules, in order."""
    tables: dict[str, SavedTable] = {}
    current: str | None = None
    chains: list[str] = []
    rules: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            current, chains, rules = line[1:], [], []
        elif line == "COMMIT" and current is not None:
            tables[current] = SavedTable(current, tuple(chains), tuple(rules))
            current = None
        elif current is None or not line or line.startswith("#"):
            continue
        elif line.startswith(":"):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            chain, _, rest = line[3:].partition(" ")
            rules.append((chain, rest))
    return tables


_TARGET = re.compile(r"(?:^|\s)-[jg]\s+(\S+)")


def rule_target(rule_text: str) -> str | None:
    match = _TARGET.search(rule_text)
    return match.group(1) if match else None


def is_owned_chain(chain: str) -> bool:
    """Chains svcnet's proxy writes: every KUBE-* chain (svcnet nodes run no kubelet iptables)."""
    return chain.startswith(OWNED_CHAIN_PREFIX)


def cleanup_restore_text(save_text: str, tables: Sequence[str] = CLEANUP_TABLES) -> str:
    """The iptables-restore input that removes every KUBE-* chain and every rule jumping to one.

    One block per table: declaring the chains flushes them (so they no longer
    reference each other), the jumps from other chains are deleted by their
    exact saved text, then the chains are deleted. Empty when nothing is ours.
    """
    saved = parse_save(save_text)
    blocks = []
    for table in tables:
        if table not in saved:
            continue
        owned = [c for c in saved[table].chains if is_owned_chain(c)]
        if not owned:
            continue
        lines = [f"*{table}"]
        lines.extend(f":{chain} - [0:0]" for chain in owned)
        for chain, rule in saved[table].rules:
            target = rule_target(rule)
            if not is_owned_chain(chain) and target is not None and is_owned_chain(target):
                lines.append(f"-D {chain} {rule}")
        lines.extend(f"-X {chain}" for chain in owned)
        lines.append("COMMIT")
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n" if blocks else ""


def owned_chains(save_text: str, tables: Sequence[str] = CLEANUP_TABLES) -> dict[str, tuple[str, ...]]:
    """table -> KUBE-* chains present, from iptables-save output."""
    saved = parse_save(save_text)
    return {t: tuple(c for c in saved[t].chains if is_owned_chain(c)) for t in tables
            if t in saved and any(is_owned_chain(c) for c in saved[t].chains)}


def cleanup(backend: IptablesBackend, families: Sequence[str] = (IPV4, IPV6)) -> dict[str, tuple[str, ...]]:
    """Remove everything the proxy wrote (KUBE-* chains and the jumps to them), per family.

    Returns family -> "table/chain" removed. Safe to repeat.
    """
    removed: dict[str, tuple[str, ...]] = {}
    for family in families:
        saved = backend.save(family)
        text = cleanup_restore_text(saved)
        if not text:
            removed[family] = ()
            continue
        backend.restore(family, text)
        removed[family] = tuple(f"{table}/{chain}" for table, chains in owned_chains(saved).items()
                                for chain in chains)
    return removed
