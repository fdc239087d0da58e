"""Leader election through the API: client-go's LeaderElector, over svcnet's ApiClient.

The decisions are svcnet.core.leaderelection's; this runs them: read the Lease, write what the
Elector asks (create, or update at the resourceVersion read, so two candidates never both
land), every retry period, and run the component it guards only while leading.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.client.rest import TransportError
from svcnet.core.leaderelection import JITTER_FACTOR, ElectionConfig, Elector

log = logging.getLogger("svcnet.leaderelection")

LEASES = lookup("coordination.k8s.io", "v1", "leases")
LEASE_NAMESPACE = "kube-system"
# Failures of one try: the API said no (409: another candidate wrote first), or could not be reached.
_TRY_FAILURES = (ApiError, TransportError, aiohttp.ClientError, OSError, TimeoutError)


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def new_identity() -> str:
    """kube-controller-manager's and kube-scheduler's holderIdentity: `<hostname>_<uuid>`."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElected:
    """A supervisor component that runs `inner` only while this instance holds the Lease
    `namespace`/`lease_name`; `inner` is started on winning and stopped on losing it (a renewal
    missed for the renew deadline) or on stop, which also gives the Lease up."""

    def __init__(self, api_factory: Callable[[], Any], lease_name: str, config: ElectionConfig,
                 inner: Component, *, namespace: str = LEASE_NAMESPACE,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._api_factory = api_factory
        self.lease_name = lease_name
        self.namespace = namespace
        self.config = config
        self.elector = Elector(config)
        self.inner = inner
        self._monotonic = monotonic
        self._wall = wall
        self._api: Any = None
        self._task: asyncio.Task[None] | None = None
        self.leading = False  # inner is running

    def __repr__(self) -> str:
        return f"LeaderElected({self.lease_name}, {self.config.identity})"

    async def start(self) -> None:
        self._api = self._api_factory()
        if hasattr(self._api, "open"):
            await self._api.open()
        log.info("attempting to acquire leader lease %s/%s as %s", self.namespace, self.lease_name,
                 self.config.identity)
        self._task = asyncio.create_task(self._run(), name=f"leader-election-{self.lease_name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leading:
            await self._stop_inner()
            await self._release()
        if self._api is not None and hasattr(self._api, "close"):
            await self._api.close()
            self._api = None

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        while True:
            while not await self._try():
                await asyncio.sleep(self.config.retry_period * (1 + random.random() * JITTER_FACTOR))
            log.info("successfully acquired lease %s/%s", self.namespace, self.lease_name)
            self.leading = True
            # Renewals go on while the component starts (its caches may take a while to fill).
            starting = asyncio.create_task(self._start_inner(), name=f"leading-{self.lease_name}")
            try:
                await self._renew_until_lost()
            finally:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            log.warning("leader election lost: %s/%s not renewed within %.0f s; stopping",
                        self.namespace, self.lease_name, self.config.renew_deadline)
            await self._stop_inner()

    async def _renew_until_lost(self) -> None:
        """Renew every retry period; return once the renew deadline passed with no renewal."""
        while True:
            await asyncio.sleep(self.config.retry_period)
            await self._try()
            if not self.elector.is_leader(self._monotonic()):
                self.elector.lost()
                return

    async def _try(self) -> bool:
        """One tryAcquireOrRenew; True when our write landed. Bounded by the renew deadline, so a
        server that does not answer cannot hold a leader past it."""
        try:
            return await asyncio.wait_for(self._try_once(), self.config.renew_deadline)
        except _TRY_FAILURES as exc:
            log.debug("lease %s: %s", self.lease_name, exc)
            return False

    async def _try_once(self) -> bool:
        lease = await self._read()
        write = self.elector.attempt(self._monotonic(), self._wall(), lease, self.namespace, self.lease_name)
        if write is None:
            return False
        if write.create:
            written = await self._api.create(LEASES, self.namespace, write.body)
        else:
            written = await self._api.update(LEASES, self.namespace, write.body)
        self.elector.written(self._monotonic(), written)
        return True

    async def _read(self) -> dict[str, Any] | None:
        try:
            return await self._api.get(LEASES, self.namespace, self.lease_name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _start_inner(self) -> None:
        try:
            await self.inner.start()
        except Exception:  # stays leader, idle, until the lease is lost or the process stops
            log.exception("starting what lease %s guards", self.lease_name)

    async def _stop_inner(self) -> None:
        self.leading = False
        try:
            await self.inner.stop()
        except Exception:  # the election goes on; the next start builds everything anew
            log.exception("stopping %s after losing the lease", self.lease_name)

    async def _release(self) -> None:
        """Give the Lease up (client-go's ReleaseOnCancel), so a standby takes over at its next
        try rather than after the lease duration. Best effort: the lease expires anyway."""
        try:
            lease = await asyncio.wait_for(self._read(), self.config.retry_period)
            write = self.elector.release(self._wall(), lease) if lease is not None else None
            if write is not None:
                await asyncio.wait_for(self._api.update(LEASES, self.namespace, write.body),
                                       self.config.retry_period)
        except _TRY_FAILURES as exc:
            log.info("could not release lease %s: %s", self.lease_name, exc)
