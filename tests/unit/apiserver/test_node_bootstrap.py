"""Bootstrap tokens, cluster-info and CertificateSigningRequests through the real aiohttp app (the
registry fixture's fixed clock): what a joining node and kubectl see."""
from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from svcnet.api.resources import lookup
from svcnet.apiserver import authz
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.csr_admission import CsrAdmission
from svcnet.apiserver.nodebootstrap import ensure_node_bootstrap
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.core import bootstraptoken as bt
from svcnet.core import csr, pki
from tests.unit.apiserver.conftest import T0

ADMIN = {"Authorization": "Bearer admin-token"}
TOKEN = bt.Token("abcdef", "0123456789abcdef")
BOOTSTRAP = {"Authorization": f"Bearer {TOKEN}"}
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
SECRETS = lookup("", "v1", "secrets")


def _add_token(registry: Registry, token: bt.Token, ttl: dt.timedelta | None = dt.timedelta(hours=1),
               now: dt.datetime = T0) -> None:
    assert SECRETS is not None
    registry.create(SECRETS, "kube-system", bt.secret_body(token, now, ttl), WriteOptions())


@pytest.fixture
async def api(registry: Registry) -> AsyncIterator[TestClient]:
    server = ApiServer(registry, ServerSettings(token="admin-token"))
    authz.ensure_bootstrap_policy(registry)
    registry.admission.append(CsrAdmission(server.authorizer))
    ca_key = pki.new_key()
    ensure_node_bootstrap(registry, "https://192.168.0.100:6443", pki.cert_pem(pki.issue_ca("svcnet-ca", ca_key)))
    _add_token(registry, TOKEN)
    async with TestClient(TestServer(server.make_app(authenticate=True))) as c:
        yield c


def _csr_body(cn: str = "system:node:node-3", signer: str = csr.KUBELET_CLIENT_SIGNER,
              usages: tuple[str, ...] = ("digital signature", "client auth")) -> dict:
    request = (x509.CertificateSigningRequestBuilder().subject_name(pki.subject(cn, ("system:nodes",)))
               .sign(pki.new_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "node-csr-1"},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": signer, "usages": list(usages),
                     "username": "someone-else", "groups": ["system:masters"]}}


async def test_a_bootstrap_token_authenticates_as_its_bootstrap_user(api: TestClient) -> None:
    resp = await api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=BOOTSTRAP,
                          json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert resp.status == 201
    user = (await resp.json())["status"]["userInfo"]
    assert user["username"] == "system:bootstrap:abcdef"
    assert user["groups"] == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                              "system:authenticated"]


@pytest.mark.parametrize("header", [
    "Bearer abcdef.0123456789abcdee",  # wrong secret
    "Bearer zzzzzz.0123456789abcdef",  # no such token
    "Bearer ghijkl.0123456789abcdef",  # expired (added below)
])
async def test_a_bad_or_expired_token_is_401_and_creates_nothing(api: TestClient, registry: Registry,
                                                                header: str) -> None:
    _add_token(registry, bt.Token("ghijkl", "0123456789abcdef"), dt.timedelta(minutes=1),
               now=T0 - dt.timedelta(hours=1))
    resp = await api.post(CSRS, headers={"Authorization": header}, json=_csr_body())
    assert resp.status == 401
    assert (await resp.json())["reason"] == "Unauthorized"
    listed = await (await api.get(CSRS, headers=ADMIN)).json()
    assert listed["items"] == []


async def test_anonymous_clients_may_read_cluster_info_and_nothing_else(api: TestClient) -> None:
    resp = await api.get(CLUSTER_INFO)
    assert resp.status == 200
    data = (await resp.json())["data"]
    assert "server: https://192.168.0.100:6443" in data["kubeconfig"]
    for path in ("/api/v1/namespaces/kube-public/configmaps", "/api/v1/namespaces/kube-system/secrets", "/api"):
        assert (await api.get(path)).status == 401
    assert (await api.delete(CLUSTER_INFO)).status == 401
    assert (await api.get(CLUSTER_INFO, headers={"Authorization": "Bearer nonsense"})).status == 401


async def test_a_bootstrapper_creates_a_csr_recorded_as_its_own(api: TestClient) -> None:
    resp = await api.post(CSRS, headers=BOOTSTRAP, json=_csr_body())
    assert resp.status == 201, await resp.text()
    spec = (await resp.json())["spec"]
    assert spec["username"] == "system:bootstrap:abcdef"  # what the client claimed is overwritten
    assert spec["groups"] == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                              "system:authenticated"]
    # ... but it may not approve its own request, nor read anything else
    approval = {**(await resp.json()), "status": {"conditions": [{"type": "Approved", "status": "True",
                                                                  "reason": "Mine"}]}}
    assert (await api.put(f"{CSRS}/node-csr-1/approval", headers=BOOTSTRAP, json=approval)).status == 403
    assert (await api.get("/api/v1/namespaces/kube-system/secrets", headers=BOOTSTRAP)).status == 403


@pytest.mark.parametrize(("change", "message"), [
    ({"signerName": "kubelet"}, "spec.signerName: Invalid value: \"kubelet\": must be a fully qualified domain"),
    ({"usages": []}, "spec.usages: Required value"),
    ({"usages": ["client auth", "client auth"]}, "spec.usages[1]: Duplicate value: \"client auth\""),
    ({"usages": ["fly"]}, "spec.usages[0]: Unsupported value: \"fly\""),
    ({"request": base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n").decode()},
     "spec.request: Invalid value: \"<request data>\": PEM block type must be CERTIFICATE REQUEST"),
    ({"expirationSeconds": 60}, "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than"),
])
async def test_an_invalid_csr_is_refused_with_upstreams_message(api: TestClient, change: dict, message: str) -> None:
    body = _csr_body()
    body["spec"].update(change)
    resp = await api.post(CSRS, headers=ADMIN, json=body)
    assert resp.status == 422
    assert message in (await resp.json())["message"]


async def test_approval_and_certificate_go_through_their_subresources(api: TestClient) -> None:
    created = await (await api.post(CSRS, headers=BOOTSTRAP, json=_csr_body())).json()
    approved = {**created, "status": {"conditions": [{"type": "Approved", "reason": "KubectlApprove",
                                                      "message": "This CSR was approved by kubectl certificate "
                                                                 "approve."}]}}
    # a main-resource write keeps the status and the spec
    resp = await api.put(f"{CSRS}/node-csr-1", headers=ADMIN, json={**approved, "spec": {"signerName": "a.b/c"}})
    body = await resp.json()
    assert body.get("status", {}).get("conditions") is None
    assert body["spec"]["signerName"] == csr.KUBELET_CLIENT_SIGNER
    resp = await api.put(f"{CSRS}/node-csr-1/approval", headers=ADMIN, json=approved)
    assert resp.status == 200
    conditions = (await resp.json())["status"]["conditions"]
    assert [(c["type"], c["status"]) for c in conditions] == [("Approved", "True")]  # status defaulted
    table = await (await api.get(CSRS, headers={**ADMIN, "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
                   ).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age", "SignerName", "Requestor",
                                                               "RequestedDuration", "Condition"]
    assert table["rows"][0]["cells"][2:] == [csr.KUBELET_CLIENT_SIGNER, "system:bootstrap:abcdef", "<none>",
                                             "Approved"]
    # Approved and Denied exclude each other
    denied = {**approved, "metadata": {"name": "node-csr-1"},
              "status": {"conditions": [*conditions, {"type": "Denied", "status": "True"}]}}
    resp = await api.put(f"{CSRS}/node-csr-1/approval", headers=ADMIN, json=denied)
    assert resp.status == 422
    assert "Approved and Denied conditions are mutually exclusive" in (await resp.json())["message"]
