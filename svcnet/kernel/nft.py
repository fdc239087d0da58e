"""nftables in one node's network namespace: the adapter that runs `nft` there.

The kernel side of nftables mode, as knftables is for kube-proxy: apply a
transaction (`nft -f -`, the text on stdin, one atomic batch: all of it or
none), list a table for people, list the names of a table's chains, sets, maps
and counters (as the proxier does on a full sync to find stale ones), read
its named counters (for metrics), delete a table.
It decides nothing; what to write is the proxy's. Its fake is
svcnet.testing.nft.FakeNft; a `CommandRunner` (svcnet.kernel.exec) runs `nft`,
so tests can give it svcnet.testing.exec.FakeRunner.

Names are listed from `nft -j list table FAMILY TABLE` (what knftables 0.0.20
does): it reads only our table, so an odd object another program put in
another table cannot make an older nft fail to parse the ruleset.

Transactions go straight to the kernel as one netlink batch when every line
is in the vocabulary of svcnet.kernel.nft_batch (a partial sync's chains,
rules, elements and affinity sets): `nft -f` would first dump every chain and
set of the table, which at 10,000 Services costs over a second (the kernel
serves a chain dump in time that grows with the square of the number of
chains). A big full transaction for a table that does not exist yet (a cold
start: the proxy's first sync on a node) goes in steps (ColdStart): in one
transaction the kernel binds each anonymous vmap by walking the whole
transaction so far, minutes at 10,000 Services. Anything else, and any batch
the kernel refuses, goes through `nft -f -`, so errors read as nft's. Either
way the kernel's table ends up the same (tests/integration/test_kernel_nft_batch.py).
Whether the table exists and the names of its chains, sets and counters are
read over netlink too: nft 1.0.6 fetches the whole ruleset (every rule and set
element) for any `nft list`, 26 s at 10,000 Services.
docs/benchmarks.md ("Proxy sync") has the measurements.

Support (`check_support`) follows kube-proxy (pkg/proxy/nftables/supported.go
with knftables.New): `nft` must be installed and at least 1.0.1 (older
versions parse the whole ruleset on every call and can crash on rules newer
tools wrote), a check-only transaction creating the table must pass (the
kernel has nf_tables for the family), and the kernel must be 5.13 or later
unless KUBE_PROXY_NFTABLES_SKIP_KERNEL_VERSION_CHECK is set (the caller reads
the environment and says so).
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from svcnet.kernel import KernelError, check_namespace_name
from svcnet.kernel.exec import CommandNotFound, CommandResult, CommandRunner, NetnsRunner
from svcnet.kernel.netns import run_in_netns
from svcnet.kernel.nft_batch import (
    CHAIN_NAME,
    COLD_START_MIN_VMAPS,
    MSG_GETCHAIN,
    MSG_GETOBJ,
    MSG_GETSET,
    MSG_GETTABLE,
    NETLINK_NETFILTER,
    NFPROTO,
    OBJ_NAME,
    OBJ_TABLE,
    OBJ_TYPE,
    OBJECT_COUNTER,
    SET_NAME,
    TABLE_NAME,
    BatchRefused,
    ColdStart,
    Message,
    NftBatchSocket,
    Unsupported,
    be32,
    cold_start_split,
    compile_transaction,
    counter_values,
    cstring,
    named,
    set_kind,
    string,
    transaction_target,
)

log = logging.getLogger("svcnet.kernel.nft")

NFT = "nft"
MIN_NFT_VERSION = (1, 0, 1)
MIN_KERNEL_VERSION = (5, 13)
KUBE_PROXY_TABLE = "kube-proxy"
FAMILY_IPV4 = "ip"
FAMILY_IPV6 = "ip6"
LISTABLE = ("chain", "set", "map", "counter")


class NftError(Exception):
    """An nft command failed; the message has the command and what nft printed."""


class NftNotFound(NftError):
    """The table (or another object the command named) does not exist."""


class NftTransactionFailed(NftError):
    """`nft -f` rejected a transaction; none of it was applied.

    `line_number` and `line` point at the command nft complained about (when it
    said), `stderr` is all nft printed, `errno_name` is ENOENT / EEXIST / EBUSY /
    EINVAL / EOPNOTSUPP as far as the message tells.
    """

    def __init__(self, message: str, *, stderr: str = "", line_number: int | None = None, line: str = "",
                 errno_name: str | None = None) -> None:
        where = f" at line {line_number}: {line}" if line_number else ""
        super().__init__(f"nft transaction failed{where}: {message}")
        self.stderr = stderr
        self.line_number = line_number
        self.line = line
        self.errno_name = errno_name


# --- reading what nft prints (pure) -------------------------------------------------------------------------

_VERSION = re.compile(r"v(\d+)\.(\d+)(?:\.(\d+))?")
_KERNEL = re.compile(r"^(\d+)\.(\d+)")
_ERROR_LINE = re.compile(r"^[^:\n]*:(\d+):\d+(?:-\d+)?: Error: (.*)$", re.M)
_ERRNO_NAMES = {"No such file or directory": "ENOENT", "File exists": "EEXIST",
                "Device or resource busy": "EBUSY", "Invalid argument": "EINVAL",
                "Operation not supported": "EOPNOTSUPP"}


def parse_nft_version(text: str) -> tuple[int, int, int]:
    """From `nft --version` ("nftables v1.0.6 (Lester Gooch #5)")."""
    match = _VERSION.search(text)
    if match is None:
        raise NftError(f"cannot read the nft version from {text.strip()!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def parse_kernel_version(release: str) -> tuple[int, int]:
    """From `uname -r` ("6.18.44-fc-v1300")."""
    match = _KERNEL.match(release)
    if match is None:
        raise NftError(f"cannot read the kernel version from {release!r}")
    return int(match.group(1)), int(match.group(2))


def transaction_error(text: str, stderr: str) -> NftTransactionFailed:
    """An NftTransactionFailed naming the input line nft complained about ("/dev/stdin:3:20-20: Error: ...")."""
    match = _ERROR_LINE.search(stderr)
    lines = text.splitlines()
    if match is not None:
        number = int(match.group(1))
        message = match.group(2).strip()
        line = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    else:
        number, line = None, ""
        message = " ".join(part.strip() for part in stderr.strip().splitlines()[:2] if part.strip())
    errno_name = next((name for words, name in _ERRNO_NAMES.items() if words in message),
                      "EINVAL" if "syntax error" in message or "Error:" in stderr else None)
    return NftTransactionFailed(message or "exit status non-zero", stderr=stderr, line_number=number, line=line,
                                errno_name=errno_name)


def names_in_listing(listing: str, kind: str, family: str, table: str) -> tuple[str, ...]:
    """Names of one kind ("chain", "set", "map") of the table in `nft -j list table` output, sorted."""
    if kind not in LISTABLE:
        raise ValueError(f"cannot list {kind!r}: one of {', '.join(LISTABLE)}")
    try:
        items = json.loads(listing)["nftables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NftError(f"cannot parse nft's JSON listing: {exc}") from None
    names = set()
    for item in items:
        obj = item.get(kind) if isinstance(item, dict) else None
        if obj and obj.get("family") == family and obj.get("table") == table:
            names.add(obj["name"])
    return tuple(sorted(names))


def counters_in_listing(listing: str, family: str, table: str) -> dict[str, tuple[int, int]]:
    """Named counters of the table in `nft -j list table` output: name -> (packets, bytes)."""
    try:
        items = json.loads(listing)["nftables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NftError(f"cannot parse nft's JSON listing: {exc}") from None
    counters = {}
    for item in items:
        obj = item.get("counter") if isinstance(item, dict) else None
        if obj and obj.get("family") == family and obj.get("table") == table:
            counters[obj["name"]] = (int(obj.get("packets", 0)), int(obj.get("bytes", 0)))
    return counters


@dataclass(frozen=True)
class NftSupport:
    """Whether nftables mode can run here, and if not, why (kube-proxy's checks)."""

    supported: bool
    reason: str = ""
    nft_version: tuple[int, int, int] | None = None
    kernel_version: tuple[int, int] | None = None


def check_support(version_output: str | None, check_result: CommandResult | None, kernel_release: str, *,
                  skip_kernel_version_check: bool = False) -> NftSupport:
    """kube-proxy's decision from what `nft --version` printed (None: nft is not installed), the result of
    a check-only transaction creating our table, and the kernel release."""
    if version_output is None:
        return NftSupport(False, "nft is not installed")
    try:
        version = parse_nft_version(version_output)
    except NftError as exc:
        return NftSupport(False, str(exc))
    if version < MIN_NFT_VERSION:
        wanted = ".".join(map(str, MIN_NFT_VERSION))
        return NftSupport(False, f"nft {'.'.join(map(str, version))} is too old (need {wanted} or later)",
                          version)
    if check_result is None or check_result.returncode != 0:
        said = check_result.stderr.strip() if check_result else "not run"
        return NftSupport(False, f"could not run nftables command: {said}", version)
    kernel = parse_kernel_version(kernel_release)
    if kernel < MIN_KERNEL_VERSION and not skip_kernel_version_check:
        wanted = ".".join(map(str, MIN_KERNEL_VERSION))
        return NftSupport(False, f"kube-proxy in nftables mode requires kernel {wanted} or later", version,
                          kernel)
    return NftSupport(True, "", version, kernel)


# --- the adapter -------------------------------------------------------------------------------------------

BASE_TIMEOUT_SECONDS = 120.0
TIMEOUT_SECONDS_PER_MB = 10.0


def timeout_for(text: str | None) -> float:
    """How long an nft command may take: a full transaction at 10,000 Services (58 MB) into a table that
    holds the previous one takes minutes in the kernel, so the limit grows with the text."""
    return BASE_TIMEOUT_SECONDS + TIMEOUT_SECONDS_PER_MB * len(text or "") / 1e6


class BatchSender(Protocol):
    """Sends compiled messages as one batch (svcnet.kernel.nft_batch.NftBatchSocket)."""

    def send(self, messages: Sequence[Message]) -> None: ...  # BatchRefused / OSError: nothing applied
    def close(self) -> None: ...


class NetnsNft:
    """`nft` in a node's network namespace.

    `direct` (default: when no runner is given, i.e. on a real node) sends the transactions it can
    build as netlink batches, and applies a big full transaction for a table that does not exist yet
    in steps (from `cold_start_min_vmaps` anonymous vmaps on); `sender` replaces the socket (tests).
    `direct_runs` and `nft_runs` count how transactions were applied.
    """

    def __init__(self, netns: str, *, runner: CommandRunner | None = None, direct: bool | None = None,
                 sender: BatchSender | None = None, cold_start_min_vmaps: int = COLD_START_MIN_VMAPS) -> None:
        self.netns = check_namespace_name(netns)
        self.direct = (runner is None or sender is not None) if direct is None else direct
        # Existence and names are read over netlink on a real node (nft would fetch the whole ruleset).
        self.netlink_reads = runner is None and self.direct
        self.runner: CommandRunner = runner or NetnsRunner(netns)
        self._sender = sender
        self._sender_lock = threading.Lock()
        self.cold_start_min_vmaps = cold_start_min_vmaps
        self.direct_runs = 0
        self.nft_runs = 0

    def __repr__(self) -> str:
        return f"NetnsNft({self.netns!r})"

    def _run(self, argv: Sequence[str], input: str | None = None) -> CommandResult:
        timeout = timeout_for(input)
        try:
            return self.runner(argv, input=input, timeout=timeout)
        except CommandNotFound as exc:
            raise NftError(f"{exc} (install nftables)") from None
        except subprocess.TimeoutExpired:
            # Killed: whether the kernel committed is unknown (its commit is atomic either way).
            raise NftError(f"{argv[0]} {' '.join(argv[1:])} in {self.netns} took more than {timeout:.0f} s"
                           ) from None

    def run(self, text: str) -> None:
        """Apply a transaction atomically: as a netlink batch when it can be built, else `nft -f -` with
        `text` on stdin; NftTransactionFailed (nothing applied)."""
        if self.direct and (self._run_direct(text) or self._run_cold_start(text)):
            return
        self._nft_f(text)
        self.nft_runs += 1

    def _run_direct(self, text: str) -> bool:
        """True when the batch was applied; False: run `nft -f` (the text is outside the batch
        vocabulary, or the kernel refused the batch and nft is to say why in its words)."""
        try:
            messages = compile_transaction(text)
        except Unsupported:
            return False
        if not messages:  # nothing to apply (a sync with nothing new for this family)
            return True
        try:
            self._send(messages)
        except BatchRefused as exc:
            log.debug("%s: the kernel refused a batch (%s at line %s); running nft -f for its diagnosis",
                      self.netns, exc, exc.line_number)
            return False
        except (OSError, KernelError) as exc:
            log.warning("%s: cannot send an nftables batch (%s); using nft -f", self.netns, exc)
            return False
        self.direct_runs += 1
        return True

    def _send(self, messages: Sequence[Message]) -> None:
        with self._sender_lock:
            try:
                self._open_sender().send(messages)
            except (OSError, KernelError):
                self._close_sender()
                raise

    def _open_sender(self) -> BatchSender:
        if self._sender is None:
            self._sender = NftBatchSocket(run_in_netns(self.netns, socket.socket, socket.AF_NETLINK,
                                                       socket.SOCK_RAW, NETLINK_NETFILTER))
        return self._sender

    def _query(self, kind: int, family: str, attrs: bytes, *, dump: bool) -> list[bytes] | None:
        """A netlink GET in the namespace; None when the table (or object) does not exist. NftError when
        the kernel cannot be asked."""
        with self._sender_lock:
            sender = self._open_sender()
            if not isinstance(sender, NftBatchSocket):
                raise NftError("netlink reads need a netlink socket")
            try:
                return sender.query(kind, NFPROTO[family], attrs, dump=dump)
            except FileNotFoundError:
                return None
            except (OSError, KernelError) as exc:
                self._close_sender()
                raise NftError(f"reading nf_tables in {self.netns}: {exc}") from None

    def _netlink_names(self, kind: str, family: str, table: str) -> tuple[str, ...] | None:
        """list_names over netlink; None when there is no table."""
        if not self._netlink_table_exists(family, table):
            return None
        key = string(1, table)  # NFTA_{CHAIN,SET,OBJ}_TABLE: the kernel dumps only that table's objects
        if kind == "chain":
            found = named(self._query(MSG_GETCHAIN, family, key, dump=True) or [], table, CHAIN_NAME)
            return tuple(sorted(cstring(a[CHAIN_NAME]) for a in found))
        if kind in ("set", "map"):
            found = named(self._query(MSG_GETSET, family, key, dump=True) or [], table, SET_NAME)
            return tuple(sorted(cstring(a[SET_NAME]) for a in found if set_kind(a) == kind))
        return tuple(sorted(self._netlink_counters(family, table)))

    def _netlink_counters(self, family: str, table: str) -> dict[str, tuple[int, int]]:
        attrs = string(OBJ_TABLE, table) + be32(OBJ_TYPE, OBJECT_COUNTER)
        found = named(self._query(MSG_GETOBJ, family, attrs, dump=True) or [], table, OBJ_NAME, OBJ_TABLE)
        return {cstring(a[OBJ_NAME]): counter_values(a) for a in sorted(found, key=lambda a: a[OBJ_NAME])}

    def _netlink_table_exists(self, family: str, table: str) -> bool:
        return self._query(MSG_GETTABLE, family, string(TABLE_NAME, table), dump=False) is not None

    def _run_cold_start(self, text: str) -> bool:
        """A big full transaction for a table that does not exist yet, in steps (see ColdStart): in one
        `nft -f` the kernel binds each anonymous vmap by walking the whole transaction so far, which
        costs minutes at 10,000 Services. True when applied; False: run `nft -f` (not such a
        transaction, or a step failed: the new table is deleted first, so nothing is left of it)."""
        if text.count("vmap {") < self.cold_start_min_vmaps:
            return False
        target = transaction_target(text)  # cheap checks first: splitting 10,000 Services takes seconds
        if target is None or self.table_exists(*target):
            return False
        steps = cold_start_split(text, min_vmaps=self.cold_start_min_vmaps)
        if steps is None:
            return False
        try:
            self._apply_cold_start(steps)
        except (NftError, BatchRefused, OSError, KernelError) as exc:
            log.warning("%s: a cold start in steps failed (%s); deleting the new table, running nft -f",
                        self.netns, exc)
            self.delete_table(steps.family, steps.table)
            return False
        self.direct_runs += 1
        return True

    def _apply_cold_start(self, steps: ColdStart) -> None:
        """The skeleton, the fills and the rest, in that order. One worker thread runs the skeleton's
        `nft -f` and then sends the batches in turn while this thread builds the next ones: the
        kernel's work (inside the worker's syscalls, without the GIL) overlaps building them."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"nft-{self.netns}") as worker:
            steps_done = [worker.submit(self._nft_f, steps.skeleton)]
            for batch in steps.fills():
                if any(f.done() and f.exception() for f in steps_done):
                    break  # a step failed: build no more
                steps_done.append(worker.submit(self._send, batch))
            for future in steps_done:
                future.result()  # the first failure, in order
        rest = steps.rest()
        if rest:
            self._nft_f(rest)

    def _nft_f(self, text: str) -> None:
        result = self._run([NFT, "-f", "-"], input=text)
        if result.returncode != 0:
            raise transaction_error(text, result.stderr)

    def _close_sender(self) -> None:
        if self._sender is not None:
            try:
                self._sender.close()
            except OSError:
                pass
            self._sender = None

    def close(self) -> None:
        """Close the netlink socket, if one was opened (a later run opens another)."""
        with self._sender_lock:
            self._close_sender()

    def check(self, text: str) -> None:
        """What `run` would say, without changing anything (`nft --check -f -`)."""
        result = self._run([NFT, "--check", "-f", "-"], input=text)
        if result.returncode != 0:
            raise transaction_error(text, result.stderr)

    def list_table(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> str:
        """`nft list table FAMILY TABLE` as nft prints it, for people; NftNotFound when it does not exist."""
        result = self._run([NFT, "list", "table", family, table])
        if result.returncode != 0:
            raise self._list_error(family, table, result)
        return result.stdout

    def table_exists(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> bool:
        if self.netlink_reads:
            return self._netlink_table_exists(family, table)
        return self._listing(family, table) is not None

    def list_names(self, kind: str, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE,
                   ) -> tuple[str, ...]:
        """Names of the table's chains / sets / maps / counters (kind "chain", "set", "map", "counter");
        () when there is no table."""
        if self.netlink_reads:
            if kind not in LISTABLE:
                raise ValueError(f"cannot list {kind!r}: one of {', '.join(LISTABLE)}")
            return self._netlink_names(kind, family, table) or ()
        listing = self._listing(family, table)
        return names_in_listing(listing, kind, family, table) if listing is not None else ()

    def list_chains(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> tuple[str, ...]:
        return self.list_names("chain", family, table)

    def list_counters(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE,
                      ) -> dict[str, tuple[int, int]]:
        """The table's named counters: name -> (packets, bytes); {} when there is no table."""
        if self.netlink_reads:
            return self._netlink_counters(family, table) if self._netlink_table_exists(family, table) else {}
        listing = self._listing(family, table)
        return counters_in_listing(listing, family, table) if listing is not None else {}

    def delete_table(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> bool:
        """Delete the table and everything in it: True if it was there, False if it was not."""
        text = f"delete table {family} {table}\n"
        result = self._run([NFT, "-f", "-"], input=text)
        if result.returncode == 0:
            return True
        failure = transaction_error(text, result.stderr)
        if failure.errno_name == "ENOENT":
            return False
        raise failure

    def support(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE, *,
                skip_kernel_version_check: bool = False) -> NftSupport:
        """kube-proxy's checks in this namespace (see check_support); changes nothing."""
        try:
            version = self.runner([NFT, "--version"])
        except CommandNotFound:
            return check_support(None, None, os.uname().release)
        check = None
        if version.returncode == 0:
            check = self.runner([NFT, "--check", "-f", "-"], input=f"add table {family} {table}\n")
        return check_support(version.stdout if version.returncode == 0 else version.stderr, check,
                             os.uname().release, skip_kernel_version_check=skip_kernel_version_check)

    def _listing(self, family: str, table: str) -> str | None:
        result = self._run([NFT, "-j", "list", "table", family, table])
        if result.returncode == 0:
            return result.stdout
        error = self._list_error(family, table, result)
        if isinstance(error, NftNotFound):
            return None
        raise error

    def _list_error(self, family: str, table: str, result: CommandResult) -> NftError:
        said = result.stderr.strip()
        if "No such file or directory" in said:
            return NftNotFound(f"no table {family} {table} in {self.netns}")
        return NftError(f"nft list table {family} {table} in {self.netns}: {said}")
