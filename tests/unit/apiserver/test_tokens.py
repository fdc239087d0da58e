"""serviceaccounts/token, the service-account bearer authenticator and TokenReview through the
real aiohttp app, at the registry fixture's fixed clock."""
from __future__ import annotations

import base64
import json
import stat
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from svcnet.api.resources import lookup
from svcnet.apiserver import authz, discovery
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.credentials import ensure_service_account_keys
from svcnet.apiserver.daemon import external_address
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.config import ApiServerConfig
from svcnet.core import satoken
from tests.unit.apiserver.conftest import T0

TOKEN = "secret-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
TOKEN_PATH = "/api/v1/namespaces/default/serviceaccounts/bot/token"
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


def _create(registry: Registry, plural: str, obj: dict, namespace: str | None = "default") -> dict:
    res = lookup("", "v1", plural)
    assert res is not None
    return registry.create(res, namespace, obj, WriteOptions())


@pytest.fixture
async def api(registry: Registry) -> AsyncIterator[TestClient]:
    server = ApiServer(registry, ServerSettings(token=TOKEN))
    authz.ensure_bootstrap_policy(registry)
    _create(registry, "serviceaccounts", {"metadata": {"name": "bot"}})
    async with TestClient(TestServer(server.make_app(authenticate=True))) as c:
        yield c


async def _request_token(api: TestClient, spec: dict, path: str = TOKEN_PATH):
    resp = await api.post(path, headers=ADMIN, json={"apiVersion": "authentication.k8s.io/v1",
                                                     "kind": "TokenRequest", "spec": spec})
    return resp.status, await resp.json()


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def test_a_token_request_is_defaulted_and_answered(api: TestClient) -> None:
    status, body = await _request_token(api, {})
    assert status == 201
    assert body["kind"] == "TokenRequest"
    assert body["metadata"] == {"name": "bot", "namespace": "default", "creationTimestamp": None}
    assert body["spec"] == {"audiences": [satoken.DEFAULT_ISSUER], "expirationSeconds": 3600}
    assert body["status"]["expirationTimestamp"] == "2026-11-27T09:00:00Z"  # the fixed clock + an hour
    claims = _claims(body["status"]["token"])
    assert claims["exp"] == int(T0.timestamp()) + 3600


@pytest.mark.parametrize(("seconds", "message"), [
    (599, "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"),
    (2**32 + 1, "spec.expirationSeconds: Invalid value: 4294967297: may not specify a duration larger than "
                "2^32 seconds"),
])
async def test_an_expiration_out_of_range_is_invalid(api: TestClient, seconds: int, message: str) -> None:
    status, body = await _request_token(api, {"expirationSeconds": seconds})
    assert status == 422
    assert body["message"] == f'TokenRequest.authentication.k8s.io "bot" is invalid: {message}'


async def test_a_name_in_the_body_must_be_the_urls(api: TestClient) -> None:
    resp = await api.post(TOKEN_PATH, headers=ADMIN, json={"kind": "TokenRequest", "metadata": {"name": "other"},
                                                           "spec": {}})
    assert resp.status == 422
    assert (await resp.json())["message"] == ('TokenRequest.authentication.k8s.io "bot" is invalid: metadata.name: '
                                              'Invalid value: "other": must match the service account name if '
                                              'specified')


async def test_a_token_for_a_missing_account_or_bound_object_is_404(api: TestClient) -> None:
    status, body = await _request_token(api, {}, TOKEN_PATH.replace("/bot/", "/ghost/"))
    assert (status, body["message"]) == (404, 'serviceaccounts "ghost" not found')
    status, body = await _request_token(api, {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}})
    assert (status, body["message"]) == (404, 'pods "p" not found')


async def test_binding_checks_kind_uid_and_the_pods_account(api: TestClient, registry: Registry) -> None:
    status, body = await _request_token(api, {"boundObjectRef": {"kind": "ConfigMap", "name": "c"}})
    assert (status, body["message"]) == (400, "cannot bind token to object of type ConfigMap")
    _create(registry, "pods", {"metadata": {"name": "other"},
                               "spec": {"containers": [{"name": "c", "image": "i"}]}})
    status, body = await _request_token(api, {"boundObjectRef": {"kind": "Pod", "name": "other"}})
    assert (status, body["message"]) == (400, 'cannot bind token for serviceaccount "bot" to pod running with '
                                              'different serviceaccount name.')
    secret = _create(registry, "secrets", {"metadata": {"name": "s"}})
    status, body = await _request_token(api, {"boundObjectRef": {"kind": "Secret", "name": "s", "uid": "stale"}})
    assert status == 409
    status, body = await _request_token(api, {"boundObjectRef": {"kind": "Secret", "name": "s"}})
    assert _claims(body["status"]["token"])["kubernetes.io"]["secret"] == {
        "name": "s", "uid": secret["metadata"]["uid"]}


async def test_the_token_is_a_bearer_credential_until_its_account_is_gone(api: TestClient,
                                                                          registry: Registry) -> None:
    token = (await _request_token(api, {}))[1]["status"]["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    resp = await api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=bearer, json={})
    assert (await resp.json())["status"]["userInfo"]["username"] == "system:serviceaccount:default:bot"
    assert (await api.get("/api/v1/namespaces/default/pods", headers=bearer)).status == 403
    res = lookup("", "v1", "serviceaccounts")
    assert res is not None
    registry.delete(res, "default", "bot", DeleteOptions())
    assert (await api.get("/api/v1/namespaces/default/pods", headers=bearer)).status == 401


async def test_a_token_review_needs_a_token_and_reports_an_unknown_one(api: TestClient) -> None:
    resp = await api.post(REVIEWS, headers=ADMIN, json={"kind": "TokenReview", "spec": {}})
    assert resp.status == 400
    assert (await resp.json())["message"] == "token is required for TokenReview in authentication"
    resp = await api.post(REVIEWS, headers=ADMIN, json={"kind": "TokenReview", "spec": {"token": "opaque"}})
    assert resp.status == 201
    assert (await resp.json())["status"] == {"user": {}, "error": "[invalid bearer token, token lookup failed]"}


async def test_token_reviews_need_the_create_verb(api: TestClient) -> None:
    token = (await _request_token(api, {}))[1]["status"]["token"]
    resp = await api.post(REVIEWS, headers={"Authorization": f"Bearer {token}"},
                          json={"kind": "TokenReview", "spec": {"token": token}})
    assert resp.status == 403


async def test_a_service_account_reads_the_discovery_documents(api: TestClient) -> None:
    token = (await _request_token(api, {}))[1]["status"]["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    resp = await api.get("/.well-known/openid-configuration", headers=bearer)
    assert resp.status == 200
    assert (await resp.json())["jwks_uri"] == "https://127.0.0.1:6443/openid/v1/jwks"
    resp = await api.get("/openid/v1/jwks", headers=bearer)
    assert resp.headers["Content-Type"] == "application/jwk-set+json"


def test_the_signing_key_is_made_once_0600_and_kept(tmp_path) -> None:
    key, pub = ensure_service_account_keys(tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    first = key.read_bytes()
    pub.unlink()
    assert ensure_service_account_keys(tmp_path) == (key, pub)
    assert key.read_bytes() == first
    assert pub.exists()


def test_discovery_lists_the_token_subresource_and_token_reviews() -> None:
    core = discovery.api_resource_list("", "v1")
    assert core is not None
    token = [r for r in core["resources"] if r["name"] == "serviceaccounts/token"]
    assert token == [{"name": "serviceaccounts/token", "singularName": "", "namespaced": True,
                      "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
                      "verbs": ["create"]}]
    authn = discovery.api_resource_list("authentication.k8s.io", "v1")
    assert authn is not None
    reviews = [r for r in authn["resources"] if r["name"] == "tokenreviews"]
    assert [(r["kind"], r["namespaced"], r["verbs"]) for r in reviews] == [("TokenReview", False, ["create"])]


async def test_token_request_and_review_bodies_of_the_wrong_shape_are_400(api: TestClient) -> None:
    resp = await api.post(TOKEN_PATH, headers=ADMIN, json={"kind": "TokenRequest", "spec": {"audiences": "vault"}})
    assert resp.status == 400
    assert "audiences" in (await resp.json())["message"]
    resp = await api.post(TOKEN_PATH, headers=ADMIN, json={"kind": "TokenRequest", "spec": "x"})
    assert resp.status == 400
    resp = await api.post(REVIEWS, headers=ADMIN, json={"kind": "TokenReview", "spec": {"token": 7}})
    assert resp.status == 400


@pytest.mark.parametrize(("advertise", "bind", "expected"), [
    ("192.0.2.10", "127.0.0.1", "192.0.2.10:6443"),
    (None, "127.0.0.1", "127.0.0.1:6443"),
    ("2001:db8::1", "::", "[2001:db8::1]:6443"),
])
def test_the_jwks_uri_names_the_address_clients_reach(advertise, bind, expected) -> None:
    assert external_address(ApiServerConfig(advertise_address=advertise, bind_address=bind, port=6443)) == expected
