"""A paged list reads every page at the first page's revision; resourceVersion/resourceVersionMatch as upstream.

Through the real aiohttp app, over both storage drivers: objects created, changed and deleted
between pages do not show up; the pages' metadata.resourceVersion is the first page's; a
compacted revision is a 410 Expired with upstream's message (and, for a continue token, a token
that continues at the latest revision); a revision not reached yet is a 504; the combinations
ValidateListOptions forbids are a 422 Invalid with upstream's wording.
"""
from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

from svcnet.api.resources import lookup
from svcnet.apiserver.daemon import build_registry
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.storage.base import Store
from svcnet.storage.etcd import EtcdConfig, EtcdStore
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SqliteStore

from .conftest import T0

_roots = itertools.count()
PODS = lookup("", "v1", "pods")
assert PODS is not None
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"

INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list.")


def _pod(name: str, app: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


@pytest.fixture(params=["memory", "sqlite", "etcd"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    store: Store
    if request.param == "etcd":  # the session's etcd (tests/conftest.py), under a namespace of this test's
        port = request.getfixturevalue("etcd_server").spec.client_port
        store = EtcdStore(EtcdConfig((("127.0.0.1", port),), root=f"/list-consistency-{next(_roots)}"))
    else:
        store = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "store.db"))
    reg = build_registry(store)
    reg.clock = lambda: T0
    reg.ensure_system_namespaces()
    for index in range(6):
        reg.create(PODS, "default", _pod(f"p{index}"), WriteOptions())
    yield reg
    store.close()


def _url(query: dict[str, str]) -> str:
    return f"/api/v1/namespaces/default/pods?{urlencode(query)}"


async def _get(client: TestClient, query: dict[str, str], accept: str = "application/json",
               ) -> tuple[int, dict[str, Any]]:
    response = await client.get(_url(query), headers={"Accept": accept})
    return response.status, json.loads(await response.read())


def _names(body: dict[str, Any]) -> list[str]:
    if "rows" in body:
        return [row["object"]["metadata"]["name"] for row in body["rows"]]
    return [item["metadata"]["name"] for item in body["items"]]


def _writes_between_pages(registry: Registry) -> None:
    registry.create(PODS, "default", _pod("p9"), WriteOptions())  # after every listed key
    registry.create(PODS, "default", _pod("p35"), WriteOptions())  # between keys not listed yet
    registry.delete(PODS, "default", "p5", DeleteOptions.from_body(None, {}))
    pod = registry.get(PODS, "default", "p4")
    pod["metadata"]["labels"] = {"app": "changed"}
    registry.update(PODS, "default", "p4", pod, WriteOptions())


@pytest.mark.parametrize("accept", ["application/json", TABLE])
async def test_every_page_shows_the_first_pages_snapshot_while_objects_change(
        client: TestClient, registry: Registry, accept: str) -> None:
    status, first = await _get(client, {"limit": "2"}, accept)
    assert status == 200
    revision = first["metadata"]["resourceVersion"]
    assert first["metadata"]["remainingItemCount"] == 4
    _writes_between_pages(registry)
    assert str(registry.store.current_revision()) != revision
    names, pages = _names(first), [first]
    token = first["metadata"]["continue"]
    while token:
        status, page = await _get(client, {"limit": "2", "continue": token}, accept)
        assert status == 200
        pages.append(page)
        names += _names(page)
        token = page["metadata"].get("continue")
    assert names == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert [page["metadata"]["resourceVersion"] for page in pages] == [revision] * 3
    assert [page["metadata"].get("remainingItemCount") for page in pages] == [4, 2, None]
    p4 = (pages[2]["rows"][0]["object"] if accept == TABLE else pages[2]["items"][0])
    assert p4["metadata"]["labels"] == {"app": "web"}  # as it was, not as changed between pages
    _, latest = await _get(client, {})
    assert _names(latest) == ["p0", "p1", "p2", "p3", "p35", "p4", "p9"]


async def test_a_selector_pages_at_the_first_pages_revision_too(client: TestClient, registry: Registry) -> None:
    status, first = await _get(client, {"limit": "2", "labelSelector": "app=web"})
    assert (status, _names(first)) == (200, ["p0", "p1"])
    assert "remainingItemCount" not in first["metadata"]  # unknown with a selector, as upstream
    _writes_between_pages(registry)
    status, rest = await _get(client, {"limit": "10", "labelSelector": "app=web",
                                       "continue": first["metadata"]["continue"]})
    assert (status, _names(rest)) == (200, ["p2", "p3", "p4", "p5"])
    assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def _token(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


async def test_a_compacted_continue_is_410_expired_with_a_token_to_continue_at_the_latest(
        client: TestClient, registry: Registry) -> None:
    _, first = await _get(client, {"limit": "2"})
    _writes_between_pages(registry)
    registry.store.compact(registry.store.current_revision())
    status, body = await _get(client, {"limit": "2", "continue": first["metadata"]["continue"]})
    assert status == 410
    assert (body["kind"], body["reason"], body["code"], body["message"]) == \
        ("Status", "Expired", 410, INCONSISTENT_CONTINUE)
    fresh = body["metadata"]["continue"]
    assert _token(fresh) == {**_token(first["metadata"]["continue"]), "rv": -1}
    # The new token continues after the same key, at the latest revision: the writes show.
    status, rest = await _get(client, {"limit": "10", "continue": fresh})
    assert (status, _names(rest)) == (200, ["p2", "p3", "p35", "p4", "p9"])
    assert rest["metadata"]["resourceVersion"] == str(registry.store.current_revision())


async def test_resource_version_semantics_of_a_list(client: TestClient, registry: Registry) -> None:
    old = registry.store.current_revision()
    _writes_between_pages(registry)
    now = registry.store.current_revision()
    then = ["p0", "p1", "p2", "p3", "p4", "p5"]
    latest = ["p0", "p1", "p2", "p3", "p35", "p4", "p9"]
    cases = [
        ({}, latest, now),
        ({"resourceVersion": "0"}, latest, now),
        ({"resourceVersion": str(old)}, latest, now),  # no limit, no match: not older than
        ({"resourceVersion": str(old), "resourceVersionMatch": "NotOlderThan"}, latest, now),
        ({"resourceVersion": str(old), "resourceVersionMatch": "Exact"}, then, old),
        ({"resourceVersion": str(old), "limit": "50"}, then, old),  # the legacy exact read
        ({"resourceVersion": "0", "limit": "50"}, latest, now),
        ({"resourceVersion": str(now), "resourceVersionMatch": "Exact"}, latest, now),
    ]
    for query, names, revision in cases:
        status, body = await _get(client, query)
        assert (status, _names(body), body["metadata"]["resourceVersion"]) == (200, names, str(revision)), query


@pytest.mark.parametrize("query", [
    {"resourceVersion": "{future}", "resourceVersionMatch": "NotOlderThan"},
    {"resourceVersion": "{future}"},
    {"resourceVersion": "{future}", "resourceVersionMatch": "Exact"},
    {"resourceVersion": "{future}", "limit": "1"},
])
async def test_a_revision_not_reached_yet_is_a_504_too_large_resource_version(
        client: TestClient, registry: Registry, query: dict[str, str]) -> None:
    now = registry.store.current_revision()
    future = now + 5
    status, body = await _get(client, {k: v.format(future=future) for k, v in query.items()})
    assert status == 504
    assert (body["reason"], body["message"]) == ("Timeout", f"Timeout: Too large resource version: {future}, "
                                                            f"current: {now}")
    assert body["details"]["causes"] == [{"reason": "ResourceVersionTooLarge",
                                          "message": "Too large resource version"}]


async def test_a_get_with_a_revision_not_reached_yet_is_a_504(client: TestClient, registry: Registry) -> None:
    now = registry.store.current_revision()
    response = await client.get(f"/api/v1/namespaces/default/pods/p0?resourceVersion={now + 1}")
    assert response.status == 504
    assert (await client.get(f"/api/v1/namespaces/default/pods/p0?resourceVersion={now}")).status == 200


@pytest.mark.parametrize("query", [{"resourceVersionMatch": "Exact"}, {"limit": "2"}])
async def test_an_exact_read_of_a_compacted_revision_is_410_too_old(
        client: TestClient, registry: Registry, query: dict[str, str]) -> None:
    old = registry.store.current_revision()
    _writes_between_pages(registry)
    registry.store.compact(registry.store.current_revision())
    status, body = await _get(client, {"resourceVersion": str(old), **query})
    assert (status, body["reason"], body["message"]) == \
        (410, "Expired", "The resourceVersion for the provided list is too old.")
    assert body["metadata"] == {}


FORBIDDEN_UNLESS_RV = ("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                       "resourceVersion is provided")


@pytest.mark.parametrize(("query", "status", "message"), [
    ({"resourceVersionMatch": "Exact"}, 422, f'ListOptions.meta.k8s.io "" is invalid: {FORBIDDEN_UNLESS_RV}'),
    ({"resourceVersionMatch": "NotARealMatch"}, 422,
     f'ListOptions.meta.k8s.io "" is invalid: [{FORBIDDEN_UNLESS_RV}, resourceVersionMatch: Unsupported value: '
     f'"NotARealMatch": supported values: "Exact", "NotOlderThan", ""]'),
    ({"resourceVersion": "0", "resourceVersionMatch": "Exact"}, 422,
     'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is '
     'forbidden for resourceVersion "0"'),
    ({"resourceVersion": "1", "resourceVersionMatch": "NotOlderThan", "continue": "{token}"}, 422,
     'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden '
     'when continue is provided'),
    ({"sendInitialEvents": "true"}, 422,
     'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list'),
    ({"resourceVersion": "1", "continue": "{token}"}, 400,
     "specifying resource version is not allowed when using continue"),
])
async def test_list_options_upstream_refuses_are_refused_with_its_words(
        client: TestClient, query: dict[str, str], status: int, message: str) -> None:
    _, first = await _get(client, {"limit": "2"})
    got, body = await _get(client, {k: v.format(token=first["metadata"]["continue"]) for k, v in query.items()})
    assert (got, body["message"]) == (status, message)
    assert body["reason"] == ("Invalid" if status == 422 else "BadRequest")


async def test_resource_version_zero_beside_a_continue_token_is_allowed(client: TestClient) -> None:
    _, first = await _get(client, {"limit": "2"})
    status, body = await _get(client, {"limit": "2", "resourceVersion": "0",
                                       "continue": first["metadata"]["continue"]})
    assert (status, _names(body)) == (200, ["p2", "p3"])


async def test_a_repeated_table_list_shows_the_age_at_the_time_of_each_request(
        client: TestClient, registry: Registry) -> None:
    ages = []
    for hours in (0, 5, 50):
        registry.clock = lambda hours=hours: T0 + dt.timedelta(hours=hours, seconds=30)
        status, body = await _get(client, {}, TABLE)
        assert status == 200
        age = [column["name"] for column in body["columnDefinitions"]].index("Age")
        ages.append({row["cells"][age] for row in body["rows"]})
    assert ages == [{"30s"}, {"5h"}, {"2d2h"}]


@pytest.mark.parametrize("query", [{}, {"resourceVersionMatch": "Exact", "resourceVersion": "{old}"}])
async def test_the_largest_limit_lists_everything(client: TestClient, registry: Registry, query: dict[str, str],
                                                  ) -> None:
    old = registry.store.current_revision()
    _writes_between_pages(registry)
    status, body = await _get(client, {"limit": str(2**63 - 1),
                                       **{k: v.format(old=old) for k, v in query.items()}})
    assert status == 200, body
    assert len(body["items"]) == (6 if query else 7) and "continue" not in body["metadata"]


async def test_a_continue_token_from_a_revision_not_reached_yet_is_a_504(client: TestClient,
                                                                         registry: Registry) -> None:
    _, first = await _get(client, {"limit": "2"})
    start = _token(first["metadata"]["continue"])["start"]
    crafted = base64.urlsafe_b64encode(json.dumps(
        {"v": "meta.k8s.io/v1", "rv": 2**62, "start": start}).encode()).decode().rstrip("=")
    status, body = await _get(client, {"limit": "2", "continue": crafted})
    assert (status, body["reason"]) == (504, "Timeout")
    assert body["message"] == f"Timeout: Too large resource version: {2**62}, " \
                              f"current: {registry.store.current_revision()}"


async def test_a_watch_from_a_revision_not_reached_is_a_504_before_any_stream(
        client: TestClient, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from svcnet.apiserver import watch

    monkeypatch.setattr(watch, "FUTURE_REVISION_WAIT", 0.1)  # upstream waits 3 s; the answer is the same
    now = registry.store.current_revision()
    response = await client.get(_url({"watch": "1", "resourceVersion": str(now + 5)}))
    body = json.loads(await response.read())
    assert response.status == 504
    assert (body["reason"], body["message"]) == ("Timeout", f"Timeout: Too large resource version: {now + 5}, "
                                                            f"current: {now}")
    assert body["details"]["retryAfterSeconds"] == 1
    assert body["details"]["causes"] == [{"reason": "ResourceVersionTooLarge",
                                          "message": "Too large resource version"}]

