"""Protobuf bodies of ConfigMaps, Secrets and ServiceAccounts (what `kubectl create configmap|secret|
serviceaccount` send) decode to their JSON form: []byte map values in base64, pointers kept at zero."""
from __future__ import annotations

import base64

from svcnet.apiserver import protobuf
from tests.unit.apiserver.protobuf.test_protobuf import entry, envelope, lfield, vfield

META = lfield(1, lfield(1, "x") + lfield(3, "default"))


def decode(kind: str, raw: bytes) -> dict:
    return protobuf.decode_object(envelope("v1", kind, raw))


def test_config_map_data_is_text_and_binary_data_is_base64():
    raw = META + lfield(2, entry("a", "b")) + lfield(3, entry("bin", b"\x00\xff")) + vfield(4, 0)
    assert decode("ConfigMap", raw) == {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x", "namespace": "default"},
        "data": {"a": "b"}, "binaryData": {"bin": base64.b64encode(b"\x00\xff").decode()},
        "immutable": False,  # a *bool: written only when set, so a zero one is kept
    }


def test_secret_data_is_base64_and_string_data_and_type_are_text():
    raw = (META + lfield(2, entry("tls.crt", b"CERT\n")) + lfield(2, entry("tls.key", b"")) +
           lfield(3, "kubernetes.io/tls") + lfield(4, entry("note", "hi")) + vfield(5, 1))
    assert decode("Secret", raw) == {
        "kind": "Secret", "apiVersion": "v1", "metadata": {"name": "x", "namespace": "default"},
        "data": {"tls.crt": "Q0VSVAo=", "tls.key": ""}, "type": "kubernetes.io/tls",
        "stringData": {"note": "hi"}, "immutable": True,
    }


def test_service_account_references_and_automount():
    secret_ref = lfield(1, "Secret") + lfield(3, "token") + lfield(7, "")
    raw = (META + lfield(2, secret_ref) + lfield(3, lfield(1, "pull")) + vfield(4, 0))
    assert decode("ServiceAccount", raw) == {
        "kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "x", "namespace": "default"},
        "secrets": [{"kind": "Secret", "name": "token"}], "imagePullSecrets": [{"name": "pull"}],
        "automountServiceAccountToken": False,
    }
