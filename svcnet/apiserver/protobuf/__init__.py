"""Kubernetes protobuf request bodies, decoded into the dicts a JSON body would give.

kubectl's imperative generators (`kubectl create namespace|deployment|service ...`)
go through typed clients that send `application/vnd.kubernetes.protobuf`: the magic
prefix `k8s\\x00`, then a runtime.Unknown message {typeMeta{apiVersion, kind}, raw,
contentEncoding, contentType} whose `raw` is the typed object in proto2 wire format,
as go-to-protobuf generates it from the Go structs.

There is no .proto descriptor at run time, so this module has a small wire reader
and tables of field number -> (JSON name, kind, nested message), written from the
upstream generated.proto files for the messages those commands send. The result
equals the JSON form of the same Go object (what `kubectl create ... -o json`
prints), which means reproducing encoding/json's rules from wire presence:

- go-to-protobuf always writes non-pointer scalars, even when zero; JSON omits them
  (omitempty), so a zero scalar is dropped unless the table marks it `keep_zero`
  (Go pointers, which are written only when set, and fields without omitempty);
- a nested message on the wire is a non-nil struct in Go, which JSON always prints,
  so an empty one becomes {};
- metav1.Time is {seconds, nanos}; the zero time is an empty message and JSON null.

Unknown field numbers are skipped, as protobuf readers do, so newer clients keep
working; a malformed stream is a 400 naming the field where it broke.

The wire reader is wire.py, the message tables messages.py.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from svcnet.api import errors

from .messages import MESSAGES, SCALARS, TOP_LEVEL, Kind
from .wire import (
    FIXED32,
    FIXED64,
    LENGTH_DELIMITED,
    VARINT,
    WIRE_NAMES,
    MalformedProtobuf,
    WireField,
    iter_fields,
    read_varint,
    signed64,
)

__all__ = [
    "FIXED32", "FIXED64", "LENGTH_DELIMITED", "MAGIC", "MESSAGES", "TOP_LEVEL", "VARINT", "Envelope", "Kind",
    "MalformedProtobuf", "UnsupportedKind", "WireField", "decode_message", "decode_object", "iter_fields",
    "parse_envelope", "read_varint",
]

MAGIC = b"k8s\x00"

class UnsupportedKind(Exception):
    """A well-formed envelope around a kind this module has no table for."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"{api_version}, Kind={kind}")
        self.api_version = api_version
        self.kind = kind

# ----------------------------------------------------------------------- decoding
def _wire_error(path: str, expected: str, got: int) -> MalformedProtobuf:
    return MalformedProtobuf(f"{path}: expected a {expected} field, got {WIRE_NAMES.get(got, got)}")


def _as_bytes(field: WireField, path: str) -> bytes:
    if field.wire_type != LENGTH_DELIMITED:
        raise _wire_error(path, "length-delimited", field.wire_type)
    assert isinstance(field.value, bytes)
    return field.value


def _text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedProtobuf(f"{path}: string is not valid UTF-8") from None


def _scalar(kind: Kind, wire_type: int, value: int | bytes, path: str) -> Any:
    if kind is Kind.STRING:
        if wire_type != LENGTH_DELIMITED:
            raise _wire_error(path, "length-delimited", wire_type)
        assert isinstance(value, bytes)
        return _text(value, path)
    if kind is Kind.BYTES:
        if wire_type != LENGTH_DELIMITED:
            raise _wire_error(path, "length-delimited", wire_type)
        assert isinstance(value, bytes)
        return base64.b64encode(value).decode()
    if wire_type != VARINT:
        raise _wire_error(path, "varint", wire_type)
    assert isinstance(value, int)
    return value != 0 if kind is Kind.BOOL else signed64(value)


def _packed_varints(data: bytes, path: str) -> list[int]:
    values: list[int] = []
    pos = 0
    while pos < len(data):
        try:
            value, pos = read_varint(data, pos)
        except MalformedProtobuf as exc:
            raise MalformedProtobuf(f"{path}: {exc}") from None
        values.append(value)
    return values


def _is_zero(value: Any) -> bool:
    return value in ("", 0, False)


def _entry(data: bytes, path: str) -> tuple[str, bytes]:
    """A map entry: key (field 1) and the raw value bytes (field 2), each possibly absent."""
    key, value = "", b""
    for f in _fields(data, path):
        if f.number == 1:
            key = _text(_as_bytes(f, path), path)
        elif f.number == 2:
            value = _as_bytes(f, path)
    return key, value


def _map_entry(kind: Kind, data: bytes, path: str) -> tuple[str, str]:
    """One map entry as JSON holds it: text, a Quantity's string, or bytes in base64."""
    key, raw_value = _entry(data, path)
    entry_path = f"{path}[{key}]"
    if kind is Kind.STRING_MAP:
        return key, _text(raw_value, entry_path)
    if kind is Kind.BYTES_MAP:
        return key, base64.b64encode(raw_value).decode()
    return key, _single_string(raw_value, entry_path)


def _fields(data: bytes, path: str) -> Iterator[WireField]:
    try:
        yield from iter_fields(data)
    except MalformedProtobuf as exc:
        raise MalformedProtobuf(f"{path}: {exc}" if path else str(exc)) from None


def _time_value(data: bytes, path: str) -> str | None:
    seconds = nanos = 0
    for f in _fields(data, path):
        if f.number in (1, 2):
            value = _scalar(Kind.INT, f.wire_type, f.value, path)
            if f.number == 1:
                seconds = value
            else:
                nanos = value
    if seconds == 0 and nanos == 0:
        return None  # the zero metav1.Time, which JSON writes as null
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedProtobuf(f"{path}: timestamp {seconds} is out of range") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # metav1.Time's JSON keeps whole seconds


def _single_string(data: bytes, path: str) -> str:
    value = ""
    for f in _fields(data, path):
        if f.number == 1:
            value = _text(_as_bytes(f, path), path)
    return value


def _int_or_string(data: bytes, path: str) -> int | str:
    type_, int_val, str_val = 0, 0, ""
    for f in _fields(data, path):
        if f.number == 1:
            type_ = _scalar(Kind.INT, f.wire_type, f.value, path)
        elif f.number == 2:
            int_val = _scalar(Kind.INT, f.wire_type, f.value, path)
        elif f.number == 3:
            str_val = _text(_as_bytes(f, path), path)
    return str_val if type_ == 1 else int_val


def _fields_v1(data: bytes, path: str) -> Any:
    raw = b""
    for f in _fields(data, path):
        if f.number == 1:
            raw = _as_bytes(f, path)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise MalformedProtobuf(f"{path}: fieldsV1 is not JSON: {exc}") from None


def decode_message(data: bytes, message: str, path: str = "") -> dict[str, Any]:
    """Decode one message with its table into a JSON-shaped dict."""
    table = MESSAGES[message]
    out: dict[str, Any] = {}
    for field in _fields(data, path or message):
        spec = table.get(field.number)
        if spec is None:
            continue  # a field newer than these tables: skipped, as any protobuf reader does
        here = f"{path}.{spec.json_name}" if path and spec.json_name else spec.json_name or path
        kind = spec.kind
        if kind in SCALARS:
            if spec.repeated:
                items = out.setdefault(spec.json_name, [])
                if kind in (Kind.INT, Kind.BOOL) and field.wire_type == LENGTH_DELIMITED:
                    assert isinstance(field.value, bytes)
                    items.extend(_scalar(kind, VARINT, v, here) for v in _packed_varints(field.value, here))
                else:
                    items.append(_scalar(kind, field.wire_type, field.value, here))
                continue
            value = _scalar(kind, field.wire_type, field.value, here)
            if _is_zero(value) and not spec.keep_zero:
                out.pop(spec.json_name, None)  # last occurrence wins, and a zero one means unset
            else:
                out[spec.json_name] = value
            continue
        data_bytes = _as_bytes(field, here)
        if kind is Kind.INLINE:
            out.update(decode_message(data_bytes, spec.message, path))
        elif kind is Kind.MESSAGE:
            if spec.repeated:
                items = out.setdefault(spec.json_name, [])
                items.append(decode_message(data_bytes, spec.message, f"{here}[{len(items)}]"))
            else:
                out[spec.json_name] = decode_message(data_bytes, spec.message, here)
        elif kind in (Kind.STRING_MAP, Kind.QUANTITY_MAP, Kind.BYTES_MAP):
            out.setdefault(spec.json_name, {}).update([_map_entry(kind, data_bytes, here)])
        elif kind is Kind.TIME:
            out[spec.json_name] = _time_value(data_bytes, here)
        elif kind is Kind.QUANTITY:
            out[spec.json_name] = _single_string(data_bytes, here)
        elif kind is Kind.INT_OR_STRING:
            out[spec.json_name] = _int_or_string(data_bytes, here)
        elif kind is Kind.FIELDS_V1:
            out[spec.json_name] = _fields_v1(data_bytes, here)
    return out


@dataclass(frozen=True)
class Envelope:
    """The runtime.Unknown around a typed object."""

    api_version: str
    kind: str
    raw: bytes
    content_encoding: str
    content_type: str


def parse_envelope(body: bytes) -> Envelope:
    """Check the magic prefix and read the runtime.Unknown message after it."""
    if not body.startswith(MAGIC):
        raise MalformedProtobuf(
            f"the body does not start with the Kubernetes protobuf prefix {list(MAGIC)} (\"k8s\\x00\")")
    api_version = kind = content_encoding = content_type = ""
    raw = b""
    for f in _fields(body[len(MAGIC):], "envelope"):
        if f.number == 1:
            for t in _fields(_as_bytes(f, "typeMeta"), "typeMeta"):
                if t.number == 1:
                    api_version = _text(_as_bytes(t, "typeMeta.apiVersion"), "typeMeta.apiVersion")
                elif t.number == 2:
                    kind = _text(_as_bytes(t, "typeMeta.kind"), "typeMeta.kind")
        elif f.number == 2:
            raw = _as_bytes(f, "raw")
        elif f.number == 3:
            content_encoding = _text(_as_bytes(f, "contentEncoding"), "contentEncoding")
        elif f.number == 4:
            content_type = _text(_as_bytes(f, "contentType"), "contentType")
    return Envelope(api_version, kind, raw, content_encoding, content_type)


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a request body sent as application/vnd.kubernetes.protobuf.

    Returns the object as its JSON form would be (kind and apiVersion included).
    Raises ApiError 400 for a malformed body and UnsupportedKind for a kind
    without a table (the caller answers that with 415).
    """
    try:
        envelope = parse_envelope(body)
        if not envelope.kind:
            raise MalformedProtobuf("Object 'Kind' is missing in the protobuf envelope")
        if envelope.content_encoding:
            raise MalformedProtobuf(f"unsupported contentEncoding {envelope.content_encoding!r}")
        message = TOP_LEVEL.get((envelope.api_version, envelope.kind))
        if message is None:
            raise UnsupportedKind(envelope.api_version, envelope.kind)
        obj = decode_message(envelope.raw, message)
    except MalformedProtobuf as exc:
        raise errors.bad_request(f"unable to decode the protobuf body: {exc}") from None
    return {"kind": envelope.kind, "apiVersion": envelope.api_version, **obj}
