"""The kubelet API's server: authentication and authorization as kubelet's webhook mode, and its answers.

The auth is exercised with a fake API client answering TokenReviews and SubjectAccessReviews; the pods
come from a fake informer, their files from a runtime root with no sandboxes (real sandboxes are
tests/integration/test_kubectl_exec.py's).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization

from svcnet.agent.kubeletapi import request_attributes
from svcnet.agent.kubeletauth import Caller, WebhookAuth, certificate_caller
from svcnet.agent.kubeletserver import KubeletApi
from svcnet.agent.podaccess import PodFiles
from svcnet.core import pki
from svcnet.runtime.containers import Runtime

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
       "spec": {"nodeName": "n1", "containers": [{"name": "main"}]}}


class FakeApi:
    """TokenReview: token "good" is alice in devs; SubjectAccessReview: alice may get nodes/proxy only."""

    def __init__(self) -> None:
        self.reviews: list[str] = []

    async def create(self, resource: Any, namespace: str | None, body: dict) -> dict:
        self.reviews.append(body["kind"])
        spec = body["spec"]
        if body["kind"] == "TokenReview":
            ok = spec["token"] == "good"
            return {"status": {"authenticated": ok, **({"user": {"username": "alice", "groups": ["devs"]}}
                                                       if ok else {})}}
        attrs = spec["resourceAttributes"]
        allowed = (spec["user"], attrs["verb"], attrs["subresource"], attrs["name"]) == ("alice", "get", "proxy", "n1")
        return {"status": {"allowed": allowed}}


class Pods:
    def get(self, namespace: str | None, name: str) -> dict | None:
        return POD if (namespace, name) == ("default", "p") else None

    def list(self) -> list[dict]:
        return [POD]


@pytest.fixture
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def client(tmp_path: Path, fake_api: FakeApi) -> AsyncIterator[TestClient]:
    app = KubeletApi("n1", Pods(), PodFiles(Runtime(tmp_path)), WebhookAuth(fake_api)).make_app()
    async with TestClient(TestServer(app)) as c:
        yield c


GOOD = {"Authorization": "Bearer good"}


async def test_a_request_without_credentials_is_unauthorized(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert (resp.status, await resp.text()) == (401, "Unauthorized")


async def test_an_unknown_token_is_unauthorized(client: TestClient) -> None:
    resp = await client.get("/healthz", headers={"Authorization": "Bearer bad"})
    assert resp.status == 401


async def test_a_caller_without_the_permission_is_forbidden_with_kubelets_text(client: TestClient) -> None:
    resp = await client.post("/exec/default/p/main?command=true&stdout=true", headers=GOOD)
    assert (resp.status, await resp.text()) == (
        403, "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy)")


async def test_health_and_pods_answer_an_authorized_caller(client: TestClient) -> None:
    assert (await (await client.get("/healthz", headers=GOOD)).text()) == "ok"
    pods = await (await client.get("/pods", headers=GOOD)).json()
    assert (pods["kind"], [p["metadata"]["name"] for p in pods["items"]]) == ("PodList", ["p"])


async def test_reviews_are_cached(client: TestClient, fake_api: FakeApi) -> None:
    for _ in range(3):
        assert (await client.get("/healthz", headers=GOOD)).status == 200
    assert fake_api.reviews == ["TokenReview", "SubjectAccessReview"]


@pytest.mark.parametrize(("path", "status", "text"), [
    ("/containerLogs/default/nope/main", 404, 'pod "nope" does not exist\n'),
    ("/containerLogs/default/p/other", 404, 'container "other" not found in pod "p"\n'),
    ("/containerLogs/default/p/main", 400, 'container "main" in pod "p" is waiting to start: ContainerCreating'),
    ("/containerLogs/default/p/main?tailLines=x", 400, "invalid tailLines: 'x'\n"),
    ("/nope", 404, "404 page not found\n"),
])
async def test_container_logs_answers_as_kubelet(client: TestClient, path: str, status: int, text: str) -> None:
    resp = await client.get(path, headers=GOOD)
    assert (resp.status, await resp.text()) == (status, text)


async def test_exec_in_a_container_that_does_not_run_is_refused_before_any_upgrade(client: TestClient) -> None:
    resp = await client.get("/exec/default/p/main?command=true&stdout=true", headers=GOOD)
    assert (resp.status, await resp.text()) == (500, 'container not found ("main")')


async def test_exec_without_a_stream_is_a_bad_request(client: TestClient) -> None:
    resp = await client.get("/exec/default/p/main?command=true", headers=GOOD)
    assert (resp.status, await resp.text()) == (400, "you must specify at least 1 of stdin, stdout, stderr")


def test_a_client_certificate_names_its_user_and_groups() -> None:
    ca_key = pki.new_key()
    ca = pki.Authority(pki.issue_ca("ca", ca_key), ca_key)
    client = pki.issue_client(ca, "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",),
                              pki.new_key().public_key())
    serving = pki.issue_serving(ca, "node", pki.new_key().public_key(), ips=("10.0.0.1",))
    der = client.public_bytes(serialization.Encoding.DER)
    assert certificate_caller(der) == Caller("kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",))
    assert certificate_caller(serving.public_bytes(serialization.Encoding.DER)) is None  # not for clients
    assert certificate_caller(None) is None


async def test_a_denial_is_cached_for_less_time_than_an_allowance(fake_api: FakeApi) -> None:
    now = [0.0]
    auth = WebhookAuth(fake_api, clock=lambda: now[0])
    alice = Caller("alice", ("devs",))
    allowed, denied = request_attributes("GET", "/healthz", "n1"), request_attributes("POST", "/exec/a/b/c", "n1")
    assert await auth.authorize(alice, allowed) and not await auth.authorize(alice, denied)
    now[0] = 60.0  # past the 30 s of a denial, within the 5 min of an allowance
    await auth.authorize(alice, allowed)
    await auth.authorize(alice, denied)
    assert fake_api.reviews == ["SubjectAccessReview"] * 3
