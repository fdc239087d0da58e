"""A realistic model of netfilter's iptables: parse iptables-restore input, trace packets.

Like kube-proxy's pkg/util/iptables/testing (parse.go, fake.go) and its packet
tracer in proxier_test.go, but standalone: tests feed it exactly the text the
renderer produced, so a typo in a rule is a parse error here (as it would be in
iptables-restore), and policy is checked by where packets go, not by text.

Parsing (IptablesModel.restore) follows iptables-restore: "*table" ...
"COMMIT" blocks; ":CHAIN POLICY [p:b]" declares a chain (with --noflush, the
default, a user chain that exists is flushed; without it the whole table is
flushed first); "-A", "-I", "-D", "-N", "-F", "-X" (a chain must be empty and
unreferenced to be deleted); jumps must name existing chains. A block that
fails changes nothing.

Tracing (trace) follows a NEW connection's first packet through the hooks in
kernel order. A packet from elsewhere: nat PREROUTING, then the routing
decision (its possibly DNATed destination is a local address -> filter INPUT;
otherwise filter FORWARD and nat POSTROUTING). A packet this host sends: nat
OUTPUT, filter OUTPUT, nat POSTROUTING (and filter INPUT if it stays local).
Matches understood: -p -s -d -i -o (with !), and the modules comment, tcp, udp,
sctp (--dport/--sport), addrtype (--src-type/--dst-type LOCAL), mark, conntrack
(--ctstate), statistic (random: every branch is followed, each with its
probability), recent (--rcheck/--update against the packet's affinity entries,
--set recorded in the outcome), nfacct; targets ACCEPT, DROP, REJECT, RETURN,
user chains (-j and -g), MARK (--or-mark/--xor-mark/--and-mark/--set-mark/
--set-xmark), DNAT, SNAT, MASQUERADE, LOG.
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


@dataclass(frozen=True)
class Recent:
    """An entry of a `recent` list: this source was last seen age_seconds ago."""

    name: str
    source: str
    age_seconds: int = 0


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


def _parse_rule(chain: str, tokens: list[str], chain_exists, line: int) -> Rule:
    """Parse the arguments of one rule (everything after "-A CHAIN")."""
    matches: list[Match] = []
    modules: list[str] = []
    target: str | None = None
    goto = False
    target_options: list[tuple[str, str]] = []
    recent: dict[str, str] = {}
    statistic: dict[str, str] = {}
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
        if token == "-p":
            proto = take().lower()
            if proto not in _PROTOCOLS:
                raise RestoreError(line, f"unknown protocol {proto!r}")
            matches.append(Match("protocol", proto, negate))
            if proto in ("tcp", "udp", "sctp") and proto not in modules:
                modules.append(proto)
        elif token in ("-s", "-d"):
            raw = take()
            try:
                net = ipaddress.ip_network(raw, strict=False)
            except ValueError:
                raise RestoreError(line, f"host/network {raw!r} not found") from None
            matches.append(Match("source" if token == "-s" else "destination", net, negate))
        elif token in ("-i", "-o"):
            matches.append(Match("in-interface" if token == "-i" else "out-interface", take(), negate))
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
        elif token.startswith("--"):
            if target is not None and token in _TARGET_OPTIONS.get(target, ()):
                value = "" if token in _FLAG_OPTIONS else take()
                target_options.append((token, value))
                negate = False
                continue
            module = next((m for m in reversed(modules) if token in _MODULE_OPTIONS[m]), None)
            if module is None:
                raise RestoreError(line, f"unknown option {token!r}")
            value = "" if token in _FLAG_OPTIONS else take()
            if module == "comment":
                matches.append(Match("comment", value))
            elif module in ("tcp", "udp", "sctp"):
                kind = "dport" if token in ("--dport", "--destination-port") else "sport"
                low, _, high = value.partition(":")
                matches.append(Match(kind, (int(low), int(high or low)), negate))
            elif module == "addrtype":
                matches.append(Match(token[2:], value.upper(), negate))
            elif module == "mark":
                mark, _, mask = value.partition("/")
                matches.append(Match("mark", (int(mark, 0), int(mask, 0) if mask else 0xFFFFFFFF), negate))
            elif module == "conntrack":
                matches.append(Match("ctstate", frozenset(value.upper().split(",")), negate))
            elif module == "statistic":
                statistic[token] = value
                if "--mode" in statistic and "--probability" in statistic:
                    if statistic["--mode"] != "random":
                        raise RestoreError(line, "only statistic --mode random is modelled")
                    matches.append(Match("statistic", float(statistic["--probability"]), negate))
                    statistic = {}
            elif module == "recent":
                recent[token] = value
            elif module == "nfacct":
                matches.append(Match("nfacct", value))
        else:
            raise RestoreError(line, f"unknown argument {token!r}")
        negate = False

    if recent:
        if "--name" not in recent:
            recent["--name"] = "DEFAULT"
        matches.append(Match("recent", tuple(sorted(recent.items()))))
    if statistic:
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


# --- packets and outcomes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    """The first packet of a new connection."""

    src: str
    dst: str
    dport: int
    protocol: str = "tcp"
    sport: int = 40000
    origin: str = "remote"  # "remote": arrives on in_interface; "local": sent by this host
    in_interface: str = "eth0"
    out_interface: str | None = None
    mark: int = 0
    recent: tuple[Recent, ...] = ()  # affinity entries the kernel already holds


@dataclass(frozen=True)
class Outcome:
    """One way the packet can go, and how likely it is."""

    probability: float
    verdict: str  # ACCEPT, DROP or REJECT
    delivered: str | None  # "local" (INPUT) or "forward" when accepted
    src: str
    dst: str
    dport: int
    dnat: bool
    masquerade: bool
    mark: int
    recent_set: frozenset[str] = frozenset()  # recent lists this packet's source was added to
    path: tuple[str, ...] = ()  # table/chain names traversed, in order
    dropped_by: str | None = None  # the rule that dropped or rejected it

    @property
    def endpoint(self) -> str | None:
        """"IP:port" it was DNATed to, else None."""
        if not self.dnat:
            return None
        return f"[{self.dst}]:{self.dport}" if ":" in self.dst else f"{self.dst}:{self.dport}"


@dataclass(frozen=True)
class _State:
    src: str
    dst: str
    sport: int
    dport: int
    protocol: str
    in_interface: str | None
    out_interface: str | None
    mark: int
    ctstate: frozenset[str]
    dnat: bool = False
    masquerade: bool = False
    recent_set: frozenset[str] = frozenset()
    path: tuple[str, ...] = ()
    dropped_by: str | None = None


def _port_in(value: tuple[int, int], port: int) -> bool:
    return value[0] <= port <= value[1]


def _interface_matches(pattern: str, name: str | None) -> bool:
    if name is None:
        return False
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


class _Tracer:
    def __init__(self, model: IptablesModel, packet: Packet) -> None:
        self.model = model
        self.packet = packet

    def _simple_match(self, match: Match, state: _State) -> bool:
        kind = match.kind
        if kind == "protocol":
            result = match.value == "all" or state.protocol == match.value
        elif kind == "source":
            result = ipaddress.ip_address(state.src) in match.value  # type: ignore[operator]
        elif kind == "destination":
            result = ipaddress.ip_address(state.dst) in match.value  # type: ignore[operator]
        elif kind == "in-interface":
            result = _interface_matches(str(match.value), state.in_interface)
        elif kind == "out-interface":
            result = _interface_matches(str(match.value), state.out_interface)
        elif kind == "dport":
            result = _port_in(match.value, state.dport)  # type: ignore[arg-type]
        elif kind == "sport":
            result = _port_in(match.value, state.sport)  # type: ignore[arg-type]
        elif kind in ("dst-type", "src-type"):
            address = state.dst if kind == "dst-type" else state.src
            if match.value != "LOCAL":
                raise NotImplementedError(f"addrtype {match.value} is not modelled")
            result = self.model.is_local(address)
        elif kind == "mark":
            value, mask = match.value  # type: ignore[misc]
            result = (state.mark & mask) == value
        elif kind == "ctstate":
            result = bool(state.ctstate & match.value)  # type: ignore[operator]
        elif kind in ("comment", "nfacct"):
            result = True
        else:
            raise AssertionError(kind)
        return result != match.negate

    def _recent_match(self, match: Match, state: _State) -> tuple[bool, _State]:
        options = dict(match.value)  # type: ignore[arg-type]
        name = options["--name"]
        if "--set" in options:
            return True, replace(state, recent_set=state.recent_set | {name})
        seconds = int(options["--seconds"]) if "--seconds" in options else None
        seen = any(
            r.name == name and r.source == state.src and (seconds is None or r.age_seconds <= seconds)
            for r in self.packet.recent
        )
        return seen != match.negate, state

    def _rule_branches(self, rule: Rule, state: _State) -> list[tuple[float, bool, _State]]:
        """(probability, matched, state) for each way a rule can go."""
        branches: list[tuple[float, bool, _State]] = [(1.0, True, state)]
        # Header fields (-p -s -d -i -o) are checked before any match module, as in the kernel.
        header = [m for m in rule.matches if m.kind in ("protocol", "source", "destination",
                                                         "in-interface", "out-interface")]
        modules = [m for m in rule.matches if m not in header]
        for match in [*header, *modules]:
            next_branches: list[tuple[float, bool, _State]] = []
            for probability, matched, current in branches:
                if not matched:
                    next_branches.append((probability, matched, current))
                elif match.kind == "statistic":
                    p = float(match.value)  # type: ignore[arg-type]
                    p = 1.0 - p if match.negate else p
                    if p > 0:
                        next_branches.append((probability * p, True, current))
                    if p < 1:
                        next_branches.append((probability * (1 - p), False, current))
                elif match.kind == "recent":
                    ok, updated = self._recent_match(match, current)
                    next_branches.append((probability, ok, updated if ok else current))
                else:
                    next_branches.append((probability, self._simple_match(match, current), current))
            branches = next_branches
        return branches

    def walk(self, table: str, chain_name: str, state: _State, depth: int = 0,
             ) -> list[tuple[float, str, _State]]:
        """Follow a chain; results are (probability, verdict, state), verdict CONTINUE when it returns."""
        if depth > 64:
            raise RuntimeError(f"chain loop through {chain_name}")
        chain = self.model.tables[table][chain_name]
        state = replace(state, path=(*state.path, f"{table}/{chain_name}"))
        results: list[tuple[float, str, _State]] = []
        live: list[tuple[float, _State]] = [(1.0, state)]
        for rule in chain.rules:
            next_live: list[tuple[float, _State]] = []
            for probability, current in live:
                for p, matched, st in self._rule_branches(rule, current):
                    weight = probability * p
                    if not matched:
                        next_live.append((weight, st))
                        continue
                    for q, verdict, out in self._apply_target(table, rule, st, depth):
                        if verdict == "CONTINUE":
                            next_live.append((weight * q, out))
                        elif verdict == "RETURN":
                            # RETURN from a built-in chain means its policy decides.
                            results.append((weight * q, chain.policy or "CONTINUE", out))
                        else:
                            results.append((weight * q, verdict, out))
            live = next_live
        # Falling off the end: a built-in chain applies its policy, a user chain returns.
        end = chain.policy if chain.policy is not None else "CONTINUE"
        results.extend((p, end, st) for p, st in live)
        return results

    def _apply_target(self, table: str, rule: Rule, state: _State, depth: int,
                      ) -> list[tuple[float, str, _State]]:
        target = rule.target
        if target is None or target in ("LOG",):
            return [(1.0, "CONTINUE", state)]
        if target in ("ACCEPT", "RETURN"):
            return [(1.0, target, state)]
        if target in ("DROP", "REJECT"):
            return [(1.0, target, replace(state, dropped_by=f"-A {rule.chain} {rule.text}"))]
        if target == "MARK":
            mark = state.mark
            for option, value in rule.target_options:
                if option == "--or-mark":
                    mark |= int(value, 0)
                elif option == "--xor-mark":
                    mark ^= int(value, 0)
                elif option == "--and-mark":
                    mark &= int(value, 0)
                elif option in ("--set-mark", "--set-xmark"):
                    bits, _, mask = value.partition("/")
                    mask_value = int(mask, 0) if mask else 0xFFFFFFFF
                    mark = (mark & ~mask_value & 0xFFFFFFFF) ^ int(bits, 0)
            return [(1.0, "CONTINUE", replace(state, mark=mark))]
        if target == "DNAT":
            destination = rule.option("--to-destination") or ""
            host, port = _split_host_port(destination, state.dport)
            return [(1.0, "ACCEPT", replace(state, dst=host, dport=port, dnat=True,
                                            ctstate=state.ctstate | {"DNAT"}))]
        if target == "SNAT":
            host, port = _split_host_port(rule.option("--to-source") or "", state.sport)
            return [(1.0, "ACCEPT", replace(state, src=host, sport=port, ctstate=state.ctstate | {"SNAT"}))]
        if target == "MASQUERADE":
            return [(1.0, "ACCEPT", replace(state, masquerade=True, ctstate=state.ctstate | {"SNAT"}))]
        # A user chain.
        results = self.walk(table, target, state, depth + 1)
        if rule.goto:
            # -g: falling off the called chain returns to our caller, not to us.
            return [(p, "RETURN" if v == "CONTINUE" else v, st) for p, v, st in results]
        return results


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def trace(model: IptablesModel, packet: Packet) -> list[Outcome]:
    """Every way the packet can go through the rules, each with its probability."""
    tracer = _Tracer(model, packet)
    start = _State(
        src=str(ipaddress.ip_address(packet.src)), dst=str(ipaddress.ip_address(packet.dst)),
        sport=packet.sport, dport=packet.dport, protocol=packet.protocol.lower(),
        in_interface=packet.in_interface if packet.origin == "remote" else None,
        out_interface=packet.out_interface, mark=packet.mark, ctstate=frozenset({"NEW"}),
    )
    # Each stage maps (probability, state) to its continuations; a verdict other than ACCEPT ends a branch.
    branches: list[tuple[float, _State, str | None]] = [(1.0, start, None)]

    def hook(table: str, chain: str) -> None:
        nonlocal branches
        updated: list[tuple[float, _State, str | None]] = []
        for probability, state, verdict in branches:
            if verdict is not None:
                updated.append((probability, state, verdict))
                continue
            for p, v, out in tracer.walk(table, chain, state):
                end = None if v in ("ACCEPT", "CONTINUE") else v
                updated.append((probability * p, out, end))
        branches = updated

    if packet.origin == "remote":
        hook("nat", "PREROUTING")
        routed: list[tuple[float, _State, str | None, str]] = []
        local_branches = [(p, s, v) for p, s, v in branches if model.is_local(s.dst)]
        forward_branches = [(p, s, v) for p, s, v in branches if not model.is_local(s.dst)]
        branches = local_branches
        hook("filter", "INPUT")
        routed.extend((p, s, v, "local") for p, s, v in branches)
        branches = forward_branches
        hook("filter", "FORWARD")
        hook("nat", "POSTROUTING")
        routed.extend((p, s, v, "forward") for p, s, v in branches)
    else:
        hook("nat", "OUTPUT")
        hook("filter", "OUTPUT")
        hook("nat", "POSTROUTING")
        local_branches = [(p, s, v) for p, s, v in branches if model.is_local(s.dst)]
        remote_branches = [(p, s, v) for p, s, v in branches if not model.is_local(s.dst)]
        branches = local_branches
        hook("filter", "INPUT")
        routed = [(p, s, v, "local") for p, s, v in branches]
        routed.extend((p, s, v, "out") for p, s, v in remote_branches)

    outcomes = []
    for probability, state, verdict, where in routed:
        if probability <= 0:
            continue
        final = verdict or "ACCEPT"
        outcomes.append(Outcome(
            probability=probability,
            verdict=final,
            delivered=where if final == "ACCEPT" else None,
            src=state.src, dst=state.dst, dport=state.dport,
            dnat=state.dnat, masquerade=state.masquerade, mark=state.mark,
            recent_set=state.recent_set, path=state.path, dropped_by=state.dropped_by,
        ))
    return outcomes


def reached(outcomes: Iterable[Outcome]) -> dict[str, float]:
    """Total probability per DNAT destination ("IP:port") among accepted outcomes."""
    totals: dict[str, float] = {}
    for outcome in outcomes:
        if outcome.verdict == "ACCEPT" and outcome.endpoint is not None:
            totals[outcome.endpoint] = totals.get(outcome.endpoint, 0.0) + outcome.probability
    return totals
