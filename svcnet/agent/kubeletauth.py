"""Who may use this node's kubelet API: kubelet's webhook authentication and authorization.

A request is authenticated by its TLS client certificate, when the cluster CA
signed it for client use (the user is its CN, the groups its Os, as kube-apiserver
reads them), or else by its bearer token, which the API server checks with a
TokenReview. It is then authorized by a SubjectAccessReview to the API server
for the verb on the node's subresource (kubeletapi.request_attributes). Both
answers are cached as kubelet caches them (--authentication-token-webhook-cache-ttl
2 min; --authorization-webhook-cache-authorized-ttl 5 min, unauthorized 30 s).
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from svcnet.agent.kubeletapi import NodeAttributes
from svcnet.api.resources import lookup
from svcnet.core import pki

TOKEN_REVIEWS = lookup("authentication.k8s.io", "v1", "tokenreviews")
SUBJECT_ACCESS_REVIEWS = lookup("authorization.k8s.io", "v1", "subjectaccessreviews")
assert TOKEN_REVIEWS is not None and SUBJECT_ACCESS_REVIEWS is not None

TOKEN_TTL = 120.0
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0


@dataclass(frozen=True)
class Caller:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


def certificate_caller(der: bytes | None) -> Caller | None:
    """The user a verified client certificate names, if it is one for client use."""
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return None
    name, groups = pki.identity(cert)
    return Caller(name, groups) if name else None


def bearer_token(header: str) -> str:
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


class _TtlCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        entry = self.entries.get(key)
        if entry is None or entry[0] <= self.clock():
            self.entries.pop(key, None)
            return False, None
        return True, entry[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        if len(self.entries) > 4096:  # bounded: drop what expired, then everything if still full
            now = self.clock()
            self.entries = {k: v for k, v in self.entries.items() if v[0] > now}
            if len(self.entries) > 4096:
                self.entries.clear()
        self.entries[key] = (self.clock() + ttl, value)


class WebhookAuth:
    """Authentication by certificate or TokenReview, authorization by SubjectAccessReview (the API client's
    errors propagate: the server answers them as kubelet does, 401 for authentication, 500 for authorization)."""

    def __init__(self, api: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.tokens = _TtlCache(clock)
        self.decisions = _TtlCache(clock)

    async def authenticate(self, peer_certificate: bytes | None, authorization: str) -> Caller | None:
        caller = certificate_caller(peer_certificate)
        if caller is not None:
            return caller
        token = bearer_token(authorization)
        if not token:
            return None
        key = hashlib.sha256(token.encode()).digest()
        found, cached = self.tokens.get(key)
        if found:
            return cached
        review = await self.api.create(TOKEN_REVIEWS, None, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
        status = review.get("status") or {}
        user = status.get("user") or {}
        caller = (Caller(str(user.get("username") or ""), tuple(user.get("groups") or ()), str(user.get("uid") or ""))
                  if status.get("authenticated") and user.get("username") else None)
        self.tokens.put(key, caller, TOKEN_TTL)
        return caller

    async def authorize(self, caller: Caller, attrs: NodeAttributes) -> bool:
        key = (caller, attrs.verb, attrs.subresource, attrs.node)
        found, cached = self.decisions.get(key)
        if found:
            return bool(cached)
        review = await self.api.create(SUBJECT_ACCESS_REVIEWS, None, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": attrs.review_spec(caller.name, caller.groups, caller.uid)})
        allowed = bool((review.get("status") or {}).get("allowed"))
        self.decisions.put(key, allowed, ALLOWED_TTL if allowed else DENIED_TTL)
        return allowed
