"""A packet tracer over an nftables ruleset: where the first packet of a new connection goes.

The nftables counterpart of svcnet.proxy.iptables.tracer, with the same Packet
and Outcome, over svcnet.proxy.nftables.ruleset.Ruleset (what FakeNft holds, or
a transaction text parsed by it). Like kube-proxy's nftables tracer
(pkg/proxy/nftables/helpers_test.go), policy is checked by where packets go;
unlike it, the rules are evaluated as the kernel evaluates them instead of
being recognised by shape, so a rule in the wrong chain or at the wrong
priority shows.

The packet meets the base chains of every table of its family (and `inet`)
hook by hook, in priority order: from elsewhere prerouting, then the routing
decision (its possibly DNATed destination is a local address: input;
otherwise forward and postrouting); sent by this host output, postrouting
(and input if it stays local). `accept` ends one base chain, the next one
still runs; `drop` and `reject` end the packet; once a nat chain has
translated the packet, later nat chains of the same hook are skipped, as the
kernel binds a connection's NAT once.

Understood: matches on `ip`/`ip6` `saddr`/`daddr` (address, CIDR, `{ ... }`,
`!=`, `@set`), `meta l4proto`, `th`/`tcp`/`udp`/`sctp` `dport`/`sport`,
`fib saddr|daddr type local`, `ct state`, `mark and M ==|!= V`,
`iifname`/`oifname`, concatenations joined by `.` looked up in sets (`@set`)
and verdict maps (`vmap @map`, `vmap { k : verdict , ... }`), with CIDR
components in interval keys; `numgen random mod N vmap { ... }` splits the
packet into N branches of probability 1/N; statements `jump`, `goto`,
`return`, `accept`, `drop`, `reject`, `dnat to`, `snat to`, `masquerade`,
`mark set mark or|xor|and V`, `update @set { ip saddr }` (recorded in the
outcome's recent_set), `counter` (also `counter name X`), `comment`. A dynamic set such as an
affinity set holds the sources the Packet's `recent` entries name (by set
name) for the set's timeout. Anything else raises NotImplementedError naming
the rule, rather than guessing.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from svcnet.proxy.iptables.tracer import Outcome, Packet, reached, split_host_port
from svcnet.proxy.nftables.ruleset import Chain, ElementSet, Ruleset, Table

__all__ = ["Outcome", "Packet", "flow", "reached", "trace"]

_PROTOCOL_NUMBERS = {"icmp": "1", "tcp": "6", "udp": "17", "sctp": "132", "icmpv6": "58"}
_MAX_DEPTH = 64
_NAT_STATEMENTS = ("dnat", "snat", "masquerade")


@dataclass(frozen=True)
class _State:
    src: str
    dst: str
    sport: int
    dport: int
    protocol: str
    iifname: str | None
    oifname: str | None
    mark: int
    ctstate: frozenset[str]
    hook: str = ""
    nat_hooks: frozenset[str] = frozenset()  # hooks whose NAT binding is made
    dnat: bool = False
    masquerade: bool = False
    recent_set: frozenset[str] = frozenset()
    path: tuple[str, ...] = ()
    dropped_by: str | None = None


# An action ends a rule's evaluation: ("nomatch",), ("continue",) or a verdict ("accept",), ("drop",),
# ("reject",), ("return",), ("jump", chain), ("goto", chain).
Action = tuple[str, ...]
NOMATCH: Action = ("nomatch",)
CONTINUE: Action = ("continue",)


# --- tokens ----------------------------------------------------------------------------------------------------

def tokenize(rule: str) -> list[str]:
    """Words of a rule; a quoted string or a `{ ... }` group is one token."""
    tokens, i = [], 0
    while i < len(rule):
        char = rule[i]
        if char.isspace():
            i += 1
        elif char == '"':
            end = rule.index('"', i + 1)
            tokens.append(rule[i:end + 1])
            i = end + 1
        elif char == "{":
            end = rule.index("}", i)
            tokens.append(rule[i:end + 1])
            i = end + 1
        else:
            end = i
            while end < len(rule) and not rule[end].isspace():
                end += 1
            tokens.append(rule[i:end])
            i = end
    return tokens


def _group_items(token: str) -> list[str]:
    """`{ a , b }` -> ["a", "b"]."""
    return [item.strip() for item in token.strip()[1:-1].split(",") if item.strip()]


# --- comparing one packet field with one value ---------------------------------------------------------------------

def _address_in(address: str, text: str) -> bool:
    ip = ipaddress.ip_address(address)
    if "-" in text and "/" not in text:
        low, _, high = text.partition("-")
        first, last = ipaddress.ip_address(low.strip()), ipaddress.ip_address(high.strip())
        return type(ip) is type(first) and first <= ip <= last  # type: ignore[operator]
    network = ipaddress.ip_network(text, strict=False)
    return ip.version == network.version and ip in network


def _port_in(port: int, text: str) -> bool:
    if "-" in text:
        low, _, high = text.partition("-")
        return int(low) <= port <= int(high)
    return port == int(text)


def _component_matches(field: str, value: object, text: str) -> bool:
    text = text.strip().strip('"')
    if field in ("saddr", "daddr"):
        return _address_in(str(value), text)
    if field in ("dport", "sport"):
        return _port_in(int(value), text)  # type: ignore[call-overload]
    if field == "l4proto":
        return _PROTOCOL_NUMBERS.get(str(value), str(value)) == _PROTOCOL_NUMBERS.get(text, text)
    if field == "mark":
        return int(value) == int(text, 0)  # type: ignore[call-overload]
    if field in ("iifname", "oifname"):
        return value is not None and (str(value).startswith(text[:-1]) if text.endswith("*") else value == text)
    if field == "ctstate":
        return bool(set(text.split(",")) & value)  # type: ignore[operator]
    if field in ("fib_saddr", "fib_daddr"):
        return value == text
    raise NotImplementedError(f"cannot compare {field}")


def _value_matches(field: str, value: object, text: str) -> bool:
    """A field against a literal, `a,b` list, or `{ ... }` anonymous set."""
    items = _group_items(text) if text.startswith("{") else [text]
    return any(_component_matches(field, value, item) for item in items)


# --- the tracer ----------------------------------------------------------------------------------------------

_FIELD_WORDS = {("ip", "saddr"): "saddr", ("ip", "daddr"): "daddr", ("ip6", "saddr"): "saddr",
                ("ip6", "daddr"): "daddr", ("meta", "l4proto"): "l4proto", ("meta", "mark"): "mark",
                ("meta", "iifname"): "iifname", ("meta", "oifname"): "oifname", ("th", "dport"): "dport",
                ("th", "sport"): "sport", ("ct", "state"): "ctstate"}
_SINGLE_WORDS = {"mark": "mark", "iifname": "iifname", "oifname": "oifname", "l4proto": "l4proto"}
_TIMEOUT = re.compile(r"\btimeout\s+(\d+)s\b")


class _Tracer:
    def __init__(self, ruleset: Ruleset, packet: Packet, local: frozenset[str], families: tuple[str, ...]) -> None:
        self.ruleset = ruleset
        self.packet = packet
        self.local = local
        self.tables = [t for (family, _), t in sorted(ruleset.tables.items()) if family in families]
        self._parsed: dict[str, list[str]] = {}

    def is_local(self, address: str) -> bool:
        return address in self.local

    def field(self, name: str, state: _State) -> object:
        return {"saddr": state.src, "daddr": state.dst, "l4proto": state.protocol, "dport": state.dport,
                "sport": state.sport, "mark": state.mark, "iifname": state.iifname, "oifname": state.oifname,
                "ctstate": state.ctstate,
                "fib_saddr": "local" if self.is_local(state.src) else "unicast",
                "fib_daddr": "local" if self.is_local(state.dst) else "unicast"}[name]

    # chains -------------------------------------------------------------------------------------------------

    def base_chains(self, hook: str) -> list[tuple[Table, Chain]]:
        found = [(t, c) for t in self.tables for c in t.chains.values() if c.hook == hook]
        return sorted(found, key=lambda tc: tc[1].priority or 0)

    def walk(self, table: Table, name: str, state: _State, depth: int = 0) -> list[tuple[float, str, _State]]:
        """(probability, verdict, state) for each way through a chain; verdict "continue" when it returns."""
        if depth > _MAX_DEPTH:
            raise RuntimeError(f"chain loop through {name}")
        chain = table.chains[name]
        state = replace(state, path=(*state.path, f"{table.family} {table.name} {name}"))
        results: list[tuple[float, str, _State]] = []
        live: list[tuple[float, _State]] = [(1.0, state)]
        for rule in chain.rules:
            next_live: list[tuple[float, _State]] = []
            for weight, current in live:
                for p, out, action in self.rule(table, rule.text, current):
                    for q, verdict, after in self.act(table, chain, rule.text, action, out, depth):
                        if verdict == "continue":
                            next_live.append((weight * p * q, after))
                        else:
                            results.append((weight * p * q, verdict, after))
            live = next_live
        results.extend((p, "continue", st) for p, st in live)
        return results

    def act(self, table: Table, chain: Chain, text: str, action: Action, state: _State, depth: int,
            ) -> list[tuple[float, str, _State]]:
        kind = action[0]
        if kind in ("nomatch", "continue"):
            return [(1.0, "continue", state)]
        if kind in ("accept", "return"):
            return [(1.0, kind, state)]
        if kind in ("drop", "reject"):
            return [(1.0, kind, replace(state, dropped_by=f"{chain.name}: {text}"))]
        results = self.walk(table, action[1], state, depth + 1)
        out = []
        for p, verdict, after in results:
            if verdict in ("continue", "return"):
                # Back from the called chain: a jump goes on after the rule; a goto returns to our caller.
                verdict = "return" if kind == "goto" else "continue"
            out.append((p, verdict, after))
        return out

    # rules ----------------------------------------------------------------------------------------------------

    def rule(self, table: Table, text: str, state: _State) -> list[tuple[float, _State, Action]]:
        """Each way one rule can go: (probability, state, action)."""
        tokens = self._parsed.get(text)
        if tokens is None:
            tokens = self._parsed[text] = tokenize(text)
        results: list[tuple[float, _State, Action]] = []
        pending: list[tuple[float, _State, int]] = [(1.0, state, 0)]
        while pending:
            weight, current, i = pending.pop(0)
            if i >= len(tokens):
                results.append((weight, current, CONTINUE))
                continue
            for p, after, j, action in self.step(table, text, tokens, i, current):
                if action is None:
                    pending.append((weight * p, after, j))
                else:
                    results.append((weight * p, after, action))
        return results

    def step(self, table: Table, text: str, tokens: list[str], i: int, state: _State,
             ) -> list[tuple[float, _State, int, Action | None]]:
        """One statement or match at tokens[i]: (probability, state, next index, action or None to go on)."""
        word = tokens[i]
        if word == "comment":
            return [(1.0, state, i + 2, None)]
        if word == "counter":
            return [(1.0, state, i + (3 if tokens[i + 1:i + 2] == ["name"] else 1), None)]
        if word in ("accept", "drop", "return"):
            return [(1.0, state, i + 1, (word,))]
        if word == "reject":
            return [(1.0, state, len(tokens), ("reject",))]
        if word in ("jump", "goto"):
            return [(1.0, state, i + 2, (word, tokens[i + 1]))]
        if word in _NAT_STATEMENTS:
            return [(1.0, self.nat(word, tokens, i, state), len(tokens), ("accept",))]
        if word == "update" or (word == "add" and tokens[i + 1].startswith("@")):
            return [(1.0, replace(state, recent_set=state.recent_set | {tokens[i + 1][1:]}), i + 3, None)]
        if word == "numgen":
            return self.numgen(table, tokens, i, state)
        if tokens[i:i + 2] == ["mark", "set"] or tokens[i:i + 3] == ["meta", "mark", "set"]:
            return self.set_mark(tokens, i, state)
        return self.match(table, text, tokens, i, state)

    def nat(self, word: str, tokens: list[str], i: int, state: _State) -> _State:
        state = replace(state, nat_hooks=state.nat_hooks | {state.hook})
        if word == "masquerade":
            return replace(state, masquerade=True)
        j = i + 1
        if tokens[j] in ("ip", "ip6"):
            j += 1
        if tokens[j] != "to":
            raise NotImplementedError(f"cannot trace {' '.join(tokens)}")
        host, port = split_host_port(tokens[j + 1], state.dport if word == "dnat" else state.sport)
        if word == "dnat":
            return replace(state, dst=host, dport=port, dnat=True)
        return replace(state, src=host, sport=port)

    def numgen(self, table: Table, tokens: list[str], i: int, state: _State,
               ) -> list[tuple[float, _State, int, Action | None]]:
        if tokens[i + 1:i + 3] != ["random", "mod"] or tokens[i + 4] != "vmap":
            raise NotImplementedError(f"cannot trace {' '.join(tokens)}")
        modulus = int(tokens[i + 3])
        verdicts = dict(item.split(" : ", 1) for item in _group_items(tokens[i + 5]))
        out: list[tuple[float, _State, int, Action | None]] = []
        for index in range(modulus):
            verdict = verdicts.get(str(index))
            action = _verdict_action(verdict) if verdict is not None else NOMATCH
            out.append((1.0 / modulus, state, i + 6, action))
        return out

    def set_mark(self, tokens: list[str], i: int, state: _State) -> list[tuple[float, _State, int, Action | None]]:
        j = i + (3 if tokens[i] == "meta" else 2)
        if tokens[j] in ("mark", "meta"):
            j += 2 if tokens[j] == "meta" else 1
            operator, operand = tokens[j], int(tokens[j + 1], 0)
            mark = {"or": state.mark | operand, "xor": state.mark ^ operand, "and": state.mark & operand}[operator]
            j += 2
        else:
            mark = int(tokens[j], 0)
            j += 1
        return [(1.0, replace(state, mark=mark & 0xFFFFFFFF), j, None)]

    def match(self, table: Table, text: str, tokens: list[str], i: int, state: _State,
              ) -> list[tuple[float, _State, int, Action | None]]:
        fields, implicit, j = self.selectors(text, tokens, i)
        for protocol in implicit:
            if not _component_matches("l4proto", state.protocol, protocol):
                return [(1.0, state, j, NOMATCH)]
        values = [self.field(f, state) for f in fields]
        if fields == ["mark"] and tokens[j] == "and":
            masked = state.mark & int(tokens[j + 1], 0)
            equal = masked == int(tokens[j + 3], 0)
            matched = equal if tokens[j + 2] == "==" else not equal
            return [(1.0, state, j + 4, None if matched else NOMATCH)]
        if tokens[j] == "vmap":
            verdict = self.lookup(table, tokens[j + 1], fields, values, want_value=True)
            action = _verdict_action(verdict) if isinstance(verdict, str) else NOMATCH
            return [(1.0, state, j + 2, action)]
        negate = tokens[j] == "!="
        if tokens[j] in ("!=", "=="):
            j += 1
        rhs = tokens[j]
        if rhs.startswith("@"):
            found = self.lookup(table, rhs, fields, values, want_value=False) is not None
        elif len(fields) == 1:
            found = _value_matches(fields[0], values[0], rhs)
        else:
            raise NotImplementedError(f"cannot trace {text}")
        return [(1.0, state, j + 1, None if found != negate else NOMATCH)]

    def selectors(self, text: str, tokens: list[str], i: int) -> tuple[list[str], list[str], int]:
        """The fields compared at tokens[i] (concatenated with "."), protocols they imply, and where they end."""
        fields: list[str] = []
        implicit: list[str] = []
        while True:
            pair = tuple(tokens[i:i + 2])
            if pair in _FIELD_WORDS:
                fields.append(_FIELD_WORDS[pair])  # type: ignore[index]
                i += 2
            elif tokens[i] in ("tcp", "udp", "sctp") and tokens[i + 1] in ("dport", "sport"):
                implicit.append(tokens[i])
                fields.append(tokens[i + 1])
                i += 2
            elif tokens[i] == "fib" and tokens[i + 2:i + 3] == ["type"]:
                fields.append(f"fib_{tokens[i + 1]}")
                i += 3
            elif tokens[i] in _SINGLE_WORDS:
                fields.append(_SINGLE_WORDS[tokens[i]])
                i += 1
            else:
                raise NotImplementedError(f"cannot trace {text!r} at {' '.join(tokens[i:i + 3])!r}")
            if i < len(tokens) and tokens[i] == ".":
                i += 1
                continue
            return fields, implicit, i

    def lookup(self, table: Table, reference: str, fields: list[str], values: list[object], *, want_value: bool,
               ) -> str | bool | None:
        """The value of the matching element of a named (`@name`) or anonymous (`{ ... }`) set or map."""
        if reference.startswith("{"):
            for item in _group_items(reference):
                key, _, value = item.partition(" : ")
                if self._key_matches(fields, values, key.split(" . ")):
                    return value.strip() if want_value else True
            return None
        target = table.lookup(reference[1:])
        if target is None:
            raise ValueError(f"no set or map {reference[1:]} in table {table.family} {table.name}")
        for element in target.elements.values():
            if self._key_matches(fields, values, list(element.key)):
                return element.value if want_value else True
        if not want_value and self._dynamic_member(target, fields, values):
            return True
        return None

    def _dynamic_member(self, target: ElementSet, fields: list[str], values: list[object]) -> bool:
        """Whether the packet's `recent` entries put its source in this (affinity) set."""
        if fields != ["saddr"]:
            return False
        timeout = next((int(m.group(1)) for c in target.spec if (m := _TIMEOUT.search(c))), None)
        return any(r.name == target.name and r.source == values[0]
                   and (timeout is None or r.age_seconds <= timeout) for r in self.packet.recent)

    @staticmethod
    def _key_matches(fields: list[str], values: list[object], key: list[str]) -> bool:
        if len(key) != len(fields):
            return False
        return all(_component_matches(f, v, k) for f, v, k in zip(fields, values, key, strict=True))


def _verdict_action(verdict: str) -> Action:
    words = verdict.split()
    if words[0] in ("jump", "goto") and len(words) == 2:
        return (words[0], words[1])
    if words[0] in ("accept", "drop", "return", "reject"):
        return (words[0],)
    raise NotImplementedError(f"cannot trace verdict {verdict!r}")


# --- hooks in kernel order -----------------------------------------------------------------------------------------

Branch = tuple[float, _State, str | None]  # probability, state, final verdict (None: still going)


def _run_hook(tracer: _Tracer, hook: str, branches: list[Branch]) -> list[Branch]:
    chains = tracer.base_chains(hook)
    for table, chain in chains:
        updated: list[Branch] = []
        for probability, state, final in branches:
            if final is not None or (chain.type == "nat" and hook in state.nat_hooks):
                updated.append((probability, state, final))
                continue
            entering = replace(state, hook=hook)
            policy = "drop" if any(c.split() == ["policy", "drop"] for c in chain.spec) else "accept"
            for p, verdict, out in tracer.walk(table, chain.name, entering):
                end = policy if verdict in ("continue", "return") else verdict
                updated.append((probability * p, out, None if end == "accept" else end))
        branches = updated
    return branches


def trace(ruleset: Ruleset, packet: Packet, local_addresses: Iterable[str] = ()) -> list[Outcome]:
    """Every way the packet can go through the ruleset's base chains, each with its probability.

    `local_addresses` are the node's own addresses (`fib ... type local`, and
    where the routing decision delivers a packet).
    """
    version = ipaddress.ip_address(packet.dst).version
    family = "ip6" if version == 6 else "ip"
    tracer = _Tracer(ruleset, packet, frozenset(str(ipaddress.ip_address(a)) for a in local_addresses),
                     (family, "inet"))
    start = _State(src=str(ipaddress.ip_address(packet.src)), dst=str(ipaddress.ip_address(packet.dst)),
                   sport=packet.sport, dport=packet.dport, protocol=packet.protocol.lower(),
                   iifname=packet.in_interface if packet.origin == "remote" else None,
                   oifname=packet.out_interface, mark=packet.mark, ctstate=frozenset({"new"}))
    branches: list[Branch] = [(1.0, start, None)]
    routed: list[tuple[float, _State, str | None, str]] = []
    if packet.origin == "remote":
        branches = _run_hook(tracer, "prerouting", branches)
        local = [b for b in branches if tracer.is_local(b[1].dst)]
        onward = [b for b in branches if not tracer.is_local(b[1].dst)]
        routed.extend((*b, "local") for b in _run_hook(tracer, "input", local))
        onward = _run_hook(tracer, "postrouting", _run_hook(tracer, "forward", onward))
        routed.extend((*b, "forward") for b in onward)
    else:
        branches = _run_hook(tracer, "postrouting", _run_hook(tracer, "output", branches))
        local = [b for b in branches if tracer.is_local(b[1].dst)]
        routed.extend((*b, "local") for b in _run_hook(tracer, "input", local))
        routed.extend((*b, "out") for b in branches if not tracer.is_local(b[1].dst))
    return [_outcome(p, state, final, where) for p, state, final, where in routed if p > 0]


def _outcome(probability: float, state: _State, final: str | None, where: str) -> Outcome:
    verdict = (final or "accept").upper()
    return Outcome(probability=probability, verdict=verdict, delivered=where if verdict == "ACCEPT" else None,
                   src=state.src, dst=state.dst, dport=state.dport, dnat=state.dnat,
                   masquerade=state.masquerade, mark=state.mark, recent_set=state.recent_set, path=state.path,
                   dropped_by=state.dropped_by)


def flow(outcomes: Iterable[Outcome]) -> tuple[str, bool]:
    """What upstream's runPacketFlowTests compares: the endpoints reached ("IP:port, IP:port", in trace
    order) or the verdict ("DROP", "REJECT", "ACCEPT" when nothing DNATed it), and whether it was masqueraded."""
    outcomes = list(outcomes)
    endpoints = [o.endpoint for o in outcomes if o.verdict == "ACCEPT" and o.endpoint is not None]
    if endpoints:
        text = ", ".join(dict.fromkeys(e for e in endpoints if e is not None))
    else:
        text = ", ".join(dict.fromkeys(o.verdict for o in outcomes))
    return text, any(o.masquerade for o in outcomes)
