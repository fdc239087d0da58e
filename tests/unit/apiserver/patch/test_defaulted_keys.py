"""Server-side apply over list-map keys with defaulted fields, against the schema svcnet serves.

A Service port is keyed by (port, protocol) and a container port by (containerPort, protocol);
protocol defaults to TCP. Upstream (structured-merge-diff typed/helpers.go
keyedAssociativeListItemToPathElement) fills a key field an item omits from the schema default,
so `{port: 80}` applied over a stored `{port: 80, protocol: TCP}` is the same port.
"""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from svcnet.api.errors import ApiError
from svcnet.apiserver import openapi
from svcnet.apiserver.defaults import apply_defaults
from svcnet.apiserver.patch import (
    SchemaResolver,
    decode_managed_fields,
    record_update,
    server_side_apply,
)
from svcnet.apiserver.patch.managed import LAST_APPLIED
from svcnet.apiserver.patch.strategy_schema import Shape
from svcnet.apiserver.patch.typed import Typed

SERVED = SchemaResolver(openapi.components())
SERVICE = "io.k8s.api.core.v1.Service"
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"
T1, T2, T3 = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"


def service(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hostnames", "namespace": "default"},
            "spec": {"selector": {"app": "hostnames"}, "ports": [dict(p) for p in ports]}}


def deployment(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "hostnames", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "hostnames"}},
                     "template": {"metadata": {"labels": {"app": "hostnames"}},
                                  "spec": {"containers": [{"name": "hostnames", "image": "serve_hostname",
                                                           "ports": [dict(p) for p in ports]}]}}}}


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the registry stores it: defaulted (protocol: TCP and the rest)."""
    out = copy.deepcopy(obj)
    apply_defaults(out["kind"], out)
    return out


def apply(live: dict[str, Any] | None, config: dict[str, Any], root: str, manager: str = "kubectl",
          now: str = T1, force: bool = False) -> dict[str, Any]:
    return stored(server_side_apply(live, copy.deepcopy(config), manager, force, SERVED, root, now))


def container_ports(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"][0]["ports"]


def owned_keys(obj: dict[str, Any], *path: str, manager: str = "kubectl") -> set[str]:
    entry = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == manager)
    node = entry["fieldsV1"]
    for name in path:
        node = node[name]
    return {k for k in node if k.startswith("k:")}


# -- the schema svcnet serves says the defaults -----------------------------------------------

@pytest.mark.parametrize(("schema", "field", "default"), [
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.LocalObjectReference", "name", ""),
])
def test_served_openapi_publishes_the_default_of_each_defaulted_list_map_key(schema: str, field: str,
                                                                              default: str) -> None:
    assert openapi.components()[schema]["properties"][field]["default"] == default


def test_every_list_map_key_field_is_required_or_defaulted_in_the_served_schema() -> None:
    """A key field without either would make items unkeyable in an apply (upstream rejects them)."""
    components = openapi.components()
    checked, unkeyable = set(), []
    for name, schema in components.items():
        for prop, node in (schema.get("properties") or {}).items():
            keys = node.get("x-kubernetes-list-map-keys")
            if not keys:
                continue
            item = SERVED.items(SERVED.resolve(node)) or {}
            for key in keys:
                checked.add(f"{name}.{prop}[{key}]")
                if key not in (item.get("required") or []) and "default" not in (item["properties"].get(key) or {}):
                    unkeyable.append(f"{name}.{prop}[{key}]")
    assert {"io.k8s.api.core.v1.ServiceSpec.ports[protocol]", "io.k8s.api.core.v1.Container.ports[protocol]",
            "io.k8s.api.core.v1.PodSpec.imagePullSecrets[name]"} <= checked
    assert unkeyable == []


def test_item_key_of_a_port_without_protocol_takes_the_schema_default() -> None:
    typed = Typed(SERVED)
    spec = SERVED.property(SERVED.root(SERVICE), "spec")
    ports = SERVED.property(spec, "ports")
    assert typed.item_element(Shape.LIST_MAP, ports, {"port": 80}, 0) == \
        typed.item_element(Shape.LIST_MAP, ports, {"port": 80, "protocol": "TCP"}, 3) == \
        ("k", '{"port":80,"protocol":"TCP"}')


# -- repeated applies ----------------------------------------------------------------------

def test_service_applied_twice_without_protocol_keeps_one_port() -> None:
    config = service({"name": "default", "port": 80, "targetPort": 9376})
    first = apply(None, config, SERVICE)
    second = apply(first, config, SERVICE, now=T2)
    assert second["spec"]["ports"] == [{"name": "default", "port": 80, "targetPort": 9376, "protocol": "TCP"}]
    assert second == first  # nothing changed, not even the apply time
    assert owned_keys(second, "f:spec", "f:ports") == {'k:{"port":80,"protocol":"TCP"}'}


def test_deployment_applied_repeatedly_without_protocol_keeps_one_container_port() -> None:
    config = deployment({"containerPort": 9376})
    live = apply(None, config, DEPLOYMENT)
    for now in (T2, T3):
        again = apply(live, config, DEPLOYMENT, now=now)
        assert again == live
    assert container_ports(live) == [{"containerPort": 9376, "protocol": "TCP"}]


def test_applying_the_explicit_default_over_an_omitted_one_is_the_same_port() -> None:
    live = apply(None, service({"port": 80}), SERVICE)
    after = apply(live, service({"port": 80, "protocol": "TCP"}), SERVICE, now=T2)
    assert after["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]


def test_a_port_with_another_protocol_is_another_entry() -> None:
    config = service({"name": "dns-udp", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53})
    live = apply(None, config, SERVICE)
    again = apply(live, config, SERVICE, now=T2)
    assert [(p["port"], p["protocol"]) for p in again["spec"]["ports"]] == [(53, "UDP"), (53, "TCP")]
    assert owned_keys(again, "f:spec", "f:ports") == {'k:{"port":53,"protocol":"UDP"}',
                                                      'k:{"port":53,"protocol":"TCP"}'}


def test_dropping_a_port_whose_protocol_was_defaulted_removes_it() -> None:
    live = apply(None, service({"name": "web", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}),
                 SERVICE)
    after = apply(live, service({"name": "dns", "port": 53, "protocol": "UDP"}), SERVICE, now=T2)
    assert [(p["port"], p["protocol"]) for p in after["spec"]["ports"]] == [(53, "UDP")]


def test_changing_a_field_of_a_defaulted_key_port_updates_it_in_place() -> None:
    live = apply(None, deployment({"containerPort": 9376, "name": "http"}), DEPLOYMENT)
    after = apply(live, deployment({"containerPort": 9376, "name": "web"}), DEPLOYMENT, now=T2)
    assert container_ports(after) == [{"containerPort": 9376, "name": "web", "protocol": "TCP"}]


def test_image_pull_secret_without_name_is_keyed_by_the_empty_default() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "x"}], "imagePullSecrets": [{}]}}
    live = apply(None, pod, POD)
    again = apply(live, pod, POD, now=T2)
    assert again["spec"]["imagePullSecrets"] == [{}]
    assert owned_keys(again, "f:spec", "f:imagePullSecrets") == {'k:{"name":""}'}


# -- client-side apply and server-side apply interleaved -----------------------------------

def client_side_apply(live: dict[str, Any] | None, config: dict[str, Any], now: str) -> dict[str, Any]:
    """What `kubectl apply` (client-side) leaves: the configuration with its last-applied
    annotation written by an Update of kubectl-client-side-apply, defaulted by the server."""
    new = copy.deepcopy(config) if live is None else copy.deepcopy(live)
    if live is not None:
        new["spec"] = copy.deepcopy(config["spec"])
    annotated = copy.deepcopy(config)
    annotated["metadata"]["annotations"] = {}
    new["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(annotated, sort_keys=True)
    new = stored(new)
    new["metadata"]["managedFields"] = record_update(live, new, "kubectl-client-side-apply", SERVED,
                                                     SERVICE, now)
    return new


def test_server_side_apply_after_client_side_apply_keeps_one_port_without_conflict() -> None:
    config = service({"name": "default", "port": 80, "targetPort": 9376})
    live = client_side_apply(None, config, T1)
    assert live["spec"]["ports"] == [{"name": "default", "port": 80, "targetPort": 9376, "protocol": "TCP"}]
    after = apply(live, config, SERVICE, now=T2)
    assert after["spec"]["ports"] == live["spec"]["ports"]
    managers = {k.manager for k in decode_managed_fields(after)}
    assert managers == {"kubectl", "kubectl-client-side-apply"}


def test_kubectl_takes_over_a_client_side_applied_port_it_changes() -> None:
    """kubectl's first server-side apply may change what it applied client-side (upstream's
    lastAppliedManager): the port is found under its defaulted key, so no conflict."""
    live = client_side_apply(None, service({"name": "default", "port": 80, "targetPort": 9376}), T1)
    after = apply(live, service({"name": "default", "port": 80, "targetPort": 8080}), SERVICE, now=T2)
    assert after["spec"]["ports"] == [{"name": "default", "port": 80, "targetPort": 8080, "protocol": "TCP"}]


# -- configurations structured-merge-diff cannot type -------------------------------------

@pytest.mark.parametrize(("ports", "message"), [
    ([{"port": 80}, {"port": 80, "protocol": "TCP"}],
     'failed to create typed patch object (default/hostnames; /v1, Kind=Service): '
     '.spec.ports: duplicate entries for key [port=80,protocol="TCP"]'),
    ([{"protocol": "UDP"}],
     'failed to create typed patch object (default/hostnames; /v1, Kind=Service): '
     '.spec.ports: element 0: associative list with keys has an element that omits key field "port" '
     "(and doesn't have default value)"),
    ([{"port": 80}, None, {"port": 80}],
     'failed to create typed patch object (default/hostnames; /v1, Kind=Service): errors:\n'
     '  .spec.ports: element 1: associative list with keys may not have a null element\n'
     '  .spec.ports: duplicate entries for key [port=80,protocol="TCP"]'),
])
def test_an_untypable_configuration_is_a_bad_request_and_changes_nothing(ports: list[Any], message: str) -> None:
    live = apply(None, service({"name": "default", "port": 80}), SERVICE)
    before = copy.deepcopy(live)
    config = service()
    config["spec"]["ports"] = ports
    with pytest.raises(ApiError) as caught:
        server_side_apply(live, config, "kubectl", True, SERVED, SERVICE, T2)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", message)
    assert live == before


def test_duplicates_nested_in_a_deployment_are_each_named() -> None:
    config = deployment({"containerPort": 93}, {"containerPort": 93, "protocol": "TCP"})
    config["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "FOO"}, {"name": "FOO"}]
    with pytest.raises(ApiError) as caught:
        server_side_apply(None, config, "kubectl", False, SERVED, DEPLOYMENT, T1)
    assert caught.value.message == (
        "failed to create typed patch object (default/hostnames; apps/v1, Kind=Deployment): errors:\n"
        '  .spec.template.spec.containers[name="hostnames"].ports: duplicate entries for key '
        '[containerPort=93,protocol="TCP"]\n'
        '  .spec.template.spec.containers[name="hostnames"].env: duplicate entries for key [name="FOO"]')


def test_a_live_object_with_repeated_keys_can_still_be_applied_to() -> None:
    """Updates may store repeats (upstream allows them in live objects since structured-merge-diff
    v4.4); only the applied configuration must be free of them."""
    live = stored(deployment({"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"}))
    after = apply(live, deployment({"containerPort": 80, "name": "http"}), DEPLOYMENT)
    assert container_ports(after) == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
