"""Service-account tokens in the API server: serviceaccounts/token (TokenRequest), the bearer
token authenticator for them, TokenReview, and the OIDC discovery documents.

The claims and checks are svcnet.core.satoken's; this module reads the store for them
(ServiceAccount, Pod, Secret, Node by name) and turns HTTP into those calls, as
kube-apiserver's pkg/registry/core/serviceaccount/storage/token.go and
pkg/registry/authentication/tokenreview do.
"""
from __future__ import annotations

import copy
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from svcnet.api import errors, meta
from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup_kind
from svcnet.apiserver import http, params
from svcnet.apiserver.patch import json_merge_patch
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.apiserver.responses import encoded, json_response
from svcnet.apiserver.reviews import user_info
from svcnet.apiserver.validation.fields import invalid
from svcnet.core import satoken
from svcnet.core.rbac.identity import User

log = logging.getLogger("svcnet.apiserver")

Obj = dict[str, Any]
AUTHN_GROUP = "authentication.k8s.io"
AUTHN_VERSION = f"{AUTHN_GROUP}/v1"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
_BINDABLE = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


class ServiceAccountTokens:
    """Issues and verifies the API server's service-account tokens with one signing key."""

    def __init__(self, registry: Registry, signing_key: ec.EllipticCurvePrivateKey,
                 issuer: str = satoken.DEFAULT_ISSUER, advertise_address: str = "127.0.0.1:6443") -> None:
        self.registry = registry
        self.signing_key = signing_key
        self.public_keys: tuple[ec.EllipticCurvePublicKey, ...] = (signing_key.public_key(),)
        self.issuer = issuer
        self.audiences: tuple[str, ...] = (issuer,)  # kube-apiserver's --api-audiences default to the issuer
        self.jwks_uri = f"https://{advertise_address}{JWKS_PATH}"

    def _now(self) -> int:
        return int(self.registry.clock().timestamp())

    # ------------------------------------------------------------------ authentication
    def authenticate(self, token: str, audiences: Sequence[str] | None = None) -> satoken.ServiceAccountInfo:
        """The account a token of ours names; TokenError when it is not valid, LookupError when
        it is not a token of our issuer (nor a Secret-based one, the legacy issuer's) at all."""
        if satoken.is_ours(token, self.issuer):
            return satoken.authenticate(token, self.public_keys, self.issuer, audiences or self.audiences,
                                        self._now(), self._lookup)
        if satoken.is_ours(token, satoken.LEGACY_ISSUER):
            used = satoken.authenticate_legacy(token, self.public_keys, audiences or self.audiences, self.audiences,
                                               self._now(), self._lookup)
            self._stamp_last_use(used.secret)
            return used.info
        raise LookupError("not a service-account token of this issuer")

    def _stamp_last_use(self, secret: Obj) -> None:
        """Label the Secret with today's date (UTC) once a day, as legacy.go's tracking does; a
        failure is logged, never the request's."""
        now = self.registry.clock().astimezone(dt.UTC)
        patch = satoken.last_used_patch(secret, now.strftime("%Y-%m-%d"),
                                        (now + dt.timedelta(days=1)).strftime("%Y-%m-%d"))
        if patch is None:
            return
        md = secret.get("metadata") or {}
        res = lookup_kind("v1", "Secret")
        assert res is not None
        try:
            self.registry.patch_apply(res, md.get("namespace"), str(md.get("name")),
                                      lambda current: json_merge_patch(current, patch), WriteOptions())
        except ApiError as exc:
            log.error("Failed to label legacy service account token %s/%s with last-used date, err: %s",
                      md.get("name"), md.get("namespace"), exc.message)

    def user(self, token: str) -> User | None:
        """The bearer token's user, or None (401) when the token is not a valid one of ours."""
        try:
            return self.authenticate(token).user()
        except LookupError:
            return None
        except satoken.TokenError as exc:
            log.info("Unable to authenticate the request: [invalid bearer token, %s]", exc)
            return None

    def _lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        res = lookup_kind("v1", kind)
        if res is None or not name:
            return None
        try:
            return self.registry.get(res, namespace or None, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    # ------------------------------------------------------------------ serviceaccounts/token
    async def serve_token_request(self, request: web.Request, rp: http.ResourcePath) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed(f"{request.method} is not supported on serviceaccounts/token")
        opts = params.write_options(request)
        body = await params.read_object(request, opts)
        if body.get("kind") not in (None, "", "TokenRequest"):
            raise errors.bad_request("the object provided is unrecognized (must be of type TokenRequest)")
        # Decoded as a TokenRequest first: a wrong JSON type is a 400, unknown fields as the directive says.
        self.registry.check_fields(rp.resource, body, opts, "token")
        namespace, name = rp.namespace or "default", rp.name or ""
        answer = self.token_request(namespace, name, body)
        return encoded(answer, http.negotiate(request.headers.get("Accept")), status=201)

    def token_request(self, namespace: str, name: str, body: Obj) -> Obj:
        """The TokenRequest answered: the spec defaulted and checked, status.token signed."""
        _check_names(body.get("metadata") or {}, namespace, name)
        spec = copy.deepcopy(body.get("spec") or {})
        spec["audiences"] = list(spec.get("audiences") or []) or list(self.audiences)
        if spec.get("expirationSeconds") is None:
            spec["expirationSeconds"] = satoken.DEFAULT_EXPIRATION_SECONDS
        _validate_spec(name, spec)
        sa = self._lookup("ServiceAccount", namespace, name)
        if sa is None:
            raise errors.not_found("serviceaccounts", name)
        binding = self._binding(namespace, name, spec.get("boundObjectRef"))
        now = self._now()
        seconds = int(spec["expirationSeconds"])
        claims = satoken.claims(sa, now, seconds, spec["audiences"], str(uuid.uuid4()), self.issuer, binding)
        md = copy.deepcopy(body.get("metadata") or {})
        md.update({"name": name, "namespace": namespace})
        md.setdefault("creationTimestamp", None)
        return {"kind": "TokenRequest", "apiVersion": AUTHN_VERSION, "metadata": md, "spec": spec,
                "status": {"token": satoken.sign(claims, self.signing_key),
                           "expirationTimestamp": meta.rfc3339(dt.datetime.fromtimestamp(now + seconds, dt.UTC))}}

    def _binding(self, namespace: str, sa_name: str, ref: Obj | None) -> satoken.Binding:
        """The object a token is bound to (it must exist; its uid, if given, must match), and for
        a pod the node it runs on, as token.go's Create."""
        if not ref:
            return satoken.Binding()
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if kind not in _BINDABLE:
            raise errors.bad_request(f"cannot bind token to object of type {kind}")
        obj = self._lookup(kind, "" if kind == "Node" else namespace, name)
        if obj is None:
            raise errors.not_found(_BINDABLE[kind], name)
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(_BINDABLE[kind], name, "", f"the UID in the bound object reference "
                                        f"({ref['uid']}) does not match the UID in record. The object might "
                                        f"have been deleted and then recreated")
        if kind == "Node":
            return satoken.Binding(node=satoken.Ref(name, uid))
        if kind == "Secret":
            return satoken.Binding(secret=satoken.Ref(name, uid))
        spec = obj.get("spec") or {}
        if (spec.get("serviceAccountName") or "default") != sa_name:
            raise errors.bad_request(f"cannot bind token for serviceaccount {sa_name!r} to pod running with "
                                     f"different serviceaccount name.".replace("'", '"'))
        node_name = str(spec.get("nodeName") or "")
        node = None
        if node_name:  # the pod's node goes into the token (ServiceAccountTokenPodNodeInfo)
            node_obj = self._lookup("Node", "", node_name)
            node = satoken.Ref(node_name, str(((node_obj or {}).get("metadata") or {}).get("uid") or ""))
        return satoken.Binding(pod=satoken.Ref(name, uid), node=node)

    # ------------------------------------------------------------------ TokenReview
    def token_review(self, body: Obj) -> Obj:
        """A TokenReview answered (create-only, never stored)."""
        spec = body.get("spec") or {}
        token = str(spec.get("token") or "")
        if not token:
            raise errors.bad_request("token is required for TokenReview in authentication")
        requested = [str(a) for a in spec.get("audiences") or []]
        review = copy.deepcopy(body)
        review["apiVersion"], review["kind"] = AUTHN_VERSION, "TokenReview"
        review.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        status: Obj = {"user": {}}
        try:
            info = self.authenticate(token, requested or None)
        except LookupError:
            status["error"] = "[invalid bearer token, token lookup failed]"
        except satoken.TokenError as exc:
            status["error"] = f"[invalid bearer token, {exc}]"
        else:
            status = {"authenticated": True, "user": user_info(info.user()), "audiences": list(info.audiences)}
        review["status"] = status
        return review

    # ------------------------------------------------------------------ discovery
    def serve_discovery(self, path: str) -> web.Response | None:
        """The OIDC discovery documents (ServiceAccountIssuerDiscovery); None for other paths."""
        if path == OPENID_CONFIGURATION_PATH:
            doc = satoken.openid_configuration(self.issuer, self.jwks_uri)
            return _cacheable(json_response(doc))
        if path == JWKS_PATH:
            return _cacheable(json_response(satoken.jwks(self.public_keys), content_type="application/jwk-set+json"))
        return None


def _cacheable(response: web.Response) -> web.Response:
    response.headers["Cache-Control"] = "public, max-age=3600"  # as kube-apiserver's discovery handlers
    return response


def _check_names(md: Obj, namespace: str, name: str) -> None:
    """A name or namespace in the body must be the URL's, if given (token.go's Create)."""
    causes = []
    if md.get("name") and md["name"] != name:
        causes.append(invalid("metadata.name", md["name"], "must match the service account name if specified"))
    if md.get("namespace") and md["namespace"] != namespace:
        causes.append(invalid("metadata.namespace", md["namespace"],
                              "must match the service account namespace if specified"))
    if causes:
        raise errors.invalid("TokenRequest", name, causes[:1], AUTHN_GROUP)


def _validate_spec(name: str, spec: Obj) -> None:
    """authentication validation's ValidateTokenRequest."""
    seconds = spec.get("expirationSeconds")
    causes = []
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        causes.append(invalid("spec.expirationSeconds", seconds, "must be an integer"))
    elif seconds < satoken.MIN_EXPIRATION_SECONDS:
        causes.append(invalid("spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"))
    elif seconds > satoken.MAX_EXPIRATION_SECONDS:
        causes.append(invalid("spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds"))
    if causes:
        raise errors.invalid("TokenRequest", name, causes, AUTHN_GROUP)
