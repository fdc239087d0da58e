"""Service-account tokens through a real `svcnet apiserver` with the real kubectl: `kubectl create
token` (its protobuf TokenRequest), the token as a bearer credential whose user RBAC decides
about, the 401 of an expired or foreign-audience token, TokenReview, pod-bound tokens, the OIDC
discovery documents and a signing key kept across restarts."""
from __future__ import annotations

import base64
import json
import os
import stat
import uuid

import pytest
from cryptography.hazmat.primitives import serialization

from svcnet.core import satoken
from tests.integration.apiserver_harness import kubectl_available
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not on PATH")]

BOT = "system:serviceaccount:default:bot"
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


def _payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _create_token(apiserver, *args: str) -> str:
    token = apiserver.kubectl("create", "token", "bot", *args).stdout.strip()
    assert token.count(".") == 2, token
    return token


def test_a_created_token_is_the_service_account_and_rbac_decides_for_it(apiserver):
    apiserver.kubectl("create", "sa", "bot")
    token = _create_token(apiserver)
    whoami = apiserver.kubectl("auth", "whoami", f"--token={token}").stdout
    assert BOT in whoami
    assert "[system:serviceaccounts system:serviceaccounts:default system:authenticated]" in whoami

    denied = apiserver.kubectl("get", "pods", f"--token={token}", check=False)
    assert denied.returncode == 1
    assert f'User "{BOT}" cannot list resource "pods"' in denied.stderr

    apiserver.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    apiserver.kubectl("create", "rolebinding", "bot-reads-pods", "--role=pod-reader", "--serviceaccount=default:bot")
    assert apiserver.kubectl("get", "pods", f"--token={token}").returncode == 0
    status, _ = apiserver.request("GET", "/api/v1/namespaces/default/pods", token=token)
    assert status == 200


def test_the_tokens_claims_are_upstreams(apiserver):
    apiserver.kubectl("create", "sa", "bot")
    sa = apiserver.kubectl_json("get", "sa", "bot")
    claims = _payload(_create_token(apiserver, "--duration=10m"))
    assert claims["iss"] == claims["aud"][0] == satoken.DEFAULT_ISSUER
    assert claims["sub"] == BOT
    assert claims["exp"] - claims["iat"] == 600
    assert claims["nbf"] == claims["iat"]
    assert str(uuid.UUID(claims["jti"])) == claims["jti"]
    assert claims["kubernetes.io"] == {"namespace": "default",
                                       "serviceaccount": {"name": "bot", "uid": sa["metadata"]["uid"]}}


def test_an_expired_or_foreign_audience_token_is_401(apiserver):
    apiserver.kubectl("create", "sa", "bot")
    foreign = _create_token(apiserver, "--audience=vault")
    assert _payload(foreign)["aud"] == ["vault"]
    assert apiserver.request("GET", "/api/v1/namespaces/default/pods", token=foreign)[0] == 401
    refused = apiserver.kubectl("auth", "whoami", f"--token={foreign}", check=False)
    assert refused.returncode == 1
    assert "Unauthorized" in refused.stderr

    # A token expired two minutes ago (past the minute of leeway), signed with the server's own key.
    key = serialization.load_pem_private_key((apiserver.data_dir / "pki" / "sa.key").read_bytes(), None)
    sa = apiserver.kubectl_json("get", "sa", "bot")
    now = int(_payload(foreign)["iat"])
    stale = satoken.claims(sa, now - 3600 - 120, 3600, [satoken.DEFAULT_ISSUER], "j")
    expired = satoken.sign(stale, key)
    assert apiserver.request("GET", "/api/v1/namespaces/default/pods", token=expired)[0] == 401

    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": expired}}
    status, body = apiserver.request("POST", REVIEWS, review)
    assert status == 201
    assert body["status"] == {"user": {}, "error": "[invalid bearer token, service account token has expired]"}


def test_token_review_authenticates_a_token_for_its_audiences(apiserver):
    apiserver.kubectl("create", "sa", "bot")
    sa = apiserver.kubectl_json("get", "sa", "bot")
    token = _create_token(apiserver, "--audience=vault")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": token, "audiences": ["vault", "other"]}}
    status, body = apiserver.request("POST", REVIEWS, review)
    assert status == 201
    st = body["status"]
    assert st["authenticated"] is True
    assert st["audiences"] == ["vault"]
    assert st["user"]["username"] == BOT
    assert st["user"]["uid"] == sa["metadata"]["uid"]
    assert st["user"]["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={_payload(token)['jti']}"]

    review["spec"] = {"token": token}  # no audiences: the API server's own, which vault's token lacks
    st = apiserver.request("POST", REVIEWS, review)[1]["status"]
    assert st["error"] == (f'[invalid bearer token, token audiences ["vault"] is invalid for the target audiences '
                           f'["{satoken.DEFAULT_ISSUER}"]]')
    assert "authenticated" not in st


def test_a_pod_bound_token_carries_the_pod_and_dies_with_it(apiserver):
    apiserver.kubectl("create", "sa", "bot")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
           "spec": {"serviceAccountName": "bot", "containers": [{"name": "c", "image": "busybox"}]}}
    apiserver.kubectl("create", "-f", "-", input=json.dumps(pod))
    uid = apiserver.kubectl_json("get", "pod", "web")["metadata"]["uid"]
    token = _create_token(apiserver, "--bound-object-kind=Pod", "--bound-object-name=web")
    assert _payload(token)["kubernetes.io"]["pod"] == {"name": "web", "uid": uid}
    whoami = apiserver.kubectl("auth", "whoami", f"--token={token}", "-o", "json").stdout
    extra = json.loads(whoami)["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["web"]
    assert extra["authentication.kubernetes.io/pod-uid"] == [uid]

    apiserver.kubectl("delete", "pod", "web", "--grace-period=0", "--force")
    assert apiserver.request("GET", "/apis/authentication.k8s.io/v1", token=token)[0] == 401

    missing = apiserver.kubectl("create", "token", "bot", "--bound-object-kind=Pod", "--bound-object-name=web",
                                check=False)
    assert missing.returncode == 1
    assert 'pods "web" not found' in missing.stderr


def test_discovery_documents_and_the_key_kept_across_restarts(apiserver):
    key_path = apiserver.data_dir / "pki" / "sa.key"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    apiserver.kubectl("create", "sa", "bot")
    token = _create_token(apiserver)
    status, config = apiserver.request("GET", "/.well-known/openid-configuration", token=token)
    assert status == 200
    assert config["issuer"] == satoken.DEFAULT_ISSUER
    assert config["jwks_uri"].endswith("/openid/v1/jwks")
    status, jwks = apiserver.request("GET", "/openid/v1/jwks", token=token)
    assert status == 200
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert [k["kid"] for k in jwks["keys"]] == [header["kid"]]

    before = key_path.read_bytes()
    apiserver.stop()
    apiserver.start()
    assert key_path.read_bytes() == before
    assert BOT in apiserver.kubectl("auth", "whoami", f"--token={token}").stdout


# ---- Secret-based tokens: the tokens controller fills them, the API server accepts them


def test_a_service_account_token_secret_gets_a_long_lived_token_that_authenticates(control_plane):
    apiserver = control_plane
    apiserver.kubectl("create", "sa", "bot")
    apiserver.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Secret
metadata:
  name: bot-token
  annotations: {kubernetes.io/service-account.name: bot}
type: kubernetes.io/service-account-token
""")
    secret = wait_for(lambda: (s := apiserver.kubectl_json("get", "secret", "bot-token")).get("data", {}).get("token")
                      and s, timeout=30, what="the tokens controller to fill bot-token")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert base64.b64decode(secret["data"]["namespace"]) == b"default"
    assert base64.b64decode(secret["data"]["ca.crt"]) == (apiserver.data_dir / "pki" / "ca.crt").read_bytes()
    assert _payload(token)["iss"] == satoken.LEGACY_ISSUER and "exp" not in _payload(token)

    assert BOT in apiserver.kubectl("auth", "whoami", f"--token={token}").stdout
    labels = apiserver.kubectl_json("get", "secret", "bot-token")["metadata"].get("labels") or {}
    assert satoken.LAST_USED_LABEL in labels  # stamped with the day of its use

    # Marked invalid (as the legacy token cleaner does): refused; the label removed: accepted again.
    apiserver.kubectl("label", "secret", "bot-token", f"{satoken.INVALID_SINCE_LABEL}=2026-01-01")
    assert apiserver.kubectl("auth", "whoami", f"--token={token}", check=False).returncode == 1
    apiserver.kubectl("label", "secret", "bot-token", f"{satoken.INVALID_SINCE_LABEL}-")
    assert BOT in apiserver.kubectl("auth", "whoami", f"--token={token}").stdout

    # The Secret deleted: the token is dead at once.
    apiserver.kubectl("delete", "secret", "bot-token")
    refused = apiserver.kubectl("auth", "whoami", f"--token={token}", check=False)
    assert refused.returncode == 1 and "Unauthorized" in refused.stderr


def test_a_token_secret_whose_account_is_missing_is_deleted(control_plane):
    control_plane.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Secret
metadata:
  name: nobody-token
  annotations: {kubernetes.io/service-account.name: nobody}
type: kubernetes.io/service-account-token
""")
    wait_for(lambda: control_plane.kubectl("get", "secret", "nobody-token", check=False).returncode == 1,
             timeout=30, what="the orphaned token Secret deleted")
