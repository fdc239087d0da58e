"""Wiring: storage + registry + HTTP app + background loops, started and stopped as one."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
from contextlib import suppress

from aiohttp import web

from svcnet.api import meta
from svcnet.api.errors import ApiError
from svcnet.api.resources import lookup
from svcnet.apiserver import decoding, defaults, openapi, patch, validation
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.credentials import ensure_credentials, write_kubeconfig
from svcnet.apiserver.handlers import schema_resolver
from svcnet.apiserver.nodeaccess import NO_NODE_ACCESS, NodeAccess
from svcnet.apiserver.registry import Registry, WriteOptions
from svcnet.apiserver.service_alloc import ServiceAllocator
from svcnet.config import ApiServerConfig
from svcnet.storage.factory import open_store

log = logging.getLogger("svcnet.apiserver")


def build_registry(store, admission=None) -> Registry:
    """A registry with upstream's defaulting, validation, strict fields (unknown ones pruned)
    and managedFields."""
    resolver = schema_resolver()

    def check_fields(res, obj, directive, duplicates, subresource):
        return decoding.field_validation(res, obj, directive, duplicates, subresource)

    def track(res, old, new, manager, subresource, now):
        entries = patch.record_update(old, new, manager, resolver, openapi.root_schema_name(res), now,
                                      subresource=subresource or "")
        md = meta.metadata(new)
        if entries:
            md["managedFields"] = entries
        else:
            md.pop("managedFields", None)

    return Registry(store, admission=admission, defaulter=defaults.apply_defaults,
                    validator=validation.validate, field_checker=check_fields,
                    field_pruner=decoding.prune_unknown, managed_fields=track)


def ensure_kubernetes_service(registry: Registry, cfg: ApiServerConfig) -> None:
    """default/kubernetes at the first service IP, as kube-apiserver's bootstrap controller keeps it."""
    services = lookup("", "v1", "services")
    assert services is not None
    try:
        registry.get(services, "default", "kubernetes")
        return
    except ApiError as exc:
        if exc.code != 404:
            raise
    registry.create(services, "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                       "provider": "kubernetes"}},
        "spec": {"clusterIP": cfg.kubernetes_service_ip, "ipFamilyPolicy": "SingleStack",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": cfg.port}],
                 "sessionAffinity": "None", "type": "ClusterIP"},
    }, WriteOptions(field_manager="kube-apiserver"))


class RunningApiServer:
    """The API server with its sockets, ready when start() returns.

    node_access is how pods/log and pods/exec reach nodes; the entry point injects it.
    """

    def __init__(self, config: ApiServerConfig, admission=None, node_access: NodeAccess = NO_NODE_ACCESS) -> None:
        self.config = config
        self.admission = admission
        self.node_access = node_access
        self.store = None
        self.registry: Registry | None = None
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task] = []
        self.api: ApiServer | None = None
        self.kubeconfig = config.kubeconfig_path

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(cfg.data_dir, 0o700)
        self.store = open_store(cfg.dsn)
        self.allocator = ServiceAllocator(list(cfg.service_cidrs), cfg.node_port_range,
                                          reserved_ips=cfg.dns_service_ips)
        self.allocator.repair(self.store)
        self.registry = build_registry(self.store, [self.allocator, *(self.admission or [])])
        self.registry.ensure_system_namespaces()
        ensure_kubernetes_service(self.registry, cfg)
        creds = ensure_credentials(cfg.data_dir)
        token = None if cfg.insecure else creds.token
        self.api = api = ApiServer(self.registry, ServerSettings(
            token=token, advertise_address=f"{cfg.bind_address}:{cfg.port}"), self.node_access)

        tcp_runner = web.AppRunner(api.make_app(authenticate=True), access_log=None,
                                   handle_signals=False, shutdown_timeout=5.0)
        await tcp_runner.setup()
        self._runners.append(tcp_runner)
        ssl_ctx = None
        if not cfg.insecure:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(str(creds.server_cert), str(creds.server_key))
        await web.TCPSite(tcp_runner, cfg.bind_address, cfg.port, ssl_context=ssl_ctx,
                          reuse_address=True).start()

        # The unix socket is root-only (0600): its file mode is the credential.
        sock_runner = web.AppRunner(api.make_app(authenticate=False), access_log=None,
                                    handle_signals=False, shutdown_timeout=5.0)
        await sock_runner.setup()
        self._runners.append(sock_runner)
        with suppress(FileNotFoundError):
            cfg.socket_path.unlink()
        old_umask = os.umask(0o177)
        try:
            await web.UnixSite(sock_runner, str(cfg.socket_path)).start()
        finally:
            os.umask(old_umask)
        os.chmod(cfg.socket_path, 0o600)

        write_kubeconfig(cfg.kubeconfig_path, cfg.url, creds)
        self._tasks.append(asyncio.create_task(self._namespace_loop(), name="namespace-lifecycle"))
        self._tasks.append(asyncio.create_task(self._compaction_loop(), name="compaction"))
        log.info("apiserver serving on %s (unix socket %s)", cfg.url, cfg.socket_path)

    async def _namespace_loop(self) -> None:
        """Empty and remove terminating namespaces (kube-controller-manager's namespace controller)."""
        assert self.registry is not None and self.store is not None
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        ns_prefix = "/registry/core/namespaces/"

        def on_event(event) -> None:
            loop.call_soon_threadsafe(wake.set)

        watch = self.store.watch(ns_prefix, self.store.current_revision(), on_event)
        try:
            while True:
                pending = self.registry.namespaces_terminating()
                for name in pending:
                    try:
                        self.registry.finalize_namespace(name)
                    except Exception:  # keep the loop alive; the next pass retries
                        log.exception("finalizing namespace %s", name)
                still = self.registry.namespaces_terminating()
                wake.clear()
                # Contents may be waiting on finalizers or graceful pod deletion: look again soon.
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0 if still else 60.0)
        finally:
            watch.cancel()

    async def _compaction_loop(self) -> None:
        assert self.store is not None
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            head = self.store.current_revision()
            target = head - self.config.compaction_keep
            if target > self.store.compacted_revision():
                self.store.compact(target)

    async def stop(self) -> None:
        if self.api is not None:
            self.api.close_watches()  # or aiohttp waits for every open watch to time out
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        for runner in self._runners:
            await runner.cleanup()
        if self.store is not None:
            self.store.close()
        with suppress(FileNotFoundError):
            self.config.socket_path.unlink()
