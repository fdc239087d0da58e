"""Serving a Corefile, and the reload plugin: re-read it, build the new chain, swap, or keep the old one.

`CorefileSource` is where the text comes from: `FileCorefile` (`svcnet dns
--corefile FILE`); a ConfigMap source (kube-system/coredns, key `Corefile`) only
has to implement `read()` the same way. CoreDNS reads its Corefile from a file
that the kubelet keeps in sync with the ConfigMap, and polls it: polling the
source at the reload interval is that behaviour, whatever the source is.

`CorefileServer` owns the listening sockets, one DnsServer per port, and the
Routers behind them (svcnet.dns.chain). A reload (reload plugin semantics,
plugin/reload):

- every INTERVAL ± JITTER (30 s ± 15 s by default) the source is read; an
  unchanged text (same SHA-512) does nothing;
- a changed one is parsed and set up completely first; an invalid one is refused
  with one log line (`Restart failed: <CoreDNS's message>`) and the running
  configuration keeps serving; the same invalid text is not reported again;
- a valid one is swapped in: each port's server gets the new Router at once
  (queries already being answered finish on the old chain, whose forwarders are
  stopped only after they could have answered), new ports are bound, ports no
  longer named are closed. If a new port cannot be bound the reload is refused.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from svcnet.client.config import ClientConfig
from svcnet.client.rest import ApiClient
from svcnet.dns.chain import Router, build_router
from svcnet.dns.corefile import CorefileError
from svcnet.dns.forward import DEFAULT_TIMEOUT
from svcnet.dns.metrics import Metrics
from svcnet.dns.plugins import CorefileConfig, load
from svcnet.dns.server import DnsServer
from svcnet.dns.zone import ZoneData

log = logging.getLogger("svcnet.dns.reload")
RETIRE_AFTER = 2 * DEFAULT_TIMEOUT  # an old chain's forwarders outlive the swap by this: no query dropped


class CorefileSource(Protocol):
    """Where the Corefile text comes from."""

    name: str  # for messages: the file's path, or "kube-system/coredns"

    async def read(self) -> str:
        """The current text; OSError (or any Exception) when it cannot be read now."""
        ...


class FileCorefile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(path)

    async def read(self) -> str:
        return self.path.read_text()


class ConfigMapCorefile:
    """A ConfigMap's key (kube-system/coredns, `Corefile`), read from the API server on every check: what
    `kubectl edit cm coredns -n kube-system` changes takes effect at the next reload."""

    def __init__(self, client_config: ClientConfig, namespace: str, name: str, key: str = "Corefile") -> None:
        self.client_config = client_config
        self.namespace, self.configmap, self.key = namespace, name, key
        self.name = f"{namespace}/{name}"

    async def read(self) -> str:
        async with ApiClient(self.client_config, component="dns") as api:
            obj = await api.request("GET", f"/api/v1/namespaces/{self.namespace}/configmaps/{self.configmap}")
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get(self.key), str):
            raise LookupError(f"configmap {self.name} has no key {self.key!r}")
        return data[self.key]


def configmap_source(spec: str, client_config: ClientConfig) -> ConfigMapCorefile:
    """NAMESPACE/NAME[:KEY] (default kube-system/coredns:Corefile) -> its source; ValueError if malformed."""
    ref, _, key = spec.partition(":")
    namespace, slash, name = ref.partition("/")
    if not slash or not namespace or not name:
        raise ValueError(f"--corefile-configmap wants NAMESPACE/NAME[:KEY], not {spec!r}")
    return ConfigMapCorefile(client_config, namespace, name, key or "Corefile")


def read_file(path: str) -> str:
    """A file a Corefile names (a resolv.conf forward target)."""
    return Path(path).read_text()


def hosts_text(path: str) -> str:
    """A hosts plugin's file; a missing one is only a warning, as in CoreDNS's hosts setup."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        log.warning("plugin/hosts: %s: %s", path, exc.strerror or exc)
        return ""


def file_stamp(path: str) -> tuple[int, int] | None:
    """What tells a changed file: modification time and size (None: it is not there)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def load_config(text: str, env: Mapping[str, str], filename: str = "Corefile") -> CorefileConfig:
    return load(text, read_file=read_file, env=env, filename=filename)


def digest(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


class CorefileServer:
    """The DNS servers a Corefile describes, and their reloads."""

    def __init__(self, source: CorefileSource, text: str, config: CorefileConfig, data: ZoneData, metrics: Metrics,
                 *, host: str, local_ips: tuple[str, ...], env: Mapping[str, str], reuse_port: bool = False,
                 port_override: Callable[[int], int] | None = None) -> None:
        self.source = source
        self.config = config
        self.data = data
        self.metrics = metrics
        self.host = host
        self.local_ips = local_ips
        self.env = env
        self.reuse_port = reuse_port
        self.port_override = port_override or (lambda port: port)
        self.hash = digest(text)
        self.refused: str | None = None  # the hash of the last text refused, so it is logged once
        self.servers: dict[int, DnsServer] = {}
        self.routers: dict[int, Router] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._reloader: asyncio.Task[None] | None = None
        self._hosts_watch: asyncio.Task[None] | None = None
        self._hosts_stamps: dict[str, tuple[int, int] | None] = {}

    # ---------------------------------------------------------------- build
    def _routers(self, config: CorefileConfig) -> dict[int, Router]:
        out = {}
        for port in config.ports:
            servers = [s for s in config.servers if s.port == port]
            bind = self.port_override(port)
            out[port] = build_router(servers, self.data, self.metrics, local_ips=self.local_ips,
                                     own=(self.host, bind), hosts_text=hosts_text)
        return out

    def zone_changed(self, tags: set[str] | None = None) -> None:
        """The zone source's hook: every port's answer table learns of the change."""
        for router in self.routers.values():
            router.zone_changed(tags)

    async def start(self) -> None:
        self.routers = self._routers(self.config)
        for port, router in self.routers.items():
            server = DnsServer(router, self.host, self.port_override(port), reuse_port=self.reuse_port)  # type: ignore[arg-type]
            await server.start()
            self.servers[port] = server
            await router.start()
        self.zone_changed(None)
        if self.config.reload is not None:
            self._reloader = asyncio.create_task(self._reload_loop(), name="dns-corefile-reload")
        self._hosts_stamps = {path: file_stamp(path) for path in self._hosts_paths()}
        self._hosts_watch = asyncio.create_task(self._hosts_loop(), name="dns-hosts-reload")

    async def stop(self) -> None:
        for task in (self._reloader, self._hosts_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in list(self._retiring):
            task.cancel()
        for router in self.routers.values():
            await router.stop()
        for server in self.servers.values():
            await server.stop()

    # ---------------------------------------------------------- hosts files
    def _hosts_paths(self) -> set[str]:
        return {s.hosts.path for s in self.config.servers if s.hosts is not None and s.hosts.reload > 0}

    async def _hosts_loop(self) -> None:
        """The hosts plugin's own `reload` (default 5 s): a hosts file whose modification time or size
        changed is read again; the answer table is dropped, since hosts shadows the zone."""
        while True:
            intervals = [s.hosts.reload for s in self.config.servers if s.hosts is not None and s.hosts.reload > 0]
            await asyncio.sleep(min(intervals, default=5.0))
            self.reread_hosts()

    def reread_hosts(self) -> set[str]:
        """Read again the hosts files that changed; the paths read."""
        changed = set()
        for path in self._hosts_paths():
            stamp = file_stamp(path)
            if stamp != self._hosts_stamps.get(path):
                self._hosts_stamps[path] = stamp
                changed.add(path)
        for router in self.routers.values():
            if any(block.reload_hosts(changed, hosts_text) for block in router.blocks):
                router.zone_changed(None)
        if changed:
            log.info("plugin/hosts: reloaded %s", ", ".join(sorted(changed)))
        return changed

    # --------------------------------------------------------------- reload
    async def _reload_loop(self) -> None:
        while True:
            interval, jitter = self.config.reload or (30.0, 15.0)
            await asyncio.sleep(max(1.0, interval + random.uniform(-jitter, jitter)))
            await self.check()

    async def check(self) -> bool:
        """Read the source once and apply a changed, valid Corefile; True when a new one took effect."""
        try:
            text = await self.source.read()
        except Exception as exc:  # noqa: BLE001 - an unreadable source must not stop the server
            log.error("Restart failed: cannot read %s: %s", self.source.name, exc)
            return False
        new_hash = digest(text)
        if new_hash in (self.hash, self.refused):
            return False
        log.info("Reloading")
        try:
            config = load_config(text, self.env)
            await self.apply(config)
        except (CorefileError, OSError) as exc:
            self.refused = new_hash
            log.error("Restart failed: %s (%s keeps its running configuration)", exc, self.source.name)
            return False
        self.hash, self.refused = new_hash, None
        log.info("plugin/reload: Running configuration SHA512 = %s", new_hash)
        log.info("Reloading complete")
        return True

    async def apply(self, config: CorefileConfig) -> None:
        """Swap to config: the new chains are built and started before any query sees them."""
        routers = self._routers(config)
        opened: dict[int, DnsServer] = {}
        try:
            for port, router in routers.items():
                if port not in self.servers:
                    server = DnsServer(router, self.host, self.port_override(port), reuse_port=self.reuse_port)  # type: ignore[arg-type]
                    await server.start()
                    opened[port] = server
        except OSError:
            for server in opened.values():
                await server.stop()
            raise
        for router in routers.values():
            await router.start()
            router.zone_changed(None)
        old_routers, self.routers = self.routers, routers
        for port, router in routers.items():
            if port in self.servers:
                self.servers[port].swap(router)  # type: ignore[arg-type]
        for port in [p for p in self.servers if p not in routers]:
            await self.servers.pop(port).stop()
        self.servers.update(opened)
        self.config = config
        self._hosts_stamps = {path: file_stamp(path) for path in self._hosts_paths()}
        task = asyncio.create_task(self._retire(list(old_routers.values())))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(routers: list[Router]) -> None:
        """Stop the old chains once every query they took on has had its time to finish."""
        await asyncio.sleep(RETIRE_AFTER)
        for router in routers:
            await router.stop()
