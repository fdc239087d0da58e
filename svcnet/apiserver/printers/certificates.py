"""certificates.k8s.io/v1 CertificateSigningRequest: printCertificateSigningRequest's columns and cells."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, NAME, Column, Printer
from .format import Cell, Obj, age_cell, get_path, human_duration, name_cell


def csr_condition(csr: Obj) -> str:
    """extractCSRStatus: Denied over Approved over Pending, then ,Failed and ,Issued."""
    kinds = {c.get("type") for c in get_path(csr, "status", "conditions", default=None) or [] if isinstance(c, dict)}
    status = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        status += ",Failed"
    if get_path(csr, "status", "certificate", default=""):
        status += ",Issued"
    return status


def _csr_cells(csr: Obj, now: dt.datetime) -> list[Cell]:
    seconds = get_path(csr, "spec", "expirationSeconds", default=None)
    duration = human_duration(dt.timedelta(seconds=seconds)) if isinstance(seconds, int) else "<none>"
    return [name_cell(csr), age_cell(csr, now), str(get_path(csr, "spec", "signerName", default="") or "<none>"),
            str(get_path(csr, "spec", "username", default="")), duration, csr_condition(csr)]


CERTIFICATES_PRINTERS = {
    ("certificates.k8s.io", "CertificateSigningRequest"): Printer((
        NAME, AGE,
        Column("SignerName", "string", "Requested signer for the request. It is a qualified name in the form: "
                                       "`scope-hostname.io/name`."),
        Column("Requestor", "string", "request contains an x509 certificate signing request encoded in a "
                                      "\"CERTIFICATE REQUEST\" PEM block."),
        Column("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the "
                                              "issued certificate."),
        Column("Condition", "string", "conditions applied to the request. Known conditions are \"Approved\", "
                                      "\"Denied\", and \"Failed\"."),
    ), _csr_cells),
}
