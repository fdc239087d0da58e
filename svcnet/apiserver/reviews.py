"""The create-only review kinds, answered from the request's user and never stored:
authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`) and authorization.k8s.io/v1
SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview and
SelfSubjectRulesReview (`kubectl auth can-i --list`), as kube-apiserver's
pkg/registry/authentication and pkg/registry/authorization REST handlers answer them."""
from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import Cause
from svcnet.api.resources import REVIEW_RESOURCES, Resource
from svcnet.apiserver import http, params
from svcnet.apiserver.authz import Authorizer
from svcnet.apiserver.registry import WriteOptions
from svcnet.apiserver.responses import encoded
from svcnet.apiserver.validation.fields import GoLiteral, invalid
from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.authorizer import rules_for
from svcnet.core.rbac.identity import User

Obj = dict[str, Any]
SERVED = {r.kind: r for r in REVIEW_RESOURCES}


def is_review(res: Resource) -> bool:
    return SERVED.get(res.kind) is res


async def serve(request: web.Request, rp: http.ResourcePath, user: User, authorizer: Authorizer,
                now: dt.datetime) -> web.Response:
    res = rp.resource
    if request.method != "POST" or not rp.is_collection:
        raise errors.method_not_allowed(f"{request.method} is not supported on {res.plural}")
    body = await params.read_object(request, WriteOptions())
    if body.get("kind") not in (None, "", res.kind):
        raise errors.bad_request(f"the object provided is unrecognized (must be of type {res.kind})")
    review = copy.deepcopy(body)
    review["apiVersion"], review["kind"] = res.api_version, res.kind
    review.setdefault("metadata", {})
    if res.kind == "SelfSubjectReview":
        review["metadata"]["creationTimestamp"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        review["status"] = {"userInfo": user_info(user)}
    elif res.kind == "SelfSubjectRulesReview":
        review["status"] = rules_review_status(authorizer, user, str((body.get("spec") or {}).get("namespace") or ""))
    else:
        review.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        spec = body.get("spec") or {}
        subject = user if res.kind == "SelfSubjectAccessReview" else _subject(res.kind, spec)
        if res.kind == "LocalSubjectAccessReview":
            _check_local(review, spec, rp.namespace or "")
        review["status"] = access_review_status(authorizer, _access_attributes(res.kind, spec, subject))
    return encoded(review, http.negotiate(request.headers.get("Accept")), status=201)


def user_info(user: User) -> Obj:
    info: Obj = {"username": user.name}
    if user.uid:
        info["uid"] = user.uid
    if user.groups:
        info["groups"] = list(user.groups)
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


def _subject(kind: str, spec: Obj) -> User:
    name, groups = str(spec.get("user") or ""), tuple(str(g) for g in spec.get("groups") or [])
    if not name and not groups:
        raise errors.invalid(kind, "", [invalid("spec.user", name, "at least one of user or group must be specified")],
                             "authorization.k8s.io")
    extra = {str(k): tuple(str(x) for x in v or []) for k, v in (spec.get("extra") or {}).items()}
    return User(name, groups, str(spec.get("uid") or ""), extra)


def _check_local(review: Obj, spec: Obj, namespace: str) -> None:
    """A LocalSubjectAccessReview asks about its own namespace only, and about no URL."""
    md = review["metadata"]
    if md.get("namespace") and md["namespace"] != namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                 "the request")
    md["namespace"] = namespace
    causes: list[Cause] = []
    attrs = spec.get("resourceAttributes")
    if attrs is not None and str(attrs.get("namespace") or "") != namespace:
        causes.append(invalid("spec.resourceAttributes.namespace", str(attrs.get("namespace") or ""),
                              "must match metadata.namespace"))
    if spec.get("nonResourceAttributes") is not None:
        causes.append(invalid("spec.nonResourceAttributes", GoLiteral("&authorization.NonResourceAttributes{...}"),
                              "disallowed on this kind of request"))
    if causes:
        raise errors.invalid("LocalSubjectAccessReview", "", causes, "authorization.k8s.io")


def _access_attributes(kind: str, spec: Obj, user: User) -> Attributes:
    """ResourceAttributesFrom / NonResourceAttributesFrom, after ValidateSubjectAccessReviewSpec's
    one-of check."""
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    causes: list[Cause] = []
    if resource is not None and non_resource is not None:
        causes.append(invalid("spec.nonResourceAttributes", GoLiteral("&authorization.NonResourceAttributes{...}"),
                              "cannot be specified in combination with resourceAttributes"))
    elif resource is None and non_resource is None:
        causes.append(invalid("spec.resourceAttributes", None,
                              "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
    if causes:
        raise errors.invalid(kind, "", causes, "authorization.k8s.io")
    if non_resource is not None:
        return Attributes(user, str(non_resource.get("verb") or ""), False, path=str(non_resource.get("path") or ""))
    r = resource
    return Attributes(user, str(r.get("verb") or ""), True, namespace=str(r.get("namespace") or ""),
                      api_group=str(r.get("group") or ""), api_version=str(r.get("version") or ""),
                      resource=str(r.get("resource") or ""), subresource=str(r.get("subresource") or ""),
                      name=str(r.get("name") or ""))


def access_review_status(authorizer: Authorizer, attrs: Attributes) -> Obj:
    decision = authorizer.decide(attrs)
    status: Obj = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def rules_review_status(authorizer: Authorizer, user: User, namespace: str) -> Obj:
    """The rules the user holds in namespace, as SelfSubjectRulesReview lists them; a
    resolution error marks the list incomplete."""
    rules, failures = rules_for(authorizer.policy, user, namespace)
    resource_rules, non_resource_rules = [], []
    for rule in rules:
        if rule.non_resource_urls:
            non_resource_rules.append({"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)})
        else:
            entry: Obj = {"verbs": list(rule.verbs), "apiGroups": list(rule.api_groups),
                          "resources": list(rule.resources)}
            if rule.resource_names:
                entry["resourceNames"] = list(rule.resource_names)
            resource_rules.append(entry)
    status: Obj = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                   "incomplete": bool(failures)}
    if failures:
        status["evaluationError"] = failures[0] if len(failures) == 1 else "[" + ", ".join(failures) + "]"
    return status
