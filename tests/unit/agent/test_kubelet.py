"""The node agent over FakeApi, the fake kernel and an in-memory runtime (no root, no processes)."""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from svcnet.agent.ipam import LeaseStore
from svcnet.agent.kubelet import PODS, AgentConfig, NodeAgent
from svcnet.agent.network import pod_namespace
from svcnet.agent.node import LEASES, NODES, HostFacts
from svcnet.agent.probes import ProbeRunner, Result
from svcnet.api.objects import status_of
from svcnet.client.events import EVENTS
from svcnet.cluster.topology import apply_topology, plan_topology
from svcnet.kernel.process import ProcessId
from svcnet.runtime.containers import ContainerSpec, ContainerStatus, RunState
from svcnet.runtime.sandbox import PodKey, Sandbox, SandboxConfig
from svcnet.testing.api import FakeApi
from svcnet.testing.links import FakeNetworkKernel
from svcnet.testing.sockdiag import FakeListeningPorts
from tests import waiting

# The agent's loops take several steps per change; under a loaded machine 5 s was seen to be short.
until = functools.partial(waiting.until, timeout=10.0)

FACTS = HostFacts(cpus=4, memory_kib=8_000_000, kernel_version="6.1.0", os_image="Test Linux", architecture="amd64")


class FakeRuntime:
    """Sandboxes and container instances in memory; tests make containers exit with `exit`."""

    def __init__(self) -> None:
        self.pods: dict[PodKey, Sandbox] = {}
        self.alive: dict[PodKey, bool] = {}
        self.configs: dict[PodKey, SandboxConfig] = {}
        self.instances: dict[tuple[PodKey, str], list[ContainerStatus]] = {}
        self.specs: dict[tuple[PodKey, str], list[ContainerSpec]] = {}
        self.exited: dict[tuple[PodKey, str, int], asyncio.Event] = {}
        self.removed: list[tuple[str, float]] = []
        self.stopped: list[tuple[str, str, float]] = []
        self.sandbox_gate: asyncio.Event | None = None  # set: sandbox creation waits for it
        self._pids = iter(range(1000, 100000))

    async def create_sandbox(self, key: PodKey, config: SandboxConfig) -> Sandbox:
        if self.sandbox_gate is not None:
            await self.sandbox_gate.wait()
        sandbox = Sandbox(key, Path("/fake") / key.dir_name, ProcessId(next(self._pids), 1), config.netns,
                          config.hostname, time.time())
        self.pods[key], self.alive[key], self.configs[key] = sandbox, True, config
        return sandbox

    def sandboxes(self) -> list[Sandbox]:
        return list(self.pods.values())

    def sandboxes_named(self, namespace: str, name: str) -> list[Sandbox]:
        return [s for k, s in self.pods.items() if (k.namespace, k.name) == (namespace, name)]

    def get_sandbox(self, key: PodKey) -> Sandbox | None:
        return self.pods.get(key)

    def sandbox_alive(self, pod: Sandbox) -> bool:
        return self.alive.get(pod.key, False)

    async def stop_sandbox(self, pod: Sandbox) -> None:
        self.alive[pod.key] = False

    async def remove_pod(self, pod: Sandbox, grace_seconds: float = 0.0) -> None:
        for (key, name), runs in list(self.instances.items()):
            if key == pod.key and runs[-1].state is RunState.RUNNING:
                self.exit(key.name, name, 143)
        self.removed.append((pod.key.name, grace_seconds))
        self.pods.pop(pod.key, None)
        self.alive.pop(pod.key, None)

    def status(self, pod: Sandbox, name: str, instance: int | None = None) -> ContainerStatus | None:
        runs = self.instances.get((pod.key, name), [])
        if not runs:
            return None
        return runs[-1] if instance is None else runs[instance]

    async def start_container(self, pod: Sandbox, spec: ContainerSpec) -> ContainerStatus:
        runs = self.instances.setdefault((pod.key, spec.name), [])
        self.specs.setdefault((pod.key, spec.name), []).append(spec)
        status = ContainerStatus(spec.name, len(runs), RunState.RUNNING, started_at=time.time())
        runs.append(status)
        self.exited[(pod.key, spec.name, status.restart_count)] = asyncio.Event()
        return status

    async def stop_container(self, pod: Sandbox, name: str, grace_seconds: float = 30.0) -> ContainerStatus | None:
        self.stopped.append((pod.key.name, name, grace_seconds))
        latest = self.status(pod, name)
        if latest is not None and latest.state is RunState.RUNNING:
            self.exit(pod.key.name, name, 137)
        return self.status(pod, name)

    async def wait_container(self, pod: Sandbox, name: str, timeout: float | None = None) -> ContainerStatus | None:
        latest = self.status(pod, name)
        if latest is not None and latest.state is RunState.RUNNING:
            await self.exited[(pod.key, name, latest.restart_count)].wait()
        return self.status(pod, name)

    # test controls
    def key(self, pod_name: str) -> PodKey:
        return next(k for k in self.pods if k.name == pod_name)

    def exit(self, pod_name: str, container: str, code: int) -> None:
        key = next(k for (k, n) in self.instances if k.name == pod_name and n == container)
        runs = self.instances[(key, container)]
        last = runs[-1]
        runs[-1] = ContainerStatus(container, last.restart_count, RunState.EXITED, last.started_at, time.time(),
                                   code, "Completed" if code == 0 else "Error")
        self.exited[(key, container, last.restart_count)].set()

    def starts(self, pod_name: str, container: str) -> int:
        return sum(len(runs) for (k, n), runs in self.instances.items() if k.name == pod_name and n == container)


def probe_runner_with(results: dict[str, Result | None]) -> Callable[..., ProbeRunner]:
    """Probe runners whose probes answer from `results` (by container name) and whose time runs at once."""
    now = [time.time()]

    async def fast_sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0.001)

    def make(container: dict[str, Any], started_at: float, target: Any, on_change: Any) -> ProbeRunner:
        async def probe(spec: Any, _target: Any) -> tuple[Result, str]:
            outcome = results.get(container["name"], Result.SUCCESS)
            if outcome is None:  # a probe that never answers: only seeding could make the container ready
                await asyncio.Event().wait()
            return outcome, "" if outcome is Result.SUCCESS else "probe says no"

        return ProbeRunner(container, started_at, target, on_change, clock=lambda: now[0], sleep=fast_sleep,
                           probe=probe)

    return make


class Node:
    """One agent under test and everything it talks to."""

    def __init__(self, tmp_path: Path, api: FakeApi | None = None,
                 probes: dict[str, Result | None] | None = None, workers: int = 16) -> None:
        self.workers = workers
        self.api = api or FakeApi()
        self.kernel = FakeNetworkKernel()
        self.plan = plan_topology("t1", 2)
        apply_topology(self.kernel, self.plan)
        self.runtime = FakeRuntime()
        self.tmp_path = tmp_path
        self.probes = probes if probes is not None else {}
        self.listeners: dict[str, FakeListeningPorts] = {}  # by pod namespace name
        self.agent = self.new_agent()

    def new_agent(self) -> NodeAgent:
        config = AgentConfig(node_name="node-1", runtime_root=self.tmp_path / "rt",
                             lease_path=self.tmp_path / "ipam" / "leases.json",
                             node_resolv_conf="nameserver 192.0.2.53\nsearch corp.example\n",
                             image_error_shown_seconds=60.0, workers=self.workers)
        return NodeAgent(self.api, self.kernel, self.runtime, self.plan.node("node-1"), config, facts=FACTS,
                         probe_runner=probe_runner_with(self.probes),
                         listening_ports=lambda netns: self.listeners.setdefault(netns, FakeListeningPorts()))

    async def pod(self, name: str) -> dict[str, Any]:
        return await self.api.get(PODS, "default", name)


def make_pod(name: str, node: str = "node-1", **spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [{"name": "app", "image": "k8s.gcr.io/serve_hostname"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 30, **spec}}


def container_status(pod: dict[str, Any], name: str = "app") -> dict[str, Any]:
    statuses = status_of(pod).get("containerStatuses") or []
    return next((s for s in statuses if s["name"] == name), {})


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    await n.agent.start()
    try:
        yield n
    finally:
        await n.agent.stop()


async def test_node_is_registered_with_its_pod_cidr_labels_capacity_and_a_lease(node: Node) -> None:
    registered = await node.api.get(NODES, None, "node-1")
    assert registered["spec"]["podCIDR"] == "10.244.1.0/24"
    assert registered["metadata"]["labels"]["kubernetes.io/hostname"] == "node-1"
    assert registered["metadata"]["labels"]["kubernetes.io/arch"] == "amd64"
    assert registered["status"]["capacity"]["pods"] == "253"  # what its /24 can lease
    assert {"type": "InternalIP", "address": "192.168.0.106"} in registered["status"]["addresses"]
    ready = next(c for c in registered["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    lease = await node.api.get(LEASES, "kube-node-lease", "node-1")
    assert lease["spec"]["holderIdentity"] == "node-1"
    assert lease["spec"]["leaseDurationSeconds"] == 40


async def test_bound_pod_gets_network_sandbox_container_and_a_running_ready_status(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("web-0"))

    async def running() -> Any:
        pod = await node.pod("web-0")
        return pod if status_of(pod).get("phase") == "Running" and container_status(pod).get("ready") \
            else None

    pod = await until(running)
    uid = pod["metadata"]["uid"]
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network("10.244.1.0/24")
    assert pod["status"]["hostIP"] == "192.168.0.106"
    assert pod_namespace("t1", uid) in node.kernel.list_namespaces()
    config = node.runtime.configs[node.runtime.key("web-0")]
    assert config.hostname == "web-0"
    assert "nameserver 10.96.0.10" in config.resolv_conf
    spec = node.runtime.specs[(node.runtime.key("web-0"), "app")][0]
    assert spec.argv[1:3] == ("-m", "svcnet.images.serve_hostname")
    assert container_status(pod)["state"]["running"]


async def test_pod_bound_to_another_node_is_left_alone(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("elsewhere", node="node-2"))
    await node.api.create(PODS, "default", make_pod("here"))
    await until(lambda: _has_status(node, "here"))
    assert "elsewhere" not in {k.name for k in node.runtime.pods}
    assert (await node.pod("elsewhere"))["status"] == {"phase": "Pending"}  # as the API server created it


async def _has_status(node: Node, name: str) -> bool:
    return bool((await node.pod(name)).get("status", {}).get("phase"))


async def test_unknown_image_waits_with_err_image_pull_and_a_message(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("nginx", containers=[{"name": "app", "image": "nginx"}]))

    async def waiting() -> Any:
        return container_status(await node.pod("nginx")).get("state", {}).get("waiting", {}).get("reason") \
            == "ErrImagePull"

    await until(waiting)
    state = container_status(await node.pod("nginx"))["state"]["waiting"]
    assert state["message"].startswith('Failed to pull image "nginx"')
    assert "not found" in state["message"]
    assert (await node.pod("nginx"))["status"]["phase"] == "Pending"


async def test_crashing_container_restarts_at_once_then_shows_crash_loop_back_off(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("crash", containers=[
        {"name": "app", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]))
    await until(lambda: _started(node, "crash", 1))
    node.runtime.exit("crash", "app", 3)
    await until(lambda: _started(node, "crash", 2))  # the first restart is immediate
    node.runtime.exit("crash", "app", 3)

    async def backing_off() -> Any:
        status = container_status(await node.pod("crash"))
        return status if status.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff" else None

    status = await until(backing_off)
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert "back-off 10s restarting failed container=app pod=crash_default" in status["state"]["waiting"]["message"]
    assert (await node.pod("crash"))["status"]["phase"] == "Running"


async def _started(node: Node, pod: str, times: int) -> bool:
    return node.runtime.starts(pod, "app") >= times


async def test_init_containers_run_in_order_before_the_app(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("init", initContainers=[
        {"name": "first", "image": "busybox", "command": ["true"]},
        {"name": "second", "image": "busybox", "command": ["true"]}]))
    await until(lambda: _init_started(node, "first"))
    assert node.runtime.starts("init", "second") == 0 and node.runtime.starts("init", "app") == 0
    node.runtime.exit("init", "first", 0)
    await until(lambda: _init_started(node, "second"))
    assert node.runtime.starts("init", "app") == 0
    node.runtime.exit("init", "second", 0)
    await until(lambda: _started(node, "init", 1))


async def _init_started(node: Node, name: str) -> bool:
    return node.runtime.starts("init", name) >= 1


def make_probed_pod(name: str) -> dict[str, Any]:
    return make_pod(name, containers=[{"name": "app", "image": "k8s.gcr.io/serve_hostname",
                                       "readinessProbe": {"httpGet": {"port": 9376}, "periodSeconds": 1}}])


async def _container_ready(node: Node, name: str) -> Any:
    return container_status(await node.pod(name)).get("ready")


async def test_failing_readiness_probe_keeps_the_pod_running_but_not_ready(tmp_path: Path) -> None:
    n = Node(tmp_path, probes={"app": Result.FAILURE})
    await n.agent.start()
    try:
        await n.api.create(PODS, "default", make_probed_pod("unready"))
        await until(lambda: _phase(n, "unready", "Running"))
        pod = await n.pod("unready")
        assert container_status(pod)["ready"] is False
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
        n.probes["app"] = Result.SUCCESS
        await until(lambda: _container_ready(n, "unready"))
    finally:
        await n.agent.stop()


async def _phase(node: Node, name: str, phase: str) -> bool:
    return (await node.pod(name)).get("status", {}).get("phase") == phase


async def test_a_probe_verdict_reaches_the_status_while_the_sync_workers_are_busy(tmp_path: Path) -> None:
    n = Node(tmp_path, probes={"app": Result.FAILURE}, workers=1)
    await n.agent.start()
    try:
        await n.api.create(PODS, "default", make_probed_pod("probed"))
        await until(lambda: _phase(n, "probed", "Running"))
        n.runtime.sandbox_gate = asyncio.Event()  # the next pod's sync holds the only worker
        await n.api.create(PODS, "default", make_pod("stuck"))
        await until(lambda: "default/stuck" in n.agent.queue.processing())
        n.probes["app"] = Result.SUCCESS
        await until(lambda: _container_ready(n, "probed"))
        assert "default/stuck" in n.agent.queue.processing()  # it was not a sync of "probed" that wrote it
        conditions = {c["type"]: c["status"] for c in status_of(await n.pod("probed"))["conditions"]}
        assert conditions["Ready"] == conditions["ContainersReady"] == "True"
        n.runtime.sandbox_gate.set()
        await until(lambda: _phase(n, "stuck", "Running"))
    finally:
        if n.runtime.sandbox_gate is not None:
            n.runtime.sandbox_gate.set()
        await n.agent.stop()


async def test_liveness_failure_kills_and_restarts_the_container(tmp_path: Path) -> None:
    n = Node(tmp_path, probes={"app": Result.FAILURE})
    await n.agent.start()
    try:
        await n.api.create(PODS, "default", make_pod("sick", containers=[
            {"name": "app", "image": "k8s.gcr.io/serve_hostname",
             "livenessProbe": {"tcpSocket": {"port": 9376}, "periodSeconds": 1, "failureThreshold": 1}}]))
        await until(lambda: _started(n, "sick", 2))
        assert ("sick", "app", 30.0) in n.runtime.stopped

        async def counted() -> Any:
            return container_status(await n.pod("sick")).get("restartCount", 0) >= 1

        await until(counted)
    finally:
        await n.agent.stop()


async def mark_deleting(api: FakeApi, name: str, grace: int) -> None:
    """A graceful pod delete: the API server marks the pod, its node's agent finishes the delete."""
    await api.delete(PODS, "default", name, grace_period_seconds=grace)


async def test_deleted_pod_is_stopped_with_its_grace_then_removed_and_finalized_with_its_uid(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("bye"))
    pod = await until(lambda: _running_pod(node, "bye"))
    uid = pod["metadata"]["uid"]
    await mark_deleting(node.api, "bye", 7)

    async def gone() -> bool:
        return not any(o["metadata"]["name"] == "bye" for o in node.api.objects(PODS))

    await until(gone)
    assert ("bye", 7.0) in node.runtime.removed
    assert pod_namespace("t1", uid) not in node.kernel.list_namespaces()
    assert LeaseStore(node.tmp_path / "ipam" / "leases.json", "10.244.1.0/24", "fd00:10:244:1::/64").load().lease_for(uid) is None
    assert [a.verb for a in node.api.actions if a.plural == "pods" and a.name == "bye"][-1] == "delete"


async def test_a_deleted_pods_pre_stop_hook_runs_before_sigterm_and_uses_up_its_grace(node: Node) -> None:
    """kubelet's killContainer: the hook first (the container keeps running), SIGTERM with what grace is left."""
    app = {"name": "app", "image": "k8s.gcr.io/serve_hostname", "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}
    await node.api.create(PODS, "default", make_pod("drain", containers=[app]))
    await until(lambda: _running_pod(node, "drain"))
    await mark_deleting(node.api, "drain", 7)

    async def gone() -> bool:
        return not any(o["metadata"]["name"] == "drain" for o in node.api.objects(PODS))

    await until(gone)
    # Stopped with the grace less the second the hook took; remove_pod then finds nothing running.
    assert [s for s in node.runtime.stopped if s[0] == "drain"] == [("drain", "app", 6.0)]
    assert ("drain", 7.0) in node.runtime.removed


async def test_force_deleting_a_pod_in_a_long_pre_stop_hook_ends_the_hook_and_stops_it_with_two_seconds(
        node: Node) -> None:
    app = {"name": "app", "image": "k8s.gcr.io/serve_hostname", "lifecycle": {"preStop": {"sleep": {"seconds": 60}}}}
    pod = await node.api.create(PODS, "default", make_pod("slow", containers=[app], terminationGracePeriodSeconds=90))
    await until(lambda: _running_pod(node, "slow"))
    await mark_deleting(node.api, "slow", 90)
    uid = pod["metadata"]["uid"]
    await until(lambda: uid in node.agent.states and node.agent.states[uid].kill_grace == 90)
    await node.api.delete(PODS, "default", "slow", grace_period_seconds=0)  # kubectl delete --force --grace-period=0
    await until(lambda: ("slow", 2.0) in node.runtime.removed)  # not after the hook's 60 s
    assert [s for s in node.runtime.stopped if s[0] == "slow"] == [("slow", "app", 2.0)]


async def test_a_failing_pre_stop_hook_is_a_warning_event_and_the_pod_still_goes(node: Node) -> None:
    hook = {"httpGet": {"path": "/quit", "port": 8080}}  # nothing to connect to in the fake pod namespace
    app = {"name": "app", "image": "k8s.gcr.io/serve_hostname", "lifecycle": {"preStop": hook}}
    await node.api.create(PODS, "default", make_pod("stubborn", containers=[app]))
    await until(lambda: _running_pod(node, "stubborn"))
    await mark_deleting(node.api, "stubborn", 5)

    def failed_hook_event() -> bool:
        return any(e.get("reason") == "FailedPreStopHook" and e["involvedObject"]["name"] == "stubborn"
                   and e.get("message") == "PreStopHook failed" for e in node.api.objects(EVENTS))

    await until(failed_hook_event)
    await until(lambda: not any(o["metadata"]["name"] == "stubborn" for o in node.api.objects(PODS)))
    assert ("stubborn", "app", 5.0) in node.runtime.stopped


async def _running_pod(node: Node, name: str) -> dict[str, Any] | None:
    pod = await node.pod(name)
    return pod if status_of(pod).get("phase") == "Running" else None


async def test_pod_that_vanished_from_the_api_is_cleaned_up(node: Node) -> None:
    await node.api.create(PODS, "default", make_pod("ghost"))
    pod = await until(lambda: _running_pod(node, "ghost"))
    await node.api.delete(PODS, "default", "ghost", grace_period_seconds=0)  # forced: it is simply gone
    await until(lambda: _no_sandbox(node, "ghost"))
    # the network goes after the sandbox, on a worker thread: wait for it too
    namespace = pod_namespace("t1", pod["metadata"]["uid"])
    await until(lambda: namespace not in node.kernel.list_namespaces())


async def _no_sandbox(node: Node, name: str) -> bool:
    return all(k.name != name for k in node.runtime.pods)


async def test_a_pod_replaced_under_its_name_loses_the_old_sandbox_and_runs_in_a_new_one(node: Node) -> None:
    old = await node.api.create(PODS, "default", make_pod("reborn"))
    await until(lambda: _running_pod(node, "reborn"))
    await node.api.delete(PODS, "default", "reborn", grace_period_seconds=0)
    new = await node.api.create(PODS, "default", make_pod("reborn"))

    async def only_the_new_one() -> bool:
        return [k.uid for k in node.runtime.pods if k.name == "reborn"] == [new["metadata"]["uid"]]

    await until(only_the_new_one)
    await until(lambda: _running_pod(node, "reborn"))
    assert ("reborn", 2.0) in node.runtime.removed  # the old one went with the orphans' grace
    assert old["metadata"]["uid"] not in node.agent.states


async def test_restarted_agent_adopts_running_pods_without_restarting_them(tmp_path: Path) -> None:
    n = Node(tmp_path)
    await n.agent.start()
    await n.api.create(PODS, "default", make_pod("keep"))
    pod = await until(lambda: _running_pod(n, "keep"))
    await n.agent.stop()

    n.agent = n.new_agent()
    await n.agent.start()
    try:
        await until(lambda: _synced_once(n))
        assert n.runtime.starts("keep", "app") == 1
        again = await n.pod("keep")
        assert container_status(again)["restartCount"] == 0
        assert again["status"]["podIP"] == pod["status"]["podIP"]
    finally:
        await n.agent.stop()


async def _synced_once(node: Node) -> bool:
    return node.agent.started.is_set() and len(node.agent.queue) == 0 and not node.agent.queue.processing() \
        and not node.agent.status.busy()


async def test_agent_start_removes_recorded_sandboxes_of_pods_the_api_does_not_have(tmp_path: Path) -> None:
    n = Node(tmp_path)
    await n.runtime.create_sandbox(PodKey("default", "orphan", "0a1b2c3d4e5f"),
                                   SandboxConfig("/run/netns/x", "orphan", "", ""))
    await n.agent.start()
    try:
        await until(lambda: _no_sandbox(n, "orphan"))
        assert ("orphan", 2.0) in n.runtime.removed
    finally:
        await n.agent.stop()


async def test_a_pod_started_again_after_down_is_not_ready_until_its_probe_says_so(tmp_path: Path) -> None:
    n = Node(tmp_path, probes={"app": Result.SUCCESS})
    await n.agent.start()
    await n.api.create(PODS, "default", make_probed_pod("again"))
    await until(lambda: _container_ready(n, "again"))
    await n.agent.stop()
    # `svcnet down`: every pod process stopped and its record deleted; the API still says Ready.
    sandbox = n.runtime.get_sandbox(n.runtime.key("again"))
    assert sandbox is not None
    await n.runtime.remove_pod(sandbox)
    n.runtime.instances.clear()
    n.probes["app"] = None  # the new process's probe has not answered yet

    n.agent = n.new_agent()
    await n.agent.start()
    try:
        await until(lambda: _started(n, "again", 1))
        await until(lambda: _synced_once(n))
        status = container_status(await n.pod("again"))
        assert (status.get("state") or {}).get("running") and status.get("ready") is False
    finally:
        await n.agent.stop()


class FakeHooks:
    """lifecycle.run_handler stood in for: postStart hooks wait for `release` and answer `post_start_error`."""

    def __init__(self, node: Node, post_start_error: str = "") -> None:
        self.node, self.post_start_error = node, post_start_error
        self.release = asyncio.Event()
        self.calls: list[tuple[str, int]] = []  # (the handler's kind, app starts seen when it ran)
        self.cancelled = False

    async def run_handler(self, handler: dict[str, Any], target: Any, timeout: float | None) -> str:
        kind = "preStop" if "sleep" in handler else "postStart"
        self.calls.append((kind, self.node.runtime.starts("hooked", "app")))
        if kind == "preStop":
            return ""
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return self.post_start_error


def hooked_pod() -> dict[str, Any]:
    app = {"name": "app", "image": "k8s.gcr.io/serve_hostname",
           "lifecycle": {"postStart": {"exec": {"command": ["touch", "/ready"]}}, "preStop": {"sleep": {"seconds": 1}}}}
    return make_pod("hooked", containers=[app])


def _events(node: Node, reason: str) -> list[tuple[str, str]]:
    return [(e["type"], e["message"]) for e in node.api.objects(EVENTS)
            if e.get("reason") == reason and e["involvedObject"]["name"] == "hooked"]


async def test_a_post_start_hook_runs_once_the_container_runs_and_holds_it_back_until_it_returns(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = FakeHooks(node)
    monkeypatch.setattr("svcnet.agent.lifecycle.run_handler", hooks.run_handler)
    await node.api.create(PODS, "default", hooked_pod())
    await until(lambda: hooks.calls)
    assert hooks.calls == [("postStart", 1)]  # after the container's process started

    async def creating() -> dict[str, Any] | None:
        pod = await node.pod("hooked")
        return pod if container_status(pod).get("state", {}).get("waiting", {}).get("reason") == \
            "ContainerCreating" else None

    pod = await until(creating)  # as kubelet's sync wrote it before the start, until the hook returns
    assert status_of(pod)["phase"] == "Pending" and not container_status(pod)["ready"]
    hooks.release.set()
    pod = await until(lambda: _running_pod(node, "hooked"))
    assert container_status(pod)["ready"] and "running" in container_status(pod)["state"]
    assert node.runtime.starts("hooked", "app") == 1 and not node.runtime.stopped


async def test_a_failing_post_start_hook_kills_the_container_preStop_first_and_it_is_restarted(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = FakeHooks(node, post_start_error="Exec lifecycle hook ([touch /ready]) for Container ... failed")
    hooks.release.set()
    monkeypatch.setattr("svcnet.agent.lifecycle.run_handler", hooks.run_handler)
    await node.api.create(PODS, "default", hooked_pod())
    await until(lambda: len(hooks.calls) >= 3)  # restartPolicy Always: the first restart is at once
    assert hooks.calls[:3] == [("postStart", 1), ("preStop", 1), ("postStart", 2)]
    assert node.runtime.stopped[0] == ("hooked", "app", 30.0)  # killContainer's grace: the pod's, less the preStop
    await until(lambda: _events(node, "FailedPostStartHook") and _events(node, "Killing"))
    assert _events(node, "FailedPostStartHook")[0] == ("Warning", "PostStartHook failed")  # not the hook's output
    assert ("Normal", "FailedPostStartHook") in _events(node, "Killing")


async def test_deleting_a_pod_ends_its_post_start_hook(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = FakeHooks(node)  # never released: a hook that hangs
    monkeypatch.setattr("svcnet.agent.lifecycle.run_handler", hooks.run_handler)
    await node.api.create(PODS, "default", hooked_pod())
    await until(lambda: hooks.calls)
    await mark_deleting(node.api, "hooked", 5)
    await until(lambda: not any(o["metadata"]["name"] == "hooked" for o in node.api.objects(PODS)))
    assert hooks.cancelled
    assert ("hooked", "app", 5.0) in node.runtime.stopped  # killed as any deleted pod: its preStop, then SIGTERM
    assert not _events(node, "FailedPostStartHook")
