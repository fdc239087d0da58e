"""Discovery documents: legacy lists, aggregated v2, and Accept negotiation."""
from __future__ import annotations

import pytest

from svcnet.apiserver import discovery as d

V2_ACCEPT_132 = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)


def _legacy_entries() -> dict[str, dict]:
    out = {}
    for group, version in (("", "v1"), ("apps", "v1"), ("authentication.k8s.io", "v1"),
                           ("authorization.k8s.io", "v1"), ("networking.k8s.io", "v1"),
                           ("rbac.authorization.k8s.io", "v1"), ("discovery.k8s.io", "v1"),
                           ("coordination.k8s.io", "v1")):
        doc = d.api_resource_list(group, version)
        assert doc is not None
        for entry in doc["resources"]:
            out[entry["name"]] = entry
    return out


@pytest.mark.parametrize(("resource", "short"), [
    ("services", "svc"), ("endpoints", "ep"), ("pods", "po"), ("deployments", "deploy"),
    ("replicasets", "rs"), ("statefulsets", "sts"), ("namespaces", "ns"), ("nodes", "no"),
])
def test_legacy_resource_lists_carry_short_names(resource: str, short: str) -> None:
    assert short in _legacy_entries()[resource]["shortNames"]


@pytest.mark.parametrize("resource", ["pods", "services", "deployments", "replicasets", "statefulsets"])
def test_workloads_and_services_are_in_category_all(resource: str) -> None:
    assert _legacy_entries()[resource]["categories"] == ["all"]


def test_endpoints_are_not_in_category_all() -> None:
    assert "categories" not in _legacy_entries()["endpoints"]


@pytest.mark.parametrize(("name", "group", "version", "kind", "verbs"), [
    ("pods/status", None, None, "Pod", ["get", "patch", "update"]),
    ("pods/log", None, None, "Pod", ["get"]),
    ("pods/exec", None, None, "PodExecOptions", ["create", "get"]),
    ("pods/binding", None, None, "Binding", ["create"]),
    ("namespaces/finalize", None, None, "Namespace", ["update"]),
    ("deployments/status", None, None, "Deployment", ["get", "patch", "update"]),
    ("deployments/scale", "autoscaling", "v1", "Scale", ["get", "patch", "update"]),
    ("statefulsets/scale", "autoscaling", "v1", "Scale", ["get", "patch", "update"]),
])
def test_subresources_are_listed_with_their_kind(name, group, version, kind, verbs) -> None:
    entry = _legacy_entries()[name]
    assert entry["kind"] == kind
    assert entry["verbs"] == verbs
    assert entry.get("group") == group
    assert entry.get("version") == version
    assert entry["singularName"] == ""


def test_pods_exec_entry_is_upstreams() -> None:
    """kube-apiserver 1.32's /api/v1 entry, field for field (no group/version: same as the list's)."""
    assert _legacy_entries()["pods/exec"] == {
        "name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
        "verbs": ["create", "get"]}


def test_only_served_pod_subresources_are_listed_in_name_order() -> None:
    """eviction, ephemeralcontainers, proxy, checkpoint are not served: not listed."""
    core = d.api_resource_list("", "v1")
    assert core is not None
    names = [e["name"] for e in core["resources"] if e["name"].startswith("pods/")]
    assert names == ["pods/attach", "pods/binding", "pods/exec", "pods/log", "pods/portforward", "pods/status"]


def test_subresources_follow_their_resource_in_name_order() -> None:
    apps = d.api_resource_list("apps", "v1")
    assert apps is not None
    names = [e["name"] for e in apps["resources"]]
    assert names[names.index("deployments"):names.index("deployments") + 3] == [
        "deployments", "deployments/scale", "deployments/status"]


def test_core_resource_list_has_no_api_version_but_groups_do() -> None:
    core = d.api_resource_list("", "v1")
    apps = d.api_resource_list("apps", "v1")
    assert core is not None and apps is not None
    assert core["groupVersion"] == "v1" and "apiVersion" not in core
    assert apps["groupVersion"] == "apps/v1" and apps["apiVersion"] == "v1"


def test_unknown_group_version_has_no_resource_list() -> None:
    assert d.api_resource_list("policy", "v1") is None
    assert d.api_group("policy") is None


def test_legacy_api_versions_names_the_server_address() -> None:
    doc = d.legacy_api_versions("127.0.0.1:6443")
    assert doc == {"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                   "serverAddress": "127.0.0.1:6443"}]}


def test_group_list_lists_named_groups_in_order_with_preferred_version() -> None:
    doc = d.api_group_list()
    assert doc["kind"] == "APIGroupList"
    assert [g["name"] for g in doc["groups"]] == ["apps", "authentication.k8s.io", "authorization.k8s.io",
                                                  "batch", "certificates.k8s.io", "networking.k8s.io",
                                                  "rbac.authorization.k8s.io",
                                                  "discovery.k8s.io", "coordination.k8s.io"]
    apps = doc["groups"][0]
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}


def test_storage_version_hash_is_eight_bytes_base64() -> None:
    assert len(_legacy_entries()["pods"]["storageVersionHash"]) == 12


@pytest.mark.parametrize(("accept", "kind"), [
    (V2_ACCEPT_132, d.DISCOVERY_V2),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
     d.DISCOVERY_V2BETA1),
    ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", d.DISCOVERY_V2),
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;profile=nopeer",
     d.DISCOVERY_V2),
    ("application/json", d.DISCOVERY_LEGACY),
    ("application/json, */*", d.DISCOVERY_LEGACY),
    ("", d.DISCOVERY_LEGACY),
    (None, d.DISCOVERY_LEGACY),
    ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", d.DISCOVERY_LEGACY),
    ("application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
     d.DISCOVERY_V2),
])
def test_negotiate_discovery(accept: str | None, kind: str) -> None:
    got_kind, content_type = d.negotiate_discovery(accept)
    assert got_kind == kind
    if kind == d.DISCOVERY_LEGACY:
        assert content_type == "application/json"
    else:
        assert content_type == f"application/json;g=apidiscovery.k8s.io;v={kind};as=APIGroupDiscoveryList"


def test_aggregated_core_discovery_has_one_unnamed_group() -> None:
    doc = d.aggregated_discovery(core=True)
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    [group] = doc["items"]
    assert "name" not in group["metadata"]
    [version] = group["versions"]
    assert version["version"] == "v1" and version["freshness"] == "Current"
    pods = next(r for r in version["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced"
    assert pods["singularResource"] == "pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert [s["subresource"] for s in pods["subresources"]] == ["attach", "binding", "exec", "log", "portforward",
                                                                 "status"]
    exec_ = next(s for s in pods["subresources"] if s["subresource"] == "exec")
    assert exec_ == {"subresource": "exec", "responseKind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
                     "verbs": ["create", "get"]}
    namespaces = next(r for r in version["resources"] if r["resource"] == "namespaces")
    assert [(s["subresource"], s["verbs"]) for s in namespaces["subresources"]] == [
        ("finalize", ["update"]), ("status", ["get", "patch", "update"])]


def test_aggregated_apis_discovery_names_groups_and_scale_kind() -> None:
    doc = d.aggregated_discovery(core=False, version=d.DISCOVERY_V2BETA1)
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    assert [g["metadata"]["name"] for g in doc["items"]] == [
        "apps", "authentication.k8s.io", "authorization.k8s.io", "batch", "certificates.k8s.io", "networking.k8s.io",
        "rbac.authorization.k8s.io", "discovery.k8s.io", "coordination.k8s.io"]
    apps = doc["items"][0]["versions"][0]["resources"]
    deployments = next(r for r in apps if r["resource"] == "deployments")
    subs = {s["subresource"]: s["responseKind"] for s in deployments["subresources"]}
    assert subs["scale"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert subs["status"] == {"group": "apps", "version": "v1", "kind": "Deployment"}


def test_aggregated_scope_of_cluster_resources() -> None:
    resources = d.aggregated_discovery(core=True)["items"][0]["versions"][0]["resources"]
    scopes = {r["resource"]: r["scope"] for r in resources}
    assert scopes["nodes"] == "Cluster" and scopes["namespaces"] == "Cluster"
    assert scopes["services"] == "Namespaced"


def test_aggregated_discovery_rejects_unknown_version() -> None:
    with pytest.raises(ValueError):
        d.aggregated_discovery(core=True, version="v3")
