"""The stages of `svcnet up` that are the cluster itself, and `teardown`, what `svcnet down` runs.

`svcnet.cluster.up` lists every stage in order: the cluster network
(`ClusterNetwork`: the topology for the cluster id kept in the data dir), the
API server, the controllers, the node processes (`svcnet.cluster.supervisor`),
a gate that waits for every Node to be Ready (`NodesReadyGate`), cluster DNS
and `ReadyMarker`. Stopping runs the same list backwards; the network's stop is
`teardown`: agents and proxies ended, every pod process stopped (found through
the runtime's state files), the topology destroyed, the IP leases removed.
`svcnet down` also calls `teardown` itself, so a cluster whose `up` process
was killed is cleaned up too.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

from svcnet.agent.node import NODES
from svcnet.api.objects import is_condition_true, name_of
from svcnet.cluster.egress import apply_egress
from svcnet.cluster.spec import READY_FILE, ClusterSpec, agent_log_path, load_cluster_spec, save_cluster_spec
from svcnet.cluster.supervisor import progress, stop_agent_processes
from svcnet.cluster.topology import apply_topology, destroy_topology
from svcnet.kernel import mounts
from svcnet.kernel.links import LinuxNetworkKernel
from svcnet.runtime.containers import Runtime
from svcnet.runtime.sandbox import PODS_DIR

log = logging.getLogger("svcnet.cluster")

DOWN_GRACE_SECONDS = 2.0


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


class ClusterNetwork:
    """The topology: created (or repaired) at start; at stop, the whole cluster is torn down."""

    def __init__(self, data_dir: Path, spec: ClusterSpec) -> None:
        self.data_dir = data_dir
        self.spec = spec

    async def start(self) -> None:
        save_cluster_spec(self.data_dir, self.spec)
        plan = self.spec.plan()
        hosts = f" on {self.spec.hosts} hosts, VXLAN between them" if self.spec.hosts > 1 else ""
        progress(f"creating the cluster network (cluster id {self.spec.cluster_id}, {self.spec.nodes} nodes{hosts})")
        await asyncio.to_thread(apply_topology, LinuxNetworkKernel(), plan)
        await asyncio.to_thread(apply_egress, plan)
        for node in plan.nodes:
            on_host = f" (host {node.host})" if self.spec.hosts > 1 else ""
            progress(f"  {node.name}{on_host}: namespace {node.namespace}, IP {node.ipv4}, pod CIDR {node.pod_cidr_v4}")

    async def stop(self) -> None:
        progress("tearing the cluster down")
        await teardown(self.data_dir)


class NodesReadyGate:
    """Waits (with progress) until every node reports Ready; a timeout is reported, not fatal."""

    def __init__(self, api_factory: Callable[[], object], spec: ClusterSpec, data_dir: Path,
                 timeout: float = 60.0) -> None:
        self.api_factory = api_factory
        self.spec = spec
        self.data_dir = data_dir
        self.timeout = timeout

    async def start(self) -> None:
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
                        name = name_of(node)
                        if name in names and name not in ready and is_condition_true(node, "Ready"):
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


async def stop_all_pods(data_dir: Path, grace_seconds: float = DOWN_GRACE_SECONDS) -> int:
    """Stop every pod process recorded under the data dir (SIGTERM, grace, SIGKILL) and delete the records,
    and the tmpfs the agent kept them on."""
    count = 0
    nodes = data_dir / "nodes"
    for root in sorted(p for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else []:
        runtime = Runtime(root)
        pods = runtime.sandboxes()
        await asyncio.gather(*(runtime.remove_pod(pod, grace_seconds) for pod in pods))
        count += len(pods)
        await asyncio.to_thread(mounts.unmount_tmpfs, root / PODS_DIR)
    return count


async def teardown(data_dir: Path) -> None:
    """Leave nothing of the data dir's cluster behind: agents, pod processes, namespaces and links, IP leases.

    Safe to repeat, and safe when `up` died without cleaning up.
    """
    from svcnet.cluster.join import stop_joined_nodes

    spec = load_cluster_spec(data_dir)
    joined = await stop_joined_nodes(data_dir)  # first: their agents still talk to the API server
    if joined:
        progress(f"stopped the joined node(s) {', '.join(joined)}")
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
