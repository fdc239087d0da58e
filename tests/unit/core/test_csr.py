"""The kubelet client CSR profile and the approver's and signer's decisions, on plain objects."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from svcnet.core import csr, pki

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
BOOTSTRAP = "system:bootstrap:abcdef"


def _authority() -> pki.Authority:
    key = pki.new_key()
    return pki.Authority.from_pem(pki.cert_pem(pki.issue_ca("test-ca", key)), pki.key_pem(key))


def _request(cn: str = "system:node:node-3", orgs: tuple[str, ...] = ("system:nodes",), san: bool = False) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(pki.subject(cn, orgs))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), critical=False)
    return builder.sign(pki.new_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _csr(request: bytes | None = None, *, username: str = BOOTSTRAP, signer: str = csr.KUBELET_CLIENT_SIGNER,
         usages: tuple[str, ...] = ("digital signature", "client auth"), conditions: tuple[str, ...] = (),
         certificate: str = "", seconds: int | None = None) -> dict:
    spec = {"request": base64.b64encode(request or _request()).decode(), "signerName": signer,
            "usages": list(usages), "username": username, "groups": ["system:bootstrappers"]}
    if seconds is not None:
        spec["expirationSeconds"] = seconds
    status: dict = {"conditions": [{"type": c, "status": "True"} for c in conditions]}
    if certificate:
        status["certificate"] = certificate
    return {"metadata": {"name": "node-csr-x"}, "spec": spec, "status": status}


def test_a_kubelet_client_request_fits_the_profile() -> None:
    request = csr.parse_request(_request())
    assert csr.kubelet_client_problems(request, ["digital signature", "client auth"]) == []
    assert csr.kubelet_client_problems(request, ["key encipherment", "digital signature", "client auth"]) == []


@pytest.mark.parametrize(("request_pem", "usages", "problem"), [
    (_request(orgs=("system:nodes", "system:masters")), ["client auth"], "organization is not system:nodes"),
    (_request(orgs=()), ["client auth"], "organization is not system:nodes"),
    (_request(cn="admin"), ["client auth"], 'does not begin with "system:node:"'),
    (_request(san=True), ["client auth"], "subjectAltNames are not allowed"),
    (_request(), ["digital signature"], 'missing required usage "client auth"'),
    (_request(), ["client auth", "server auth"], "usages did not match"),
])
def test_requests_outside_the_profile_are_named(request_pem: bytes, usages: list[str], problem: str) -> None:
    problems = csr.kubelet_client_problems(csr.parse_request(request_pem), usages)
    assert any(problem in p for p in problems), problems


def test_a_pem_of_another_type_is_not_a_request() -> None:
    with pytest.raises(ValueError, match="PEM block type must be CERTIFICATE REQUEST"):
        csr.parse_request(pki.cert_pem(_authority().cert))


def test_the_approver_asks_for_nodeclient_for_a_bootstrap_requester_and_selfnodeclient_first_for_the_node() -> None:
    assert [c.subresource for c in csr.approval_checks(_csr())] == ["nodeclient"]
    renewal = _csr(username="system:node:node-3")
    assert [c.subresource for c in csr.approval_checks(renewal)] == ["selfnodeclient", "nodeclient"]


@pytest.mark.parametrize("obj", [
    _csr(conditions=("Approved",)),
    _csr(conditions=("Denied",)),
    _csr(certificate="eA=="),
    _csr(signer=csr.KUBE_APISERVER_CLIENT_SIGNER),
    _csr(_request(orgs=("system:masters",))),
    _csr(usages=("client auth", "server auth")),
])
def test_the_approver_leaves_anything_else_alone(obj: dict) -> None:
    assert csr.approval_checks(obj) == []


def test_approval_adds_the_auto_approved_condition() -> None:
    approved = csr.approved(_csr(), csr.NODE_CLIENT, "2026-12-07T12:00:00Z")
    assert approved["status"]["conditions"] == [{
        "type": "Approved", "status": "True", "reason": "AutoApproved",
        "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
        "lastUpdateTime": "2026-12-07T12:00:00Z", "lastTransitionTime": "2026-12-07T12:00:00Z"}]
    assert csr.is_approved(approved)


def test_only_approved_unissued_requests_of_the_kubelet_signer_are_signed() -> None:
    assert csr.wants_signing(_csr(conditions=("Approved",)))
    assert not csr.wants_signing(_csr())
    assert not csr.wants_signing(_csr(conditions=("Approved", "Failed")))
    assert not csr.wants_signing(_csr(conditions=("Approved",), certificate="eA=="))
    assert not csr.wants_signing(_csr(conditions=("Approved",), signer="example.com/custom"))
    assert csr.wants_signing(_csr(conditions=("Approved",), signer=csr.KUBE_APISERVER_CLIENT_SIGNER))


def test_the_signer_issues_the_requested_subject_for_client_auth_from_the_ca() -> None:
    ca = _authority()
    signed = csr.sign(_csr(conditions=("Approved",), seconds=3600), ca, NOW)
    assert signed.failure == ""
    assert signed.certificate_pem is not None
    cert = x509.load_pem_x509_certificate(signed.certificate_pem)
    cert.verify_directly_issued_by(ca.cert)
    assert pki.identity(cert) == ("system:node:node-3", ("system:nodes",))
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=1)  # expirationSeconds, under the 1-year cap
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=5)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature


def test_the_signer_fails_a_subject_that_does_not_fit_instead_of_signing_it() -> None:
    signed = csr.sign(_csr(_request(orgs=("system:masters",)), conditions=("Approved",)), _authority(), NOW)
    assert signed.certificate_pem is None
    assert "subject organization is not system:nodes" in signed.failure


def test_the_client_signer_issues_a_user_certificate_but_never_for_system_masters() -> None:
    ca = _authority()
    user = csr.sign(_csr(_request(cn="jane", orgs=("dev",)), signer=csr.KUBE_APISERVER_CLIENT_SIGNER,
                         usages=("client auth",), conditions=("Approved",)), ca, NOW)
    assert user.certificate_pem is not None
    cert = x509.load_pem_x509_certificate(user.certificate_pem)
    assert pki.identity(cert) == ("jane", ("dev",))
    with pytest.raises(x509.ExtensionNotFound):  # no usage bit asked for: no KeyUsage (one with none is invalid)
        cert.extensions.get_extension_for_class(x509.KeyUsage)
    masters = csr.sign(_csr(_request(cn="root", orgs=("system:masters",)), signer=csr.KUBE_APISERVER_CLIENT_SIGNER,
                            conditions=("Approved",)), ca, NOW)
    assert masters.certificate_pem is None
    assert "system:masters is not an allowed organization" in masters.failure


def _serving_request(cn: str = "system:node:node-3", orgs: tuple[str, ...] = ("system:nodes",),
                     names: tuple[x509.GeneralName, ...] | None = None) -> bytes:
    import ipaddress

    builder = x509.CertificateSigningRequestBuilder().subject_name(pki.subject(cn, orgs))
    sans = names if names is not None else (x509.DNSName("node-3"), x509.IPAddress(ipaddress.ip_address("192.168.1.108")))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(pki.new_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


SERVING = ("digital signature", "server auth")


def test_the_agents_serving_request_fits_the_kubelet_serving_profile() -> None:
    pem = csr.new_serving_request_pem(pki.new_key(), "node-3", ("node-3",), ("192.168.1.108", "fd00:192:168:1::6c"))
    assert csr.kubelet_serving_problems(csr.parse_request(pem), list(SERVING)) == []
    rsa_usages = ["digital signature", "key encipherment", "server auth"]
    assert csr.kubelet_serving_problems(csr.parse_request(pem), rsa_usages) == []


@pytest.mark.parametrize(("request_pem", "usages", "problem"), [
    (_serving_request(orgs=("system:masters",)), SERVING, "subject organization is not system:nodes"),
    (_serving_request(names=()), SERVING, "DNS or IP subjectAltName is required"),
    (_serving_request(names=(x509.DNSName("node-3"), x509.RFC822Name("a@b.c"))), SERVING,
     "Email subjectAltNames are not allowed"),
    (_serving_request(names=(x509.DNSName("node-3"), x509.UniformResourceIdentifier("spiffe://x"))), SERVING,
     "URI subjectAltNames are not allowed"),
    (_serving_request(), ("digital signature", "server auth", "client auth"), "usages did not match"),
    (_serving_request(), ("server auth",), "usages did not match"),
    (_serving_request(cn="node-3"), SERVING, 'subject common name does not begin with "system:node:"'),
])
def test_serving_requests_outside_the_profile_are_named(request_pem: bytes, usages: tuple[str, ...],
                                                        problem: str) -> None:
    problems = csr.kubelet_serving_problems(csr.parse_request(request_pem), list(usages))
    assert any(problem in p for p in problems), problems


def test_the_serving_signer_issues_server_auth_for_the_requested_names_and_is_never_auto_approved() -> None:
    import ipaddress

    obj = _csr(_serving_request(), username="system:node:node-3", signer=csr.KUBELET_SERVING_SIGNER, usages=SERVING)
    assert csr.approval_checks(obj) == [], "kube-controller-manager's approver leaves serving requests to an admin"
    assert not csr.wants_signing(obj)
    approved = {**obj, "status": {"conditions": [{"type": "Approved", "status": "True"}]}}
    assert csr.wants_signing(approved)
    ca = _authority()
    signed = csr.sign(approved, ca, NOW)
    assert signed.failure == "" and signed.certificate_pem is not None
    cert = x509.load_pem_x509_certificate(signed.certificate_pem)
    cert.verify_directly_issued_by(ca.cert)
    assert pki.identity(cert) == ("system:node:node-3", ("system:nodes",))
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert (sans.get_values_for_type(x509.DNSName), sans.get_values_for_type(x509.IPAddress)) == (
        ["node-3"], [ipaddress.ip_address("192.168.1.108")])


def test_the_serving_signer_fails_a_request_without_names() -> None:
    obj = _csr(_serving_request(names=()), username="system:node:node-3", signer=csr.KUBELET_SERVING_SIGNER,
               usages=SERVING, conditions=("Approved",))
    signed = csr.sign(obj, _authority(), NOW)
    assert signed.certificate_pem is None
    assert signed.failure == "invalid kubelet serving certificate request: DNS or IP subjectAltName is required"
