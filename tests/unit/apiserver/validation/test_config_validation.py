"""ConfigMap, Secret and ServiceAccount validation, worded as kube-apiserver words it."""
from __future__ import annotations

import base64
import json

import pytest

from svcnet.api.errors import invalid as invalid_error
from svcnet.apiserver.defaults import apply_defaults
from svcnet.apiserver.validation import validate
from svcnet.apiserver.validation.config import config_map_key_errors, json_object_error

KEY_REGEX_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                 "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', "
                 "regex used for validation is '[-._a-zA-Z0-9]+')")


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def config_map(**fields) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
            **fields}


def secret(secret_type: str | None = None, **fields) -> dict:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, **fields}
    if secret_type is not None:
        obj["type"] = secret_type
    apply_defaults("Secret", obj)
    return obj


def messages(kind: str, obj: dict, old: dict | None = None) -> list[str]:
    return [f"{c.field}: {c.message}" for c in validate(kind, obj, old)]


# --- keys

@pytest.mark.parametrize(("key", "expected"), [
    ("a.b_c-D9", []),
    ("a b", [KEY_REGEX_MSG]),
    (".", ["must not be '.'"]),
    ("..", ["must not be '..'"]),
    ("..a", ["must not start with '..'"]),
    ("k" * 254, ["must be no more than 253 characters"]),
    ("", [KEY_REGEX_MSG]),
])
def test_config_map_key_rules_are_upstreams(key, expected):
    assert config_map_key_errors(key) == expected


def test_bad_keys_are_reported_under_data_and_binary_data():
    obj = config_map(data={"a b": "x"}, binaryData={"..c": b64("y")})
    assert messages("ConfigMap", obj) == [
        f'data[a b]: Invalid value: "a b": {KEY_REGEX_MSG}',
        "binaryData[..c]: Invalid value: \"..c\": must not start with '..'",
    ]


def test_a_key_in_both_data_and_binary_data_is_refused_on_data():
    obj = config_map(data={"k": "x"}, binaryData={"k": b64("y")})
    assert messages("ConfigMap", obj) == ['data[k]: Invalid value: "k": duplicate of key present in binaryData']


# --- sizes

def test_config_map_over_one_mebibyte_in_data_and_binary_data_is_too_long_as_a_whole():
    half = 512 * 1024
    assert messages("ConfigMap", config_map(data={"a": "x" * half}, binaryData={"b": b64(b"y" * half)})) == []
    too_big = config_map(data={"a": "x" * half}, binaryData={"b": b64(b"y" * (half + 1))})
    [cause] = validate("ConfigMap", too_big)
    assert (cause.field, cause.message, cause.reason) == (
        "", "Too long: may not be more than 1048576 bytes", "FieldValueTooLong")
    error = invalid_error("ConfigMap", "cfg", [cause])
    assert error.code == 422
    # field.Error prints the empty field too, as kube-apiserver's message shows
    assert error.message == 'ConfigMap "cfg" is invalid: : Too long: may not be more than 1048576 bytes'


def test_secret_size_counts_decoded_bytes():
    limit = 1024 * 1024
    assert messages("Secret", secret(data={"a": b64(b"\0" * limit)})) == []
    assert messages("Secret", secret(data={"a": b64(b"\0" * limit), "b": b64("x")})) == [
        "data: Too long: may not be more than 1048576 bytes"]


# --- secret types

@pytest.mark.parametrize(("secret_type", "data", "annotations", "expected"), [
    ("Opaque", {}, {}, []),
    ("bootstrap.kubernetes.io/token", {}, {}, []),  # upstream's API server requires no keys of it
    ("example.com/custom", {}, {}, []),
    ("kubernetes.io/service-account-token", {}, {},
     ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]),
    ("kubernetes.io/service-account-token", {}, {"kubernetes.io/service-account.name": "default"}, []),
    ("kubernetes.io/tls", {}, {}, ["data[tls.crt]: Required value", "data[tls.key]: Required value"]),
    ("kubernetes.io/tls", {"tls.crt": b64("c")}, {}, ["data[tls.key]: Required value"]),
    ("kubernetes.io/tls", {"tls.crt": "", "tls.key": ""}, {}, []),  # present, even empty
    ("kubernetes.io/basic-auth", {}, {},
     ["data[username]: Required value", "data[password]: Required value"]),
    ("kubernetes.io/basic-auth", {"password": ""}, {}, []),
    ("kubernetes.io/ssh-auth", {"ssh-privatekey": ""}, {}, ["data[ssh-privatekey]: Required value"]),
    ("kubernetes.io/ssh-auth", {"ssh-privatekey": b64("k")}, {}, []),
    ("kubernetes.io/dockerconfigjson", {}, {}, ["data[.dockerconfigjson]: Required value"]),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": b64('{"auths": {}}')}, {}, []),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": b64("[1]")}, {},
     ['data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": '
      "json: cannot unmarshal array into Go value of type map[string]interface {}"]),
    ("kubernetes.io/dockercfg", {".dockercfg": b64("{")}, {},
     ['data[.dockercfg]: Invalid value: "<secret contents redacted>": unexpected end of JSON input']),
    ("kubernetes.io/dockercfg", {".dockercfg": b64("nope")}, {},
     ['data[.dockercfg]: Invalid value: "<secret contents redacted>": '
      "invalid character 'o' in literal null (expecting 'u')"]),
])
def test_each_secret_type_requires_upstreams_keys(secret_type, data, annotations, expected):
    obj = secret(secret_type, data=data)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    assert messages("Secret", obj) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"a": 1}', ""),
    (b"null", ""),
    (b"", "unexpected end of JSON input"),
    (b'"x"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    (b"x", "invalid character 'x' looking for beginning of value"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
    (b'{a: 1}', "invalid character 'a' looking for beginning of object key string"),
    (b'{} x', "invalid character 'x' after top-level value"),
    (b"nul", "unexpected end of JSON input"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b'{"a": [1], "b]": 1 2}', "invalid character '2' after object key:value pair"),
    (b"tru3", "invalid character '3' in literal true (expecting 'e')"),
])
def test_docker_config_json_errors_are_gos(raw, expected):
    assert json_object_error(raw) == expected


# --- immutability

def test_an_immutable_config_map_keeps_its_data_binary_data_and_immutable():
    old = config_map(data={"a": "1"}, binaryData={"b": b64("2")}, immutable=True)
    changed = config_map(data={"a": "2"}, binaryData={}, immutable=False)
    assert messages("ConfigMap", changed, old) == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
        "binaryData: Forbidden: field is immutable when `immutable` is set",
    ]
    relabelled = config_map(data={"a": "1"}, binaryData={"b": b64("2")}, immutable=True)
    relabelled["metadata"]["labels"] = {"x": "y"}
    assert messages("ConfigMap", relabelled, old) == []


def test_a_mutable_config_map_may_change_and_become_immutable():
    old = config_map(data={"a": "1"})
    assert messages("ConfigMap", config_map(data={"a": "2"}, immutable=True), old) == []


def test_an_immutable_secret_keeps_its_data_and_immutable():
    old = secret(data={"a": b64("1")}, immutable=True)
    assert messages("Secret", secret(data={"a": b64("2")}), old) == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]
    # stringData is merged into data before validation, so it cannot sneak a change in either
    assert messages("Secret", secret(stringData={"a": "2"}, data={"a": b64("1")}, immutable=True), old) == [
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_a_secrets_type_never_changes():
    old = secret("Opaque", data={"tls.crt": b64("c"), "tls.key": b64("k")})
    new = secret("kubernetes.io/tls", data={"tls.crt": b64("c"), "tls.key": b64("k")})
    assert messages("Secret", new, old) == ['type: Invalid value: "kubernetes.io/tls": field is immutable']


# --- names and service accounts

@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "ServiceAccount"])
def test_names_are_dns_subdomains(kind):
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "Bad_Name", "namespace": "default"}}
    [cause] = validate(kind, obj)
    assert cause.field == "metadata.name"
    assert cause.message.startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')


def test_a_service_account_is_valid_with_any_secrets_and_pull_secrets():
    obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot", "namespace": "default"},
           "secrets": [{"name": "x"}], "imagePullSecrets": [{"name": "y"}],
           "automountServiceAccountToken": False}
    assert validate("ServiceAccount", obj) == []
    assert json.loads(json.dumps(obj)) == obj
