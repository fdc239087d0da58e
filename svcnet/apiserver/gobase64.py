"""Go's base64.StdEncoding decoding, as encoding/json applies it to a []byte field.

A Secret's data and a ConfigMap's binaryData are []byte in Go, base64 text in JSON; a value
that is not valid base64 fails the decode with Go's CorruptInputError text
("illegal base64 data at input byte N"), whose offset this module reproduces: Go skips
\\r and \\n anywhere, requires padding to a whole quantum, and rejects anything after it.
"""
from __future__ import annotations

import base64
import binascii

_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NEWLINES = frozenset(b"\r\n")
_PAD = ord("=")


class CorruptInput(ValueError):
    """Go's base64.CorruptInputError: offset is the input byte where decoding failed."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")
        self.offset = offset


def std_decode(text: str) -> bytes:
    """The bytes Go's StdEncoding decodes text to; CorruptInput where Go's decoder stops."""
    src = text.encode("utf-8")
    _check(src)
    clean = bytes(b for b in src if b not in _NEWLINES)
    try:
        return base64.b64decode(clean, validate=True)
    except (binascii.Error, ValueError):  # _check accepted it, so this is not expected
        raise CorruptInput(len(src)) from None


def _check(src: bytes) -> None:
    """Walk src a quantum (4 symbols) at a time, as Go's decodeQuantum does."""
    si = 0
    while True:
        for j in range(4):
            while si < len(src) and src[si] in _NEWLINES:
                si += 1
            if si == len(src):
                if j == 0:
                    return
                raise CorruptInput(si - j)
            char = src[si]
            si += 1
            if char in _ALPHABET:
                continue
            if char != _PAD or j < 2:
                raise CorruptInput(si - 1)
            _check_padding(src, si, j)
            return


def _check_padding(src: bytes, si: int, j: int) -> None:
    """After the first '=' at quantum position j (2 or 3): the second '=' if j is 2, then the end."""
    if j == 2:
        while si < len(src) and src[si] in _NEWLINES:
            si += 1
        if si == len(src):
            raise CorruptInput(len(src))
        if src[si] != _PAD:
            raise CorruptInput(si - 1)
        si += 1
    while si < len(src) and src[si] in _NEWLINES:
        si += 1
    if si < len(src):
        raise CorruptInput(si)


def lenient_decode(text: object) -> bytes:
    """Decoded bytes of a stored value, b"" for anything that is not valid base64 text.

    For validation, which sees objects that already passed decoding (or were written by
    svcnet itself): it only needs lengths and contents, never to report bad base64.
    """
    if not isinstance(text, str):
        return b""
    try:
        return std_decode(text)
    except CorruptInput:
        return b""
