"""The bounded body decoder and the Status answers around it, through the real aiohttp app.

Each case is a finding of issue 12: an alias bomb stored as a 39 MB Service, a 100,000-level
JSON body answering 500, an oversized body answering plain text, a 404 without details that
kubectl debug dereferences, a bad query parameter answering 500 with a traceback, and a deeply
nested stored object breaking `Accept: application/yaml` for a whole list.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from svcnet.api import errors, jsoncodec
from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver import http, yamlbody
from svcnet.apiserver.jsonbody import MAX_NESTING_DEPTH, load_json_strict
from svcnet.apiserver.registry import Registry
from svcnet.storage.memory import MemoryStore
from tests.hostile_bodies import alias_bomb, deep_json, service_alias_bomb

SERVICES = lookup("", "v1", "services")
assert SERVICES is not None
SVC_PATH = "/api/v1/namespaces/default/services"
# metav1.Status's members in the order its Go struct declares them (apimachinery types.go).
STATUS_ORDER = ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]


def service(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}]}, **extra}


def nested(levels: int) -> Any:
    """A value of `levels` nested objects around a string."""
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.fixture
def registry() -> Registry:
    reg = Registry(MemoryStore())
    reg.ensure_system_namespaces()
    return reg


def user_services(registry: Registry) -> list[str]:
    assert SERVICES is not None
    return [s["metadata"]["name"] for s in registry.list(SERVICES, "default").items]


async def status_of(resp: Any, code: int) -> dict[str, Any]:
    """The response's Status, checked to be one: JSON, the HTTP code, one line, no traceback."""
    text = await resp.text()
    assert resp.status == code, text
    assert resp.headers["Content-Type"].startswith("application/json"), text
    status = json.loads(text)
    assert status["kind"] == "Status" and status["code"] == code
    assert list(status) == [k for k in STATUS_ORDER if k in status]
    assert "\n" not in status["message"] and "Traceback" not in status["message"]
    return status


# ------------------------------------------------------------------ YAML aliases
@pytest.mark.parametrize("levels, size", [(7, 354), (9, 442)])
async def test_the_issues_alias_bombs_are_refused_and_nothing_is_stored(
        client: TestClient, registry: Registry, levels: int, size: int) -> None:
    body = service_alias_bomb(levels, size)
    resp = await client.post(SVC_PATH, data=body, headers={"Content-Type": "application/yaml"})
    status = await status_of(resp, 400)
    assert status["reason"] == "BadRequest"
    assert status["message"] == "error converting YAML to JSON: yaml: document contains excessive aliasing"
    assert user_services(registry) == []


async def test_an_alias_bomb_is_refused_on_every_yaml_write_path(
        client: TestClient, registry: Registry) -> None:
    """Create answers above; update and server-side apply decode through the same decoder."""
    assert (await client.post(SVC_PATH, json=service())).status == 201
    bomb = service_alias_bomb(7, 354, name="web")
    put = await client.put(f"{SVC_PATH}/web", data=bomb, headers={"Content-Type": "application/yaml"})
    apply = await client.patch(f"{SVC_PATH}/web?fieldManager=t", data=bomb,
                               headers={"Content-Type": "application/apply-patch+yaml"})
    for resp in (put, apply):
        assert "excessive aliasing" in (await status_of(resp, 400))["message"]
    assert SERVICES is not None
    assert "a" not in registry.get(SERVICES, "default", "web")


@pytest.mark.parametrize("levels, fanout, refused", [
    # go-yaml v3.0.4 on the same documents: 1,000 aliased scalars decode, 10,000 do not
    (3, 10, False), (4, 10, True), (9, 9, True),
])
def test_aliasing_is_bounded_by_go_yamls_ratio(levels: int, fanout: int, refused: bool) -> None:
    doc = alias_bomb(levels, fanout)
    if not refused:
        assert len(yamlbody.load(doc, http.MAX_REQUEST_BODY_BYTES)["c"]) == fanout
        return
    with pytest.raises(yamlbody.ExcessiveAliasing):
        yamlbody.load(doc, http.MAX_REQUEST_BODY_BYTES)


def test_a_long_string_aliased_past_the_body_cap_is_refused() -> None:
    """Five aliases of a 1 MiB string: under go-yaml's ratio, yet 6 MiB once written out."""
    doc = f"a: &a {'x' * (1 << 20)}\nb: [" + ",".join(["*a"] * 5) + "]\n"
    with pytest.raises(yamlbody.ExcessiveAliasing):
        yamlbody.load(doc, http.MAX_REQUEST_BODY_BYTES)
    assert yamlbody.load(f"a: &a {'x' * 10}\nb: [*a, *a]\n", 100)["b"] == ["x" * 10] * 2


def test_an_anchor_that_contains_itself_is_refused() -> None:
    with pytest.raises(http.errors.ApiError) as err:
        http.decode_body("application/yaml", b"a: &x [1, *x]\n")
    assert err.value.message == ("error converting YAML to JSON: yaml: line 1: "
                                 "anchor 'x' value contains itself")


def test_yaml_values_are_json_values() -> None:
    """Timestamps stay text, !!binary is its text and an integer past Python's 4300 digits stays
    text, as go-yaml decodes them into interface{}; nothing PyYAML builds fails as JSON."""
    body = b"a: 2024-01-01\nb: !!binary aGk=\nc: !!set {x}\nd: " + b"9" * 5000 + b"\ne: 0x1F\n"
    value = http.decode_body("application/yaml", body).value
    assert value == {"a": "2024-01-01", "b": "hi", "c": {"x": None}, "d": "9" * 5000, "e": 31}
    jsoncodec.dumps(value)


@pytest.mark.parametrize("content_type, body, message", [
    ("application/json", b'{"a": NaN}',
     "couldn't get version/kind; json parse error: invalid character 'N' looking for beginning of value"),
    ("application/json", b'{"a": Infinity}',
     "couldn't get version/kind; json parse error: invalid character 'I' looking for beginning of value"),
    ("application/yaml", b"a: .inf\n",
     "error converting YAML to JSON: yaml: line 1: json: unsupported value: +Inf"),
    ("application/yaml", b"a: .nan\n",
     "error converting YAML to JSON: yaml: line 1: json: unsupported value: NaN"),
])
def test_numbers_json_cannot_carry_are_refused(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as err:
        http.decode_body(content_type, body)
    assert (err.value.code, err.value.message) == (400, message)


# ------------------------------------------------------------------ depth
async def test_a_json_body_nested_100000_levels_is_a_400(client: TestClient, registry: Registry) -> None:
    resp = await client.post(SVC_PATH, data=deep_json(100_000),
                             headers={"Content-Type": "application/json"})
    status = await status_of(resp, 400)
    assert status["message"] == ("couldn't get version/kind; json parse error: "
                                 f"exceeded max depth of {MAX_NESTING_DEPTH}")
    assert user_services(registry) == []


@pytest.mark.parametrize("content_type, encode", [
    ("application/json", lambda body: json.dumps(body).encode()),
    ("application/yaml", lambda body: yaml.safe_dump(body).encode()),
])
async def test_bodies_at_the_depth_limit_are_served_and_one_deeper_refused(
        client: TestClient, registry: Registry, content_type: str, encode: Any) -> None:
    """The Service itself is level 1, its `extra` member's objects the rest."""
    at_limit = service("deep", extra=nested(MAX_NESTING_DEPTH - 1))
    resp = await client.post(SVC_PATH, data=encode(at_limit), headers={"Content-Type": content_type})
    assert resp.status == 201, await resp.text()
    too_deep = service("deeper", extra=nested(MAX_NESTING_DEPTH))
    resp = await client.post(SVC_PATH, data=encode(too_deep), headers={"Content-Type": content_type})
    status = await status_of(resp, 400)
    assert f"exceeded max depth of {MAX_NESTING_DEPTH}" in status["message"]
    assert user_services(registry) == ["deep"]


@pytest.mark.parametrize("content_type", ["application/merge-patch+json",
                                          "application/strategic-merge-patch+json",
                                          "application/apply-patch+yaml"])
async def test_patches_past_the_depth_limit_are_refused(client: TestClient, content_type: str) -> None:
    assert (await client.post(SVC_PATH, json=service())).status == 201
    body = json.dumps(service("web", extra=nested(MAX_NESTING_DEPTH))).encode()
    resp = await client.patch(f"{SVC_PATH}/web?fieldManager=t", data=body,
                              headers={"Content-Type": content_type})
    assert f"exceeded max depth of {MAX_NESTING_DEPTH}" in (await status_of(resp, 400))["message"]


def test_depth_is_checked_however_the_json_repeats_keys() -> None:
    """A repeated key takes the path-keeping parse; the depth check still applies."""
    text = '{"a":' * MAX_NESTING_DEPTH + '{"b":1,"b":2}' + "}" * MAX_NESTING_DEPTH
    with pytest.raises(ValueError, match="exceeded max depth"):
        load_json_strict(text)
    assert load_json_strict('{"a":{"b":1,"b":2}}') == ({"a": {"b": 2}}, ["a.b"])


def test_yaml_nesting_is_refused_before_the_composer_recurses() -> None:
    for doc in ("[" * 100_000, "- " * 100_000 + "x", "x: " + "{" * 100_000):
        with pytest.raises(yamlbody.TooDeep):
            yamlbody.load(doc, http.MAX_REQUEST_BODY_BYTES)


def test_yaml_aliases_count_toward_depth() -> None:
    """An anchor 60 deep aliased 45 levels down is 105 levels once expanded."""
    anchored = "[" * 60 + "]" * 60
    doc = f"x: &x {anchored}\ny: {'[' * 44}*x{']' * 44}\n"
    with pytest.raises(yamlbody.TooDeep):
        yamlbody.load(doc, http.MAX_REQUEST_BODY_BYTES)


def test_a_yaml_body_of_too_many_nodes_is_413() -> None:
    with pytest.raises(ApiError) as err:
        http.decode_body("application/yaml", b"- 0\n" * (yamlbody.MAX_YAML_NODES + 1))
    assert (err.value.code, err.value.reason) == (413, "RequestEntityTooLarge")


def test_yaml_errors_are_one_line() -> None:
    with pytest.raises(ApiError) as err:
        http.decode_body("application/yaml", b"a: 1\nb: [1\n")
    assert err.value.message.startswith("error converting YAML to JSON: yaml: line 3: ")
    assert "\n" not in err.value.message


# ------------------------------------------------------------------ body size
async def test_a_body_over_3_mib_is_a_413_status(client: TestClient, registry: Registry) -> None:
    resp = await client.post(SVC_PATH, data=b" " * http.MAX_REQUEST_BODY_BYTES + b"{}",
                             headers={"Content-Type": "application/json"})
    status = await status_of(resp, 413)
    assert (status["reason"], status["message"]) == (
        "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
    assert user_services(registry) == []


async def test_a_chunked_body_over_3_mib_is_a_413_status(client: TestClient) -> None:
    """No Content-Length to refuse by: the read itself stops at the cap."""
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * (1024 * 1024)

    resp = await client.post(SVC_PATH, data=chunks(), headers={"Content-Type": "application/json"})
    assert (await status_of(resp, 413))["reason"] == "RequestEntityTooLarge"


async def test_a_body_of_exactly_3_mib_is_read(client: TestClient, registry: Registry) -> None:
    """Upstream's limitedReadBody takes `limit` bytes and refuses `limit + 1`."""
    text = json.dumps(service()).encode()
    body = text + b" " * (http.MAX_REQUEST_BODY_BYTES - len(text))
    resp = await client.post(SVC_PATH, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    assert user_services(registry) == ["web"]


async def test_delete_options_are_bounded_too(client: TestClient, registry: Registry) -> None:
    assert (await client.post(SVC_PATH, json=service())).status == 201
    resp = await client.delete(f"{SVC_PATH}/web", data=b" " * (http.MAX_REQUEST_BODY_BYTES + 1),
                               headers={"Content-Type": "application/json"})
    await status_of(resp, 413)
    assert user_services(registry) == ["web"]


# ------------------------------------------------------------------ Status shape
async def test_a_missing_object_is_a_not_found_status_with_details(client: TestClient) -> None:
    status = await status_of(await client.get(f"{SVC_PATH}/nope"), 404)
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": 'services "nope" not found', "reason": "NotFound",
                      "details": {"name": "nope", "kind": "services"}, "code": 404}


async def test_an_unserved_subresource_is_a_not_found_with_empty_details(client: TestClient) -> None:
    """kubectl debug reads Details.Name of this 404 to say ephemeral containers are disabled."""
    resp = await client.patch("/api/v1/namespaces/default/pods/p/ephemeralcontainers", data=b"{}",
                              headers={"Content-Type": "application/strategic-merge-patch+json"})
    status = await status_of(resp, 404)
    assert (status["message"], status["details"]) == ("the server could not find the requested resource", {})


async def test_conflicts_carry_details(client: TestClient) -> None:
    assert (await client.post(SVC_PATH, json=service())).status == 201
    exists = await status_of(await client.post(SVC_PATH, json=service()), 409)
    assert exists["details"] == {"name": "web", "kind": "services"}
    stale = service()
    stale["metadata"]["resourceVersion"] = "1"
    conflict = await status_of(await client.put(f"{SVC_PATH}/web", json=stale), 409)
    assert (conflict["reason"], conflict["details"]) == ("Conflict", {"name": "web", "kind": "services"})


def test_status_members_keep_metav1_status_order() -> None:
    text = jsoncodec.dumps(errors.not_found("deployments", "d", "apps").status()).decode()
    assert text == ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                    '"message":"deployments.apps \\"d\\" not found","reason":"NotFound",'
                    '"details":{"name":"d","group":"apps","kind":"deployments"},"code":404}')
    assert "details" not in errors.bad_request("no").status()
    assert errors.internal_error("boom").status()["details"] == {"causes": [{"message": "boom"}]}


# ------------------------------------------------------------------ query parameters
@pytest.mark.parametrize("query, message", [
    ("limit=1180591620717411303424",
     'invalid limit parameter: strconv.ParseInt: parsing "1180591620717411303424": value out of range'),
    ("limit=ten", 'invalid limit parameter: strconv.ParseInt: parsing "ten": invalid syntax'),
    (f"limit={'9' * 5000}",
     f'invalid limit parameter: strconv.ParseInt: parsing "{"9" * 5000}": value out of range'),
    (f"limit=-{'0' * 30}7", "invalid limit parameter: must not be negative"),
    ("limit=1_0", 'invalid limit parameter: strconv.ParseInt: parsing "1_0": invalid syntax'),
    ("limit=-1", "invalid limit parameter: must not be negative"),
    ("continue=WzFd", "invalid continue token: continue key is not valid: json: cannot unmarshal "
                      "array into Go value of type storage.continueToken"),
    ("continue=e30", "invalid continue token: continue key is not valid: server does not recognize "
                     "this encoded version "),
    ("continue=a%3D%3D", "invalid continue token: continue key is not valid: illegal base64 data at "
                         "input byte 1"),
    ("continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6IjEiLCJzdGFydCI6IngifQ",
     "invalid continue token: continue key is not valid: json: cannot unmarshal string into Go "
     "struct field continueToken.rv of type int64"),
    ("continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJ4In0",
     "invalid continue token: continue key is not valid: incorrect encoded start resourceVersion "
     "(version meta.k8s.io/v1)"),
    ("continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6Mn0",
     "invalid continue token: continue key is not valid: encoded start key empty (version "
     "meta.k8s.io/v1)"),
    ("resourceVersion=abc",
     'invalid resourceVersion parameter: strconv.ParseUint: parsing "abc": invalid syntax'),
    ("resourceVersion=-3",
     'invalid resourceVersion parameter: strconv.ParseUint: parsing "-3": invalid syntax'),
    ("watch=1&resourceVersion=18446744073709551616",
     'invalid resourceVersion parameter: strconv.ParseUint: parsing "18446744073709551616": '
     'value out of range'),
    ("watch=1&timeoutSeconds=soon",
     'invalid timeoutSeconds parameter: strconv.ParseInt: parsing "soon": invalid syntax'),
    ("watch=1&timeoutSeconds=99999999999999999999",
     'invalid timeoutSeconds parameter: strconv.ParseInt: parsing "99999999999999999999": '
     'value out of range'),
])
async def test_every_bad_query_parameter_is_a_400_status(client: TestClient, query: str,
                                                         message: str) -> None:
    status = await status_of(await client.get(f"{SVC_PATH}?{query}"), 400)
    assert (status["reason"], status["message"]) == ("BadRequest", message)


async def test_a_continue_token_the_server_wrote_still_pages(client: TestClient) -> None:
    for name in ("a", "b", "c"):
        assert (await client.post(SVC_PATH, json=service(name))).status == 201
    first = await (await client.get(f"{SVC_PATH}?limit=2")).json()
    rest = await (await client.get(f"{SVC_PATH}?limit=2&continue={first['metadata']['continue']}")).json()
    assert [s["metadata"]["name"] for s in first["items"] + rest["items"]] == ["a", "b", "c"]


# ------------------------------------------------------------------ encoding
async def test_a_stored_object_too_deep_for_pyyaml_does_not_break_a_yaml_list(
        client: TestClient, registry: Registry) -> None:
    """Objects stored before the depth limit (here written straight to the store) may nest 500-900
    levels; the list still answers in YAML, as JSON where PyYAML's recursion cannot go."""
    assert (await client.post(SVC_PATH, json=service())).status == 201
    assert SERVICES is not None
    registry.store.create(SERVICES.storage_key("default", "deep"),
                          service("deep", extra=nested(800)))
    resp = await client.get(SVC_PATH, headers={"Accept": "application/yaml"})
    assert resp.status == 200, await resp.text()
    listed = json.loads(await resp.text())  # JSON is a YAML document
    assert [s["metadata"]["name"] for s in listed["items"]] == ["deep", "web"]
    assert (await client.get(SVC_PATH)).status == 200
    shallow = await client.get(f"{SVC_PATH}/web", headers={"Accept": "application/yaml"})
    assert yaml.safe_load(await shallow.text())["metadata"]["name"] == "web"
