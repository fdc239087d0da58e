"""svcnet.core.hashing: the FNV hashes and safe encoding behind ReplicaSet and revision names."""
from __future__ import annotations

from svcnet.core import hashing


def test_fnv1a_32_matches_the_reference_vectors() -> None:
    assert hashing.fnv1a_32(b"") == 0x811C9DC5
    assert hashing.fnv1a_32(b"a") == 0xE40C292C
    assert hashing.fnv1a_32(b"foobar") == 0xBF9CF968


def test_fnv1_32_matches_go_hash_fnv_new32() -> None:
    # Reference values of Go's fnv.New32 (FNV-1): "" is the offset basis, "a" is 0x050c5d7e.
    assert hashing.fnv1_32(b"") == 0x811C9DC5
    assert hashing.fnv1_32(b"a") == 0x050C5D7E


def test_safe_encode_maps_digits_into_the_safe_alphabet() -> None:
    assert hashing.safe_encode_string("0123456789") == "456789bcdf"
