"""Rule matching (rbac/v1 evaluation helpers) and covering (the escalation check's
policy comparator), table-driven after upstream's cases."""
from __future__ import annotations

import pytest

from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.identity import User
from svcnet.core.rbac.rules import Rule, compact_rules, rule_allows, uncovered

U = User("u")


def _res(verb: str, resource: str, group: str = "", sub: str = "", name: str = "") -> Attributes:
    return Attributes(U, verb, True, namespace="ns", api_group=group, resource=resource, subresource=sub, name=name)


def _url(verb: str, path: str) -> Attributes:
    return Attributes(U, verb, False, path=path)


ALLOWS = [
    # (rule, attributes, allowed)
    (Rule(("get",), ("",), ("pods",)), _res("get", "pods"), True),
    (Rule(("get",), ("",), ("pods",)), _res("list", "pods"), False),
    (Rule(("*",), ("",), ("pods",)), _res("deletecollection", "pods"), True),
    (Rule(("get",), ("*",), ("deployments",)), _res("get", "deployments", "apps"), True),
    (Rule(("get",), ("",), ("deployments",)), _res("get", "deployments", "apps"), False),
    (Rule(("get",), ("apps",), ("*",)), _res("get", "deployments", "apps", sub="scale"), True),
    (Rule(("get",), ("",), ("pods",)), _res("get", "pods", sub="log"), False),
    (Rule(("get",), ("",), ("pods/log",)), _res("get", "pods", sub="log"), True),
    (Rule(("get",), ("",), ("pods/log",)), _res("get", "pods"), False),
    (Rule(("get",), ("",), ("*/log",)), _res("get", "pods", sub="log"), True),
    (Rule(("get",), ("",), ("*/log",)), _res("get", "pods"), False),
    (Rule(("get",), ("",), ("pods",), ("web",)), _res("get", "pods", name="web"), True),
    (Rule(("get",), ("",), ("pods",), ("web",)), _res("get", "pods", name="db"), False),
    (Rule(("list",), ("",), ("pods",), ("web",)), _res("list", "pods"), False),
    (Rule(("get",), non_resource_urls=("/healthz",)), _url("get", "/healthz"), True),
    (Rule(("get",), non_resource_urls=("/healthz",)), _url("get", "/healthz/etcd"), False),
    (Rule(("get",), non_resource_urls=("/apis/*",)), _url("get", "/apis/apps/v1"), True),
    (Rule(("get",), non_resource_urls=("/apis/*",)), _url("get", "/apis"), False),
    (Rule(("*",), non_resource_urls=("*",)), _url("post", "/anything"), True),
    (Rule(("get",), non_resource_urls=("/version",)), _url("post", "/version"), False),
    (Rule(("*",), ("*",), ("*",)), _url("get", "/version"), False),  # resource rules never match a URL
    (Rule(("*",), non_resource_urls=("*",)), _res("get", "pods"), False),
]


@pytest.mark.parametrize(("rule", "attrs", "allowed"), ALLOWS)
def test_rule_allows(rule: Rule, attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(attrs, rule) is allowed


def _rule(verbs, groups=(), resources=(), names=(), urls=()) -> Rule:
    return Rule(tuple(verbs), tuple(groups), tuple(resources), tuple(names), tuple(urls))


COVERS = [
    # (owner rules, servant rules, covered) after policy_comparator_test.go's cases
    ([_rule(["*"], ["*"], ["*"])], [_rule(["get", "delete"], ["", "apps"], ["pods", "deployments/scale"])], True),
    ([_rule(["get"], [""], ["pods"])], [_rule(["get", "list"], [""], ["pods"])], False),
    ([_rule(["get", "list"], [""], ["pods"])], [_rule(["get"], [""], ["pods"]), _rule(["list"], [""], ["pods"])],
     True),
    ([_rule(["get"], [""], ["pods"])], [_rule(["get"], [""], ["pods"], ["web"])], True),
    ([_rule(["get"], [""], ["pods"], ["web"])], [_rule(["get"], [""], ["pods"])], False),
    ([_rule(["get"], [""], ["pods"], ["web", "db"])], [_rule(["get"], [""], ["pods"], ["db"])], True),
    ([_rule(["get"], [""], ["*/status"])], [_rule(["get"], [""], ["pods/status"])], True),
    ([_rule(["get"], [""], ["*/status"])], [_rule(["get"], [""], ["pods"])], False),
    ([_rule(["get"], urls=["/apis/*"])], [_rule(["get"], urls=["/apis/apps"])], True),
    ([_rule(["get"], urls=["/apis"])], [_rule(["get"], urls=["/apis/apps"])], False),
    ([_rule(["get"], urls=["*"])], [_rule(["get"], urls=["/anything"])], True),
    ([_rule(["get"], [""], ["pods"])], [_rule(["get"], urls=["/healthz"])], False),
]


@pytest.mark.parametrize(("owned", "wanted", "covered"), COVERS)
def test_covers(owned: list[Rule], wanted: list[Rule], covered: bool) -> None:
    assert (uncovered(owned, wanted) == []) is covered


def test_uncovered_pieces_are_compacted_and_printed_as_upstream() -> None:
    missing = uncovered([_rule(["get"], [""], ["pods"])], [_rule(["get", "list", "watch"], [""], ["pods"])])
    assert [r.compact() for r in compact_rules(missing)] == ['{APIGroups:[""], Resources:["pods"], Verbs:["list" "watch"]}']


def test_rule_round_trips_through_its_object_form() -> None:
    obj = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}
    assert Rule.from_object(obj).to_object() == obj
