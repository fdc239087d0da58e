"""A pod's volumes on the node: written before its sandbox starts, kept up to date while it runs.

kubelet's volume manager and its configMap/secret/projected/downwardAPI plugins: the agent reads the
objects a pod's volumes name (agent/configsource.py) and the service-account tokens they project
(TokenRequest, bound to the pod), works out the files (core/volumes.py) and writes each volume with
the atomic writer under the pod's directory (<root>/pods/<pod>/_volumes/<plugin>/<name>). The
sandbox then mounts them at their mountPaths in the pod's mount namespace. A running pod's volumes
are written again at every sync, which changes nothing unless an object or a token did.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.agent.configsource import ConfigSource, SourceError
from svcnet.api.errors import ApiError
from svcnet.api.meta import parse_time_or_none
from svcnet.api.objects import name_of, namespace_of, spec_of, uid_of
from svcnet.client.rest import TransportError
from svcnet.core import volumes as plan
from svcnet.runtime.atomicwriter import write_volume
from svcnet.runtime.sandbox import SANDBOX_DIR, PodKey, VolumeMount, pod_directory

log = logging.getLogger("svcnet.agent.volumes")

Obj = dict[str, Any]
VOLUMES_DIR = "_volumes"  # "_" cannot begin a container name: no clash with container directories
# kubelet's token manager asks for a new token when 80% of the old one's life has passed (or after 24 h).
REFRESH_FRACTION = 0.8
MAX_TOKEN_AGE_SECONDS = 24 * 3600

# (pod, service account, token ref) -> (token, expiration time as a UNIX timestamp)
TokenFetcher = Callable[[Mapping[str, Any], str, plan.TokenRef], Awaitable[tuple[str, float]]]


@dataclass(frozen=True)
class PodVolumes:
    """What the sandbox needs: the mounts, and the memory-backed emptyDirs to put a tmpfs on."""

    mounts: tuple[VolumeMount, ...]
    memory: tuple[tuple[str, int], ...]


def volumes_directory(root: Path, key: PodKey) -> Path:
    return pod_directory(root, key) / VOLUMES_DIR


def api_token_fetcher(api: Any) -> TokenFetcher:
    """TokenRequest on the pod's ServiceAccount, bound to the pod (what kubelet's token manager sends)."""

    async def fetch(pod: Mapping[str, Any], service_account: str, ref: plan.TokenRef) -> tuple[str, float]:
        namespace = namespace_of(pod) or "default"
        spec: Obj = {"expirationSeconds": ref.expiration_seconds,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": name_of(pod), "uid": uid_of(pod)}}
        if ref.audience:
            spec["audiences"] = [ref.audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        answer = await api.request("POST", path, body=body)
        status = answer.get("status") or {}
        expires = parse_time_or_none(status.get("expirationTimestamp"))
        return str(status.get("token") or ""), (expires.timestamp() if expires else time.time() + ref.expiration_seconds)

    return fetch


@dataclass
class _Token:
    token: str
    issued_at: float
    expires_at: float


class TokenManager:
    """Tokens per (pod uid, audience, lifetime), renewed at 80% of their life."""

    def __init__(self, fetch: TokenFetcher, clock: Callable[[], float] = time.time) -> None:
        self.fetch = fetch
        self.clock = clock
        self._tokens: dict[tuple[str, plan.TokenRef], _Token] = {}

    def _fresh(self, token: _Token) -> bool:
        now = self.clock()
        life = token.expires_at - token.issued_at
        return now < token.issued_at + min(life * REFRESH_FRACTION, MAX_TOKEN_AGE_SECONDS)

    async def token(self, pod: Mapping[str, Any], ref: plan.TokenRef) -> str:
        key = (uid_of(pod), ref)
        held = self._tokens.get(key)
        if held is not None and self._fresh(held):
            return held.token
        account = str(spec_of(pod).get("serviceAccountName") or "default")
        issued_at = self.clock()
        try:
            token, expires_at = await self.fetch(pod, account, ref)
        except (ApiError, TransportError) as exc:
            if held is not None and self.clock() < held.expires_at:
                log.warning("pod %s: renewing its token failed (%s); keeping the current one", name_of(pod), exc)
                return held.token
            raise plan.VolumeError(f"failed to fetch token: {exc}") from None
        self._tokens[key] = _Token(token, issued_at, expires_at)
        return token

    def forget(self, uid: str) -> None:
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]


class VolumeManager:
    def __init__(self, root: Path, sources: ConfigSource, tokens: TokenManager, *,
                 allocatable: Mapping[str, Any] | None = None) -> None:
        self.root = root
        self.sources = sources
        self.tokens = tokens
        self.allocatable = dict(allocatable or {})

    async def _objects(self, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> dict[tuple[str, str], Obj | None]:
        try:
            return await self.sources.get_many(namespace_of(pod) or "default", plan.referenced_objects(volume))
        except SourceError as exc:
            raise plan.VolumeError(str(exc)) from None

    async def _tokens(self, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> dict[plan.TokenRef, str]:
        refs = {plan.token_ref(p["serviceAccountToken"])
                for p in (volume.get("projected") or {}).get("sources") or [] if p.get("serviceAccountToken")}
        return {ref: await self.tokens.token(pod, ref) for ref in refs}

    def _directory(self, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> Path:
        kind = plan.volume_kind(volume)
        return volumes_directory(self.root, PodKey.of(pod)) / plan.PLUGIN_DIRS[kind] / str(volume["name"])

    async def write(self, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
        """Write one configMap/secret/downwardAPI/projected volume; True if its files changed."""
        objects = await self._objects(pod, volume)
        tokens = await self._tokens(pod, volume)
        payload = plan.payload_of(pod, volume, lambda kind, name: objects.get((kind, name)),
                                  lambda ref: tokens[ref], self.allocatable)
        directory = self._directory(pod, volume)
        try:
            return await asyncio.to_thread(write_volume, directory, payload, dt.datetime.now(dt.UTC))
        except OSError as exc:  # a full or read-only disk: the pod waits, as for a missing object
            raise plan.VolumeError(f"writing {directory}: {exc.strerror or exc}") from None

    async def set_up(self, pod: Mapping[str, Any]) -> PodVolumes:
        """Every mounted volume made ready; VolumeError names the first that cannot be (FailedMount)."""
        requests = plan.mount_requests(pod)
        volumes = {str(v["name"]): v for v in plan.used_volumes(pod)}
        memory: list[tuple[str, int]] = []
        for name, volume in volumes.items():
            kind = plan.volume_kind(volume)
            directory = self._directory(pod, volume)
            if kind == "emptyDir":
                try:
                    directory.mkdir(parents=True, exist_ok=True)
                    os.chmod(directory, 0o777)  # kubelet's emptyDir is world-writable, as docker's volumes
                except OSError as exc:
                    raise plan.VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from None
                limit = plan.empty_dir_limit(volume)
                if limit is not None:
                    memory.append((str(directory), limit))
                continue
            try:
                await self.write(pod, volume)
            except plan.VolumeError as exc:
                raise plan.VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from None
        mounts = tuple(VolumeMount(str(self._directory(pod, volumes[r.volume])), r.target, r.read_only, r.sub_path,
                                   plan.volume_kind(volumes[r.volume]) == "emptyDir") for r in requests)
        return PodVolumes(mounts, tuple(memory))

    async def refresh(self, pod: Mapping[str, Any]) -> list[str]:
        """Write a running pod's API-data volumes again; the messages of those that failed (they keep
        their old files, as kubelet leaves a volume whose object went away)."""
        failures = []
        try:
            used = plan.used_volumes(pod)
        except plan.VolumeError as exc:  # a pod adopted from before volumes were checked
            return [str(exc)]
        for volume in used:
            if plan.volume_kind(volume) not in plan.WRITTEN_KINDS:
                continue
            try:
                if await self.write(pod, volume):
                    log.info("pod %s: volume %s updated", name_of(pod), volume["name"])
            except plan.VolumeError as exc:
                failures.append(f'MountVolume.SetUp failed for volume "{volume["name"]}" : {exc}')
        return failures

    def without_sandbox(self, namespace: str = "*", name: str = "*") -> list[PodKey]:
        """Pods whose volumes were written but whose sandbox never started (a missing object held it
        back): nothing else records them, so a pod deleted meanwhile would leave its files."""
        found = []
        for directory in (self.root / "pods").glob(f"{namespace}_{name}_*"):
            parts = directory.name.split("_")
            if len(parts) == 3 and (directory / VOLUMES_DIR).is_dir() and not (directory / SANDBOX_DIR).exists():
                found.append(PodKey(*parts))
        return found

    def tear_down(self, key: PodKey) -> None:
        """The pod's volume files go (its mounts went with its mount namespace)."""
        self.tokens.forget(key.uid)
        shutil.rmtree(volumes_directory(self.root, key), ignore_errors=True)
        with_pod = pod_directory(self.root, key)
        if with_pod.is_dir() and not any(with_pod.iterdir()):
            with_pod.rmdir()


__all__ = ["PodVolumes", "TokenFetcher", "TokenManager", "VolumeManager", "api_token_fetcher",
           "volumes_directory"]
