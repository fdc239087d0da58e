"""The cluster's lifecycle for `svcnet up` and `svcnet down`.

`svcnet up --nodes N` runs, in one process and in this order: the cluster
network (`ClusterNetwork`: the topology for the cluster id kept in the data
dir), the API server, the controllers, one `svcnet agent` child process per
node (`AgentSupervisor`: restarted after a short back-off if it dies; the new
one adopts the node's pods) and a gate that waits for every Node to be Ready.
Stopping runs the same list backwards; the network's stop is `teardown`:
agents ended, every pod process stopped (found through the runtime's state
files), the topology destroyed, the IP leases removed. `svcnet down` also
calls `teardown` itself, so a cluster whose `up` process was killed is
cleaned up too.

Data dir layout (next to the API server's files):

    cluster.json                     cluster id, node count, CIDRs (agents read their node's plan here)
    nodes/<node>/agent.pid, agent.log
    nodes/<node>/pods/...            the node's runtime state and container logs
    nodes/<node>/ipam/leases.json    the node's pod IP leases
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from svcnet.cluster import supervisor
from svcnet.cluster.egress import apply_egress
from svcnet.cluster.topology import (
    TopologyPlan,
    apply_topology,
    check_cluster_id,
    destroy_topology,
    plan_topology,
)

log = logging.getLogger("svcnet.cluster")

CLUSTER_FILE = "cluster.json"
READY_FILE = "cluster.ready"
AGENT_RESTART_INITIAL = 1.0
AGENT_RESTART_MAX = 30.0
AGENT_HEALTHY_AFTER = 60.0  # an agent that ran this long starts its back-off over
DOWN_GRACE_SECONDS = 2.0
PROXY_MIN_SYNC_PERIOD = "100ms"


@dataclass(frozen=True)
class ClusterSpec:
    cluster_id: str
    nodes: int
    node_cidr: str = "192.168.0.0/24"
    pod_cidr: str = "10.244.0.0/16"
    node_cidr_v6: str | None = "fd00:192:168::/64"
    pod_cidr_v6: str | None = "fd00:10:244::/56"
    resolv_conf: str | None = None  # kubelet's --resolv-conf for every node; None: the host's

    def plan(self) -> TopologyPlan:
        return plan_topology(self.cluster_id, self.nodes, self.node_cidr, self.pod_cidr,
                             node_cidr_v6=self.node_cidr_v6, pod_cidr_v6=self.pod_cidr_v6)


# ---- the data dir


def node_dir(data_dir: Path, node: str) -> Path:
    return data_dir / "nodes" / node


def runtime_root(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node)


def lease_path(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node) / "ipam" / "leases.json"


def agent_pid_path(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node) / "agent.pid"


def agent_log_path(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node) / "agent.log"


def role_log_path(data_dir: Path, node: str, role: str) -> Path:
    return node_dir(data_dir, node) / f"{role}.log"


def proxy_pid_path(data_dir: Path, node: str) -> Path:
    """Written by `up` when it starts a node's proxy, so `down` finds it even after a dead `up`."""
    return node_dir(data_dir, node) / "proxy.pid"


def new_cluster_id() -> str:
    """8 characters, a letter first: short enough for interface names, unlikely to clash."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return secrets.choice(alphabet[:26]) + "".join(secrets.choice(alphabet) for _ in range(7))


def cluster_id_for(data_dir: Path) -> str:
    """The data dir's cluster id: from cluster.json, else the `cluster-id` file a caller may have written, else new."""
    spec = load_cluster_spec(data_dir)
    if spec is not None:
        return spec.cluster_id
    try:
        return check_cluster_id((data_dir / "cluster-id").read_text().strip())
    except FileNotFoundError:
        return new_cluster_id()


def save_cluster_spec(data_dir: Path, spec: ClusterSpec) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (CLUSTER_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(spec), indent=2) + "\n")
    os.replace(tmp, data_dir / CLUSTER_FILE)


def load_cluster_spec(data_dir: Path) -> ClusterSpec | None:
    try:
        data = json.loads((data_dir / CLUSTER_FILE).read_text())
    except FileNotFoundError:
        return None
    spec = ClusterSpec(**data)
    check_cluster_id(spec.cluster_id)
    return spec


# ---- prerequisites


def check_prerequisites(bind_address: str, port: int, *, euid: int | None = None,
                        which: Callable[[str], str | None] = shutil.which, resolv_conf: str = "",
                        netns_support: Path = Path("/proc/self/ns/net")) -> list[str]:
    """Everything that would make `svcnet up` fail part-way, each as a message that says what to do."""
    problems = []
    if not netns_support.exists():
        problems.append("this kernel has no network namespaces (CONFIG_NET_NS; "
                        f"{netns_support} is missing): run svcnet on a Linux kernel with namespaces")
    if resolv_conf:
        try:
            Path(resolv_conf).read_text()
        except OSError as exc:
            problems.append(f"--resolv-conf {resolv_conf}: {exc.strerror or exc}")
    if (os.geteuid() if euid is None else euid) != 0:
        problems.append("svcnet up must run as root: it creates network namespaces (try: sudo svcnet up)")
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux")):
        if which(tool) is None:
            problems.append(f"`{tool}` is not installed (package {package}); svcnet needs it to run pods")
    if which("iptables") is None and which("nft") is None:
        problems.append("neither `iptables` nor `nft` is installed (packages iptables, nftables); "
                        "the service proxy needs one of them")
    family = socket.AF_INET6 if ":" in bind_address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((bind_address, port))
        except OSError as exc:
            problems.append(f"cannot listen on {bind_address}:{port}: {exc.strerror or exc} "
                            f"(another API server? choose one with --port)")
    return problems


# ---- components of `svcnet up`


def progress(message: str) -> None:
    print(f"svcnet: {message}", flush=True)


class ClusterNetwork:
    """The topology: created (or repaired) at start; at stop, the whole cluster is torn down."""

    def __init__(self, data_dir: Path, spec: ClusterSpec) -> None:
        self.data_dir = data_dir
        self.spec = spec

    async def start(self) -> None:
        from svcnet.kernel.links import LinuxNetworkKernel

        save_cluster_spec(self.data_dir, self.spec)
        plan = self.spec.plan()
        progress(f"creating the cluster network (cluster id {self.spec.cluster_id}, {self.spec.nodes} nodes)")
        await asyncio.to_thread(apply_topology, LinuxNetworkKernel(), plan)
        await asyncio.to_thread(apply_egress, plan)
        for node in plan.nodes:
            progress(f"  {node.name}: namespace {node.namespace}, IP {node.ipv4}, pod CIDR {node.pod_cidr_v4}")

    async def stop(self) -> None:
        progress("tearing the cluster down")
        await teardown(self.data_dir)


class AgentSupervisor:
    """Per node, one `svcnet agent` and one `svcnet proxy run` process, each restarted after a
    back-off when it dies (a restarted agent adopts its pods; a restarted proxy resyncs)."""

    ROLES = ("agent", "proxy")

    def __init__(self, data_dir: Path, spec: ClusterSpec, *, python: str = sys.executable) -> None:
        self.data_dir = data_dir
        self.spec = spec
        self.python = python
        self.processes: dict[tuple[str, str], asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def argv(self, role: str, node: str) -> list[str]:
        base = [self.python, "-m", "svcnet"]
        if role == "agent":
            return [*base, "agent", "--node", node, "--data-dir", str(self.data_dir)]
        plan = self.spec.plan().node(node)
        # kube-proxy's default minimum sync period is 1 s, for big clusters; a small one can afford
        # less, so that a change lands in the rules within a second even right after another sync.
        return [*base, "proxy", "run", "--node", node, "--netns", plan.namespace,
                "--data-dir", str(self.data_dir), "--cluster-cidr", plan_cluster_cidrs(self.spec),
                "--min-sync-period", PROXY_MIN_SYNC_PERIOD]

    async def start(self) -> None:
        for node in self.spec.plan().nodes:
            node_dir(self.data_dir, node.name).mkdir(parents=True, exist_ok=True)
            for role in self.ROLES:
                await self._spawn(role, node.name)
                progress(f"started the {role} for {node.name} (pid {self.processes[role, node.name].pid}, "
                         f"log {role_log_path(self.data_dir, node.name, role)})")
                self._tasks.append(asyncio.create_task(self._supervise(role, node.name),
                                                       name=f"{role}-{node.name}"))

    async def _spawn(self, role: str, node: str) -> None:
        with open(role_log_path(self.data_dir, node, role), "ab") as log_file:
            # Its own session: Ctrl-C on `up` reaches only `up`, which stops them itself.
            proc = await asyncio.create_subprocess_exec(
                *self.argv(role, node), stdin=asyncio.subprocess.DEVNULL, stdout=log_file,
                stderr=log_file, start_new_session=True)
        self.processes[role, node] = proc
        if role == "proxy":
            proxy_pid_path(self.data_dir, node).write_text(f"{proc.pid}\n")

    async def _supervise(self, role: str, node: str) -> None:
        delay = AGENT_RESTART_INITIAL
        while not self._stopping:
            started = time.monotonic()
            code = await self.processes[role, node].wait()
            if self._stopping:
                return
            if time.monotonic() - started > AGENT_HEALTHY_AFTER:
                delay = AGENT_RESTART_INITIAL
            progress(f"the {role} for {node} exited ({code}); restarting it in {delay:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, AGENT_RESTART_MAX)
            if not self._stopping:
                await self._spawn(role, node)
                progress(f"restarted the {role} for {node} (pid {self.processes[role, node].pid})")

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for proc in self.processes.values():
            if proc.returncode is None:
                proc.terminate()
        for (role, node), proc in self.processes.items():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                log.warning("the %s for %s did not stop; killing it", role, node)
                proc.kill()
                await proc.wait()
            if role == "proxy":
                with contextlib.suppress(FileNotFoundError):
                    proxy_pid_path(self.data_dir, node).unlink()
        progress("stopped the agents and proxies")


def plan_cluster_cidrs(spec: ClusterSpec) -> str:
    plan = spec.plan()
    return ",".join(c for c in (plan.pod_cidr_v4, plan.pod_cidr_v6) if c)


class NodesReadyGate:
    """Waits (with progress) until every node reports Ready; a timeout is reported, not fatal."""

    def __init__(self, api_factory: Callable[[], object], spec: ClusterSpec, data_dir: Path,
                 timeout: float = 60.0) -> None:
        self.api_factory = api_factory
        self.spec = spec
        self.data_dir = data_dir
        self.timeout = timeout

    async def start(self) -> None:
        from svcnet.agent.node import NODES

        names = [n.name for n in self.spec.plan().nodes]
        progress(f"waiting for nodes to be Ready: {', '.join(names)}")
        api = self.api_factory()
        await api.open()  # type: ignore[attr-defined]
        deadline = time.monotonic() + self.timeout
        ready: set[str] = set()
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    items = (await api.list(NODES))["items"]  # type: ignore[attr-defined]
                    for node in items:
                        name = node["metadata"]["name"]
                        if name in names and name not in ready and any(
                                c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (node.get("status") or {}).get("conditions") or []):
                            ready.add(name)
                            progress(f"  {name} is Ready")
                if ready == set(names):
                    break
                await asyncio.sleep(0.2)
            else:
                missing = sorted(set(names) - ready)
                progress(f"WARNING: not Ready after {self.timeout:g}s: {', '.join(missing)}; see "
                         + ", ".join(str(agent_log_path(self.data_dir, n)) for n in missing))
        finally:
            await api.close()  # type: ignore[attr-defined]

    async def stop(self) -> None:
        return None


class ReadyMarker:
    """The last `up` stage: DATA_DIR/cluster.ready says every stage before it is done
    (`up --detach` waits for it); removed first on the way down."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def start(self) -> None:
        (self.data_dir / READY_FILE).write_text(f"{os.getpid()}\n")

    async def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / READY_FILE).unlink()


# ---- teardown


def _is_agent_process(pid: int, data_dir: Path, role: bytes = b"agent") -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return role in cmdline and str(data_dir).encode() in cmdline


def stop_agent_processes(data_dir: Path, timeout: float = 15.0) -> list[int]:
    """End agents that pid files name (checked to be this data dir's agents); SIGKILL after timeout."""
    found: list[tuple[int, bytes]] = []
    nodes = data_dir / "nodes"
    for pid_file in sorted(nodes.glob("*/agent.pid")) if nodes.is_dir() else []:
        pid = supervisor.read_pid(pid_file)
        if pid and supervisor.is_locked(pid_file) and _is_agent_process(pid, data_dir):
            found.append((pid, b"agent"))
    for pid_file in sorted(nodes.glob("*/proxy.pid")) if nodes.is_dir() else []:
        pid = supervisor.read_pid(pid_file)
        if pid and _is_agent_process(pid, data_dir, b"proxy"):  # the cmdline names this data dir
            found.append((pid, b"proxy"))
        pid_file.unlink(missing_ok=True)
    for pid, _ in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid, role in found:
        while _is_agent_process(pid, data_dir, role) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_agent_process(pid, data_dir, role):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in found]


async def stop_all_pods(data_dir: Path, grace_seconds: float = DOWN_GRACE_SECONDS) -> int:
    """Stop every pod process recorded under the data dir (SIGTERM, grace, SIGKILL) and delete the records."""
    from svcnet.agent.kubelet import ProcessRuntime

    count = 0
    nodes = data_dir / "nodes"
    for root in sorted(p for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else []:
        runtime = ProcessRuntime(root)
        pods = runtime.sandboxes()
        await asyncio.gather(*(runtime.remove_pod(pod, grace_seconds) for pod in pods))
        count += len(pods)
    return count


async def teardown(data_dir: Path) -> None:
    """Leave nothing of the data dir's cluster behind: agents, pod processes, namespaces and links, IP leases.

    Safe to repeat, and safe when `up` died without cleaning up.
    """
    from svcnet.kernel.links import LinuxNetworkKernel

    spec = load_cluster_spec(data_dir)
    stopped = await asyncio.to_thread(stop_agent_processes, data_dir)
    if stopped:
        progress(f"stopped {len(stopped)} agent and proxy process(es)")
    pods = await stop_all_pods(data_dir)
    if pods:
        progress(f"stopped {pods} pod(s)")
    if spec is not None:
        removed = await asyncio.to_thread(destroy_topology, LinuxNetworkKernel(), spec.cluster_id)
        if removed:
            progress(f"removed {len(removed)} network namespace(s) of cluster {spec.cluster_id}")
    nodes = data_dir / "nodes"
    for leases in sorted(nodes.glob("*/ipam")) if nodes.is_dir() else []:
        shutil.rmtree(leases, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / READY_FILE).unlink()


__all__ = ["AgentSupervisor", "ClusterNetwork", "ClusterSpec", "NodesReadyGate", "agent_log_path", "agent_pid_path",
           "proxy_pid_path", "role_log_path", "ReadyMarker",
           "check_prerequisites", "cluster_id_for", "lease_path", "load_cluster_spec", "runtime_root",
           "save_cluster_spec", "stop_agent_processes", "stop_all_pods", "teardown"]
