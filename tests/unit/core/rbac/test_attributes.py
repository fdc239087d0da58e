"""Request attributes as kube-apiserver's RequestInfoFactory derives them (cases after its
requestinfo_test.go), and the 403 wording of the authorization filter."""
from __future__ import annotations

import pytest

from svcnet.core.rbac.attributes import Attributes, forbidden_status_message, request_attributes
from svcnet.core.rbac.identity import User

BOB = User("bob", ("system:authenticated",))

# method, path, query -> verb, namespace, group, version, resource, subresource, name
RESOURCE_CASES = [
    ("GET", "/api/v1/namespaces", {}, ("list", "", "", "v1", "namespaces", "", "")),
    ("GET", "/api/v1/namespaces/other", {}, ("get", "other", "", "v1", "namespaces", "", "other")),
    ("GET", "/api/v1/namespaces/other/pods", {}, ("list", "other", "", "v1", "pods", "", "")),
    ("GET", "/api/v1/namespaces/other/pods/foo", {}, ("get", "other", "", "v1", "pods", "", "foo")),
    ("HEAD", "/api/v1/namespaces/other/pods/foo", {}, ("get", "other", "", "v1", "pods", "", "foo")),
    ("GET", "/api/v1/pods", {}, ("list", "", "", "v1", "pods", "", "")),
    ("GET", "/api/v1/namespaces/other/pods", {"watch": "true"}, ("watch", "other", "", "v1", "pods", "", "")),
    ("GET", "/api/v1/watch/pods", {}, ("watch", "", "", "v1", "pods", "", "")),
    ("GET", "/api/v1/watch/namespaces/other/pods", {}, ("watch", "other", "", "v1", "pods", "", "")),
    ("GET", "/api/v1/namespaces/other/pods", {"fieldSelector": "metadata.name=foo"},
     ("list", "other", "", "v1", "pods", "", "foo")),
    ("GET", "/api/v1/namespaces/other/pods", {"watch": "1", "fieldSelector": "metadata.name==foo"},
     ("watch", "other", "", "v1", "pods", "", "foo")),
    ("GET", "/api/v1/namespaces/other/pods", {"fieldSelector": "metadata.name!=foo"},
     ("list", "other", "", "v1", "pods", "", "")),
    ("POST", "/api/v1/namespaces/other/pods", {}, ("create", "other", "", "v1", "pods", "", "")),
    ("PUT", "/api/v1/namespaces/other/pods/foo", {}, ("update", "other", "", "v1", "pods", "", "foo")),
    ("PATCH", "/api/v1/namespaces/other/pods/foo", {}, ("patch", "other", "", "v1", "pods", "", "foo")),
    ("DELETE", "/api/v1/namespaces/other/pods/foo", {}, ("delete", "other", "", "v1", "pods", "", "foo")),
    ("DELETE", "/api/v1/namespaces/other/pods", {}, ("deletecollection", "other", "", "v1", "pods", "", "")),
    ("GET", "/api/v1/namespaces/other/pods/foo/log", {}, ("get", "other", "", "v1", "pods", "log", "foo")),
    ("POST", "/api/v1/namespaces/other/pods/foo/exec", {}, ("create", "other", "", "v1", "pods", "exec", "foo")),
    ("PUT", "/api/v1/namespaces/other/finalize", {}, ("update", "other", "", "v1", "namespaces", "finalize",
                                                      "other")),
    ("PUT", "/api/v1/namespaces/other/status", {}, ("update", "other", "", "v1", "namespaces", "status", "other")),
    ("GET", "/apis/apps/v1/namespaces/other/deployments/web/scale", {},
     ("get", "other", "apps", "v1", "deployments", "scale", "web")),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view", {},
     ("get", "", "rbac.authorization.k8s.io", "v1", "clusterroles", "", "view")),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo/a/b", {},
     ("proxy", "other", "", "v1", "pods", "", "foo")),
]


@pytest.mark.parametrize(("method", "path", "query", "want"), RESOURCE_CASES)
def test_resource_request_attributes(method, path, query, want) -> None:
    a = request_attributes(BOB, method, path, query)
    assert a.resource_request
    assert (a.verb, a.namespace, a.api_group, a.api_version, a.resource, a.subresource, a.name) == want


@pytest.mark.parametrize(("method", "path", "verb"), [
    ("GET", "/", "get"), ("GET", "/version", "get"), ("GET", "/api", "get"), ("GET", "/api/v1", "get"),
    ("GET", "/apis", "get"), ("GET", "/apis/apps", "get"), ("GET", "/apis/apps/v1", "get"),
    ("GET", "/openapi/v3/api/v1", "get"), ("POST", "/foo/bar", "post"), ("HEAD", "/healthz", "head"),
    ("GET", "/api/v1/watch", "get"),
])
def test_non_resource_request_attributes(method: str, path: str, verb: str) -> None:
    a = request_attributes(BOB, method, path, {})
    assert not a.resource_request
    assert (a.verb, a.path) == (verb, path)


@pytest.mark.parametrize(("attrs", "message"), [
    (Attributes(BOB, "list", True, namespace="default", resource="pods"),
     'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default"'),
    (Attributes(BOB, "get", True, namespace="default", resource="pods", subresource="log", name="web"),
     'pods "web" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in the namespace '
     '"default"'),
    (Attributes(BOB, "list", True, api_group="apps", resource="deployments"),
     'deployments.apps is forbidden: User "bob" cannot list resource "deployments" in API group "apps" '
     'at the cluster scope'),
    (Attributes(BOB, "get", False, path="/metrics"),
     'forbidden: User "bob" cannot get path "/metrics"'),
])
def test_forbidden_message_is_upstreams(attrs: Attributes, message: str) -> None:
    assert forbidden_status_message(attrs) == message


def test_a_reason_follows_the_message_after_a_colon() -> None:
    attrs = Attributes(BOB, "get", True, namespace="ns", resource="pods", name="x")
    assert forbidden_status_message(attrs, "RBAC: role.rbac.authorization.k8s.io \"gone\" not found").endswith(
        'in the namespace "ns": RBAC: role.rbac.authorization.k8s.io "gone" not found')
