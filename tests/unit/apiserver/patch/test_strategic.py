"""Strategic merge patch: the behaviour apimachinery's strategicpatch documents and tests,
driven by merge keys and strategies from an OpenAPI v3 schema."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.errors import ApiError
from svcnet.apiserver.patch import strategic_merge_patch
from tests.unit.apiserver.patch import DEPLOYMENT, POD, RESOLVER, SERVICE


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": list(containers), **spec}}


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


def smp(original: dict[str, Any], patch: dict[str, Any], root: str = POD) -> dict[str, Any]:
    return strategic_merge_patch(original, patch, RESOLVER, root)


WEB = container("web", image="nginx:1", ports=[{"containerPort": 80, "protocol": "TCP"}],
                env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
SIDE = container("side", image="busybox")

CASES = [
    pytest.param(
        pod(WEB), {"metadata": {"labels": {"app": "web"}}},
        {**pod(WEB), "metadata": {"name": "p", "labels": {"app": "web"}}},
        id="maps-merge-recursively"),
    pytest.param(
        {**pod(WEB), "metadata": {"name": "p", "labels": {"app": "web", "tier": "x"}}},
        {"metadata": {"labels": {"tier": None}}},
        {**pod(WEB), "metadata": {"name": "p", "labels": {"app": "web"}}},
        id="null-deletes-a-field"),
    pytest.param(
        pod(WEB), {"metadata": {"annotations": {"gone": None}}},
        {**pod(WEB), "metadata": {"name": "p", "annotations": {}}},
        id="null-for-a-missing-key-is-dropped"),
    pytest.param(
        pod(WEB, SIDE), {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}},
        pod({**WEB, "image": "nginx:2"}, SIDE),
        id="containers-merge-by-name-keeping-ports-and-env"),
    pytest.param(
        pod(WEB), {"spec": {"containers": [{"name": "side", "image": "busybox"}]}},
        pod(SIDE, WEB),
        id="new-list-item-goes-before-server-only-items-without-order-directive"),
    pytest.param(
        pod(WEB, SIDE), {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
        pod(WEB),
        id="patch-delete-removes-a-list-item"),
    pytest.param(
        pod(WEB), {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80, "$patch": "delete"}]}]}},
        pod({k: v for k, v in WEB.items() if k != "ports"} | {"ports": []}),
        id="patch-delete-removes-a-container-port"),
    pytest.param(
        pod(WEB), {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443}]}]}},
        pod({**WEB, "ports": [{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}]}),
        id="ports-merge-by-container-port"),
    pytest.param(
        pod(WEB, SIDE),
        {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]}},
        pod(SIDE, WEB),
        id="set-element-order-reorders-without-content-changes"),
    pytest.param(
        pod(WEB),
        {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                  "containers": [{"name": "side", "image": "busybox"}]}},
        pod(WEB, SIDE),
        id="set-element-order-places-a-new-item-last"),
    pytest.param(
        pod(WEB),
        {"spec": {"containers": [{"name": "web", "$setElementOrder/env": [{"name": "B"}, {"name": "C"}, {"name": "A"}],
                                  "env": [{"name": "C", "value": "3"}]}]}},
        pod({**WEB, "env": [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}, {"name": "A", "value": "1"}]}),
        id="set-element-order-inside-a-list-item"),
    pytest.param(
        {**pod(WEB), "metadata": {"name": "p", "finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["c", "a"]}},
        {**pod(WEB), "metadata": {"name": "p", "finalizers": ["c", "a", "b"]}},
        id="primitive-merge-list-is-a-union"),
    pytest.param(
        {**pod(WEB), "metadata": {"name": "p", "finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}},
        {**pod(WEB), "metadata": {"name": "p", "finalizers": ["a", "c"]}},
        id="delete-from-primitive-list"),
    pytest.param(
        {**pod(WEB), "metadata": {"name": "p", "finalizers": ["a", "b"]}},
        {"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}},
        {**pod(WEB), "metadata": {"name": "p", "finalizers": ["b", "c", "a"]}},
        id="set-element-order-on-a-primitive-list"),
    pytest.param(
        pod(WEB), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}},
        pod(WEB),
        id="delete-from-missing-primitive-list-adds-nothing"),
    pytest.param(
        pod(WEB, tolerations=[{"key": "a", "operator": "Exists"}]),
        {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
        pod(WEB, tolerations=[{"key": "b", "operator": "Exists"}]),
        id="list-without-strategy-is-replaced"),
    pytest.param(
        pod({**WEB, "args": ["a", "b"]}), {"spec": {"containers": [{"name": "web", "args": ["c"]}]}},
        pod({**WEB, "args": ["c"]}),
        id="primitive-list-without-strategy-is-replaced"),
    pytest.param(
        {**pod(WEB), "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
        {**pod(WEB), "metadata": {"name": "p", "labels": {"c": "3"}}},
        id="patch-replace-on-a-map"),
    pytest.param(
        {**pod(WEB), "metadata": {"name": "p", "labels": {"a": "1"}}},
        {"metadata": {"labels": {"$patch": "delete"}}},
        {**pod(WEB), "metadata": {"name": "p", "labels": {}}},
        id="patch-delete-on-a-map-empties-it"),
    pytest.param(
        pod(WEB, SIDE), {"spec": {"containers": [{"name": "new", "image": "x"}, {"$patch": "replace"}]}},
        pod(container("new", image="x")),
        id="patch-replace-in-a-list-replaces-it"),
    pytest.param(
        pod(WEB), {"spec": {"nodeSelector": {"disk": "ssd", "$patch": "delete"}}},
        pod(WEB),
        id="directive-map-for-a-missing-field-is-dropped"),
    pytest.param(
        pod(WEB),
        {"spec": {"initContainers": [{"name": "init", "image": "x", "env": None,
                                      "$setElementOrder/ports": [{"containerPort": 1}]}]}},
        pod(WEB, initContainers=[{"name": "init", "image": "x"}]),
        id="new-values-lose-nulls-and-directives"),
    pytest.param(
        {**pod(WEB), "metadata": {"name": "p", "ownerReferences": [
            {"uid": "1", "kind": "ReplicaSet", "name": "rs"}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "kind": "Node", "name": "n"}]}},
        {**pod(WEB), "metadata": {"name": "p", "ownerReferences": [
            {"uid": "2", "kind": "Node", "name": "n"}, {"uid": "1", "kind": "ReplicaSet", "name": "rs"}]}},
        id="owner-references-merge-by-uid"),
    pytest.param(
        {**pod(WEB), "status": {"conditions": [{"type": "Ready", "status": "False"},
                                               {"type": "Initialized", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {**pod(WEB), "status": {"conditions": [{"type": "Ready", "status": "True"},
                                               {"type": "Initialized", "status": "True"}]}},
        id="conditions-merge-by-type-in-place"),
    pytest.param(
        pod(WEB, volumes=[{"name": "v", "emptyDir": {}}]),
        {"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}},
        pod(WEB, volumes=[{"name": "v", "configMap": {"name": "cm"}}]),
        id="retain-keys-drops-the-other-volume-source"),
    pytest.param(
        pod(WEB), {"spec": {"containers": [{"name": "web", "ports": None}]}},
        pod({k: v for k, v in WEB.items() if k != "ports"}),
        id="null-inside-a-list-item-deletes-its-field"),
    pytest.param(
        pod(WEB), {"spec": {"restartPolicy": "Never"}},
        pod(WEB, restartPolicy="Never"),
        id="scalar-is-set"),
]


@pytest.mark.parametrize(("original", "patch", "expected"), CASES)
def test_strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert smp(original, patch) == expected


def deployment(**strategy: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1, "strategy": strategy,
                     "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [WEB]}}}}


def test_retain_keys_switching_strategy_type_drops_rolling_update() -> None:
    live = deployment(type="RollingUpdate", rollingUpdate={"maxSurge": "25%", "maxUnavailable": "25%"})
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}
    assert smp(live, patch, DEPLOYMENT)["spec"]["strategy"] == {"type": "Recreate"}


def test_service_ports_merge_by_port() -> None:
    live = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": 9376, "protocol": "TCP"}], "selector": {"app": "a"}}}
    patch = {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                      "ports": [{"port": 443, "targetPort": 8443}], "selector": {"app": "b"}}}
    assert smp(live, patch, SERVICE)["spec"] == {
        "ports": [{"port": 80, "targetPort": 9376, "protocol": "TCP"}, {"port": 443, "targetPort": 8443}],
        "selector": {"app": "b"}}


def test_client_side_apply_patch_keeps_defaulted_and_server_fields() -> None:
    """The three-way patch kubectl apply sends when the file changes the image and adds a port."""
    live = deployment(type="RollingUpdate", rollingUpdate={"maxSurge": "25%", "maxUnavailable": "25%"})
    live["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{old}"}
    live_web = {**WEB, "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"}
    live["spec"]["template"]["spec"] = {"containers": [live_web], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
    live["status"] = {"replicas": 1}
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"name": "web", "image": "nginx:2",
                            "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 9376}],
                            "ports": [{"containerPort": 9376}]}]}}},
    }
    result = smp(live, patch, DEPLOYMENT)
    assert result["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}
    assert result["spec"]["template"]["spec"] == {
        "containers": [{**live_web, "image": "nginx:2",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9376}]}],
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
    assert result["spec"]["strategy"] == live["spec"]["strategy"]
    assert result["status"] == {"replicas": 1}


def test_strategic_merge_patch_leaves_its_inputs_alone() -> None:
    original = pod(WEB, SIDE)
    patch = {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}
    before = (copy.deepcopy(original), copy.deepcopy(patch))
    smp(original, patch)
    assert (original, patch) == before


@pytest.mark.parametrize(("patch", "code", "message"), [
    pytest.param({"spec": {"containers": [{"image": "x"}]}}, 500,
                 "map: map[image:x] does not contain declared merge key: name", id="missing-merge-key"),
    pytest.param({"spec": {"containers": [{"name": "web", "$patch": "explode"}]}}, 500,
                 "unknown patch type: explode in map: map[$patch:explode name:web]", id="unknown-list-directive"),
    pytest.param({"metadata": {"$patch": "explode"}}, 500,
                 "unknown patch type: explode in map: map[$patch:explode]", id="unknown-map-directive"),
    pytest.param({"spec": {"containers": [{"name": "web", "$patch": "merge"}]}}, 500,
                 "merging lists cannot yet be specified in the patch", id="merge-directive-in-list"),
    pytest.param({"spec": {"$retainKeys": "containers"}}, 400,
                 "invalid patch format of retainKeys", id="retain-keys-not-a-list"),
    pytest.param({"spec": {"$retainKeys": ["containers"], "restartPolicy": "Never"}}, 400,
                 "invalid patch format of retainKeys", id="patch-field-outside-retain-keys"),
    pytest.param({"metadata": {"$deleteFromPrimitiveList": ["a"]}}, 400,
                 "invalid patch format of primitive list", id="delete-list-without-field"),
    pytest.param({"spec": {"$setElementOrder": [{"name": "web"}]}}, 400,
                 "invalid patch format of setElementOrder list", id="set-order-without-field"),
    pytest.param({"metadata": {"finalizers": [["a"]]}}, 422,
                 "the server rejected our request due to an error in our request", id="list-of-lists"),
])
def test_strategic_merge_patch_errors_match_upstream(patch: dict[str, Any], code: int, message: str) -> None:
    original = {**pod(WEB, SIDE), "metadata": {"name": "p", "finalizers": ["a"]}}
    with pytest.raises(ApiError) as err:
        smp(original, patch)
    assert (err.value.code, err.value.message) == (code, message)


def test_set_element_order_out_of_step_with_patch_list_is_rejected() -> None:
    patch = {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                      "containers": [{"name": "side", "image": "b"}, {"name": "web", "image": "a"}]}}
    with pytest.raises(ApiError) as err:
        smp(pod(WEB, SIDE), patch)
    assert err.value.code == 500
    assert "doesn't match $setElementOrder list" in err.value.message


def test_patch_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as err:
        strategic_merge_patch(pod(WEB), [1], RESOLVER, POD)  # type: ignore[arg-type]
    assert err.value.code == 400
