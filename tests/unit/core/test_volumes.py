"""core/volumes: what each volume kind projects, with which modes, and the checks on paths and mounts."""
from __future__ import annotations

import base64
from typing import Any

import pytest

from svcnet.core import volumes as v
from svcnet.core.volumes import FileToWrite, TokenRef, VolumeError

CM = {"metadata": {"name": "cfg"}, "data": {"a.conf": "alpha", "b": "beta"},
      "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}
SECRET = {"metadata": {"name": "creds"}, "data": {"user": base64.b64encode(b"admin").decode(),
                                                   "pass": base64.b64encode(b"s3cr3t").decode()}}
POD = {"metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "labels": {"app": "web", "tier": "front"},
                    "annotations": {"note": 'say "hi"'}},
       "spec": {"serviceAccountName": "default",
                "containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}}


def objects(kind: str, name: str) -> dict[str, Any] | None:
    return {("ConfigMap", "cfg"): CM, ("Secret", "creds"): SECRET}.get((kind, name))


def tokens(ref: TokenRef) -> str:
    return f"token-for-{ref.audience or 'api'}-{ref.expiration_seconds}"


def payload(volume: dict[str, Any]) -> dict[str, FileToWrite]:
    return v.payload_of(POD, volume, objects, tokens, {"cpu": "4", "memory": "8Gi"})


def test_configmap_volume_holds_every_key_data_and_binary_with_mode_0644() -> None:
    got = payload({"name": "c", "configMap": {"name": "cfg"}})
    assert got == {"a.conf": FileToWrite(b"alpha", 0o644), "b": FileToWrite(b"beta", 0o644),
                   "bin": FileToWrite(b"\x00\x01", 0o644)}


def test_items_choose_keys_paths_and_modes_and_default_mode_applies_to_the_rest() -> None:
    got = payload({"name": "c", "configMap": {"name": "cfg", "defaultMode": 0o600,
                                              "items": [{"key": "a.conf", "path": "etc/a.conf"},
                                                        {"key": "b", "path": "b.txt", "mode": 0o400}]}})
    assert got == {"etc/a.conf": FileToWrite(b"alpha", 0o600), "b.txt": FileToWrite(b"beta", 0o400)}


def test_secret_volume_decodes_its_data() -> None:
    got = payload({"name": "s", "secret": {"secretName": "creds"}})
    assert got == {"user": FileToWrite(b"admin", 0o644), "pass": FileToWrite(b"s3cr3t", 0o644)}


@pytest.mark.parametrize(("volume", "message"), [
    ({"name": "c", "configMap": {"name": "nope"}}, 'configmap "nope" not found'),
    ({"name": "s", "secret": {"secretName": "nope"}}, 'secret "nope" not found'),
    ({"name": "c", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}},
     "configmap references non-existent config key: zz"),
])
def test_a_missing_object_or_key_is_an_error_naming_it(volume: dict[str, Any], message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        payload(volume)


def test_optional_missing_object_or_key_gives_what_exists() -> None:
    assert payload({"name": "c", "configMap": {"name": "nope", "optional": True}}) == {}
    got = payload({"name": "c", "configMap": {"name": "cfg", "optional": True,
                                              "items": [{"key": "zz", "path": "z"}, {"key": "b", "path": "b"}]}})
    assert got == {"b": FileToWrite(b"beta", 0o644)}


def test_downward_api_fields_labels_annotations_and_resources() -> None:
    got = payload({"name": "d", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu-req", "resourceFieldRef": {"containerName": "app", "resource": "requests.cpu", "divisor": "1m"}},
        {"path": "cpu-limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}},
    ]}})
    text = {path: item.data.decode() for path, item in got.items()}
    assert text == {"name": "web", "ns": "prod", "uid": "u-1", "labels": 'app="web"\ntier="front"',
                    "annotations": 'note="say \\"hi\\""', "app": "web", "mem": "64", "cpu-req": "250",
                    "cpu-limit": "4"}  # no CPU limit: the node's allocatable


def test_projected_volume_of_the_admission_plugin_has_token_ca_and_namespace() -> None:
    root_ca = {"data": {"ca.crt": "PEM"}}
    got = v.payload_of(POD, v.api_access_volume("kube-api-access-abcde"),
                       lambda kind, name: root_ca if (kind, name) == ("ConfigMap", "kube-root-ca.crt") else None,
                       tokens)
    assert got == {"token": FileToWrite(b"token-for-api-3607", 0o644), "ca.crt": FileToWrite(b"PEM", 0o644),
                   "namespace": FileToWrite(b"prod", 0o644)}


def test_projected_token_audience_and_lifetime_and_default_mode() -> None:
    got = payload({"name": "p", "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault-token"}},
        {"secret": {"name": "creds", "items": [{"key": "user", "path": "user"}]}}]}})
    assert got == {"vault-token": FileToWrite(b"token-for-vault-600", 0o440), "user": FileToWrite(b"admin", 0o440)}


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../../b", "..hidden", "", "x/" + "y" * 256])
def test_paths_that_could_leave_the_volume_or_clash_with_the_writer_are_refused(path: str) -> None:
    with pytest.raises(VolumeError, match="invalid path"):
        v.validate_path(path)


def test_a_file_inside_another_file_is_refused() -> None:
    with pytest.raises(VolumeError, match="inside the file"):
        v.validate_payload({"a": FileToWrite(b"", 0o644), "a/b": FileToWrite(b"", 0o644)})


def test_unsupported_volume_types_are_named() -> None:
    with pytest.raises(VolumeError, match="unsupported volume type hostPath"):
        v.volume_kind({"name": "h", "hostPath": {"path": "/"}})


def pod_with(containers: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": containers, "volumes": volumes}}


def test_mount_requests_union_the_containers_mounts_parents_first_and_api_data_read_only() -> None:
    pod = pod_with([{"name": "a", "volumeMounts": [{"name": "cache", "mountPath": "/data/cache/"},
                                                   {"name": "cfg", "mountPath": "/etc/config"}]},
                    {"name": "b", "volumeMounts": [{"name": "cache", "mountPath": "/data/cache", "readOnly": True},
                                                   {"name": "scratch", "mountPath": "/data", "subPath": "s"}]}],
                   [{"name": "cache", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}])
    assert v.mount_requests(pod) == [
        v.MountRequest("scratch", "/data", "s", False), v.MountRequest("cache", "/data/cache", "", False),
        v.MountRequest("cfg", "/etc/config", "", True)]
    assert v.empty_dir_limit(pod["spec"]["volumes"][2]) == 1 << 20
    assert v.empty_dir_limit(pod["spec"]["volumes"][0]) is None


@pytest.mark.parametrize(("mounts", "message"), [
    ([{"name": "x", "mountPath": "/a"}], 'unknown volume "x"'),
    ([{"name": "e", "mountPath": "rel"}], "mountPath must be absolute"),
    ([{"name": "e", "mountPath": "/"}], "invalid mountPath"),
    ([{"name": "e", "mountPath": "/a", "subPath": "../x"}], "subPath must be a relative path"),
])
def test_bad_mounts_are_refused_with_the_reason(mounts: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        v.mount_requests(pod_with([{"name": "c", "volumeMounts": mounts}], [{"name": "e", "emptyDir": {}}]))


def test_two_containers_mounting_different_volumes_at_one_path_is_refused() -> None:
    pod = pod_with([{"name": "a", "volumeMounts": [{"name": "e", "mountPath": "/x"}]},
                    {"name": "b", "volumeMounts": [{"name": "f", "mountPath": "/x"}]}],
                   [{"name": "e", "emptyDir": {}}, {"name": "f", "emptyDir": {}}])
    with pytest.raises(VolumeError, match='containers "a" and "b" mount different volumes at /x'):
        v.mount_requests(pod)


def test_automount_pod_setting_wins_over_the_service_accounts() -> None:
    pod_off, pod_unset = {"spec": {"automountServiceAccountToken": False}}, {"spec": {}}
    sa_off = {"automountServiceAccountToken": False}
    assert v.mounts_service_account_token(pod_unset, {}) is True
    assert v.mounts_service_account_token(pod_unset, sa_off) is False
    assert v.mounts_service_account_token(pod_off, {}) is False
    assert v.mounts_service_account_token({"spec": {"automountServiceAccountToken": True}}, sa_off) is True


def test_api_access_goes_into_every_container_except_one_mounting_the_path_itself() -> None:
    pod = pod_with([{"name": "a"}, {"name": "b", "volumeMounts": [
        {"name": "own", "mountPath": v.SERVICE_ACCOUNT_MOUNT_PATH}]}], [{"name": "own", "emptyDir": {}}])
    pod["spec"]["initContainers"] = [{"name": "i"}]
    v.add_api_access(pod, "kube-api-access-xyz12")
    spec = pod["spec"]
    expected = {"name": "kube-api-access-xyz12", "readOnly": True, "mountPath": v.SERVICE_ACCOUNT_MOUNT_PATH}
    assert spec["containers"][0]["volumeMounts"] == [expected]
    assert spec["initContainers"][0]["volumeMounts"] == [expected]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "own", "mountPath": v.SERVICE_ACCOUNT_MOUNT_PATH}]
    assert [vol["name"] for vol in spec["volumes"]] == ["own", "kube-api-access-xyz12"]
    assert spec["volumes"][1]["projected"]["sources"][0] == {
        "serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
