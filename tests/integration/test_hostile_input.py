"""Hostile and unusual input against a real `svcnet apiserver` process (issue 12's findings).

Each test sends what the issue measured against the released server: the alias bombs (a
39 MB Service and 3.8 GB of RSS), a 100,000-level JSON body (a 500), 10 MB and 100 MB
bodies (a plain-text 413), `kubectl debug` (a nil-pointer panic on a 404 without details),
and `?limit=` / `?continue=` values that answered 500 with a traceback.
"""
from __future__ import annotations

import pytest

from tests.hostile_bodies import deep_json, service_alias_bomb
from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available

SVC_PATH = "/api/v1/namespaces/default/services"
MIB = 1024 * 1024


def service_names(server: ApiServerProcess) -> list[str]:
    status, body = server.request("GET", SVC_PATH)
    assert status == 200, body
    return [item["metadata"]["name"] for item in body["items"]]


def assert_status(status: int, body: object, code: int, reason: str) -> dict:
    assert status == code, body
    assert isinstance(body, dict) and body["kind"] == "Status", body
    assert (body["code"], body["reason"]) == (code, reason), body
    assert "Traceback" not in body["message"] and "\n" not in body["message"], body
    return body


def test_alias_bombs_are_refused_and_the_server_does_not_grow(apiserver: ApiServerProcess) -> None:
    warm = service_alias_bomb(1, 142, name="warm")  # one anchor, no alias: a plain create
    status, body = apiserver.request("POST", SVC_PATH, warm, content_type="application/yaml")
    assert status == 201, body
    before = apiserver.memory_bytes("VmHWM")  # VmHWM keeps the peak any request reached
    for levels, size in ((7, 354), (9, 442)):
        status, body = apiserver.request("POST", SVC_PATH, service_alias_bomb(levels, size),
                                         content_type="application/yaml")
        body = assert_status(status, body, 400, "BadRequest")
        assert "document contains excessive aliasing" in body["message"]
    grown = apiserver.memory_bytes("VmHWM") - before
    assert grown < 50 * MIB, f"the API server's peak RSS grew {grown / MIB:.1f} MiB"
    assert [n for n in service_names(apiserver) if n.startswith("bomb")] == []


def test_a_json_body_nested_100000_levels_is_a_400(apiserver: ApiServerProcess) -> None:
    status, body = apiserver.request("POST", SVC_PATH, deep_json(100_000))
    body = assert_status(status, body, 400, "BadRequest")
    assert "exceeded max depth" in body["message"]
    status, _ = apiserver.request("GET", "/readyz")
    assert status == 200


@pytest.mark.parametrize("size", [10 * MIB, 100 * MIB])
def test_oversized_bodies_are_a_413_status(apiserver: ApiServerProcess, size: int) -> None:
    status, body = apiserver.request("POST", SVC_PATH, b" " * size, timeout=60)
    body = assert_status(status, body, 413, "RequestEntityTooLarge")
    assert body["message"] == "Request entity too large: limit is 3145728"
    assert [n for n in service_names(apiserver) if n != "kubernetes"] == []


def test_a_missing_object_is_a_status_with_details(apiserver: ApiServerProcess) -> None:
    status, body = apiserver.request("GET", f"{SVC_PATH}/nope")
    body = assert_status(status, body, 404, "NotFound")
    assert body["details"] == {"name": "nope", "kind": "services"}
    assert list(body)[-2:] == ["details", "code"]


@pytest.mark.parametrize("query", ["limit=1180591620717411303424", "continue=WzFd",
                                   "resourceVersion=x", "watch=1&timeoutSeconds=x"])
def test_bad_list_parameters_are_a_400_status(apiserver: ApiServerProcess, query: str) -> None:
    status, body = apiserver.request("GET", f"{SVC_PATH}?{query}")
    assert_status(status, body, 400, "BadRequest")


@pytest.mark.kubectl
@pytest.mark.skipif(not kubectl_available(), reason="kubectl is not on PATH")
def test_kubectl_debug_says_ephemeral_containers_are_disabled_without_a_panic(
        apiserver: ApiServerProcess) -> None:
    apiserver.kubectl("run", "p", "--image=busybox", "--restart=Never")
    result = apiserver.kubectl("debug", "p", "--image=busybox", "--profile=general", check=False)
    assert result.returncode != 0
    assert "panic" not in result.stderr
    assert "ephemeral containers are disabled for this cluster" in result.stderr, result.stderr
