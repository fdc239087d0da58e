"""Wiring: storage + registry + HTTP app + background loops, started and stopped as one."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from aiohttp import web

from svcnet.api import meta
from svcnet.api.errors import ApiError
from svcnet.api.resources import Resource, lookup, served
from svcnet.apiserver import authz, decoding, defaults, listener, openapi, patch, servicecidrs, validation
from svcnet.apiserver.app import ApiServer, ServerSettings
from svcnet.apiserver.credentials import (
    KUBELET_CLIENT_GROUP,
    ensure_credentials,
    ensure_kubelet_client_credentials,
    load_service_account_key,
    write_kubeconfig,
)
from svcnet.apiserver.csr_admission import CsrAdmission
from svcnet.apiserver.handlers import schema_resolver
from svcnet.apiserver.masterleases import MasterLeases
from svcnet.apiserver.nodeaccess import KubeletDialer, NewSocket, client_tls, host_socket
from svcnet.apiserver.nodebootstrap import ensure_node_bootstrap
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.apiserver.service_alloc import ServiceAllocator
from svcnet.apiserver.serviceaccount_admission import ServiceAccountAdmission
from svcnet.apiserver.validation.fields import non_special_ip_errors
from svcnet.config import ApiServerConfig
from svcnet.storage.base import NoSpace, StorageError, Store
from svcnet.storage.factory import open_store

log = logging.getLogger("svcnet.apiserver")

# kube-apiserver's DefaultEndpointReconcilerInterval (pkg/controlplane/instance.go): how often its
# bootstrap controller makes sure default/kubernetes and its endpoints exist.
KUBERNETES_SERVICE_INTERVAL = 10.0
# How often the ClusterIP and NodePort repair runs after the one at start (kube-apiserver's
# repair controllers run every 3 minutes).
ALLOCATION_REPAIR_INTERVAL = 180.0
KUBERNETES = ("default", "kubernetes")
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


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


def _resource(group: str, plural: str) -> Resource:
    return served(group, "v1", plural)


def _current(registry: Registry, res, name: str) -> dict[str, Any] | None:
    try:
        return registry.get(res, "default", name)
    except ApiError as exc:
        if exc.code != 404:
            raise
    return None


def ensure_kubernetes_service(registry: Registry, cfg: ApiServerConfig) -> None:
    """default/kubernetes at the first service IP, created when missing and otherwise left alone.

    As kube-apiserver's bootstrap controller (pkg/controlplane/controller/kubernetesservice/
    controller.go, CreateOrUpdateMasterServiceIfNeeded): no selector, SingleStack, port 443 → the
    secure port. On a full disk a missing Service is logged and left to the next pass.
    """
    services = _resource("", "services")
    if _current(registry, services, "kubernetes") is not None:
        return
    try:
        _create_kubernetes_service(registry, services, cfg)
    except NoSpace:
        log.warning("default/kubernetes is missing and the storage device is full; retrying later")


def _create_kubernetes_service(registry: Registry, services, cfg: ApiServerConfig) -> None:
    registry.create(services, "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                       "provider": "kubernetes"}},
        "spec": {"clusterIP": cfg.kubernetes_service_ip, "ipFamilyPolicy": "SingleStack",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": cfg.endpoint_port}],
                 "sessionAffinity": "None", "type": "ClusterIP"},
    }, WriteOptions(field_manager="kube-apiserver"))


def kubernetes_endpoint_ip(cfg: ApiServerConfig) -> str | None:
    """The address pods reach the API on: --advertise-address, else a specific --bind-address.

    kube-apiserver falls back to the host's default-route address when neither is usable;
    svcnet writes no endpoint then (a loopback or unspecified address fails Endpoints
    validation, as upstream's ValidateNonSpecialIP would refuse it).
    """
    for candidate in (cfg.advertise_address, cfg.bind_address):
        if candidate and not non_special_ip_errors("ip", candidate):
            return str(ipaddress.ip_address(candidate))
    return None


def external_address(cfg: ApiServerConfig) -> str:
    """host:port clients reach the API on (kube-apiserver's ExternalAddress, named in the
    service-account issuer's jwks_uri): the endpoint address, else the bind address."""
    host = kubernetes_endpoint_ip(cfg) or cfg.bind_address
    port = cfg.endpoint_port if kubernetes_endpoint_ip(cfg) else cfg.port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kubernetes_endpoints(ips: str | list[str], port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Endpoints and EndpointSlice kube-apiserver writes for itself (every live server's
    address, the first's family).

    As pkg/controlplane/reconcilers/endpointsadapter.go (updateEndpoints, updateEndpointSlice): the
    Endpoints carry the skip-mirror label (they need no mirrored slice), the slice carries the
    service-name label and one ready endpoint per address; the port is the secure port, named https.
    """
    ips = [ips] if isinstance(ips, str) else ips
    version = ipaddress.ip_address(ips[0]).version
    ips = [ip for ip in ips if ipaddress.ip_address(ip).version == version]
    port_spec = {"name": "https", "port": port, "protocol": "TCP"}
    endpoints = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {SKIP_MIRROR_LABEL: "true"}},
        "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [port_spec]}],
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "kubernetes"}},
        "addressType": "IPv6" if version == 6 else "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
        "ports": [port_spec],
    }
    return endpoints, endpoint_slice


def ensure_kubernetes_endpoints(registry: Registry, cfg: ApiServerConfig,
                                live: Callable[[str], list[str]] | None = None) -> None:
    """Create or correct default/kubernetes's Endpoints and EndpointSlice (EndpointsAdapter.Sync).

    live: given this server's address, every live server's (masterleases.py); without it, ours alone.
    """
    ip = kubernetes_endpoint_ip(cfg)
    if ip is None:
        return
    endpoints, endpoint_slice = kubernetes_endpoints(live(ip) if live else ip, cfg.endpoint_port)
    opts = WriteOptions(field_manager="kube-apiserver")
    _ensure(registry, _resource("", "endpoints"), endpoints, ("subsets",), opts)
    _ensure(registry, _resource("discovery.k8s.io", "endpointslices"), endpoint_slice,
            ("addressType", "endpoints", "ports"), opts)


def _ensure(registry: Registry, res, desired: dict[str, Any], fields: tuple[str, ...],
            opts: WriteOptions) -> None:
    """Create desired when missing; rewrite the given fields and the labels when they drifted."""
    name = desired["metadata"]["name"]
    current = _current(registry, res, name)
    if current is None:
        registry.create(res, "default", desired, opts)
        return
    labels = current["metadata"].get("labels") or {}
    if all(current.get(f) == desired[f] for f in fields) and labels == desired["metadata"]["labels"]:
        return
    if current.get("addressType", desired.get("addressType")) != desired.get("addressType"):
        registry.delete(res, "default", name, DeleteOptions())  # immutable: a family change is a new slice
        registry.create(res, "default", desired, opts)
        return
    current["metadata"]["labels"] = desired["metadata"]["labels"]
    current.update({f: desired[f] for f in fields})
    registry.update(res, "default", name, current, opts)


@contextmanager
def _woken_by(store, prefixes, wanted: Callable[[Any], bool] = lambda event: True) -> Iterator[asyncio.Event]:
    """An event the store's watches set (from their thread) when a wanted change under prefixes lands."""
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_event(event) -> None:
        if wanted(event):
            loop.call_soon_threadsafe(wake.set)

    revision = store.current_revision()
    watches = [store.watch(prefix, revision, on_event) for prefix in prefixes]
    try:
        yield wake
    finally:
        for watch in watches:
            watch.cancel()


async def _rest(wake: asyncio.Event, timeout: float) -> None:
    """Wait until woken or timeout, whichever comes first (a wake before the call counts)."""
    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)
    wake.clear()


def ensure_cluster_admins_binding(registry: Registry) -> None:
    """kubeadm's ClusterRoleBinding kubeadm:cluster-admins (the group of the API server's kubelet client
    certificate) to cluster-admin, made once as kubeadm init makes it."""
    bindings = lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
    assert bindings is not None
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": KUBELET_CLIENT_GROUP},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": KUBELET_CLIENT_GROUP}]}
    with suppress(ApiError, NoSpace):  # it exists (an admin may have changed it: kubeadm leaves it then too)
        registry.create(bindings, None, binding, WriteOptions())


class RunningApiServer:
    """The API server with its sockets, ready when start() returns.

    kubelet_socket makes the sockets kubelets are dialled from (in the cluster's network, where they
    listen); the entry point that owns that network injects it. None: nodes are unreachable.
    """

    def __init__(self, config: ApiServerConfig, admission=None, kubelet_socket: NewSocket | None = host_socket,
                 cluster_listener: Callable[[], socket.socket] | None = None, store: Store | None = None) -> None:
        """cluster_listener makes the socket for the API's address inside the cluster network
        (config.advertise_address, on the cluster's LAN): the entry point that owns that network makes it.
        store: one shared with other API servers in this process (tests of several servers over
        one store, as processes over one etcd); the caller closes it. None: config.dsn's, ours."""
        self.config = config
        self.shared_store = store
        self._leases: MasterLeases | None = None
        self.cluster_listener = cluster_listener
        self.admission = admission
        self.kubelet_socket = kubelet_socket
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
        self.store = self.shared_store or open_store(cfg.dsn)
        self.allocator = ServiceAllocator(list(cfg.service_cidrs), cfg.node_port_range,
                                          reserved_ips=cfg.dns_service_ips)
        self.allocator.repair(self.store)
        self.registry = build_registry(self.store, [self.allocator, *(self.admission or [])])
        self.registry.ensure_system_namespaces()
        ensure_kubernetes_service(self.registry, cfg)
        # As kube-apiserver, which does not start serving until the default ServiceCIDR exists
        # (on a full disk its loop keeps trying).
        with suppress(NoSpace):
            self._reconcile_service_cidrs()
        # The serving certificate names every address clients use: the kubernetes Service's cluster IP
        # and the in-cluster address besides loopback (kube-apiserver's alternate names).
        creds = ensure_credentials(cfg.data_dir, tuple(
            ip for ip in (cfg.kubernetes_service_ip, cfg.advertise_address) if ip))
        token = None if cfg.insecure else creds.token
        self.api = api = ApiServer(self.registry, ServerSettings(
            token=token, advertise_address=f"{cfg.bind_address}:{cfg.port}"), self._kubelet_dialer(creds),
            sa_signing_key=load_service_account_key(creds), external_address=external_address(cfg))
        # RBAC: upstream's bootstrap roles and bindings before the first request, and writes of
        # roles and bindings checked for escalation against the writer's own permissions.
        authz.ensure_bootstrap_policy(self.registry)
        ensure_cluster_admins_binding(self.registry)
        self.registry.admission.append(authz.EscalationCheck(api.authorizer))
        # Node,RBAC: the Node authorizer's graph from the store, and NodeRestriction on writes.
        api.start_node_graph()
        self.registry.admission.append(api.node_restriction)
        self.registry.admission.append(ServiceAccountAdmission(self.registry))
        # CertificateSigningRequests: the requester recorded, approve/sign checked on the signer.
        self.registry.admission.append(CsrAdmission(api.authorizer))
        if not cfg.insecure:  # kubeadm init's bootstrap-token phase: cluster-info and its RBAC
            ensure_node_bootstrap(self.registry, f"https://{cfg.control_plane_endpoint or external_address(cfg)}",
                                  creds.ca_cert.read_bytes())

        limits = listener.ConnectionLimits(
            read_header_timeout=cfg.read_header_timeout, idle_timeout=cfg.idle_timeout,
            max_connections=listener.connection_cap(cfg.max_connections, listener.raise_open_file_limit()))
        tcp_runner = await listener.serving_runner(api.make_app(authenticate=True), limits)
        self._runners.append(tcp_runner)
        ssl_ctx = None
        if not cfg.insecure:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(creds.ca_cert))
            ssl_ctx.load_cert_chain(str(creds.server_cert), str(creds.server_key))
            # --client-ca-file: a client certificate is asked for, not required (bearer tokens still
            # authenticate), and only the cluster CA's are accepted.
            ssl_ctx.verify_mode = ssl.CERT_OPTIONAL
        await listener.ApiSite(tcp_runner, cfg.bind_address, cfg.port, ssl_ctx, limits).start()
        if self.cluster_listener is not None and cfg.advertise_address:
            await listener.ApiSite(tcp_runner, cfg.advertise_address, cfg.endpoint_port, ssl_ctx, limits,
                                   sock=self.cluster_listener()).start()

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
        self._tasks.append(asyncio.create_task(self._kubernetes_service_loop(), name="kubernetes-service"))
        self._tasks.append(asyncio.create_task(self._service_cidr_loop(), name="service-cidrs"))
        self._tasks.append(asyncio.create_task(self._aggregation_loop(), name="clusterrole-aggregation"))
        self._tasks.append(asyncio.create_task(self._allocation_repair_loop(), name="allocation-repair"))
        log.info("apiserver serving on %s (unix socket %s)", cfg.url, cfg.socket_path)

    def _kubelet_dialer(self, creds) -> KubeletDialer:
        """How pods/log, exec, attach, portforward and nodes/proxy reach kubelets: from the injected
        sockets, as kube-apiserver-kubelet-client, verifying kubelets against the cluster CA."""
        cert, key = ensure_kubelet_client_credentials(self.config.data_dir / "pki")
        return KubeletDialer(client_tls(creds.ca_cert, cert, key), self.kubelet_socket)

    async def _namespace_loop(self) -> None:
        """Empty and remove terminating namespaces (kube-controller-manager's namespace controller)."""
        assert self.registry is not None and self.store is not None
        with _woken_by(self.store, ["/registry/core/namespaces/"]) as wake:
            while True:
                pending = self.registry.namespaces_terminating()
                for name in pending:
                    try:
                        self.registry.finalize_namespace(name)
                    except Exception:  # keep the loop alive; the next pass retries
                        log.exception("finalizing namespace %s", name)
                still = self.registry.namespaces_terminating()
                # Contents may be waiting on finalizers or graceful pod deletion: look again soon.
                await _rest(wake, 1.0 if still else 60.0)

    async def _aggregation_loop(self) -> None:
        """Keep aggregated ClusterRoles (admin, edit, view, ...) holding the rules of the roles
        their selectors match, on every ClusterRole change (kube-controller-manager's
        clusterrole-aggregation controller, run here as svcnet has no controller manager of its own
        for it)."""
        assert self.registry is not None and self.store is not None
        with _woken_by(self.store, ["/registry/rbac.authorization.k8s.io/clusterroles/"]) as wake:
            while True:
                try:
                    authz.aggregate_cluster_roles(self.registry)
                except StorageError as exc:  # a full disk: the next change or pass retries
                    log.warning("ClusterRole aggregation: %s", exc)
                await _rest(wake, 60.0)

    async def _allocation_repair_loop(self) -> None:
        """The ClusterIP and NodePort repair again and again, as kube-apiserver's repair
        controllers: leaked IPAddress objects and NodePorts (a server that died between its two
        writes) are freed, missing IPAddress objects made."""
        assert self.store is not None
        while True:
            await asyncio.sleep(ALLOCATION_REPAIR_INTERVAL)
            try:
                self.allocator.repair(self.store)
            except StorageError as exc:  # a full disk or lost store: the next pass retries
                log.warning("ClusterIP/NodePort repair: %s", exc)

    async def _compaction_loop(self) -> None:
        assert self.store is not None
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            head = self.store.current_revision()
            target = head - self.config.compaction_keep
            if target > self.store.compacted_revision():
                try:
                    self.store.compact(target)
                except StorageError as exc:  # a full disk: the next pass tries again
                    log.warning("compaction at revision %d failed: %s", target, exc)

    async def _kubernetes_service_loop(self) -> None:
        """Keep default/kubernetes and its Endpoints/EndpointSlice present, as kube's bootstrap controller.

        Upstream (kubernetesservice.Controller.Run) checks every KUBERNETES_SERVICE_INTERVAL; svcnet
        also wakes when one of the three is deleted, so `kubectl delete svc kubernetes` is undone at
        once. The Service keeps its cluster IP: it is recreated at the configured first service IP.
        """
        assert self.registry is not None and self.store is not None
        keys = {_resource(group, plural).storage_key(*KUBERNETES)
                for group, plural in (("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices"))}
        with _woken_by(self.store, keys, lambda event: event.type == "DELETED" and event.key in keys) as wake:
            while True:
                try:
                    ensure_kubernetes_service(self.registry, self.config)
                    ensure_kubernetes_endpoints(self.registry, self.config, self._live_servers)
                except NoSpace:
                    log.warning("cannot restore default/kubernetes: the storage device is full")
                except Exception:  # keep the loop alive; the next pass retries
                    log.exception("reconciling default/kubernetes")
                await _rest(wake, KUBERNETES_SERVICE_INTERVAL)

    async def _service_cidr_loop(self) -> None:
        """The default ServiceCIDR and every ServiceCIDR's finalizer (servicecidrs.py).

        Woken by any ServiceCIDR change (a deleted default is recreated at once) and by a
        deleted Service (it may free the last IP a terminating ServiceCIDR held).
        """
        assert self.registry is not None and self.store is not None
        cidr_prefix = servicecidrs.SERVICE_CIDRS.storage_prefix()
        service_prefix = _resource("", "services").storage_prefix()

        def wanted(event) -> bool:
            return event.key.startswith(cidr_prefix) or event.type == "DELETED"

        with _woken_by(self.store, [cidr_prefix, service_prefix], wanted) as wake:
            while True:
                timeout = servicecidrs.INTERVAL_SECONDS
                try:
                    timeout = self._reconcile_service_cidrs()
                except NoSpace:
                    log.warning("cannot reconcile ServiceCIDRs: the storage device is full")
                except Exception:  # keep the loop alive; the next pass retries
                    log.exception("reconciling ServiceCIDRs")
                await _rest(wake, timeout)

    def _live_servers(self, ip: str) -> list[str]:
        """Renew this server's master lease and list the live ones (several servers over one store
        each keep their own address among default/kubernetes's endpoints, not over the others')."""
        assert self.store is not None
        if self._leases is None or self._leases.ip != ip:
            self._leases = MasterLeases(self.store, ip)
        self._leases.renew()
        return self._leases.live()

    def _withdraw_endpoint(self) -> None:
        """On a clean stop: drop this server's lease and its address from the endpoints, when others
        remain to serve (kube-apiserver's RemoveEndpoints)."""
        if self._leases is None or self.registry is None:
            return
        try:
            self._leases.remove()
            others = [ip for ip in self._leases.live() if ip != self._leases.ip]
            if others:
                endpoints, endpoint_slice = kubernetes_endpoints(others, self.config.endpoint_port)
                opts = WriteOptions(field_manager="kube-apiserver")
                _ensure(self.registry, _resource("", "endpoints"), endpoints, ("subsets",), opts)
                _ensure(self.registry, _resource("discovery.k8s.io", "endpointslices"), endpoint_slice,
                        ("addressType", "endpoints", "ports"), opts)
        except (StorageError, ApiError) as exc:
            log.warning("withdrawing this server from default/kubernetes's endpoints: %s", exc)

    def _reconcile_service_cidrs(self) -> float:
        """One pass of the ServiceCIDR controllers, the allocator told of the objects around it:
        before, so a new ServiceCIDR takes allocations before it reads Ready (upstream's allocator
        counts one without the condition as ready), and after, once deletions are marked."""
        assert self.registry is not None
        self.allocator.set_service_cidrs(servicecidrs.listed(self.registry))
        timeout = servicecidrs.reconcile(self.registry, self.config.service_cidrs)
        self.allocator.set_service_cidrs(servicecidrs.listed(self.registry))
        return timeout

    async def stop(self) -> None:
        if self.api is not None:
            self.api.close_watches()  # or aiohttp waits for every open watch to time out
            self.api.node_graph.stop()
            self.api.authorizer.policy.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        for runner in self._runners:
            await runner.cleanup()
        self._withdraw_endpoint()
        if self.registry is not None:
            self.allocator.close()
        if self.store is not None and self.shared_store is None:
            self.store.close()
        with suppress(FileNotFoundError):
            self.config.socket_path.unlink()
