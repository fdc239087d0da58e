"""Request paths, content negotiation and body decoding, without a socket."""
from __future__ import annotations

import pytest

from svcnet.api.errors import ApiError
from svcnet.apiserver import http


@pytest.mark.parametrize("path, plural, namespace, name, sub", [
    ("/api/v1/pods", "pods", None, None, None),
    ("/api/v1/namespaces/default/pods", "pods", "default", None, None),
    ("/api/v1/namespaces/default/pods/p1", "pods", "default", "p1", None),
    ("/api/v1/namespaces/default/pods/p1/log", "pods", "default", "p1", "log"),
    ("/api/v1/namespaces", "namespaces", None, None, None),
    ("/api/v1/namespaces/kube-system", "namespaces", None, "kube-system", None),
    ("/api/v1/namespaces/kube-system/status", "namespaces", None, "kube-system", "status"),
    ("/api/v1/namespaces/kube-system/finalize", "namespaces", None, "kube-system", "finalize"),
    ("/api/v1/nodes/n1/status", "nodes", None, "n1", "status"),
    ("/api/v1/nodes/n1/proxy", "nodes", None, "n1", "proxy"),
    ("/api/v1/nodes/n1/proxy/stats/summary", "nodes", None, "n1", "proxy"),  # the rest is the kubelet's path
    ("/apis/apps/v1/namespaces/default/deployments/hostnames/scale", "deployments", "default",
     "hostnames", "scale"),
    ("/apis/discovery.k8s.io/v1/endpointslices", "endpointslices", None, None, None),
    ("/api/v1/watch/namespaces/default/services", "services", "default", None, None),
])
def test_resource_paths_parse(path, plural, namespace, name, sub):
    rp = http.parse_resource_path(path)
    assert rp is not None
    assert (rp.resource.plural, rp.namespace, rp.name, rp.subresource) == (plural, namespace, name, sub)


@pytest.mark.parametrize("path", [
    "/api/v1/widgets", "/api/v1/namespaces/default/nodes", "/api/v1/pods/p/bogus",
    "/apis/apps/v1/namespaces/default/deployments/d/scale/extra",
    "/api/v1/namespaces/default/pods/p/log/extra", "/api/v1/namespaces/default/pods/p/proxy/x",
])
def test_unknown_resource_paths_are_not_found(path):
    with pytest.raises(ApiError) as err:
        http.parse_resource_path(path)
    assert err.value.code == 404


@pytest.mark.parametrize("path", ["/version", "/api", "/apis/apps", "/openapi/v3"])
def test_non_resource_paths_are_not_resource_paths(path):
    assert http.parse_resource_path(path) is None


@pytest.mark.parametrize("accept, as_kind, yaml_out", [
    (None, None, False),
    ("application/json", None, False),
    ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
     "g=meta.k8s.io,application/json", "Table", False),
    ("application/vnd.kubernetes.protobuf, application/json", None, False),
    ("application/yaml", None, True),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", "PartialObjectMetadataList",
     False),
    ("*/*", None, False),
])
def test_negotiation_picks_the_first_representation_svcnet_has(accept, as_kind, yaml_out):
    fmt = http.negotiate(accept)
    assert fmt.as_kind == as_kind and fmt.yaml == yaml_out


def test_negotiation_refuses_protobuf_only():
    with pytest.raises(ApiError) as err:
        http.negotiate("application/vnd.kubernetes.protobuf")
    assert err.value.code == 406


def test_bodies_decode_json_and_yaml_and_report_duplicate_fields():
    assert http.decode_body("application/json", b'{"a": 1}').value == {"a": 1}
    assert http.decode_body("application/yaml", b"a: 1\n").value == {"a": 1}
    assert http.decode_body("application/json", b'{"a": {"b": 1, "b": 2}}').duplicate_fields == ["a.b"]


def test_protobuf_bodies_of_known_kinds_decode_to_their_json_form():
    body = bytes.fromhex("6b3873000a0f0a02763112094e616d65737061636512190a110a017812001a0022002a003200"
                         "3800420012001a020a001a002200")  # `kubectl create namespace x`
    decoded = http.decode_body("application/vnd.kubernetes.protobuf", body)
    assert decoded.value == {"kind": "Namespace", "apiVersion": "v1",
                             "metadata": {"name": "x", "creationTimestamp": None},
                             "spec": {}, "status": {}}
    assert decoded.duplicate_fields == []


@pytest.mark.parametrize("content_type, body, code", [
    ("application/vnd.kubernetes.protobuf", b"k8s\x00", 400),  # an envelope without a kind
    ("application/vnd.kubernetes.protobuf", b"not protobuf", 400),
    # a well-formed envelope around policy/v1 Eviction, a kind svcnet has no protobuf table for
    ("application/vnd.kubernetes.protobuf", b"k8s\x00\x0a\x15\x0a\x09policy/v1\x12\x08Eviction", 415),
    ("application/json", b"{not json", 400),
    ("application/json", b"", 400),
    ("application/yaml", b"a: [1", 400),
    ("text/html", b"<html/>", 415),
])
def test_bad_bodies_are_refused(content_type, body, code):
    with pytest.raises(ApiError) as err:
        http.decode_body(content_type, body)
    assert err.value.code == code
