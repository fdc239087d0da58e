"""CertificateSigningRequests (certificates.k8s.io/v1), pure: parsing the PEM request, the
kubelet client profile, and the decisions of kube-controller-manager's csrapproving and
csrsigning controllers, over plain objects.

- `kubelet_client_problems`: pkg/apis/certificates' ValidateKubeletClientCSR: O exactly
  [system:nodes], CN system:node:<name>, no SANs, usages within {digital signature, key
  encipherment, client auth} and including client auth.
- `approval`: csrapproving's sarapprove: a pending kubelet client CSR whose requester may
  create certificatesigningrequests/nodeclient (or /selfnodeclient when the CN is the
  requester itself) is approved with reason AutoApproved; the caller asks the API (a
  SubjectAccessReview) and passes the answer in.
- `signing`: csrsigning for kubernetes.io/kube-apiserver-client-kubelet, kube-apiserver-client and
  kubelet-serving: an approved, not failed, not yet issued request is signed by the cluster CA for
  min(expirationSeconds, the signing duration); a subject that does not fit the signer's profile gets
  a Failed condition instead. kubelet-serving is ValidateKubeletServingCSR's profile: O exactly
  [system:nodes], CN system:node:<name>, a DNS or IP SAN, no email or URI SAN, usages exactly
  {digital signature, key encipherment, server auth} or {digital signature, server auth}. Nothing
  approves serving requests by itself (kube-controller-manager's csrapproving does not): an admin does.
"""
from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from svcnet.core import pki

Obj = dict[str, Any]

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
KUBE_APISERVER_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN_SIGNER = "kubernetes.io/legacy-unknown"
# certificates/v1 KeyUsage values
KNOWN_USAGES = ("signing", "digital signature", "content commitment", "key encipherment", "key agreement",
                "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
                "server auth", "client auth", "code signing", "email protection", "s/mime",
                "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
                "microsoft sgc", "netscape sgc")
KUBELET_CLIENT_USAGES = frozenset({"key encipherment", "digital signature", "client auth"})
KUBELET_SERVING_USAGES = (frozenset({"digital signature", "key encipherment", "server auth"}),
                          frozenset({"digital signature", "server auth"}))  # the second: not an RSA key
MIN_EXPIRATION_SECONDS = 600
SIGNING_DURATION = dt.timedelta(days=365)  # kube-controller-manager --cluster-signing-duration
BACKDATE = dt.timedelta(minutes=5)  # the local signer backdates notBefore (clock skew)
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"


def parse_request(pem: bytes) -> x509.CertificateSigningRequest:
    """The one CERTIFICATE REQUEST block of pem, its signature checked; ValueError says why not."""
    text = pem.decode(errors="replace")
    if "-----BEGIN CERTIFICATE REQUEST-----" not in text:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        request = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise ValueError(f"x509: malformed certificate request: {exc}") from None
    if not request.is_signature_valid:
        raise ValueError("x509: CSR signature is not valid")
    return request


def request_bytes(csr: Obj) -> bytes:
    """spec.request, decoded from the base64 JSON carries it in."""
    raw = (csr.get("spec") or {}).get("request") or ""
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return b""


def subject_of(request: x509.CertificateSigningRequest) -> tuple[str, tuple[str, ...]]:
    cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


def _has_sans(request: x509.CertificateSigningRequest) -> bool:
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return len(list(sans)) > 0


def kubelet_client_problems(request: x509.CertificateSigningRequest, usages: list[str]) -> list[str]:
    """Why this request is not a kubelet client certificate request (empty: it is one)."""
    cn, orgs = subject_of(request)
    problems = []
    if list(orgs) != [NODES_GROUP]:
        problems.append(f"subject organization is not {NODES_GROUP}")
    if not cn.startswith(NODE_PREFIX):
        problems.append(f'subject common name does not begin with "{NODE_PREFIX}"')
    if _has_sans(request):
        problems.append("DNS, email, IP or URI subjectAltNames are not allowed")
    return problems + _client_usage_problems(usages)


def _client_usage_problems(usages: list[str]) -> list[str]:
    """A client certificate's usages: "client auth", and nothing beyond the kubelet client's set."""
    problems = []
    if "client auth" not in usages:
        problems.append('missing required usage "client auth"')
    extra = sorted(set(usages) - KUBELET_CLIENT_USAGES)
    if extra:
        problems.append(f"usages did not match {sorted(KUBELET_CLIENT_USAGES)}: {extra}")
    return problems


def _sans(request: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def kubelet_serving_problems(request: x509.CertificateSigningRequest, usages: list[str]) -> list[str]:
    """Why this request is not a kubelet serving certificate request (empty: it is one)."""
    cn, orgs = subject_of(request)
    sans = _sans(request)
    problems = []
    if list(orgs) != [NODES_GROUP]:
        problems.append(f"subject organization is not {NODES_GROUP}")
    if sans is None or not (sans.get_values_for_type(x509.DNSName) or sans.get_values_for_type(x509.IPAddress)):
        problems.append("DNS or IP subjectAltName is required")
    if sans is not None and sans.get_values_for_type(x509.RFC822Name):
        problems.append("Email subjectAltNames are not allowed")
    if sans is not None and sans.get_values_for_type(x509.UniformResourceIdentifier):
        problems.append("URI subjectAltNames are not allowed")
    if frozenset(usages) not in KUBELET_SERVING_USAGES or len(set(usages)) != len(usages):
        problems.append(f"usages did not match {sorted(KUBELET_SERVING_USAGES[0])}")
    if not cn.startswith(NODE_PREFIX):
        problems.append(f'subject common name does not begin with "{NODE_PREFIX}"')
    return problems


def conditions(csr: Obj) -> list[Obj]:
    return list((csr.get("status") or {}).get("conditions") or [])


def has_condition(csr: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status", "True") == "True" for c in conditions(csr))


def is_approved(csr: Obj) -> bool:
    return has_condition(csr, "Approved") and not has_condition(csr, "Denied")


def condition(kind: str, reason: str, message: str, now: str) -> Obj:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}


@dataclass(frozen=True)
class ApprovalCheck:
    """One way a CSR may be auto-approved: the nodeclient subresource the requester must be
    allowed to create, and whether the CSR names the requester itself."""

    subresource: str
    message: str


SELF_NODE_CLIENT = ApprovalCheck("selfnodeclient", "Auto approving self kubelet client certificate after "
                                                   "SubjectAccessReview.")
NODE_CLIENT = ApprovalCheck("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview.")


def approval_checks(csr: Obj) -> list[ApprovalCheck]:
    """The permissions that would let this CSR be approved, in upstream's order (self first);
    empty when it is not a pending, well-formed kubelet client request."""
    spec = csr.get("spec") or {}
    if is_approved(csr) or has_condition(csr, "Denied") or (csr.get("status") or {}).get("certificate"):
        return []
    if spec.get("signerName") != KUBELET_CLIENT_SIGNER:
        return []
    try:
        request = parse_request(request_bytes(csr))
    except ValueError:
        return []
    if kubelet_client_problems(request, list(spec.get("usages") or [])):
        return []
    checks = []
    if subject_of(request)[0] == spec.get("username"):
        checks.append(SELF_NODE_CLIENT)
    checks.append(NODE_CLIENT)
    return checks


def approved(csr: Obj, check: ApprovalCheck, now: str) -> Obj:
    """The CSR with the Approved condition the approver adds for check."""
    out = {**csr, "status": {**(csr.get("status") or {})}}
    out["status"]["conditions"] = [*conditions(csr), condition("Approved", "AutoApproved", check.message, now)]
    return out


# ------------------------------------------------------------------ signing
@dataclass(frozen=True)
class Signed:
    certificate_pem: bytes | None  # set: write it to status.certificate
    failure: str = ""  # set: add a Failed condition (SignerValidationFailure) with this message


SIGNED_HERE = (KUBELET_CLIENT_SIGNER, KUBE_APISERVER_CLIENT_SIGNER, KUBELET_SERVING_SIGNER)


def wants_signing(csr: Obj) -> bool:
    spec = csr.get("spec") or {}
    return (spec.get("signerName") in SIGNED_HERE and is_approved(csr) and not has_condition(csr, "Failed")
            and not (csr.get("status") or {}).get("certificate"))


def client_problems(request: x509.CertificateSigningRequest, usages: list[str]) -> list[str]:
    """kubernetes.io/kube-apiserver-client: a client certificate for some user (never system:masters)."""
    cn, orgs = subject_of(request)
    problems = []
    if not cn:
        problems.append("subject common name is required")
    if "system:masters" in orgs:
        problems.append("system:masters is not an allowed organization")
    return problems + _client_usage_problems(usages)


def duration_of(csr: Obj, limit: dt.timedelta = SIGNING_DURATION) -> dt.timedelta:
    seconds = (csr.get("spec") or {}).get("expirationSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= MIN_EXPIRATION_SECONDS:
        return min(dt.timedelta(seconds=seconds), limit)
    return limit


def sign(csr: Obj, ca: pki.Authority, now: dt.datetime, limit: dt.timedelta = SIGNING_DURATION) -> Signed:
    """What the kubelet client signer does with an approved request."""
    spec = csr.get("spec") or {}
    try:
        request = parse_request(request_bytes(csr))
    except ValueError as exc:
        return Signed(None, f"unable to parse csr: {exc}")
    usages_ = list(spec.get("usages") or [])
    signer = spec.get("signerName")
    what, check = {KUBELET_CLIENT_SIGNER: ("kubelet client", kubelet_client_problems),
                   KUBELET_SERVING_SIGNER: ("kubelet serving", kubelet_serving_problems)}.get(
        signer, ("client", client_problems))
    problems = check(request, usages_)
    if problems:
        return Signed(None, f"invalid {what} certificate request: {'; '.join(problems)}")
    not_after = min(now + duration_of(csr, limit), ca.cert.not_valid_after_utc)
    usages = set(spec.get("usages") or [])
    builder = (x509.CertificateBuilder()
               .subject_name(request.subject)
               .issuer_name(ca.cert.subject)
               .public_key(request.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - BACKDATE)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if signer == KUBELET_SERVING_SIGNER
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    sans = _sans(request)
    if signer == KUBELET_SERVING_SIGNER and sans is not None:  # the names and addresses it serves on
        builder = builder.add_extension(sans, critical=False)
    if usages & {"digital signature", "key encipherment"}:
        # as Go's x509 (and so upstream's signer), no KeyUsage extension at all when no bit is asked
        # for: one with every bit clear is invalid, and TLS servers refuse the certificate
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature="digital signature" in usages, key_encipherment="key encipherment" in usages,
            content_commitment=False, data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
    return Signed(pki.cert_pem(builder.sign(ca.key, hashes.SHA256())))


def new_serving_request_pem(key, node_name: str, dns_names: tuple[str, ...], ips: tuple[str, ...]) -> bytes:
    """A kubelet serving certificate request (kubelet's serverTLSBootstrap): CN system:node:<name>,
    O system:nodes, the node's name and addresses as SANs."""
    import ipaddress

    from cryptography.hazmat.primitives import serialization

    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(pki.subject(NODE_PREFIX + node_name, (NODES_GROUP,)))
               .add_extension(x509.SubjectAlternativeName(names), critical=False)
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM)


def new_request_pem(key, node_name: str) -> bytes:
    """A kubelet client certificate request for node_name with key (what kubelet's bootstrap makes)."""
    from cryptography.hazmat.primitives import serialization

    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(pki.subject(NODE_PREFIX + node_name, (NODES_GROUP,)))
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM)
