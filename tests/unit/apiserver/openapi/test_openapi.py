"""OpenAPI v3 documents: index, paths, kubectl's field-validation and patch checks, components."""
from __future__ import annotations

import hashlib
import json
import re

import pytest

from svcnet.api.resources import RESOURCES, Resource
from svcnet.apiserver import openapi as o

WRITE_METHODS = ("post", "put", "patch")


def _gv_path(r: Resource) -> str:
    return f"api/{r.version}" if not r.group else f"apis/{r.group}/{r.version}"


def _doc(path: str) -> dict:
    doc = o.openapi_v3_document(path)
    assert doc is not None, path
    return doc


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield path, method, op


def _resolve(components: dict, node: dict) -> dict:
    """Follow allOf[0] and $ref the way kubectl's PatchMetaFromOpenAPIV3 does."""
    if node.get("allOf"):
        node = node["allOf"][0]
    if "$ref" in node:
        node = components[node["$ref"].removeprefix("#/components/schemas/")]
    return node


def test_index_lists_every_document_with_a_hash_pinned_url() -> None:
    index = o.openapi_v3_index()
    assert {"api", "api/v1", "apis", "apis/apps", "apis/apps/v1", "apis/discovery.k8s.io/v1",
            "apis/coordination.k8s.io/v1", "version"} <= set(index["paths"])
    for path, entry in index["paths"].items():
        url = entry["serverRelativeURL"]
        assert re.fullmatch(rf"/openapi/v3/{re.escape(path)}\?hash=[0-9A-F]{{128}}", url)


def test_hash_is_upper_case_sha512_of_the_served_bytes() -> None:
    data = o.openapi_v3_document_bytes("apis/apps/v1")
    assert data is not None
    assert o.openapi_v3_hash("apis/apps/v1") == hashlib.sha512(data).hexdigest().upper()
    assert json.loads(data) == o.openapi_v3_document("apis/apps/v1")


def test_unknown_document_is_none() -> None:
    assert o.openapi_v3_document("apis/policy/v1") is None
    assert o.openapi_v3_document_bytes("apis/policy/v1") is None
    assert o.openapi_v3_hash("nope") is None


def test_returned_documents_are_private_copies() -> None:
    doc = _doc("api/v1")
    doc["paths"].clear()
    assert _doc("api/v1")["paths"]


def test_documents_are_openapi_3() -> None:
    doc = _doc("api/v1")
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"] == "Kubernetes"


# Kinds with objects to read and change; the reviews (create-only, never stored) are not.
STORED = [r for r in RESOURCES if "get" in r.verbs]
CREATE_ONLY = [r for r in RESOURCES if r.verbs == ("create",)]


@pytest.mark.parametrize("r", CREATE_ONLY, ids=lambda r: r.plural)
def test_create_only_kinds_have_only_a_post_on_their_collection(r: Resource) -> None:
    doc = _doc(_gv_path(r))
    prefix = f"/apis/{r.group}/{r.version}" + ("/namespaces/{namespace}" if r.namespaced else "")
    assert set(doc["paths"][f"{prefix}/{r.plural}"]) - {"parameters"} == {"post"}
    assert f"{prefix}/{r.plural}/{{name}}" not in doc["paths"]


@pytest.mark.parametrize("r", STORED, ids=lambda r: r.plural)
def test_every_resource_has_collection_item_and_subresource_paths(r: Resource) -> None:
    doc = _doc(_gv_path(r))
    prefix = f"/api/{r.version}" if not r.group else f"/apis/{r.group}/{r.version}"
    base = f"{prefix}/namespaces/{{namespace}}" if r.namespaced else prefix
    collection = doc["paths"][f"{base}/{r.plural}"]
    item = doc["paths"][f"{base}/{r.plural}/{{name}}"]
    assert "get" in collection and "post" in collection
    assert ("delete" in collection) == ("deletecollection" in r.verbs)
    assert {"get", "put", "patch", "delete"} <= set(item)
    for sub in r.subresources:
        assert f"{base}/{r.plural}/{{name}}/{sub.name}" in doc["paths"]
    if r.namespaced:
        assert f"{prefix}/{r.plural}" in doc["paths"]
        assert f"{prefix}/watch/{r.plural}" in doc["paths"]


@pytest.mark.parametrize("path", o.openapi_v3_paths())
def test_every_write_operation_declares_field_validation(path: str) -> None:
    """Connect operations (pods/exec) carry no body, so no write parameters, as upstream."""
    for _, method, op in _operations(_doc(path)):
        if op.get("x-kubernetes-action") == "connect":
            continue
        names = [p["name"] for p in op.get("parameters", [])]
        if method in WRITE_METHODS:
            assert "fieldValidation" in names, op["operationId"]
            assert "fieldManager" in names and "dryRun" in names, op["operationId"]
        if method == "patch":
            assert "force" in names, op["operationId"]


def _kubectl_supports_field_validation(doc: dict, group: str, version: str, kind: str) -> bool:
    """cli-runtime's supportsQueryParamV3, restated: the first PATCH op for the GVK decides."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != {
                "group": group, "version": version, "kind": kind}:
            continue
        return any(p.get("name") == "fieldValidation" for p in op.get("parameters", []))
    return False


@pytest.mark.parametrize("r", STORED, ids=lambda r: r.plural)
def test_kubectl_sees_server_side_field_validation_for_every_kind(r: Resource) -> None:
    assert _kubectl_supports_field_validation(_doc(_gv_path(r)), r.group, r.version, r.kind)


@pytest.mark.parametrize("r", STORED, ids=lambda r: r.plural)
def test_patch_accepts_strategic_merge_patch(r: Resource) -> None:
    """kubectl's client-side apply computes an SMP from v3 only if the PATCH op offers it."""
    doc = _doc(_gv_path(r))
    patches = [op for _, m, op in _operations(doc) if m == "patch"
               and op["x-kubernetes-group-version-kind"]["kind"] == r.kind]
    assert patches
    for op in patches:
        assert set(op["requestBody"]["content"]) == set(o.PATCH_CONTENT_TYPES)


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.plural)
def test_kind_component_carries_its_group_version_kind(r: Resource) -> None:
    doc = _doc(_gv_path(r))
    schema = doc["components"]["schemas"][o.root_schema_name(r)]
    assert {"group": r.group, "kind": r.kind, "version": r.version} in schema[
        "x-kubernetes-group-version-kind"]


@pytest.mark.parametrize("path", o.openapi_v3_paths())
def test_every_reference_resolves_within_its_document(path: str) -> None:
    doc = _doc(path)
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


def test_components_are_the_union_of_every_schema() -> None:
    comps = o.components()
    assert "io.k8s.api.core.v1.Pod" in comps
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in comps
    assert comps["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert comps["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"] == "date-time"


def test_apps_document_includes_scale_and_pod_template() -> None:
    schemas = _doc("apis/apps/v1")["components"]["schemas"]
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas
    assert "io.k8s.api.core.v1.PodTemplateSpec" in schemas
    assert "io.k8s.api.core.v1.Service" not in schemas  # only what the document uses


@pytest.mark.parametrize(("schema", "prop", "expected"), [
    ("io.k8s.api.core.v1.PodSpec", "containers",
     {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
      "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}),
    ("io.k8s.api.core.v1.PodSpec", "volumes",
     {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge,retainKeys"}),
    ("io.k8s.api.core.v1.Container", "ports",
     {"x-kubernetes-patch-merge-key": "containerPort", "x-kubernetes-patch-strategy": "merge",
      "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"]}),
    ("io.k8s.api.core.v1.Container", "env",
     {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}),
    ("io.k8s.api.core.v1.Container", "volumeMounts",
     {"x-kubernetes-patch-merge-key": "mountPath", "x-kubernetes-list-map-keys": ["mountPath"]}),
    ("io.k8s.api.core.v1.Container", "args", {"x-kubernetes-list-type": "atomic"}),
    ("io.k8s.api.core.v1.ServiceSpec", "ports",
     {"x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge",
      "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"]}),
    ("io.k8s.api.core.v1.ServiceSpec", "selector", {"x-kubernetes-map-type": "atomic"}),
    ("io.k8s.api.core.v1.ServiceSpec", "clusterIPs", {"x-kubernetes-list-type": "atomic"}),
    ("io.k8s.api.core.v1.PodSpec", "tolerations", {"x-kubernetes-list-type": "atomic"}),
    ("io.k8s.api.core.v1.PodStatus", "conditions",
     {"x-kubernetes-patch-merge-key": "type", "x-kubernetes-list-map-keys": ["type"]}),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", {"x-kubernetes-patch-merge-key": "ip"}),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", {"x-kubernetes-patch-merge-key": "type"}),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", {"x-kubernetes-patch-strategy": "retainKeys"}),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences",
     {"x-kubernetes-patch-merge-key": "uid", "x-kubernetes-list-map-keys": ["uid"]}),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers",
     {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}),
    ("io.k8s.api.discovery.v1.Endpoint", "addresses", {"x-kubernetes-list-type": "set"}),
])
def test_list_and_patch_semantics_follow_upstream_tags(schema: str, prop: str, expected: dict) -> None:
    field = o.components()[schema]["properties"][prop]
    assert {k: field.get(k) for k in expected} == expected


def test_struct_level_map_type_atomic() -> None:
    comps = o.components()
    assert comps["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"] == "atomic"
    assert comps["io.k8s.api.core.v1.ObjectReference"]["x-kubernetes-map-type"] == "atomic"


def test_merge_key_lookup_through_refs_reaches_container_ports() -> None:
    """Walk Deployment -> spec -> template -> spec -> containers[] -> ports as an SMP reader would."""
    comps = _doc("apis/apps/v1")["components"]["schemas"]
    node = comps[o.root_schema_name(next(r for r in RESOURCES if r.kind == "Deployment"))]
    for key in ("spec", "template", "spec"):
        node = _resolve(comps, node["properties"][key])
    containers = node["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    container = _resolve(comps, containers["items"])
    assert container["properties"]["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"


@pytest.mark.parametrize(("kind", "required"), [
    ("io.k8s.api.core.v1.Container", ["name"]),
    ("io.k8s.api.core.v1.ServicePort", ["port"]),
    ("io.k8s.api.core.v1.ContainerPort", ["containerPort"]),
    ("io.k8s.api.apps.v1.DeploymentSpec", ["selector", "template"]),
    ("io.k8s.api.discovery.v1.EndpointSlice", ["addressType", "endpoints"]),
])
def test_required_lists_follow_upstream(kind: str, required: list[str]) -> None:
    assert o.components()[kind]["required"] == required


@pytest.mark.parametrize(("plural", "sub", "name"), [
    ("pods", None, "io.k8s.api.core.v1.Pod"),
    ("deployments", None, "io.k8s.api.apps.v1.Deployment"),
    ("deployments", "scale", "io.k8s.api.autoscaling.v1.Scale"),
    ("deployments", "status", "io.k8s.api.apps.v1.Deployment"),
    ("pods", "exec", "io.k8s.api.core.v1.PodExecOptions"),
    ("pods", "binding", "io.k8s.api.core.v1.Binding"),
    ("namespaces", "finalize", "io.k8s.api.core.v1.Namespace"),
    ("endpointslices", None, "io.k8s.api.discovery.v1.EndpointSlice"),
    ("leases", None, "io.k8s.api.coordination.v1.Lease"),
])
def test_root_schema_name(plural: str, sub: str | None, name: str) -> None:
    r = next(r for r in RESOURCES if r.plural == plural)
    assert o.root_schema_name(r, sub) == name


def test_scale_subresource_operations_name_autoscaling_scale() -> None:
    item = _doc("apis/apps/v1")["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert item["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "kind": "Scale", "version": "v1"}
    assert item["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentScale"


def test_operation_ids_follow_upstream_naming() -> None:
    ids = {op["operationId"] for _, _, op in _operations(_doc("api/v1"))}
    assert {"listCoreV1NamespacedPod", "createCoreV1NamespacedPod", "readCoreV1NamespacedPod",
            "patchCoreV1NamespacedPodStatus", "deleteCoreV1CollectionNamespacedPod",
            "listCoreV1PodForAllNamespaces", "readCoreV1Node", "readCoreV1NamespacedPodLog"} <= ids


EXEC_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/exec"


def test_exec_path_has_connect_get_and_post_as_upstream() -> None:
    item = _doc("api/v1")["paths"][EXEC_PATH]
    assert set(item) == {"get", "post", "parameters"}
    for method, op_id in (("get", "connectCoreV1GetNamespacedPodExec"),
                          ("post", "connectCoreV1PostNamespacedPodExec")):
        op = item[method]
        assert op["operationId"] == op_id
        assert op["tags"] == ["core_v1"]
        assert op["x-kubernetes-action"] == "connect"
        assert op["x-kubernetes-group-version-kind"] == {"group": "", "kind": "PodExecOptions", "version": "v1"}
        assert op["responses"] == {
            "200": {"description": "OK", "content": {"*/*": {"schema": {"type": "string"}}}},
            "401": {"description": "Unauthorized"}}
        assert "requestBody" not in op and "parameters" not in op


def test_exec_options_are_query_parameters_on_the_path() -> None:
    params = _doc("api/v1")["paths"][EXEC_PATH]["parameters"]
    shapes = [(p["name"], p["in"], p["schema"]["type"], p.get("required", False)) for p in params]
    assert shapes == [
        ("command", "query", "string", False),
        ("container", "query", "string", False),
        ("name", "path", "string", True),
        ("namespace", "path", "string", True),
        ("stderr", "query", "boolean", False),
        ("stdin", "query", "boolean", False),
        ("stdout", "query", "boolean", False),
        ("tty", "query", "boolean", False),
    ]
    assert next(p for p in params if p["name"] == "name")["description"] == "name of the PodExecOptions"


def test_pod_exec_options_schema_follows_the_go_type() -> None:
    schema = o.components()["io.k8s.api.core.v1.PodExecOptions"]
    props = schema["properties"]
    assert set(props) == {"apiVersion", "kind", "command", "container", "stderr", "stdin", "stdout", "tty"}
    assert props["command"] == {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}
    assert props["container"] == {"type": "string"}
    assert all(props[b] == {"type": "boolean"} for b in ("stdin", "stdout", "stderr", "tty"))
    assert schema["required"] == ["command"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "PodExecOptions", "version": "v1"}]


def test_api_v1_document_does_not_carry_pod_exec_options() -> None:
    """Connect operations reference no schema, and each document carries only what it references:
    upstream's /openapi/v3/api/v1 has no PodExecOptions component either."""
    assert "io.k8s.api.core.v1.PodExecOptions" not in _doc("api/v1")["components"]["schemas"]


def test_unserved_pod_subresources_have_no_paths() -> None:
    paths = _doc("api/v1")["paths"]
    base = "/api/v1/namespaces/{namespace}/pods/{name}"
    for sub in ("eviction", "ephemeralcontainers", "proxy"):
        assert f"{base}/{sub}" not in paths


def test_the_kubelet_proxied_subresources_are_connect_operations() -> None:
    paths = _doc("api/v1")["paths"]
    for path in ("/api/v1/namespaces/{namespace}/pods/{name}/attach",
                 "/api/v1/namespaces/{namespace}/pods/{name}/portforward", "/api/v1/nodes/{name}/proxy"):
        assert {paths[path]["get"]["x-kubernetes-action"], paths[path]["post"]["x-kubernetes-action"]} == {"connect"}
    attach = {p["name"] for p in paths["/api/v1/namespaces/{namespace}/pods/{name}/attach"]["parameters"]}
    assert {"container", "stdin", "stdout", "stderr", "tty"} <= attach
    assert "ports" in {p["name"] for p in paths["/api/v1/namespaces/{namespace}/pods/{name}/portforward"]["parameters"]}


def test_binding_and_finalize_have_their_write_operations() -> None:
    paths = _doc("api/v1")["paths"]
    binding = paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]
    assert set(binding) == {"post", "parameters"}
    assert binding["post"]["operationId"] == "createCoreV1NamespacedPodBinding"
    assert binding["post"]["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.Binding"}
    finalize = paths["/api/v1/namespaces/{name}/finalize"]
    assert set(finalize) == {"put", "parameters"}
    assert finalize["put"]["operationId"] == "replaceCoreV1NamespaceFinalize"
