"""A model of netfilter's iptables rules: parse iptables-restore input as iptables-restore does.

Like kube-proxy's pkg/util/iptables/testing (parse.go, fake.go), but standalone:
it is fed exactly the text the renderer produced, so a typo in a rule is a parse
error here (as it would be in iptables-restore). `svcnet proxy trace` and the
proxy's policy tests run packets through the result with
svcnet.proxy.iptables.tracer; svcnet.testing.iptables.FakeIptables keeps one
model per IP family as its "kernel".

Parsing (IptablesModel.restore) follows iptables-restore: "*table" ...
"COMMIT" blocks; ":CHAIN POLICY [p:b]" declares a chain (with --noflush, the
default, a user chain that exists is flushed; without it the whole table is
flushed first); "-A", "-I", "-D", "-N", "-F", "-X" (a chain must be empty and
unreferenced to be deleted); jumps must name existing chains. A block that
fails changes nothing. Matches understood: -p -s -d -i -o (with !), and the
modules comment, tcp, udp, sctp (--dport/--sport), addrtype, mark, conntrack
(--ctstate), statistic (--mode random), recent, nfacct; targets ACCEPT, DROP,
REJECT, RETURN, user chains (-j and -g), MARK, DNAT, SNAT, MASQUERADE, LOG.
"""
from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

BUILTIN_CHAINS: Mapping[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
_TERMINAL_TARGETS = {"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "SNAT", "MASQUERADE"}
_NON_TERMINAL_TARGETS = {"MARK", "LOG"}
_PROTOCOLS = {"tcp", "udp", "sctp", "icmp", "icmpv6", "all"}


class RestoreError(ValueError):
    """iptables-restore would reject this input."""

    def __init__(self, line_number: int, message: str) -> None:
        super().__init__(f"line {line_number}: {message}")
        self.line_number = line_number


# --- rules --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    """One condition of a rule; `kind` names what is compared."""

    kind: str  # protocol, source, destination, in-interface, out-interface, dport, sport, src-type,
    #            dst-type, mark, ctstate, statistic, recent, comment, nfacct
    value: object
    negate: bool = False


@dataclass(frozen=True)
class Rule:
    chain: str
    matches: tuple[Match, ...]
    target: str | None  # None: no target (counts and moves on)
    target_options: tuple[tuple[str, str], ...] = ()
    goto: bool = False
    text: str = ""  # the rule as written, after "-A CHAIN"

    def option(self, name: str) -> str | None:
        for key, value in self.target_options:
            if key == name:
                return value
        return None

    @property
    def comment(self) -> str | None:
        for match in self.matches:
            if match.kind == "comment":
                return str(match.value)
        return None


@dataclass(frozen=True)
class Chain:
    name: str
    policy: str | None  # built-in chains only
    rules: tuple[Rule, ...] = ()


_MODULE_OPTIONS: Mapping[str, frozenset[str]] = {
    "comment": frozenset({"--comment"}),
    "tcp": frozenset({"--dport", "--destination-port", "--sport", "--source-port", "--tcp-flags", "--syn"}),
    "udp": frozenset({"--dport", "--destination-port", "--sport", "--source-port"}),
    "sctp": frozenset({"--dport", "--destination-port", "--sport", "--source-port"}),
    "addrtype": frozenset({"--src-type", "--dst-type"}),
    "mark": frozenset({"--mark"}),
    "conntrack": frozenset({"--ctstate"}),
    "statistic": frozenset({"--mode", "--probability", "--every", "--packet"}),
    "recent": frozenset({"--name", "--set", "--rcheck", "--update", "--remove", "--seconds", "--reap",
                         "--hitcount", "--rsource", "--rdest", "--mask"}),
    "nfacct": frozenset({"--nfacct-name"}),
}
_FLAG_OPTIONS = frozenset({"--set", "--rcheck", "--update", "--remove", "--reap", "--rsource", "--rdest",
                           "--syn", "--random-fully", "--random", "--persistent"})
_TARGET_OPTIONS: Mapping[str, frozenset[str]] = {
    "DNAT": frozenset({"--to-destination", "--random", "--persistent"}),
    "SNAT": frozenset({"--to-source", "--random", "--random-fully", "--persistent"}),
    "MASQUERADE": frozenset({"--to-ports", "--random", "--random-fully"}),
    "MARK": frozenset({"--set-mark", "--set-xmark", "--or-mark", "--xor-mark", "--and-mark"}),
    "REJECT": frozenset({"--reject-with"}),
    "LOG": frozenset({"--log-prefix", "--log-level"}),
}
_SHORT = {"--protocol": "-p", "--source": "-s", "--src": "-s", "--destination": "-d", "--dst": "-d",
          "--in-interface": "-i", "--out-interface": "-o", "--jump": "-j", "--goto": "-g", "--match": "-m"}


def _header_match(token: str, value: str, negate: bool, line: int) -> Match:
    """-p, -s, -d, -i or -o: the fields every packet header has."""
    if token == "-p":
        proto = value.lower()
        if proto not in _PROTOCOLS:
            raise RestoreError(line, f"unknown protocol {proto!r}")
        return Match("protocol", proto, negate)
    if token in ("-s", "-d"):
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise RestoreError(line, f"host/network {value!r} not found") from None
        return Match("source" if token == "-s" else "destination", net, negate)
    return Match("in-interface" if token == "-i" else "out-interface", value, negate)


def _module_match(module: str, token: str, value: str, negate: bool, pending: dict[str, dict[str, str]],
                  line: int) -> Match | None:
    """The match one module option makes; statistic and recent collect options in `pending` first."""
    if module == "comment":
        return Match("comment", value)
    if module in ("tcp", "udp", "sctp"):
        kind = "dport" if token in ("--dport", "--destination-port") else "sport"
        low, _, high = value.partition(":")
        return Match(kind, (int(low), int(high or low)), negate)
    if module == "addrtype":
        return Match(token[2:], value.upper(), negate)
    if module == "mark":
        mark, _, mask = value.partition("/")
        return Match("mark", (int(mark, 0), int(mask, 0) if mask else 0xFFFFFFFF), negate)
    if module == "conntrack":
        return Match("ctstate", frozenset(value.upper().split(",")), negate)
    if module == "nfacct":
        return Match("nfacct", value)
    options = pending.setdefault(module, {})  # statistic or recent
    options[token] = value
    if module == "statistic" and "--mode" in options and "--probability" in options:
        if options["--mode"] != "random":
            raise RestoreError(line, "only statistic --mode random is modelled")
        del pending[module]
        return Match("statistic", float(options["--probability"]), negate)
    return None


def _parse_rule(chain: str, tokens: list[str], chain_exists, line: int) -> Rule:
    """Parse the arguments of one rule (everything after "-A CHAIN")."""
    matches: list[Match] = []
    modules: list[str] = []
    target: str | None = None
    goto = False
    target_options: list[tuple[str, str]] = []
    pending: dict[str, dict[str, str]] = {}  # statistic and recent options not yet made into a match
    negate = False
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise RestoreError(line, f"option {tokens[i - 1]!r} requires an argument")
        value = tokens[i]
        i += 1
        return value

    while i < len(tokens):
        token = _SHORT.get(tokens[i], tokens[i])
        i += 1
        if token == "!":
            negate = True
            continue
        if token in ("-p", "-s", "-d", "-i", "-o"):
            matches.append(_header_match(token, take(), negate, line))
            proto = matches[-1].value
            if token == "-p" and proto in ("tcp", "udp", "sctp") and proto not in modules:
                modules.append(str(proto))
        elif token == "-m":
            module = take()
            if module not in _MODULE_OPTIONS:
                raise RestoreError(line, f"Couldn't load match `{module}'")
            modules.append(module)
        elif token in ("-j", "-g"):
            target = take()
            goto = token == "-g"
            if target not in _TERMINAL_TARGETS | _NON_TERMINAL_TARGETS and not chain_exists(target):
                raise RestoreError(line, f"Couldn't load target `{target}'")
        elif token.startswith("--") and target is not None and token in _TARGET_OPTIONS.get(target, ()):
            target_options.append((token, "" if token in _FLAG_OPTIONS else take()))
        elif token.startswith("--"):
            module = next((m for m in reversed(modules) if token in _MODULE_OPTIONS[m]), None)
            if module is None:
                raise RestoreError(line, f"unknown option {token!r}")
            value = "" if token in _FLAG_OPTIONS else take()
            match = _module_match(module, token, value, negate, pending, line)
            if match is not None:
                matches.append(match)
        else:
            raise RestoreError(line, f"unknown argument {token!r}")
        negate = False

    if "recent" in pending:
        recent = pending.pop("recent")
        recent.setdefault("--name", "DEFAULT")
        matches.append(Match("recent", tuple(sorted(recent.items()))))
    if pending:
        raise RestoreError(line, "statistic needs --mode random --probability P")
    return Rule(chain, tuple(matches), target, tuple(target_options), goto, " ".join(
        shlex.quote(t) if " " in t else t for t in tokens))


# --- the tables -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IptablesModel:
    """The rules of one network namespace, and which addresses are its own (for addrtype LOCAL)."""

    tables: Mapping[str, Mapping[str, Chain]] = field(default_factory=dict)
    local_addresses: frozenset[str] = frozenset()

    @classmethod
    def empty(cls, local_addresses: Iterable[str] = ()) -> IptablesModel:
        """A fresh namespace: built-in chains only, policy ACCEPT."""
        tables = {t: {c: Chain(c, "ACCEPT") for c in chains} for t, chains in BUILTIN_CHAINS.items()}
        return cls(tables, frozenset(str(ipaddress.ip_address(a)) for a in local_addresses))

    def restore(self, text: str, *, noflush: bool = True) -> IptablesModel:
        """A new model with iptables-restore input applied (atomically per table, as the real one)."""
        tables = {name: dict(chains) for name, chains in self.tables.items()}
        table: str | None = None
        work: dict[str, Chain] = {}
        start = 0
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                if table is not None:
                    raise RestoreError(number, f"table {table!r} has no COMMIT")
                table, start = line[1:], number
                if table not in BUILTIN_CHAINS:
                    raise RestoreError(number, f"unknown table {table!r}")
                if noflush:
                    work = dict(tables[table])
                else:
                    work = {c: Chain(c, tables[table][c].policy) for c in BUILTIN_CHAINS[table]}
                continue
            if table is None:
                raise RestoreError(number, "rule outside of a table")
            if line == "COMMIT":
                tables[table] = work
                table = None
                continue
            if line.startswith(":"):
                parts = line[1:].split()
                if len(parts) < 2:
                    raise RestoreError(number, f"bad chain line {line!r}")
                name, policy = parts[0], parts[1]
                if name in BUILTIN_CHAINS[table]:
                    if policy not in ("ACCEPT", "DROP"):
                        raise RestoreError(number, f"bad policy {policy!r} for built-in chain {name}")
                    work[name] = replace(work[name], policy=policy)
                else:
                    if policy != "-":
                        raise RestoreError(number, f"user chain {name} cannot have a policy")
                    if len(name) > 28:
                        raise RestoreError(number, f"chain name {name!r} too long")
                    work[name] = Chain(name, None)  # declaring a chain flushes it
                continue
            self._apply_command(work, table, shlex.split(line), number)
        if table is not None:
            raise RestoreError(start, f"table {table!r} has no COMMIT")
        return IptablesModel(tables, self.local_addresses)

    @staticmethod
    def _apply_command(work: dict[str, Chain], table: str, tokens: list[str], number: int) -> None:
        command = tokens[0]
        if command in ("-A", "--append", "-I", "--insert", "-D", "--delete"):
            if len(tokens) < 2 or tokens[1] not in work:
                raise RestoreError(number, f"chain {tokens[1] if len(tokens) > 1 else ''!r} does not exist")
            chain = work[tokens[1]]
            args = tokens[2:]
            position = None
            if command in ("-I", "--insert") and args and args[0].isdigit():
                position = int(args[0]) - 1
                args = args[1:]
            rule = _parse_rule(chain.name, args, lambda c: c in work, number)
            if rule.target in BUILTIN_CHAINS[table]:
                raise RestoreError(number, f"cannot jump to built-in chain {rule.target}")
            if command in ("-A", "--append"):
                rules = (*chain.rules, rule)
            elif command in ("-I", "--insert"):
                index = position or 0
                if index > len(chain.rules):
                    raise RestoreError(number, "index of insertion too big")
                rules = (*chain.rules[:index], rule, *chain.rules[index:])
            else:
                texts = [r.text for r in chain.rules]
                if rule.text not in texts:
                    raise RestoreError(number, "bad rule (does a matching rule exist in that chain?)")
                index = texts.index(rule.text)
                rules = (*chain.rules[:index], *chain.rules[index + 1:])
            work[chain.name] = replace(chain, rules=rules)
        elif command in ("-N", "--new-chain"):
            if tokens[1] in work:
                raise RestoreError(number, f"chain {tokens[1]} already exists")
            work[tokens[1]] = Chain(tokens[1], None)
        elif command in ("-F", "--flush"):
            names = tokens[1:] or list(work)
            for name in names:
                if name not in work:
                    raise RestoreError(number, f"chain {name} does not exist")
                work[name] = replace(work[name], rules=())
        elif command in ("-X", "--delete-chain"):
            name = tokens[1]
            if name not in work:
                raise RestoreError(number, f"chain {name} does not exist")
            if name in BUILTIN_CHAINS[table]:
                raise RestoreError(number, f"cannot delete built-in chain {name}")
            if work[name].rules:
                raise RestoreError(number, f"chain {name} is not empty")
            if any(r.target == name for c in work.values() for r in c.rules):
                raise RestoreError(number, f"chain {name} is still referenced (Too many links)")
            del work[name]
        else:
            raise RestoreError(number, f"unknown command {command!r}")

    # --- inspection ---

    def chains(self, table: str) -> frozenset[str]:
        return frozenset(self.tables[table])

    def rules(self, table: str, chain: str) -> tuple[str, ...]:
        """The rules of one chain as written (after "-A CHAIN")."""
        return tuple(r.text for r in self.tables[table][chain].rules)

    def dump(self, table: str) -> dict[str, tuple[str, ...]]:
        """Chain -> rules, for comparing two rulesets regardless of the order they were written in."""
        return {name: self.rules(table, name) for name in sorted(self.tables[table])}

    def is_local(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return ip.is_loopback or str(ip) in self.local_addresses


