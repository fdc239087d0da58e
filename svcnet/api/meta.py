"""Small helpers over object metadata, shared by the API server and clients."""
from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

# Readers (name_of, namespace_of, resource_version, ...) live in objects.py.
__all__ = ["metadata", "parse_time", "random_suffix", "rfc3339"]

Obj = dict[str, Any]

# kube's rand.String alphabet: no vowels (no words) and no 0/1/3 (no look-alikes).
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def rfc3339(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def parse_time_or_none(value: Any) -> dt.datetime | None:
    """A timestamp field as an aware datetime: RFC 3339 as the API writes it, or any ISO 8601 form
    (fractions, offsets; no zone read as UTC); None when it is unset or not a time."""
    if not value:
        return None
    try:
        return parse_time(str(value))
    except ValueError:
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(length))


def metadata(obj: Obj) -> Obj:
    md = obj.get("metadata")
    if not isinstance(md, dict):
        md = {}
        obj["metadata"] = md
    return md
