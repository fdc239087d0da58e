"""The one JSON codec of storage and the HTTP layer: orjson's speed, the standard library's values.

orjson encodes about ten times faster and decodes about twice as fast as the json module, and
the API server spends much of a list, a watch fan-out and a write in JSON. It is used wherever
it yields exactly the value json would; where it would not, json does the work:

- encoding: NaN and infinities (orjson writes null), integers beyond 64 bits, keys that are not
  strings, lone surrogates and types json refuses (orjson raises, or null gives it away);
- decoding: NaN/Infinity literals, numbers that overflow a double, lone surrogates (orjson
  raises), and integers beyond 64 bits (orjson would silently make them floats).

So every caller sees the same values and the same errors as before. Only the bytes may differ,
and only as equal JSON: orjson writes non-ASCII text as UTF-8 where json escapes it, and small
exponents as 1e-7 where json writes 1e-07.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
from collections.abc import Iterator
from typing import Any

import orjson

# Types orjson would serialize but json refuses (the caller's TypeError must stay).
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_stdlib_encoder = json.JSONEncoder(separators=(",", ":"))

# bytes.translate table: every digit to b"0", everything else to b" ", so a run of 19 digits
# (the shortest literal that may not fit 64 bits) is one memmem search away.
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes; the value json.dumps(value, separators=(",", ":")) gives."""
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _stdlib_encoder.encode(value).encode()
    if b"null" in data and _has_non_finite_float(value):
        return _stdlib_encoder.encode(value).encode()
    return data


def dumps_text(value: Any) -> str:
    """dumps as a str (for SQLite TEXT columns and the in-memory store)."""
    return dumps(value).decode()


def loads(data: str | bytes) -> Any:
    """A JSON document's value, exactly as json.loads gives it (errors included)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _LONG_DIGIT_RUN not in raw.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json decides: it accepts NaN and lone surrogates, and words its own errors
    return json.loads(data)


def _has_non_finite_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return True
    return False


_IMMUTABLE_SCALARS = (str, int, float, bool, type(None))


def without_nulls(value: Any) -> Any:
    """The value with every object member that is null removed, at any depth (list elements stay).

    To the Go API types a JSON null member means "unset": a template's `creationTimestamp: null`,
    a merge patch's deletions, an applied configuration's fields that set and own nothing.
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def deepcopy(value: Any) -> Any:
    """copy.deepcopy for JSON values, about three times faster: dicts and lists are copied,
    JSON scalars are immutable and shared; anything else is left to copy.deepcopy. Unlike
    copy.deepcopy it does not keep two references to one list or dict shared in the copy,
    which decoded JSON never has."""
    kind = type(value)
    if kind is dict:
        return {key: deepcopy(item) for key, item in value.items()}
    if kind is list:
        return [deepcopy(item) for item in value]
    if kind in _IMMUTABLE_SCALARS:
        return value
    return copy.deepcopy(value)


@contextlib.contextmanager
def building_many() -> Iterator[None]:
    """Pauses the cyclic garbage collector while a loop builds many JSON values (a list's
    decoded items, a Table's rows). They hold no reference cycles, yet each collection would
    walk the whole growing result again: for 10,000 pods that was most of a list's time.
    Reference counting still frees everything as usual; nested use is harmless."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
