"""YAML request bodies, decoded with bounds on depth, size and alias expansion.

PyYAML's safe_load composes a node graph in which an alias *is* the anchored node, and
its constructor shares one Python object between them: nothing looks expanded until the
value is written out as JSON. So a 354-byte body of nested anchors became a 39 MB Service.
kube-apiserver decodes YAML with go-yaml (sigs.k8s.io/yaml), which counts every node it
decodes and every node decoded through an alias, and fails with "document contains
excessive aliasing" once aliases do too much of the work (gopkg.in/yaml.v2 decode.go:
`unmarshal` and `allowedAliasRatio`, the CVE-2019-11253 fix); it also stops at 10000
levels (yaml.v2 limit_test.go: "exceeded max depth of 10000").

The loader here composes the graph itself, on libyaml's events when PyYAML has libyaml
(PyYAML's own parser otherwise), and keeps for each anchor what decoding it would cost
once expanded: nodes, scalar characters and depth. An alias adds its anchor's cost, so
go-yaml's rule is applied to the graph before anything is expanded. Its bounds:

- aliasing: go-yaml's ratio of alias-decoded nodes to all decoded nodes;
- scalar text: the expanded document may hold no more scalar characters than the largest
  body (the caller's max_chars: http.MAX_REQUEST_BODY_BYTES); only aliases can exceed it (a
  long string aliased a hundred times is under go-yaml's ratio, yet is a hundred copies
  once written as JSON);
- depth: MAX_NESTING_DEPTH (decoding.py), checked before each level is composed, as the
  composer recurses once per level, and after each alias;
- nodes: MAX_YAML_NODES composed nodes, svcnet's own (upstream has none): a PyYAML node
  with its marks costs about 300 bytes and 9 µs, so a 3 MiB body of one-character items
  would take 450 MB and 13 s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from yaml.nodes import Node
from yaml.resolver import Resolver

from svcnet.apiserver.jsonbody import MAX_NESTING_DEPTH

MAX_YAML_NODES = 100_000

# go-yaml's allowedAliasRatio: up to 400,000 decodes 99% may come from aliases, from
# 4,000,000 on 10%, scaled linearly between.
_ALIAS_RATIO_LOW = 400_000
_ALIAS_RATIO_HIGH = 4_000_000


def allowed_alias_ratio(decoded: int) -> float:
    if decoded <= _ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


class YamlLimit(yaml.YAMLError):
    """A document over one of the bounds; str() is go-yaml's wording."""


class ExcessiveAliasing(YamlLimit):
    def __init__(self) -> None:
        super().__init__("document contains excessive aliasing")


class TooDeep(YamlLimit):
    def __init__(self) -> None:
        super().__init__(f"exceeded max depth of {MAX_NESTING_DEPTH}")


class TooManyNodes(YamlLimit):
    def __init__(self) -> None:
        super().__init__(f"document has more than {MAX_YAML_NODES} nodes")


@dataclass(frozen=True)
class _Cost:
    """What decoding one node costs with every alias in it expanded."""

    nodes: int
    chars: int
    depth: int  # collections nested in it, itself included


class _BoundedComposer(Composer):
    """PyYAML's Composer, counting as go-yaml's decoder counts (see the module docstring)."""

    def __init__(self, max_chars: int) -> None:
        super().__init__()
        self._max_chars = max_chars

    def compose_document(self) -> Node:
        self._depth = 0  # collections open around the node being composed
        self._deepest = 0  # the deepest level reached inside the node being composed
        self._composed = 0
        self._decoded = 1  # go-yaml counts the document node
        self._aliased = 0
        self._chars = 0
        self._costs: dict[str, _Cost] = {}
        self._open: set[str] = set()  # anchors whose node is being composed
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._count_alias(event)
            return super().compose_node(parent, index)
        collection = isinstance(event, CollectionStartEvent)
        if collection and self._depth >= MAX_NESTING_DEPTH:
            raise TooDeep
        if self._composed >= MAX_YAML_NODES:
            raise TooManyNodes
        start_decoded, start_chars = self._decoded, self._chars
        self._composed += 1
        self._decoded += 1
        if isinstance(event, ScalarEvent):
            self._chars += len(event.value)
        outer, self._deepest = self._deepest, self._depth
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        if collection:
            self._depth += 1
            self._deepest = self._depth
        node = super().compose_node(parent, index)
        if collection:
            self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._costs[anchor] = _Cost(self._decoded - start_decoded, self._chars - start_chars,
                                        self._deepest - self._depth)
        self._deepest = max(outer, self._deepest)
        return node

    def _count_alias(self, event: AliasEvent) -> None:
        if event.anchor in self._open:
            raise ComposerError(None, None, f"anchor '{event.anchor}' value contains itself",
                                event.start_mark)
        cost = self._costs.get(event.anchor or "")
        if cost is None:
            return  # an undefined alias: PyYAML's composer says so
        self._decoded += 1 + cost.nodes
        self._aliased += cost.nodes
        self._chars += cost.chars
        if (self._aliased > 100 and self._decoded > 1000
                and self._aliased / self._decoded > allowed_alias_ratio(self._decoded)):
            raise ExcessiveAliasing
        if self._chars > self._max_chars:
            raise ExcessiveAliasing
        if self._depth + cost.depth > MAX_NESTING_DEPTH:
            raise TooDeep
        self._deepest = max(self._deepest, self._depth + cost.depth)


class _JsonConstructor(SafeConstructor):
    """SafeConstructor for values that become JSON, as go-yaml decodes into interface{} for
    sigs.k8s.io/yaml: a timestamp stays the text it was written as, !!binary is its decoded
    text, a !!set is a mapping to nulls (PyYAML would give datetime, bytes and set), and an
    integer too long to convert stays text (PyYAML would raise ValueError, a 500); .inf and .nan
    are refused, as JSON has no such numbers."""

    def construct_binary_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_yaml_binary(node).decode("utf-8", "replace")

    def construct_finite_float(self, node: yaml.ScalarNode) -> float:
        """A float JSON can carry: .inf and .nan fail as sigs.k8s.io/yaml's json.Marshal fails."""
        value = self.construct_yaml_float(node)
        if not math.isfinite(value):
            raise ConstructorError(None, None, f"json: unsupported value: {_GO_FLOAT.get(str(value), value)}",
                                   node.start_mark)
        return value

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int | str:
        """An integer, or its text when it has more digits than Python converts (4300): go-yaml
        too keeps a plain scalar that no int or float parse takes as a string."""
        try:
            return self.construct_yaml_int(node)
        except ValueError:
            return self.construct_yaml_str(node)


_JsonConstructor.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)
_JsonConstructor.add_constructor("tag:yaml.org,2002:binary", _JsonConstructor.construct_binary_text)
_JsonConstructor.add_constructor("tag:yaml.org,2002:set", SafeConstructor.construct_yaml_map)
_JsonConstructor.add_constructor("tag:yaml.org,2002:int", _JsonConstructor.construct_bounded_int)
_JsonConstructor.add_constructor("tag:yaml.org,2002:float", _JsonConstructor.construct_finite_float)
_GO_FLOAT = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}

if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _Events(CParser):  # libyaml scans and parses; composing stays in Python, bounded
        pass
else:  # pragma: no cover - PyYAML without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Events(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class BoundedLoader(_BoundedComposer, _Events, _JsonConstructor, Resolver):
    def __init__(self, stream: str, max_chars: int) -> None:
        _Events.__init__(self, stream)
        _BoundedComposer.__init__(self, max_chars)
        _JsonConstructor.__init__(self)
        Resolver.__init__(self)


def load(text: str, max_chars: int) -> Any:
    """The one YAML document in text, within the bounds above (yaml.YAMLError otherwise)."""
    loader = BoundedLoader(text, max_chars)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        # libyaml's scanner looks ahead, and has a depth bound of its own (1000 levels,
        # yaml_set_max_nest_level): past it the document is too deep, whoever noticed first.
        if exc.problem == "exceeded maximum nesting depth":
            raise TooDeep from None
        raise
    finally:
        loader.dispose()


def one_line(exc: yaml.YAMLError) -> str:
    """A YAML error as go-yaml words one ("yaml: line 3: could not find expected ':'"), on one line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return f"yaml: {where}{' '.join(problem.split())}"
    return "yaml: " + " ".join(str(exc).split())
