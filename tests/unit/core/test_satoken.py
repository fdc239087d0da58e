"""Service-account token claims, signing and validation with plain objects and a fixed clock."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from svcnet.core import satoken
from svcnet.core.satoken import Binding, Ref, TokenError

NOW = 1_800_000_000
ISSUER = satoken.DEFAULT_ISSUER
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
SA = {"metadata": {"namespace": "team", "name": "bot", "uid": "sa-uid"}}
POD = {"metadata": {"namespace": "team", "name": "web", "uid": "pod-uid"}}
NODE = {"metadata": {"name": "n1", "uid": "node-uid"}}
SECRET = {"metadata": {"namespace": "team", "name": "s", "uid": "secret-uid"}}


def _store(*objs_by_kind: tuple[str, dict]):
    table = {(kind, (o["metadata"].get("namespace") or ""), o["metadata"]["name"]): o for kind, o in objs_by_kind}
    return lambda kind, ns, name: table.get((kind, ns, name))


FULL = _store(("ServiceAccount", SA), ("Pod", POD), ("Node", NODE), ("Secret", SECRET))


def _token(binding: Binding = satoken.UNBOUND, *, aud=(ISSUER,), iat=NOW, seconds=3600, key=KEY, issuer=ISSUER) -> str:
    return satoken.sign(satoken.claims(SA, iat, seconds, list(aud), "the-jti", issuer, binding), key)


def _auth(token: str, *, now=NOW, audiences=(ISSUER,), lookup=FULL):
    return satoken.authenticate(token, [KEY.public_key()], ISSUER, audiences, now, lookup)


def _segment(token: str, i: int) -> dict:
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_claims_are_upstreams_for_an_unbound_token():
    assert satoken.claims(SA, NOW, 600, ["a", "b"], "j") == {
        "aud": ["a", "b"], "exp": NOW + 600, "iat": NOW, "iss": ISSUER, "jti": "j", "nbf": NOW,
        "sub": "system:serviceaccount:team:bot",
        "kubernetes.io": {"namespace": "team", "serviceaccount": {"name": "bot", "uid": "sa-uid"}}}


def test_a_pod_bound_token_names_the_pod_and_its_node():
    private = satoken.claims(SA, NOW, 600, [ISSUER], "j", binding=Binding(
        pod=Ref("web", "pod-uid"), node=Ref("n1", "node-uid")))["kubernetes.io"]
    assert private["pod"] == {"name": "web", "uid": "pod-uid"}
    assert private["node"] == {"name": "n1", "uid": "node-uid"}
    assert "secret" not in private


def test_the_jws_is_es256_with_the_keys_id_and_sorted_compact_claims():
    token = _token()
    header = _segment(token, 0)
    assert header == {"alg": "ES256", "kid": satoken.key_id(KEY.public_key())}
    raw = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    assert raw.startswith(b'{"aud":["https://kubernetes.default.svc.cluster.local"],"exp":')
    assert "=" not in token


def test_a_valid_token_authenticates_as_the_service_account():
    user = _auth(_token()).user()
    assert user.name == "system:serviceaccount:team:bot"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated")
    assert user.uid == "sa-uid"
    assert user.extra == {satoken.EXTRA_CREDENTIAL_ID: ("JTI=the-jti",)}


def test_a_pod_bound_tokens_user_carries_pod_and_node_extras():
    token = _token(Binding(pod=Ref("web", "pod-uid"), node=Ref("n1", "node-uid")))
    extra = _auth(token).user().extra
    assert extra[satoken.EXTRA_POD_NAME] == ("web",)
    assert extra[satoken.EXTRA_POD_UID] == ("pod-uid",)
    assert extra[satoken.EXTRA_NODE_NAME] == ("n1",)
    assert extra[satoken.EXTRA_NODE_UID] == ("node-uid",)


def test_another_keys_signature_is_refused():
    with pytest.raises(TokenError, match="error in cryptographic primitive"):
        _auth(_token(key=OTHER_KEY))


def test_a_tampered_payload_is_refused():
    header, _, sig = _token().split(".")
    forged = satoken.claims({"metadata": {"namespace": "kube-system", "name": "admin", "uid": "x"}},
                            NOW, 3600, [ISSUER], "j")
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="cryptographic primitive"):
        _auth(f"{header}.{body}.{sig}")


def test_expiry_allows_a_minute_of_leeway():
    token = _token(seconds=600)
    assert _auth(token, now=NOW + 600 + 60).name == "bot"
    with pytest.raises(TokenError, match="^service account token has expired$"):
        _auth(token, now=NOW + 600 + 61)


def test_a_token_from_the_future_is_not_valid_yet():
    token = _token(iat=NOW + 120)
    with pytest.raises(TokenError, match="^service account token is not valid yet$"):
        _auth(token)
    assert _auth(token, now=NOW + 60).name == "bot"


def test_the_audience_must_meet_the_target_audiences():
    token = _token(aud=("vault", "other"))
    with pytest.raises(TokenError) as exc:
        _auth(token)
    assert str(exc.value) == (f'token audiences ["vault" "other"] is invalid for the target audiences '
                              f'["{ISSUER}"]')
    assert _auth(token, audiences=("other", "x")).audiences == ("other",)


def test_a_deleted_or_recreated_service_account_invalidates_its_tokens():
    token = _token()
    with pytest.raises(TokenError, match='serviceaccounts "bot" not found'):
        _auth(token, lookup=_store())
    recreated = {"metadata": {**SA["metadata"], "uid": "new-uid"}}
    with pytest.raises(TokenError, match=r"service account UID \(new-uid\) does not match claim \(sa-uid\)"):
        _auth(token, lookup=_store(("ServiceAccount", recreated)))


def test_a_service_account_deleted_more_than_the_leeway_ago_is_refused():
    deleting = {"metadata": {**SA["metadata"], "deletionTimestamp": "2027-01-15T07:58:00Z"}}  # NOW - 2 min
    with pytest.raises(TokenError, match="has been deleted"):
        _auth(_token(), lookup=_store(("ServiceAccount", deleting)))
    just = {"metadata": {**SA["metadata"], "deletionTimestamp": "2027-01-15T07:59:30.5Z"}}
    assert _auth(_token(), lookup=_store(("ServiceAccount", just))).name == "bot"


def test_a_bound_pod_that_is_gone_or_recreated_invalidates_the_token():
    token = _token(Binding(pod=Ref("web", "pod-uid")))
    with pytest.raises(TokenError, match="^service account token has been invalidated$"):
        _auth(token, lookup=_store(("ServiceAccount", SA)))
    recreated = {"metadata": {**POD["metadata"], "uid": "other"}}
    with pytest.raises(TokenError, match=r"pod UID \(other\) does not match service account pod ref claim"):
        _auth(token, lookup=_store(("ServiceAccount", SA), ("Pod", recreated)))


def test_a_bound_secret_or_node_must_still_exist():
    secret_token = _token(Binding(secret=Ref("s", "secret-uid")))
    assert _auth(secret_token).name == "bot"
    with pytest.raises(TokenError, match="invalidated"):
        _auth(secret_token, lookup=_store(("ServiceAccount", SA)))
    node_token = _token(Binding(node=Ref("n1", "node-uid")))
    assert _auth(node_token).node == Ref("n1", "node-uid")
    with pytest.raises(TokenError, match="invalidated"):
        _auth(node_token, lookup=_store(("ServiceAccount", SA)))


def test_only_tokens_of_our_issuer_are_ours():
    assert satoken.is_ours(_token(), ISSUER)
    assert not satoken.is_ours(_token(issuer="https://elsewhere"), ISSUER)
    assert not satoken.is_ours("an-opaque-token", ISSUER)
    assert not satoken.is_ours("a.b.c", ISSUER)


def test_jwks_publishes_the_public_key_that_verifies_tokens():
    (jwk,) = satoken.jwks([KEY.public_key()])["keys"]
    numbers = KEY.public_key().public_numbers()
    assert jwk["kid"] == _segment(_token(), 0)["kid"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    x = int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="), "big")
    assert x == numbers.x


# ---- Secret-based (legacy) tokens


def _legacy_secret(token: str, **labels: str) -> dict:
    return {"metadata": {"namespace": "team", "name": "bot-token", "uid": "st-uid", "labels": labels},
            "type": satoken.TOKEN_SECRET_TYPE, "data": {"token": base64.b64encode(token.encode()).decode()}}


def _legacy_token(sa: dict = SA, key=KEY) -> str:
    return satoken.sign(satoken.legacy_claims(sa, "bot-token"), key)


def _legacy_auth(token: str, secret: dict | None, sa: dict | None = SA, audiences=(ISSUER,)):
    table = {("Secret", "team", "bot-token"): secret, ("ServiceAccount", "team", "bot"): sa}
    return satoken.authenticate_legacy(token, [KEY.public_key()], audiences, (ISSUER,), NOW,
                                       lambda kind, ns, name: table.get((kind, ns, name)))


def test_legacy_claims_name_the_secret_and_the_account_and_never_expire():
    assert satoken.legacy_claims(SA, "bot-token") == {
        "iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:team:bot",
        "kubernetes.io/serviceaccount/namespace": "team", "kubernetes.io/serviceaccount/secret.name": "bot-token",
        "kubernetes.io/serviceaccount/service-account.name": "bot",
        "kubernetes.io/serviceaccount/service-account.uid": "sa-uid"}


def test_a_legacy_token_in_its_secret_authenticates_as_the_account_with_the_apis_audience():
    token = _legacy_token()
    used = _legacy_auth(token, _legacy_secret(token))
    assert (used.info.namespace, used.info.name, used.info.uid, used.info.audiences) == (
        "team", "bot", "sa-uid", (ISSUER,))
    assert used.info.user().name == "system:serviceaccount:team:bot"
    assert used.secret["metadata"]["name"] == "bot-token"


@pytest.mark.parametrize(("secret_for", "sa", "message"), [
    (lambda t: None, SA, "Token has been invalidated"),
    (lambda t: {**_legacy_secret(t), "metadata": {**_legacy_secret(t)["metadata"],
                                                  "deletionTimestamp": "2026-01-01T00:00:00Z"}},
     SA, "Token has been invalidated"),
    (lambda t: _legacy_secret("another token"), SA, "Token does not match server's copy"),
    (lambda t: _legacy_secret(t), None, 'serviceaccounts "bot" not found'),
    (lambda t: _legacy_secret(t), {"metadata": {**SA["metadata"], "uid": "new-uid"}},
     "ServiceAccount UID (new-uid) does not match claim (sa-uid)"),
    (lambda t: _legacy_secret(t, **{satoken.INVALID_SINCE_LABEL: "2026-01-01"}), SA,
     "the token in secret team/bot-token for service account team/bot has been marked invalid"),
])
def test_a_legacy_token_is_refused_with_upstreams_reason(secret_for, sa, message):
    token = _legacy_token()
    with pytest.raises(TokenError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _legacy_auth(token, secret_for(token), sa)


def test_a_legacy_token_signed_by_another_key_or_asked_for_another_audience_is_refused():
    foreign = _legacy_token(key=OTHER_KEY)
    with pytest.raises(TokenError, match="error in cryptographic primitive"):
        _legacy_auth(foreign, _legacy_secret(foreign))
    token = _legacy_token()
    with pytest.raises(TokenError, match="is invalid for the target audiences"):
        _legacy_auth(token, _legacy_secret(token), audiences=("vault",))


def test_a_legacy_token_missing_a_claim_is_refused():
    claims = satoken.legacy_claims(SA, "bot-token")
    del claims["kubernetes.io/serviceaccount/service-account.uid"]
    token = satoken.sign(claims, KEY)
    with pytest.raises(TokenError, match="serviceAccountUID claim is missing"):
        _legacy_auth(token, _legacy_secret(token))


def test_last_use_is_stamped_once_a_day():
    assert satoken.last_used_patch(_legacy_secret("t"), "2026-12-07", "2026-12-08") == {
        "metadata": {"uid": "st-uid", "labels": {satoken.LAST_USED_LABEL: "2026-12-07"}}}
    for already in ("2026-12-07", "2026-12-08"):
        stamped = _legacy_secret("t", **{satoken.LAST_USED_LABEL: already})
        assert satoken.last_used_patch(stamped, "2026-12-07", "2026-12-08") is None
