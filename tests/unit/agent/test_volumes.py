"""The agent's volumes over FakeApi and the in-memory runtime: written before the sandbox, handed to it
as mounts, kept up to date, held back by a missing object (FailedMount), removed with the pod."""
from __future__ import annotations

import base64
import dataclasses
import functools
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from svcnet.agent.configsource import CONFIGMAPS, SECRETS
from svcnet.agent.kubelet import PODS
from svcnet.agent.volumes import TokenManager, volumes_directory
from svcnet.api.objects import status_of
from svcnet.api.resources import lookup
from svcnet.core.volumes import SERVICE_ACCOUNT_MOUNT_PATH, TokenRef, api_access_volume
from svcnet.runtime.sandbox import PodKey
from tests import waiting
from tests.unit.agent.test_kubelet import Node, container_status, make_pod

until = functools.partial(waiting.until, timeout=10.0)
EVENTS = lookup("", "v1", "events")


class Tokens:
    """TokenRequest as the agent sees it: numbered tokens with the lifetime asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, TokenRef]] = []
        self.now = 1_000_000.0

    async def fetch(self, pod: Mapping[str, Any], account: str, ref: TokenRef) -> tuple[str, float]:
        self.calls.append((pod["metadata"]["name"], account, ref))
        return f"token-{len(self.calls)}", self.now + ref.expiration_seconds


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    n.tokens = Tokens()  # type: ignore[attr-defined]
    n.agent.volumes.tokens = TokenManager(n.tokens.fetch, clock=lambda: n.tokens.now)  # type: ignore[attr-defined]
    n.agent.sources.ttl_seconds = 0  # every refresh reads the API
    n.agent.config = dataclasses.replace(n.agent.config, volume_resync_seconds=0.05, resync_seconds=0.05)
    await n.agent.start()
    try:
        yield n
    finally:
        await n.agent.stop()


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def volume_pod(name: str) -> dict[str, Any]:
    return make_pod(name, containers=[{"name": "app", "image": "k8s.gcr.io/serve_hostname", "volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/config"}, {"name": "creds", "mountPath": "/creds"},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "kube-api-access-abcde", "mountPath": SERVICE_ACCOUNT_MOUNT_PATH, "readOnly": True}]}],
        serviceAccountName="default",
        volumes=[{"name": "cfg", "configMap": {"name": "app-config"}},
                 {"name": "creds", "secret": {"secretName": "app-secret", "defaultMode": 0o400}},
                 {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                 api_access_volume("kube-api-access-abcde")])


async def seed(node: Node) -> None:
    await node.api.create(CONFIGMAPS, "default", configmap("app-config", {"color": "blue"}))
    await node.api.create(CONFIGMAPS, "default", configmap("kube-root-ca.crt", {"ca.crt": "PEM"}))
    await node.api.create(SECRETS, "default", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secret"},
                                               "data": {"password": base64.b64encode(b"hunter2").decode()}})


async def running(node: Node, name: str) -> dict[str, Any] | None:
    pod = await node.pod(name)
    return pod if status_of(pod).get("phase") == "Running" else None


async def test_volumes_are_written_then_mounted_by_the_sandbox(node: Node) -> None:
    await seed(node)
    await node.api.create(PODS, "default", volume_pod("web"))
    pod = await until(lambda: running(node, "web"))
    key = PodKey.of(pod)
    root = volumes_directory(node.agent.config.runtime_root, key)
    config = node.runtime.configs[key]
    assert [(m.target, m.read_only) for m in config.mounts] == [
        ("/creds", True), ("/scratch", False), ("/etc/config", True), (SERVICE_ACCOUNT_MOUNT_PATH, True)]
    assert config.memory_volumes == ((str(root / "kubernetes.io~empty-dir" / "scratch"), 1 << 20),)
    assert Path(config.mounts[2].source) == root / "kubernetes.io~configmap" / "cfg"
    assert (root / "kubernetes.io~configmap" / "cfg" / "color").read_text() == "blue"
    password = root / "kubernetes.io~secret" / "creds" / "password"
    assert password.read_bytes() == b"hunter2" and password.stat().st_mode & 0o777 == 0o400
    api = root / "kubernetes.io~projected" / "kube-api-access-abcde"
    assert {p: (api / p).read_text() for p in ("token", "ca.crt", "namespace")} == {
        "token": "token-1", "ca.crt": "PEM", "namespace": "default"}
    assert node.tokens.calls == [("web", "default", TokenRef("", 3607))]  # type: ignore[attr-defined]


async def test_an_edited_configmap_is_rewritten_in_the_running_pod(node: Node) -> None:
    await seed(node)
    await node.api.create(PODS, "default", volume_pod("web"))
    pod = await until(lambda: running(node, "web"))
    color = volumes_directory(node.agent.config.runtime_root, PodKey.of(pod)) / "kubernetes.io~configmap/cfg/color"
    current = await node.api.get(CONFIGMAPS, "default", "app-config")
    await node.api.update(CONFIGMAPS, "default", {**current, "data": {"color": "green"}})
    await until(lambda: color.read_text() == "green")
    assert node.runtime.starts("web", "app") == 1  # the container keeps running


async def test_a_missing_configmap_holds_the_pod_in_container_creating_with_failed_mount(node: Node) -> None:
    await seed(node)
    await node.api.delete(CONFIGMAPS, "default", "app-config")
    await node.api.create(PODS, "default", volume_pod("web"))

    async def failed_mount() -> Any:
        events = [e for e in node.api.objects(EVENTS) if e.get("reason") == "FailedMount"]
        return events[0] if events else None

    event = await until(failed_mount)
    assert event["message"] == 'MountVolume.SetUp failed for volume "cfg" : configmap "app-config" not found'
    pod = await node.pod("web")
    assert container_status(pod)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert node.runtime.pods == {}
    await node.api.create(CONFIGMAPS, "default", configmap("app-config", {"color": "red"}))
    await until(lambda: running(node, "web"), timeout=30.0)


async def test_deleting_the_pod_removes_its_volume_files(node: Node) -> None:
    await seed(node)
    await node.api.create(PODS, "default", volume_pod("web"))
    pod = await until(lambda: running(node, "web"))
    root = volumes_directory(node.agent.config.runtime_root, PodKey.of(pod))
    assert root.is_dir()
    await node.api.delete(PODS, "default", "web")
    await until(lambda: not root.exists() and not root.parent.exists())


async def test_tokens_are_renewed_at_80_percent_of_their_life() -> None:
    tokens = Tokens()
    manager = TokenManager(tokens.fetch, clock=lambda: tokens.now)
    pod = {"metadata": {"name": "web", "uid": "u1"}, "spec": {"serviceAccountName": "robot"}}
    ref = TokenRef("", 3600)
    assert await manager.token(pod, ref) == "token-1"
    tokens.now += 0.8 * 3600 - 1
    assert await manager.token(pod, ref) == "token-1"
    tokens.now += 2
    assert await manager.token(pod, ref) == "token-2"
    assert [call[1] for call in tokens.calls] == ["robot", "robot"]
    manager.forget("u1")
    assert await manager.token(pod, ref) == "token-3"


async def test_a_pod_force_deleted_while_its_volumes_wait_leaves_no_files(node: Node) -> None:
    await node.api.create(CONFIGMAPS, "default", configmap("app-config", {"color": "blue"}))
    await node.api.create(PODS, "default", volume_pod("web"))  # app-secret is missing: cfg is written, creds not
    pod = await node.pod("web")
    root = volumes_directory(node.agent.config.runtime_root, PodKey.of(pod))
    await until(lambda: root.is_dir())
    await node.api.delete(PODS, "default", "web", grace_period_seconds=0)
    await until(lambda: not root.parent.exists())


async def test_a_mounted_volume_of_an_unsupported_type_is_a_failed_mount_naming_it(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("host", containers=[
        {"name": "app", "image": "k8s.gcr.io/serve_hostname", "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
        volumes=[{"name": "h", "hostPath": {"path": "/var/log"}}]))

    async def failed_mount() -> Any:
        return [e["message"] for e in node.api.objects(EVENTS) if e.get("reason") == "FailedMount"]

    assert await until(failed_mount) == ['volume "h": unsupported volume type hostPath']
    assert node.runtime.pods == {}
