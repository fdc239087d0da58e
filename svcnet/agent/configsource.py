"""Where the agent reads the ConfigMaps and Secrets its pods name: one GET per object, briefly cached.

Both a container's environment (env valueFrom, envFrom) and the configMap/secret/projected volumes
read through here. It fetches by name, never a list or watch of every ConfigMap or Secret: a node's
credentials may read only the objects its own pods reference (upstream's Node authorizer), and
kubelet's own managers fetch the same way. A fetched object is kept for `ttl_seconds`, so the
volumes of many pods naming one ConfigMap cost one GET per period; a missing object is not kept,
so a pod waiting for it starts as soon as it is created. Reads of one object that arrive while
its GET is in flight wait for that GET: a burst of 100 pods, each with kube-root-ca.crt in its
token volume, makes one request, not 100.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.client.rest import TransportError

Obj = dict[str, Any]
CONFIGMAPS = lookup("", "v1", "configmaps")
SECRETS = lookup("", "v1", "secrets")
# kubelet's TTL cache strategy keeps an object a minute at most; the volume resync adds its own
# period on top, and an edit must show within 60 s (as upstream's documentation promises).
DEFAULT_TTL_SECONDS = 15.0
STALE_AFTER = 4  # TTLs: an object still named by a running pod is fetched again well before this


class SourceError(Exception):
    """The object could not be read (not a 404): the message names it and the API's answer."""


class ConfigSource:
    def __init__(self, api: Any, *, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, Obj]] = {}
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[Obj | None]] = {}

    async def get(self, kind: str, namespace: str, name: str, *, fresh: bool = False) -> Obj | None:
        """The ConfigMap or Secret (kind "ConfigMap"|"Secret"), or None if it does not exist."""
        key = (kind, namespace, name)
        cached = self._cache.get(key)
        if not fresh and cached is not None and self.clock() - cached[0] < self.ttl_seconds:
            return cached[1]
        if fresh:  # a GET already in flight may have been answered before the change asked about
            return await self._fetch(key)
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(key))
            self._in_flight[key] = pending
            pending.add_done_callback(lambda done: self._settled(key, done))
        # shield: one waiter cancelled (its pod deleted) must not cancel the others' read
        return await asyncio.shield(pending)

    def _settled(self, key: tuple[str, str, str], done: asyncio.Future[Obj | None]) -> None:
        self._in_flight.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: its waiters may all have gone

    async def _fetch(self, key: tuple[str, str, str]) -> Obj | None:
        kind, namespace, name = key
        resource = CONFIGMAPS if kind == "ConfigMap" else SECRETS
        try:
            obj = await self.api.get(resource, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                self._cache.pop(key, None)
                return None
            raise SourceError(f"cannot read {kind.lower()} {namespace}/{name}: {exc}") from None
        except TransportError as exc:
            raise SourceError(f"cannot read {kind.lower()} {namespace}/{name}: {exc}") from None
        now = self.clock()
        self._cache[key] = (now, obj)
        self._evict_older_than(now - STALE_AFTER * self.ttl_seconds)
        return obj

    async def get_many(self, namespace: str, refs: set[tuple[str, str]]) -> dict[tuple[str, str], Obj | None]:
        """Several (kind, name) of one namespace: each object or None."""
        return {(kind, name): await self.get(kind, namespace, name) for kind, name in sorted(refs)}

    def _evict_older_than(self, cutoff: float) -> None:
        """Objects nobody asked for in a while go (a deleted pod's Secrets do not stay in memory)."""
        for key in [k for k, (fetched, _) in self._cache.items() if fetched < cutoff]:
            del self._cache[key]


__all__ = ["CONFIGMAPS", "SECRETS", "ConfigSource", "SourceError"]
