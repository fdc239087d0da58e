"""certificates.k8s.io/v1 CertificateSigningRequest, as pkg/apis/certificates/validation words it:
the PEM request must parse, signerName is a qualified `domain/path`, usages are known and
distinct, expirationSeconds at least 600; conditions are well formed, Approved and Denied
exclude each other, and status.certificate holds only PEM CERTIFICATE blocks."""
from __future__ import annotations

import base64
import re

from cryptography import x509

from svcnet.api.errors import Cause
from svcnet.core import csr as csrcore

from .fields import Obj, as_dict, as_list, duplicate, forbidden, invalid, not_supported, required

_SIGNER = re.compile(r"^(?=.{1,571}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+/"
                     r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?(/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)*$")
_CONDITION_TYPES = ("Approved", "Denied", "Failed")
_CONDITION_STATUSES = ("True", "False", "Unknown")


def validate_csr(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    errs = _validate_request(spec) + _validate_signer(spec) + _validate_usages(spec)
    seconds = spec.get("expirationSeconds")
    if seconds is not None and (not isinstance(seconds, int) or seconds < csrcore.MIN_EXPIRATION_SECONDS):
        errs.append(invalid("spec.expirationSeconds", seconds, "may not specify a duration less than 600 seconds "
                                                               "(10 minutes)"))
    status = as_dict(obj.get("status"))
    errs += _validate_conditions(as_list(status.get("conditions")))
    errs += _validate_certificate(status.get("certificate"))
    if old is not None:
        old_status = as_dict(old.get("status"))
        if old_status.get("certificate") and status.get("certificate") != old_status.get("certificate"):
            errs.append(invalid("status.certificate", "<certificate data>", "updates may not modify existing "
                                                                           "certificate content"))
    return errs


def _validate_request(spec: Obj) -> list[Cause]:
    raw = spec.get("request")
    if not raw:
        return [required("spec.request")]
    try:
        pem = base64.b64decode(str(raw), validate=True)
        csrcore.parse_request(pem)
    except ValueError as exc:
        return [invalid("spec.request", "<request data>", str(exc))]
    return []


def _validate_signer(spec: Obj) -> list[Cause]:
    name = spec.get("signerName")
    if not name:
        return [required("spec.signerName")]
    if not isinstance(name, str) or not _SIGNER.match(name):
        return [invalid("spec.signerName", name, "must be a fully qualified domain and path of the form "
                                                 "'example.com/signer-name'")]
    return []


def _validate_usages(spec: Obj) -> list[Cause]:
    usages = as_list(spec.get("usages"))
    if not usages:
        return [required("spec.usages")]
    errs: list[Cause] = []
    seen: set[str] = set()
    for i, usage in enumerate(usages):
        if usage not in csrcore.KNOWN_USAGES:
            errs.append(not_supported(f"spec.usages[{i}]", usage, csrcore.KNOWN_USAGES))
        elif usage in seen:
            errs.append(duplicate(f"spec.usages[{i}]", usage))
        seen.add(str(usage))
    return errs


def _validate_conditions(conditions: list) -> list[Cause]:
    errs: list[Cause] = []
    seen: set[str] = set()
    for i, cond in enumerate(conditions):
        cond = as_dict(cond)
        path = f"status.conditions[{i}]"
        kind, status = cond.get("type"), cond.get("status")
        if not kind:
            errs.append(required(f"{path}.type"))
        elif kind in _CONDITION_TYPES and kind in seen:
            errs.append(duplicate(f"{path}.type", kind))
        if not status:
            errs.append(required(f"{path}.status"))
        elif kind in _CONDITION_TYPES and status != "True":
            errs.append(not_supported(f"{path}.status", status, ("True",)))
        elif status not in _CONDITION_STATUSES:
            errs.append(not_supported(f"{path}.status", status, _CONDITION_STATUSES))
        seen.add(str(kind))
    if "Approved" in seen and "Denied" in seen:
        errs.append(invalid("status.conditions", "<conditions>", "Approved and Denied conditions are mutually "
                                                                  "exclusive"))
    return errs


def _validate_certificate(raw) -> list[Cause]:
    if not raw:
        return []
    try:
        pem = base64.b64decode(str(raw), validate=True)
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        return [invalid("status.certificate", "<certificate data>", f"must contain PEM CERTIFICATE blocks: {exc}")]
    if not certs or pem.count(b"-----BEGIN ") != len(certs):
        return [forbidden("status.certificate", "only PEM CERTIFICATE blocks are allowed")]
    return []
