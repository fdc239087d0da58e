"""The node bootstrap controllers of kube-controller-manager, thin loops over svcnet.core's decisions:

- `tokencleaner` (pkg/controller/bootstrap/tokencleaner.go): deletes a bootstrap token Secret
  once its expiration passed (looked at again when it is due);
- `bootstrapsigner` (pkg/controller/bootstrap/bootstrapsigner.go): keeps one detached JWS of
  cluster-info's kubeconfig per signing token in kube-public/cluster-info;
- `csrapproving` (pkg/controller/certificates/approver): approves a pending kubelet client CSR when
  a SubjectAccessReview says its requester may create certificatesigningrequests/nodeclient (or
  /selfnodeclient);
- `csrsigning` (pkg/controller/certificates/signer): signs approved
  kubernetes.io/kube-apiserver-client-kubelet requests with the cluster CA
  (--cluster-signing-cert-file, --cluster-signing-key-file).
"""
from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from svcnet.api import meta
from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of, name_of, namespace_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import Api, Controller, InformerFactory, Obj, resource
from svcnet.core import bootstraptoken, csr, pki

log = logging.getLogger("svcnet.controllers.nodebootstrap")

SECRETS = resource("", "secrets")
CONFIGMAPS = resource("", "configmaps")
CSRS = resource("certificates.k8s.io", "certificatesigningrequests")
SUBJECT_ACCESS_REVIEWS = resource("authorization.k8s.io", "subjectaccessreviews")


def _is_token_secret(secret: Obj) -> bool:
    return secret.get("type") == bootstraptoken.SECRET_TYPE and namespace_of(secret) == bootstraptoken.NAMESPACE


class TokenCleaner(Controller):
    name = "tokencleaner"
    workers = 1

    def setup(self) -> None:
        self.secrets = self.informers.informer(SECRETS)
        self.secrets.add_handler(on_add=self._changed, on_update=lambda old, new: self._changed(new))

    def _changed(self, secret: Obj) -> None:
        if _is_token_secret(secret):
            self.enqueue(secret)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        secret = self.secrets.get(namespace, name)
        if secret is None or metadata_of(secret).get("deletionTimestamp"):
            return None
        now = self.clock()
        try:
            when = bootstraptoken.expiration(secret)
        except bootstraptoken.TokenError:
            when = now  # unparseable: expired, as upstream's HasExpired
        if when is None:
            return None
        if when > now:
            return (when - now).total_seconds()  # look again when it is due
        log.info("Deleting expired secret %s/%s", namespace, name)
        uid = str(metadata_of(secret).get("uid") or "")
        try:
            await self.api.delete(SECRETS, namespace, name, preconditions={"uid": uid} if uid else None)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        return None


class BootstrapSigner(Controller):
    name = "bootstrapsigner"
    workers = 1
    KEY = f"{bootstraptoken.CLUSTER_INFO_NAMESPACE}/{bootstraptoken.CLUSTER_INFO}"

    def setup(self) -> None:
        self.secrets = self.informers.informer(SECRETS)
        self.configmaps = self.informers.informer(CONFIGMAPS)
        for informer, wanted in ((self.secrets, _is_token_secret), (self.configmaps, self._is_cluster_info)):
            informer.add_handler(on_add=self._poke_if(wanted), on_update=lambda old, new, w=wanted: self._poke_if(w)(new),
                                 on_delete=self._poke_if(wanted))

    @staticmethod
    def _is_cluster_info(cm: Obj) -> bool:
        return namespace_of(cm) == bootstraptoken.CLUSTER_INFO_NAMESPACE and name_of(cm) == bootstraptoken.CLUSTER_INFO

    def _poke_if(self, wanted: Callable[[Obj], bool]) -> Callable[[Obj], None]:
        def poke(obj: Obj) -> None:
            if wanted(obj):
                self.queue.add(self.KEY)
        return poke

    async def reconcile(self, key: str) -> float | None:
        cm = self.configmaps.get(bootstraptoken.CLUSTER_INFO_NAMESPACE, bootstraptoken.CLUSTER_INFO)
        if cm is None:
            return None
        now = self.clock()
        tokens = bootstraptoken.signing_tokens(self.secrets.list(), now)
        data = dict(cm.get("data") or {})
        wanted = bootstraptoken.signed_data(data, tokens)
        if wanted != data:
            try:
                await self.api.update(CONFIGMAPS, bootstraptoken.CLUSTER_INFO_NAMESPACE, {**cm, "data": wanted})
            except ApiError as exc:
                if exc.code == 409:
                    return 0.1
                raise
        expiries = [e for s in self.secrets.list() if _is_token_secret(s) and (e := _expiry(s)) and e > now]
        return (min(expiries) - now).total_seconds() if expiries else None  # drop a signature when it expires


def _expiry(secret: Obj) -> dt.datetime | None:
    try:
        return bootstraptoken.expiration(secret)
    except bootstraptoken.TokenError:
        return None


class CsrApprover(Controller):
    name = "csrapproving"
    workers = 1

    def setup(self) -> None:
        self.csrs = self.informers.informer(CSRS)
        self.csrs.add_handler(**self.enqueue_handlers())

    async def reconcile(self, key: str) -> float | None:
        _, name = split_key(key)
        obj = self.csrs.get(None, name)
        if obj is None:
            return None
        for check in csr.approval_checks(obj):
            if await self._allowed(obj, check.subresource):
                return await _write_csr(self.api, csr.approved(obj, check, meta.rfc3339(self.clock())), "approval")
        return None

    async def _allowed(self, obj: Obj, subresource: str) -> bool:
        spec = obj.get("spec") or {}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": spec.get("username", ""), "uid": spec.get("uid", ""),
                           "groups": spec.get("groups") or [], "extra": spec.get("extra") or {},
                           "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                                                  "verb": "create", "subresource": subresource, "version": "*"}}}
        answer = await self.api.create(SUBJECT_ACCESS_REVIEWS, None, review)
        return bool((answer.get("status") or {}).get("allowed"))


class CsrSigner(Controller):
    name = "csrsigning"
    workers = 1

    def __init__(self, api: Api, informers: InformerFactory, *, ca_cert_file: Path | None = None,
                 ca_key_file: Path | None = None, authority: pki.Authority | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(api, informers, clock=clock)
        self.ca_cert_file = ca_cert_file
        self.ca_key_file = ca_key_file
        self.authority = authority

    def setup(self) -> None:
        self.csrs = self.informers.informer(CSRS)
        self.csrs.add_handler(**self.enqueue_handlers())

    def _ca(self) -> pki.Authority | None:
        if self.authority is None and self.ca_cert_file and self.ca_key_file:
            try:
                self.authority = pki.Authority.from_pem(self.ca_cert_file.read_bytes(), self.ca_key_file.read_bytes())
            except OSError as exc:
                log.warning("cannot read the cluster signing CA: %s", exc)
        return self.authority

    async def reconcile(self, key: str) -> float | None:
        _, name = split_key(key)
        obj = self.csrs.get(None, name)
        if obj is None or not csr.wants_signing(obj):
            return None
        ca = self._ca()
        if ca is None:
            return None
        signed = csr.sign(obj, ca, self.clock())
        status = dict(obj.get("status") or {})
        if signed.certificate_pem is not None:
            status["certificate"] = base64.b64encode(signed.certificate_pem).decode()
        else:
            status["conditions"] = [*csr.conditions(obj), csr.condition(
                "Failed", "SignerValidationFailure", signed.failure, meta.rfc3339(self.clock()))]
        return await _write_csr(self.api, {**obj, "status": status}, "status")


async def _write_csr(api: Api, body: Obj, subresource: str) -> float | None:
    """Write a CSR's subresource: a conflict (the cache was behind) looks again shortly; a deleted CSR is done."""
    try:
        await api.update(CSRS, None, body, subresource=subresource)
    except ApiError as exc:
        if exc.code == 409:
            return 0.1
        if exc.code != 404:
            raise
    return None
