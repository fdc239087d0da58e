"""Decoding Kubernetes protobuf bodies into the dicts their JSON form would be."""
from __future__ import annotations

import pytest

from svcnet.api.errors import ApiError
from svcnet.apiserver import protobuf
from tests.unit.apiserver.protobuf.kubectl_bodies import KUBECTL_BODIES
from tests.unit.apiserver.protobuf.kubectl_rbac_bodies import KUBECTL_RBAC_BODIES


# A tiny encoder, only for building test inputs.
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative numbers travel as 64-bit two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vfield(number: int, value: int) -> bytes:
    return varint(number << 3 | protobuf.VARINT) + varint(value)


def lfield(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | protobuf.LENGTH_DELIMITED) + varint(len(data)) + data


def entry(key: str, value: bytes | str) -> bytes:
    return lfield(1, key) + lfield(2, value)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = lfield(1, api_version) + lfield(2, kind)
    return protobuf.MAGIC + lfield(1, type_meta) + lfield(2, raw) + lfield(3, "") + lfield(4, "")


def deployment(spec: bytes, metadata: bytes = lfield(1, "d")) -> bytes:
    return envelope("apps/v1", "Deployment", lfield(1, metadata) + lfield(2, spec))


def decode_spec(spec: bytes) -> dict:
    return protobuf.decode_object(deployment(spec))["spec"]


@pytest.mark.parametrize("name", sorted(KUBECTL_BODIES))
def test_kubectl_bodies_decode_to_the_json_kubectl_prints_for_them(name):
    _command, hex_body, expected = KUBECTL_BODIES[name]
    assert protobuf.decode_object(bytes.fromhex(hex_body)) == expected


@pytest.mark.parametrize("name", sorted(KUBECTL_RBAC_BODIES))
def test_kubectl_rbac_and_auth_bodies_decode_to_their_json(name):
    _command, hex_body, expected = KUBECTL_RBAC_BODIES[name]
    assert protobuf.decode_object(bytes.fromhex(hex_body)) == expected


@pytest.mark.parametrize("data, value", [
    (b"\x00", 0),
    (b"\x01", 1),
    (b"\x7f", 127),
    (b"\x80\x01", 128),
    (b"\xa0\x49", 9376),
    (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", (1 << 64) - 1),
])
def test_varints_read_little_endian_seven_bit_groups(data, value):
    assert protobuf.read_varint(data, 0) == (value, len(data))


@pytest.mark.parametrize("data", [b"\x80", b"\xff" * 10 + b"\x01", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"])
def test_truncated_or_oversized_varints_are_malformed(data):
    with pytest.raises(protobuf.MalformedProtobuf):
        protobuf.read_varint(data, 0)


def test_wire_reader_yields_each_wire_type():
    data = (vfield(1, 5) + varint(2 << 3 | protobuf.FIXED64) + (7).to_bytes(8, "little")
            + lfield(3, "abc") + varint(4 << 3 | protobuf.FIXED32) + (9).to_bytes(4, "little"))
    assert list(protobuf.iter_fields(data)) == [
        protobuf.WireField(1, protobuf.VARINT, 5), protobuf.WireField(2, protobuf.FIXED64, 7),
        protobuf.WireField(3, protobuf.LENGTH_DELIMITED, b"abc"), protobuf.WireField(4, protobuf.FIXED32, 9)]


def test_unknown_field_numbers_of_every_wire_type_are_skipped():
    spec = (vfield(1, 2) + vfield(99, 1) + varint(98 << 3 | protobuf.FIXED64) + bytes(8)
            + lfield(97, b"\xff\xfe") + varint(96 << 3 | protobuf.FIXED32) + bytes(4))
    assert decode_spec(spec) == {"replicas": 2}


def test_zero_scalars_are_omitted_but_pointer_fields_keep_zero():
    spec = vfield(1, 0) + vfield(5, 0) + vfield(7, 0) + vfield(6, 0)
    # replicas and revisionHistoryLimit are Go pointers; minReadySeconds and paused are omitempty values.
    assert decode_spec(spec) == {"replicas": 0, "revisionHistoryLimit": 0}


def test_negative_numbers_decode_from_ten_byte_varints():
    assert decode_spec(vfield(1, -1)) == {"replicas": -1}


def test_the_last_occurrence_of_a_scalar_wins_and_a_zero_one_unsets_it():
    strategy = lfield(1, "Recreate") + lfield(1, "RollingUpdate")
    assert decode_spec(lfield(4, strategy))["strategy"] == {"type": "RollingUpdate"}
    assert decode_spec(lfield(4, lfield(1, "Recreate") + lfield(1, "")))["strategy"] == {}


def test_maps_are_repeated_key_value_entries_and_a_missing_value_is_empty():
    metadata = (lfield(1, "d") + lfield(11, entry("app", "web")) + lfield(11, entry("tier", "front"))
                + lfield(12, lfield(1, "note")))
    assert protobuf.decode_object(deployment(b"", metadata))["metadata"] == {
        "name": "d", "labels": {"app": "web", "tier": "front"}, "annotations": {"note": ""}}


@pytest.mark.parametrize("time_message, expected", [
    (b"", None),
    (vfield(1, 1700000000), "2023-11-14T22:13:20Z"),
    (vfield(1, 1700000000) + vfield(2, 5), "2023-11-14T22:13:20Z"),
])
def test_times_are_rfc3339_seconds_and_the_zero_time_is_null(time_message, expected):
    metadata = lfield(1, "d") + lfield(8, time_message)
    assert protobuf.decode_object(deployment(b"", metadata))["metadata"]["creationTimestamp"] == expected


@pytest.mark.parametrize("int_or_string, expected", [
    (vfield(1, 0) + vfield(2, 25) + lfield(3, ""), 25),
    (vfield(1, 1) + vfield(2, 0) + lfield(3, "25%"), "25%"),
    (b"", 0),
])
def test_int_or_string_follows_its_type_field(int_or_string, expected):
    strategy = lfield(2, lfield(1, int_or_string))
    assert decode_spec(lfield(4, strategy))["strategy"] == {"rollingUpdate": {"maxUnavailable": expected}}


def pod_spec_with_container(container: bytes, *extra: bytes) -> bytes:
    return b"".join([lfield(2, container), *extra])


def decode_pod_spec(pod_spec: bytes) -> dict:
    body = envelope("v1", "Pod", lfield(1, lfield(1, "p")) + lfield(2, pod_spec))
    return protobuf.decode_object(body)["spec"]


def test_resources_are_maps_of_quantity_strings():
    quantity = lfield(1, "100m")
    resources = lfield(1, entry("cpu", lfield(1, "1"))) + lfield(2, entry("cpu", quantity)) \
        + lfield(2, entry("memory", lfield(1, "64Mi")))
    container = lfield(1, "c") + lfield(8, resources)
    assert decode_pod_spec(pod_spec_with_container(container))["containers"] == [{
        "name": "c", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m", "memory": "64Mi"}}}]


def test_embedded_structs_are_inlined_into_their_parent():
    key_ref = lfield(1, lfield(1, "settings")) + lfield(2, "mode")
    env = lfield(1, "MODE") + lfield(3, lfield(3, key_ref))
    container = lfield(1, "c") + lfield(7, env) + lfield(7, lfield(1, "A") + lfield(2, "1"))
    assert decode_pod_spec(pod_spec_with_container(container))["containers"][0]["env"] == [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "A", "value": "1"},
    ]


def test_probes_inline_their_handler():
    probe = lfield(1, lfield(2, lfield(1, "/healthz") + lfield(2, vfield(2, 8080)))) + vfield(4, 5)
    container = lfield(1, "c") + lfield(11, probe)
    assert decode_pod_spec(pod_spec_with_container(container))["containers"][0]["readinessProbe"] == {
        "httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}


def test_repeated_numbers_decode_packed_and_unpacked():
    security = lfield(4, varint(1) + varint(2)) + vfield(4, 3)
    spec = decode_pod_spec(pod_spec_with_container(lfield(1, "c"), lfield(14, security)))
    assert spec["securityContext"] == {"supplementalGroups": [1, 2, 3]}


def test_repeated_strings_keep_order_and_empty_items():
    container = lfield(1, "c") + lfield(3, "sh") + lfield(3, "-c") + lfield(4, "") + lfield(4, "x")
    assert decode_pod_spec(pod_spec_with_container(container))["containers"][0] == {
        "name": "c", "command": ["sh", "-c"], "args": ["", "x"]}


def test_kind_and_api_version_come_from_the_envelope():
    obj = protobuf.decode_object(envelope("v1", "Namespace", lfield(1, lfield(1, "n"))))
    assert (obj["kind"], obj["apiVersion"], obj["metadata"]) == ("Namespace", "v1", {"name": "n"})


def test_kinds_without_a_table_are_unsupported_not_malformed():
    with pytest.raises(protobuf.UnsupportedKind) as err:
        protobuf.decode_object(envelope("policy/v1", "PodDisruptionBudget", lfield(1, lfield(1, "j"))))
    assert (err.value.api_version, err.value.kind) == ("policy/v1", "PodDisruptionBudget")


@pytest.mark.parametrize("body, message_part", [
    (b'{"kind": "Namespace"}', "prefix"),
    (b"", "prefix"),
    (protobuf.MAGIC, "Kind' is missing"),
    (protobuf.MAGIC + b"\x0a\x05\x0a", "claims 5 bytes"),
    (protobuf.MAGIC + b"\x0a", "truncated varint"),
    (protobuf.MAGIC + b"\x0b", "wire type 3"),
    (deployment(lfield(1, "three")), "spec.replicas: expected a varint field"),
    (deployment(vfield(3, 1)), "spec.template: expected a length-delimited field"),
    (deployment(lfield(3, b"\x12\x05\x12")), "spec.template: field 2 at byte 0 claims 5 bytes"),
    (deployment(b"", lfield(1, b"\xff\xfe")), "metadata.name: string is not valid UTF-8"),
    (deployment(b"", lfield(11, lfield(1, "app") + lfield(2, b"\x80"))), "metadata.labels[app]"),
    (envelope("apps/v1", "Deployment", b"\x0a\x02\x0a"), "Deployment: field 1 at byte 0"),
    (protobuf.MAGIC + lfield(1, lfield(2, "Pod")) + lfield(3, "gzip"), "contentEncoding"),
])
def test_malformed_bodies_are_bad_requests_that_say_where(body, message_part):
    with pytest.raises(ApiError) as err:
        protobuf.decode_object(body)
    assert err.value.code == 400
    assert err.value.reason == "BadRequest"
    assert message_part in err.value.message
    assert err.value.message.startswith("unable to decode the protobuf body: ")


def test_every_table_reference_names_a_table():
    for name, table in protobuf.MESSAGES.items():
        for number, spec in table.items():
            if spec.kind in (protobuf.Kind.MESSAGE, protobuf.Kind.INLINE):
                assert spec.message in protobuf.MESSAGES, f"{name}.{number} -> {spec.message}"
    assert set(protobuf.TOP_LEVEL.values()) <= set(protobuf.MESSAGES)
