"""The credentials `svcnet up` writes per component, and the controller manager's bindings."""
from __future__ import annotations

import base64
import stat
from pathlib import Path

import yaml
from cryptography import x509

from svcnet.apiserver.credentials import ensure_credentials
from svcnet.cluster import identities
from svcnet.config import ApiServerConfig
from svcnet.core import pki
from svcnet.core.rbac import bootstrap


def _cert(path: Path) -> x509.Certificate:
    user = yaml.safe_load(path.read_text())["users"][0]["user"]
    return x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))


def test_every_component_gets_a_private_kubeconfig_with_its_identity(tmp_path: Path) -> None:
    ensure_credentials(tmp_path)
    paths = identities.ensure_component_kubeconfigs(tmp_path, "https://127.0.0.1:6443", ["node-1", "node-2"])
    assert sorted(paths) == ["controller-manager", "kube-proxy", "kubelet-node-1", "kubelet-node-2", "scheduler"]
    assert pki.identity(_cert(paths["kubelet-node-2"])) == ("system:node:node-2", ("system:nodes",))
    assert pki.identity(_cert(paths["kube-proxy"])) == ("system:kube-proxy", ())
    assert pki.identity(_cert(paths["controller-manager"])) == ("system:kube-controller-manager", ())
    for path in paths.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "kubeconfigs").stat().st_mode) == 0o700
    doc = yaml.safe_load(paths["scheduler"].read_text())
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]) == \
        (tmp_path / "pki" / "ca.crt").read_bytes()


def test_a_restart_keeps_a_current_certificate_and_a_new_server_gets_a_new_one(tmp_path: Path) -> None:
    ensure_credentials(tmp_path)
    first = identities.ensure_component_kubeconfigs(tmp_path, "https://127.0.0.1:6443", ["node-1"])
    text = first["kubelet-node-1"].read_text()
    identities.ensure_component_kubeconfigs(tmp_path, "https://127.0.0.1:6443", ["node-1"])
    assert first["kubelet-node-1"].read_text() == text
    identities.ensure_component_kubeconfigs(tmp_path, "https://127.0.0.1:7443", ["node-1"])
    assert first["kubelet-node-1"].read_text() != text


def test_the_controller_manager_is_bound_to_the_roles_of_the_controllers_it_runs() -> None:
    bindings = identities.controller_manager_bindings(["replicaset", "endpoints", "garbagecollector", "unknown"])
    assert [b["roleRef"]["name"] for b in bindings] == [
        "system:controller:endpoint-controller", "system:controller:generic-garbage-collector",
        "system:controller:replicaset-controller"]
    assert all(b["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": "system:kube-controller-manager"}] for b in bindings)
    roles = {r["metadata"]["name"] for r in bootstrap.cluster_roles()}
    assert {b["roleRef"]["name"] for b in identities.controller_manager_bindings(
        list(identities.CONTROLLER_ROLE_OF))} <= roles


def test_components_reach_an_unspecified_bind_address_on_loopback() -> None:
    assert identities.component_server_url(ApiServerConfig(data_dir=Path("/x"), bind_address="0.0.0.0", port=6443)) \
        == "https://127.0.0.1:6443"
    assert identities.component_server_url(ApiServerConfig(data_dir=Path("/x"), bind_address="10.0.0.1", port=6443)) \
        == "https://10.0.0.1:6443"


def test_flannels_service_account_is_made_before_its_binding_and_bound_with_the_agents_user() -> None:
    objects = identities.overlay_service_account() + identities.overlay_rbac()
    kinds = [(plural, namespace, body["metadata"]["name"]) for plural, namespace, body in objects]
    assert kinds == [("namespaces", None, "kube-flannel"), ("serviceaccounts", "kube-flannel", "flannel"),
                     ("clusterroles", None, "svcnet:flannel"), ("clusterrolebindings", None, "svcnet:flannel")]
    assert objects[-1][2]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:svcnet:flannel"},
        {"kind": "ServiceAccount", "name": "flannel", "namespace": "kube-flannel"}]


def test_ensure_objects_creates_each_in_its_own_api_group_and_keeps_existing_ones() -> None:
    import asyncio

    from svcnet.api.errors import ApiError

    created: list[tuple[str, str, str | None]] = []

    class Api:
        async def create(self, resource: object, namespace: str | None, body: dict) -> None:
            created.append((resource.group, resource.plural, namespace))  # type: ignore[attr-defined]
            if resource.plural == "namespaces":  # type: ignore[attr-defined]
                raise ApiError(409, "AlreadyExists", "exists")

    asyncio.run(identities.ensure_objects(Api(), identities.overlay_service_account() + identities.overlay_rbac()))
    assert created == [("", "namespaces", None), ("", "serviceaccounts", "kube-flannel"),
                       ("rbac.authorization.k8s.io", "clusterroles", None),
                       ("rbac.authorization.k8s.io", "clusterrolebindings", None)]
