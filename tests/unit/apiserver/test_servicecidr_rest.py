"""networking.k8s.io/v1 ServiceCIDR over HTTP (the real app on the in-memory store): discovery,
the strategy's status/spec split, 422s in upstream's words, the NAME/CIDRS/AGE table, watch."""
from __future__ import annotations

import asyncio
import datetime as dt
import json

from aiohttp.test_utils import TestClient

from svcnet.api.resources import lookup
from svcnet.apiserver import printers
from svcnet.apiserver.openapi import openapi_v3_document

BASE = "/apis/networking.k8s.io/v1/servicecidrs"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
READY = {"type": "Ready", "status": "True", "reason": "", "message": "set by hand",
         "lastTransitionTime": "2026-11-27T08:00:00Z"}


def service_cidr(name: str, *cidrs: str, **extra: object) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": name},
            "spec": {"cidrs": list(cidrs)}, **extra}


async def test_discovery_lists_servicecidrs_cluster_scoped_with_status(client: TestClient) -> None:
    doc = await (await client.get("/apis/networking.k8s.io/v1")).json()
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["servicecidrs"]["kind"] == "ServiceCIDR"
    assert by_name["servicecidrs"]["namespaced"] is False
    assert by_name["servicecidrs/status"]["verbs"] == ["get", "patch", "update"]
    groups = await (await client.get("/apis")).json()
    assert "networking.k8s.io" in [g["name"] for g in groups["groups"]]


def test_openapi_describes_the_kind_with_upstreams_list_semantics() -> None:
    schemas = openapi_v3_document("apis/networking.k8s.io/v1")["components"]["schemas"]
    assert schemas["io.k8s.api.networking.v1.ServiceCIDRSpec"]["properties"]["cidrs"][
        "x-kubernetes-list-type"] == "atomic"
    conditions = schemas["io.k8s.api.networking.v1.ServiceCIDRStatus"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["x-kubernetes-patch-strategy"] == "merge"


async def test_create_drops_a_status_sent_with_the_object(client: TestClient) -> None:
    resp = await client.post(BASE, json=service_cidr("extra", "10.100.0.0/16", status={"conditions": [READY]}))
    assert resp.status == 201
    body = await resp.json()
    assert body["status"] == {}
    assert "namespace" not in body["metadata"]


async def test_main_resource_update_keeps_status_and_status_update_keeps_spec(client: TestClient) -> None:
    created = await (await client.post(BASE, json=service_cidr("extra", "10.100.0.0/16"))).json()
    with_status = {**created, "status": {"conditions": [READY]}}
    resp = await client.put(f"{BASE}/extra/status", json={**with_status, "spec": {"cidrs": ["10.200.0.0/16"]}})
    assert resp.status == 200
    after_status = await resp.json()
    assert after_status["status"]["conditions"][0]["message"] == "set by hand"
    assert after_status["spec"]["cidrs"] == ["10.100.0.0/16"]

    relabelled = {**after_status, "metadata": {**after_status["metadata"], "labels": {"a": "b"}},
                  "status": {}}
    after_update = await (await client.put(f"{BASE}/extra", json=relabelled)).json()
    assert after_update["metadata"]["labels"] == {"a": "b"}
    assert after_update["status"]["conditions"][0]["message"] == "set by hand"


async def test_a_put_does_not_create(client: TestClient) -> None:
    resp = await client.put(f"{BASE}/missing", json=service_cidr("missing", "10.100.0.0/16"))
    assert resp.status == 404


async def test_invalid_objects_are_422_with_upstreams_causes_and_nothing_stored(client: TestClient) -> None:
    resp = await client.post(BASE, json=service_cidr("bad", "10.0.0.0/24", "10.1.0.0/24"))
    assert resp.status == 422
    status = await resp.json()
    assert status["reason"] == "Invalid"
    assert status["details"] == {"name": "bad", "group": "networking.k8s.io", "kind": "ServiceCIDR", "causes": [{
        "reason": "FieldValueInvalid", "field": "spec.cidrs",
        "message": 'Invalid value: []string{"10.0.0.0/24", "10.1.0.0/24"}: may specify no more than one IP '
                   'for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64'}]}
    assert status["message"].startswith('ServiceCIDR.networking.k8s.io "bad" is invalid: spec.cidrs: ')
    assert (await client.get(f"{BASE}/bad")).status == 404


async def test_changing_a_cidr_is_refused_and_adding_the_other_family_accepted(client: TestClient) -> None:
    created = await (await client.post(BASE, json=service_cidr("extra", "10.100.0.0/16"))).json()
    moved = {**created, "spec": {"cidrs": ["10.101.0.0/16"]}}
    resp = await client.put(f"{BASE}/extra", json=moved)
    assert resp.status == 422
    assert (await resp.json())["details"]["causes"][0]["message"] == (
        'Invalid value: "10.101.0.0/16": field is immutable')
    dual = {**created, "spec": {"cidrs": ["10.100.0.0/16", "fd00:100::/64"]}}
    resp = await client.put(f"{BASE}/extra", json=dual)
    assert resp.status == 200
    assert (await resp.json())["spec"]["cidrs"] == ["10.100.0.0/16", "fd00:100::/64"]


async def test_get_as_table_prints_name_cidrs_age(client: TestClient) -> None:
    await client.post(BASE, json=service_cidr("extra", "10.100.0.0/16", "fd00:100::/64"))
    table = await (await client.get(BASE, headers={"Accept": TABLE})).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "CIDRs", "Age"]
    assert table["rows"][0]["cells"] == ["extra", "10.100.0.0/16,fd00:100::/64", "0s"]  # the fixture's clock


def test_printer_joins_cidrs_and_tolerates_a_missing_spec() -> None:
    res = lookup("networking.k8s.io", "v1", "servicecidrs")
    now = dt.datetime(2026, 11, 27, 8, 0, 30, tzinfo=dt.UTC)
    obj = {"metadata": {"name": "kubernetes", "creationTimestamp": "2026-11-27T08:00:00Z"},
           "spec": {"cidrs": ["10.96.0.0/12", "fd00:10:96::/112"]}}
    assert printers.row_cells(res, obj, now) == ["kubernetes", "10.96.0.0/12,fd00:10:96::/112", "30s"]
    assert printers.row_cells(res, {"metadata": {"name": "x"}}, now)[:2] == ["x", ""]


async def test_watch_streams_servicecidr_events(client: TestClient) -> None:
    listed = await (await client.get(BASE)).json()
    resp = await client.get(f"{BASE}?watch=1&resourceVersion={listed['metadata']['resourceVersion']}")
    await client.post(BASE, json=service_cidr("extra", "10.100.0.0/16"))
    line = await asyncio.wait_for(resp.content.readline(), 30)
    event = json.loads(line)
    assert event["type"] == "ADDED"
    assert event["object"]["kind"] == "ServiceCIDR"
    assert event["object"]["spec"]["cidrs"] == ["10.100.0.0/16"]
    resp.close()
