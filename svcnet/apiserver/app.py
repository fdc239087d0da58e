"""The aiohttp application: authentication, errors as Status, and routing.

Everything a verb means lives in the Registry; the handlers turn HTTP into
registry calls and registry results (or ApiErrors) into responses:
`nonresource` (health, version, discovery, OpenAPI), `handlers` (the verbs on
resources), `watch` (watch streams) and `subresources` (log, exec, scale,
binding, and the kubelet proxy for log, exec, attach, portforward and nodes/proxy).
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from svcnet.api import errors
from svcnet.api.errors import ApiError
from svcnet.apiserver import http, nonresource, params, reviews
from svcnet.apiserver.authz import CURRENT_ATTRIBUTES, CURRENT_USER, Authorizer, StorePolicy, impersonated
from svcnet.apiserver.handlers import ResourceHandlers
from svcnet.apiserver.nodeaccess import NO_KUBELETS, KubeletDialer
from svcnet.apiserver.nodeauthz import LiveGraph, NodeRestriction
from svcnet.apiserver.nodebootstrap import BootstrapTokens, anonymous_user
from svcnet.apiserver.registry import Registry
from svcnet.apiserver.responses import encoded, status_response
from svcnet.apiserver.steps import DEFAULT_CALLS, StoreCalls
from svcnet.apiserver.subresources import Subresources
from svcnet.apiserver.tokens import ServiceAccountTokens
from svcnet.apiserver.watch import Watches
from svcnet.core import pki
from svcnet.core.rbac import bootstrap
from svcnet.core.rbac.attributes import request_attributes
from svcnet.core.rbac.identity import ADMIN, LOCAL_SOCKET, User, with_authenticated_group
from svcnet.core.rbac.nodeauthorizer import NodeAuthorizer

log = logging.getLogger("svcnet.apiserver")

# The user a request runs as, after authentication and impersonation.
USER_KEY = web.RequestKey("user", User)


@dataclass
class ServerSettings:
    token: str | None  # None: no authentication (only with --insecure or on the unix socket)
    default_watch_timeout: int = 1800
    bookmark_interval: float = 60.0
    advertise_address: str = "127.0.0.1:6443"


class ApiServer:
    def __init__(self, registry: Registry, settings: ServerSettings,
                 kubelets: KubeletDialer = NO_KUBELETS, store_calls: StoreCalls = DEFAULT_CALLS,
                 sa_signing_key: ec.EllipticCurvePrivateKey | None = None, external_address: str = "") -> None:
        """sa_signing_key: the service-account token key (the daemon's is kept in its pki
        directory); without one, a key of this process's own, as a test server needs no more.
        external_address (host:port): where clients outside reach the server, named in the
        OIDC discovery document's jwks_uri; the advertise address when not given."""
        self.registry = registry
        self.settings = settings
        self.watches = Watches(registry.store, registry.clock, settings.default_watch_timeout,
                               settings.bookmark_interval)
        self.resources = ResourceHandlers(registry, self.watches, store_calls)
        self.subresources = Subresources(registry, kubelets, store_calls)
        # --authorization-mode=Node,RBAC: the node graph is filled once start_node_graph runs
        # (the daemon's start); until then nodes reach no secret, configmap or pod by the graph.
        self.node_graph = LiveGraph(registry)
        self.node_restriction = NodeRestriction(registry)
        self.authorizer = Authorizer(StorePolicy(registry),
                                     NodeAuthorizer(self.node_graph, bootstrap.expected_rules("system:node")))
        self.tokens = ServiceAccountTokens(registry, sa_signing_key or ec.generate_private_key(ec.SECP256R1()),
                                           advertise_address=external_address or settings.advertise_address)
        self.bootstrap_tokens = BootstrapTokens(registry)

    def close_watches(self) -> None:
        """End every open watch stream (shutdown); new watches are refused from now on."""
        self.watches.close_all()

    def make_app(self, *, authenticate: bool = True) -> web.Application:
        """authenticate=False: the root-only unix socket, whose requests are system:masters'.
        Without a token (--insecure) every TCP request is the admin's, as before."""
        if not authenticate:
            identity: User | None = LOCAL_SOCKET
        else:
            identity = ADMIN if self.settings.token is None else None
        middlewares = [self._error_middleware, self._authorization_middleware(identity)]
        # aiohttp refuses a body of client_max_size bytes or more; upstream takes exactly the limit.
        app = web.Application(middlewares=middlewares, client_max_size=http.MAX_REQUEST_BODY_BYTES + 1)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    def _authenticate(self, request: web.Request) -> User | None:
        """The user a verified client certificate names (x509 first, as kube-apiserver's union
        authenticator orders them), else the one a bearer token names: the admin token is
        system:masters, a bootstrap token system:bootstrap:<id>, a service-account token its
        account; without any credential, system:anonymous for cluster-info only; None: 401."""
        user = certificate_user(request)
        if user is not None:
            return user
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        assert self.settings.token is not None
        if not token:
            return None if header else anonymous_user(request.method, request.path)
        if hmac.compare_digest(token.encode(), self.settings.token.encode()):
            return ADMIN
        bootstrap = self.bootstrap_tokens.user(token)
        if bootstrap is not False:
            return bootstrap or None
        return self.tokens.user(token)

    def _authorization_middleware(self, identity: User | None):
        """Authenticate (unless the listener gives the identity), apply Impersonate-* headers,
        then authorize the request's attributes; 401 or 403 as kube-apiserver answers them.
        Health checks pass untouched (system:public-info-viewer grants them to everyone)."""
        @web.middleware
        async def middleware(request: web.Request, handler):
            if request.path in nonresource.HEALTH_PATHS:
                return await handler(request)
            user = identity or self._authenticate(request)
            if user is None:
                return status_response(errors.unauthorized())
            user = impersonated(user, request.headers, lambda name: request.headers.getall(name, []),
                                self.authorizer)
            attrs = request_attributes(user, request.method, request.path, request.query)
            self.authorizer.check(attrs)
            await self.node_restriction.check_request(attrs, request.read)
            request[USER_KEY] = user
            reset, reset_attrs = CURRENT_USER.set(user), CURRENT_ATTRIBUTES.set(attrs)
            try:
                return await handler(request)
            finally:
                CURRENT_ATTRIBUTES.reset(reset_attrs)
                CURRENT_USER.reset(reset)
        return middleware

    def start_node_graph(self) -> None:
        """Fill the Node authorizer's graph from the store and keep it current."""
        self.node_graph.start()

    @web.middleware
    async def _error_middleware(self, request: web.Request, handler):
        try:
            if (request.content_length or 0) > http.MAX_REQUEST_BODY_BYTES:
                raise http.body_too_large()  # known before a byte is read; aiohttp drains the rest
            return await handler(request)
        except ApiError as exc:
            return status_response(exc)
        except web.HTTPRequestEntityTooLarge:  # a body without Content-Length, read past the cap
            return status_response(http.body_too_large())
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug: answer as kube-apiserver does, keep serving
            log.exception("internal error serving %s %s", request.method, request.path)
            return status_response(errors.internal_error(str(exc)))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if nonresource.is_health(path):
            return web.Response(text="ok")
        if request.method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
            raise errors.method_not_allowed(f"{request.method} is not supported")
        answer = self.tokens.serve_discovery(path) or nonresource.serve(request, path,
                                                                         self.settings.advertise_address)
        if answer is not None:
            return answer
        rp = http.parse_resource_path(path)
        if rp is None:
            raise errors.path_not_found()
        if rp.resource.kind == "TokenReview":
            return await self._token_review(request, rp)
        if rp.resource.kind == "ServiceAccount" and rp.subresource == "token":
            return await self.tokens.serve_token_request(request, rp)
        if reviews.is_review(rp.resource):
            return await reviews.serve(request, rp, request[USER_KEY], self.authorizer, self.registry.clock())
        if rp.subresource in self.subresources.served:
            return await self.subresources.serve(request, rp)
        watching = request.query.get("watch") in ("true", "1") or "/watch/" in path
        return await self.resources.serve(request, rp, watching)

    async def _token_review(self, request: web.Request, rp: http.ResourcePath) -> web.Response:
        if request.method != "POST" or not rp.is_collection:
            raise errors.method_not_allowed(f"{request.method} is not supported on tokenreviews")
        opts = params.write_options(request)
        body = await params.read_object(request, opts)
        if body.get("kind") not in (None, "", "TokenReview"):
            raise errors.bad_request("the object provided is unrecognized (must be of type TokenReview)")
        self.registry.check_fields(rp.resource, body, opts)  # a wrong JSON type is a 400
        return encoded(self.tokens.token_review(body), http.negotiate(request.headers.get("Accept")), status=201)


def certificate_user(request: web.Request) -> User | None:
    """The user of the client certificate the TLS handshake verified against the cluster CA
    (CN the name, each O a group, plus system:authenticated: the x509 authenticator's
    CommonNameUserConversion); None without one, or for a certificate with no common name."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return _certificate_user(der) if der else None


@functools.lru_cache(maxsize=256)
def _certificate_user(der: bytes) -> User | None:
    name, groups = pki.identity(x509.load_der_x509_certificate(der))
    if not name:
        return None
    return User(name, with_authenticated_group(name, groups))
