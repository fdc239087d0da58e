"""A model of nftables tables: parse and apply transactions in knftables' text form, dump them back.

The nftables counterpart of svcnet.proxy.iptables.ruleset. It reads what the
renderer writes and what `nft -f` reads: one command a line,

    add table ip kube-proxy { comment "rules for kube-proxy" ; }
    add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
    add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
    add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
    add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
    flush chain ip kube-proxy CHAIN / delete chain ... / delete element ... / delete table ...

and applies a whole transaction or nothing, as the kernel does. It checks what
the kernel checks and answers as nft would (`TransactionError.errno`, each
case checked against the kernel in tests/integration/test_kernel_nft.py):

- a missing table, chain, set, map, counter or element is ENOENT, and so is a
  rule that jumps to a missing chain or looks up a missing set;
- `create` of something present, `add` of a map element whose key is there
  with another verdict, or of a set or map with another type, is EEXIST;
  `add` of anything identical is a no-op (a comment added again is ignored);
- `add` of a base chain with another type, hook or priority is EOPNOTSUPP;
- deleting a chain that a rule or a map element still jumps to, or a set or
  counter a rule still uses, is EBUSY. References are counted statement by
  statement, as in one kernel batch, so `flush chain A` then `delete chain B`
  works when only A's rules pointed at B;
- `flush table` empties every chain and keeps sets, maps and their elements.

Rules are kept as text (the tracer, svcnet.proxy.nftables.tracer, reads
them); `dump` writes a table back in the form and order knftables' fake
`Dump` uses (upstream's expected test output). Pure: no I/O. svcnet.testing.nft.FakeNft keeps one Ruleset as its "kernel".
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

VERBS = ("add", "create", "insert", "replace", "flush", "delete", "destroy", "reset")
OBJECT_TYPES = ("table", "chain", "rule", "set", "map", "element", "counter")
FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")

ENOENT = "ENOENT"
EEXIST = "EEXIST"
EBUSY = "EBUSY"
EINVAL = "EINVAL"
EOPNOTSUPP = "EOPNOTSUPP"
_STRERROR = {ENOENT: "No such file or directory", EEXIST: "File exists", EBUSY: "Device or resource busy",
             EINVAL: "Invalid argument", EOPNOTSUPP: "Operation not supported"}

# Named base-chain priorities (nft(8), "CHAIN PRIORITIES") in the ip/ip6/inet families.
NAMED_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}


class TransactionError(ValueError):
    """The kernel (or nft's parser) would reject this transaction; nothing of it was applied."""

    def __init__(self, line_number: int, line: str, errno: str, detail: str = "") -> None:
        reason = _STRERROR.get(errno, errno)
        message = f"Could not process rule: {reason}" + (f" ({detail})" if detail else "")
        super().__init__(f"line {line_number}: {message}: {line}")
        self.line_number = line_number
        self.line = line
        self.errno = errno
        self.reason = message


# --- parsing one command ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One line of a transaction: `verb object family table [name] [rest]`."""

    verb: str
    kind: str  # table, chain, rule, set, map, element
    family: str
    table: str
    name: str | None  # chain, set or map name (rules and elements: the chain, set or map)
    body: str  # rule: its text; element: inside the braces; table/chain/set/map: inside the braces
    line_number: int
    line: str
    handle: int | None = None  # rules: `... CHAIN handle N [rule]`
    index: int | None = None  # rules: `... CHAIN index N rule`


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _braced(rest: str, command: str, number: int) -> str:
    """The inside of `{ ... }` (or "" when there is none)."""
    rest = rest.strip()
    if not rest:
        return ""
    if not (rest.startswith("{") and rest.endswith("}")):
        raise TransactionError(number, command, EINVAL, f"expected {{ ... }}, got {rest!r}")
    return rest[1:-1].strip()


def parse_command(line: str, number: int = 1) -> Command:
    """One command of a transaction; TransactionError (EINVAL) when nft could not parse it."""
    words = line.split(None, 4)
    if len(words) < 4 or words[0] not in VERBS or words[1] not in OBJECT_TYPES or words[2] not in FAMILIES:
        raise TransactionError(number, line, EINVAL, "syntax error")
    verb, kind, family, table = words[:4]
    rest = words[4] if len(words) > 4 else ""
    if kind == "table":
        return Command(verb, kind, family, table, None, _braced(rest, line, number), number, line)
    name, _, tail = rest.partition(" ")
    if not name or name.startswith("{"):
        raise TransactionError(number, line, EINVAL, f"{kind} needs a name")
    if kind == "rule":
        return _rule_command(verb, family, table, name, tail.strip(), number, line)
    return Command(verb, kind, family, table, name, _braced(tail, line, number), number, line)


_RULE_POSITION = re.compile(r"(index|handle)\s+(\d+)\s*(.*)")


def _rule_command(verb: str, family: str, table: str, chain: str, tail: str, number: int, line: str) -> Command:
    """`CHAIN [index N | handle N] RULE`: where the rule goes (or which one is replaced or deleted)."""
    position = _RULE_POSITION.fullmatch(tail)
    index = handle = None
    if position is not None:
        where, value, tail = position.groups()
        index, handle = (int(value), None) if where == "index" else (None, int(value))
    if verb in ("delete", "destroy", "replace") and handle is None:
        raise TransactionError(number, line, EINVAL, f"{verb} rule needs `handle N`")
    if verb not in ("delete", "destroy") and not tail:
        raise TransactionError(number, line, EINVAL, "empty rule")
    return Command(verb, "rule", family, table, chain, tail, number, line, handle, index)


def parse_transaction(text: str) -> list[Command]:
    """Every command of a transaction, skipping blank lines and `#` comments."""
    commands = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            commands.append(parse_command(line, number))
    return commands


def clauses(body: str) -> tuple[str, ...]:
    """`type nat hook output priority -100 ; comment "x" ;` -> ("type nat hook ...", 'comment "x"')."""
    return tuple(part.strip() for part in _split_outside_quotes(body, ";") if part.strip())


# --- the objects --------------------------------------------------------------------------------------------

_CHAIN_REFERENCE = re.compile(r"\b(?:jump|goto)\s+([^\s,{}]+)")
_SET_REFERENCE = re.compile(r"@([^\s,{}]+)")
_COUNTER_REFERENCE = re.compile(r'\bcounter\s+name\s+"?([^\s"]+)"?')


@dataclass(frozen=True)
class Rule:
    text: str
    handle: int
    chains: frozenset[str]  # chains it jumps or goes to
    sets: frozenset[str]  # named sets and maps it looks up or updates
    counters: frozenset[str] = frozenset()  # named counters it counts in


def make_rule(text: str, handle: int) -> Rule:
    return Rule(text, handle, frozenset(_CHAIN_REFERENCE.findall(text)), frozenset(_SET_REFERENCE.findall(text)),
                frozenset(_COUNTER_REFERENCE.findall(text)))


@dataclass
class Chain:
    name: str
    spec: tuple[str, ...] = ()  # clauses as written: ("type nat hook prerouting priority -100",)
    rules: list[Rule] = field(default_factory=list)

    @property
    def base(self) -> bool:
        return self.hook is not None

    def _field(self, word: str) -> str | None:
        for clause in self.spec:
            tokens = clause.split()
            if word in tokens and tokens.index(word) + 1 < len(tokens):
                return tokens[tokens.index(word) + 1]
        return None

    @property
    def type(self) -> str | None:
        return self._field("type")

    @property
    def hook(self) -> str | None:
        return self._field("hook")

    @property
    def priority(self) -> int | None:
        for clause in self.spec:
            match = re.search(r"\bpriority\s+(.+)$", clause)
            if match:
                return parse_priority(match.group(1))
        return None

    def copy(self) -> Chain:
        return Chain(self.name, self.spec, list(self.rules))


def parse_priority(text: str) -> int:
    """`-100`, `dstnat`, `dstnat - 10`, `filter + 5` -> a number."""
    match = re.fullmatch(r"\s*([a-z]+|-?\d+)\s*(?:([+-])\s*(\d+))?\s*", text)
    if match is None:
        raise ValueError(f"bad chain priority {text!r}")
    base, sign, offset = match.groups()
    if base.lstrip("-").isdigit():
        value = int(base)
    elif base in NAMED_PRIORITIES:
        value = NAMED_PRIORITIES[base]
    else:
        raise ValueError(f"unknown chain priority {base!r}")
    if offset:
        value += int(offset) if sign == "+" else -int(offset)
    return value


@dataclass(frozen=True)
class Element:
    key: tuple[str, ...]  # concatenated key, split on " . "
    value: str | None = None  # a map's value ("goto CHAIN", "drop"); None in a set
    comment: str | None = None

    @property
    def chain(self) -> str | None:
        """The chain a verdict value jumps or goes to."""
        match = _CHAIN_REFERENCE.fullmatch(self.value or "")
        return match.group(1) if match else None

    def text(self) -> str:
        out = " . ".join(self.key)
        if self.comment is not None:
            out += f' comment "{self.comment}"'
        if self.value is not None:
            out += f" : {self.value}"
        return out


_ELEMENT = re.compile(r'(?P<key>.+?)(?:\s+timeout\s+\S+)?(?:\s+expires\s+\S+)?'
                      r'(?:\s+comment\s+"(?P<comment>[^"]*)")?(?:\s+:\s+(?P<value>.+))?')


def parse_elements(body: str) -> list[Element]:
    """`1.2.3.4 . tcp . 80 comment "ns/svc:p" : goto X, ...` -> elements (one per comma-separated item)."""
    elements = []
    for item in _split_outside_quotes(body, ","):
        item = item.strip()
        if not item:
            continue
        match = _ELEMENT.fullmatch(item)
        if match is None:
            raise ValueError(f"bad element {item!r}")
        key = tuple(part.strip() for part in match.group("key").split(" . "))
        value = match.group("value")
        elements.append(Element(key, value.strip() if value else None, match.group("comment")))
    return elements


@dataclass
class ElementSet:
    """A named set, or a map (kind "map"): its type clauses and elements by key, in insertion order."""

    kind: str
    name: str
    spec: tuple[str, ...] = ()
    elements: dict[tuple[str, ...], Element] = field(default_factory=dict)

    @property
    def type(self) -> str:
        for clause in self.spec:
            if clause.startswith("type "):
                return clause[5:].strip()
        return ""

    def copy(self) -> ElementSet:
        return ElementSet(self.kind, self.name, self.spec, dict(self.elements))


@dataclass
class NamedCounter:
    """A named counter object (`add counter ...`); tests may set what it counted."""

    name: str
    spec: tuple[str, ...] = ()
    packets: int = 0
    bytes: int = 0

    def copy(self) -> NamedCounter:
        return NamedCounter(self.name, self.spec, self.packets, self.bytes)


@dataclass
class Table:
    family: str
    name: str
    spec: tuple[str, ...] = ()
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, ElementSet] = field(default_factory=dict)
    maps: dict[str, ElementSet] = field(default_factory=dict)
    chain_refs: Counter[str] = field(default_factory=Counter)  # rules and map elements pointing at a chain
    set_refs: Counter[str] = field(default_factory=Counter)  # rules using a named set or map
    counters: dict[str, NamedCounter] = field(default_factory=dict)
    counter_refs: Counter[str] = field(default_factory=Counter)  # rules counting in a named counter

    def copy(self) -> Table:
        return Table(self.family, self.name, self.spec,
                     {n: c.copy() for n, c in self.chains.items()},
                     {n: s.copy() for n, s in self.sets.items()},
                     {n: m.copy() for n, m in self.maps.items()},
                     Counter(self.chain_refs), Counter(self.set_refs),
                     {n: c.copy() for n, c in self.counters.items()}, Counter(self.counter_refs))

    def lookup(self, name: str) -> ElementSet | None:
        """A named set or map (rules write both as @name)."""
        return self.sets.get(name) or self.maps.get(name)

    def base_chains(self) -> list[Chain]:
        return [c for c in self.chains.values() if c.base]

    def dump(self) -> str:
        """`add ...` lines in knftables' fake Dump order: table, chains, sets, maps, (counters,) then rules,
        then elements."""
        prefix = f"{self.family} {self.name}"
        lines = [f"add table {prefix}{_spec_text(self.spec)}"]
        chains = sorted(self.chains)
        sets = sorted(self.sets)
        maps = sorted(self.maps)
        lines.extend(f"add chain {prefix} {n}{_spec_text(self.chains[n].spec)}" for n in chains)
        lines.extend(f"add set {prefix} {n}{_spec_text(self.sets[n].spec)}" for n in sets)
        lines.extend(f"add map {prefix} {n}{_spec_text(self.maps[n].spec)}" for n in maps)
        lines.extend(f"add counter {prefix} {n}{_spec_text(self.counters[n].spec)}" for n in sorted(self.counters))
        for n in chains:
            lines.extend(f"add rule {prefix} {n} {rule.text}" for rule in self.chains[n].rules)
        for group in ([self.sets[n] for n in sets], [self.maps[n] for n in maps]):
            for element_set in group:
                lines.extend(f"add element {prefix} {element_set.name} {{ {e.text()} }}"
                             for e in element_set.elements.values())
        return "\n".join(lines) + "\n"


def _spec_text(spec: tuple[str, ...]) -> str:
    return " { " + " ; ".join(spec) + " ; }" if spec else ""


# --- the ruleset and transactions ----------------------------------------------------------------------------

class Ruleset:
    """Every table of one network namespace (as far as this model knows)."""

    def __init__(self, tables: dict[tuple[str, str], Table] | None = None, next_handle: int = 1) -> None:
        self.tables: dict[tuple[str, str], Table] = tables or {}
        self.next_handle = next_handle

    def table(self, family: str, name: str) -> Table | None:
        return self.tables.get((family, name))

    def dump(self, family: str | None = None, name: str | None = None) -> str:
        """One table's dump, or every table's (sorted by family and name) when none is named."""
        if family is not None and name is not None:
            table = self.table(family, name)
            return table.dump() if table else ""
        return "".join(self.tables[key].dump() for key in sorted(self.tables))

    def apply(self, text: str) -> Ruleset:
        """A new Ruleset with the transaction applied; TransactionError (and self unchanged) if any line fails."""
        return self.apply_commands(parse_transaction(text))

    def apply_commands(self, commands: Iterable[Command]) -> Ruleset:
        work = _Transaction(self)
        for command in commands:
            work.run(command)
        return Ruleset(work.tables, work.next_handle)


class _Transaction:
    """Applies commands to copies of the tables they touch (copy on first write), as one batch."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.tables = dict(ruleset.tables)
        self.next_handle = ruleset.next_handle
        self._copied: set[tuple[str, str]] = set()

    def run(self, command: Command) -> None:
        try:
            handler = getattr(self, f"_{command.kind}")
            handler(command)
        except _Fail as fail:
            raise TransactionError(command.line_number, command.line, fail.errno, fail.detail) from None
        except ValueError as exc:
            if isinstance(exc, TransactionError):
                raise
            raise TransactionError(command.line_number, command.line, EINVAL, str(exc)) from None

    def _handle(self) -> int:
        self.next_handle += 1
        return self.next_handle - 1

    def _writable(self, command: Command) -> Table:
        key = (command.family, command.table)
        table = self.tables.get(key)
        if table is None:
            raise _Fail(ENOENT, f"no table {command.family} {command.table}")
        if key not in self._copied:
            table = table.copy()
            self.tables[key] = table
            self._copied.add(key)
        return table

    # table ------------------------------------------------------------------------------------------------

    def _table(self, command: Command) -> None:
        key = (command.family, command.table)
        exists = key in self.tables
        if command.verb in ("add", "create"):
            if exists and command.verb == "create":
                raise _Fail(EEXIST, f"table {command.table} exists")
            if not exists:
                self.tables[key] = Table(command.family, command.table, clauses(command.body))
                self._copied.add(key)
        elif command.verb == "destroy" and not exists:
            return
        elif command.verb in ("delete", "destroy"):
            if not exists:
                raise _Fail(ENOENT, f"no table {command.family} {command.table}")
            del self.tables[key]
            self._copied.discard(key)
        elif command.verb == "flush":
            # Every chain's rules go; sets, maps (with their elements), chains and counters stay.
            table = self._writable(command)
            for chain in table.chains.values():
                self._drop_rules(table, chain.rules)
                chain.rules = []
        else:
            raise _Fail(EINVAL, f"{command.verb} table")

    # chains -----------------------------------------------------------------------------------------------

    def _chain(self, command: Command) -> None:
        table = self._writable(command)
        name = command.name or ""
        chain = table.chains.get(name)
        if command.verb in ("add", "create"):
            if chain is not None and command.verb == "create":
                raise _Fail(EEXIST, f"chain {name} exists")
            spec = clauses(command.body)
            new = Chain(name, spec)
            hooked = (new.type, new.hook, new.priority)  # a bad priority is a parse error now, not when tracing
            if chain is None:
                table.chains[name] = new
            elif new.base and hooked != (chain.type, chain.hook, chain.priority):
                # The kernel cannot change a base chain in place (a comment added again is ignored).
                raise _Fail(EOPNOTSUPP, f"chain {name} exists with another type, hook or priority")
            return
        if chain is None:
            if command.verb == "destroy":
                return
            raise _Fail(ENOENT, f"no chain {name}")
        if command.verb == "flush":
            self._drop_rules(table, chain.rules)
            chain.rules = []
        elif command.verb in ("delete", "destroy"):
            if table.chain_refs[name] > 0:
                raise _Fail(EBUSY, f"chain {name} is still jumped to")
            self._drop_rules(table, chain.rules)
            del table.chains[name]
        else:
            raise _Fail(EINVAL, f"{command.verb} chain")

    # rules ------------------------------------------------------------------------------------------------

    def _rule(self, command: Command) -> None:
        table = self._writable(command)
        chain = table.chains.get(command.name or "")
        if chain is None:
            raise _Fail(ENOENT, f"no chain {command.name}")
        at = self._rule_position(chain, command)
        if command.verb in ("delete", "destroy"):
            self._drop_rules(table, [chain.rules.pop(at)])  # type: ignore[arg-type]
            return
        if command.verb not in ("add", "insert", "create", "replace"):
            raise _Fail(EINVAL, f"{command.verb} rule")
        rule = make_rule(command.body, self._handle())
        self._check_references(table, rule)
        if command.verb == "replace":
            self._drop_rules(table, [chain.rules[at]])  # type: ignore[index]
            chain.rules[at] = rule  # type: ignore[index]
        elif command.verb == "insert":
            chain.rules.insert(at if at is not None else 0, rule)
        else:
            chain.rules.insert(at + 1 if at is not None else len(chain.rules), rule)
        table.chain_refs.update(rule.chains)
        table.set_refs.update(rule.sets)
        table.counter_refs.update(rule.counters)

    @staticmethod
    def _rule_position(chain: Chain, command: Command) -> int | None:
        """The index of the rule `handle N` or `index N` names (None when the command names none)."""
        if command.handle is not None:
            found = next((i for i, r in enumerate(chain.rules) if r.handle == command.handle), None)
            if found is None:
                raise _Fail(ENOENT, f"no rule with handle {command.handle}")
            return found
        if command.index is not None:
            if command.index >= len(chain.rules):
                raise _Fail(ENOENT, f"no rule with index {command.index}")
            return command.index
        return None

    @staticmethod
    def _check_references(table: Table, rule: Rule) -> None:
        for target in rule.chains:
            if target not in table.chains:
                raise _Fail(ENOENT, f"no chain {target}")
        for name in rule.sets:
            if table.lookup(name) is None:
                raise _Fail(ENOENT, f"no set or map {name}")
        for name in rule.counters:
            if name not in table.counters:
                raise _Fail(ENOENT, f"no counter {name}")

    @staticmethod
    def _drop_rules(table: Table, rules: Iterable[Rule]) -> None:
        for rule in rules:
            table.chain_refs.subtract(rule.chains)
            table.set_refs.subtract(rule.sets)
            table.counter_refs.subtract(rule.counters)

    # sets and maps ---------------------------------------------------------------------------------------

    def _set(self, command: Command) -> None:
        self._element_set(command, "set")

    def _map(self, command: Command) -> None:
        self._element_set(command, "map")

    def _element_set(self, command: Command, kind: str) -> None:
        table = self._writable(command)
        name = command.name or ""
        store = table.sets if kind == "set" else table.maps
        existing = store.get(name)
        if command.verb in ("add", "create"):
            if existing is not None and command.verb == "create":
                raise _Fail(EEXIST, f"{kind} {name} exists")
            spec = clauses(command.body)
            if not any(c.startswith("type ") or c.startswith("typeof ") for c in spec):
                raise _Fail(EINVAL, f"{kind} {name} needs a type")
            if existing is None:
                if table.lookup(name) is not None:
                    raise _Fail(EEXIST, f"a set or map named {name} exists")
                store[name] = ElementSet(kind, name, spec)
            elif ElementSet(kind, name, spec).type != existing.type:
                raise _Fail(EEXIST, f"{kind} {name} exists with another type")
            return
        if existing is None:
            if command.verb == "destroy":
                return
            raise _Fail(ENOENT, f"no {kind} {name}")
        if command.verb == "flush":
            self._drop_elements(table, existing.elements.values())
            existing.elements = {}
        elif command.verb in ("delete", "destroy"):
            if table.set_refs[name] > 0:
                raise _Fail(EBUSY, f"{kind} {name} is still used by a rule")
            self._drop_elements(table, existing.elements.values())
            del store[name]
        else:
            raise _Fail(EINVAL, f"{command.verb} {kind}")

    # elements ---------------------------------------------------------------------------------------------

    def _element(self, command: Command) -> None:
        table = self._writable(command)
        target = table.lookup(command.name or "")
        if target is None:
            raise _Fail(ENOENT, f"no set or map {command.name}")
        for element in parse_elements(command.body):
            if command.verb in ("add", "create"):
                self._add_element(table, target, element, command.verb == "create")
            elif command.verb in ("delete", "destroy"):
                old = target.elements.pop(element.key, None)
                if old is None and command.verb == "delete":
                    raise _Fail(ENOENT, f"no element {' . '.join(element.key)}")
                if old is not None:
                    self._drop_elements(table, [old])
            else:
                raise _Fail(EINVAL, f"{command.verb} element")

    def _add_element(self, table: Table, target: ElementSet, element: Element, create: bool) -> None:
        if target.kind == "map" and element.value is None:
            raise _Fail(EINVAL, f"map {target.name} element {' . '.join(element.key)} has no value")
        if target.kind == "set" and element.value is not None:
            raise _Fail(EINVAL, f"set {target.name} element has a value")
        old = target.elements.get(element.key)
        if old is not None:
            # The kernel keeps an identical element and refuses one with another value.
            if create or old.value != element.value:
                raise _Fail(EEXIST, f"element {' . '.join(element.key)} exists")
            return
        chain = element.chain
        if chain is not None:
            if chain not in table.chains:
                raise _Fail(ENOENT, f"no chain {chain}")
            table.chain_refs[chain] += 1
        target.elements[element.key] = element

    @staticmethod
    def _drop_elements(table: Table, elements: Iterable[Element]) -> None:
        for element in elements:
            if element.chain is not None:
                table.chain_refs[element.chain] -= 1

    # counters ---------------------------------------------------------------------------------------------

    def _counter(self, command: Command) -> None:
        table = self._writable(command)
        name = command.name or ""
        existing = table.counters.get(name)
        if command.verb in ("add", "create"):
            if existing is not None and command.verb == "create":
                raise _Fail(EEXIST, f"counter {name} exists")
            if existing is None:
                table.counters[name] = NamedCounter(name, clauses(command.body))
            return
        if existing is None:
            if command.verb == "destroy":
                return
            raise _Fail(ENOENT, f"no counter {name}")
        if command.verb == "reset":
            existing.packets = existing.bytes = 0
        elif command.verb in ("delete", "destroy"):
            if table.counter_refs[name] > 0:
                raise _Fail(EBUSY, f"counter {name} is still used by a rule")
            del table.counters[name]
        else:
            raise _Fail(EINVAL, f"{command.verb} counter")


class _Fail(Exception):
    def __init__(self, errno: str, detail: str) -> None:
        super().__init__(detail)
        self.errno = errno
        self.detail = detail


# --- comparing rulesets as upstream's tests do ----------------------------------------------------------------

_OBJECT_ORDER = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}


def sorted_for_comparison(text: str) -> list[str]:
    """Lines in the order upstream's sortNFTablesTransaction puts them: by object type, then by name;
    rules of one chain keep their order, other lines of one object sort by their text."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]

    def key(indexed: tuple[int, str]) -> tuple[int, str, int, str]:
        index, line = indexed
        words = line.split(" ")
        kind = words[1] if len(words) > 1 else ""
        name = words[4] if len(words) > 4 else ""
        within = (index, "") if kind == "rule" else (0, line)
        return (-_OBJECT_ORDER.get(kind, 0), name, *within)

    return [line for _, line in sorted(enumerate(lines), key=key)]
