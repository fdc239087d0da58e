"""Label and field selectors: grammar, matching and upstream's error wording."""
from __future__ import annotations

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.selectors import (
    format_label_selector,
    label_selector_from_object,
    parse_field_selector,
    parse_label_selector,
    selector_from_set,
    selector_to_string,
)

KEY_REGEX_HELP = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                  "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                  "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app==web", {"app": "web"}, True),
    ("app!=web", {"app": "db"}, True),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("env in (prod,staging)", {"env": "staging"}, True),
    ("env in (prod,staging)", {"env": "dev"}, False),
    ("env in (prod,staging)", {}, False),
    ("env notin (prod)", {"env": "dev"}, True),
    ("env notin (prod)", {}, True),
    ("env notin (prod)", {"env": "prod"}, False),
    ("app", {"app": ""}, True),
    ("app", {"other": "x"}, False),
    ("!app", {"other": "x"}, True),
    ("!app", {"app": "x"}, False),
    ("app=web,tier in (fe),!canary", {"app": "web", "tier": "fe"}, True),
    ("app=web,tier in (fe),!canary", {"app": "web", "tier": "fe", "canary": "1"}, False),
    ("app=", {"app": ""}, True),
    ("x in (a,,b)", {"x": ""}, True),
    ("  app = web , tier  ", {"app": "web", "tier": "1"}, True),
    ("replicas>2", {"replicas": "3"}, True),
    ("replicas<2", {"replicas": "3"}, False),
    ("in in (in)", {"in": "in"}, True),
    ("", {"anything": "x"}, True),
])
def test_label_selector_matches_labels_as_upstream(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize(("selector", "message"), [
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a gt 1", "unable to parse requirement: found 'gt', expected: in, notin, =, ==, !=, gt, lt"),
    ("-ltier=x", f'unable to parse requirement: <nil>: Invalid value: "-ltier": {KEY_REGEX_HELP}'),
    ("app=a$b", 'unable to parse requirement: values[0][app]: Invalid value: "a$b": a valid label must be '
                "an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
                "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
                "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
])
def test_bad_label_selector_is_400_with_upstream_message(selector: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(selector)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", message)


def test_empty_label_selector_is_empty_and_any_term_is_not() -> None:
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty


def test_parsed_selector_renders_sorted_by_key_with_sorted_set_values() -> None:
    assert str(parse_label_selector("z,b in (y,x),a=1")) == "a=1,b in (x,y),z"


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]}, {"env": "b"}, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {"env": "a"}, False),
    ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": ""}, False),
    ({}, {"anything": "x"}, True),
    (None, {"anything": "x"}, False),
])
def test_label_selector_object_matches_as_label_selector_as_selector(
        selector: dict | None, labels: dict[str, str], expected: bool) -> None:
    assert label_selector_from_object(selector).matches(labels) is expected


@pytest.mark.parametrize(("selector", "message"), [
    ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, '"Foo" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"),
    ({"matchLabels": {"bad key": "x"}}, f'key: Invalid value: "bad key": {KEY_REGEX_HELP}'),
])
def test_invalid_label_selector_object_is_rejected(selector: dict, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        label_selector_from_object(selector)
    assert caught.value.message == message


@pytest.mark.parametrize(("selector", "text"), [
    ({"matchLabels": {"app": "hostnames"}}, "app=hostnames"),
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "c", "operator": "In", "values": ["y", "x"]}, {"key": "d", "operator": "DoesNotExist"},
        {"key": "b", "operator": "Exists"}]}, "a=1,b,c in (x,y),!d"),
    ({}, ""),
    (None, ""),
])
def test_selector_to_string_renders_as_scale_status_selector(selector: dict | None, text: str) -> None:
    assert selector_to_string(selector) == text


@pytest.mark.parametrize(("selector", "text"), [
    ({"matchLabels": {"app": "web"}}, "app=web"),
    ({}, "<none>"),
    (None, "<none>"),
    ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, "<error>"),
])
def test_format_label_selector_prints_like_kubectl(selector: dict | None, text: str) -> None:
    assert format_label_selector(selector) == text


def test_selector_from_set_matches_service_selector_semantics() -> None:
    assert selector_from_set({"app": "web"}).matches({"app": "web", "pod-template-hash": "x"})
    assert not selector_from_set({"app": "web"}).matches({"app": "db"})
    assert selector_from_set({}).empty


POD = {
    "metadata": {"name": "web-0", "namespace": "prod"},
    "spec": {"nodeName": "node-1", "restartPolicy": "Always", "hostNetwork": False},
    "status": {"phase": "Running", "podIP": "10.244.1.5"},
}
EVENT = {
    "metadata": {"name": "e", "namespace": "prod"},
    "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "prod"},
    "reason": "Started", "type": "Normal", "source": {"component": "kubelet"},
}


@pytest.mark.parametrize(("kind", "obj", "selector", "expected"), [
    ("Pod", POD, "metadata.name=web-0", True),
    ("Pod", POD, "metadata.namespace==prod", True),
    ("Pod", POD, "metadata.name!=web-0", False),
    ("Pod", POD, "spec.nodeName=node-1,status.phase=Running", True),
    ("Pod", POD, "spec.nodeName=node-2", False),
    ("Pod", POD, "spec.nodeName=", False),
    ("Pod", {"metadata": {"name": "p"}, "spec": {}}, "spec.nodeName=", True),
    ("Pod", POD, "spec.hostNetwork=false", True),
    ("Pod", POD, "status.podIP=10.244.1.5", True),
    ("Pod", POD, "spec.host=node-1", True),
    ("Event", EVENT, "involvedObject.kind=Pod,involvedObject.name=web-0", True),
    ("Event", EVENT, "source=kubelet,type=Normal,reason=Started", True),
    ("Event", {**EVENT, "source": {}, "reportingComponent": "ctrl"}, "source=ctrl", True),
    ("Namespace", {"metadata": {"name": "a"}, "status": {"phase": "Active"}}, "status.phase=Active", True),
    ("Service", {"metadata": {"name": "s"}, "spec": {"clusterIP": "None", "type": "ClusterIP"}},
     "spec.clusterIP!=None", False),
    ("Node", {"metadata": {"name": "n"}, "spec": {}}, "spec.unschedulable=false", True),
    ("Secret", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls"}, "type=kubernetes.io/tls", True),
    ("Secret", {"metadata": {"name": "s"}, "type": "Opaque"}, "type=kubernetes.io/service-account-token", False),
    ("Deployment", {"metadata": {"name": "d", "namespace": "x"}}, "metadata.name=d", True),
    ("Pod", {"metadata": {"name": "a,b"}}, r"metadata.name=a\,b", True),
])
def test_field_selector_matches_selectable_fields(kind: str, obj: dict, selector: str, expected: bool) -> None:
    assert parse_field_selector(kind, selector).matches(obj) is expected


@pytest.mark.parametrize(("kind", "selector", "message"), [
    ("Pod", "spec.foo=1", "field label not supported: spec.foo"),
    ("Service", "status.phase=Running", "field label not supported: status.phase"),
    ("Deployment", "spec.replicas=1", "field label not supported: spec.replicas"),
    ("Pod", "metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("Pod", "metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
    ("Pod", "metadata.name=a\\x", "invalid field selector: invalid escape sequence: \\x"),
])
def test_bad_field_selector_is_400_with_upstream_message(kind: str, selector: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_field_selector(kind, selector)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", message)


def test_empty_field_selector_matches_everything() -> None:
    selector = parse_field_selector("Pod", "")
    assert selector.empty and selector.matches(POD)
