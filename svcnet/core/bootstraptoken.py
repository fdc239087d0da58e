"""Bootstrap tokens (pure): the `<id>.<secret>` credentials a joining node uses once, as kubeadm
and kube-apiserver's bootstrap token authenticator define them (k8s.io/cluster-bootstrap).

A token is `[a-z0-9]{6}.[a-z0-9]{16}`; it lives as the Secret `bootstrap-token-<id>` of type
`bootstrap.kubernetes.io/token` in kube-system. The API server accepts it as the user
`system:bootstrap:<id>` in `system:bootstrappers` (plus the Secret's auth-extra-groups) while
the Secret is not being deleted, has the right type, id and secret (compared in constant time),
has not expired and says `usage-bootstrap-authentication: "true"`; the token cleaner deletes it
once expired. The same token signs the kube-public/cluster-info ConfigMap (a detached HS256 JWS
per token, `jws-kubeconfig-<id>`), which is how a joining node trusts the cluster it found.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from svcnet.core.rbac.identity import User, with_authenticated_group

Obj = dict[str, Any]

NAMESPACE = "kube-system"
SECRET_PREFIX = "bootstrap-token-"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_ID_KEY = "token-id"
TOKEN_SECRET_KEY = "token-secret"
EXPIRATION_KEY = "expiration"
DESCRIPTION_KEY = "description"
EXTRA_GROUPS_KEY = "auth-extra-groups"
USAGE_AUTHENTICATION = "usage-bootstrap-authentication"
USAGE_SIGNING = "usage-bootstrap-signing"
USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS = "system:bootstrappers"
# kubeadm's default token group: its RBAC (CSR creation, auto-approval) names this group.
KUBEADM_NODE_GROUP = "system:bootstrappers:kubeadm:default-node-token"
DEFAULT_TTL = dt.timedelta(hours=24)  # kubeadm token create's default --ttl

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO = "cluster-info"
KUBECONFIG_KEY = "kubeconfig"
JWS_PREFIX = "jws-kubeconfig-"

_TOKEN = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
_TOKEN_ID = re.compile(r"\A[a-z0-9]{6}\Z")
_GROUP = re.compile(r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class TokenError(ValueError):
    """A token, or its Secret, that cannot authenticate; the message says why (for the log)."""


@dataclass(frozen=True)
class Token:
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"


def parse(text: str) -> Token | None:
    """The token in text, or None when it is not of the bootstrap form (then it is some other
    authenticator's business, as upstream's ParseToken failing means "not mine")."""
    match = _TOKEN.match(text)
    return Token(match.group(1), match.group(2)) if match else None


def generate() -> Token:
    """A new random token (kubeadm's GenerateBootstrapToken: 6 + 16 characters of [a-z0-9])."""
    def pick(count: int) -> str:
        return "".join(secrets.choice(_ALPHABET) for _ in range(count))
    return Token(pick(6), pick(16))


def secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


def check_groups(groups: list[str]) -> list[str]:
    """Extra groups must each be system:bootstrappers:<something> (ValidateBootstrapGroupName)."""
    for group in groups:
        if not _GROUP.match(group):
            raise TokenError(f"bootstrap group {group!r} is invalid (must match {_GROUP.pattern[2:-2]})")
    return groups


def secret_body(token: Token, now: dt.datetime, ttl: dt.timedelta | None = DEFAULT_TTL,
                groups: tuple[str, ...] = (KUBEADM_NODE_GROUP,), description: str = "",
                usages: tuple[str, ...] = ("authentication", "signing")) -> Obj:
    """The Secret kubeadm's `token create` writes (string data; ttl None or zero: never expires)."""
    check_groups(list(groups))
    data = {TOKEN_ID_KEY: token.id, TOKEN_SECRET_KEY: token.secret}
    if ttl:
        data[EXPIRATION_KEY] = _rfc3339(now + ttl)
    if description:
        data[DESCRIPTION_KEY] = description
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if groups:
        data[EXTRA_GROUPS_KEY] = ",".join(groups)
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(token.id), "namespace": NAMESPACE},
            "stringData": data}


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_data(secret: Obj, key: str) -> str:
    """A data key of the Secret, decoded (Secrets keep data base64 in JSON)."""
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def expiration(secret: Obj) -> dt.datetime | None:
    """When the token expires; None: never. TokenError for a value that does not parse, which
    upstream treats as expired."""
    text = secret_data(secret, EXPIRATION_KEY)
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TokenError(f"has unparseable expiration {text!r}") from None
    if when.tzinfo is None:
        raise TokenError(f"has unparseable expiration {text!r}")
    return when


def has_expired(secret: Obj, now: dt.datetime) -> bool:
    try:
        when = expiration(secret)
    except TokenError:
        return True
    return when is not None and now >= when


def groups_of(secret: Obj) -> tuple[str, ...]:
    """system:bootstrappers, then the extra groups (trimmed, deduplicated, each valid)."""
    extra = [g.strip() for g in secret_data(secret, EXTRA_GROUPS_KEY).split(",") if g.strip()]
    out = [BOOTSTRAPPERS]
    for group in check_groups(extra):
        if group not in out:
            out.append(group)
    return tuple(out)


def authenticate(token: Token, secret: Obj | None, now: dt.datetime) -> User:
    """The user the token is, given its Secret (None: there is none); TokenError says why not."""
    if secret is None:
        raise TokenError(f"no secret of name {secret_name(token.id)} to match bootstrap bearer token")
    md = secret.get("metadata") or {}
    if md.get("deletionTimestamp"):
        raise TokenError("is deleted and awaiting removal")
    if secret.get("type") != SECRET_TYPE or not secret.get("data"):
        raise TokenError(f"has invalid type, expected {SECRET_TYPE}")
    if not hmac.compare_digest(secret_data(secret, TOKEN_SECRET_KEY).encode(), token.secret.encode()):
        raise TokenError(f"has invalid value for key {TOKEN_SECRET_KEY}")
    if secret_data(secret, TOKEN_ID_KEY) != token.id:
        raise TokenError(f"has invalid value for key {TOKEN_ID_KEY}")
    if has_expired(secret, now):
        raise TokenError("has expired")
    if secret_data(secret, USAGE_AUTHENTICATION) != "true":
        raise TokenError(f"not marked {USAGE_AUTHENTICATION}=true")
    name = USER_PREFIX + token.id
    return User(name, with_authenticated_group(name, groups_of(secret)))


def token_of_secret(secret: Obj) -> Token | None:
    """The token a Secret holds, when it is a well-formed bootstrap token Secret."""
    md = secret.get("metadata") or {}
    if secret.get("type") != SECRET_TYPE or md.get("namespace") != NAMESPACE:
        return None
    token_id = secret_data(secret, TOKEN_ID_KEY)
    if not _TOKEN_ID.match(token_id) or md.get("name") != secret_name(token_id):
        return None
    return parse(f"{token_id}.{secret_data(secret, TOKEN_SECRET_KEY)}")


# ------------------------------------------------------------------ cluster-info and its signatures
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def detached_signature(content: str, token: Token) -> str:
    """RFC 7515 appendix F: a compact HS256 JWS of content with the payload left out
    (`header..signature`), keyed by the token secret zero-padded to 32 bytes and naming the
    token id as kid, as cluster-bootstrap's ComputeDetachedSignature makes it."""
    key = token.secret.encode().ljust(32, b"\0")
    header = _b64url(json.dumps({"alg": "HS256", "kid": token.id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}".encode()
    return f"{header}..{_b64url(hmac.new(key, signing_input, hashlib.sha256).digest())}"


def signature_valid(detached: str, content: str, token: Token) -> bool:
    return hmac.compare_digest(detached.encode(), detached_signature(content, token).encode())


def signatures(content: str, tokens: list[Token]) -> dict[str, str]:
    """The jws-kubeconfig-<id> entries cluster-info should carry for these signing tokens."""
    return {JWS_PREFIX + t.id: detached_signature(content, t) for t in tokens}


def signing_tokens(secrets_: list[Obj], now: dt.datetime) -> list[Token]:
    """The tokens that sign cluster-info: well-formed, unexpired, usage-bootstrap-signing true."""
    out = []
    for secret in secrets_:
        token = token_of_secret(secret)
        if token is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if secret_data(secret, USAGE_SIGNING) == "true" and not has_expired(secret, now):
            out.append(token)
    return sorted(out, key=lambda t: t.id)


def signed_data(data: dict[str, str], tokens: list[Token]) -> dict[str, str]:
    """cluster-info's data with exactly the signatures of these tokens (stale ones removed)."""
    content = data.get(KUBECONFIG_KEY, "")
    kept = {k: v for k, v in data.items() if not k.startswith(JWS_PREFIX)}
    return {**kept, **(signatures(content, tokens) if content else {})}


def ca_cert_hash(spki_der: bytes) -> str:
    """kubeadm's --discovery-token-ca-cert-hash form: sha256:<hex of the CA's SubjectPublicKeyInfo>."""
    return "sha256:" + hashlib.sha256(spki_der).hexdigest()
