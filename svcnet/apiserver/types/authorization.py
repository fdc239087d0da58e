"""authorization.k8s.io/v1 review types (SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectAccessReview, SelfSubjectRulesReview) and authentication.k8s.io/v1 SelfSubjectReview: create-only kinds
answered in their status, never stored."""
from __future__ import annotations

from .dsl import AUTHENTICATION, AUTHORIZATION, META, define, define_kind

A = "authorization.k8s.io"

define(META, "FieldSelectorRequirement", """
    key string
    operator string
    values []string list=atomic
""", required="key operator")

define(AUTHORIZATION, "ResourceAttributes", """
    fieldSelector FieldSelectorAttributes
    group string
    labelSelector LabelSelectorAttributes
    name string
    namespace string
    resource string
    subresource string
    verb string
    version string
""")
define(AUTHORIZATION, "FieldSelectorAttributes", """
    rawSelector string
    requirements []meta.FieldSelectorRequirement list=atomic
""")
define(AUTHORIZATION, "LabelSelectorAttributes", """
    rawSelector string
    requirements []meta.LabelSelectorRequirement list=atomic
""")
define(AUTHORIZATION, "NonResourceAttributes", """
    path string
    verb string
""")
define(AUTHORIZATION, "SubjectAccessReviewSpec", """
    extra {}[]string
    groups []string list=atomic
    nonResourceAttributes NonResourceAttributes
    resourceAttributes ResourceAttributes
    uid string
    user string
""")
define(AUTHORIZATION, "SelfSubjectAccessReviewSpec", """
    nonResourceAttributes NonResourceAttributes
    resourceAttributes ResourceAttributes
""")
define(AUTHORIZATION, "SubjectAccessReviewStatus", """
    allowed bool
    denied bool
    evaluationError string
    reason string
""", required="allowed")
define_kind(AUTHORIZATION, "SubjectAccessReview", A, "v1", """
    spec SubjectAccessReviewSpec
    status SubjectAccessReviewStatus
""", required="spec", with_list=False)
define_kind(AUTHORIZATION, "LocalSubjectAccessReview", A, "v1", """
    spec SubjectAccessReviewSpec
    status SubjectAccessReviewStatus
""", required="spec", with_list=False)
define_kind(AUTHORIZATION, "SelfSubjectAccessReview", A, "v1", """
    spec SelfSubjectAccessReviewSpec
    status SubjectAccessReviewStatus
""", required="spec", with_list=False)

define(AUTHORIZATION, "SelfSubjectRulesReviewSpec", "namespace string")
define(AUTHORIZATION, "ResourceRule", """
    apiGroups []string list=atomic
    resourceNames []string list=atomic
    resources []string list=atomic
    verbs []string list=atomic
""", required="verbs")
define(AUTHORIZATION, "NonResourceRule", """
    nonResourceURLs []string list=atomic
    verbs []string list=atomic
""", required="verbs")
define(AUTHORIZATION, "SubjectRulesReviewStatus", """
    evaluationError string
    incomplete bool
    nonResourceRules []NonResourceRule list=atomic
    resourceRules []ResourceRule list=atomic
""", required="resourceRules nonResourceRules incomplete")
define_kind(AUTHORIZATION, "SelfSubjectRulesReview", A, "v1", """
    spec SelfSubjectRulesReviewSpec
    status SubjectRulesReviewStatus
""", required="spec", with_list=False)

define(AUTHENTICATION, "UserInfo", """
    extra {}[]string
    groups []string list=atomic
    uid string
    username string
""")
define(AUTHENTICATION, "SelfSubjectReviewStatus", "userInfo UserInfo")
define_kind(AUTHENTICATION, "SelfSubjectReview", "authentication.k8s.io", "v1",
            "status SelfSubjectReviewStatus", with_list=False)

# authentication.k8s.io/v1 TokenRequest (serviceaccounts/token) and TokenReview
define(AUTHENTICATION, "BoundObjectReference", """
    apiVersion string
    kind string
    name string
    uid string
""")
define(AUTHENTICATION, "TokenRequestSpec", """
    audiences []string list=atomic
    boundObjectRef BoundObjectReference
    expirationSeconds int64
""", required="audiences")
define(AUTHENTICATION, "TokenRequestStatus", """
    expirationTimestamp time
    token string
""", required="token expirationTimestamp")
define_kind(AUTHENTICATION, "TokenRequest", "authentication.k8s.io", "v1", """
    spec TokenRequestSpec
    status TokenRequestStatus
""", required="spec", with_list=False)
define(AUTHENTICATION, "TokenReviewSpec", """
    audiences []string list=atomic
    token string
""")
define(AUTHENTICATION, "TokenReviewStatus", """
    audiences []string list=atomic
    authenticated bool
    error string
    user UserInfo
""")
define_kind(AUTHENTICATION, "TokenReview", "authentication.k8s.io", "v1", """
    spec TokenReviewSpec
    status TokenReviewStatus
""", required="spec", with_list=False)
