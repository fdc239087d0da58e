"""The pure helpers the drivers share."""
from __future__ import annotations

import pytest

from svcnet.storage.mvcc import decode_json, encode_stamped, prefix_upper_bound, restamp_text, stamp


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("", None),
        ("/a/", "/a0"),
        ("/registry/pods/default/", "/registry/pods/default0"),
        ("ab\U0010ffff", "ac"),
        ("\U0010ffff", None),
    ],
)
def test_prefix_upper_bound_is_above_every_key_under_the_prefix(prefix: str, bound: str | None) -> None:
    assert prefix_upper_bound(prefix) == bound
    if bound is not None:
        assert prefix + "\U0010ffff\U0010ffff" < bound
        assert prefix < bound


def test_stamp_copies_metadata_and_leaves_the_input_alone() -> None:
    value = {"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {}}
    stamped = stamp(value, 7)
    assert stamped["metadata"] == {"name": "a", "resourceVersion": "7"}
    assert value["metadata"]["resourceVersion"] == "1"


def test_restamp_changes_only_the_resource_version() -> None:
    text = encode_stamped({"metadata": {"name": "a"}, "data": {"k": "é"}}, 3)
    assert decode_json(restamp_text(text, 9)) == {"metadata": {"name": "a", "resourceVersion": "9"}, "data": {"k": "é"}}
