"""The short, name-safe hashes that controllers put in object names.

Deployments name ReplicaSets `<deployment>-<pod-template-hash>` and
StatefulSets name revisions `<set>-<hash>`; both hash with 32-bit FNV and
spell the number in apimachinery's safe alphabet, so a hash never reads as a
word. Go's hash/fnv has FNV-1 (New32) and FNV-1a (New32a); upstream uses one
for each, so both are here.
"""
from __future__ import annotations

FNV32_OFFSET = 0x811C9DC5
FNV32_PRIME = 0x01000193

# kube's rand.String alphabet: no vowels, no look-alike digits.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def fnv1_32(data: bytes) -> int:
    """Go's fnv.New32 (FNV-1), which the StatefulSet controller's HashControllerRevision uses."""
    h = FNV32_OFFSET
    for byte in data:
        h = (h * FNV32_PRIME) & 0xFFFFFFFF
        h ^= byte
    return h


def fnv1a_32(data: bytes, seed: int = FNV32_OFFSET) -> int:
    """Go's fnv.New32a (FNV-1a), which the Deployment controller's ComputeHash uses.

    seed continues a running hash: hashing b after a is fnv1a_32(b, fnv1a_32(a)).
    """
    h = seed
    for byte in data:
        h = ((h ^ byte) * FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(text: str) -> str:
    """apimachinery's rand.SafeEncodeString: each character mapped into the safe alphabet."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)
