"""The node bootstrap controllers over FakeApi: expired tokens deleted, cluster-info signed per
signing token, kubelet client CSRs approved only for requesters allowed nodeclient, and signed
(or failed) by the CA."""
from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from svcnet.api.errors import ApiError
from svcnet.controllers.nodebootstrap import (
    CONFIGMAPS,
    CSRS,
    SECRETS,
    BootstrapSigner,
    CsrApprover,
    CsrSigner,
    TokenCleaner,
)
from svcnet.core import bootstraptoken as bt
from svcnet.core import csr, pki
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.waiting import until

TOKEN = bt.Token("abcdef", "0123456789abcdef")


async def _exists(api: FakeApi, resource: Any, namespace: str | None, name: str) -> bool:
    try:
        await api.get(resource, namespace, name)
        return True
    except ApiError:
        return False


async def test_the_cleaner_deletes_a_token_when_it_expires_and_keeps_the_others() -> None:
    api = FakeApi()
    now = dt.datetime.now(dt.UTC)
    await api.create(SECRETS, "kube-system", bt.secret_body(TOKEN, now, dt.timedelta(seconds=1)))
    await api.create(SECRETS, "kube-system", bt.secret_body(bt.Token("ghijkl", "0123456789abcdef"), now,
                                                            dt.timedelta(hours=1)))
    await api.create(SECRETS, "kube-system", bt.secret_body(bt.Token("mnopqr", "0123456789abcdef"), now, None))
    async with controller_starter(api, TokenCleaner) as start:
        await start()
        assert await _exists(api, SECRETS, "kube-system", "bootstrap-token-abcdef")
        await until(lambda: _gone(api, "bootstrap-token-abcdef"), timeout=10, what="the expired token deleted")
        assert await _exists(api, SECRETS, "kube-system", "bootstrap-token-ghijkl")
        assert await _exists(api, SECRETS, "kube-system", "bootstrap-token-mnopqr")


async def _gone(api: FakeApi, name: str) -> bool:
    return not await _exists(api, SECRETS, "kube-system", name)


async def test_the_signer_keeps_one_signature_per_signing_token_in_cluster_info() -> None:
    api = FakeApi()
    await api.create(CONFIGMAPS, "kube-public", {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "cluster-info"}, "data": {"kubeconfig": "k"}})
    await api.create(SECRETS, "kube-system", bt.secret_body(TOKEN, dt.datetime.now(dt.UTC)))

    async def data() -> dict:
        return (await api.get(CONFIGMAPS, "kube-public", "cluster-info")).get("data") or {}

    async with controller_starter(api, BootstrapSigner) as start:
        await start()
        await until(lambda: _has(data(), "jws-kubeconfig-abcdef"), what="the signature")
        assert (await data())["jws-kubeconfig-abcdef"] == bt.detached_signature("k", TOKEN)
        await api.delete(SECRETS, "kube-system", "bootstrap-token-abcdef")
        await until(lambda: _lacks(data(), "jws-kubeconfig-abcdef"), what="the signature removed")


async def _has(data: Any, key: str) -> bool:
    return key in await data


async def _lacks(data: Any, key: str) -> bool:
    return key not in await data


class Approver(CsrApprover):
    """The approver with its SubjectAccessReview answered from a table: (user, subresource) allowed."""

    ALLOWED = {("system:bootstrap:abcdef", "nodeclient")}

    async def _allowed(self, obj: dict, subresource: str) -> bool:
        return ((obj.get("spec") or {}).get("username"), subresource) in self.ALLOWED


def _csr(name: str, username: str, orgs: tuple[str, ...] = ("system:nodes",)) -> dict:
    request = (x509.CertificateSigningRequestBuilder().subject_name(pki.subject("system:node:node-3", orgs))
               .sign(pki.new_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": csr.KUBELET_CLIENT_SIGNER,
                     "usages": ["digital signature", "client auth"], "username": username}}


async def test_allowed_requests_are_approved_and_issued_others_stay_pending_or_fail() -> None:
    api = FakeApi()
    key = pki.new_key()
    ca = pki.Authority.from_pem(pki.cert_pem(pki.issue_ca("svcnet-ca", key)), pki.key_pem(key))
    await api.create(CSRS, None, _csr("from-token", "system:bootstrap:abcdef"))
    await api.create(CSRS, None, _csr("from-stranger", "mallory"))
    bad = await api.create(CSRS, None, _csr("masters", "admin", orgs=("system:masters",)))
    # an admin approves the request the approver never would; the signer still refuses its subject
    await api.update(CSRS, None, csr.approved(bad, csr.NODE_CLIENT, "2026-12-07T12:00:00Z"), subresource="approval")

    async def status(name: str) -> dict:
        return (await api.get(CSRS, None, name)).get("status") or {}

    async with controller_starter(api, Approver) as start_approver, \
            controller_starter(api, lambda a, i: CsrSigner(a, i, authority=ca)) as start_signer:
        approver = await start_approver()
        await start_signer()
        issued = await until(lambda: _certificate(status("from-token")), what="the certificate")
        cert = x509.load_pem_x509_certificate(base64.b64decode(issued))
        cert.verify_directly_issued_by(ca.cert)
        assert pki.identity(cert) == ("system:node:node-3", ("system:nodes",))
        failed = await until(lambda: _failed(status("masters")), what="the Failed condition")
        assert failed["reason"] == "SignerValidationFailure"
        assert "subject organization is not system:nodes" in failed["message"]
        assert (await status("masters")).get("certificate") is None
        await approver.settled()
        assert (await status("from-stranger")).get("conditions") is None  # pending: nobody may approve it


async def _certificate(status: Any) -> str | None:
    return (await status).get("certificate")


async def _failed(status: Any) -> dict | None:
    return next((c for c in (await status).get("conditions") or [] if c["type"] == "Failed"), None)
