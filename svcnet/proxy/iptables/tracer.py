"""A packet tracer over the iptables rules model: where the first packet of a new connection goes.

Like the packet tracer in kube-proxy's proxier_test.go: policy is checked by
where packets go, not by text. `svcnet proxy trace` prints what it finds.

Tracing (trace) follows a NEW connection's first packet through the hooks in
kernel order. A packet from elsewhere: nat PREROUTING, then the routing
decision (its possibly DNATed destination is a local address -> filter INPUT;
otherwise filter FORWARD and nat POSTROUTING). A packet this host sends: nat
OUTPUT, filter OUTPUT, nat POSTROUTING (and filter INPUT if it stays local).
statistic (random) matches split the packet: every branch is followed, each
with its probability; recent (--rcheck/--update) matches look at the packet's
affinity entries and --set is recorded in the outcome; MARK (--or-mark/
--xor-mark/--and-mark/--set-mark/--set-xmark), DNAT, SNAT and MASQUERADE
change the packet as the kernel would.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

from svcnet.proxy.iptables.ruleset import IptablesModel, Match, Rule


@dataclass(frozen=True)
class Recent:
    """An entry of a `recent` list: this source was last seen age_seconds ago."""

    name: str
    source: str
    age_seconds: int = 0


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
            host, port = split_host_port(destination, state.dport)
            return [(1.0, "ACCEPT", replace(state, dst=host, dport=port, dnat=True,
                                            ctstate=state.ctstate | {"DNAT"}))]
        if target == "SNAT":
            host, port = split_host_port(rule.option("--to-source") or "", state.sport)
            return [(1.0, "ACCEPT", replace(state, src=host, sport=port, ctstate=state.ctstate | {"SNAT"}))]
        if target == "MASQUERADE":
            return [(1.0, "ACCEPT", replace(state, masquerade=True, ctstate=state.ctstate | {"SNAT"}))]
        # A user chain.
        results = self.walk(table, target, state, depth + 1)
        if rule.goto:
            # -g: falling off the called chain returns to our caller, not to us.
            return [(p, "RETURN" if v == "CONTINUE" else v, st) for p, v, st in results]
        return results


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """"10.0.0.1:80", "[fd00::1]:80" or a bare address (then default_port): a NAT target's host and port."""
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
