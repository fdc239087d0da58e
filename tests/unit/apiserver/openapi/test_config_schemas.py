"""OpenAPI v3 of ConfigMap, Secret and ServiceAccount: []byte maps as format byte, the merge key of
a ServiceAccount's secrets, all in the core v1 document."""
from __future__ import annotations

from svcnet.apiserver import openapi as o

CORE = "io.k8s.api.core.v1"


def test_byte_maps_are_strings_of_format_byte_and_string_maps_plain_strings():
    components = o.components()
    assert components[f"{CORE}.Secret"]["properties"]["data"]["additionalProperties"] == {
        "type": "string", "format": "byte"}
    assert components[f"{CORE}.ConfigMap"]["properties"]["binaryData"]["additionalProperties"] == {
        "type": "string", "format": "byte"}
    assert components[f"{CORE}.Secret"]["properties"]["stringData"]["additionalProperties"] == {
        "type": "string"}


def test_service_account_secrets_merge_by_name():
    secrets = o.components()[f"{CORE}.ServiceAccount"]["properties"]["secrets"]
    assert (secrets.get("x-kubernetes-patch-strategy"), secrets.get("x-kubernetes-patch-merge-key")) == (
        "merge", "name")


def test_the_core_document_serves_the_three_kinds():
    doc = o.openapi_v3_document("api/v1")
    assert doc is not None
    for plural in ("configmaps", "secrets", "serviceaccounts"):
        assert f"/api/v1/namespaces/{{namespace}}/{plural}/{{name}}" in doc["paths"]
    for kind in ("ConfigMap", "Secret", "ServiceAccount"):
        assert f"{CORE}.{kind}" in doc["components"]["schemas"]
