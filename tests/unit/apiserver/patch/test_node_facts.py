"""NodeFacts, the walks' once-per-node view of a schema, answers as the lookups it replaces."""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.apiserver import openapi
from svcnet.apiserver.patch import SchemaResolver
from svcnet.apiserver.patch.strategy_schema import Node, is_value_struct, list_map_keys, shape_of
from tests.unit.apiserver.patch import RESOLVER, SCHEMAS

# One value of every JSON kind, and null: the shape rule depends on the value's kind.
SAMPLE_VALUES: list[Any] = [None, "text", 1, 1.5, True, [], [1], {}, {"a": 1}]
# Names a node may or may not declare: its own properties are added per node.
PROBE_NAMES = ["name", "metadata", "spec", "not-a-field"]


def _reachable(resolver: SchemaResolver, roots: list[str]) -> list[Node]:
    """Every resolved node reachable from the roots through properties, map values and items."""
    seen: dict[int, Node] = {}
    pending = [node for node in (resolver.root(name) for name in roots) if node is not None]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        children = [resolver.property(node, name) for name in (node.get("properties") or {})]
        children += [resolver.property(node, "any-key"), resolver.items(node)]
        pending.extend(child for child in children if child is not None)
    return list(seen.values())


@pytest.mark.parametrize(("resolver", "roots"), [
    pytest.param(SchemaResolver(openapi.components()), sorted(openapi.components()), id="served"),
    pytest.param(RESOLVER, sorted(SCHEMAS), id="hand-made"),
])
def test_node_facts_answer_as_shape_of_and_the_resolver_lookups(resolver: SchemaResolver,
                                                                roots: list[str]) -> None:
    nodes = _reachable(resolver, roots)
    assert len(nodes) > 10
    for node in nodes:
        facts = resolver.facts(node)
        for value in SAMPLE_VALUES:
            assert facts.shape(value) is shape_of(node, value), (node, value)
        for name in [*PROBE_NAMES, *(node.get("properties") or {})]:
            assert facts.child(name) is resolver.property(node, name), (node, name)
            assert (name in facts.children) is resolver.declares(node, name), (node, name)
        assert facts.items is resolver.items(node)
        assert list(facts.list_keys) == list_map_keys(node)
        assert [name for name, _ in facts.zero_struct_fields] == [
            name for name in (node.get("properties") or {}) if is_value_struct(resolver.property(node, name))]


def test_node_facts_are_kept_only_for_nodes_the_resolver_resolved() -> None:
    resolver = SchemaResolver({"components": {"schemas": SCHEMAS}})
    pod = resolver.root("io.k8s.api.core.v1.Pod")
    assert resolver.facts(pod) is resolver.facts(pod)
    foreign = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert resolver.facts(foreign) is not resolver.facts(foreign)
    assert resolver.facts(foreign).shape({}) is shape_of(foreign, {})


def test_facts_of_no_schema_deduce_the_shape_from_the_value() -> None:
    facts = RESOLVER.facts(None)
    assert [facts.shape(v) for v in SAMPLE_VALUES] == [shape_of(None, v) for v in SAMPLE_VALUES]
    assert facts.child("anything") is None
    assert facts.items is None
