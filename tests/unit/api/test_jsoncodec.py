"""The shared JSON codec gives the json module's values and errors, only faster."""
from __future__ import annotations

import collections
import datetime as dt
import gc
import json
import math
from typing import Any

import pytest

from svcnet.api import jsoncodec


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (1, 1.0 and True differ; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("text", [
    pytest.param('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"}}', id="object"),
    pytest.param('{"a":1,"b":2,"a":3}', id="duplicate-key-last-wins-in-first-place"),
    pytest.param("[1, 1.0, -0, -0.0, 1e5, 1.5e-7, true, null]", id="numbers-keep-their-types"),
    pytest.param("[18446744073709551615]", id="largest-u64"),
    pytest.param("[18446744073709551616]", id="beyond-u64-stays-an-int"),
    pytest.param("[-9223372036854775809]", id="below-i64-stays-an-int"),
    pytest.param("[123456789012345678901234567890]", id="huge-int"),
    pytest.param("[1e400, -1e400]", id="overflow-to-infinity"),
    pytest.param("[NaN, Infinity, -Infinity]", id="non-finite-literals"),
    pytest.param('"\\ud800"', id="lone-surrogate"),
    pytest.param('"\\ud83d\\ude00 \\u00e9 é"', id="escapes-and-utf8"),
])
def test_loads_gives_the_json_modules_value(text: str) -> None:
    assert _same(jsoncodec.loads(text), json.loads(text))
    assert _same(jsoncodec.loads(text.encode("utf-8", "surrogatepass")), json.loads(text))


@pytest.mark.parametrize("text", ["", "[1,]", "01", "[1]x", '"\t"', "tru", "\ufeff[1]"])
def test_loads_fails_as_the_json_module_does(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        jsoncodec.loads(text)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("value", [
    pytest.param({"kind": "Pod", "metadata": {"labels": {"app": "web"}}, "spec": {"x": [1, 2.5, None]}},
                 id="object"),
    pytest.param({"a": float("nan")}, id="nan-is-not-null"),
    pytest.param([1, {"x": (float("inf"), -float("inf"))}], id="infinities-in-a-tuple"),
    pytest.param(collections.OrderedDict(a=float("nan")), id="nan-in-a-dict-subclass"),
    pytest.param({1: 2, False: 3, None: 4, 2.5: 5}, id="non-string-keys"),
    pytest.param({"big": 2**64, "small": -(2**63) - 1}, id="beyond-64-bits"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param({"text": "é <> & null"}, id="non-ascii-and-the-word-null"),
    pytest.param([1.5e-7, 1e16, -0.0], id="floats"),
])
def test_dumps_round_trips_to_the_json_modules_value(value: Any) -> None:
    expected = json.loads(json.dumps(value, separators=(",", ":")))
    assert _same(json.loads(jsoncodec.dumps(value)), expected)
    assert _same(json.loads(jsoncodec.dumps_text(value)), expected)


def test_dumps_is_compact() -> None:
    assert jsoncodec.dumps({"a": [1, {"b": None}]}) == b'{"a":[1,{"b":null}]}'


def test_dumps_keeps_a_lone_surrogate_as_an_ascii_escape() -> None:
    # SQLite cannot bind a str holding one; the escape is what the store writes.
    assert jsoncodec.dumps_text({"a": "\ud800"}) == '{"a":"\\ud800"}'


@pytest.mark.parametrize("value", [
    pytest.param(object(), id="object"),
    pytest.param({"a": {1, 2}}, id="set"),
    pytest.param(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), id="datetime"),
    pytest.param(b"bytes", id="bytes"),
])
def test_dumps_refuses_what_the_json_module_refuses(value: Any) -> None:
    with pytest.raises(TypeError) as expected:
        json.dumps(value)
    with pytest.raises(TypeError) as got:
        jsoncodec.dumps(value)
    assert str(got.value) == str(expected.value)


def test_dumps_reports_a_circular_reference_as_the_json_module_does() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        jsoncodec.dumps(loop)


def test_deepcopy_copies_every_dict_and_list() -> None:
    original = {"metadata": {"labels": {"app": "web"}, "finalizers": ["a"]}, "when": dt.date(2024, 1, 1)}
    copied = jsoncodec.deepcopy(original)
    assert copied == original
    copied["metadata"]["labels"]["app"] = "changed"
    copied["metadata"]["finalizers"].append("b")
    assert original["metadata"] == {"labels": {"app": "web"}, "finalizers": ["a"]}
    assert copied["when"] == original["when"]


@pytest.mark.parametrize("enabled", [True, False])
def test_building_many_pauses_the_collector_and_restores_its_state(enabled: bool) -> None:
    was_enabled = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with jsoncodec.building_many():
            assert not gc.isenabled()
            with jsoncodec.building_many():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError), jsoncodec.building_many():
            raise RuntimeError("the loop failed")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()


def test_without_nulls_drops_null_members_at_any_depth_but_keeps_null_list_elements():
    value = {"a": None, "b": {"c": None, "d": 1}, "e": [None, {"f": None, "g": [None]}], "h": 0, "i": ""}
    assert jsoncodec.without_nulls(value) == {"b": {"d": 1}, "e": [None, {"g": [None]}], "h": 0, "i": ""}
    assert value["a"] is None  # the input is not changed
