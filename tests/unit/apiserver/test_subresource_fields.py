"""Unknown fields in subresource bodies (scale, binding, status), through the real aiohttp app
over the registry as the server builds it: warned about (Warn), refused (Strict), never stored."""
from __future__ import annotations

import json

import pytest

from svcnet.api.resources import lookup
from svcnet.apiserver.registry import Registry, WriteOptions

PODS = lookup("", "v1", "pods")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
SCALE_PATH = "/apis/apps/v1/namespaces/default/deployments/web/scale"
POD_PATH = "/api/v1/namespaces/default/pods/p"


@pytest.fixture
def registry(registry: Registry) -> Registry:
    """The served registry (conftest) with a Deployment and an unscheduled Pod."""
    reg = registry
    labels = {"app": "web"}
    reg.create(DEPLOYMENTS, "default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}, WriteOptions())
    reg.create(PODS, "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                 "spec": {"containers": [{"name": "main", "image": "busybox"}]}},
               WriteOptions())
    return reg


def warnings_of(resp) -> list[str]:
    return [json.loads(h.split(" ", 2)[2]) for h in resp.headers.getall("Warning", [])]


def scale_body(**extra: object) -> bytes:
    return json.dumps({"apiVersion": "autoscaling/v1", "kind": "Scale",
                       "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"replicas": 3, **extra}}).encode()


async def test_scale_put_warns_about_an_unknown_field_and_applies_the_replicas(client, registry):
    resp = await client.put(SCALE_PATH, data=scale_body(bogusField=1),
                            headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert warnings_of(resp) == ['unknown field "spec.bogusField"']
    stored = registry.get(DEPLOYMENTS, "default", "web")
    assert stored["spec"]["replicas"] == 3 and "bogusField" not in stored["spec"]


async def test_scale_patch_with_strict_is_refused_naming_the_field(client, registry):
    before = registry.get(DEPLOYMENTS, "default", "web")
    resp = await client.patch(f"{SCALE_PATH}?fieldValidation=Strict", data=b'{"spec":{"replicas":5,"extra":1}}',
                              headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status == 400
    assert (await resp.json())["message"].endswith('strict decoding error: unknown field "spec.extra"')
    assert registry.get(DEPLOYMENTS, "default", "web") == before


async def test_binding_body_unknown_fields_are_warned_about_and_not_stored(client, registry):
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"kind": "Node", "name": "n1", "bogus": True}, "extra": 1}
    resp = await client.post(f"{POD_PATH}/binding", json=body)
    assert resp.status == 201
    assert warnings_of(resp) == ['unknown field "target.bogus"', 'unknown field "extra"']
    assert registry.get(PODS, "default", "p")["spec"]["nodeName"] == "n1"


async def test_binding_with_strict_is_refused_and_leaves_the_pod_unbound(client, registry):
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"kind": "Node", "name": "n1"}, "extra": 1}
    resp = await client.post(f"{POD_PATH}/binding?fieldValidation=Strict", json=body)
    assert resp.status == 400
    assert 'unknown field "extra"' in (await resp.json())["message"]
    assert "nodeName" not in registry.get(PODS, "default", "p")["spec"]


async def test_status_merge_patch_prunes_an_unknown_status_field(client, registry):
    resp = await client.patch(f"{POD_PATH}/status", data=b'{"status":{"on_create":true,"message":"hi"}}',
                              headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status == 200
    assert warnings_of(resp) == ['unknown field "status.on_create"']
    status = registry.get(PODS, "default", "p")["status"]
    assert status["message"] == "hi" and "on_create" not in status
