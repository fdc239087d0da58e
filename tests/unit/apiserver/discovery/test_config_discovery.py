"""Discovery of configmaps (cm), secrets and serviceaccounts (sa), as kube-apiserver lists them."""
from __future__ import annotations

import pytest

from svcnet.apiserver import discovery as d

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@pytest.mark.parametrize(("plural", "kind", "short_names"), [
    ("configmaps", "ConfigMap", ["cm"]),
    ("secrets", "Secret", None),
    ("serviceaccounts", "ServiceAccount", ["sa"]),
])
def test_core_v1_lists_the_kind_namespaced_with_every_verb(plural, kind, short_names):
    doc = d.api_resource_list("", "v1")
    assert doc is not None
    [entry] = [r for r in doc["resources"] if r["name"] == plural]
    assert (entry["kind"], entry["namespaced"], sorted(entry["verbs"])) == (kind, True, ALL_VERBS)
    assert entry.get("shortNames") == short_names
    assert "categories" not in entry or entry["categories"] == []
