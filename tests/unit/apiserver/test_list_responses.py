"""A list response is byte for byte what decoding every object and encoding the list again gives.

The JSON form splices the objects' stored text (responses.list_bytes); these tests build the
reference the slow way, from the store's decoded records, and compare the bodies the real
aiohttp app sends: JSON, YAML and Table, with and without selectors, one page or many.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from aiohttp.test_utils import TestClient

from svcnet.api import jsoncodec, objects, selectors
from svcnet.api.resources import lookup
from svcnet.apiserver import params
from svcnet.apiserver import printers as tables
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.storage.memory import MemoryStore

from .conftest import T0

PODS = lookup("", "v1", "pods")
assert PODS is not None

JSON = "application/json"
YAML = "application/yaml"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def _pod(name: str, namespace: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": "web", "shard": str(index % 3)},
                     # Non-ASCII text: encoders differ on it (escaped or UTF-8), so it pins the bytes.
                     "annotations": {"note": f"café ☕ {index}", "quote": 'a "b" \\ c'}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "ports": [{"containerPort": 80 + index}]}],
                 "nodeName": f"node-{index % 2}"},
    }


@pytest.fixture
def registry(registry: Registry) -> Registry:
    namespaces = lookup("", "v1", "namespaces")
    assert namespaces is not None
    registry.create(namespaces, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
                    WriteOptions())
    for index in range(7):
        registry.create(PODS, "default", _pod(f"p{index}", "default", index), WriteOptions())
    for index in range(3):
        registry.create(PODS, "other", _pod(f"q{index}", "other", index), WriteOptions())
    # A status write after the creates: stored items need not be in revision order.
    pod = registry.get(PODS, "default", "p2")
    pod["status"] = {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}]}
    registry.update(PODS, "default", "p2", pod, WriteOptions(), subresource="status")
    return registry


def _reference(registry: Registry, namespace: str | None, query: dict[str, str], accept: str) -> bytes:
    """The list body built from decoded records: the form before splicing, encoded the usual way."""
    label_sel = selectors.parse_label_selector(query.get("labelSelector", ""))
    field_sel = selectors.parse_field_selector("Pod", query.get("fieldSelector", ""))
    predicate = None
    if not (label_sel.empty and field_sel.empty):
        def predicate(obj: dict[str, Any]) -> bool:
            return label_sel.matches(objects.labels_of(obj)) and field_sel.matches(obj)
    result = registry.store.list(PODS.storage_prefix(namespace), predicate=predicate,
                                 limit=int(query.get("limit", 0)),
                                 start_after=params.decode_continue(query.get("continue")))
    items = [record.value for record in result.records]
    list_meta: dict[str, Any] = {"resourceVersion": str(result.revision)}
    if result.continue_key:
        list_meta["continue"] = params.encode_continue(result.continue_key, str(result.revision))
        if result.remaining:
            list_meta["remainingItemCount"] = result.remaining
    if accept == TABLE:
        return jsoncodec.dumps(tables.to_table(PODS, items, include_object=query.get("includeObject", "Metadata"),
                                               now=T0, list_meta=list_meta))
    body = {"kind": "PodList", "apiVersion": "v1", "metadata": list_meta, "items": items}
    if accept == YAML:
        return yaml.safe_dump(body, sort_keys=False).encode()
    return jsoncodec.dumps(body)


def _path(namespace: str | None, query: dict[str, str]) -> str:
    base = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    return f"{base}?{urlencode(query)}" if query else base


QUERIES = [
    {},
    {"labelSelector": "shard=1"},
    {"labelSelector": "shard!=1,app=web"},
    {"fieldSelector": "spec.nodeName=node-0"},
    {"labelSelector": "shard in (0,2)", "fieldSelector": "metadata.name!=p3"},
    {"labelSelector": "app=none"},
    {"includeObject": "Object"},
    {"includeObject": "None"},
]


@pytest.mark.parametrize("accept", [JSON, YAML, TABLE])
@pytest.mark.parametrize("namespace", [None, "default"])
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: urlencode(q) or "all")
async def test_a_list_is_the_bytes_decoding_and_reencoding_give(
        client: TestClient, registry: Registry, accept: str, namespace: str | None, query: dict[str, str]) -> None:
    response = await client.get(_path(namespace, query), headers={"Accept": accept})
    assert response.status == 200
    assert await response.read() == _reference(registry, namespace, query, accept)


@pytest.mark.parametrize("accept", [JSON, YAML, TABLE])
@pytest.mark.parametrize("selector", [{}, {"labelSelector": "shard!=1"}], ids=["all", "selector"])
async def test_every_page_is_the_bytes_decoding_and_reencoding_give(
        client: TestClient, registry: Registry, accept: str, selector: dict[str, str]) -> None:
    whole = json.loads(await (await client.get(_path(None, selector))).read())["items"]
    query = {**selector, "limit": "3"}
    names: list[str] = []
    for _ in range(len(whole) + 1):
        response = await client.get(_path(None, query), headers={"Accept": accept})
        body = await response.read()
        assert response.status == 200
        assert body == _reference(registry, None, query, accept)
        page = json.loads(body) if accept != YAML else yaml.safe_load(body)
        listed = page["rows"] if accept == TABLE else page["items"]
        names += [(row["object"] if accept == TABLE else row)["metadata"]["name"] for row in listed]
        token = page["metadata"].get("continue")
        if not token:
            break
        if not selector:  # known only without a selector, as upstream
            assert page["metadata"]["remainingItemCount"] == len(whole) - len(names)
        query = {**query, "continue": token}
    assert names == [item["metadata"]["name"] for item in whole]


async def test_each_listed_item_is_the_bytes_a_get_serves(client: TestClient) -> None:
    body = await (await client.get("/api/v1/pods")).read()
    items = json.loads(body)["items"]
    assert len(items) == 10
    for item in items:
        md = item["metadata"]
        got = await (await client.get(f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}")).read()
        assert got in body  # the GET's exact bytes appear in the list, spliced as stored
        assert json.loads(got) == item


async def test_a_json_list_has_the_kind_version_and_list_metadata_first(client: TestClient,
                                                                         registry: Registry) -> None:
    body = await (await client.get("/api/v1/namespaces/default/pods?limit=2")).read()
    doc = json.loads(body)
    assert list(doc) == ["kind", "apiVersion", "metadata", "items"]
    assert doc["kind"] == "PodList" and doc["apiVersion"] == "v1"
    assert doc["metadata"]["resourceVersion"] == str(registry.store.current_revision())
    assert doc["metadata"]["remainingItemCount"] == 5
    assert params.decode_continue(doc["metadata"]["continue"]) == PODS.storage_key("default", "p1")


async def test_an_empty_list_is_valid_json(client: TestClient) -> None:
    body = await (await client.get("/api/v1/namespaces/empty/pods")).read()
    assert json.loads(body)["items"] == []
    assert body.endswith(b',"items":[]}')


async def test_an_item_stored_by_the_older_ascii_codec_is_served_as_a_get_serves_it(
        client: TestClient, registry: Registry) -> None:
    # Before the shared codec, the store wrote json.dumps' ASCII escapes (\u00e9 for é).
    store = registry.store
    assert isinstance(store, MemoryStore)
    key = PODS.storage_key("default", "p1")
    current = store._current[key]
    legacy = json.dumps(jsoncodec.loads(current.text), separators=(",", ":"))
    assert legacy != current.text and "\\u00e9" in legacy
    store._current[key] = dataclasses.replace(current, text=legacy)
    got = await (await client.get("/api/v1/namespaces/default/pods/p1")).read()
    body = await (await client.get("/api/v1/namespaces/default/pods")).read()
    assert got in body
    assert body == _reference(registry, "default", {}, JSON)
