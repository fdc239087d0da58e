"""Discovery of the rest of kubectl's default prune allowlist: kubectl `apply --prune` without
--prune-allowlist maps every one of these kinds and fails when one is missing."""
from __future__ import annotations

import pytest

from svcnet.apiserver import discovery as d


@pytest.mark.parametrize(("group", "plural", "kind", "namespaced", "short_names", "subresources"), [
    ("", "persistentvolumes", "PersistentVolume", False, ["pv"], ["status"]),
    ("", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], ["status"]),
    ("", "replicationcontrollers", "ReplicationController", True, ["rc"], ["scale", "status"]),
    ("apps", "daemonsets", "DaemonSet", True, ["ds"], ["status"]),
    ("networking.k8s.io", "ingresses", "Ingress", True, ["ing"], ["status"]),
    ("networking.k8s.io", "ingressclasses", "IngressClass", False, None, []),
])
def test_each_kind_is_listed_with_its_short_names_and_subresources(group, plural, kind, namespaced, short_names,
                                                                   subresources):
    doc = d.api_resource_list(group, "v1")
    assert doc is not None
    entries = {r["name"]: r for r in doc["resources"]}
    entry = entries[plural]
    assert (entry["kind"], entry["namespaced"], entry.get("shortNames")) == (kind, namespaced, short_names)
    assert sorted(n.split("/", 1)[1] for n in entries if n.startswith(plural + "/")) == subresources


def test_replication_controllers_and_daemon_sets_are_in_the_all_category():
    core = {r["name"]: r for r in d.api_resource_list("", "v1")["resources"]}
    apps = {r["name"]: r for r in d.api_resource_list("apps", "v1")["resources"]}
    assert core["replicationcontrollers"]["categories"] == ["all"]
    assert apps["daemonsets"]["categories"] == ["all"]
    assert not core["persistentvolumeclaims"].get("categories")
