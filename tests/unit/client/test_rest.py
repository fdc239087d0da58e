"""The pure edges of the REST client: paths, errors, watch line splitting, options."""
from __future__ import annotations

import json

import pytest

from svcnet.api import errors
from svcnet.api.resources import lookup
from svcnet.client.rest import (
    LineSplitter,
    TransportError,
    _decode_watch_line,
    api_error_from_response,
    delete_options,
    resource_path,
)

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
DEPLOYMENTS = lookup("apps", "v1", "deployments")


@pytest.mark.parametrize("resource, namespace, name, sub, path", [
    (PODS, None, None, None, "/api/v1/pods"),
    (PODS, "default", None, None, "/api/v1/namespaces/default/pods"),
    (PODS, "default", "web-1", "status", "/api/v1/namespaces/default/pods/web-1/status"),
    (NODES, "ignored", "node-1", None, "/api/v1/nodes/node-1"),
    (DEPLOYMENTS, "kube-system", "coredns", "scale",
     "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale"),
    (PODS, "default", "a b", None, "/api/v1/namespaces/default/pods/a%20b"),
])
def test_resource_path(resource, namespace, name, sub, path):
    assert resource_path(resource, namespace, name, sub) == path


def test_status_body_is_rebuilt_as_the_same_api_error():
    original = errors.invalid("Service", "web", [errors.Cause("spec.ports", "Required value",
                                                              "FieldValueRequired")])
    rebuilt = api_error_from_response(422, json.dumps(original.status()).encode())
    assert rebuilt.status() == original.status()
    assert (rebuilt.code, rebuilt.reason, rebuilt.name, rebuilt.kind) == (422, "Invalid", "web", "Service")


@pytest.mark.parametrize("code, body, reason, message", [
    (404, b"404 page not found", "NotFound", "404 page not found"),
    (503, b"", "ServiceUnavailable", "the server responded with 503"),
    (409, b'{"kind":"Status","code":409,"reason":"AlreadyExists","message":"x"}', "AlreadyExists", "x"),
])
def test_non_status_bodies_fall_back_to_the_http_code(code, body, reason, message):
    err = api_error_from_response(code, body)
    assert (err.code, err.reason, err.message) == (code, reason, message)


def test_line_splitter_joins_a_line_split_across_chunks_and_keeps_huge_lines_whole():
    big = b'{"type":"ADDED","object":{"data":"' + b"x" * 300_000 + b'"}}'
    stream = big + b"\n" + b'{"type":"DELETED","object":{}}\n'
    splitter = LineSplitter()
    lines: list[bytes] = []
    for i in range(0, len(stream), 7000):
        lines += splitter.feed(stream[i:i + 7000])
    assert lines == [big, b'{"type":"DELETED","object":{}}']
    assert splitter.tail() == b""


def test_line_splitter_returns_an_unterminated_last_line_as_tail():
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert splitter.feed(b":2}") == []
    assert splitter.tail() == b'{"b":2}'


def test_line_splitter_refuses_a_line_past_its_cap():
    splitter = LineSplitter(max_line=10)
    with pytest.raises(ValueError):
        splitter.feed(b"x" * 11)


def test_watch_error_event_is_raised_as_its_api_error():
    status = errors.gone("too old resource version: 5 (10)").status()
    with pytest.raises(errors.ApiError) as info:
        _decode_watch_line(json.dumps({"type": "ERROR", "object": status}).encode())
    assert (info.value.code, info.value.reason) == (410, "Expired")


def test_undecodable_watch_line_is_a_transport_error():
    with pytest.raises(TransportError):
        _decode_watch_line(b"not json")


def test_delete_options_only_carries_what_was_asked():
    assert delete_options() is None
    assert delete_options("Foreground", 0, {"uid": "u"}) == {
        "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
        "gracePeriodSeconds": 0, "preconditions": {"uid": "u"}}


def test_ssl_context_loads_ca_and_client_key_pair_without_leaving_files(tmp_path, monkeypatch):
    import ssl
    import tempfile

    from svcnet.apiserver.credentials import ensure_credentials
    from svcnet.client.config import ClientConfig
    from svcnet.client.rest import _ssl_context

    creds = ensure_credentials(tmp_path / "pki-home")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cfg = ClientConfig(server="https://127.0.0.1:1", ca_data=creds.ca_cert.read_bytes(),
                       client_cert_data=creds.server_cert.read_bytes(),
                       client_key_data=creds.server_key.read_bytes())
    ctx = _ssl_context(cfg)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # the configured CA only, not the system roots
    assert list(scratch.iterdir()) == []


def test_insecure_ssl_context_skips_verification():
    import ssl

    from svcnet.client.config import ClientConfig
    from svcnet.client.rest import _ssl_context

    ctx = _ssl_context(ClientConfig(server="https://h:1", insecure=True))
    assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_NONE, False)
