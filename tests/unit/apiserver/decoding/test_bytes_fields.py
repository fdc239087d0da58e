"""[]byte fields (Secret.data, ConfigMap.binaryData) decode as Go does: base64 text, its errors Go's."""
from __future__ import annotations

import pytest

from svcnet.api.resources import lookup
from svcnet.apiserver import decoding
from svcnet.apiserver.gobase64 import CorruptInput, std_decode

SECRETS = lookup("", "v1", "secrets")
CONFIG_MAPS = lookup("", "v1", "configmaps")


@pytest.mark.parametrize(("text", "decoded"), [
    ("", b""), ("YQ==", b"a"), ("YWI=", b"ab"), ("YWJj", b"abc"), ("YW\nJj\r\n", b"abc"),
])
def test_valid_base64_decodes_with_newlines_ignored(text, decoded):
    assert std_decode(text) == decoded


@pytest.mark.parametrize(("text", "offset"), [
    ("Y", 0),        # a lone symbol cannot make a byte
    ("YQ", 0),       # padding is required: the quantum starting at 0 is short
    ("YQ=", 3),      # the second '=' is missing at the end
    ("YQ=a", 2),     # '=' followed by a symbol
    ("a=bc", 1),     # '=' too early in the quantum
    ("YWJj!", 4),    # not in the alphabet
    ("YQ==YQ==", 4),  # nothing may follow the padding
    ("YWJj YWJj", 4),
])
def test_invalid_base64_fails_at_gos_offset(text, offset):
    with pytest.raises(CorruptInput) as exc:
        std_decode(text)
    assert str(exc.value) == f"illegal base64 data at input byte {offset}"


def test_bad_base64_in_secret_data_is_a_400_naming_the_offset():
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "YQ=a"}}
    error, warnings = decoding.field_validation(SECRETS, body)
    assert error is not None and error.code == 400
    assert error.message == ('Secret in version "v1" cannot be handled as a Secret: '
                             "illegal base64 data at input byte 2")
    assert warnings == []


def test_a_number_in_binary_data_is_a_type_error_of_uint8_slice():
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "binaryData": {"a": 1}}
    assert decoding.decode_error(CONFIG_MAPS, body) == (
        "json: cannot unmarshal number into Go struct field ConfigMap.binaryData of type []uint8")


def test_string_data_is_plain_text_and_valid_base64_passes():
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "YQ=="},
            "stringData": {"b": "not base64 !"}}
    assert decoding.field_validation(SECRETS, body) == (None, [])
