"""The protobuf wire format: wire types, varints and a field iterator over raw bytes."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Wire types (groups, 3 and 4, are never written by go-to-protobuf and are refused).
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LENGTH_DELIMITED: "length-delimited",
               FIXED32: "fixed32"}
_MAX_VARINT_BYTES = 10


class MalformedProtobuf(ValueError):
    """The bytes are not a valid protobuf stream for the message being read."""


@dataclass(frozen=True)
class WireField:
    number: int
    wire_type: int
    value: int | bytes  # int for varint/fixed, bytes for length-delimited


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Return (unsigned value, next position)."""
    result = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise MalformedProtobuf(f"truncated varint at byte {pos}")
        byte = data[pos + i]
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if result >= 1 << 64:
                raise MalformedProtobuf(f"varint at byte {pos} overflows 64 bits")
            return result, pos + i + 1
    raise MalformedProtobuf(f"varint at byte {pos} is longer than {_MAX_VARINT_BYTES} bytes")


def iter_fields(data: bytes) -> Iterator[WireField]:
    """Yield the fields of one message in wire order."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 0x7
        if number == 0:
            raise MalformedProtobuf(f"field number 0 at byte {start}")
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
            yield WireField(number, wire_type, value)
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if pos + size > len(data):
                raise MalformedProtobuf(f"truncated {WIRE_NAMES[wire_type]} field {number} at byte {start}")
            yield WireField(number, wire_type, int.from_bytes(data[pos:pos + size], "little"))
            pos += size
        elif wire_type == LENGTH_DELIMITED:
            length, pos = read_varint(data, pos)
            if pos + length > len(data):
                raise MalformedProtobuf(
                    f"field {number} at byte {start} claims {length} bytes but only "
                    f"{len(data) - pos} remain")
            yield WireField(number, wire_type, data[pos:pos + length])
            pos += length
        else:
            raise MalformedProtobuf(f"unsupported wire type {wire_type} for field {number} at byte {start}")


def signed64(value: int) -> int:
    """Negative int32/int64 values travel as 64-bit two's complement varints."""
    return value - (1 << 64) if value >= 1 << 63 else value


