"""list_encoded, on every driver: the same page as list, each object as its stored JSON text."""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.api import jsoncodec
from svcnet.storage.base import Store


def _fill(store: Store) -> None:
    for index in range(9):
        store.create(f"/pods/ns/p{index}", {"metadata": {"name": f"p{index}", "labels": {"n": str(index % 3)}},
                                            "note": f"é {index}"})
    store.create("/pods/other/q", {"metadata": {"name": "q"}})
    store.create("/services/ns/s", {"metadata": {"name": "s"}})
    store.update("/pods/ns/p4", {"metadata": {"name": "p4", "labels": {"n": "1"}}, "note": "changed"})
    store.delete("/pods/ns/p7")


def _shard(value: str):
    def predicate(obj: dict[str, Any]) -> bool:
        return obj["metadata"].get("labels", {}).get("n") == value
    return predicate


@pytest.mark.parametrize("prefix", ["/pods/", "/pods/ns/", "/nothing/"])
@pytest.mark.parametrize("predicate", [None, _shard("1")], ids=["all", "selector"])
@pytest.mark.parametrize("limit", [0, 2, 3, 50])
def test_list_encoded_pages_are_list_pages_as_stored_text(store: Store, prefix: str, predicate, limit: int) -> None:
    _fill(store)
    start_after: str | None = None
    while True:
        decoded = store.list(prefix, predicate=predicate, limit=limit, start_after=start_after)
        encoded = store.list_encoded(prefix, predicate=predicate, limit=limit, start_after=start_after)
        assert [jsoncodec.loads(text) for text in encoded.texts] == [r.value for r in decoded.records]
        assert encoded.texts == [jsoncodec.dumps_text(r.value) for r in decoded.records]
        assert (encoded.revision, encoded.continue_key, encoded.remaining) == \
            (decoded.revision, decoded.continue_key, decoded.remaining)
        if encoded.continue_key is None:
            break
        start_after = encoded.continue_key


def test_list_encoded_texts_are_what_get_decodes(store: Store) -> None:
    _fill(store)
    for text in store.list_encoded("/pods/").texts:
        obj = jsoncodec.loads(text)
        record = store.get(f"/pods/{'ns' if obj['metadata']['name'].startswith('p') else 'other'}/"
                           f"{obj['metadata']['name']}")
        assert record is not None and record.value == obj
        assert obj["metadata"]["resourceVersion"] == str(record.revision)
