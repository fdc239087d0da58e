"""Unknown fields and oversized objects on the registry's write path, as the API server builds it.

kube-apiserver never stores a field its Go type lacks (typed decoding drops it): Warn reports it
and drops it, Ignore drops it silently, Strict refuses the write. Objects larger than etcd's
request limit (1.5 MiB) are refused with a Status and nothing is stored.
"""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import jsoncodec
from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver import openapi, patch
from svcnet.apiserver.handlers import schema_resolver
from svcnet.apiserver.registry import MAX_OBJECT_BYTES, DeleteOptions, Registry, WriteOptions

SERVICES = lookup("", "v1", "services")
PODS = lookup("", "v1", "pods")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
UNKNOWN_SPEC = 'unknown field "spec.bogusField"'

Obj = dict[str, Any]


def service(name: str = "web") -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}}


def stored(registry: Registry, res=SERVICES, name: str = "web") -> Obj:
    return registry.get(res, "default", name)


def opts(validation: str = "", manager: str = "kubectl") -> WriteOptions:
    return WriteOptions(field_manager=manager, field_validation=validation)


def patch_with(registry: Registry, kind: str, body: Any, options: WriteOptions, *,
               res=SERVICES, name: str = "web", subresource: str | None = None) -> Obj:
    """PATCH as the HTTP handler does it: the patch applied to the stored object, then written."""
    resolver, root = schema_resolver(), openapi.root_schema_name(res)

    def mutate(current: Obj | None) -> Obj:
        body_copy = copy.deepcopy(body)
        if kind == "apply":
            return patch.server_side_apply(current, body_copy, options.field_manager, False, resolver, root,
                                           registry.now(), subresource=subresource or "")
        assert current is not None
        if kind == "merge":
            return patch.json_merge_patch(current, body_copy)
        if kind == "json":
            return patch.json_patch(current, body_copy)
        return patch.strategic_merge_patch(current, body_copy, resolver, root)

    operation = "Apply" if kind == "apply" else "Update"
    obj, _ = registry.patch_apply(res, "default", name, mutate, options, subresource=subresource,
                                  create_if_missing=kind == "apply", operation=operation)
    return obj


def field_paths(entry: Obj) -> str:
    return jsoncodec.dumps_text(entry.get("fieldsV1", {}))


# ------------------------------------------------------------------- pruning


def test_merge_patch_adding_an_unknown_spec_field_stores_nothing_new_and_warns_once(registry):
    before = registry.create(SERVICES, "default", service(), opts())
    warned = opts()
    after = patch_with(registry, "merge", {"spec": {"bogusField": 1}}, warned)
    assert warned.warnings == [UNKNOWN_SPEC]
    assert "bogusField" not in stored(registry)["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    next_write = opts()
    patch_with(registry, "merge", {"metadata": {"labels": {"tier": "web"}}}, next_write)
    assert next_write.warnings == []
    assert stored(registry)["metadata"]["labels"] == {"tier": "web"}


@pytest.mark.parametrize(("kind", "body"), [
    ("json", [{"op": "add", "path": "/spec/bogusField", "value": 1}]),
    ("strategic", {"spec": {"bogusField": 1}}),
    ("merge", {"spec": {"bogusField": 1}}),
])
def test_every_patch_type_prunes_an_added_unknown_field(registry, kind, body):
    registry.create(SERVICES, "default", service(), opts())
    warned = opts()
    patch_with(registry, kind, body, warned)
    assert warned.warnings == [UNKNOWN_SPEC]
    assert "bogusField" not in stored(registry)["spec"]


def test_apply_prunes_an_unknown_field_and_no_manager_owns_it(registry):
    applied = service()
    applied["spec"]["bogusField"] = 1
    warned = opts(manager="deployer")
    patch_with(registry, "apply", applied, warned)
    obj = stored(registry)
    assert "bogusField" not in obj["spec"]
    assert obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert warned.warnings == [UNKNOWN_SPEC]
    entries = obj["metadata"]["managedFields"]
    assert [e["manager"] for e in entries] == ["deployer"]
    assert "f:ports" in field_paths(entries[0]) and "bogusField" not in field_paths(entries[0])

    again = opts(manager="deployer")
    patch_with(registry, "apply", applied, again)  # re-applying the same config changes nothing
    assert stored(registry)["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_create_and_update_prune_nested_unknown_fields(registry):
    body = service()
    body["spec"]["ports"][0]["bogus"] = True
    body["metadata"]["extra"] = "x"
    warned = opts()
    registry.create(SERVICES, "default", body, warned)
    assert warned.warnings == ['unknown field "metadata.extra"', 'unknown field "spec.ports[0].bogus"']
    obj = stored(registry)
    assert "extra" not in obj["metadata"] and "bogus" not in obj["spec"]["ports"][0]

    replaced = copy.deepcopy(obj)
    replaced["spec"]["bogusField"] = {"deep": 1}
    registry.update(SERVICES, "default", "web", replaced, opts())
    assert "bogusField" not in stored(registry)["spec"]


def test_status_subresource_prunes_unknown_status_fields(registry):
    registry.create(SERVICES, "default", service(), opts())
    body = stored(registry)
    body["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}, "on_create": True}
    warned = opts()
    registry.update(SERVICES, "default", "web", body, warned, subresource="status")
    assert warned.warnings == ['unknown field "status.on_create"']
    assert stored(registry)["status"] == {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}

    merged = opts()
    patch_with(registry, "merge", {"status": {"on_create": True}}, merged, subresource="status")
    assert merged.warnings == ['unknown field "status.on_create"']
    assert "on_create" not in stored(registry)["status"]

    later = opts()
    patch_with(registry, "merge", {"status": {"loadBalancer": {}}}, later, subresource="status")
    assert later.warnings == []


def test_ignore_prunes_silently(registry):
    body = service()
    body["spec"]["bogusField"] = 1
    quiet = opts("Ignore")
    registry.create(SERVICES, "default", body, quiet)
    assert quiet.warnings == []
    assert "bogusField" not in stored(registry)["spec"]


def test_strict_refuses_naming_the_field_and_stores_nothing(registry):
    body = service()
    body["spec"]["bogusField"] = 1
    with pytest.raises(ApiError) as err:
        registry.create(SERVICES, "default", body, opts("Strict"))
    assert err.value.code == 400
    assert err.value.message.endswith('strict decoding error: unknown field "spec.bogusField"')
    with pytest.raises(ApiError):
        stored(registry)

    created = registry.create(SERVICES, "default", service(), opts())
    with pytest.raises(ApiError) as err:
        patch_with(registry, "merge", {"spec": {"bogusField": 1}}, opts("Strict"))
    assert 'unknown field "spec.bogusField"' in err.value.message
    assert stored(registry)["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_object_stored_before_pruning_is_pruned_on_its_next_write_without_a_warning(registry):
    created = registry.create(SERVICES, "default", service(), opts())
    legacy = copy.deepcopy(created)
    legacy["spec"]["bogusField"] = 1
    legacy["status"]["on_create"] = True
    key = SERVICES.storage_key("default", "web")
    registry.store.update(key, legacy)

    write = opts()
    patch_with(registry, "merge", {"metadata": {"labels": {"tier": "web"}}}, write)
    assert write.warnings == []
    obj = stored(registry)
    assert "bogusField" not in obj["spec"] and "on_create" not in obj["status"]
    assert obj["metadata"]["labels"] == {"tier": "web"}


def test_a_deletion_that_rewrites_a_legacy_object_prunes_it_too(registry):
    created = registry.create(SERVICES, "default", service(), opts())
    legacy = copy.deepcopy(created)
    legacy["spec"]["bogusField"] = 1
    registry.store.update(SERVICES.storage_key("default", "web"), legacy)

    kept, gone = registry.delete(SERVICES, "default", "web", DeleteOptions("Foreground"))
    assert not gone
    obj = stored(registry)
    assert obj["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert "bogusField" not in obj["spec"] and "bogusField" not in kept["spec"]


def test_keys_of_maps_are_data_not_fields(registry):
    """Maps (labels, annotations, selector, nodeSelector) hold any key: nothing in them is unknown."""
    body = service()
    body["metadata"]["labels"] = {"bogusField": "kept"}
    body["spec"]["selector"] = {"bogusField": "kept"}
    registry.create(SERVICES, "default", body, opts())
    obj = stored(registry)
    assert obj["metadata"]["labels"] == obj["spec"]["selector"] == {"bogusField": "kept"}


# ---------------------------------------------------------------- size cap


def pod(name: str, payload_bytes: int) -> Obj:
    """A valid Pod whose container argument is payload_bytes long (upstream bounds neither)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["x" * payload_bytes]}]}}


def test_object_over_the_limit_is_refused_with_a_413_status_and_nothing_is_stored(registry):
    revision = registry.store.current_revision()
    with pytest.raises(ApiError) as err:
        registry.create(PODS, "default", pod("big", MAX_OBJECT_BYTES), opts())
    status = err.value.status()
    assert (status["code"], status["reason"]) == (413, "RequestEntityTooLarge")
    assert status["message"].startswith("Request entity too large: ")
    assert f"limit is {MAX_OBJECT_BYTES}" in status["message"]
    assert status["details"] == {"name": "big", "kind": "pods"}
    assert registry.store.current_revision() == revision
    with pytest.raises(ApiError):
        stored(registry, PODS, "big")


def deployment(name: str, payload_bytes: int) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod(name, payload_bytes)["spec"]}}}


def test_update_that_grows_an_object_over_the_limit_is_refused_and_the_old_one_kept(registry):
    created = registry.create(DEPLOYMENTS, "default", deployment("grow", 1024), opts())
    grown = copy.deepcopy(created)
    grown["spec"]["template"]["spec"]["containers"][0]["args"] = ["y" * MAX_OBJECT_BYTES]
    with pytest.raises(ApiError) as err:
        registry.update(DEPLOYMENTS, "default", "grow", grown, opts())
    assert err.value.code == 413
    ops = [{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "z" * MAX_OBJECT_BYTES}]
    with pytest.raises(ApiError) as err:
        patch_with(registry, "json", ops, opts(), res=DEPLOYMENTS, name="grow")
    assert err.value.code == 413
    assert stored(registry, DEPLOYMENTS, "grow") == created


def test_the_limit_is_on_the_encoded_object(registry):
    overhead = len(jsoncodec.dumps(registry.create(PODS, "default", pod("probe", 0), opts())))
    # `overhead` covers metadata the registry stamps; leave room for a longer name.
    fits = pod("fits", MAX_OBJECT_BYTES - overhead - 64)
    registry.create(PODS, "default", fits, opts())
    assert len(jsoncodec.dumps(stored(registry, PODS, "fits"))) <= MAX_OBJECT_BYTES
    with pytest.raises(ApiError):
        registry.create(PODS, "default", pod("over", MAX_OBJECT_BYTES - overhead + 64), opts())


def test_eleven_objects_of_one_mebibyte_are_all_stored(registry):
    for i in range(11):
        registry.create(PODS, "default", pod(f"mib-{i}", 1 << 20), opts())
    names = {o["metadata"]["name"] for o in registry.list(PODS, "default").items}
    assert names == {f"mib-{i}" for i in range(11)}


def test_dry_run_does_not_reach_the_limit_check_as_upstream_skips_etcd(registry):
    dry = WriteOptions(dry_run=True)
    obj = registry.create(PODS, "default", pod("dry", MAX_OBJECT_BYTES), dry)
    assert obj["metadata"]["name"] == "dry"
