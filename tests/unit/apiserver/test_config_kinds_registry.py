"""ConfigMaps and Secrets through the registry's write paths (create, update, patch, dry run):
stringData is merged and never stored or returned; immutable objects refuse data changes."""
from __future__ import annotations

import base64

import pytest

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.testing.api import FakeApi

SECRETS = lookup("", "v1", "secrets")
CONFIG_MAPS = lookup("", "v1", "configmaps")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(**fields) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, **fields}


async def test_string_data_is_merged_on_create_update_patch_and_dry_run_and_never_returned():
    api = FakeApi()
    created = await api.create(SECRETS, "default", secret(stringData={"a": "1"}))
    assert (created["data"], created["type"], "stringData" in created) == ({"a": b64("1")}, "Opaque", False)

    updated = await api.update(SECRETS, "default", {**created, "stringData": {"b": "2"}})
    assert updated["data"] == {"a": b64("1"), "b": b64("2")} and "stringData" not in updated

    patched = await api.patch(SECRETS, "default", "s", {"stringData": {"a": "3"}})
    assert patched["data"] == {"a": b64("3"), "b": b64("2")} and "stringData" not in patched

    dry = await api.create(SECRETS, "default", secret(metadata={"name": "d", "namespace": "default"},
                                                       stringData={"x": "y"}), dry_run=True)
    assert dry["data"] == {"x": b64("y")} and "stringData" not in dry
    stored = await api.get(SECRETS, "default", "s")
    assert "stringData" not in stored and stored["data"] == patched["data"]


async def test_an_immutable_config_map_refuses_a_data_patch_and_keeps_its_data():
    api = FakeApi()
    await api.create(CONFIG_MAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "c", "namespace": "default"},
                                              "data": {"a": "1"}, "immutable": True})
    with pytest.raises(ApiError) as exc:
        await api.patch(CONFIG_MAPS, "default", "c", {"data": {"a": "2"}})
    assert exc.value.code == 422
    assert exc.value.message == ('ConfigMap "c" is invalid: data: Forbidden: field is immutable when '
                                 '`immutable` is set')
    assert (await api.get(CONFIG_MAPS, "default", "c"))["data"] == {"a": "1"}
    labelled = await api.patch(CONFIG_MAPS, "default", "c", {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["labels"] == {"x": "y"}


async def test_a_one_mebibyte_secret_is_stored_and_one_byte_more_is_invalid():
    api = FakeApi()
    limit = 1024 * 1024
    full = base64.b64encode(b"\0" * limit).decode()
    stored = await api.create(SECRETS, "default", secret(data={"k": full}))
    assert stored["data"]["k"] == full  # within the store's object size cap, base64 and all
    with pytest.raises(ApiError) as exc:
        await api.create(SECRETS, "default", secret(metadata={"name": "big", "namespace": "default"},
                                                    data={"k": full, "l": b64("x")}))
    assert exc.value.code == 422
    assert exc.value.message == 'Secret "big" is invalid: data: Too long: may not be more than 1048576 bytes'
