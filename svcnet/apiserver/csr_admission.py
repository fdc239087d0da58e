"""The API server's side of CertificateSigningRequests: who asked (csrStrategy's
PrepareForCreate records the requester in the spec), and the admission plugins
certificates/approval (approving needs `approve` on the signer), certificates/signing
(issuing needs `sign` on the signer) and certificates/subjectrestriction (no system:masters
certificates from kubernetes.io/kube-apiserver-client).

Signer permissions are RBAC rules on the pseudo-resource certificates.k8s.io `signers`, named
by the signer name or by its domain with `/*` (kubernetes.io/*), as upstream checks them.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from svcnet.api import errors, meta
from svcnet.api.resources import Resource
from svcnet.apiserver.authz import CURRENT_ATTRIBUTES, CURRENT_USER, Authorizer
from svcnet.core import csr as csrcore
from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.identity import User

Obj = dict[str, Any]
GROUP = "certificates.k8s.io"


def _may(authorizer: Authorizer, user: User, verb: str, signer: str) -> bool:
    names = [signer] + ([signer.split("/", 1)[0] + "/*"] if "/" in signer else [])
    return any(authorizer.decide(Attributes(user, verb, True, api_group=GROUP, api_version="v1",
                                            resource="signers", name=name)).allowed for name in names)


class CsrAdmission:
    """An Admission hook of the Registry for CertificateSigningRequests."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def admit(self, op: str, resource: Resource, obj: Obj, old: Obj | None, dry_run: bool = False) -> None:
        if resource.kind != "CertificateSigningRequest" or resource.group != GROUP:
            return
        user = CURRENT_USER.get()
        if op == "CREATE":
            self._record_requester(obj, user)
            self._restrict_subject(obj)
            return
        _stamp_conditions(obj, old)
        attrs = CURRENT_ATTRIBUTES.get()
        if user is None or user.privileged or old is None or attrs is None:
            return  # the server itself, or system:masters (allowed everything, as upstream)
        signer = str((obj.get("spec") or {}).get("signerName") or "")
        name = str((obj.get("metadata") or {}).get("name") or "")
        if attrs.subresource == "approval" and _approval(obj) != _approval(old) and \
                not _may(self.authorizer, user, "approve", signer):
            raise _forbidden(name, f'user not permitted to approve requests with signerName "{signer}"')
        if attrs.subresource == "status" and (obj.get("status") or {}).get("certificate") != \
                (old.get("status") or {}).get("certificate") and not _may(self.authorizer, user, "sign", signer):
            raise _forbidden(name, f'user not permitted to sign requests with signerName "{signer}"')

    @staticmethod
    def _record_requester(obj: Obj, user: User | None) -> None:
        spec = obj.setdefault("spec", {})
        if user is None:
            return
        spec["username"] = user.name
        spec["groups"] = list(user.groups)
        if user.uid:
            spec["uid"] = user.uid
        else:
            spec.pop("uid", None)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        else:
            spec.pop("extra", None)

    @staticmethod
    def _restrict_subject(obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if spec.get("signerName") != csrcore.KUBE_APISERVER_CLIENT_SIGNER:
            return
        try:
            request = csrcore.parse_request(csrcore.request_bytes(obj))
        except ValueError:
            return  # validation refuses it
        if "system:masters" in csrcore.subject_of(request)[1]:
            raise _forbidden(str((obj.get("metadata") or {}).get("name") or ""),
                             f"use of {csrcore.KUBE_APISERVER_CLIENT_SIGNER} signer with system:masters group is "
                             f"not allowed")

    def released(self, resource: Resource, obj: Obj) -> None:
        return None


def _stamp_conditions(obj: Obj, old: Obj | None) -> None:
    """populateConditionTimestamps: a condition without lastUpdateTime gets now; without
    lastTransitionTime, the old one's when type and status are unchanged, else now."""
    now = meta.rfc3339(dt.datetime.now(dt.UTC))
    before = {c.get("type"): c for c in csrcore.conditions(old or {})}
    for cond in csrcore.conditions(obj):
        if not cond.get("lastUpdateTime"):
            cond["lastUpdateTime"] = now
        if not cond.get("lastTransitionTime"):
            previous = before.get(cond.get("type")) or {}
            same = previous.get("status") == cond.get("status") and previous.get("lastTransitionTime")
            cond["lastTransitionTime"] = previous["lastTransitionTime"] if same else now


def _forbidden(name: str, reason: str) -> errors.ApiError:
    """The admission plugin's 403, as kube-apiserver words it."""
    return errors.forbidden("certificatesigningrequests", name,
                            f'certificatesigningrequests.{GROUP} "{name}" is forbidden: {reason}', GROUP)


def _approval(csr: Obj) -> list[tuple[str, str]]:
    return sorted((str(c.get("type")), str(c.get("status"))) for c in csrcore.conditions(csr)
                  if c.get("type") in ("Approved", "Denied"))
