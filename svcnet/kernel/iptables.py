"""iptables in one node's network namespace: the adapter that runs the iptables binaries there.

This is the kernel side of the proxy's `IptablesBackend` seam
(svcnet.proxy.iptables.apply): restore an iptables-restore input, read
iptables-save, and the `-N` / `-C` / `-I` / `-D` / `-S` calls kube-proxy makes
outside the restore, as kube-proxy's pkg/util/iptables does. It decides
nothing: what to write, the canary, cleanup and when to ask iptables-nft for
its whole-table cache are the proxy's (svcnet.proxy.iptables.apply). Its fake is
svcnet.testing.iptables.FakeIptables; a `CommandRunner` (svcnet.kernel.exec)
runs the commands, so tests can give it svcnet.testing.exec.FakeRunner.

Backend detection: `iptables --version` in the namespace says "(nf_tables)" or
"(legacy)"; every later call uses the matching `iptables-nft*` or
`iptables-legacy*` binaries when they exist, so one proxy never mixes the two.
--random-fully needs iptables 1.6.2 or later, as kube-proxy checks.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from svcnet.kernel import check_namespace_name
from svcnet.kernel.exec import CommandNotFound, CommandResult, CommandRunner, NetnsRunner

MODE_NFT = "nft"
MODE_LEGACY = "legacy"
IPV4 = "IPv4"  # families are named as Kubernetes' ipFamilies (svcnet.proxy.model.IPV4/IPV6)
IPV6 = "IPv6"
RANDOM_FULLY_MIN_VERSION = (1, 6, 2)
WAIT_SECONDS = "5"  # the xtables lock (legacy); nft ignores it


class IptablesError(Exception):
    """An iptables command failed; the message has the command and what it printed."""


class RestoreFailed(IptablesError):
    """iptables-restore rejected the input; nothing of it was applied."""

    def __init__(self, family: str, message: str, line_number: int | None = None, line: str = "") -> None:
        where = f" at line {line_number}: {line}" if line_number else ""
        super().__init__(f"{family} iptables-restore failed{where}: {message}")
        self.family = family
        self.line_number = line_number
        self.line = line


# --- version and backend detection ------------------------------------------------------------------------------

@dataclass(frozen=True)
class IptablesVersion:
    version: tuple[int, int, int]
    mode: str  # "nft" or "legacy"

    @property
    def random_fully(self) -> bool:
        return self.version >= RANDOM_FULLY_MIN_VERSION


_VERSION = re.compile(r"v(\d+)\.(\d+)(?:\.(\d+))?(?:\s+\((nf_tables|legacy)\))?")


def parse_iptables_version(text: str) -> IptablesVersion:
    """From `iptables --version` output ("iptables v1.8.9 (nf_tables)"); no mode word means legacy."""
    match = _VERSION.search(text)
    if match is None:
        raise IptablesError(f"cannot read the iptables version from {text.strip()!r}")
    major, minor, patch, mode = match.groups()
    return IptablesVersion((int(major), int(minor), int(patch or 0)),
                           MODE_NFT if mode == "nf_tables" else MODE_LEGACY)


@dataclass(frozen=True)
class Binaries:
    iptables: str
    restore: str
    save: str


def binaries_for(family: str, mode: str, available: Iterable[str] | None = None) -> Binaries:
    """The commands for one family and backend: `iptables-nft-restore` etc. when they exist, else plain."""
    base = "ip6tables" if family == IPV6 else "iptables"
    have = set(available) if available is not None else None

    def exists(name: str) -> bool:
        return name in have if have is not None else shutil.which(name) is not None

    if exists(f"{base}-{mode}"):
        return Binaries(f"{base}-{mode}", f"{base}-{mode}-restore", f"{base}-{mode}-save")
    return Binaries(base, f"{base}-restore", f"{base}-save")


_ERROR_LINE = re.compile(r"(?:Error occurred at line|line):?\s*(\d+)")


def restore_error(family: str, text: str, stderr: str) -> RestoreFailed:
    """A RestoreFailed naming the input line iptables-restore complained about."""
    match = _ERROR_LINE.search(stderr)
    number = int(match.group(1)) if match else None
    lines = text.splitlines()
    line = lines[number - 1] if number and 0 < number <= len(lines) else ""
    message = " ".join(part.strip() for part in stderr.strip().splitlines()[:2] if part.strip())
    return RestoreFailed(family, message or "exit status non-zero", number, line)


# --- the adapter -------------------------------------------------------------------------------------------------

class NetnsIptables:
    """iptables in a node's network namespace, through the backend `iptables --version` reports there."""

    def __init__(self, netns: str, *, runner: CommandRunner | None = None, mode: str | None = None) -> None:
        self.netns = check_namespace_name(netns)
        self.runner: CommandRunner = runner or NetnsRunner(netns)
        result = self._run(["iptables", "--version"])
        if result.returncode != 0:
            raise IptablesError(f"iptables --version in {netns} failed: {result.stderr.strip()}")
        self.version = parse_iptables_version(result.stdout + result.stderr)
        self.mode = mode or self.version.mode
        self.random_fully = self.version.random_fully
        self._binaries = {family: binaries_for(family, self.mode) for family in (IPV4, IPV6)}

    def __repr__(self) -> str:
        return f"NetnsIptables({self.netns!r}, mode={self.mode!r})"

    def _run(self, argv: Sequence[str], input: str | None = None) -> CommandResult:
        try:
            return self.runner(argv, input=input)
        except CommandNotFound as exc:
            raise IptablesError(str(exc)) from None

    def _iptables(self, family: str, table: str, *args: str) -> CommandResult:
        binary = self._binaries[family].iptables
        return self._run([binary, "-w", WAIT_SECONDS, "-t", table, *args])

    def restore(self, family: str, text: str) -> str:
        """`iptables-restore --noflush` of `text`; returns what it printed (`-S` commands print)."""
        result = self._run([self._binaries[family].restore, "--noflush", "-w", WAIT_SECONDS], input=text)
        if result.returncode != 0:
            raise restore_error(family, text, result.stderr)
        return result.stdout

    def save(self, family: str, table: str | None = None) -> str:
        argv = [self._binaries[family].save] + (["-t", table] if table else [])
        result = self._run(argv)
        if result.returncode != 0:
            raise IptablesError(f"{' '.join(argv)} in {self.netns}: {result.stderr.strip()}")
        return result.stdout

    def chain_exists(self, family: str, table: str, chain: str) -> bool:
        return self._iptables(family, table, "-S", chain).returncode == 0

    def ensure_chain(self, family: str, table: str, chain: str) -> bool:
        result = self._iptables(family, table, "-N", chain)
        if result.returncode == 0:
            return True
        if self.chain_exists(family, table, chain):
            return False
        raise IptablesError(f"cannot create chain {chain} in {family} {table}: {result.stderr.strip()}")

    def ensure_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool:
        """Prepend the rule unless `-C` finds it: True if it was missing."""
        if self._iptables(family, table, "-C", chain, *args).returncode == 0:
            return False
        result = self._iptables(family, table, "-I", chain, *args)
        if result.returncode != 0:
            raise IptablesError(f"cannot insert into {family} {table} {chain} {' '.join(args)}: "
                                f"{result.stderr.strip()}")
        return True

    def delete_rule(self, family: str, table: str, chain: str, args: Sequence[str]) -> bool:
        return self._iptables(family, table, "-D", chain, *args).returncode == 0
