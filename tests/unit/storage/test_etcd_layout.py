"""The etcd driver's key layout (kube-apiserver's) and stored values, as plain functions."""
from __future__ import annotations

import pytest

from svcnet.api import jsoncodec
from svcnet.storage.etcdlayout import (
    UnmappableKey,
    encode_value,
    etcd_prefix,
    from_etcd,
    stamped_text,
    to_etcd,
)


@pytest.mark.parametrize(("ours", "upstream"), [
    ("/registry/core/services/default/hostnames", "/registry/services/specs/default/hostnames"),
    ("/registry/core/endpoints/default/hostnames", "/registry/services/endpoints/default/hostnames"),
    ("/registry/core/nodes/node-1", "/registry/minions/node-1"),
    ("/registry/core/replicationcontrollers/ns/rc", "/registry/controllers/ns/rc"),
    ("/registry/core/pods/default/x", "/registry/pods/default/x"),
    ("/registry/core/namespaces/default", "/registry/namespaces/default"),
    ("/registry/apps/deployments/default/web", "/registry/deployments/default/web"),
    ("/registry/networking.k8s.io/ingresses/ns/i", "/registry/ingress/ns/i"),
    ("/registry/discovery.k8s.io/endpointslices/ns/s", "/registry/endpointslices/ns/s"),
    ("/registry/rbac.authorization.k8s.io/clusterroles/admin", "/registry/clusterroles/admin"),
    ("/registry/coordination.k8s.io/leases/kube-node-lease/n", "/registry/leases/kube-node-lease/n"),
    # A custom resource keeps its group, as upstream does; so does a key svcnet does not map.
    ("/registry/example.com/widgets/ns/w", "/registry/example.com/widgets/ns/w"),
    ("/other/key", "/other/key"),
])
def test_keys_follow_kube_apiservers_layout_and_map_back(ours: str, upstream: str) -> None:
    assert to_etcd(ours) == upstream
    assert from_etcd(upstream) == ours


def test_a_key_where_upstream_keeps_another_resource_is_refused() -> None:
    with pytest.raises(UnmappableKey):
        to_etcd("/registry/pods/default/x")


@pytest.mark.parametrize(("prefix", "expected"), [
    ("/registry/core/services/", "/registry/services/specs/"),
    ("/registry/core/pods/default/", "/registry/pods/default/"),
    ("/registry/core/", None),  # pods and services are not one etcd range
    ("", None),
    ("/registry/example.com/widgets/", "/registry/example.com/widgets/"),
])
def test_a_prefix_maps_to_one_etcd_range_only_within_one_resource(prefix: str, expected: str | None) -> None:
    assert etcd_prefix(prefix) == expected


@pytest.mark.parametrize("value", [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "resourceVersion": "77"}, "spec": {}},
    {"data": 1},
    {"metadata": {}},
    {"metadata": "not an object", "x": ["é", "\ud800"]},
])
def test_the_stored_value_has_no_resource_version_and_reads_back_stamped(value: dict) -> None:
    stored = encode_value(value)
    assert "resourceVersion" not in jsoncodec.loads(stored)["metadata"]
    read = jsoncodec.loads(stamped_text(stored, 42))
    expected = dict(value, metadata={**(value["metadata"] if isinstance(value.get("metadata"), dict) else {}),
                                     "resourceVersion": "42"})
    assert read == expected


def test_a_value_written_by_another_program_is_stamped_too() -> None:
    assert jsoncodec.loads(stamped_text(b'{"kind":"ConfigMap","metadata":{"name":"x"}}', 9)) == \
        {"kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "9"}}
