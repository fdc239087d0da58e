"""The ServiceAccount admission plugin's token volume, through the registry as the API server builds it."""
from __future__ import annotations

from typing import Any

from svcnet.api.resources import lookup
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.apiserver.serviceaccount_admission import ServiceAccountAdmission
from svcnet.core.volumes import SERVICE_ACCOUNT_MOUNT_PATH

PODS = lookup("", "v1", "pods")
SERVICE_ACCOUNTS = lookup("", "v1", "serviceaccounts")


def create(registry: Registry, resource: Any, body: dict[str, Any]) -> dict[str, Any]:
    return registry.create(resource, "default", body, WriteOptions())


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


def account(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}, **fields}


def admitting(registry: Registry) -> Registry:
    registry.admission.append(ServiceAccountAdmission(registry))
    return registry


def test_a_pod_gets_the_api_access_volume_mounted_read_only_in_every_container(registry: Registry) -> None:
    admitting(registry)
    create(registry, SERVICE_ACCOUNTS, account("default"))
    created = create(registry, PODS, pod("web", initContainers=[{"name": "init", "image": "busybox"}]))
    spec = created["spec"]
    assert spec["serviceAccountName"] == "default"
    (volume,) = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == len("kube-api-access-") + 5
    assert [s for source in volume["projected"]["sources"] for s in source] == [
        "serviceAccountToken", "configMap", "downwardAPI"]
    for container in spec["containers"] + spec["initContainers"]:
        assert container["volumeMounts"] == [{"name": volume["name"], "readOnly": True,
                                              "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]


def test_automount_false_on_the_pod_or_its_service_account_means_no_volume(registry: Registry) -> None:
    admitting(registry)
    create(registry, SERVICE_ACCOUNTS, account("default"))
    create(registry, SERVICE_ACCOUNTS, account("quiet", automountServiceAccountToken=False))
    assert "volumes" not in create(registry, PODS, pod("a", automountServiceAccountToken=False))["spec"]
    assert "volumes" not in create(registry, PODS, pod("b", serviceAccountName="quiet"))["spec"]
    assert create(registry, PODS, pod("c", serviceAccountName="quiet", automountServiceAccountToken=True)
                  )["spec"]["volumes"][0]["name"].startswith("kube-api-access-")


def test_a_pod_whose_service_account_does_not_exist_yet_gets_no_volume(registry: Registry) -> None:
    admitting(registry)
    created = create(registry, PODS, pod("web"))
    assert "volumes" not in created["spec"] and "volumeMounts" not in created["spec"]["containers"][0]
