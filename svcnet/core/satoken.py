"""Service-account tokens: the JWTs kube-apiserver issues for TokenRequest and accepts as
bearer tokens (pkg/serviceaccount/jwt.go and claims.go), as pure functions of their inputs.

Tokens are ES256 JWS in compact form, signed with the API server's P-256 key (kube-apiserver
picks ES256 for an ECDSA P-256 --service-account-signing-key-file). The key id is the
unpadded base64url SHA-256 of the public key's DER, as upstream's keyIDFromPublicKey.
Every check that needs the store (does the ServiceAccount, Pod, Secret or Node still exist
with the uid in the token?) goes through a lookup function, so the rules are testable with
plain objects and a fixed clock.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from svcnet.api.meta import parse_time_or_none
from svcnet.core.rbac.identity import User, service_account_groups, service_account_username

Obj = dict[str, Any]

# kubeadm's default --service-account-issuer; the API server's audience is its issuer.
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ALGORITHM = "ES256"
PRIVATE_CLAIM = "kubernetes.io"
# go-jose's DefaultLeeway: exp and nbf are checked with a minute's tolerance either way.
LEEWAY_SECONDS = 60
# TokenRequest's expirationSeconds: defaulted to an hour, refused under 10 minutes or over 2^32 s.
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
# The user extra keys a service-account token's user carries (apiserver's serviceaccount package).
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
# The go-jose error a token signed by another key gets.
BAD_SIGNATURE = "square/go-jose: error in cryptographic primitive"
INVALIDATED = "service account token has been invalidated"


class TokenError(Exception):
    """The token is ours (our issuer) but is not valid; the message is upstream's."""


# ------------------------------------------------------------------ keys
def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


def jwks(public_keys: Sequence[ec.EllipticCurvePublicKey]) -> Obj:
    """The JSON Web Key Set /openid/v1/jwks serves: every key tokens may be verified with."""
    keys = []
    for key in public_keys:
        numbers = key.public_numbers()
        keys.append({"use": "sig", "kty": "EC", "kid": key_id(key), "crv": "P-256", "alg": ALGORITHM,
                     "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))})
    return {"keys": keys}


def openid_configuration(issuer: str, jwks_uri: str) -> Obj:
    """/.well-known/openid-configuration, as kube-apiserver's serviceaccount.openidConfiguration."""
    return {"issuer": issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": [ALGORITHM]}


# ------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Ref:
    name: str
    uid: str = ""


@dataclass(frozen=True)
class Binding:
    """What a token is bound to: at most one of pod and secret, the pod's node (or a node alone)."""
    pod: Ref | None = None
    secret: Ref | None = None
    node: Ref | None = None


UNBOUND = Binding()


def claims(sa: Obj, now: int, expiration_seconds: int, audiences: Sequence[str], jti: str,
           issuer: str = DEFAULT_ISSUER, binding: Binding = UNBOUND) -> Obj:
    """The JWT claims of a token for ServiceAccount sa (upstream's serviceaccount.Claims)."""
    md = sa.get("metadata") or {}
    namespace, name = str(md.get("namespace") or ""), str(md.get("name") or "")
    private: Obj = {"namespace": namespace, "serviceaccount": _ref(Ref(name, str(md.get("uid") or "")))}
    if binding.pod is not None:
        private["pod"] = _ref(binding.pod)
    elif binding.secret is not None:
        private["secret"] = _ref(binding.secret)
    if binding.node is not None:
        private["node"] = _ref(binding.node)
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer, "jti": jti,
            PRIVATE_CLAIM: private, "nbf": now, "sub": service_account_username(namespace, name)}


def _ref(ref: Ref) -> Obj:
    out = {"name": ref.name}
    if ref.uid:
        out["uid"] = ref.uid
    return out


# ------------------------------------------------------------------ JWS
def sign(payload: Obj, key: ec.EllipticCurvePrivateKey) -> str:
    """A compact ES256 JWS of payload (keys sorted, as go-jose's claim builder writes them)."""
    header = {"alg": ALGORITHM, "kid": key_id(key.public_key())}
    signing_input = _b64(_json(header)) + "." + _b64(_json(payload))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def unverified_payload(token: str) -> Obj | None:
    """The payload of a compact JWS, unverified; None when token is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def verified_payload(token: str, public_keys: Sequence[ec.EllipticCurvePublicKey]) -> Obj:
    """The payload of token if one of public_keys signed it (ES256); TokenError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("square/go-jose: compact JWS format must have three parts")
    header_b64, payload_b64, sig_b64 = parts
    try:
        header = json.loads(_unb64(header_b64))
        signature = _unb64(sig_b64)
    except (ValueError, binascii.Error):
        raise TokenError("square/go-jose: compact JWS format must have three parts") from None
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM or len(signature) != 64:
        raise TokenError(BAD_SIGNATURE)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    for key in public_keys:
        try:
            key.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return json.loads(_unb64(payload_b64))
    raise TokenError(BAD_SIGNATURE)


# ------------------------------------------------------------------ validation
@dataclass(frozen=True)
class ServiceAccountInfo:
    namespace: str
    name: str
    uid: str
    pod: Ref | None = None
    node: Ref | None = None
    credential_id: str = ""
    audiences: tuple[str, ...] = field(default=())

    def user(self) -> User:
        """The user the token authenticates as (ServiceAccountInfo.UserInfo), system:authenticated added."""
        extra: dict[str, tuple[str, ...]] = {}
        if self.pod is not None:
            extra[EXTRA_POD_NAME], extra[EXTRA_POD_UID] = (self.pod.name,), (self.pod.uid,)
        if self.node is not None:
            extra[EXTRA_NODE_NAME] = (self.node.name,)
            if self.node.uid:
                extra[EXTRA_NODE_UID] = (self.node.uid,)
        if self.credential_id:
            extra[EXTRA_CREDENTIAL_ID] = (self.credential_id,)
        groups = (*service_account_groups(self.namespace), "system:authenticated")
        return User(service_account_username(self.namespace, self.name), groups, self.uid, extra)


# (kind, namespace, name) -> the stored object, or None when there is none.
Lookup = Callable[[str, str, str], Obj | None]


def is_ours(token: str, issuer: str) -> bool:
    """Whether token is a JWT our issuer wrote (upstream's hasCorrectIssuer): any other bearer
    token is left to the other authenticators without an error."""
    payload = unverified_payload(token)
    return payload is not None and payload.get("iss") == issuer


def authenticate(token: str, public_keys: Sequence[ec.EllipticCurvePublicKey], issuer: str,
                 audiences: Sequence[str], now: int, lookup: Lookup) -> ServiceAccountInfo:
    """Verify a token of ours: signature, audience, exp/nbf, then that what it names still exists
    with the uid it recorded (jwt.go's AuthenticateToken and claims.go's Validate).
    TokenError with upstream's message when it is not valid."""
    payload = verified_payload(token, public_keys)
    token_audiences = _audiences(payload.get("aud"))
    accepted = tuple(a for a in token_audiences if a in audiences)
    if not accepted:
        raise TokenError(f"token audiences {_go_strings(token_audiences)} is invalid for the target audiences "
                         f"{_go_strings(audiences)}")
    _check_times(payload, now)
    private = payload.get(PRIVATE_CLAIM)
    if not isinstance(private, dict):
        raise TokenError("service account token claims could not be validated due to unexpected private claim")
    info = _check_objects(private, now, lookup)
    jti = payload.get("jti")
    return ServiceAccountInfo(info.namespace, info.name, info.uid, info.pod, info.node,
                              f"JTI={jti}" if isinstance(jti, str) and jti else "", accepted)


def _check_times(payload: Obj, now: int) -> None:
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if isinstance(exp, int | float) and now > exp + LEEWAY_SECONDS:
        raise TokenError("service account token has expired")
    if isinstance(nbf, int | float) and now + LEEWAY_SECONDS < nbf:
        raise TokenError("service account token is not valid yet")


def _check_objects(private: Obj, now: int, lookup: Lookup) -> ServiceAccountInfo:
    namespace = str(private.get("namespace") or "")
    sa_ref, pod_ref, secret_ref, node_ref = (_read_ref(private.get(k))
                                             for k in ("serviceaccount", "pod", "secret", "node"))
    sa_name = sa_ref.name if sa_ref else ""
    sa = lookup("ServiceAccount", namespace, sa_name)
    if sa is None:
        raise TokenError(f'serviceaccounts "{sa_name}" not found')
    if _deleted_before(sa, now):
        raise TokenError(f"service account {namespace}/{sa_name} has been deleted")
    sa_uid = _uid(sa)
    if sa_ref is None or sa_uid != sa_ref.uid:
        raise TokenError(f"service account UID ({sa_uid}) does not match claim ({sa_ref.uid if sa_ref else ''})")
    if secret_ref is not None:
        _check_bound("Secret", "secret", namespace, secret_ref, now, lookup)
    if pod_ref is not None:
        _check_bound("Pod", "pod", namespace, pod_ref, now, lookup)
    elif node_ref is not None and secret_ref is None:
        _check_bound("Node", "node", "", node_ref, now, lookup)  # a token bound to the node itself
    return ServiceAccountInfo(namespace, sa_name, sa_uid, pod_ref, node_ref)


# ------------------------------------------------------------------ legacy (Secret-based) tokens
# pkg/serviceaccount/legacy.go: the long-lived tokens the tokens controller writes into Secrets of
# type kubernetes.io/service-account-token. They name the Secret, expire never, and carry no
# audience (the API server's own audiences are implied).
LEGACY_ISSUER = "kubernetes/serviceaccount"
LEGACY_NAMESPACE = "kubernetes.io/serviceaccount/namespace"
LEGACY_SECRET_NAME = "kubernetes.io/serviceaccount/secret.name"
LEGACY_SA_NAME = "kubernetes.io/serviceaccount/service-account.name"
LEGACY_SA_UID = "kubernetes.io/serviceaccount/service-account.uid"
LAST_USED_LABEL = "kubernetes.io/legacy-token-last-used"
INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"
TOKEN_KEY, CA_KEY, NAMESPACE_KEY = "token", "ca.crt", "namespace"  # a token Secret's data keys
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"


def legacy_claims(sa: Obj, secret_name: str) -> Obj:
    """A Secret-based token's claims (LegacyClaims): the account, its uid and the Secret; no exp, no aud."""
    md = sa.get("metadata") or {}
    namespace, name = str(md.get("namespace") or ""), str(md.get("name") or "")
    return {"iss": LEGACY_ISSUER, LEGACY_NAMESPACE: namespace, LEGACY_SECRET_NAME: secret_name,
            LEGACY_SA_NAME: name, LEGACY_SA_UID: str(md.get("uid") or ""),
            "sub": service_account_username(namespace, name)}


@dataclass(frozen=True)
class LegacyUse:
    """A valid Secret-based token: whose it is, and the Secret it is in (to stamp its last use)."""

    info: ServiceAccountInfo
    secret: Obj


def authenticate_legacy(token: str, public_keys: Sequence[ec.EllipticCurvePublicKey], audiences: Sequence[str],
                        implicit_audiences: Sequence[str], now: int, lookup: Lookup) -> LegacyUse:
    """Verify a Secret-based token (jwt.go with legacy.go's validator, lookup on): signature, the
    claims it must carry, then that its Secret still holds exactly it, unmarked, and its account
    still exists with the recorded uid. TokenError with upstream's message otherwise."""
    payload = verified_payload(token, public_keys)
    token_audiences = _audiences(payload.get("aud")) or tuple(implicit_audiences)
    accepted = tuple(a for a in token_audiences if a in audiences)
    if not accepted:
        raise TokenError(f"token audiences {_go_strings(token_audiences)} is invalid for the target audiences "
                         f"{_go_strings(audiences)}")
    namespace, secret_name, sa_name, sa_uid = _legacy_claims_present(payload)
    secret = lookup("Secret", namespace, secret_name)
    if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
        raise TokenError("Token has been invalidated")
    stored = _secret_value(secret, TOKEN_KEY)
    if stored is None or not hmac.compare_digest(stored, token.encode()):
        raise TokenError("Token does not match server's copy")
    sa = lookup("ServiceAccount", namespace, sa_name)
    if sa is None:
        raise TokenError(f'serviceaccounts "{sa_name}" not found')
    if (sa.get("metadata") or {}).get("deletionTimestamp"):
        raise TokenError(f"ServiceAccount {namespace}/{sa_name} has been deleted")
    if _uid(sa) != sa_uid:
        raise TokenError(f"ServiceAccount UID ({_uid(sa)}) does not match claim ({sa_uid})")
    if ((secret.get("metadata") or {}).get("labels") or {}).get(INVALID_SINCE_LABEL):
        raise TokenError(f"the token in secret {namespace}/{secret_name} for service account {namespace}/{sa_name} "
                         f"has been marked invalid. Use tokens from the TokenRequest API or manually created "
                         f"secret-based tokens, or remove the '{INVALID_SINCE_LABEL}' label from the secret to "
                         f"temporarily allow use of this token")
    return LegacyUse(ServiceAccountInfo(namespace, sa_name, sa_uid, audiences=accepted), secret)


def _legacy_claims_present(payload: Obj) -> tuple[str, str, str, str]:
    subject = str(payload.get("sub") or "")
    if not subject:
        raise TokenError("sub claim is missing")
    values = []
    for claim, word in ((LEGACY_NAMESPACE, "namespace"), (LEGACY_SECRET_NAME, "secretName"),
                        (LEGACY_SA_NAME, "serviceAccountName"), (LEGACY_SA_UID, "serviceAccountUID")):
        value = payload.get(claim)
        if not isinstance(value, str) or not value:
            raise TokenError(f"{word} claim is missing")
        values.append(value)
    namespace, secret_name, sa_name, sa_uid = values
    if subject != service_account_username(namespace, sa_name):
        raise TokenError("sub claim is invalid")
    return namespace, secret_name, sa_name, sa_uid


def _secret_value(secret: Obj, key: str) -> bytes | None:
    """A Secret's data value (base64 in the object), decoded; None when absent or not base64."""
    value = (secret.get("data") or {}).get(key)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def last_used_patch(secret: Obj, today: str, tomorrow: str) -> Obj | None:
    """The merge patch that stamps a Secret-based token's last use (the date, UTC), or None when it
    already says today (or tomorrow: clocks differ), as legacy.go's patchSecretWithLastUsedDate."""
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(LAST_USED_LABEL) in (today, tomorrow):
        return None
    return {"metadata": {"uid": _uid(secret), "labels": {LAST_USED_LABEL: today}}}


def _check_bound(kind: str, word: str, namespace: str, ref: Ref, now: int, lookup: Lookup) -> None:
    obj = lookup(kind, namespace, ref.name)
    if obj is None or _deleted_before(obj, now):
        raise TokenError(INVALIDATED)
    if _uid(obj) != ref.uid:
        raise TokenError(f"{word} UID ({_uid(obj)}) does not match service account {word} ref claim ({ref.uid})")


def _deleted_before(obj: Obj, now: int) -> bool:
    """Deleted more than the leeway ago."""
    when = parse_time_or_none((obj.get("metadata") or {}).get("deletionTimestamp"))
    return when is not None and when.timestamp() < now - LEEWAY_SECONDS


def _read_ref(value: Any) -> Ref | None:
    if not isinstance(value, dict):
        return None
    return Ref(str(value.get("name") or ""), str(value.get("uid") or ""))


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _audiences(value: Any) -> tuple[str, ...]:
    """The aud claim: a string or a list of strings, as JWT allows."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(a) for a in value)
    return ()


def _go_strings(values: Sequence[str]) -> str:
    """A []string as Go's %q prints it: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _json(value: Obj) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
