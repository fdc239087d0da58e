"""certificates.k8s.io/v1 types: CertificateSigningRequest (Kubernetes 1.32's k8s.io/api/certificates/v1)."""
from __future__ import annotations

from .dsl import CERTIFICATES, define, define_kind

define_kind(CERTIFICATES, "CertificateSigningRequest", "certificates.k8s.io", "v1", """
    spec CertificateSigningRequestSpec
    status CertificateSigningRequestStatus
""", required="spec")
define(CERTIFICATES, "CertificateSigningRequestSpec", """
    expirationSeconds int32
    extra {}[]string
    groups []string list=atomic
    request bytes list=atomic
    signerName string
    uid string
    usages []string list=atomic
    username string
""", required="request signerName")
define(CERTIFICATES, "CertificateSigningRequestStatus", """
    certificate bytes list=atomic
    conditions []CertificateSigningRequestCondition list=map keys=type
""")
define(CERTIFICATES, "CertificateSigningRequestCondition", """
    lastTransitionTime time
    lastUpdateTime time
    message string
    reason string
    status string go=v1.ConditionStatus
    type string go=v1.RequestConditionType
""", required="type status")
