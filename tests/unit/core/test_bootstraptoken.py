"""Bootstrap tokens: their form, the authenticator's decision over the Secret, and cluster-info's signatures."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest

from svcnet.core import bootstraptoken as bt

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
TOKEN = bt.Token("abcdef", "0123456789abcdef")


def _secret(token: bt.Token = TOKEN, **overrides: str | None) -> dict:
    """The Secret as the API stores it (data base64), from what `svcnet token create` writes."""
    body = bt.secret_body(token, NOW, dt.timedelta(hours=1))
    data = {**body["stringData"], **overrides}
    return {"apiVersion": "v1", "kind": "Secret", "type": bt.SECRET_TYPE, "metadata": dict(body["metadata"]),
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items() if v is not None}}


@pytest.mark.parametrize(("text", "parsed"), [
    ("abcdef.0123456789abcdef", TOKEN),
    ("ABCDEF.0123456789abcdef", None),  # upper case is not the form
    ("abcde.0123456789abcdef", None),
    ("abcdef.0123456789abcde", None),
    ("abcdef0123456789abcdef", None),
    ("abcdef.0123456789abcdef\n", None),
    ("eyJhbGciOiJFUzI1NiJ9.e30.sig", None),  # a JWT: another authenticator's
])
def test_only_the_bootstrap_form_is_a_bootstrap_token(text: str, parsed: bt.Token | None) -> None:
    assert bt.parse(text) == parsed


def test_generated_tokens_have_the_form_and_differ() -> None:
    tokens = {str(bt.generate()) for _ in range(20)}
    assert len(tokens) == 20
    assert all(bt.parse(t) is not None for t in tokens)


def test_the_secret_is_kubeadms() -> None:
    body = bt.secret_body(TOKEN, NOW, dt.timedelta(hours=24), description="for node-3")
    assert body["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert body["type"] == "bootstrap.kubernetes.io/token"
    assert body["stringData"] == {
        "token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2026-12-08T12:00:00Z",
        "description": "for node-3", "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    assert "expiration" not in bt.secret_body(TOKEN, NOW, None)["stringData"]  # --ttl 0: never


def test_a_valid_token_is_system_bootstrap_in_the_bootstrappers_groups() -> None:
    user = bt.authenticate(TOKEN, _secret(), NOW)
    assert user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                           "system:authenticated")


@pytest.mark.parametrize(("secret", "why"), [
    (None, "no secret of name bootstrap-token-abcdef"),
    (_secret(**{"token-secret": "fedcba9876543210"}), "invalid value for key token-secret"),
    (_secret(**{"token-id": "zzzzzz"}), "invalid value for key token-id"),
    (_secret(expiration="2026-12-07T11:59:59Z"), "has expired"),
    (_secret(expiration="tomorrow"), "has expired"),  # unparseable counts as expired, as upstream
    (_secret(**{"usage-bootstrap-authentication": None}), "not marked usage-bootstrap-authentication=true"),
    (_secret(**{"usage-bootstrap-authentication": "yes"}), "not marked usage-bootstrap-authentication=true"),
    (_secret(**{"auth-extra-groups": "system:masters"}), "bootstrap group 'system:masters' is invalid"),
    ({**_secret(), "type": "Opaque"}, "invalid type"),
    ({**_secret(), "metadata": {"name": "bootstrap-token-abcdef", "deletionTimestamp": "2026-12-07T00:00:00Z"}},
     "deleted"),
])
def test_a_token_its_secret_does_not_back_is_refused(secret: dict | None, why: str) -> None:
    with pytest.raises(bt.TokenError, match=why):
        bt.authenticate(TOKEN, secret, NOW)


def test_the_token_is_refused_at_its_expiration_and_accepted_just_before() -> None:
    secret = _secret(expiration="2026-12-07T12:00:01Z")
    assert bt.authenticate(TOKEN, secret, NOW).name == "system:bootstrap:abcdef"
    with pytest.raises(bt.TokenError):
        bt.authenticate(TOKEN, secret, NOW + dt.timedelta(seconds=1))


def test_the_detached_signature_is_an_hs256_jws_keyed_by_the_padded_secret() -> None:
    content = "apiVersion: v1\nkind: Config\n"
    signature = bt.detached_signature(content, TOKEN)
    header, payload, mac = signature.split(".")
    assert payload == ""  # detached (RFC 7515 appendix F)
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "kid": "abcdef"}
    body = base64.urlsafe_b64encode(content.encode()).rstrip(b"=").decode()
    expected = hmac.new(b"0123456789abcdef" + b"\0" * 16, f"{header}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)) == expected
    assert bt.signature_valid(signature, content, TOKEN)
    assert not bt.signature_valid(signature, content + "x", TOKEN)
    assert not bt.signature_valid(signature, content, bt.Token("abcdef", "0123456789abcdee"))


def test_cluster_info_carries_exactly_the_signatures_of_unexpired_signing_tokens() -> None:
    other = bt.Token("ghijkl", "0123456789abcdef")
    expired = bt.Token("mnopqr", "0123456789abcdef")
    secrets = [_secret(), _secret(other, **{"usage-bootstrap-signing": None}),
               _secret(expired, expiration="2026-12-07T00:00:00Z")]
    tokens = bt.signing_tokens(secrets, NOW)
    assert tokens == [TOKEN]
    data = bt.signed_data({"kubeconfig": "k", "jws-kubeconfig-mnopqr": "stale"}, tokens)
    assert data == {"kubeconfig": "k", "jws-kubeconfig-abcdef": bt.detached_signature("k", TOKEN)}
