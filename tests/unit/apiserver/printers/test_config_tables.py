"""ConfigMap, Secret and ServiceAccount tables: kubectl's NAME DATA AGE, NAME TYPE DATA AGE and
NAME SECRETS AGE, counts as integers."""
from __future__ import annotations

import datetime as dt

from svcnet.api.resources import lookup_kind
from svcnet.apiserver import printers as tables

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
CREATED = "2024-05-01T11:00:00Z"


def table(kind: str, obj: dict) -> tuple[list[str], list]:
    res = lookup_kind("v1", kind)
    assert res is not None
    out = tables.to_table(res, [{"metadata": {"name": "x", "creationTimestamp": CREATED}, **obj}], now=NOW)
    return [c["name"] for c in out["columnDefinitions"]], out["rows"][0]["cells"]


def test_config_map_counts_data_and_binary_data_keys():
    assert table("ConfigMap", {"data": {"a": "1", "b": "2"}, "binaryData": {"c": "Mw=="}}) == (
        ["Name", "Data", "Age"], ["x", 3, "60m"])
    assert table("ConfigMap", {})[1] == ["x", 0, "60m"]


def test_secret_shows_its_type_and_data_keys():
    assert table("Secret", {"type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}) == (
        ["Name", "Type", "Data", "Age"], ["x", "kubernetes.io/tls", 2, "60m"])


def test_service_account_counts_its_secrets():
    assert table("ServiceAccount", {"secrets": [{"name": "t"}], "imagePullSecrets": [{"name": "p"}]}) == (
        ["Name", "Secrets", "Age"], ["x", 1, "60m"])
    assert table("ServiceAccount", {})[1] == ["x", 0, "60m"]
