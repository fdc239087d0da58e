"""The real kubectl against `svcnet apiserver`: unknown fields are never stored, and objects over
etcd's 1.5 MiB request limit are refused with a Status (issue 12, item 2)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from svcnet.apiserver.registry import MAX_OBJECT_BYTES
from tests.integration.apiserver_harness import ApiServerProcess

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    protocol: TCP
    port: 80
"""
UNKNOWN_SPEC_WARNING = 'Warning: unknown field "spec.bogusField"'


def create_service(server: ApiServerProcess, tmp_path: Path, text: str = SERVICE) -> dict:
    path = tmp_path / "svc.yaml"
    path.write_text(text)
    server.kubectl("create", "-f", str(path))
    return server.kubectl_json("get", "svc", "web")


def bogus_manifest(tmp_path: Path) -> str:
    """The Service with spec.bogusField, as a file for kubectl -f."""
    path = tmp_path / "svc-bogus.yaml"
    path.write_text(SERVICE + "  bogusField: 1\n")
    return str(path)


def stored_service(server: ApiServerProcess) -> dict:
    return server.kubectl_json("get", "svc", "web")


def test_kubectl_merge_patch_with_an_unknown_field_stores_nothing_and_later_writes_do_not_warn(
        apiserver, tmp_path):
    before = create_service(apiserver, tmp_path)
    patched = apiserver.kubectl("patch", "svc", "web", "--type=merge", "-p", '{"spec":{"bogusField":1}}')
    assert UNKNOWN_SPEC_WARNING in patched.stderr
    assert "service/web patched (no change)" in patched.stdout
    after = stored_service(apiserver)
    assert "bogusField" not in after["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    labelled = apiserver.kubectl("label", "svc", "web", "tier=frontend")
    assert "Warning" not in labelled.stderr
    assert stored_service(apiserver)["metadata"]["labels"] == {"tier": "frontend"}


def test_kubectl_json_and_strategic_patches_prune_an_unknown_field(apiserver, tmp_path):
    create_service(apiserver, tmp_path)
    for patch_type, body in (("json", '[{"op":"add","path":"/spec/bogusField","value":1}]'),
                             ("strategic", '{"spec":{"bogusField":1,"sessionAffinity":"ClientIP"}}')):
        result = apiserver.kubectl("patch", "svc", "web", f"--type={patch_type}", "-p", body)
        assert UNKNOWN_SPEC_WARNING in result.stderr, patch_type
        assert "bogusField" not in stored_service(apiserver)["spec"], patch_type
    assert stored_service(apiserver)["spec"]["sessionAffinity"] == "ClientIP"


def test_status_subresource_prunes_an_operator_field(apiserver, tmp_path):
    create_service(apiserver, tmp_path)
    result = apiserver.kubectl("patch", "svc", "web", "--subresource=status", "--type=merge",
                               "-p", '{"status":{"on_create":true,"loadBalancer":{"ingress":[{"ip":"192.0.2.7"}]}}}')
    assert 'Warning: unknown field "status.on_create"' in result.stderr
    status = stored_service(apiserver)["status"]
    assert status == {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}

    again = apiserver.kubectl("patch", "svc", "web", "--subresource=status", "--type=merge",
                              "-p", '{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.8"}]}}}')
    assert "Warning" not in again.stderr


def test_server_side_apply_prunes_without_validation_and_strict_names_the_field(apiserver, tmp_path):
    manifest = bogus_manifest(tmp_path)

    refused = apiserver.kubectl("apply", "--server-side", "-f", manifest, check=False)
    assert refused.returncode != 0
    assert 'unknown field "spec.bogusField"' in refused.stderr
    assert apiserver.kubectl("get", "svc", "web", check=False).returncode != 0

    applied = apiserver.kubectl("apply", "--server-side", "--validate=false", "-f", manifest)
    assert "service/web serverside-applied" in applied.stdout
    obj = apiserver.kubectl_json("get", "svc", "web", "--show-managed-fields")
    assert "bogusField" not in obj["spec"]
    managers = obj["metadata"]["managedFields"]
    assert "kubectl" in {m["manager"] for m in managers}
    assert "bogusField" not in json.dumps(managers)


def test_create_and_replace_with_validate_strict_name_the_field_and_warn_prunes(apiserver, tmp_path):
    manifest = bogus_manifest(tmp_path)
    refused = apiserver.kubectl("create", "--validate=strict", "-f", manifest, check=False)
    assert refused.returncode != 0
    assert 'strict decoding error: unknown field "spec.bogusField"' in refused.stderr

    warned = apiserver.kubectl("create", "--validate=warn", "-f", manifest)
    assert UNKNOWN_SPEC_WARNING in warned.stderr
    assert "bogusField" not in stored_service(apiserver)["spec"]

    replaced = apiserver.kubectl("replace", "--validate=strict", "-f", manifest, check=False)
    assert replaced.returncode != 0
    assert 'unknown field "spec.bogusField"' in replaced.stderr


def pod_manifest(name: str, payload_bytes: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["x" * payload_bytes]}]}}


def test_an_object_over_one_and_a_half_mebibytes_is_refused_with_a_status_and_not_stored(apiserver, tmp_path):
    manifest = tmp_path / "big.json"
    manifest.write_text(json.dumps(pod_manifest("big", MAX_OBJECT_BYTES)))
    result = apiserver.kubectl("create", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert "Error from server (RequestEntityTooLarge)" in result.stderr
    assert f"limit is {MAX_OBJECT_BYTES}" in result.stderr
    assert apiserver.kubectl("get", "pod", "big", check=False).returncode != 0

    status, body = apiserver.request("POST", "/api/v1/namespaces/default/pods", pod_manifest("big", MAX_OBJECT_BYTES))
    assert status == 413
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "RequestEntityTooLarge", 413)


def test_eleven_objects_of_one_mebibyte_are_stored(apiserver, tmp_path):
    manifest = tmp_path / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all([pod_manifest(f"mib-{i}", 1 << 20) for i in range(11)]))
    apiserver.kubectl("create", "-f", str(manifest))
    names = apiserver.kubectl("get", "pods", "-o", "name").stdout.split()
    assert sorted(names) == sorted(f"pod/mib-{i}" for i in range(11))
