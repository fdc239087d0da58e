"""The node agent (kubelet): runs the pods bound to one node, and reports them.

Level-based, like kubelet's pod workers: an informer on the pods with
`spec.nodeName=<node>` feeds a work queue keyed by pod key (namespace/name);
`sync_pod(key)` looks at what the API wants and what the node has, and acts:

- a pod to run: its network (namespace, veth, IP from the node's pod CIDR),
  its sandbox (hostname, resolv.conf, hosts), init containers one at a time,
  then the app containers, restarts per restartPolicy with CrashLoopBackOff,
  probes, and a status write through pods/status when the status changed;
- a pod with a deletionTimestamp: SIGTERM, the grace period, SIGKILL, the
  sandbox and network removed, then DELETE with gracePeriodSeconds=0 and a
  uid precondition (what kubelet's status manager does);
- a pod that is gone from the API (or replaced by one of the same name):
  its sandboxes are removed.

Nothing about a running pod lives only in memory: the runtime's files and
the IP leases say what runs, so a restarted agent adopts its pods (and their
restart counts), frees leases whose namespace is gone and removes sandboxes
nobody wants. Container exits and probe verdicts wake the pod's key.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from svcnet.agent import lifecycle, podstatus
from svcnet.agent import network as podnet
from svcnet.agent.configsource import ConfigSource, SourceError
from svcnet.agent.dnsconfig import PodDnsError, sandbox_config
from svcnet.agent.envvars import container_env, env_sources, process_env, service_env, source_data
from svcnet.agent.ipam import LeaseStore
from svcnet.agent.node import HostFacts, NodeIdentity, NodeRegistration, host_facts
from svcnet.agent.nodeplan import NodePlan
from svcnet.agent.podstate import (
    ImagePullFailure,
    PodState,
    ProbeWatch,
    containers_of,
    grace_seconds,
    image_id,
    named_ports,
    newer,
)
from svcnet.agent.probes import (
    ProbeKind,
    ProbeRunner,
    ProbeSpec,
    ProbeState,
    ProbeTarget,
    ProbeVerdict,
    Result,
    exec_in_pod_runner,
)
from svcnet.agent.restart import BackOffEntry, BackOffPolicy, PodIdentity, compute_pod_actions
from svcnet.agent.statusmanager import StatusManager
from svcnet.agent.volumes import TokenFetcher, TokenManager, VolumeManager, api_token_fetcher
from svcnet.api.errors import ApiError
from svcnet.api.objects import is_being_deleted, namespace_of, object_key, spec_of, status_of, uid_of
from svcnet.api.resources import lookup
from svcnet.client.events import EventQueue, EventRecorder
from svcnet.client.informer import Informer, split_key
from svcnet.client.workqueue import WorkQueue, run_workers
from svcnet.core.volumes import VolumeError
from svcnet.kernel import NetworkKernel
from svcnet.kernel.sockdiag import ListeningPorts, NetnsListeningPorts
from svcnet.runtime import images
from svcnet.runtime.containers import ContainerSpec, ContainerStatus, ContainerView, RunState
from svcnet.runtime.sandbox import PodKey, Sandbox, SandboxConfig, SandboxError

log = logging.getLogger("svcnet.agent")

Obj = dict[str, Any]
T = TypeVar("T")
PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
NAMESPACE_INDEX = "namespace"
MOUNT_RETRY_SECONDS = 2.0
assert PODS is not None
StatusOf = Callable[[str], ContainerStatus | None]  # a container's latest instance, by name

async def _unless_cut(work: Awaitable[T], state: PodState) -> T | None:
    """The work's result, or None if the pod's grace period is cut first (the work is then cancelled)."""
    return await _unless_set(work, state.grace_cut)


async def _unless_set(work: Awaitable[T], event: asyncio.Event) -> T | None:
    """The work's result, or None if the event is set first (the work is then cancelled)."""
    task = asyncio.ensure_future(work)
    cut = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({task, cut}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        cut.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


class ContainerRuntime(Protocol):
    """What the agent needs of svcnet.runtime.containers.Runtime (tests use an in-memory one)."""

    async def create_sandbox(self, key: PodKey, config: SandboxConfig) -> Sandbox: ...
    def sandboxes(self) -> list[Sandbox]: ...
    def sandboxes_named(self, namespace: str, name: str) -> list[Sandbox]: ...
    def get_sandbox(self, key: PodKey) -> Sandbox | None: ...
    async def remove_pod(self, pod: Sandbox, grace_seconds: float = 0.0) -> None: ...
    async def stop_sandbox(self, pod: Sandbox) -> None: ...
    def status(self, pod: Sandbox, name: str, instance: int | None = None) -> ContainerStatus | None: ...
    async def start_container(self, pod: Sandbox, spec: ContainerSpec) -> ContainerStatus: ...
    async def stop_container(self, pod: Sandbox, name: str, grace_seconds: float = 30.0) -> ContainerStatus | None: ...
    async def wait_container(self, pod: Sandbox, name: str, timeout: float | None = None) -> ContainerStatus | None: ...
    def sandbox_alive(self, pod: Sandbox) -> bool: ...


@dataclass(frozen=True)
class AgentConfig:
    node_name: str
    runtime_root: Path
    lease_path: Path
    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    node_resolv_conf: str = ""
    workers: int = 16
    # Pod network setup/teardown threads. Netlink changes serialise in the kernel on the RTNL lock
    # and the rest is Python under the GIL, so on 2 cores more threads only queue: 4 keeps one
    # thread per core in Python while another waits in the kernel (or on the lease file's fsync).
    # kubelet has no such pool (the CRI runtime and CNI plugins run per pod); this is the bound
    # that replaces the host's parallelism when all of it lives in one process.
    network_workers: int = 4
    resync_seconds: float = 10.0  # a running pod is looked at again at least this often
    backoff: BackOffPolicy = BackOffPolicy()  # CrashLoopBackOff: 10 s doubling to 5 min
    image_backoff: BackOffPolicy = BackOffPolicy()  # ImagePullBackOff: the same as kubelet's
    image_error_shown_seconds: float = 3.0  # ErrImagePull stays visible this long before ImagePullBackOff
    orphan_grace_seconds: float = 2.0  # pods gone from the API get this long after SIGTERM
    python: str = sys.executable
    pythonpath: str = ""
    # A running pod's configMap/secret/projected volumes are written again this often (kubelet: its
    # sync period, 1 min, plus the object cache's TTL; an edit shows within a minute either way).
    volume_resync_seconds: float = 10.0


class NodeAgent:
    """One node's kubelet. start() registers the node, adopts what runs and begins syncing; stop() leaves pods running."""

    def __init__(self, api: Any, kernel: NetworkKernel, runtime: ContainerRuntime, node: NodePlan,
                 config: AgentConfig, *, facts: HostFacts | None = None,
                 clock: Callable[[], float] = time.time,
                 probe_runner: Callable[..., ProbeRunner] = ProbeRunner,
                 listening_ports: Callable[[str], ListeningPorts] = NetnsListeningPorts,
                 token_fetcher: TokenFetcher | None = None) -> None:
        self.api = api
        self.kernel = kernel
        self.runtime = runtime
        self.node = node
        self.config = config
        self.clock = clock
        self.probe_runner = probe_runner
        self.listening_ports = listening_ports  # a pod namespace's LISTEN sockets, for probes' first try
        self.leases = LeaseStore(config.lease_path, node.pod_cidr_v4, node.pod_cidr_v6)
        self.identity = NodeIdentity(node.name, node.addresses, node.pod_cidrs, str(config.runtime_root),
                                     zone=node.zone)
        facts = facts or host_facts()
        self.registration = NodeRegistration(api, self.identity, facts)
        self.sources = ConfigSource(api)
        self.volumes = VolumeManager(config.runtime_root, self.sources,
                                     TokenManager(token_fetcher or api_token_fetcher(api)),
                                     allocatable={"cpu": str(facts.cpus), "memory": f"{facts.memory_kib}Ki"})
        self._volumes_written: dict[str, tuple[float, tuple[str, ...]]] = {}  # uid -> (when, failures)
        self.pods = Informer(api, PODS, field_selector=f"spec.nodeName={node.name}")
        # kubelet's service lister: every pod's environment gets the Services' variables.
        self.services = Informer(api, SERVICES)
        self.services.add_index(NAMESPACE_INDEX, lambda svc: (namespace_of(svc) or "default",))
        self.queue: WorkQueue[str] = WorkQueue(name=f"kubelet-{node.name}")
        self.events = EventRecorder(api, "kubelet", lambda: dt.datetime.now(dt.UTC))
        self.states: dict[str, PodState] = {}
        self._workers: asyncio.Task[None] | None = None
        self._events = EventQueue(self.events.emit, time.monotonic)
        # uid -> when the informer first showed the pod: the start of its wait for a sync worker
        self._first_seen: dict[str, float] = {}
        self._adopted: set[str] = set()  # uids of pods whose sandbox was alive when start() ran
        self._network_pool = ThreadPoolExecutor(config.network_workers, thread_name_prefix=f"podnet-{node.name}")
        self.status = StatusManager(api, PODS, self._status_written, self.queue.add_after)
        self.started = asyncio.Event()

    # ---- lifecycle

    async def start(self) -> None:
        await self.registration.register()
        leaked = await self._net(podnet.release_leaked_leases, self.kernel, self.node.cluster_id, self.leases)
        for lease in leaked:
            log.info("freed the lease of %s for pod %s: its namespace is gone", lease.ipv4, lease.pod_uid)
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new),
                              on_delete=lambda pod: self._pod_changed(pod, gone=True))
        self.pods.start()
        self.services.start()
        # As kubelet, which refuses to build a container's environment before it read the Services once.
        await asyncio.gather(self.pods.wait_synced(), self.services.wait_synced())
        await self._remove_orphaned_networks()
        self._adopted = {s.key.uid for s in self.runtime.sandboxes() if self.runtime.sandbox_alive(s)}
        for sandbox in self.runtime.sandboxes():  # adopt, or remove, everything recorded
            self.queue.add(f"{sandbox.key.namespace}/{sandbox.key.name}")
        for key in self.volumes.without_sandbox():  # volumes of pods that never got a sandbox
            self.queue.add(f"{key.namespace}/{key.name}")
        self.registration.start()
        self._workers = asyncio.create_task(run_workers(self.queue, self.config.workers, self.sync_pod),
                                            name="kubelet-workers")
        self.started.set()
        log.info("node agent for %s running (%d pods recorded)", self.node.name, len(self.runtime.sandboxes()))

    async def stop(self) -> None:
        """Stop syncing; pods keep running (a restarted agent adopts them)."""
        self.queue.shutdown()
        if self._workers is not None:
            self._workers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._workers
        for state in self.states.values():
            state.cancel_tasks()
        self._events.cancel()
        await self.status.stop()
        await self.registration.stop()
        await self.pods.stop()
        await self.services.stop()
        # Network work queued and not begun is dropped: the pods' syncs were cancelled above, and
        # a burst of deletions queued ~100 teardowns, which took the agent past its stop timeout
        # (the restarted agent removes networks no pod owns).
        self._network_pool.shutdown(wait=True, cancel_futures=True)

    async def _net(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking network/lease call, on the bounded pod-network pool."""
        return await asyncio.get_running_loop().run_in_executor(self._network_pool, functools.partial(fn, *args))

    async def _env_sources(self, pod: Obj, container: Obj) -> dict[tuple[str, str], dict[str, str] | None]:
        """The ConfigMaps and Secrets the container's environment reads, fetched now (None: not found)."""
        namespace = namespace_of(pod) or "default"
        found: dict[tuple[str, str], dict[str, str] | None] = {}
        for kind, name in sorted(env_sources(container)):
            try:  # read now, not from the cache: a container starts with what the API has
                obj = await self.sources.get(kind, namespace, name, fresh=True)
            except SourceError as exc:
                raise images.ContainerConfigError(str(exc)) from None
            found[(kind, name)] = None if obj is None else source_data(kind, obj)
        return found

    def _service_env(self, pod: Obj) -> dict[str, str]:
        namespace = namespace_of(pod) or "default"
        services = self.services.by_index(NAMESPACE_INDEX, namespace)
        if namespace != "default":
            services += self.services.by_index(NAMESPACE_INDEX, "default")
        return service_env(services, namespace, spec_of(pod).get("enableServiceLinks") is not False)

    def _enqueue(self, pod: Obj) -> None:
        self.queue.add(object_key(pod))

    def _pod_changed(self, pod: Obj, gone: bool = False) -> None:
        """Queue the pod; a pod being killed whose grace the API shortened is told at once (its sync is busy)."""
        uid = uid_of(pod)
        if gone:
            self._first_seen.pop(uid, None)
        elif uid not in self.states:
            self._first_seen.setdefault(uid, time.monotonic())
        state = self.states.get(uid)
        if state is not None and state.post_start_container and (gone or is_being_deleted(pod)):
            state.post_start_abort.set()
        if state is not None and state.kill_grace is not None:
            # Force-deleted: kubelet's floor of 1 s (and killContainer's 2 s) still applies.
            grace = 1.0 if gone else max(1.0, grace_seconds(pod))
            if grace < state.kill_grace:
                state.kill_grace = grace
                state.grace_cut.set()
        self._enqueue(pod)

    def _event(self, pod: Obj, event_type: str, reason: str, message: str) -> None:
        """Record an event without holding up the sync (events are best effort, as upstream's)."""
        self._events.emit(pod, event_type, reason, message)

    async def _remove_orphaned_networks(self) -> None:
        """Pod namespaces on this node's bridge that no pod and no sandbox owns (a crash mid-setup leaks them)."""
        networks = await self._net(podnet.list_pod_networks, self.kernel, self.node, self.leases)
        wanted = {uid_of(p) for p in self.pods.list()}
        recorded = {s.key.uid for s in self.runtime.sandboxes()}
        for net in networks:
            if net.pod_uid is not None and (net.pod_uid in wanted or net.pod_uid in recorded):
                continue
            log.info("removing orphaned pod network %s", net.netns_name)
            if net.pod_uid is not None:
                await self._net(podnet.teardown_pod_network, self.kernel, self.node, net.pod_uid, self.leases)
            else:
                await self._net(self._delete_network_by_name, net)

    def _delete_network_by_name(self, net: podnet.PodNetwork) -> None:
        self.kernel.delete_link(self.node.namespace, net.host_veth)
        self.kernel.delete_namespace(net.netns_name)

    # ---- the sync

    async def sync_pod(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.pods.get(namespace, name)
        uid = uid_of(cached) if cached is not None else None  # None: keep no sandbox of this name
        state = self.states.get(uid) if uid is not None else None
        if state is None:
            # Another incarnation's sandbox can only be here before this uid's first sync (the pod was
            # replaced or deleted): looking at every sync would list the node's pod directories each time.
            await self._remove_other_incarnations(namespace or "default", name, keep_uid=uid)
        if cached is None:
            return None
        if state is None:
            state = self.states[uid] = PodState(uid)
        pod = newer(state.last_written, cached)
        if is_being_deleted(pod):
            await self._terminate(pod, state)
            return None
        if status_of(pod).get("phase") in ("Succeeded", "Failed"):
            await self._stop_terminal(pod, state)
            return None
        return await self._run_pod(pod, state)

    async def _remove_other_incarnations(self, namespace: str, name: str, keep_uid: str | None) -> None:
        """Sandboxes of this pod name whose uid the API no longer has: the pod was deleted (or replaced)."""
        for sandbox in self.runtime.sandboxes_named(namespace, name):
            if sandbox.key.uid == keep_uid:
                continue
            log.info("removing sandbox of %s/%s (uid %s): the pod is gone from the API", namespace, name,
                     sandbox.key.uid)
            old = self.states.pop(sandbox.key.uid, None)
            self.status.forget(sandbox.key.uid)
            if old is not None:
                old.cancel_tasks()
            await self.runtime.remove_pod(sandbox, self.config.orphan_grace_seconds)
            await self._net(podnet.teardown_pod_network, self.kernel, self.node, sandbox.key.uid, self.leases)
            self._tear_down_volumes(sandbox.key)
        for key in self.volumes.without_sandbox(namespace, name):
            if key.uid != keep_uid:
                self._tear_down_volumes(key)

    async def _terminate(self, pod: Obj, state: PodState) -> None:
        key = PodKey.of(pod)
        state.cancel_tasks()
        self.status.forget(key.uid)  # what is left to say of it is said by deleting it
        sandbox = self.runtime.get_sandbox(key)
        if sandbox is not None:
            grace = grace_seconds(pod)
            running = self._running_containers(sandbox, pod)
            for name in running:
                self._event(pod, "Normal", "Killing", f"Stopping container {name}")
            state.kill_grace = grace
            # Each container as kubelet kills it, all at once: its preStop hook, then SIGTERM.
            await asyncio.gather(*(self._kill_container(pod, state, sandbox, name) for name in running))
            await self.runtime.remove_pod(sandbox, max(state.kill_grace, lifecycle.MINIMUM_GRACE_SECONDS))
        await self._net(podnet.teardown_pod_network, self.kernel, self.node, key.uid, self.leases)
        self._tear_down_volumes(key)
        try:
            await self.api.delete(PODS, key.namespace, key.name, grace_period_seconds=0,
                                  preconditions={"uid": key.uid})
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone already, or a new pod of that name: nothing left for us
                raise
        self.states.pop(key.uid, None)

    async def _kill_container(self, pod: Obj, state: PodState, sandbox: Sandbox, name: str) -> None:
        """preStop (bounded by the grace period), then SIGTERM with what is left of it (2 s at least).

        A grace period the API cuts short ends the hook and the wait for SIGTERM's effect early."""
        assert state.kill_grace is not None
        container = next((c for c in containers_of(pod, "initContainers") + containers_of(pod, "containers")
                          if c.get("name") == name), {})
        grace_left = state.kill_grace
        if lifecycle.pre_stop_handler(container) is not None:
            target = self._hook_target(pod, sandbox, container)
            outcome = await _unless_cut(lifecycle.run_pre_stop(container, target, state.kill_grace), state)
            if outcome is not None:
                grace_left = outcome.grace_left
                if outcome.error:
                    log.warning("pod %s: preStop hook failed: %s", object_key(pod), outcome.error)
                    # kubelet keeps the hook's output out of the event (it may hold secrets).
                    self._event(pod, "Warning", lifecycle.FAILED_PRE_STOP_HOOK, "PreStopHook failed")
                elif outcome.timed_out:
                    log.info("pod %s: preStop hook of %s not completed in the grace period", object_key(pod), name)
        grace_left = max(min(grace_left, state.kill_grace), lifecycle.MINIMUM_GRACE_SECONDS)
        if await _unless_cut(self.runtime.stop_container(sandbox, name, grace_left), state) is None:
            await self.runtime.stop_container(sandbox, name, max(state.kill_grace, lifecycle.MINIMUM_GRACE_SECONDS))

    def _hook_target(self, pod: Obj, sandbox: Sandbox, container: Mapping[str, Any]) -> ProbeTarget:
        """Where a lifecycle hook runs: exec in the pod's namespaces, httpGet to the pod's IP."""
        pod_ip = next(iter(self._ips(pod)), "") or str(status_of(pod).get("podIP") or "")
        return ProbeTarget(netns=sandbox.netns_of_infra, pod_ip=pod_ip, ports=named_ports(container),
                           exec_command=exec_in_pod_runner(sandbox.infra), name=f"{object_key(pod)}/{container['name']}")

    async def _post_start(self, pod: Obj, state: PodState, sandbox: Sandbox, container: Mapping[str, Any]) -> None:
        """The container's postStart hook, waited for (see svcnet.agent.lifecycle); a failure kills it.

        A deletion of the pod ends the hook (kubelet 1.32 keeps waiting on it, kubernetes#116032, so a
        pod with a hung hook never terminates); the container then goes as the pod's others do."""
        handler = lifecycle.post_start_handler(container)
        if handler is None or state.post_start_abort.is_set():
            return
        name, target = container["name"], self._hook_target(pod, sandbox, container)
        state.post_start_container = name
        # What kubelet's sync wrote before it started the container: ContainerCreating on a first start.
        self._write_status(pod, self._observe(pod, state, sandbox, state.waiting, init_failed=state.init_failed))
        try:
            error = await _unless_set(lifecycle.run_handler(handler, target, None), state.post_start_abort)
        finally:
            state.post_start_container = ""
        if not error:  # succeeded, or ended by the pod's deletion
            return
        log.warning("pod %s: postStart hook failed: %s", object_key(pod), error)
        # kubelet keeps the hook's output out of the event (it may hold secrets).
        self._event(pod, "Warning", lifecycle.FAILED_POST_START_HOOK, "PostStartHook failed")
        self._event(pod, "Normal", "Killing", lifecycle.FAILED_POST_START_HOOK)
        outcome = await lifecycle.run_pre_stop(container, target, grace_seconds(pod))
        await self.runtime.stop_container(sandbox, name, outcome.grace_left)

    async def _stop_terminal(self, pod: Obj, state: PodState) -> None:
        """A Succeeded/Failed pod: its processes and network go; its files (logs) stay until it is deleted."""
        state.cancel_tasks()
        sandbox = self.runtime.get_sandbox(PodKey.of(pod))
        if sandbox is not None and self.runtime.sandbox_alive(sandbox):
            for name in self._running_containers(sandbox, pod):
                await self.runtime.stop_container(sandbox, name, grace_seconds(pod))
            await self.runtime.stop_sandbox(sandbox)
            await self._net(podnet.teardown_pod_network, self.kernel, self.node, sandbox.key.uid, self.leases)

    def _running_containers(self, sandbox: Sandbox, pod: Obj) -> list[str]:
        names = [c["name"] for c in containers_of(pod, "initContainers") + containers_of(pod, "containers")]
        running = []
        for name in names:
            status = self.runtime.status(sandbox, name)
            if status is not None and status.state is RunState.RUNNING:
                running.append(name)
        return running

    # ---- running a pod

    async def _ensure_sandbox(self, pod: Obj, state: PodState) -> Sandbox | None:
        key = PodKey.of(pod)
        sandbox = self.runtime.get_sandbox(key)
        alive = sandbox is not None and self.runtime.sandbox_alive(sandbox)
        if alive and state.pod_ips:
            return sandbox
        if alive:  # adopted: its network should be there, with its IPs in the lease file
            netns = podnet.pod_namespace(self.node.cluster_id, key.uid)
            namespaces = await self._net(self.kernel.list_namespaces)
            lease = (await self._net(self.leases.load)).lease_for(key.uid)
            if lease is not None and netns in namespaces:
                state.pod_ips = lease.ips
                return sandbox
        if sandbox is not None:
            # The infra process or the namespace is gone (a host restart): start over in a new sandbox.
            log.info("pod %s/%s: sandbox is gone; recreating it", key.namespace, key.name)
            for name in self.runtime_container_names(pod):
                await self.runtime.stop_container(sandbox, name, 0)
            await self.runtime.stop_sandbox(sandbox)
            state.cancel_tasks()
        mounting = time.monotonic()
        try:  # kubelet mounts a pod's volumes before it creates the sandbox: a missing one holds it back
            volumes = await self.volumes.set_up(pod)
        except VolumeError as exc:
            self._event(pod, "Warning", "FailedMount", str(exc))
            self._volumes_written[key.uid] = (float("-inf"), (str(exc),))
            return None
        self._volumes_written[key.uid] = (self.clock(), ())
        began = time.monotonic()
        try:
            net = await self._net(podnet.setup_pod_network, self.kernel, self.node, key.uid, self.leases)
            wired = time.monotonic()
            config = sandbox_config(pod, netns=net.netns_path, pod_ips=net.ips,
                                    node_resolv_conf=self.config.node_resolv_conf,
                                    cluster_dns=self.config.cluster_dns, cluster_domain=self.config.cluster_domain)
            config = dataclasses.replace(config, mounts=volumes.mounts, memory_volumes=volumes.memory)
            for warning in config.warnings:
                self._event(pod, "Warning", "DNSConfigForming", warning)
            sandbox = await self.runtime.create_sandbox(key, config)
            # Where a pod's start goes (bench/bench_pods.py reads these): network, then sandbox process.
            # waited: from the informer's first sight of the pod to this sync (the sync workers' queue)
            waited = mounting - self._first_seen.pop(key.uid, mounting)
            log.info("pod %s/%s: waited %.0f ms, volumes %.0f ms, network %.0f ms, sandbox %.0f ms", key.namespace,
                     key.name, waited * 1000, (began - mounting) * 1000, (wired - began) * 1000,
                     (time.monotonic() - wired) * 1000)
        except (PodDnsError, SandboxError, OSError) as exc:
            state.sandbox_error = f"Failed to create pod sandbox: {exc}"
            self._event(pod, "Warning", "FailedCreatePodSandBox", state.sandbox_error)
            return None
        state.sandbox_error = ""
        state.pod_ips = net.ips
        return sandbox

    async def _refresh_volumes(self, pod: Obj) -> None:
        """A running pod's volumes written again when due; a new failure is a FailedMount event."""
        uid = uid_of(pod)
        last, failed = self._volumes_written.get(uid, (float("-inf"), ()))
        if self.clock() - last < self.config.volume_resync_seconds:
            return
        failures = tuple(await self.volumes.refresh(pod))
        self._volumes_written[uid] = (self.clock(), failures)
        for message in failures:
            if message not in failed:
                self._event(pod, "Warning", "FailedMount", message)

    def _tear_down_volumes(self, key: PodKey) -> None:
        self._volumes_written.pop(key.uid, None)
        self.volumes.tear_down(key)

    @staticmethod
    def runtime_container_names(pod: Obj) -> list[str]:
        return [c["name"] for c in containers_of(pod, "initContainers") + containers_of(pod, "containers")]

    def _views(self, sandbox: Sandbox, names: Sequence[str]) -> dict[str, ContainerView]:
        """The latest instance of each container in this sandbox (instances of an earlier sandbox do not count)."""
        views = {}
        for name in names:
            status = self.runtime.status(sandbox, name)
            if status is None or (status.started_at is not None and status.started_at < sandbox.created_at - 1):
                continue
            views[name] = status.view()
        return views

    async def _run_pod(self, pod: Obj, state: PodState) -> float | None:
        now = self.clock()
        sandbox = await self._ensure_sandbox(pod, state)
        if sandbox is None:
            self._write_status(pod, self._observe(pod, state, None, {}))
            if self._volumes_written.get(uid_of(pod), (0.0, ()))[1]:
                return MOUNT_RETRY_SECONDS  # kubelet's volume manager retries a mount every few seconds
            return self.config.backoff.initial
        key = PodKey.of(pod)
        await self._refresh_volumes(pod)
        init_specs, app_specs = containers_of(pod, "initContainers"), containers_of(pod, "containers")
        specs = {c["name"]: c for c in init_specs + app_specs}

        # Liveness or startup failures: kill the instance; the restart follows restartPolicy below.
        for name, watch in list(state.probes.items()):
            if watch.verdict.restart:
                status = self.runtime.status(sandbox, name)
                if status is not None and status.state is RunState.RUNNING and status.restart_count == watch.instance:
                    self._event(pod, "Normal", "Killing",
                                           f"Container {name} failed {watch.verdict.reason.split()[0].lower()} "
                                           f"probe, will be restarted")
                    await self.runtime.stop_container(sandbox, name, self._probe_grace(pod, specs[name]))

        policy = podstatus.restart_policy(pod)
        identity = PodIdentity(key.name, key.namespace, key.uid)
        views = self._views(sandbox, list(specs))
        actions = compute_pod_actions(identity, policy, [c["name"] for c in init_specs],
                                      [c["name"] for c in app_specs], views, state.backoffs, now,
                                      self.config.backoff)
        state.backoffs = dict(actions.backoffs)
        state.waiting, state.init_failed = dict(actions.waiting), actions.init_failed
        retry_at: list[float] = [w.retry_at for w in actions.waiting.values()]
        for name in actions.waiting:
            self._event(pod, "Warning", "BackOff", "Back-off restarting failed container "
                        f"{name} in pod {key.name}_{key.namespace}({key.uid})")
        for name in actions.start:
            wait_until = await self._start_container(pod, state, sandbox, specs[name], now)
            if wait_until is not None:
                retry_at.append(wait_until)
        # Each container's latest instance, read once for the rest of this sync (a directory listing, a
        # state file and two /proc reads each: ~18% of the event loop's samples in a burst when read four times).
        latest: StatusOf = functools.cache(lambda name: self.runtime.status(sandbox, name))
        self._watch_containers(pod, state, sandbox, specs, latest)
        observed = self._observe(pod, state, sandbox, dict(actions.waiting), init_failed=actions.init_failed,
                                 latest=latest)
        self._write_status(pod, observed)
        delays = [max(0.05, t - self.clock()) for t in retry_at]
        return min([self.config.resync_seconds, *delays])

    def _probe_grace(self, pod: Obj, container: Mapping[str, Any]) -> float:
        for kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            probe = container.get(kind.value) or {}
            if probe.get("terminationGracePeriodSeconds") is not None:
                return float(probe["terminationGracePeriodSeconds"])
        return grace_seconds({"spec": spec_of(pod)})

    async def _start_container(self, pod: Obj, state: PodState, sandbox: Sandbox, container: Mapping[str, Any],
                               now: float) -> float | None:
        """Start the container's next instance; a time to try again if its image or config keeps it waiting."""
        name, image = container["name"], str(container.get("image") or "")
        failure = state.image_failures.get(name)
        if failure is not None:
            retry = failure.failed_at + failure.entry.backoff
            if now < retry:
                return retry if now >= failure.failed_at + self.config.image_error_shown_seconds \
                    else min(retry, failure.failed_at + self.config.image_error_shown_seconds)
        try:
            program = images.resolve_image(image, python=self.config.python, pythonpath=self.config.pythonpath,
                                           has_command=bool(container.get("command")))
        except images.ImageError as exc:
            previous = failure.entry if failure else None
            entry = BackOffEntry(self.config.image_backoff.initial, now) if previous is None else \
                BackOffEntry(min(previous.backoff * 2, self.config.image_backoff.maximum), now)
            state.image_failures[name] = ImagePullFailure(exc.reason, exc.message, now, entry)
            self._event(pod, "Warning", "Failed", exc.message)
            self._event(pod, "Warning", "Failed", f"Error: {exc.reason}")
            return now + min(entry.backoff, self.config.image_error_shown_seconds)
        state.image_failures.pop(name, None)
        try:
            sources = await self._env_sources(pod, container)
            variables = container_env(pod, container, service_env=self._service_env(pod),
                                      lookup=lambda kind, _ns, name: sources.get((kind, name)))
            env = process_env(variables, program.env, sandbox.hostname)
            argv = images.container_argv(program, container.get("command"), container.get("args"), env)
        except images.ContainerConfigError as exc:
            state.config_errors[name] = (exc.reason, exc.message)
            self._event(pod, "Warning", "Failed", f"Error: {exc.message}")
            return now + self.config.backoff.initial
        state.config_errors.pop(name, None)
        self._event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        began = time.monotonic()
        status = await self.runtime.start_container(sandbox, ContainerSpec(name, tuple(argv), env,
                                                                           str(container.get("workingDir") or "")))
        log.info("pod %s: container %s started in %.0f ms", object_key(pod), name, (time.monotonic() - began) * 1000)
        if status.state is RunState.EXITED and status.reason == "StartError":
            self._event(pod, "Warning", "Failed", f"Error: {status.message}")
        else:
            self._event(pod, "Normal", "Created", f"Created container {name}")
            self._event(pod, "Normal", "Started", f"Started container {name}")
            await self._post_start(pod, state, sandbox, container)
        return None

    def _watch_containers(self, pod: Obj, state: PodState, sandbox: Sandbox, specs: Mapping[str, Obj],
                          latest: StatusOf) -> None:
        """An exit watcher per running instance, and probe runners for app containers that have probes."""
        key = object_key(pod)
        app_names = {c["name"] for c in containers_of(pod, "containers")}
        for name, container in specs.items():
            status = latest(name)
            running = status is not None and status.state is RunState.RUNNING
            watcher = state.exit_watchers.get(name)
            if running and status is not None and (watcher is None or watcher[0] != status.restart_count):
                if watcher is not None:
                    watcher[1].cancel()
                state.exit_watchers[name] = (status.restart_count, asyncio.create_task(
                    self._wait_exit(key, sandbox, name), name=f"exit-{key}-{name}"))
            watch = state.probes.get(name)
            if not running or name not in app_names:
                if watch is not None:
                    watch.task.cancel()
                    del state.probes[name]
                continue
            assert status is not None
            has_probes = any(container.get(kind.value) for kind in ProbeKind)
            if not has_probes or (watch is not None and watch.instance == status.restart_count):
                continue
            if watch is not None:
                watch.task.cancel()
            state.probes[name] = self._start_probes(pod, sandbox, container, status)

    async def _wait_exit(self, key: str, sandbox: Sandbox, name: str) -> None:
        await self.runtime.wait_container(sandbox, name)
        self.queue.add(key)

    def _start_probes(self, pod: Obj, sandbox: Sandbox, container: Mapping[str, Any],
                      status: ContainerStatus) -> ProbeWatch:
        key, name, instance = object_key(pod), container["name"], status.restart_count
        pod_ips = self._ips(pod)
        target = ProbeTarget(netns=sandbox.netns_of_infra, pod_ip=pod_ips[0] if pod_ips else "",
                             ports=named_ports(container), exec_command=exec_in_pod_runner(sandbox.infra),
                             listeners=self.listening_ports(podnet.pod_namespace(self.node.cluster_id, uid_of(pod))),
                             name=f"{key}/{name}")
        watches: list[ProbeWatch] = []

        uid = uid_of(pod)

        def on_change(verdict: ProbeVerdict) -> None:
            for watch in watches:
                watch.verdict = verdict
            if not verdict.restart:
                try:
                    self._publish_probe_verdict(key, uid)
                except Exception:  # never the prober's end: the queued sync writes the status as well
                    log.exception("pod %s: publishing a probe verdict", key)
            self.queue.add(key)  # a restart is the sync's to do; otherwise it finds the status written

        runner = self.probe_runner(container, status.started_at or self.clock(), target, on_change)
        if uid_of(pod) in self._adopted:
            self._seed_from_api(runner, pod, name, instance)
        task = asyncio.create_task(self._run_probes(runner, pod, name), name=f"probe-{key}-{name}")
        watches.append(ProbeWatch(instance, task, runner.verdict))
        return watches[0]

    def _publish_probe_verdict(self, key: str, uid: str) -> None:
        """A probe's verdict goes into the pod's status now, not after the pod's next sync.

        kubelet's `statusManager.SetContainerReadiness` (pkg/kubelet/status/status_manager.go), called from
        the sync loop's readiness updates: in a burst the sync workers are busy starting other pods, and a
        verdict waiting behind them in the queue would keep a ready pod unready until the burst is done.
        """
        namespace, name = split_key(key)
        cached = self.pods.get(namespace, name)
        state = self.states.get(uid)
        if cached is None or state is None or uid_of(cached) != uid:
            return
        pod = newer(state.last_written, cached)
        if is_being_deleted(pod) or status_of(pod).get("phase") in ("Succeeded", "Failed"):
            return
        if state.post_start_container:  # the sync writes the status once the hook has returned
            return
        sandbox = self.runtime.get_sandbox(PodKey.of(pod))
        if sandbox is None or not state.pod_ips:
            return
        self._write_status(pod, self._observe(pod, state, sandbox, state.waiting, init_failed=state.init_failed))

    def _ips(self, pod: Obj) -> tuple[str, ...]:
        state = self.states.get(uid_of(pod))
        return state.pod_ips if state else ()

    @staticmethod
    def _seed_from_api(runner: ProbeRunner, pod: Obj, name: str, instance: int) -> None:
        """An adopted container keeps the readiness the API shows for it, rather than blinking unready.

        Only for pods whose sandbox was alive when this agent started: after `svcnet down` and `up`
        the API still shows the old processes ready, but the new ones must prove it again.
        """
        for status in status_of(pod).get("containerStatuses") or []:
            if status.get("name") != name or status.get("restartCount") != instance:
                continue
            probes = runner.probes
            states = dict(probes.states)
            if status.get("started") and ProbeKind.STARTUP in states:
                states[ProbeKind.STARTUP] = ProbeState(Result.SUCCESS)
            if status.get("ready") and ProbeKind.READINESS in states:
                states[ProbeKind.READINESS] = ProbeState(Result.SUCCESS)
            runner.probes = dataclasses.replace(probes, states=states)

    async def _run_probes(self, runner: ProbeRunner, pod: Obj, name: str) -> None:
        def report(spec: ProbeSpec, message: str) -> None:
            kind = {ProbeKind.READINESS: "Readiness", ProbeKind.LIVENESS: "Liveness",
                    ProbeKind.STARTUP: "Startup"}[spec.kind]
            self._event(pod, "Warning", "Unhealthy", f"{kind} probe failed: {message}")

        runner.on_failure = report
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a probe bug must not take the pod down with it
            log.exception("probes of %s/%s", object_key(pod), name)

    # ---- status

    def _observe(self, pod: Obj, state: PodState, sandbox: Sandbox | None,
                 backoff_waiting: Mapping[str, Any], *, init_failed: bool = False,
                 latest: StatusOf | None = None) -> podstatus.PodObservation:
        uid = uid_of(pod)
        init_specs, app_specs = containers_of(pod, "initContainers"), containers_of(pod, "containers")
        if latest is None:
            latest = functools.cache(lambda name: self.runtime.status(sandbox, name) if sandbox else None)
        inits = [self._observe_container(pod, uid, state, sandbox, c, backoff_waiting, "PodInitializing", latest)
                 for c in init_specs]
        app_started = sandbox is not None and any(latest(c["name"]) is not None for c in app_specs)
        init_done = app_started or all(c.terminated is not None and c.terminated.exit_code == 0 for c in inits)
        default_waiting = "ContainerCreating" if init_done else "PodInitializing"
        apps = [self._observe_container(pod, uid, state, sandbox, c, backoff_waiting, default_waiting, latest)
                for c in app_specs]
        sandbox_ready = sandbox is not None
        return podstatus.PodObservation(tuple(inits), tuple(apps), state.pod_ips if sandbox_ready else (),
                                        self.node.addresses, sandbox_ready, init_failed)

    def _observe_container(self, pod: Obj, uid: str, state: PodState, sandbox: Sandbox | None,
                           container: Mapping[str, Any], backoff_waiting: Mapping[str, Any],
                           default_waiting: str, latest_of: StatusOf) -> podstatus.ContainerObservation:
        name, image = container["name"], str(container.get("image") or "")
        latest = latest_of(name) if sandbox else None
        if sandbox is not None and latest is not None and name == state.post_start_container:
            # Its hook runs: the instance does not count yet; the one before it (if any) still shows.
            latest = self.runtime.status(sandbox, name, latest.restart_count - 1) if latest.restart_count else None
        previous = None
        if sandbox is not None and latest is not None and latest.restart_count > 0:
            previous = self.runtime.status(sandbox, name, latest.restart_count - 1)
        reason = message = ""
        failure = state.image_failures.get(name)
        if failure is not None:
            if self.clock() - failure.failed_at < self.config.image_error_shown_seconds:
                reason, message = failure.reason, failure.message
            else:
                reason, message = "ImagePullBackOff", images.image_pull_backoff_message(image)
        elif name in state.config_errors:
            reason, message = state.config_errors[name]
        elif name in backoff_waiting:
            reason, message = backoff_waiting[name].reason, backoff_waiting[name].message
        elif sandbox is None and state.sandbox_error:
            message = ""
        ready = started = False
        if latest is not None and latest.state is RunState.RUNNING:
            watch = state.probes.get(name)
            if watch is not None and watch.instance == latest.restart_count:
                ready, started = watch.verdict.ready, watch.verdict.started
            elif not any(container.get(kind.value) for kind in ProbeKind):
                ready = started = True
        return podstatus.observe_container(name, image, uid, latest=latest, previous=previous,
                                           image_id=image_id(image) if latest else "", waiting_reason=reason,
                                           waiting_message=message, ready=ready, started=started,
                                           default_waiting=default_waiting)

    def _write_status(self, pod: Obj, observed: podstatus.PodObservation) -> None:
        """Hand the status to the status manager: written in the background, the latest one wins."""
        in_flight = self.status.wanted(uid_of(pod))
        shown = pod if in_flight is None else {**pod, "status": in_flight}
        self.status.set(pod, podstatus.pod_status(shown, observed, self.clock()))

    def _status_written(self, uid: str, pod: Obj | None) -> None:
        state = self.states.get(uid)
        if state is not None:
            state.last_written = pod


__all__ = ["AgentConfig", "ContainerRuntime", "NodeAgent"]
